"""Scoring speed side by side, in one run, with each method's distance to the compute limit.

    python benchmarks/speed.py [--threads 2] [--train-rows 100000] [--score-rows 200000]

A 30-feature table (5 latent factors plus noise). Every contender is fitted on the same
training rows and scores the same rows, with ``--threads`` BLAS/OpenMP/torch threads:

* scikit-learn's ``IsolationForest`` (its defaults: 100 trees) and anomalia's ``iforest``;
* anomalia's ``gaussian``, ``default`` and ``knn`` (no ``max_samples``: every training row is
  a reference row), scikit-learn's ``NearestNeighbors`` brute-force search (what ``knn`` used
  before faiss) and a bare faiss ``IndexFlatL2`` search on the same standardised rows;
* the dense ``ae`` (30 -> 64 -> 32 -> 64 -> 30, tanh) in-process, the same fitted network in a
  hand-written PyTorch loop (``torch.inference_mode``, batches of 65,536 rows, input already
  a float32 tensor), and anomalia's exported ONNX graph under onnxruntime;
* ``--engine onnx`` of ``default`` and ``gaussian`` (onnxruntime, float64 graphs).

The compute limit: the machine's float32 matrix-multiply rate is measured first (numpy
``float32 @``, 4,096 x 4,096, ``--threads`` threads); a method's limit is that rate over its
floating-point work per scored row: ``2 x features x reference rows`` for an exact
neighbour search, ``2 x sum(in x out)`` over the layers for the network, the matrix
products for a Gaussian. "of limit" is the measured rate over that bound. Trees do no matrix
products: they have no such limit here.

Run it on a quiet machine: another busy process on a 2-core machine halves every figure.
Prints a markdown table; ``--out`` also writes it as CSV.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

PLAIN = "plain PyTorch loop, same network"
ONNX_AE = "anomalia ae exported, onnxruntime (float32)"


def best_of(fn: Callable[[], Any], repeat: int = 5) -> float:
    """Fastest of ``repeat`` timed calls, in seconds (after one untimed warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def matmul_rate(threads: int) -> float:
    """float32 GFLOP/s of a 4,096-square matrix product."""
    a = np.random.default_rng(0).random((4096, 4096), dtype=np.float32)
    seconds = best_of(lambda: a @ a, 3)
    return 2 * 4096**3 / seconds / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-rows", type=int, default=100_000)
    parser.add_argument("--score-rows", type=int, default=200_000)
    parser.add_argument("--out", help="also write the table here (CSV)")
    args = parser.parse_args()

    import faiss
    import torch
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import NearestNeighbors
    from threadpoolctl import threadpool_limits

    import anomalia
    from anomalia.export import OnnxScorer, to_onnx

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    threadpool_limits(args.threads)
    rng = np.random.default_rng(0)
    n, m, d = args.train_rows, args.score_rows, 30
    latent = rng.normal(size=(n + m, 5))
    X = latent @ rng.normal(size=(5, d)) + 0.1 * rng.normal(size=(n + m, d))
    X_train, X_score = X[:n], X[n:]
    gflops = matmul_rate(args.threads)
    load = os.getloadavg()[0]
    rows: list[dict[str, Any]] = []

    def add(name: str, fit_s: float | None, score_s: float, flop: float | None, note: str = ""):
        rate = m / score_s
        limit = None if flop is None else gflops * 1e9 / flop
        rows.append(
            {
                "method": name,
                "fit_s": fit_s,
                "rows_per_s": rate,
                "flop_per_row": flop,
                "limit_rows_per_s": limit,
                "of_limit": None if limit is None else rate / limit,
                "note": note,
            }
        )
        print(f"  {name}: {rate:,.0f} rows/s", flush=True)

    # -- trees
    sk, fit_s = timed(lambda: IsolationForest(random_state=0).fit(X_train))
    add(
        "sklearn IsolationForest (100 trees)",
        fit_s,
        best_of(lambda: sk.score_samples(X_score)),
        None,
    )
    ours, fit_s = timed(lambda: anomalia.make_detector("iforest", random_state=0).fit(X_train))
    add("anomalia iforest (200 trees)", fit_s, best_of(lambda: ours.anomaly_score(X_score)), None)

    # -- Gaussians and the default ensemble
    g, fit_s = timed(lambda: anomalia.make_detector("gaussian").fit(X_train))
    add("anomalia gaussian", fit_s, best_of(lambda: g.anomaly_score(X_score)), 2 * d * d)
    dflt, fit_s = timed(lambda: anomalia.make_detector("default", random_state=0).fit(X_train))
    n_ref = dflt.detectors_[0].estimator_._fit_X.shape[0]
    dflt_flop = 2 * d * n_ref + 2 * (2 * d * d)
    add(
        "anomalia default",
        fit_s,
        best_of(lambda: dflt.anomaly_score(X_score)),
        dflt_flop,
        f"kNN member: {n_ref:,} reference rows",
    )
    onnx_default = OnnxScorer(dflt, threads=args.threads)
    add(
        "anomalia default, --engine onnx",
        None,
        best_of(lambda: onnx_default.anomaly_score(X_score), 2),
        dflt_flop,
        "float64 graph",
    )

    # -- exact kNN over every training row
    knn, fit_s = timed(lambda: anomalia.make_detector("knn").fit(X_train))
    Z_train = knn.scaler_.transform(X_train)
    Z_score = knn.scaler_.transform(X_score)
    knn_flop = 2 * d * n
    part = X_score[: m // 4]  # a quarter of the rows: the search over 100,000 rows is slow
    add(
        "anomalia knn (every training row)",
        fit_s,
        best_of(lambda: knn.anomaly_score(part), 1) * 4,
        knn_flop,
        "faiss search, float64 distances",
    )
    brute = NearestNeighbors(n_neighbors=5, algorithm="brute").fit(Z_train)
    add(
        "sklearn NearestNeighbors brute, k=5",
        None,
        best_of(lambda: brute.kneighbors(Z_score[: m // 4]), 1) * 4,
        knn_flop,
    )
    index = faiss.IndexFlatL2(d)
    index.add(Z_train.astype(np.float32))
    z32 = Z_score[: m // 4].astype(np.float32)
    add(
        "faiss IndexFlatL2 search, k=5",
        None,
        best_of(lambda: index.search(z32, 5), 1) * 4,
        knn_flop,
    )

    # -- the dense auto-encoder
    X32 = X.astype(np.float32)
    # the network the figures in the READMEs were measured on: tanh, no batch norm or dropout
    # (the registered ae adds batch norm: in scoring, one per-feature affine step a layer)
    params = {"hidden": (64,), "bottleneck": 32, "epochs": 1, "batch_size": 256,
              "activation": "tanh", "batch_norm": False, "dropout": 0.0}  # fmt: skip
    ae, fit_s = timed(lambda: anomalia.make_detector("ae", **params, random_state=0).fit(X32[:n]))
    widths = [d, 64, 32, 64, d]
    ae_flop = 2 * sum(a * b for a, b in itertools.pairwise(widths))
    S32 = X32[n:]
    add("anomalia ae (float32 input)", fit_s, best_of(lambda: ae.anomaly_score(S32)), ae_flop)
    add("anomalia ae (float64 input)", None, best_of(lambda: ae.anomaly_score(X_score)), ae_flop)
    net = ae.module_  # the very network (tanh activations, as fitted), outside anomalia
    xs = ae._tensor(S32)  # scaled as the network sees it: the loop times the network alone

    def plain() -> Any:
        with torch.inference_mode():
            return torch.cat([((net(c) - c) ** 2).mean(1) for c in xs.split(65536)]).numpy()

    add(PLAIN, None, best_of(plain), ae_flop)
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(
        to_onnx(ae).SerializeToString(), opts, providers=["CPUExecutionProvider"]
    )
    add(
        ONNX_AE,
        None,
        best_of(lambda: sess.run(["anomaly_score"], {"X": S32})),
        ae_flop,
        "whole input in one call",
    )

    print(
        f"\n{n:,} training rows x {d} features, {m:,} rows scored, {args.threads} threads; "
        f"float32 matrix multiply {gflops:.0f} GFLOP/s; load average {load:.2f} at the start, "
        f"{os.getloadavg()[0]:.2f} at the end; torch {torch.__version__}, faiss "
        f"{faiss.__version__}, onnxruntime {ort.__version__}\n"
    )
    print("| method | fit s | scoring rows/s | FLOP/row | limit rows/s | of limit | note |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        fit = "" if r["fit_s"] is None else f"{r['fit_s']:.2f}"
        flop = "" if r["flop_per_row"] is None else f"{r['flop_per_row']:,.0f}"
        limit = "" if r["limit_rows_per_s"] is None else f"{r['limit_rows_per_s']:,.0f}"
        share = "" if r["of_limit"] is None else f"{100 * r['of_limit']:.0f} %"
        print(
            f"| {r['method']} | {fit} | {r['rows_per_s']:,.0f} | {flop} | {limit} | {share} | "
            f"{r['note']} |"
        )
    by = {r["method"]: r["rows_per_s"] for r in rows}
    print(
        f"\n`default` / sklearn IsolationForest: "
        f"{by['anomalia default'] / by['sklearn IsolationForest (100 trees)']:.2f}x; "
        f"`ae` / plain loop: {by['anomalia ae (float32 input)'] / by[PLAIN]:.2f}x; "
        f"onnxruntime / plain loop: {by[ONNX_AE] / by[PLAIN]:.2f}x"
    )
    if args.out:
        with open(args.out, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
