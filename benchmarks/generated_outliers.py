"""Generated outliers for the ``confidence`` detector (Lee et al. 2018) on digits and MNIST.

    python benchmarks/generated_outliers.py [--seeds 0 1 2] [--mnist-train 1000]

Open-set recognition, classes 0-5 known, 6-9 unknown. Each seed draws a stratified 70 % of the
known rows for training; the test set is the other known rows plus every 7, 8 and 9. Three
ways to train the same detector (default parameters, ``random_state=seed``):

- ``none``: the classifier alone;
- ``generated``: ``outliers="generate"``, exposure to outliers from a boundary GAN trained
  jointly with a classifier (no anomaly seen);
- ``real (6)``: ``X_outliers`` = every 6 (outlier exposure with real anomalies; the 6s
  are not tested, so all three are scored on the unknown digits 7-9 only).

Datasets: scikit-learn's 8x8 digits and the MNIST test set (../shared/datasets/mnist, 28x28),
both as flat rows of pixels with the built-in MLP (its generator is an MLP too): the CNN and
its convolutional GAN take over ten minutes per MNIST fit on this shared CPU. MNIST training
rows are subsampled to ``--mnist-train`` (default 1,000 of about 4,200) and the test rows to
``--mnist-test`` per digit so the run fits in ~8 minutes on one thread. ROC-AUC (unknown 7-9
vs known test rows) for every score, mean ± std over the seeds. Writes
results/generated_outliers.csv and one PNG grid of generated outliers per dataset.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score

from anomalia import make_detector
from anomalia.datasets import data_dir, read_mnist
from anomalia.plots import plot_image_grid, save_figure

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MNIST = data_dir() / "mnist"
SCORES = ("msp", "entropy", "energy", "mahalanobis")
KNOWN = 6  # digits 0-5 are the known classes
EXPOSED = 6  # the digit given as real outliers


def split(labels, seed, n_train=None, n_test_per_class=None, train_share=0.7):
    """Train rows (known digits, stratified, optionally subsampled) and test rows (the other
    known rows and every 7-9, optionally at most ``n_test_per_class`` per digit)."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for digit in range(10):
        rows = rng.permutation(np.flatnonzero(labels == digit))
        if digit < KNOWN:
            cut = round(train_share * len(rows))
            train.append(rows[:cut])
            rows = rows[cut:]
        if digit != EXPOSED:
            test.append(rows[:n_test_per_class])
    train = np.concatenate(train)
    if n_train is not None and n_train < len(train):
        train = rng.permutation(train)[:n_train]
    return np.sort(train), np.sort(np.concatenate(test))


def load(name, args):
    """Pixels in [0, 1] as flat rows (the MLP), the image shape, and the subsampling."""
    if name == "digits":
        data = load_digits()
        return data.data / 16, data.target, (8, 8), {}
    images, y = read_mnist(MNIST / "t10k-images-idx3-ubyte.gz", MNIST / "t10k-labels-idx1-ubyte.gz")
    sizes = {"n_train": args.mnist_train, "n_test": args.mnist_test}
    return images.reshape(len(images), -1) / 255.0, y, images.shape[1:], sizes


def run(name, X, y, seeds, n_train=None, n_test=None):
    rows, grid = [], None
    sixes = np.flatnonzero(y == EXPOSED)
    for seed in seeds:
        train, test = split(y, seed, n_train, n_test)
        unknown = y[test] >= KNOWN
        for training, kwargs, fit_kw in (
            ("none", {}, {}),
            ("generated", {"outliers": "generate"}, {}),
            (f"real ({EXPOSED})", {}, {"X_outliers": X[sixes]}),
        ):
            start = time.perf_counter()
            det = make_detector("confidence", random_state=seed, **kwargs)
            det.fit(X[train], y[train], **fit_kw)
            fit_s = time.perf_counter() - start
            known = ~unknown
            pred = det.classes_[det.predict_proba(X[test][known]).argmax(1)]
            row = {
                "dataset": name,
                "training": training,
                "seed": seed,
                "n_train": len(train),
                "n_test": len(test),
                "accuracy": float(np.mean(pred == y[test][known])),
                "fit_s": fit_s,
            }
            for score in SCORES:
                s = det.set_params(score_method=score).anomaly_score(X[test])
                row[score] = roc_auc_score(unknown, s)
            if training == "generated":
                fake = det.sample_outliers(512, random_state=seed)
                row["msp_generated"] = float(det.predict_proba(fake).max(1).mean())
                row["msp_train"] = float(det.predict_proba(X[train]).max(1).mean())
                if grid is None:
                    grid = (fake[:32], X[train][:8])
            rows.append(row)
            shown = " ".join(f"{k} {row[k]:.3f}" for k in SCORES)
            print(f"  {name} seed {seed} {training:>9}: {shown} ({fit_s:.1f}s)", flush=True)
    return rows, grid


def draw_grid(name, shape, fake, real):
    fake = fake.reshape(len(fake), *shape)
    real = real.reshape(len(real), *shape)
    rows = [real, *(fake[i : i + 8] for i in range(0, len(fake), 8))]
    titles = ["training", *(f"generated {i + 1}-{i + 8}" for i in range(0, len(fake), 8))]
    fig = plot_image_grid(
        rows, titles, title=f"{name}: real training images and generated outliers (seed 0)"
    )
    return save_figure(fig, RESULTS / f"generated_outliers_{name}.png")


def summary(df):
    cols = [*SCORES, "accuracy", "fit_s"]
    g = df.groupby(["dataset", "training"], sort=False)[cols]
    mean, std = g.mean(), g.std()
    table = mean.copy().astype(object)
    for c in cols:
        table[c] = [f"{m:.3f} ± {s:.3f}" for m, s in zip(mean[c], std[c], strict=True)]
    table["fit_s"] = [f"{m:.0f}" for m in mean["fit_s"]]
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--suite", nargs="+", default=["digits", "mnist"])
    parser.add_argument("--mnist-train", type=int, default=1000)
    parser.add_argument("--mnist-test", type=int, default=300, help="test images per digit")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    torch.set_num_threads(args.threads)
    all_rows = []
    for name in args.suite:
        X, y, shape, sizes = load(name, args)
        rows, grid = run(name, X, y, args.seeds, sizes.get("n_train"), sizes.get("n_test"))
        all_rows += rows
        if grid is not None:
            print(f"  wrote {draw_grid(name, shape, *grid)}", flush=True)
    df = pd.DataFrame(all_rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    df.to_csv(RESULTS / "generated_outliers.csv", index=False)
    print(
        f"\nROC-AUC of unknown digits 7-9 vs known 0-5 (6 given as outliers only in 'real'), "
        f"mean ± std over seeds {args.seeds}\n"
    )
    print(summary(df).to_markdown(), flush=True)
    gen = df[df.training == "generated"].groupby("dataset", sort=False)
    print("\nmean max-probability: generated outliers vs training rows")
    print(gen[["msp_generated", "msp_train"]].mean().to_markdown(floatfmt=".3f"))


if __name__ == "__main__":
    main()
