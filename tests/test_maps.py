"""Maps of a fitted detector over two features: plot_density (gaussian) and plot_boundary
(any table detector), in Python and through `anomalia plot-density` / `plot-boundary`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image
from typer.testing import CliRunner

import anomalia
from anomalia.cli.app import app
from anomalia.errors import DataError
from anomalia.plots import plot_boundary, plot_density, save_figure

from .conftest import FAST_PARAMS

runner = CliRunner()


def table(n_features: int = 2, n: int = 150, seed: int = 0) -> pd.DataFrame:
    """Correlated normal rows in the units of a real table (means far from 0, unequal
    spreads), plus three far rows."""
    rng = np.random.default_rng(seed)
    cov = np.eye(n_features)
    cov[0, 1] = cov[1, 0] = 0.6
    X = rng.multivariate_normal(np.zeros(n_features), cov, size=n)
    X[:3] += 5.0
    X = X * np.linspace(2.0, 0.5, n_features) + np.arange(n_features) * 10.0 + 50.0
    return pd.DataFrame(X, columns=[f"f{j}" for j in range(n_features)])


def threshold_contour(fig: Figure, ax_index: int = 0) -> ContourSet:
    found = [c for c in fig.axes[ax_index].collections if c.get_gid() == "threshold"]
    assert len(found) == 1
    return found[0]


def assert_texts_inside(fig: Figure) -> None:
    """Every drawn text (title, labels, ticks, legend, colour bar) lies inside the figure."""
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    box = fig.bbox
    undrawn = set()  # labels of ticks outside the view, which matplotlib keeps but never draws
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not lo - 1e-9 * (hi - lo) <= tick.get_loc() <= hi + 1e-9 * (hi - lo):
                    undrawn |= {id(tick.label1), id(tick.label2)}
    for text in fig.findobj(Text):
        if id(text) in undrawn or not text.get_visible() or not text.get_text().strip():
            continue
        ext = text.get_window_extent(renderer)
        assert ext.x0 >= box.x0 - 1 and ext.x1 <= box.x1 + 1, text.get_text()
        assert ext.y0 >= box.y0 - 1 and ext.y1 <= box.y1 + 1, text.get_text()


def assert_png(fig: Figure, path) -> None:
    w, h = fig.get_size_inches() * 120
    assert save_figure(fig, path) == path
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert abs(img.size[0] - round(w)) <= 1 and abs(img.size[1] - round(h)) <= 1
        img.load()


# -- plot_density -------------------------------------------------------------------------
def test_plot_density_of_a_two_feature_model(tmp_path):
    df = table(2)
    det = anomalia.make_detector("gaussian").fit(df)
    fig = plot_density(det, df, resolution=80)
    ax = fig.axes[0]
    assert "N(μ*, Σ*) on f0 and f1" in ax.get_title()
    assert "slice" not in ax.get_title()
    assert list(threshold_contour(fig).levels) == [det.threshold_]
    mean = next(line for line in ax.get_lines() if line.get_label() == "μ* (fitted mean)")
    assert mean.get_xdata()[0] == pytest.approx(det.location_[0])  # data units, not z-scores
    assert mean.get_ydata()[0] == pytest.approx(det.location_[1])
    n_flagged = int((det.anomaly_score(df) > det.threshold_).sum())
    assert f"{n_flagged} of {len(df)} rows flagged" in ax.get_title()
    assert_texts_inside(fig)
    assert_png(fig, tmp_path / "density.png")


@pytest.mark.parametrize("score_method", ["density", "distance"])
def test_plot_density_slices_through_the_mean(score_method):
    """With more features the map is the slice through mu*: the threshold contour's points,
    the other features at mu*, score threshold_ (up to the grid's interpolation)."""
    df = table(4)
    det = anomalia.make_detector("gaussian", score_method=score_method).fit(df)
    fig = plot_density(det, df, ["f2", "f0"], resolution=120)
    ax = fig.axes[0]
    assert "slice through μ*" in ax.get_title() and "scored on all 4" in ax.get_title()
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("f2", "f0")
    contour = threshold_contour(fig)
    assert list(contour.levels) == [det.threshold_]
    points = np.vstack([p.vertices for p in contour.get_paths()])
    rows = np.tile(det.location_, (len(points), 1))
    rows[:, 2], rows[:, 0] = points[:, 0], points[:, 1]
    scores = det.anomaly_score(pd.DataFrame(rows, columns=df.columns))
    assert np.allclose(scores, det.threshold_, rtol=0.02)
    assert_texts_inside(fig)


def test_plot_density_refuses_other_detectors():
    df = table(2)
    det = anomalia.make_detector("iforest", n_estimators=10, random_state=0).fit(df)
    with pytest.raises(DataError, match="gaussian detector"):
        plot_density(det, df)


@pytest.mark.parametrize(
    ("features", "match"),
    [
        (["f0", "nope"], "unknown feature 'nope'; the model's features are 'f0', 'f1', 'f2'"),
        (["f1", "f1"], "two different features"),
        (["f0"], "two features"),
        ("f0", "two features"),
        ([0, 7], "out of range"),
    ],
)
def test_maps_refuse_bad_features(features, match):
    df = table(3)
    det = anomalia.make_detector("gaussian").fit(df)
    for draw in (plot_density, plot_boundary):
        with pytest.raises(DataError, match=match):
            draw(det, df, features)


def test_maps_refuse_bad_input():
    df = table(3)
    det = anomalia.make_detector("gaussian").fit(df)
    with pytest.raises(DataError, match="resolution"):
        plot_boundary(det, df, resolution=5)
    with pytest.raises(DataError, match="on an axis"):
        plot_boundary(det, df, at={"f0": 1.0})
    with pytest.raises(DataError, match="at: unknown feature 'zz'"):
        plot_boundary(det, df, at={"zz": 1.0})
    with pytest.raises(DataError, match="finite"):
        plot_boundary(det, df, at={"f2": float("nan")})
    with pytest.raises(DataError):  # not the model's columns
        plot_boundary(det, df[["f0", "f1"]])
    one = anomalia.make_detector("gaussian").fit(df[["f0"]])
    with pytest.raises(DataError, match="2 or more"):
        plot_boundary(one, df[["f0"]])


# -- plot_boundary ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["gaussian", "ocsvm", "iforest", "knn", "default", "ae"])
def test_plot_boundary_of_every_table_detector(tmp_path, name):
    df = table(2)
    det = anomalia.make_detector(name, **FAST_PARAMS.get(name, {})).fit(df)
    fig = plot_boundary(det, df, resolution=60, name=name)
    ax = fig.axes[0]
    assert ax.get_title().startswith(f"{name}: anomaly score over f0 and f1\nexact")
    assert list(threshold_contour(fig).levels) == [det.threshold_]
    assert fig.axes[1].get_ylabel().startswith("anomaly score")  # the labelled colour bar
    assert_texts_inside(fig)
    assert_png(fig, tmp_path / f"{name}.png")


def test_a_negative_threshold_is_drawn_solid_like_any_other():
    """matplotlib dashes negative contour levels unless told otherwise."""
    df = table(2) / 1000  # small units: the negative log-density is negative
    det = anomalia.make_detector("gaussian").fit(df)
    assert det.threshold_ < 0
    for draw in (plot_boundary, plot_density):
        contour = threshold_contour(draw(det, df, resolution=30))
        assert list(contour.levels) == [det.threshold_]
        assert [dashes for _, dashes in contour.get_linestyle()] == [None]


def test_plot_boundary_slices_at_the_median_or_at_given_values():
    df = table(3)
    det = anomalia.make_detector("gaussian").fit(df)
    fig = plot_boundary(det, df, ["f0", "f2"])  # the default resolution, 200 x 200
    mesh = fig.axes[0].collections[0]
    assert mesh.get_array().shape == (200, 200)
    assert "the other feature at the median of the rows" in fig.axes[0].get_title()
    median = plot_boundary(det, df, ["f0", "f2"], at={"f1": float(df["f1"].median())})
    moved = plot_boundary(det, df, ["f0", "f2"], at={1: float(df["f1"].max())})
    field = mesh.get_array()
    assert np.allclose(median.axes[0].collections[0].get_array(), field)
    assert not np.allclose(moved.axes[0].collections[0].get_array(), field)


def test_plot_boundary_uses_a_log_scale_for_wide_positive_scores():
    rng = np.random.default_rng(0)  # a tight cluster and one far row: distances span decades
    X = np.vstack([rng.normal(0.0, 0.05, size=(200, 2)), [[8.0, 8.0]]])
    df = pd.DataFrame(X, columns=["f0", "f1"])
    det = anomalia.make_detector("knn").fit(df)
    fig = plot_boundary(det, df, resolution=80)
    assert isinstance(fig.axes[0].collections[0].norm, LogNorm)
    assert "log scale" in fig.axes[1].get_ylabel()
    assert_texts_inside(fig)


def test_plot_boundary_of_a_model_without_column_names():
    X = table(3).to_numpy()
    det = anomalia.make_detector("iforest", n_estimators=20, random_state=0).fit(X)
    fig = plot_boundary(det, X, [2, 1], resolution=40)
    assert (fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel()) == ("feature 2", "feature 1")
    with pytest.raises(DataError, match="unknown feature 'f0'"):
        plot_boundary(det, X, ["f0", "f1"])


def test_maps_compose_as_panels(tmp_path):
    df = table(2)
    fig = Figure(figsize=(11, 5), dpi=120, layout="constrained")
    left, right = fig.subplots(1, 2)
    gauss = anomalia.make_detector("gaussian").fit(df)
    forest = anomalia.make_detector("iforest", n_estimators=20, random_state=0).fit(df)
    assert plot_density(gauss, df, ax=left, resolution=50) is fig
    assert plot_boundary(forest, df, ax=right, resolution=50, legend=False) is fig
    assert left.get_legend() is not None and right.get_legend() is None
    assert list(threshold_contour(fig, 0).levels) == [gauss.threshold_]
    assert list(threshold_contour(fig, 1).levels) == [forest.threshold_]
    assert len(fig.axes) == 4  # two maps, two colour bars
    assert_texts_inside(fig)
    assert_png(fig, tmp_path / "panels.png")


# -- the CLI ------------------------------------------------------------------------------
@pytest.fixture
def models(tmp_path):
    df = table(3)
    df.insert(0, "txn", np.arange(len(df)))
    df["fraud"] = (np.arange(len(df)) < 3).astype(int)
    data = tmp_path / "rows.csv"
    df.to_csv(data, index=False)
    paths = {"data": data}
    for name, params in (("gaussian", []), ("iforest", ["-p", "n_estimators=20"])):
        paths[name] = tmp_path / f"{name}.anomalia"
        columns = ["--label-column", "fraud", "--id-column", "txn"]
        res = runner.invoke(app, ["fit", str(data), "-d", name, *params, *columns,
                                  "--out", str(paths[name])])  # fmt: skip
        assert res.exit_code == 0, res.output
    return paths


def test_cli_draws_density_and_boundary(tmp_path, models):
    out = tmp_path / "maps" / "density.png"
    res = runner.invoke(app, ["plot-density", str(models["gaussian"]), str(models["data"]),
                              "--features", "f1,f0", "--out", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("gaussian", "iforest"):
        out = tmp_path / f"boundary-{name}.png"
        res = runner.invoke(app, ["plot-boundary", str(models[name]), str(models["data"]),
                                  "-f", "f0,f2", "-o", str(out)])  # fmt: skip
        assert res.exit_code == 0, res.output
        with Image.open(out) as img:
            assert img.format == "PNG"


@pytest.mark.parametrize(
    ("command", "model", "extra", "message"),
    [
        ("plot-density", "iforest", [], "plot-density draws a 'gaussian' model"),
        ("plot-density", "gaussian", ["--features", "f0,nope"], "'nope' is not a column"),
        ("plot-boundary", "iforest", ["--features", "f0"], "--features takes two column"),
        ("plot-boundary", "iforest", ["--features", "f0,f0"], "twice"),
        ("plot-boundary", "iforest", ["--out-name", "map.jpg"], "--out must end in .png"),
        ("plot-density", "gaussian", ["--out-name", "map.pdf"], "--out must end in .png"),
    ],
)
def test_cli_refuses_bad_input_and_writes_nothing(tmp_path, models, command, model, extra, message):
    out = tmp_path / "map.png"
    if extra[:1] == ["--out-name"]:
        out, extra = tmp_path / extra[1], []
    res = runner.invoke(app, [command, str(models[model]), str(models["data"]), *extra,
                              "--out", str(out)])  # fmt: skip
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_cli_refuses_an_image_model(tmp_path):
    images = tmp_path / "images.npy"
    np.save(images, np.random.default_rng(0).random((12, 8, 8)))
    model = tmp_path / "img.anomalia"
    res = runner.invoke(app, ["fit", str(images), "-d", "conv-ae", "-p", "epochs=1",
                              "--out", str(model)])  # fmt: skip
    assert res.exit_code == 0, res.output
    out = tmp_path / "map.png"
    for command in ("plot-boundary", "plot-density"):
        res = runner.invoke(app, [command, str(model), str(images), "--out", str(out)])
        assert res.exit_code == 2 and "needs a model fitted on a table" in res.stderr, res.output
        assert not out.exists()
