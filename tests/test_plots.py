"""Plots write valid PNGs of the expected size and leave matplotlib's global state alone."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from anomalia.errors import DataError
from anomalia.plots import (
    plot_image_grid,
    plot_pr,
    plot_reconstructions,
    plot_roc,
    plot_score_histogram,
    save_evaluation_plots,
    save_figure,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
Y = np.array([0] * 16 + [1] * 4)
SCORES = np.linspace(0.0, 1.0, 20) + np.r_[np.zeros(16), np.full(4, 0.2)]


def expected_size(fig: Figure) -> tuple[int, int]:
    w, h = fig.get_size_inches() * 120
    return round(w), round(h)


def assert_png(path, size: tuple[int, int] | None = None) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    with Image.open(path) as img:
        assert img.format == "PNG"
        if size is not None:
            assert abs(img.size[0] - size[0]) <= 1
            assert abs(img.size[1] - size[1]) <= 1
        img.load()  # decodes the whole file: fails on a truncated PNG


def save_and_check(fig: Figure, path) -> None:
    size = expected_size(fig)
    assert save_figure(fig, path) == path
    assert_png(path, size)


@pytest.fixture
def untouched_matplotlib():
    backend = matplotlib.get_backend()
    rc = dict(matplotlib.rcParams)
    yield
    assert matplotlib.get_backend() == backend
    assert dict(matplotlib.rcParams) == rc


def legend_texts(fig: Figure) -> list[str]:
    legends = [ax.get_legend() for ax in fig.axes] + list(fig.legends)
    return [t.get_text() for leg in legends if leg is not None for t in leg.get_texts()]


@pytest.mark.usefixtures("untouched_matplotlib")
def test_plot_roc_single_curve(tmp_path):
    fig = plot_roc(Y, SCORES, 0.7, title="my ROC")
    assert fig.axes[0].get_title() == "my ROC"
    assert fig.axes[0].get_xlabel() == "false-alarm rate (FPR)"
    assert any("AUC" in t for t in legend_texts(fig))
    assert any("score > 0.7" in t for t in legend_texts(fig))
    save_and_check(fig, tmp_path / "roc.png")


@pytest.mark.usefixtures("untouched_matplotlib")
def test_plot_roc_and_pr_accept_mappings(tmp_path):
    scores = {"good": SCORES, "bad": -SCORES}
    for i, plot in enumerate((plot_roc, plot_pr)):
        fig = plot(Y, scores, {"good": 0.7})
        texts = legend_texts(fig)
        assert any(t.startswith("good (") for t in texts)
        assert any(t.startswith("bad (") for t in texts)
        save_and_check(fig, tmp_path / f"{i}.png")


@pytest.mark.usefixtures("untouched_matplotlib")
def test_plot_pr_single_curve(tmp_path):
    fig = plot_pr(Y, SCORES, 0.7)
    assert fig.axes[0].get_ylabel() == "precision (PPV)"
    assert any("AP =" in t for t in legend_texts(fig))
    assert any("prevalence 0.200" in t for t in legend_texts(fig))
    save_and_check(fig, tmp_path / "pr.png")


def test_curve_plots_reject_inconsistent_thresholds():
    with pytest.raises(DataError, match="unknown score names"):
        plot_roc(Y, {"a": SCORES}, {"b": 0.5})
    with pytest.raises(DataError, match="mapping"):
        plot_pr(Y, SCORES, {"a": 0.5})
    with pytest.raises(DataError, match="both classes"):
        plot_roc(np.zeros(20), SCORES)


@pytest.mark.usefixtures("untouched_matplotlib")
def test_plot_score_histogram_linear(tmp_path):
    fig = plot_score_histogram(Y, SCORES, 0.7)
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear"
    assert ax.get_xlabel() == "anomaly score"
    assert "threshold = 0.7" in legend_texts(fig)
    save_and_check(fig, tmp_path / "hist.png")


def test_plot_score_histogram_picks_log_axis_for_wide_positive_scores():
    wide = np.logspace(-2, 3, 20)  # 5 decades
    assert plot_score_histogram(Y, wide).axes[0].get_xscale() == "log"
    assert plot_score_histogram(Y, wide, log_scale=False).axes[0].get_xscale() == "linear"
    assert plot_score_histogram(Y, SCORES + 1).axes[0].get_xscale() == "linear"
    with pytest.raises(DataError, match="positive"):
        plot_score_histogram(Y, SCORES - 0.5, log_scale=True)


@pytest.mark.usefixtures("untouched_matplotlib")
@pytest.mark.parametrize("shape", [(3, 8, 6), (3, 1, 8, 6), (3, 3, 8, 6)])
def test_plot_image_grid_shapes(tmp_path, shape):
    rng = np.random.default_rng(0)
    originals = rng.random(shape)
    recon = originals + 0.1  # RGB rows outside [0, 1] are rescaled, not clipped with a warning
    fig = plot_image_grid(
        [originals, recon, np.abs(originals - recon)[:2]],
        ["original", "reconstruction", "error"],
        col_titles=["a", "b", "c"],
    )
    assert fig.axes[0].get_ylabel() == "original"
    assert fig.axes[0].get_title() == "a"
    save_and_check(fig, tmp_path / "grid.png")


@pytest.mark.parametrize(
    ("rows", "titles", "match"),
    [
        ([np.zeros((2, 4, 4))], ["a", "b"], "one row title per row"),
        ([np.zeros((2, 2, 4, 4))], ["a"], "shape"),
        ([np.zeros((4, 4))], ["a"], "shape"),
    ],
)
def test_plot_image_grid_rejects_bad_input(rows, titles, match):
    with pytest.raises(DataError, match=match):
        plot_image_grid(rows, titles)


def test_save_figure_creates_folders_overwrites_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "a" / "b" / "fig.png"
    fig = plot_score_histogram(Y, SCORES)
    save_and_check(fig, target)
    save_and_check(fig, target)  # replaces the existing file
    assert [p.name for p in target.parent.iterdir()] == ["fig.png"]
    with pytest.raises(DataError, match=r"\.png"):
        save_figure(fig, tmp_path / "fig.pdf")


@pytest.mark.usefixtures("untouched_matplotlib")
def test_save_evaluation_plots_single(tmp_path):
    paths = save_evaluation_plots(Y, SCORES, 0.7, tmp_path / "out", prefix="x-", title="T")
    assert [p.name for p in paths] == ["x-roc.png", "x-pr.png", "x-scores.png"]
    for p in paths:
        assert_png(p)


@pytest.mark.usefixtures("untouched_matplotlib")
def test_save_evaluation_plots_mapping(tmp_path):
    scores = {"ae": SCORES, "if/v2": SCORES**2}
    paths = save_evaluation_plots(Y, scores, {"ae": 0.7, "if/v2": 0.5}, tmp_path)
    assert [p.name for p in paths] == ["roc.png", "pr.png", "scores-ae.png", "scores-if_v2.png"]
    for p in paths:
        assert_png(p)


def test_save_evaluation_plots_writes_nothing_on_bad_input(tmp_path):
    with pytest.raises(DataError, match="differ in length"):
        save_evaluation_plots(Y, {"a": SCORES, "b": SCORES[:5]}, None, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_many_curves_get_distinct_colours_and_styles_and_a_legend_beside_the_axes():
    rng = np.random.default_rng(0)
    scores = {f"detector {i}": SCORES + rng.normal(0, 0.3, 20) for i in range(9)}
    for plot in (plot_roc, plot_pr):
        fig = plot(Y, scores, dict.fromkeys(scores, 0.5))
        ax = fig.axes[0]
        assert ax.get_legend() is None and len(fig.legends) == 1  # not over the curves
        curves = [line for line in ax.get_lines() if len(line.get_xdata()) > 2]  # not dots
        colours = {line.get_color() for line in curves}
        styles = {(line.get_color(), line.get_linestyle()) for line in curves}
        assert len(colours) == 9 and len(styles) == 9
        texts = legend_texts(fig)
        assert len(texts) == 10  # one entry per curve (with its operating point) and chance
        assert all("score > 0.5" in t for t in texts[:9])


def test_plot_score_histogram_cuts_a_long_tail_and_says_so():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(90), np.ones(106)]
    tail = [500, 900, 2000, 3000, 4000, 4500]
    scores = np.r_[rng.normal(-38, 3, 90), rng.normal(20, 40, 100), tail]
    fig = plot_score_histogram(y, scores, -22.0)  # negative scores: no log axis
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear"
    lo, hi = ax.get_xlim()
    assert lo == pytest.approx(scores.min()) and hi < 500  # not stretched to 4,500
    texts = legend_texts(fig)
    assert any(t.startswith("off the axis (> ") and t.endswith(": 6 anomalies") for t in texts)
    # the areas are the shares drawn: the 6 left out are missing from the anomalies' area
    areas = []
    for patch in ax.patches:
        values, edges, _ = patch.get_data()
        areas.append(float(np.sum(values * np.diff(edges))))
    assert areas == pytest.approx([1.0, 100 / 106])
    assert "threshold = -22" in texts
    far = plot_score_histogram(y, scores, 4000.0).axes[0]  # the threshold stays on the axis
    assert far.get_xlim()[1] >= 4000.0


def test_plot_score_histogram_log_axis_for_a_positive_long_tail():
    rng = np.random.default_rng(0)
    scores = np.exp(rng.normal(2, 0.6, 20))
    scores[-1] = 300.0  # about 2 decades, one far-out score
    ax = plot_score_histogram(Y, scores, 10.0).axes[0]
    assert ax.get_xscale() == "log"
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert labels and all("^" not in t for t in labels)  # plain numbers (1, 2, 5 x 10^k)


def colour_bars(fig) -> list:
    bars = {id(im.colorbar): im.colorbar for ax in fig.axes for im in ax.images if im.colorbar}
    return list(bars.values())


@pytest.mark.usefixtures("untouched_matplotlib")
def test_plot_image_grid_title_and_colour_bars(tmp_path):
    rng = np.random.default_rng(0)
    rows = [rng.random((3, 8, 6)), rng.random((3, 8, 6)) * 5]
    fig = plot_image_grid(rows, ["a", "b"], title="my grid", colorbar=[None, "error"])
    assert fig.get_suptitle() == "my grid"
    (bar,) = colour_bars(fig)
    assert bar.ax.get_ylabel() == "error"
    assert (bar.norm.vmin, bar.norm.vmax) == pytest.approx((rows[1].min(), rows[1].max()))
    assert len([ax for ax in fig.axes if ax.axison]) == 7  # 6 images and one colour bar
    save_and_check(fig, tmp_path / "grid.png")
    with pytest.raises(DataError, match="colorbar"):
        plot_image_grid(rows, ["a", "b"], colorbar=["x"])


def reconstruction_inputs(n_images):
    rng = np.random.default_rng(0)
    originals = rng.random((n_images, 1, 8, 8))
    recon = originals + rng.normal(0, 0.1, originals.shape)
    errors = (originals - recon) ** 2
    return originals, recon, errors, errors.mean(axis=(1, 2, 3))


@pytest.mark.usefixtures("untouched_matplotlib")
def test_plot_reconstructions_most_and_least_anomalous(tmp_path):
    originals, recon, errors, scores = reconstruction_inputs(12)
    labels = (scores > np.median(scores)).astype(int)
    fig = plot_reconstructions(
        originals, recon, errors, scores, labels=labels, threshold=0.01, n=4, title="T"
    )
    assert fig.get_suptitle().splitlines() == [
        "T",
        "number above each image: its anomaly score; flagged when > 0.01; below it the true label",
    ]
    top, bottom = fig.subfigs
    assert top.get_suptitle() == "the 4 most anomalous (highest scores)"
    assert bottom.get_suptitle() == "the 4 least anomalous (lowest scores)"
    order = np.argsort(-scores)
    titles = [ax.get_title() for ax in top.axes if ax.get_title()]
    assert titles == [f"{scores[i]:.3g}\nanomaly" for i in order[:4]]
    titles = [ax.get_title() for ax in bottom.axes if ax.get_title()]
    assert titles == [f"{scores[i]:.3g}\nnormal" for i in order[::-1][:4]]
    for sub in (top, bottom):  # one colour bar per group, the same scale in both
        (bar,) = colour_bars(sub)
        assert bar.ax.get_ylabel() == "squared error"
        assert (bar.norm.vmin, bar.norm.vmax) == pytest.approx((errors.min(), errors.max()))
    save_and_check(fig, tmp_path / "reconstructions.png")


def test_plot_reconstructions_few_images_and_bad_input():
    originals, recon, errors, scores = reconstruction_inputs(5)
    fig = plot_reconstructions(originals[:, 0], recon[:, 0], errors[:, 0], scores)
    assert [sub.get_suptitle() for sub in fig.subfigs] == [
        "the 3 most anomalous (highest scores)",
        "the 2 least anomalous (lowest scores)",
    ]
    assert "true label" not in fig.get_suptitle()
    with pytest.raises(DataError, match="same images"):
        plot_reconstructions(originals, recon[:4], errors, scores)
    with pytest.raises(DataError, match="n must be"):
        plot_reconstructions(originals, recon, errors, scores, n=0)
