"""Open-set recognition with the ``confidence`` detector: digits and MNIST, 0-5 known, 6-9 not.

    python benchmarks/open_set.py [--suite digits mnist] [--seeds 0 1 2] [--threads 1]

Prints one markdown table per suite. Protocols (labels of the known classes only in training):
  digits  sklearn's 8x8 digits; a stratified 70 % of the digits 0-5 trains, the other 30 %
          plus every 6-9 tests. Models: the built-in MLP on the 64 pixels, the same with
          temperature="auto", the built-in CNN on the 8x8 images, and LogisticRegression
          (msp and entropy only). Columns: accuracy on the known test rows and ROC-AUC of
          unknown (6-9) vs known test rows, mean over the seeds.
  mnist   the MNIST test set (../shared/datasets/mnist, 10,000 28x28 images), same split,
          with the CNN: ROC-AUC per score on 6-9; then outlier exposure with half of the 6s
          as known anomalies (X_outliers), and the ROC-AUC on 7-9 with and without it.
One network is fitted per model and seed; the scores are compared on it with
``set_params(score_method=...)``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from anomalia import make_detector
from anomalia.datasets import read_mnist

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "datasets" / "mnist"
SCORES = ("msp", "entropy", "energy", "mahalanobis")
KNOWN = 6  # digits 0-5 are the known classes


def split(labels, seed, train_share=0.7):
    """Stratified train rows of the known digits; test rows = the other known + all unknown."""
    rng = np.random.default_rng(seed)
    train = []
    for digit in range(KNOWN):
        rows = rng.permutation(np.flatnonzero(labels == digit))
        train.append(rows[: round(train_share * len(rows))])
    train = np.sort(np.concatenate(train))
    test = np.setdiff1d(np.arange(len(labels)), train)
    return train, test


def evaluate(det, X_test, y_test, unknown):
    """Accuracy on the known test rows and ROC-AUC of every score the detector supports."""
    known = ~unknown
    accuracy = float(
        np.mean(det.classes_[det.predict_proba(X_test[known]).argmax(1)] == y_test[known])
    )
    aucs = {}
    for score in SCORES if det.classifier is None else ("msp", "entropy"):
        aucs[score] = roc_auc_score(
            unknown, det.set_params(score_method=score).anomaly_score(X_test)
        )
    return accuracy, aucs


def digits(seeds):
    data = load_digits()
    X, images, y = data.data / 16, data.images[:, None] / 16, data.target
    models = {
        "MLP (64 pixels)": (X, {}),
        "MLP, temperature=auto": (X, {"temperature": "auto"}),
        "CNN (8x8 images)": (images, {}),
        "LogisticRegression": (X, {"classifier": LogisticRegression(max_iter=2000)}),
    }
    rows = []
    for seed in seeds:
        train, test = split(y, seed)
        unknown = y[test] >= KNOWN
        for model, (data_, params) in models.items():
            start = time.perf_counter()
            det = make_detector("confidence", random_state=seed, **params)
            det.fit(data_[train], y[train])
            fit_s = time.perf_counter() - start
            accuracy, aucs = evaluate(det, data_[test], y[test], unknown)
            rows.append(
                {"model": model, "seed": seed, "accuracy": accuracy, **aucs, "fit_s": fit_s}
            )
            shown = " ".join(f"{k} {v:.3f}" for k, v in aucs.items())
            print(
                f"  seed {seed} {model:>22}: accuracy {accuracy:.3f} {shown} ({fit_s:.1f}s)",
                flush=True,
            )
    df = pd.DataFrame(rows)
    table = df.groupby("model", sort=False)[["accuracy", *SCORES, "fit_s"]].mean()
    print(f"\nROC-AUC of unknown digits 6-9 vs known 0-5, mean over seeds {list(seeds)}\n")
    print(table.to_markdown(floatfmt=".3f"), flush=True)


def mnist(seeds):
    images, y = read_mnist(MNIST / "t10k-images-idx3-ubyte.gz", MNIST / "t10k-labels-idx1-ubyte.gz")
    images = images[:, None] / 255.0
    rows = []
    for seed in seeds:
        train, test = split(y, seed)
        # half of the 6s become known anomalies for outlier exposure; they leave the test set
        sixes = np.random.default_rng(seed).permutation(np.flatnonzero(y == 6))
        exposed = np.sort(sixes[: len(sixes) // 2])
        test = np.setdiff1d(test, exposed)
        unknown = y[test] >= KNOWN
        later = y[test] != 6  # test rows of 0-5 and 7-9: the digits never exposed
        for label, kwargs in (("plain", {}), ("OE on 6", {"X_outliers": images[exposed]})):
            start = time.perf_counter()
            det = make_detector("confidence", random_state=seed)
            det.fit(images[train], y[train], **kwargs)
            fit_s = time.perf_counter() - start
            accuracy, aucs = evaluate(det, images[test], y[test], unknown)
            _, aucs_79 = evaluate(det, images[test][later], y[test][later], unknown[later])
            for score in SCORES:
                rows.append(
                    {
                        "seed": seed,
                        "training": label,
                        "score": score,
                        "accuracy": accuracy,
                        "auc 6-9": aucs[score],
                        "auc 7-9": aucs_79[score],
                        "fit_s": fit_s,
                        "epochs": det.n_epochs_,
                    }
                )
            print(
                f"  seed {seed} {label}: accuracy {accuracy:.3f}, {det.n_epochs_} epochs, "
                f"{fit_s:.0f}s; 7-9: " + " ".join(f"{k} {v:.3f}" for k, v in aucs_79.items()),
                flush=True,
            )
    df = pd.DataFrame(rows)
    mean = df.groupby(["training", "score"], sort=False)[["auc 6-9", "auc 7-9"]].mean()
    table = mean.loc["plain"].copy()
    table["auc 7-9, OE on 6"] = mean.loc["OE on 6"]["auc 7-9"]
    table["gain on 7-9"] = table["auc 7-9, OE on 6"] - table["auc 7-9"]
    acc = df.groupby("training")["accuracy"].mean()
    print(
        f"\nMNIST, CNN, mean over seeds {list(seeds)}; known-class accuracy: plain "
        f"{acc['plain']:.3f}, OE {acc['OE on 6']:.3f}\n"
    )
    print(table.to_markdown(floatfmt=".3f"), flush=True)


SUITES = {"digits": digits, "mnist": mnist}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", nargs="+", default=list(SUITES), choices=list(SUITES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for suite in args.suite:
        print(f"## {suite}", flush=True)
        start = time.perf_counter()
        SUITES[suite](args.seeds)
        print(f"\n{suite}: {time.perf_counter() - start:.0f}s in all\n", flush=True)


if __name__ == "__main__":
    main()
