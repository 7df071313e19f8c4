"""Scoring Apache Spark DataFrames with an anomalia model, through ``mapInArrow``.

Needs the ``spark`` extra (``pip install "anomalia[spark]"``: ``pyspark``) and Java 17 or
later; this module imports pyspark only when called. The Python workers must be able to import
anomalia (the same environment as the driver: ``spark.pyspark.python``).

What travels where:

* **once per executor**: the model file's bytes, as a Spark broadcast variable
  (``sparkContext.broadcast``). Each Python worker process reads it once, checks its SHA-256,
  loads it with :func:`anomalia.persistence.load_model` (every integrity check of loading)
  and caches the detector under that digest (Spark reuses Python workers across tasks:
  ``spark.python.worker.reuse``, on by default). On Spark Connect, which has no broadcast
  from Python, the bytes travel inside the scoring function, with each task.
* **per Arrow batch** (``spark.sql.execution.arrow.maxRecordsPerBatch`` rows, 10,000 by
  default): the rows, turned into pandas and read with :func:`anomalia.io.dataset_from_frame`
  and the model's table spec, exactly as ``anomalia score`` reads a file. The kept columns
  go back as the original Arrow arrays, untouched.

No model is pickled: the model file is the transport, also for an in-memory detector.

Errors: bad data raises :class:`~anomalia.errors.DataError` in the Python worker. Spark
reports it on the driver as ``pyspark.errors.PythonException``, whose message ends with
``anomalia.errors.DataError: partition 3, batch of rows 1-10000: text in numeric column 'x': 'abc'
at row 17 (...)`` (rows counted from 1 within that batch). :func:`sample` and
:func:`score_files`, which run the job themselves, turn it back into the anomalia error.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .. import errors
from .._utils import cluster
from ..errors import AnomaliaError
from ..io import TableSpec

__all__ = ["sample", "score", "score_files", "session_builder"]

_KEY = "__anomalia_sample_key__"
_WORKER_ERROR = re.compile(r"anomalia\.errors\.(AnomaliaError|DataError|ModelFileError): (.+)")


def _require() -> Any:
    try:
        import pyspark.sql
    except ImportError:
        raise AnomaliaError(
            'anomalia.spark needs PySpark: pip install "anomalia[spark]" (and Java 17+)'
        ) from None
    return pyspark.sql


def _anomalia_error(exc: BaseException) -> AnomaliaError | None:
    """The anomalia error a Python worker raised, rebuilt from Spark's report of it."""
    found = _WORKER_ERROR.findall(str(exc))
    if not found:
        return None
    name, message = found[-1]
    return getattr(errors, name)(message.strip())


def _score_batches(
    batches: Iterator[Any],
    *,
    digest: str,
    fetch: Any,
    spec: dict[str, Any],
    kept: list[str],
) -> Iterator[Any]:
    import pyarrow as pa
    from pyspark import TaskContext

    context = TaskContext.get()
    partition = context.partitionId() if context is not None else "?"
    blob: bytes | Callable[[], bytes] = fetch if isinstance(fetch, bytes) else lambda: fetch.value
    detector = cluster.worker_model(digest, blob)
    table_spec = TableSpec.from_dict(spec)
    start = 0
    for batch in batches:
        end = start + batch.num_rows
        source = f"partition {partition}, batch of rows {start + 1}-{end}"
        scores, flags = cluster.score_rows(batch.to_pandas(), detector, table_spec, source)
        start = end
        columns = [batch.column(batch.schema.get_field_index(c)) for c in kept]
        yield pa.RecordBatch.from_arrays(
            [*columns, pa.array(scores, pa.float64()), pa.array(flags, pa.bool_())],
            names=[*kept, *cluster.SCORE_COLUMNS],
        )


def score(
    model: Any,
    sdf: Any,
    *,
    keep: str | Sequence[str] | None = None,
    spec: TableSpec | None = None,
    key: bytes | None = None,
) -> Any:
    """Add ``anomaly_score`` and ``is_anomaly`` to every row of a Spark DataFrame (lazily).

    The scores are those of ``anomalia score`` on the same rows, bit for bit.

    Parameters
    ----------
    model : str, path-like or fitted detector
        A model file on the driver (``anomalia fit ... --out``), or a fitted detector.
    sdf : pyspark.sql.DataFrame
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
        the driver; workers check the bytes' SHA-256).

    Returns
    -------
    pyspark.sql.DataFrame
        The kept columns, then ``anomaly_score`` (double, higher = more anomalous) and
        ``is_anomaly`` (boolean, score above the model's threshold); same partitions.

    Raises
    ------
    anomalia.errors.ModelFileError
        The model file is missing, damaged or wrongly signed (raised here, before any job).
    pyspark.errors.PythonException
        When an action runs: a batch's rows do not fit the model; the message ends with the
        worker's ``anomalia.errors.DataError`` line.
    """
    sql = _require()
    from pyspark.sql.types import BooleanType, DoubleType, StructField, StructType

    if not isinstance(sdf, sql.DataFrame):
        raise AnomaliaError(f"expected a Spark DataFrame, got {type(sdf).__name__}")
    blob, digest, _, spec = cluster.prepare(model, spec=spec, key=key)
    kept = cluster.output_columns(sdf.columns, keep)
    schema = StructType(
        [sdf.schema[c] for c in kept]
        + [
            StructField("anomaly_score", DoubleType(), True),
            StructField("is_anomaly", BooleanType(), True),
        ]
    )
    try:
        fetch: Any = sdf.sparkSession.sparkContext.broadcast(blob)
    except Exception:  # Spark Connect: no SparkContext on the client
        fetch = blob
    func = functools.partial(
        _score_batches, digest=digest, fetch=fetch, spec=spec.to_dict(), kept=kept
    )
    return sdf.mapInArrow(func, schema)


