"""Choosing the ``default`` detector: member scores saved once, ensembles combined offline.

For every dataset, protocol and seed, fit each candidate member on the protocol's training
set and save its training and test scores; ``--combine`` then evaluates every ensemble of
members with every normalisation from the saved scores, exactly as
:class:`anomalia.detectors.ensemble.EnsembleDetector` would compute them.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/tune_default.py --protocol clean --out /tmp/tune
    .venv/bin/python benchmarks/tune_default.py --combine --out /tmp/tune
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np

MEMBERS = {
    "knn5": ("knn", {}),
    "knn10": ("knn", {"n_neighbors": 10}),
    "knn20": ("knn", {"n_neighbors": 20}),
    "knn10mean": ("knn", {"n_neighbors": 10, "method": "mean"}),
    "knn5s": ("knn", {"max_samples": 10000}),
    "knn10s": ("knn", {"n_neighbors": 10, "max_samples": 10000}),
    "knn20s": ("knn", {"n_neighbors": 20, "max_samples": 10000}),
    "knn10sub": ("knn", {"n_neighbors": 10, "max_samples": 1000}),
    "knn5sub": ("knn", {"n_neighbors": 5, "max_samples": 1000}),
    "knn5mean_s": ("knn", {"method": "mean", "max_samples": 10000}),
    "rgauss50": ("gaussian", {"support_fraction": 0.5, "score_method": "distance"}),
    "rgauss50_1": (
        "gaussian",
        {"support_fraction": 0.5, "score_method": "distance", "max_steps": 1},
    ),
    "rgauss50_3": (
        "gaussian",
        {"support_fraction": 0.5, "score_method": "distance", "max_steps": 3},
    ),
    "rgauss50all": (
        "gaussian",
        {"support_fraction": 0.5, "score_method": "distance", "scale_from": "all"},
    ),
    "rgauss75": ("gaussian", {"support_fraction": 0.75, "score_method": "distance"}),
    "iforest": ("iforest", {}),
    "iforest500": ("iforest", {"n_estimators": 500}),
    "gaussian": ("gaussian", {}),
    "ae": ("ae", {}),
}


def score(args: argparse.Namespace) -> None:
    import torch

    import anomalia
    from anomalia import bench

    torch.set_num_threads(1)
    names = args.members or list(MEMBERS)
    for dataset, path in bench.adbench_datasets(args.data_dir).items():
        X, y = bench.load_npz(path)
        for seed in args.seeds:
            file = args.out / f"{args.protocol}_{dataset}_{seed}.npz"
            saved = dict(np.load(file)) if file.exists() else {}
            todo = [m for m in names if f"{m}_test" not in saved]
            if not todo:
                continue
            X_train, X_test, _, y_test = bench.split(X, y, args.protocol, seed)
            saved["y_test"] = y_test
            for m in todo:
                name, params = MEMBERS[m]
                seeded = {} if name == "gaussian" else {"random_state": seed}
                det = anomalia.make_detector(name, **params, **seeded)
                t0 = time.perf_counter()
                saved[f"{m}_train"] = det._fit_scored(X_train)
                saved[f"{m}_test"] = det.anomaly_score(X_test)
                saved[f"{m}_seconds"] = np.array(time.perf_counter() - t0)
                print(f"{args.protocol} {dataset:<18} {seed} {m:<10} "
                      f"{float(saved[f'{m}_seconds']):7.1f}s", flush=True)  # fmt: skip
            np.savez(file, **saved)


def combine(args: argparse.Namespace) -> None:
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    def norm(train, test, how):
        if how == "zscore":
            c, s = train.mean(), train.std()
        elif how == "robust":
            q1, c, q3 = np.quantile(train, [0.25, 0.5, 0.75])
            s = q3 - q1
        else:
            return np.searchsorted(np.sort(train), test, side="right") / len(train)
        return (test - c) / (s if s > 0 else 1.0)

    rows = []
    for file in sorted(args.out.glob("*.npz")):
        protocol, rest = file.stem.split("_", 1)
        dataset, seed = rest.rsplit("_", 1)
        d = dict(np.load(file))
        for m in ("knn5", "knn10", "knn20"):  # max_samples=10000 changes nothing under 10,000 rows
            if f"{m}s_test" not in d and f"{m}_test" in d and len(d[f"{m}_train"]) <= 10000:
                d[f"{m}s_train"], d[f"{m}s_test"] = d[f"{m}_train"], d[f"{m}_test"]
        have = [m for m in MEMBERS if f"{m}_test" in d]
        y = d["y_test"]
        combos = [(m,) for m in have]
        for r in (2, 3, 4):
            combos += list(itertools.combinations(have, r))
        for combo in combos:
            for how in ("zscore", "robust", "rank") if len(combo) > 1 else ("zscore",):
                s = np.mean([norm(d[f"{m}_train"], d[f"{m}_test"], how) for m in combo], axis=0)
                rows.append((protocol, dataset, int(seed), "+".join(combo), how,
                             roc_auc_score(y, s)))  # fmt: skip
    df = pd.DataFrame(rows, columns=["protocol", "dataset", "seed", "members", "norm", "auc"])
    per = df.groupby(["protocol", "members", "norm", "dataset"]).auc.mean()
    mean = per.groupby(["protocol", "members", "norm"]).agg(["mean", "count"]).reset_index()
    wide = mean.pivot_table(index=["members", "norm"], columns="protocol", values="mean")
    wide["both"] = wide.mean(axis=1)
    counts = mean.groupby(["members", "norm"])["count"].min()
    wide["n"] = counts
    print(wide.sort_values("both", ascending=False).head(args.top).round(4).to_string())


def main() -> None:
    from anomalia.bench import default_data_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--protocol", choices=["unsup", "clean"], default="clean")
    ap.add_argument("--members", nargs="*", default=None)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--data-dir", type=Path, default=default_data_dir())
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--combine", action="store_true")
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    combine(args) if args.combine else score(args)


if __name__ == "__main__":
    main()
