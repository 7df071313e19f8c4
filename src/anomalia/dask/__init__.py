"""Scoring Dask DataFrames with an anomalia model, on any Dask scheduler.

Needs the ``dask`` extra (``pip install "anomalia[dask]"``: ``dask[dataframe]`` and
``distributed``); this module imports them only when called.

What travels where:

* **once per worker process**: the model file's bytes. With a ``distributed.Client`` active
  they are scattered to every worker (``client.scatter(..., broadcast=True)``); without one
  they are a single ``dask.delayed`` value in the graph, shared by every partition's task.
  Each process checks their SHA-256, loads them with :func:`anomalia.persistence.load_model`
  (every integrity check of loading) and caches the detector under that digest.
* **per partition**: the partition itself, the digest and the model's table spec (a small
  dict). Rows are read with :func:`anomalia.io.dataset_from_frame` and that spec, so id,
  label, ignored and one-hot columns behave exactly as in ``anomalia score``.

No model is pickled: the model file is the transport, also for an in-memory detector
(serialised with :func:`anomalia.persistence.to_bytes`).

Errors: bad data in a partition raises :class:`~anomalia.errors.DataError` when the result
is computed, with a message such as ``partition 3: text in numeric column 'x': 'abc' at row
17 (...)`` (rows counted from 1 within that partition). The distributed scheduler re-raises
the worker's exception on the client with its type, so ``except anomalia.DataError`` works.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._utils import cluster
from ..errors import AnomaliaError
from ..io import TableSpec

__all__ = ["sample", "score", "score_files"]

_KEY = "__anomalia_sample_key__"


def _require() -> Any:
    try:
        import dask.dataframe as dd
    except ImportError:
        raise AnomaliaError(
            'anomalia.dask needs Dask: pip install "anomalia[dask]" (dask[dataframe], distributed)'
        ) from None
    return dd


def _client() -> Any:
    """The active ``distributed.Client``, or None."""
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:
        return None


def _score_partition(
    part: pd.DataFrame,
    digest: str,
    blob: bytes,
    spec: dict[str, Any],
    kept: list[str],
    partition_info: dict[str, Any] | None = None,
) -> pd.DataFrame:
    number = partition_info["number"] if partition_info else "?"
    return cluster.score_frame(part, digest, blob, spec, kept, f"partition {number}")


def score(
    model: Any,
    ddf: Any,
    *,
    keep: str | Sequence[str] | None = None,
    spec: TableSpec | None = None,
    key: bytes | None = None,
) -> Any:
    """Add ``anomaly_score`` and ``is_anomaly`` to every row of a Dask DataFrame (lazily).

    The scores are those of ``anomalia score`` on the same rows, bit for bit.

    Parameters
    ----------
    model : str, path-like or fitted detector
        A model file (``anomalia fit ... --out``), or a fitted anomalia detector.
    ddf : dask.dataframe.DataFrame
        Raw rows, with the columns of the model's training table (features; optionally its
        id, label and ignored columns).
    keep : str or sequence of str, optional
        Input columns to keep in the result, in this order (e.g. ``["id"]``); default: all.
    spec : TableSpec, optional
        How rows are read. Default: the spec saved in the model file; for a detector, only
        its training columns, as features (pass the fitted ``Dataset.spec`` of the training
        table for one-hot, id or ignored columns).
    key : bytes, optional
        Signing key: the model file must carry a valid signature made with it (checked on
        the client; workers check the bytes' SHA-256).

    Returns
    -------
    dask.dataframe.DataFrame
        The kept columns, then ``anomaly_score`` (float64, higher = more anomalous) and
        ``is_anomaly`` (bool, score above the model's threshold); same partitions and index.

    Raises
    ------
    anomalia.errors.ModelFileError
        The model file is missing, damaged or wrongly signed (raised here, before any task).
    anomalia.errors.DataError
        Raised when the result is computed: a partition's rows do not fit the model.
    """
    dd = _require()
    if not isinstance(ddf, dd.DataFrame):
        raise AnomaliaError(f"expected a dask DataFrame, got {type(ddf).__name__}")
    blob, digest, _, spec = cluster.prepare(model, spec=spec, key=key)
    kept = cluster.output_columns(list(ddf.columns), keep)
    meta = ddf._meta.loc[:, kept].copy()
    for name, dtype in cluster.SCORE_COLUMNS.items():
        meta[name] = np.empty(0, dtype=dtype)
    client = _client()
    if client is not None:
        shipped = client.scatter(blob, broadcast=True, hash=False)
    else:
        import dask

        shipped = dask.delayed(blob, name=f"anomalia-model-{digest}")
    return ddf.map_partitions(
        _score_partition, digest, shipped, spec.to_dict(), kept, meta=meta, align_dataframes=False
    )


def _keyed_head(
    part: pd.DataFrame, n: int, seed: int, partition_info: dict[str, Any] | None = None
) -> pd.DataFrame:
    """The ``n`` rows of a partition with the smallest random keys, keys attached."""
    number = partition_info["number"] if partition_info else 0
    keys = np.random.default_rng([seed, number]).random(len(part))
    out = part.assign(**{_KEY: keys})
    return out.nsmallest(n, _KEY) if len(out) > n else out


def sample(ddf: Any, n: int, *, random_state: int = 0) -> pd.DataFrame:
    """A uniform random sample of ``n`` rows, drawn on the cluster, as a pandas DataFrame.

    Every row gets an independent uniform random key (a generator seeded by
    ``random_state`` and the partition's number); each partition keeps its ``n`` smallest
    keys and a tree reduction keeps the ``n`` smallest overall. Every set of ``n`` rows is
    equally likely, whatever the partition sizes; only about ``n`` rows per partition
    travel, never the whole table.

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame
        The rows to sample from.
    n : int
        Number of rows (all rows, in random order, when the table has fewer).
    random_state : int, default=0
        Seed: the same seed and partitioning give the same sample.

    Returns
    -------
    pandas.DataFrame
        The sampled rows in random order, with ``ddf``'s columns and a fresh 0..n-1 index.
    """
    dd = _require()
    if not isinstance(ddf, dd.DataFrame):
        raise AnomaliaError(f"expected a dask DataFrame, got {type(ddf).__name__}")
    n = cluster.check_rows(n)
    if _KEY in ddf.columns:
        raise AnomaliaError(f"the data has a column named {_KEY!r}; rename it")
    meta = ddf._meta.assign(**{_KEY: np.empty(0, dtype=np.float64)})
    if n == 0:
        return meta.drop(columns=_KEY).reset_index(drop=True)
    keyed = ddf.map_partitions(_keyed_head, n, int(random_state), meta=meta)
    picked = keyed.nsmallest(n, _KEY).compute()
    return picked.drop(columns=_KEY).reset_index(drop=True)


#: Most bytes of Parquet in one partition of :func:`score_files` (whole row groups).
PARTITION_BYTES = 64 * 2**20


def score_files(
    model_path: str | os.PathLike[str],
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    scheduler: str | None = None,
    keep: str | Sequence[str] | None = None,
    key: bytes | None = None,
) -> int:
    """Score a Parquet file or folder of Parquet files into a folder of Parquet part files.

    Parameters
    ----------
    model_path : str or path-like
        The model file.
    data : str or path-like
        A Parquet file, or a folder of them (read with ``dask.dataframe.read_parquet``).
    out : str or path-like
        Output folder, which must not exist yet: one ``part.N.parquet`` file per input
        partition, as Dask writes them (read it back with ``pandas.read_parquet(out)``).
        Written beside ``out`` and renamed into place, so no partial folder is left there.
    scheduler : str, optional
        Address of a running Dask scheduler (e.g. ``"tcp://10.0.0.5:8786"``). Default: a
        local cluster of 2 worker processes with 1 thread each, on 127.0.0.1, started and
        stopped by this call (no dashboard).
    keep : str or sequence of str, optional
        Input columns to keep beside the scores (default: all).
    key : bytes, optional
        Signing key the model file must be signed with.

    Returns
    -------
    int
        The number of rows scored.
    """
    dd = _require()
    from distributed import Client, LocalCluster

    out, data = cluster.check_job(model_path, data, out, key=key)
    local = None
    try:
        if scheduler is None:
            local = LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                host="127.0.0.1",
                # no dashboard; its HTTP server (health, metrics) on a free port, not 8787
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            )
        with Client(local if local is not None else scheduler):
            # partitions of at most PARTITION_BYTES of Parquet: a worker's memory follows
            # its partition, and a large file read as one partition would hold all of it
            ddf = dd.read_parquet(str(data), blocksize=PARTITION_BYTES)
            scored = score(model_path, ddf, keep=keep, key=key)

            def write(tmp: Path) -> None:
                scored.to_parquet(str(tmp), write_index=False, compute=True)

            cluster.atomic_folder(out, write)
    finally:
        if local is not None:
            local.close()
    return cluster.parquet_rows(out)