def sample(sdf: Any, n: int, *, random_state: int = 0) -> pd.DataFrame:
    """A uniform random sample of ``n`` rows, drawn on the cluster, as a pandas DataFrame.

    Every row gets an independent uniform random key (``rand(random_state)``, seeded per
    partition by Spark) and the ``n`` rows with the smallest keys are kept: Spark's
    ``TakeOrderedAndProject``, a top-``n`` per partition merged on the driver, so only about
    ``n`` rows per partition travel. Every set of ``n`` rows is equally likely, whatever the
    partition sizes.

    Parameters
    ----------
    sdf : pyspark.sql.DataFrame
        The rows to sample from.
    n : int
        Number of rows (all rows, in random order, when the table has fewer).
    random_state : int, default=0
        Seed: the same seed and partitioning give the same sample.

    Returns
    -------
    pandas.DataFrame
        The sampled rows in random order, with ``sdf``'s columns and a 0..n-1 index.
    """
    sql = _require()
    from pyspark.sql import functions as F

    if not isinstance(sdf, sql.DataFrame):
        raise AnomaliaError(f"expected a Spark DataFrame, got {type(sdf).__name__}")
    n = cluster.check_rows(n)
    if _KEY in sdf.columns:
        raise AnomaliaError(f"the data has a column named {_KEY!r}; rename it")
    picked = sdf.withColumn(_KEY, F.rand(int(random_state))).orderBy(_KEY).limit(n).drop(_KEY)
    try:
        # through Arrow (Spark 4+): the dtypes pandas.read_parquet gives for the same table
        frame = picked.toArrow().to_pandas() if hasattr(picked, "toArrow") else picked.toPandas()
    except Exception as exc:
        rebuilt = _anomalia_error(exc)
        if rebuilt is None:
            raise
        raise rebuilt from None
    return frame.reset_index(drop=True)


def session_builder(master: str = "local[2]") -> Any:
    """A ``SparkSession`` builder for scoring on this machine, or on the cluster ``master``.

    Set: no web UI and no console progress bar, 8 shuffle partitions, 4 GiB of driver
    memory. For a ``local`` master also: the driver bound to 127.0.0.1
    (``spark.driver.host``, ``spark.driver.bindAddress``, and ``$SPARK_LOCAL_IP`` unless
    already set) and Python workers running this interpreter (``$PYSPARK_PYTHON`` unless
    already set), so that they import this anomalia. These environment variables stay set
    in this process: they only matter to Spark, and are read when its JVM and workers start.

    Parameters
    ----------
    master : str, default="local[2]"
        Spark master URL: ``local[N]`` for N cores of this machine, or a cluster's URL.
    """
    sql = _require()
    builder = (
        sql.SparkSession.builder.master(master)
        .appName("anomalia-score")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.driver.memory", "4g")
    )
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = (
            builder.config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.pyspark.python", os.environ["PYSPARK_PYTHON"])
        )
    return builder


def score_files(
    model_path: str | os.PathLike[str],
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    master: str | None = None,
    keep: str | Sequence[str] | None = None,
    key: bytes | None = None,
) -> int:
    """Score a Parquet file or folder of Parquet files into a folder of Parquet part files.

    Parameters
    ----------
    model_path : str or path-like
        The model file.
    data : str or path-like
        A Parquet file, or a folder of them (read with ``spark.read.parquet``).
    out : str or path-like
        Output folder, which must not exist yet: Spark's ``part-*.parquet`` files (and a
        ``_SUCCESS`` marker); read it back with ``pandas.read_parquet(out)``. Written beside
        ``out`` and renamed into place, so no partial folder is left there.
    master : str, optional
        Spark master URL. An active SparkSession is used as it is (and left running);
        without one, a session on ``master`` (default ``"local[2]"``, 2 cores of this
        machine; see :func:`session_builder`) is started and stopped by this call.
    keep : str or sequence of str, optional
        Input columns to keep beside the scores (default: all).
    key : bytes, optional
        Signing key the model file must be signed with.

    Returns
    -------
    int
        The number of rows scored.

    Raises
    ------
    anomalia.errors.DataError
        The data does not fit the model (the worker's message).
    """
    sql = _require()
    out, data = cluster.check_job(model_path, data, out, key=key)
    active = sql.SparkSession.getActiveSession()
    if active is not None and master is not None and active.sparkContext.master != master:
        raise AnomaliaError(
            f"a SparkSession on {active.sparkContext.master} is already active; stop it to "
            f"score on {master}, or leave master unset to use it"
        )
    spark = active or session_builder(master or "local[2]").getOrCreate()
    try:
        scored = score(model_path, spark.read.parquet(str(data)), keep=keep, key=key)

        def write(tmp: Path) -> None:
            try:
                scored.write.parquet(str(tmp))
            except Exception as exc:
                rebuilt = _anomalia_error(exc)
                if rebuilt is None:
                    raise
                raise rebuilt from None

        cluster.atomic_folder(out, write)
    finally:
        if active is None:
            spark.stop()
    return cluster.parquet_rows(out)
