"""Scoring files larger than memory: rows/s and peak memory, streaming CLI (and clusters).

    .venv/bin/python benchmarks/scale.py                      # 1M and 5M rows, 4 detectors
    .venv/bin/python benchmarks/scale.py --rows 1e6 5e6 2e7   # the issue's 20M-row case

Makes a Parquet file of N rows x 30 float64 features in row groups of 250,000 rows
(~60 MB, as Parquet writers' default group sizes; a reader holds one group decompressed),
fits each detector on 100,000 rows, then runs ``anomalia score MODEL big.parquet --out
scores.parquet`` as a subprocess and reads its peak resident memory (``wait4``'s
ru_maxrss). With ``--engines dask spark`` (and those extras installed) the same file is
scored by ``anomalia.dask.score_files`` / ``anomalia.spark.score_files`` on a local
cluster; their peak is the driver process's. Prints a markdown table and writes
``benchmarks/results/scale.csv`` when complete.
"""

from __future__ import annotations

import argparse
import os
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
        "--engines", nargs="+", default=["stream"], choices=["stream", "dask", "spark"]
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
                        code = (
                            f"import anomalia.{engine} as e; "
                            f"e.score_files({model!r}, {str(data)!r}, {str(out)!r})"
                        )
                        seconds, peak = run([sys.executable, "-c", code])
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
        f"memory (for dask/spark: the driver process). {os.cpu_count()} cores."
    )
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "scale.csv", index=False)


if __name__ == "__main__":
    main()
