"""Clean versus polluted training: ROC-AUC as the share of anomalies in training grows.

    python benchmarks/pollution.py [--datasets cardiotocography landsat spambase]
        [--shares 0 1 2 5 10 20] [--seeds 0 1 2] [--max-rows 5000] [--threads 1]

Data: ADBench ``.npz`` files in ``anomalia.datasets.data_dir() / "adbench"`` (read-only,
nothing is copied). A dataset over ``--max-rows`` rows is subsampled to that many, stratified
by label, with the seed of the run (landsat: 6,435 -> 5,000 rows).

Protocol, per dataset and seed:

* The normal rows are split in half at random (seeded): the training normals and the test
  normals. The anomalies are split in half the same way: the *test* anomalies and the
  *pool* of anomalies that may enter training.
* The test set is the test normals plus the test anomalies, the same for every share, so the
  curves compare one test set; no anomaly that can enter training is ever in it.
* For a share ``s`` of anomalies in training (0, 1, 2, 5, 10, 20 %) the training set is the
  training normals plus the first ``k = round(s * n_normal_train / (1 - s))`` anomalies of
  the pool (shuffled once per seed, so a larger share adds anomalies to those of a smaller
  one). When the pool holds fewer than ``k``, all of it is used and the share is reported as
  capped (in the printed lines and the panel's title).
* Every detector is fitted with its defaults (one configuration, none tuned;
  ``random_state`` = seed, ``contamination`` left at its default: ROC-AUC does not depend on
  the threshold) and scored on the test set (ROC-AUC; anomaly = 1).

``anomalia.split.train_dev_test_split(protocol="polluted")`` is not used: its test set
changes with ``pollution`` (the anomalies it puts in training leave dev and test), and this
comparison needs one test set for every share.

Writes ``benchmarks/results/pollution.csv`` (one row per dataset, detector, share and seed)
and ``benchmarks/results/pollution.png`` (one panel per dataset and one for the mean), both
only when every run has finished, and prints the mean ROC-AUC per detector and share (mean
over datasets and seeds) as a markdown table. Runs on ``--threads`` BLAS / OpenMP / torch
threads (default 1).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

import anomalia
from anomalia.bench import adbench_datasets, load_npz
from anomalia.datasets import data_dir
from anomalia.plots import _curve_style, save_figure

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
#: Detector label (as in the CSV and the legend) -> (registry name, parameters).
DETECTORS: dict[str, tuple[str, dict]] = {
    "gaussian": ("gaussian", {}),
    "gaussian(support_fraction=0.5)": ("gaussian", {"support_fraction": 0.5}),
    "ocsvm": ("ocsvm", {}),
    "iforest": ("iforest", {}),
    "knn": ("knn", {}),
    "ae": ("ae", {}),
    "default": ("default", {}),
}
DATASETS = ("cardiotocography", "landsat", "spambase")
SHARES = (0.0, 0.01, 0.02, 0.05, 0.10, 0.20)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


class PollutionSplit(NamedTuple):
    """Row indices of one seed's split: one test set, one training set per share.

    ``train[s]`` holds the training normals and ``n_anomalies[s]`` anomalies of the pool;
    ``capped[s]`` is True when the pool held fewer anomalies than the share ``s`` asks for.
    """

    test: NDArray[np.int64]
    train: dict[float, NDArray[np.int64]]
    n_anomalies: dict[float, int]
    capped: dict[float, bool]


def pollution_split(y: NDArray, shares: tuple[float, ...], seed: int) -> PollutionSplit:
    """Split rows as the module docstring's protocol says: normals and anomalies each in
    halves (seeded), one test set, and per share the training normals plus anomalies of the
    other half of the anomalies, ``round(s * n_normal_train / (1 - s))`` of them (capped)."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    normals = rng.permutation(np.flatnonzero(y == 0))
    anomalies = rng.permutation(np.flatnonzero(y == 1))
    if len(normals) < 2 or len(anomalies) < 2:
        raise ValueError("need at least 2 normal rows and 2 anomalies")
    train_normals = normals[: len(normals) // 2]
    n_test_anomalies = (len(anomalies) + 1) // 2
    test = np.sort(np.r_[normals[len(normals) // 2 :], anomalies[:n_test_anomalies]])
    pool = anomalies[n_test_anomalies:]
    train, n_anomalies, capped = {}, {}, {}
    for s in shares:
        if not 0.0 <= s < 1.0:
            raise ValueError(f"a share must be in [0, 1), got {s}")
        wanted = round(s * len(train_normals) / (1 - s))
        k = min(wanted, len(pool))
        train[s] = np.sort(np.r_[train_normals, pool[:k]]).astype(np.int64)
        n_anomalies[s], capped[s] = k, k < wanted
    return PollutionSplit(test.astype(np.int64), train, n_anomalies, capped)


def subsample(y: NDArray, max_rows: int, seed: int) -> NDArray[np.int64]:
    """Every row when there are at most ``max_rows``, else ``max_rows`` of them drawn with
    ``seed``, stratified by label; indices sorted."""
    if len(y) <= max_rows:
        return np.arange(len(y))
    keep, _ = train_test_split(
        np.arange(len(y)), train_size=max_rows, stratify=y, random_state=seed
    )
    return np.sort(keep)


def limit_threads(n: int) -> None:
    """``n`` threads for torch, faiss (when installed) and every BLAS / OpenMP pool."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    try:
        import faiss

        faiss.omp_set_num_threads(n)
    except ImportError:
        pass
    threadpool_limits(n)


def plot(df: pd.DataFrame, sizes: dict[str, str], capped: dict[str, str]) -> object:
    """One panel per dataset and one for the mean: ROC-AUC against the share in training."""
    from matplotlib.figure import Figure

    names = list(dict.fromkeys(df.detector))
    panels = [*sizes, "mean"]
    ncols = 2
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(12.5, 4.1 * nrows), dpi=120, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    shares = sorted(df.share.unique())
    x = np.arange(len(shares))  # evenly spaced: 0, 1, 2, 5, 10, 20 % read apart
    handles = []
    for ax, panel in zip(axes, panels, strict=False):
        part = df if panel == "mean" else df[df.dataset == panel]
        mean = part.groupby(["detector", "share"]).roc_auc.mean().unstack()
        for i, name in enumerate(names):
            color, style = _curve_style(i)
            (line,) = ax.plot(
                x, mean.loc[name, shares].to_numpy(), color=color, linestyle=style, lw=1.8,
                marker=MARKERS[i % len(MARKERS)], ms=6, label=name,
            )  # fmt: skip
            if panel == "mean":
                handles.append(line)
        if panel == "mean":
            n_seeds = df.seed.nunique()
            title = f"mean over {len(sizes)} datasets x {n_seeds} seeds"
        else:
            title = f"{panel}: {sizes[panel]}" + (f"\n{capped[panel]}" if panel in capped else "")
        ax.set_title(title, fontsize="medium", weight="bold" if panel == "mean" else "normal")
        ax.set_xticks(x, [f"{100 * s:g}" for s in shares])
        ax.set_xlabel("share of anomalies in training (%)")
        ax.set_ylabel("ROC-AUC (test set)")
        ax.grid(True, alpha=0.3, linewidth=0.6)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    fig.legend(
        handles, [h.get_label() for h in handles], loc="outside right upper",
        fontsize="small", frameon=False, handlelength=3.0, labelspacing=0.9,
        title="detector (defaults)",
    )  # fmt: skip
    fig.suptitle(
        "Clean versus polluted training: ROC-AUC on a fixed test set as anomalies are "
        "mixed into training"
    )
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument(
        "--shares", type=float, nargs="+", default=[100 * s for s in SHARES],
        help="shares of anomalies in training, in percent",
    )  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--detectors", nargs="+", default=list(DETECTORS), choices=DETECTORS)
    parser.add_argument("--max-rows", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out-dir", type=Path, default=RESULTS, help="where the CSV and PNG go")
    args = parser.parse_args()
    limit_threads(args.threads)
    shares = tuple(sorted(s / 100 for s in args.shares))
    files = adbench_datasets(data_dir() / "adbench")
    rows, sizes, capped = [], {}, {}
    start_all = time.perf_counter()
    for dataset in args.datasets:
        X_all, y_all = load_npz(files[dataset])
        for seed in args.seeds:
            keep = subsample(y_all, args.max_rows, seed)
            X, y = X_all[keep], y_all[keep]
            size = f"{len(y):,} rows x {X.shape[1]} features, {int(y.sum()):,} anomalies"
            if len(keep) < len(y_all):
                size += f"\n(subsampled from {len(y_all):,} rows, stratified)"
            sizes[dataset] = size
            split = pollution_split(y, shares, seed)
            for s in shares:
                if split.capped[s]:
                    n = len(split.train[s])
                    note = f"capped: {100 * s:g} % asked, {100 * split.n_anomalies[s] / n:.1f} %"
                    capped.setdefault(dataset, note)
                    print(f"  {dataset} seed {seed}: {note} ({split.n_anomalies[s]} anomalies)")
            X_test, y_test = X[split.test], y[split.test]
            for s in shares:
                train = split.train[s]
                for label in args.detectors:
                    name, params = DETECTORS[label]
                    t0 = time.perf_counter()
                    det = anomalia.make_detector(name, random_state=seed, **params)
                    det.fit(X[train])
                    auc = roc_auc_score(y_test, det.anomaly_score(X_test))
                    rows.append(
                        {
                            "dataset": dataset,
                            "detector": label,
                            "share": s,
                            "seed": seed,
                            "roc_auc": auc,
                            "n_train": len(train),
                            "n_train_anomalies": split.n_anomalies[s],
                            "capped": split.capped[s],
                            "n_test": len(split.test),
                            "n_test_anomalies": int(y_test.sum()),
                            "seconds": time.perf_counter() - t0,
                        }
                    )
                    print(
                        f"{dataset:>16} seed {seed} share {100 * s:4g} % {label:>30}  "
                        f"ROC-AUC {auc:.3f}  {rows[-1]['seconds']:6.1f}s",
                        flush=True,
                    )
    df = pd.DataFrame(rows)
    table = df.groupby(["detector", "share"], sort=False).roc_auc.mean().unstack()
    table.columns = [f"{100 * s:g} %" for s in table.columns]
    table["drop 0 -> max"] = table.iloc[:, 0] - table.iloc[:, -1]
    print(f"\nmean ROC-AUC over {df.dataset.nunique()} datasets x {df.seed.nunique()} seeds")
    print(table.to_markdown(floatfmt=".3f"))
    per_set = df.groupby(["dataset", "detector", "share"], sort=False).roc_auc.mean().unstack()
    per_set.columns = [f"{100 * s:g} %" for s in per_set.columns]
    print("\nper dataset (mean over seeds)")
    print(per_set.reset_index().to_markdown(index=False, floatfmt=".3f"))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out_dir / "pollution.csv", index=False)
    save_figure(plot(df, sizes, capped), args.out_dir / "pollution.png")
    minutes = (time.perf_counter() - start_all) / 60
    print(f"wrote pollution.csv and pollution.png to {args.out_dir} ({minutes:.1f} min)")


if __name__ == "__main__":
    main()
