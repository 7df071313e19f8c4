"""Every figure the library draws, rendered to PNG from realistic inputs, fits its canvas.

Each case draws one figure and checks, after matplotlib's layout has run: the PNG has the
figure's size (so nothing was cropped or padded by the writer), an opaque white
background, the tight bounding box of everything drawn (titles, labels, tick labels,
legends, colour bars, notes) lies inside the canvas, every text artist does too, and the
unrotated tick labels of an axis do not overlap each other. A clipped title, a legend
running off the side or crowded tick labels fail here.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image

import anomalia.plots
from anomalia import bench, plots
from anomalia.detectors.disentangle import plot_swap_grid
from anomalia.text.trees import plot_trees, tree_from_distances

DEMO = ("default", "gaussian", "ocsvm", "iforest", "knn", "ae", "dae", "vae", "vqvae")
LONG_SPEC = "ensemble(detectors=(('knn', {'max_samples': 10000}), 'iforest', 'gaussian'), trim=0.1)"


def rng(seed: int = 0) -> np.random.Generator:
    """A fresh generator per input: each case draws the same data whichever cases run."""
    return np.random.default_rng(seed)


# the demo's test set: 90 benign and 106 malignant cases
Y = np.r_[np.zeros(90, int), np.ones(106, int)]


def demo_scores() -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Nine detectors' scores on different scales, some with a long tail (like the demo's)."""
    r = rng()
    base = np.r_[r.normal(0, 1, 90), r.normal(2.2, 1.2, 106)]
    scores = {}
    for i, name in enumerate(DEMO):
        s = base + r.normal(0, 0.5, base.size)
        scores[name] = np.exp(s + i / 3) if name in ("vae", "knn", "ae") else s * 10 - 20
    return scores, {name: float(np.quantile(s, 0.45)) for name, s in scores.items()}


def heavy_tail() -> np.ndarray:
    """Negative scores with a tail to 4,500, like the gaussian detector's."""
    r = rng()
    return np.r_[r.normal(-38, 3, 90), r.normal(20, 40, 100), [500, 900, 2e3, 3e3, 4e3, 4.5e3]]


def knn_like() -> np.ndarray:
    """Positive scores from 2.31 to 66.3 with a long right tail, like the knn detector's."""
    r = rng()
    normal = np.clip(r.lognormal(1.3, 0.3, 89), 2.4, None)
    return np.r_[2.31, normal, r.lognormal(2.3, 0.5, 100), [35, 40, 45, 50, 60, 66.3]]


def images(n: int, size: int = 8, channels: int | None = None, seed: int = 0) -> np.ndarray:
    shape = (n, size, size) if channels is None else (n, channels, size, size)
    return rng(seed).random(shape)


def bench_results(n_datasets: int) -> pd.DataFrame:
    """A results table: 13 detectors (one a long ensemble spec), 3 seeds, a few timeouts."""
    detectors = [
        "default", "knn", "iforest", "ae", LONG_SPEC, "sklearn:IsolationForest",
        "sklearn:LocalOutlierFactor", "sklearn:EllipticEnvelope", "sklearn:OneClassSVM",
        "pyod:ECOD", "pyod:COPOD", "pyod:KNN", "pyod:AutoEncoder",
    ]  # fmt: skip
    names = ["cardiotocography", "internetads", "satimage-2", *(f"set{i}" for i in range(40))]
    r, rows = rng(), []
    for d, dataset in enumerate(names[:n_datasets]):
        for k, det in enumerate(detectors):
            for seed in range(3):
                timeout = (d + k) % 11 == 3
                rows.append({
                    "protocol": protocol, "dataset": dataset, "detector": det, "seed": seed,
                    "status": "timeout" if timeout else "ok",
                    "roc_auc": np.nan if timeout else r.uniform(0.3, 1.0),
                    "average_precision": r.uniform(0, 1), "fit_seconds": 1.0,
                } for protocol in ("unsup", "clean"))  # fmt: skip
    return pd.DataFrame([r for group in rows for r in group])


def bench_figures(n_datasets: int) -> Callable[[], list[Figure]]:
    def draw(monkeypatch: pytest.MonkeyPatch, tmp_path) -> list[Figure]:
        drawn = []
        monkeypatch.setattr(anomalia.plots, "save_figure", lambda fig, path: drawn.append(fig))
        bench.plot_results(bench_results(n_datasets), tmp_path / "r")
        return drawn

    return draw


