"""Held-out check of ``default``: real datasets that took no part in choosing it.

Writes ADBench-format ``.npz`` files (arrays ``X``, ``y`` with 1 = anomaly) built from
``../shared/datasets`` and scikit-learn into ``--out`` (outside the repository), for
``anomalia bench --data-dir``:

* ``creditcard``: the credit-card fraud sample as it is (492 frauds in 5,412 rows).
* ``nsl-kdd``: ``KDDTrain+_20Percent`` (one-hot, 119 columns), every normal connection and
  attacks drawn (seed 0) to 5 % of the rows.
* ``kddcup99``: the 10 % KDD Cup 99 file, every normal connection and attacks drawn (seed 0)
  to 2 % of the rows.
* ``breast-cancer``: scikit-learn's Wisconsin set (malignant = anomaly, 37 %).

    .venv/bin/python benchmarks/holdout.py --out /tmp/anomalia-holdout
    OMP_NUM_THREADS=1 anomalia bench --data-dir /tmp/anomalia-holdout \\
        --out benchmarks/results/holdout.csv --timeout 120 --jobs 2 -d default -d knn ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from anomalia import datasets

SHARED = datasets.data_dir()


def _thin_anomalies(X: np.ndarray, y: np.ndarray, share: float) -> tuple[np.ndarray, np.ndarray]:
    """Every normal row and anomalies drawn (seed 0) to ``share`` of the result."""
    rng = np.random.default_rng(0)
    X, y = np.asarray(X, dtype=float), np.asarray(y)
    normal, anomalous = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    n_anom = round(share * len(normal) / (1 - share))
    keep = np.sort(np.r_[normal, rng.choice(anomalous, n_anom, replace=False)])
    return X[keep], y[keep]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/anomalia-holdout"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sets = {}
    cc = datasets.read_creditcard(SHARED / "creditcard" / "creditcard_sample.csv")
    sets["1_creditcard"] = (cc.X, cc.y)
    nsl = datasets.read_nsl_kdd(SHARED / "nsl-kdd" / "KDDTrain+_20Percent.txt")
    sets["2_nsl-kdd"] = _thin_anomalies(nsl.X, nsl.y, 0.05)
    kdd = datasets.read_kddcup99(SHARED / "kddcup99" / "kddcup.data_10_percent.gz")
    sets["3_kddcup99"] = _thin_anomalies(kdd.X, kdd.y, 0.02)
    sets["4_breast-cancer"] = datasets.load("breast-cancer")
    for name, (X, y) in sets.items():
        np.savez_compressed(args.out / f"{name}.npz", X=np.asarray(X, float), y=np.asarray(y))
        print(f"{name:<18} {len(y):>7} rows {X.shape[1]:>4} features {int(np.sum(y)):>6} anomalies")


if __name__ == "__main__":
    main()
