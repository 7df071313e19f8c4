"""Four detectors' decision boundaries side by side on the same 2-D data.

    python benchmarks/boundaries.py [--out benchmarks/results/boundaries.png]

The data need no download: scikit-learn's two moons (400 normal rows, noise 0.08) and 20
outliers drawn uniformly over the box around them, at least 0.25 from every moon row.
``gaussian``, ``ocsvm``, ``iforest`` and ``default`` are fitted on the normal rows only,
with their default threshold (the 99th percentile of the training scores), and drawn by
:func:`anomalia.plots.plot_boundary` in one panel each: the anomaly score as colour, the
boundary ``score = threshold_`` as a black line, every row as a dot, flagged rows as
crosses, the planted outliers ringed (a ring without a cross: an outlier missed). Each
title counts the planted outliers flagged and the normal rows flagged (false alarms). The
models have exactly the two features drawn, so every map is exact, not a slice.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.datasets import make_moons

import anomalia
from anomalia.plots import PALETTE, plot_boundary, save_figure

ROOT = Path(__file__).resolve().parents[1]
DETECTORS = ("gaussian", "ocsvm", "iforest", "default")


def moons_with_outliers(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Two moons (label 0) and 20 outliers (label 1), as a table x1, x2: points drawn
    uniformly over the box around the moons, kept when 0.25 or more from every moon row."""
    normal, _ = make_moons(n_samples=400, noise=0.08, random_state=seed)
    rng = np.random.default_rng(seed)
    candidates = rng.uniform([-1.4, -0.9], [2.4, 1.4], size=(400, 2))
    gap = np.sqrt(((candidates[:, None, :] - normal[None, :, :]) ** 2).sum(-1)).min(axis=1)
    outliers = candidates[gap > 0.25][:20]  # off the moons: a point on them is no outlier
    X = np.vstack([normal, outliers])
    y = np.r_[np.zeros(len(normal), int), np.ones(len(outliers), int)]
    return pd.DataFrame(X, columns=["x1", "x2"]), y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/boundaries.png")
    args = parser.parse_args()

    data, y = moons_with_outliers()
    fig = Figure(figsize=(12.5, 10.5), dpi=120, layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    for ax, name in zip(axes, DETECTORS, strict=True):
        det = anomalia.make_detector(name, **({"random_state": 0} if name != "ocsvm" else {}))
        det.fit(data[y == 0])
        flagged = det.anomaly_score(data) > det.threshold_
        caught, alarms = int(flagged[y == 1].sum()), int(flagged[y == 0].sum())
        title = (
            f"{name}: {caught} of {int(y.sum())} planted outliers flagged,\n"
            f"{alarms} of {int((y == 0).sum())} normal rows (false alarms)"
        )
        plot_boundary(det, data, name=name, title=title, ax=ax, legend=False)
        planted = data[y == 1]  # a ring round each, so a missed one (no cross) shows too
        ax.scatter(
            planted["x1"],
            planted["x2"],
            s=190,
            facecolors="none",
            edgecolors=PALETTE[3],
            linewidths=1.8,
            zorder=5,
            label="planted outlier",
        )
        print(f"{name:>9}: threshold {det.threshold_:.4g}; {caught} outliers, {alarms} alarms")
    handles, labels = axes[0].get_legend_handles_labels()
    labels = [label.split(": score = threshold")[0] for label in labels]  # one per panel
    fig.legend(handles, labels, loc="outside lower center", ncols=4, frameon=False)
    fig.suptitle(
        "Two moons, four detectors: the anomaly score (colour) and the decision boundary, "
        "score = threshold_ (black line)\nfitted on the 400 normal rows, drawn with all 420; "
        "exact maps (the models have just these 2 features)"
    )
    out = save_figure(fig, args.out)
    shrink_png(out)
    print(f"wrote {out}")


def shrink_png(path: Path) -> None:
    """Rewrite the PNG with a 256-colour palette: a third of the bytes (four smooth colour
    maps compress poorly as RGBA), no visible change."""
    from PIL import Image

    tmp = path.with_name(f".{path.name}.tmp")
    with Image.open(path) as img:
        small = img.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=0)
    small.save(tmp, format="PNG", optimize=True)
    tmp.replace(path)


if __name__ == "__main__":
    main()
