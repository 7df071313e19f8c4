"""Rate-distortion of auto-encoder compression vs PCA and JPEG, on MNIST and digits.

    python benchmarks/rate_distortion.py [--suite mnist digits] [--epochs 12] [--threads 1]

Rate: bytes per image of the stored file. Auto-encoders and PCA go through
anomalia.compression (8 bits per code value, a per-dimension offset and step as float32,
the container's JSON header; all overhead is included, amortised over the test images); a
VQ-VAE stores one uint8 index per latent (256 codes). bytes_per_image uses the default
codec (zlib on the payload); bytes_none and bytes_lzma give the other codecs.
JPEG: Pillow, baseline, standard tables, one file per grayscale image, at several qualities;
"jpeg (file)" is the whole file, "jpeg (shared header)" counts per image only the
entropy-coded scan data (the markers and tables before it are byte-identical for every image
at one quality, checked below, so one copy is stored and amortised over the test set, like an
abbreviated JPEG stream).
Distortion: MSE and PSNR on pixel values in [0, 1] (every decoder's output clipped to [0, 1]).

Data (fixed split, seed 0): the 10,000 MNIST test images in ../shared/datasets/mnist
(8,000 train the models, 2,000 are compressed) and scikit-learn's 8x8 digits (1,397 / 400).
Writes benchmarks/results/rate_distortion.csv, rate_distortion_mnist.png (both datasets) and,
for MNIST, vae_samples_mnist.png and interpolation_mnist.png. One thread: about 10 minutes.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from PIL import Image
from sklearn.decomposition import PCA

import anomalia
from anomalia.compression import CODECS, compress, decompress, mse_psnr
from anomalia.datasets import data_dir, read_mnist
from anomalia.plots import plot_image_grid, save_figure

ROOT = Path(__file__).resolve().parents[1]
MNIST = data_dir() / "mnist"
RESULTS = ROOT / "benchmarks" / "results"

TITLES = {"mnist": "MNIST: 2,000 test images, 28x28", "digits": "digits: 400 test images, 8x8"}
CODE_SIZES = {"mnist": (4, 8, 16, 32, 64), "digits": (2, 4, 8, 16, 32)}
JPEG_QUALITIES = (1, 5, 10, 20, 30, 50, 70, 90)
# conv nets for both: small channels keep an MNIST epoch near 2 s on one thread
AE = {"channels": (16, 32), "batch_size": 64, "random_state": 0}
VQ = {**AE, "n_codes": 256, "code_dim": 4, "batch_size": 128}


def split(images, n_test, seed=0):
    order = np.random.default_rng(seed).permutation(len(images))
    return images[order[n_test:]], images[order[:n_test]], order[:n_test]


def load_mnist():
    images, labels = read_mnist(
        MNIST / "t10k-images-idx3-ubyte.gz", MNIST / "t10k-labels-idx1-ubyte.gz"
    )
    train, test, idx = split(images, 2000)
    return train, test, labels[idx]


def load_digits():
    ds = anomalia.datasets.load_dataset("digits")
    # 0..16 grey levels to 8-bit, the input JPEG and the others all get
    images = np.rint(ds.X.to_numpy().reshape(-1, 8, 8) * 255 / 16).astype(np.uint8)
    train, test, idx = split(images, 400)
    return train, test, ds.labels[idx]


def _scan_start(jpeg: bytes) -> int:
    """Offset of the entropy-coded data: just after the SOS segment."""
    i = 2  # after SOI
    while True:
        marker, length = jpeg[i : i + 2], int.from_bytes(jpeg[i + 2 : i + 4], "big")
        i += 2 + length
        if marker == b"\xff\xda":
            return i


def jpeg_rows(test, dataset):
    rows, x = [], test / 255.0
    for quality in JPEG_QUALITIES:
        sizes, scans, decoded, header = [], [], [], None
        for img in test:
            buf = io.BytesIO()
            Image.fromarray(img, "L").save(buf, "JPEG", quality=quality)
            data = buf.getvalue()
            head = data[: _scan_start(data)]
            header = head if header is None else header
            if head != header:
                raise RuntimeError("JPEG headers differ between images: cannot share them")
            sizes.append(len(data))
            scans.append(len(data) - len(head) - 2)  # minus the EOI marker
            decoded.append(np.asarray(Image.open(io.BytesIO(data))))
        mse, psnr = mse_psnr(x, np.stack(decoded) / 255.0, peak=1.0)
        shared = np.mean(scans) + (len(header) + 2) / len(test)
        for method, size in (("jpeg (file)", np.mean(sizes)), ("jpeg (shared header)", shared)):
            rows.append(row(dataset, method, quality, size, {}, mse, psnr, 0.0))
    return rows


def row(dataset, method, setting, size, codec_sizes, mse, psnr, seconds):
    out = {"dataset": dataset, "method": method, "setting": setting, "bytes_per_image": size}
    out.update({f"bytes_{c}": v for c, v in codec_sizes.items()})
    return {**out, "mse": mse, "psnr_db": psnr, "fit_seconds": seconds}


def coded_row(dataset, method, setting, model, test, seconds):
    """Compress ``test`` (in [0, 1]) with every codec; distortion of the decoded images."""
    blobs = {codec: compress(model, test, codec=codec) for codec in CODECS}
    decoded = np.clip(decompress(model, blobs["zlib"]), 0.0, 1.0)  # the default codec
    mse, psnr = mse_psnr(test, decoded, peak=1.0)
    sizes = {c: len(b) / len(test) for c, b in blobs.items() if c != "zlib"}
    return row(dataset, method, setting, len(blobs["zlib"]) / len(test), sizes, mse, psnr, seconds)


def model_rows(dataset, train, test, epochs):
    rows, n = [], len(test)
    x_train, x_test = train / 255.0, test / 255.0
    flat_train, flat_test = x_train.reshape(len(train), -1), x_test.reshape(n, -1)
    for k in CODE_SIZES[dataset]:
        pca = PCA(n_components=k, random_state=0).fit(flat_train)
        rows.append(coded_row(dataset, "pca", k, pca, flat_test, 0.0))
        for method, name, params in (
            ("ae", "ae", {**AE, "bottleneck": k}),
            ("vqvae", "vqvae", {**VQ, "n_latents": k}),
        ):
            start = time.perf_counter()
            det = anomalia.make_detector(name, epochs=epochs, **params).fit(x_train)
            seconds = time.perf_counter() - start
            rows.append(coded_row(dataset, method, k, det, x_test, seconds))
            r = rows[-1]
            print(
                f"  {dataset} {method:>5} k={k:<3} {r['bytes_per_image']:7.1f} B/image  "
                f"PSNR {r['psnr_db']:5.2f} dB  fit {seconds:.0f}s",
                flush=True,
            )
    return rows


def plot_curves(df):
    datasets = list(dict.fromkeys(df.dataset))
    fig = Figure(figsize=(6.2 * len(datasets), 4.6), layout="constrained")
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    styles = {
        "ae": "o-",
        "vqvae": "s-",
        "pca": "^-",
        "jpeg (file)": "x--",
        "jpeg (shared header)": "+-",
    }
    for ax, dataset in zip(axes, datasets, strict=True):
        sub = df[df.dataset == dataset]
        for method, style in styles.items():
            part = sub[sub.method == method].sort_values("bytes_per_image")
            ax.plot(part.bytes_per_image, part.psnr_db, style, label=method)
        raw = 784 if dataset == "mnist" else 64
        ax.axvline(raw, color="grey", lw=0.8, ls=":", label=f"raw 8-bit ({raw} B)")
        ax.set_xscale("log")
        ax.set_xlabel("bytes per image (log scale)")
        ax.set_ylabel("PSNR (dB, pixels in [0, 1])")
        ax.set_title(TITLES[dataset])
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return fig


def vae_pictures(train, test, labels):
    """A conv VAE on MNIST: 64 samples from the prior, and latent interpolations."""
    start = time.perf_counter()
    # 8 latents gave more digit-like samples than 16 (fewer broken strokes) at 20 epochs
    vae = anomalia.make_detector(
        "vae", bottleneck=8, channels=(32, 64), epochs=20, batch_size=64, random_state=0
    ).fit(train / 255.0)
    print(f"  mnist conv vae fit {time.perf_counter() - start:.0f}s", flush=True)
    samples = np.clip(vae.sample(64, random_state=0), 0, 1)[:, 0]
    grid = plot_image_grid([samples[i : i + 8] for i in range(0, 64, 8)], [""] * 8)
    save_figure(grid, RESULTS / "vae_samples_mnist.png")
    pairs = [(0, 6), (1, 7), (2, 5), (4, 9)]
    steps = np.linspace(0.0, 1.0, 8)[:, None]
    strips = []
    for a, b in pairs:
        ends = test[[np.flatnonzero(labels == a)[0], np.flatnonzero(labels == b)[0]]] / 255.0
        codes = vae.transform(ends)  # posterior means
        path = np.clip(vae.inverse_transform((1 - steps) * codes[0] + steps * codes[1]), 0, 1)
        strips.append(np.concatenate([ends[:1], path[:, 0], ends[1:]]))
    titles = ["input", *(f"t={t:.2f}" for t in steps[:, 0]), "input"]
    fig = plot_image_grid(strips, [f"{a} to {b}" for a, b in pairs], col_titles=titles)
    save_figure(fig, RESULTS / "interpolation_mnist.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", nargs="+", default=["mnist", "digits"])
    parser.add_argument("--epochs", type=int, default=15, help="Epoch bound per MNIST model.")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-pictures", action="store_true", help="Skip the VAE pictures.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows, start = [], time.perf_counter()
    for suite in args.suite:
        train, test, labels = load_mnist() if suite == "mnist" else load_digits()
        epochs = args.epochs if suite == "mnist" else 5 * args.epochs  # digits: 5x smaller
        rows += jpeg_rows(test, suite)
        rows += model_rows(suite, train, test, epochs)
        if suite == "mnist" and not args.no_pictures:
            vae_pictures(train, test, labels)
    df = pd.DataFrame(rows)
    for suite in args.suite:
        sub = df[df.dataset == suite].drop(columns=["dataset"])
        print(f"\n## {suite}\n")
        print(sub.to_markdown(index=False, floatfmt=".4g"))
    df.to_csv(RESULTS / "rate_distortion.csv", index=False)  # only now: every row done
    save_figure(plot_curves(df), RESULTS / "rate_distortion_mnist.png")
    print(f"\ntotal {time.perf_counter() - start:.0f}s")


if __name__ == "__main__":
    main()