def fitted(name: str, n_features: int) -> tuple[object, pd.DataFrame]:
    """A small table model and the rows it was fitted on (the 2-D maps draw both)."""
    frame = pd.DataFrame(rng().normal(size=(300, n_features)), columns=list("abcd")[:n_features])
    return anomalia.make_detector(name, random_state=0).fit(frame), frame


SAVE = plots.save_figure  # the bench cases replace it to catch their figures
SCORES, THRESHOLDS = demo_scores()
MAPS = rng().integers(0, 32, size=(6, 7, 7))


def debian_like_trees() -> tuple[list, list[list[str]]]:
    """Four trees over package summaries of 3 to 16 words, long words included."""
    words = [
        [
            "real-time",
            "strategy",
            "game",
            "of",
            "ancient",
            "warfare",
            "(",
            "common",
            "data",
            "files",
            ")",
        ],
        ["gnu", "c", "library", ":", "shared", "libraries"],
        [
            "python",
            "3",
            "bindings",
            "for",
            "the",
            "internationalization",
            "and",
            "localization",
            "framework",
            ",",
            "development",
            "files",
            "included",
        ],
        ["tiny", "x", "server"],
    ]
    return [tree_from_distances(rng(i).random(len(w) - 1)) for i, w in enumerate(words)], words


CASES: dict[str, Callable[..., Figure | list[Figure]]] = {
    "plot_roc 9 detectors": lambda: plots.plot_roc(Y, SCORES, THRESHOLDS, title="breast cancer"),
    "plot_roc one curve": lambda: plots.plot_roc(Y, SCORES["knn"], THRESHOLDS["knn"]),
    "plot_roc long names": lambda: plots.plot_roc(
        Y, {LONG_SPEC: SCORES["knn"], "default": SCORES["default"]}
    ),
    "plot_pr 9 detectors": lambda: plots.plot_pr(Y, SCORES, THRESHOLDS, title="breast cancer"),
    "plot_pr one curve": lambda: plots.plot_pr(Y, SCORES["ae"], THRESHOLDS["ae"]),
    "plot_score_histogram heavy tail": lambda: plots.plot_score_histogram(Y, heavy_tail(), -22.1),
    "plot_score_histogram 1.5 decades": lambda: plots.plot_score_histogram(
        Y, knn_like(), 5.65, title="breast cancer, test set: Anomaly scores of knn"
    ),
    "plot_score_histogram 5 decades": lambda: plots.plot_score_histogram(
        Y, np.logspace(-2, 3, Y.size), 1.0
    ),
    "plot_score_histogram constant": lambda: plots.plot_score_histogram(Y, np.ones(Y.size)),
    "plot_image_grid samples": lambda: plots.plot_image_grid(
        [images(8, seed=i) for i in range(4)],
        [f"{i + 1}-{i + 8}" for i in range(0, 32, 8)],
        title="samples from the prior of digits-vae.anomalia, seed 0 (32 images)",
    ),
    "plot_image_grid strip": lambda: plots.plot_image_grid(
        [images(10, channels=1)],
        ["input, path, input"],
        col_titles=["row 0", *(f"t={t:.2f}" for t in np.linspace(0, 1, 8)), "row 1"],
        title="digits-vae.anomalia: a straight line in code space from row 0 to row 1",
    ),
    "plot_image_grid rgb, colour bar": lambda: plots.plot_image_grid(
        [images(4, channels=3), images(3, seed=1) * 5],
        ["original", "squared error"],
        cmap=["gray", "magma"],
        colorbar=[None, "squared error"],
    ),
    "plot_reconstructions": lambda: plots.plot_reconstructions(
        images(16),
        images(16, seed=1),
        images(16, seed=2) ** 2,
        rng().random(16),
        labels=rng(1).integers(0, 2, 16),
        threshold=0.42,
        title="conv-ae: reconstructions of test",
    ),
    "plot_reconstructions few rgb": lambda: plots.plot_reconstructions(
        images(3, 16, 3), images(3, 16, 3, seed=1), images(3, 16, 3, seed=2), rng().random(3)
    ),
    "plot_codes 10 classes": lambda: plots.plot_codes(
        rng().normal(size=(500, 16)),
        rng(1).integers(0, 10, 500),
        title="vae codes of digits (16-D)",
    ),
    "plot_codes 25 classes": lambda: plots.plot_codes(
        rng().normal(size=(300, 2)), [f"class {i}" for i in rng(1).integers(0, 25, 300)]
    ),
    "plot_codes 1-D, no labels": lambda: plots.plot_codes(rng().normal(size=(50, 1))),
    "plot_codebook": lambda: plots.plot_codebook(
        rng().integers(0, 500, 32), images=images(6, 28), code_maps=MAPS
    ),
    "plot_codebook usage only": lambda: plots.plot_codebook(rng().integers(0, 50, 512)),
    "plot_swap_grid": lambda: plot_swap_grid(rng().random((5, 5, 1, 28, 28))),
    "plot_trees 4 summaries": lambda: plot_trees(*debian_like_trees()),
    "plot_density 2 features": lambda: plots.plot_density(*fitted("gaussian", 2)),
    "plot_density slice of 4": lambda: plots.plot_density(*fitted("gaussian", 4), ["b", "d"]),
    "plot_boundary iforest": lambda: plots.plot_boundary(*fitted("iforest", 2)),
    "plot_boundary knn slice": lambda: plots.plot_boundary(*fitted("knn", 3), ["a", "c"]),
    "bench.plot_results 32 datasets": bench_figures(32),
    "bench.plot_results 2 datasets": bench_figures(2),
    "bench.plot_results 1 dataset": bench_figures(1),
}


