"""Scoring files larger than memory: rows/s and peak memory, streaming CLI (and clusters).

    .venv/bin/python benchmarks/scale.py                      # 1M and 5M rows, 4 detectors
    .venv/bin/python benchmarks/scale.py --rows 1e6 5e6 2e7   # the issue's 20M-row case

Makes a Parquet file of N rows x 30 float64 features in row groups of 250,000 rows
(~60 MB, as Parquet writers' default group sizes; a reader holds one group decompressed),
fits each detector on 100,000 rows, then runs ``anomalia score MODEL big.parquet --out
scores.parquet`` as a subprocess and reads its peak resident memory (``wait4``'s
ru_maxrss). With ``--engines dask-1 dask-2 spark-1 spark-2`` (and those extras installed)
the same file is scored by ``anomalia.dask.score_files`` on a ``LocalCluster`` of 1 or 2
single-threaded worker processes, or by ``anomalia.spark.score_files`` on a local
``SparkSession`` of 1 or 2 cores (``local[N]``); their peak is the largest of the driver and
the processes it waited for. Prints a markdown table and, when complete, merges its cells
into ``benchmarks/results/scale.csv`` (a cell measured again replaces the old one) and draws
the cost curve (seconds against rows, one line per detector and engine) in
``benchmarks/results/scale.png``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).parent / "results"
FEATURES = 30
ROW_GROUP = 250_000  # rows per Parquet row group: a reader holds one group decompressed
DETECTORS = {
    "gaussian": [],
    "iforest": [],
    "ae": ["-p", "epochs=5"],
    "default": [],
}


#: Python run in a subprocess to score ``data`` into ``out`` with ``model`` on a local cluster.
DASK = (
    "from distributed import LocalCluster\n"
    "import anomalia.dask as e\n"
    "with LocalCluster(n_workers={n}, threads_per_worker=1, host='127.0.0.1',"
    " dashboard_address=None) as c:\n"
    "    e.score_files({model!r}, {data!r}, {out!r}, scheduler=c.scheduler_address)\n"
)
SPARK = (
    "import anomalia.spark as e\n"
    "s = e.session_builder('local[{n}]').getOrCreate()\n"
    "e.score_files({model!r}, {data!r}, {out!r})\n"
    "s.stop()\n"
)
CLUSTER_CODE = {
    "dask-1": (DASK, 1),
    "dask-2": (DASK, 2),
    "spark-1": (SPARK, 1),
    "spark-2": (SPARK, 2),
}


def make_parquet(path: Path, n_rows: int, seed: int = 0) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    names = [f"f{i}" for i in range(FEATURES)]
    schema = pa.schema([(n, pa.float64()) for n in names])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, n_rows, ROW_GROUP):  # one row group per write: ~60 MB
            n = min(ROW_GROUP, n_rows - start)
            block = rng.normal(size=(n, FEATURES))
            writer.write_table(pa.Table.from_arrays(list(block.T), names=names))


def run(cmd: list[str]) -> tuple[float, float]:
    """Seconds and peak RSS (MiB) of one subprocess."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", type=float, default=[1e6, 5e6])
    parser.add_argument("--detectors", nargs="+", default=list(DETECTORS))
    parser.add_argument(
        "--engines", nargs="+", default=["stream"], choices=["stream", *CLUSTER_CODE]
    )
    args = parser.parse_args()
    cli = [sys.executable, "-c", "from anomalia.cli.app import main; main()"]
    rows_out = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        train = root / "train.parquet"
        make_parquet(train, 100_000, seed=1)
        for name in args.detectors:
            run(
                [
                    *cli,
                    "fit",
                    str(train),
                    "-d",
                    name,
                    *DETECTORS.get(name, []),
                    "--out",
                    str(root / f"{name}.anomalia"),
                ]
            )
        for n in (int(r) for r in args.rows):
            data = root / f"big-{n}.parquet"
            make_parquet(data, n)
            size = data.stat().st_size / 2**20
            for name in args.detectors:
                model = str(root / f"{name}.anomalia")
                for engine in args.engines:
                    out = root / f"scores-{name}-{engine}.parquet"
                    if engine == "stream":
                        seconds, peak = run([*cli, "score", model, str(data), "--out", str(out)])
                    else:
                        template, workers = CLUSTER_CODE[engine]
                        code = template.format(n=workers, model=model, data=str(data), out=str(out))
                        seconds, peak = run([sys.executable, "-c", code])
                        shutil.rmtree(out, ignore_errors=True)
                    rows_out.append(
                        {
                            "rows": n,
                            "file_MiB": round(size),
                            "detector": name,
                            "engine": engine,
                            "seconds": round(seconds, 1),
                            "rows_per_s": round(n / seconds),
                            "peak_rss_MiB": round(peak),
                        }
                    )
                    print(rows_out[-1], flush=True)
            data.unlink()
    table = pd.DataFrame(rows_out)
    print("\n| rows | file MiB | detector | engine | seconds | rows/s | peak RSS MiB |")
    print("|---:|---:|---|---|---:|---:|---:|")
    for r in rows_out:
        print(
            f"| {r['rows']:,} | {r['file_MiB']:,} | {r['detector']} | {r['engine']} | "
            f"{r['seconds']} | {r['rows_per_s']:,} | {r['peak_rss_MiB']:,} |"
        )
    print(
        f"\n{FEATURES} float64 features; 'peak_rss_MiB' is the scoring process's peak resident "
        f"memory (dask/spark: the largest of the driver and the processes it waited for). "
        f"{os.cpu_count()} cores."
    )
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "scale.csv"
    if path.exists():  # earlier runs' other cells are kept; a cell measured again is replaced
        key = ["rows", "detector", "engine"]
        old = pd.read_csv(path)
        old = old[~old.set_index(key).index.isin(table.set_index(key).index)]
        table = pd.concat([old, table], ignore_index=True)
    table.to_csv(path, index=False)
    plot_cost(table, RESULTS / "scale.png")


def plot_cost(table: pd.DataFrame, path: Path) -> None:
    """Seconds against rows, log-log, one line per detector and engine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8), facecolor="white")
    styles = {"stream": "-", "dask-1": "--", "dask-2": "--", "spark-1": ":", "spark-2": ":"}
    markers = {"stream": "o", "dask-1": "s", "dask-2": "D", "spark-1": "^", "spark-2": "v"}
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colours = {det: cycle[i % len(cycle)] for i, det in enumerate(table.detector.unique())}
    for (det, engine), part in table.groupby(["detector", "engine"], sort=False):
        part = part.sort_values("rows")
        ax.plot(
            part.rows,
            part.seconds,
            styles.get(engine, "-"),
            marker=markers.get(engine, "o"),
            color=colours[det],
            label=f"{det}, {engine}",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rows scored (30 float64 features, one Parquet file)")
    ax.set_ylabel("wall seconds (start to finish, one process tree)")
    ax.set_title(f"Cost of scoring a file: {os.cpu_count()} cores")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    main()
