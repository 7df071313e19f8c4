"""Speed of the dense auto-encoder: training seconds per epoch and scoring rows per second.

    python benchmarks/speed.py [--threads 2] [--train-rows 100000] [--score-rows 1000000]

A 30-feature table; the same network everywhere: 30 -> 64 -> 32 -> 64 -> 30, ReLU, no dropout
or batch norm, batch 256 for training. Three contenders:

* anomalia  ``make_detector("ae", hidden=(64,), bottleneck=32)``: fit (one epoch, no
            validation) and ``anomaly_score`` (standardisation, float64 scores included);
* plain     the same ``nn.Sequential`` with a hand-written PyTorch loop over in-memory
            tensors, scored under ``torch.inference_mode`` in batches of 65,536 rows;
* pyod      PyOD's ``AutoEncoder`` (optional; ``pip install pyod tqdm``) with the same layers,
            ``batch_norm=False, dropout_rate=0``; scored at its default batch (32) and at
            batch 65,536.

Run it on a quiet machine: another busy process on a 2-core machine slows torch badly.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

import anomalia


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def plain_torch(X_train, X_score, batch):
    net = nn.Sequential(
        nn.Linear(30, 64),
        nn.ReLU(),
        nn.Linear(64, 32),
        nn.Linear(32, 64),
        nn.ReLU(),
        nn.Linear(64, 30),
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    xt = torch.from_numpy(X_train)

    def epoch():
        for idx in torch.randperm(len(xt)).split(batch):
            x = xt[idx]
            loss = ((net(x) - x) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

    def score():
        with torch.inference_mode():
            xs = torch.from_numpy(X_score)
            return torch.cat([((net(c) - c) ** 2).mean(1) for c in xs.split(65536)]).numpy()

    return best_of(epoch, 2), best_of(score)


def ours(X_train, X_score, batch):
    def fit():
        return anomalia.make_detector(
            "ae",
            hidden=(64,),
            bottleneck=32,
            epochs=1,
            batch_size=batch,
            validation_fraction=0.0,
            weight_decay=0.0,
            random_state=0,
        ).fit(X_train)

    det = fit()
    epoch_s = min(min(fit().history_["epoch_seconds"]) for _ in range(2))
    return epoch_s, best_of(lambda: det.anomaly_score(X_score))


def pyod(X_train, X_score, batch):
    try:
        from pyod.models.auto_encoder import AutoEncoder
    except ImportError as exc:
        print(f"PyOD not available ({exc}); skipping it")
        return None
    kw = {
        "hidden_neuron_list": [64, 32],
        "batch_norm": False,
        "dropout_rate": 0.0,
        "batch_size": batch,
        "verbose": 0,
        "random_state": 0,
    }
    det = AutoEncoder(epoch_num=1, **kw)
    epoch_s = best_of(lambda: AutoEncoder(epoch_num=1, **kw).fit(X_train), 2)
    det.fit(X_train)
    default_s = best_of(lambda: det.decision_function(X_score[:100_000]), 1) * 10
    det.batch_size = 65536
    big_s = best_of(lambda: det.decision_function(X_score), 1)
    return epoch_s, default_s, big_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-rows", type=int, default=100_000)
    parser.add_argument("--score-rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(args.train_rows + args.score_rows, 5))
    X = latent @ rng.normal(size=(5, 30)) + 0.1 * rng.normal(size=(len(latent), 30))
    X = X.astype(np.float32)
    X_train, X_score = X[: args.train_rows], X[args.train_rows :]
    n, m = args.train_rows, args.score_rows
    rows = []
    ep, sc = ours(X_train, X_score, args.batch)
    rows.append(("anomalia `ae`", ep, m / sc))
    ep, sc = plain_torch(X_train, X_score, args.batch)
    rows.append(("plain PyTorch loop", ep, m / sc))
    res = pyod(X_train, X_score, args.batch)
    if res is not None:
        ep, default_s, big_s = res
        rows.append(("PyOD AutoEncoder, scoring batch 32 (default)", ep, m / default_s))
        rows.append(("PyOD AutoEncoder, scoring batch 65,536", ep, m / big_s))
    print(
        f"\n{n:,} training rows x 30 features, batch {args.batch}; {m:,} rows scored; "
        f"torch {torch.__version__}, {args.threads} threads\n"
    )
    print("| implementation | train s/epoch | scoring rows/s |")
    print("|---|---:|---:|")
    for name, ep, rate in rows:
        print(f"| {name} | {ep:.2f} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
