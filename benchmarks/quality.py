"""Quality of the auto-encoder detectors on breast cancer, digits and MNIST (fixed seeds).

    python benchmarks/quality.py [--suite breast-cancer digits mnist] [--threads 1]

Prints one markdown table per suite (ROC-AUC) and writes CSVs to benchmarks/results/.
Protocols (clean: train on normal rows only):
  breast-cancer  half of the benign rows train; the rest plus all malignant rows test
  digits         one-vs-rest: each digit normal in turn; half of it trains; the other
                 half plus every other digit tests (8x8 images)
  mnist          MNIST test set in ../shared/datasets/mnist, one-vs-rest: 80 % of one digit
                 trains; the other 20 % plus all other digits test (28x28 images)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

import anomalia
from anomalia.datasets import data_dir, load, read_mnist

ROOT = Path(__file__).resolve().parents[1]
MNIST = data_dir() / "mnist"


def one_vs_rest(images, target, digit, train_share, seed):
    rng = np.random.default_rng(seed)
    own = rng.permutation(np.flatnonzero(target == digit))
    n_train = round(train_share * len(own))
    test = np.r_[own[n_train:], np.flatnonzero(target != digit)]
    return images[own[:n_train]], images[test], (target[test] != digit).astype(int)


def run(detectors, jobs):
    """jobs: iterable of (group, X_train, X_test, y_test); returns rows."""
    rows = []
    for group, X_train, X_test, y_test in jobs:
        for name in detectors:
            start = time.perf_counter()
            spec, params = SPECS.get(name, (name, {}))
            det = anomalia.make_detector(spec, **params)
            if "random_state" in det.get_params():
                det.set_params(random_state=0)
            det.fit(X_train)
            fit_s = time.perf_counter() - start
            auc = roc_auc_score(y_test, det.anomaly_score(X_test))
            rows.append({"group": group, "detector": name, "roc_auc": auc, "fit_seconds": fit_s})
            print(f"  {group:>14} {name:>8}  ROC-AUC {auc:.4f}  fit {fit_s:.1f}s", flush=True)
    return pd.DataFrame(rows)


def breast_cancer(seeds=(0, 1, 2)):
    X, y = load("breast-cancer")
    for seed in seeds:
        rng = np.random.default_rng(seed)
        normal = rng.permutation(np.flatnonzero(y == 0))
        half = len(normal) // 2
        test = np.r_[normal[half:], np.flatnonzero(y == 1)]
        yield f"seed {seed}", X[normal[:half]], X[test], y[test]


def digits():
    ds = anomalia.datasets.load_dataset("digits")
    images, target = ds.X.to_numpy().reshape(-1, 8, 8), ds.labels
    for digit in range(10):
        yield f"digit {digit}", *one_vs_rest(images, target, digit, 0.5, seed=0)


def mnist():
    images, labels = read_mnist(
        MNIST / "t10k-images-idx3-ubyte.gz", MNIST / "t10k-labels-idx1-ubyte.gz"
    )
    for digit in range(10):
        yield f"digit {digit}", *one_vs_rest(images, labels, digit, 0.8, seed=0)


#: Labels of configured detectors -> (registered name, parameters).
SPECS = {"conv-ae+codes": ("conv-ae", {"code_neighbors": 2, "code_weight": 3.0})}

SUITES = {
    "breast-cancer": (breast_cancer, ["gaussian", "ocsvm", "iforest", "ae", "dae", "vae", "vqvae"]),
    "digits": (digits, ["conv-ae", "vae", "vqvae"]),
    "mnist": (mnist, ["conv-ae", "vae", "vqvae", "conv-ae+codes"]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", nargs="+", default=list(SUITES), choices=list(SUITES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--detectors", nargs="+", help="Run only these (default: per suite).")
    parser.add_argument("--tag", default="", help="Suffix of the result CSV names.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    for suite in args.suite:
        jobs, names = SUITES[suite]
        names = args.detectors or names
        print(f"## {suite}", flush=True)
        df = run(names, jobs())
        table = df.pivot(index="group", columns="detector", values="roc_auc")[names]
        table.loc["mean"] = table.mean()
        print(table.to_markdown(floatfmt=".3f"), flush=True)
        df.to_csv(out_dir / f"quality_{suite}{args.tag}.csv", index=False)  # suite complete
        print(f"total fit time {df.fit_seconds.sum():.0f}s\n", flush=True)


if __name__ == "__main__":
    main()