def test_every_public_plot_function_has_a_case():
    public = {name for name in plots.__all__ if name.startswith("plot_")}
    covered = {case.split()[0] for case in CASES}
    assert public | {"plot_swap_grid", "plot_trees", "bench.plot_results"} == covered


def inside(box, frame, slack: float = 1.0) -> bool:
    return (
        box.x0 >= frame.x0 - slack
        and box.y0 >= frame.y0 - slack
        and box.x1 <= frame.x1 + slack
        and box.y1 <= frame.y1 + slack
    )


def tick_labels(fig: Figure) -> list[list[Text]]:
    """The unrotated, non-empty tick labels of each axis that are drawn (in view)."""
    groups = []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for labels in (axis.get_majorticklabels(), axis.get_minorticklabels()):
                shown = [t for t in labels if t.get_visible() and t.get_text()]
                groups.append([t for t in shown if t.get_rotation() == 0])
    return groups


def check_fits(fig: Figure, path) -> None:
    SAVE(fig, path)
    width, height = (fig.get_size_inches() * 120).round()  # save_figure writes 120 dpi
    with Image.open(path) as img:
        assert abs(img.size[0] - width) <= 1 and abs(img.size[1] - height) <= 1
        assert img.convert("RGBA").getpixel((0, 0)) == (255, 255, 255, 255)  # white, opaque
    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # runs the layout as saving did
    renderer = canvas.get_renderer()
    frame = fig.bbox
    tight = fig.get_tightbbox(renderer)  # inches
    assert inside(tight.transformed(fig.dpi_scale_trans), frame), (
        f"drawn content {tight.bounds} runs off the {fig.get_size_inches()} inch canvas"
    )
    # matplotlib keeps tick labels out of view, not drawn; the tight box holds the drawn ones
    ticks = {
        id(t)
        for ax in fig.axes
        for axis in (ax.xaxis, ax.yaxis)
        for tick in (*axis.majorTicks, *axis.minorTicks)
        for t in (tick.label1, tick.label2)
    }
    for text in fig.findobj(Text):
        if not text.get_visible() or not text.get_text() or id(text) in ticks:
            continue
        box = text.get_window_extent(renderer)
        assert inside(box, frame), f"text {text.get_text()!r} at {box.bounds} is off the canvas"
    for group in tick_labels(fig):
        boxes = sorted((t.get_window_extent(renderer) for t in group), key=lambda b: b.x0)
        for a, b in itertools.pairwise(boxes):
            overlap_x = min(a.x1, b.x1) - max(a.x0, b.x0)
            overlap_y = min(a.y1, b.y1) - max(a.y0, b.y0)
            assert overlap_x <= 1 or overlap_y <= 1, "tick labels overlap"


@pytest.mark.parametrize("case", CASES)
def test_figure_fits_its_canvas(case, tmp_path, monkeypatch):
    draw = CASES[case]
    result = draw(monkeypatch, tmp_path) if case.startswith("bench.") else draw()
    figures = result if isinstance(result, list) else [result]
    assert figures
    for i, fig in enumerate(figures):
        check_fits(fig, tmp_path / f"{i}.png")
