"""Content/style disentanglement on MNIST: does a swap keep the digit and take the style?

    OMP_NUM_THREADS=1 python benchmarks/disentangle.py [--epochs 20] [--kl-weight 0] [--append]

Protocol. The 10,000 MNIST test images (../shared/datasets/mnist), shuffled with seed 0:
8,000 train the ``disentangle`` model (reconstruction only, no labels) and a pixel classifier
(scikit-learn MLP, 256 hidden units; labels used here only); 2,000 held-out images are
evaluated. Each held-out image gives its content; its style comes from another held-out image
of a different class, paired at random (seed 0). On the swapped images:

- content agreement: share classified as the content image's digit (aim >= 85 %);
- style leak: share classified as the style image's digit (low is good);
- stroke style: thickness (2 x ink area / ink perimeter, in pixels, ink = pixel >= 0.5) and
  slant (shear -cov(x, y) / var(y) of the ink distribution; > 0 leans right): the Pearson
  correlation of each between the swap and its style image, and between the swap and its
  content image. A swap that takes the style has a high first and a low second correlation.

References: reconstructions (content and style from the same image) and the classifier's own
test accuracy. Writes ``benchmarks/results/disentangle_mnist.csv`` (one row per run; with
``--append`` earlier rows are kept, so variants tried stay listed) and the swap grid
``benchmarks/results/swap_mnist.png`` (first row style images, first column content images).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_limits

from anomalia.datasets import data_dir, read_mnist
from anomalia.detectors.disentangle import DisentangleDetector, plot_swap_grid
from anomalia.plots import save_figure

ROOT = Path(__file__).resolve().parents[1]
MNIST = data_dir() / "mnist"
RESULTS = ROOT / "benchmarks" / "results"
N_TRAIN, N_TEST = 8000, 2000


def thickness(images: np.ndarray) -> np.ndarray:
    """Stroke width in pixels: 2 x ink area / ink perimeter (a stroke of width w, length L
    has area w L and perimeter about 2 L). Images in [0, 1], ink = pixel >= 0.5."""
    ink = np.pad(images >= 0.5, ((0, 0), (1, 1), (1, 1)))
    perimeter = (ink[:, 1:] != ink[:, :-1]).sum((1, 2)) + (ink[:, :, 1:] != ink[:, :, :-1]).sum(
        (1, 2)
    )
    return 2 * ink.sum((1, 2)) / np.maximum(perimeter, 1)


def slant(images: np.ndarray) -> np.ndarray:
    """Shear of the ink distribution, -cov(x, y) / var(y) with y pointing down (> 0: right)."""
    w = np.clip(images, 0, None)
    w = w / np.maximum(w.sum((1, 2), keepdims=True), 1e-12)
    ys, xs = np.indices(images.shape[1:])
    my, mx = (w * ys).sum((1, 2)), (w * xs).sum((1, 2))
    dy, dx = ys - my[:, None, None], xs - mx[:, None, None]
    return -(w * dx * dy).sum((1, 2)) / np.maximum((w * dy * dy).sum((1, 2)), 1e-12)


def corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def grid_images(X: np.ndarray, y: np.ndarray, n: int):
    """Contents: the first held-out image of each digit 0..n-1 (cycling past 9); styles: n
    images from thinnest to thickest stroke (evenly spaced thickness ranks)."""
    contents = np.array([np.flatnonzero(y == d % 10)[d // 10] for d in range(n)])
    order = np.argsort(thickness(X), kind="stable")
    styles = order[np.linspace(0, len(order) - 1, n).round().astype(int)]
    return X[contents], X[styles]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--channels", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--content-channels", type=int, default=4)
    parser.add_argument("--style-dim", type=int, default=8)
    parser.add_argument("--kl-weight", type=float, default=0.3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--append", action="store_true", help="keep earlier rows of the CSV")
    parser.add_argument("--no-grid", action="store_true", help="do not rewrite the grid image")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with threadpool_limits(args.threads):  # numpy / scikit-learn BLAS threads too
        run(args)


def run(args: argparse.Namespace) -> None:

    images, labels = read_mnist(
        MNIST / "t10k-images-idx3-ubyte.gz", MNIST / "t10k-labels-idx1-ubyte.gz"
    )
    order = np.random.default_rng(0).permutation(len(images))
    X = images[order].astype(np.float32) / 255.0
    y = labels[order]
    X_train, y_train = X[:N_TRAIN], y[:N_TRAIN]
    X_test, y_test = X[N_TRAIN : N_TRAIN + N_TEST], y[N_TRAIN : N_TRAIN + N_TEST]

    start = time.perf_counter()
    clf = MLPClassifier(hidden_layer_sizes=(256,), max_iter=60, random_state=0)
    clf.fit(X_train.reshape(N_TRAIN, -1), y_train)
    clf_seconds = time.perf_counter() - start
    clf_acc = float(clf.score(X_test.reshape(N_TEST, -1), y_test))

    det = DisentangleDetector(
        channels=tuple(args.channels),
        content_channels=args.content_channels,
        style_dim=args.style_dim,
        kl_weight=args.kl_weight,
        epochs=args.epochs,
        batch_size=args.batch_size,
        patience=None,
        random_state=0,
    )
    start = time.perf_counter()
    det.fit(X_train)
    fit_seconds = time.perf_counter() - start

    rng = np.random.default_rng(0)
    partner = rng.integers(N_TEST, size=N_TEST)
    same = y_test[partner] == y_test
    while same.any():  # redraw partners of the same class
        partner[same] = rng.integers(N_TEST, size=int(same.sum()))
        same = y_test[partner] == y_test
    X_style = X_test[partner]
    swaps = det.swap(X_test, X_style)
    recon = det.reconstruct(X_test)

    pred_swap = clf.predict(swaps.reshape(N_TEST, -1))
    pred_recon = clf.predict(recon.reshape(N_TEST, -1))
    t_swap, t_style, t_content = thickness(swaps), thickness(X_style), thickness(X_test)
    s_swap, s_style, s_content = slant(swaps), slant(X_style), slant(X_test)
    row = {
        "channels": "-".join(map(str, args.channels)),
        "content_channels": args.content_channels,
        "style_dim": args.style_dim,
        "kl_weight": args.kl_weight,
        "epochs": args.epochs,
        "classifier_accuracy": clf_acc,
        "recon_accuracy": float(np.mean(pred_recon == y_test)),
        "recon_mse": float(np.mean((recon - X_test) ** 2)),
        "content_agreement": float(np.mean(pred_swap == y_test)),
        "style_leak": float(np.mean(pred_swap == y_test[partner])),
        "thickness_corr_style": corr(t_swap, t_style),
        "thickness_corr_content": corr(t_swap, t_content),
        "slant_corr_style": corr(s_swap, s_style),
        "slant_corr_content": corr(s_swap, s_content),
        "thickness_corr_recon": corr(thickness(recon), t_content),
        "fit_seconds": fit_seconds,
        "classifier_seconds": clf_seconds,
    }

    RESULTS.mkdir(parents=True, exist_ok=True)
    csv = RESULTS / "disentangle_mnist.csv"
    table = pd.DataFrame([row])
    if args.append and csv.exists():
        table = pd.concat([pd.read_csv(csv), table], ignore_index=True)
    shown = table.map(lambda v: f"{v:.3f}" if isinstance(v, float) else v)
    print(shown.T.to_markdown())
    table.to_csv(csv, index=False, float_format="%.4g")  # only once the table printed

    if not args.no_grid:
        contents, styles = grid_images(X_test, y_test, 8)
        fig = plot_swap_grid(det.swap_grid(contents, styles))
        print("grid:", save_figure(fig, RESULTS / "swap_mnist.png"))


if __name__ == "__main__":
    main()
