"""Scoring on a cluster: anomalia.dask on a real distributed.LocalCluster (2 worker processes)
and anomalia.spark on a real local SparkSession (2 cores), against in-process scoring.

Scores must equal in-process ``anomaly_score`` on the same rows exactly (float equality),
with a one-hot column (and a category never seen in training), an id column and partitions
of unequal sizes. The cluster and the session start once for the module.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from anomalia.cli.app import app
from anomalia.errors import AnomaliaError, DataError, ModelFileError
from anomalia.io import TableSpec, dataset_from_frame, read_table
from anomalia.persistence import load_model

pytestmark = pytest.mark.slow

DETECTORS = {
    "gaussian": [],
    "iforest": ["-p", "n_estimators=25"],
    "ae": ["-p", "hidden=8,", "-p", "epochs=3", "-p", "batch_size=64"],
}
PART_SIZES = (500, 1100, 1400)  # unequal on purpose: a sampler must not favour small parts


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    protos = ["tcp", "udp", "icmp"] if seed == 0 else ["tcp", "udp", "icmp", "gre"]
    return pd.DataFrame(
        {
            "id": [f"s{seed}-{i:05d}" for i in range(n)],
            "bytes": rng.lognormal(6, 1, n),
            "duration": rng.exponential(2.0, n),
            "proto": rng.choice(protos, n),
            "flags": rng.integers(0, 8, n),
        }
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Training and test tables, the test table also as a folder of 3 unequal part files,
    and one model file per detector, fitted with the CLI."""
    root = tmp_path_factory.mktemp("scale")
    train, test = _table(1500, 0), _table(sum(PART_SIZES), 1)
    paths = {"train": root / "train.parquet", "test": root / "test.parquet"}
    train.to_parquet(paths["train"], index=False)
    test.to_parquet(paths["test"], index=False)
    parts = root / "test-parts"
    parts.mkdir()
    bounds = np.cumsum((0, *PART_SIZES))
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        test.iloc[lo:hi].to_parquet(parts / f"part-{i}.parquet", index=False)
    paths["parts"] = parts
    runner = CliRunner()
    for name, params in DETECTORS.items():
        model = root / f"{name}.anomalia"
        result = runner.invoke(
            app,
            [
                "fit",
                str(paths["train"]),
                "--out",
                str(model),
                "-d",
                name,
                "--categorical",
                "onehot",
                "--id-column",
                "id",
                *params,
            ],
        )
        assert result.exit_code == 0, result.output
        paths[name] = model
    return paths


def _reference(model: Path, data: Path) -> pd.DataFrame:
    """In-process scores of ``data``, read with the model's saved spec (as `anomalia score`)."""
    det, manifest = load_model(model)
    ds = read_table(data, TableSpec.from_dict(manifest["metadata"]["table"]))
    scores = det.anomaly_score(ds.X)
    return pd.DataFrame(
        {"anomaly_score": scores, "is_anomaly": scores > det.threshold_},
        index=ds.ids.to_numpy(),
    )


def _assert_same(got: pd.DataFrame, ref: pd.DataFrame) -> None:
    assert len(got) == len(ref) and got["id"].is_unique
    got = got.set_index("id").loc[ref.index]
    assert got["anomaly_score"].dtype == np.float64 and got["is_anomaly"].dtype == bool
    np.testing.assert_array_equal(got["anomaly_score"].to_numpy(), ref["anomaly_score"].to_numpy())
    np.testing.assert_array_equal(got["is_anomaly"].to_numpy(), ref["is_anomaly"].to_numpy())


def _sample_counts(sample: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """How many sampled rows come from each part file and from each tenth of the table."""
    row = sample["id"].str.split("-").str[1].astype(int).to_numpy()
    bounds = np.cumsum((0, *PART_SIZES))
    per_part = np.histogram(row, bins=bounds)[0]
    per_tenth = np.histogram(row, bins=np.linspace(0, bounds[-1], 11))[0]
    return per_part, per_tenth


def _check_uniform(sample: pd.DataFrame, n: int) -> None:
    assert len(sample) == n and sample["id"].is_unique
    per_part, per_tenth = _sample_counts(sample)
    expected = n * np.asarray(PART_SIZES) / sum(PART_SIZES)
    assert stats.chisquare(per_part, expected).pvalue > 0.01, per_part
    assert stats.chisquare(per_tenth).pvalue > 0.01, per_tenth


def _bad_table() -> pd.DataFrame:
    """The test table with text in the numeric column 'bytes' at table row 1201."""
    bad = _table(sum(PART_SIZES), 1)
    bad["bytes"] = bad["bytes"].astype(object)
    bad.loc[1200, "bytes"] = "n/a"
    return bad


# -- Dask ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dask_client():
    pytest.importorskip("dask.dataframe", reason="the dask extra is not installed")
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            host="127.0.0.1",
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},  # not 8787: may be taken
        ) as local,
        distributed.Client(local) as client,
    ):
        yield client


@pytest.fixture
def ddf(dask_client, files):
    import dask.dataframe as dd

    frame = dd.read_parquet(str(files["parts"]))
    assert frame.npartitions == len(PART_SIZES)
    return frame


@pytest.mark.parametrize("name", list(DETECTORS))
def test_dask_scores_equal_in_process_scores(dask_client, ddf, files, name):
    import anomalia.dask as adask
    from anomalia._utils import cluster

    scored = adask.score(files[name], ddf, keep=["id"])
    assert list(scored.columns) == ["id", "anomaly_score", "is_anomaly"]
    got = scored.compute()
    assert list(got.dtypes.astype(str)) == list(scored.dtypes.astype(str))  # meta is right
    _assert_same(got, _reference(files[name], files["test"]))
    # the model was loaded at most once per worker process, whatever the partitions
    scored.compute()
    digest = cluster.digest_of(files[name].read_bytes())
    loads = dask_client.run(lambda: cluster.loads[digest])
    assert set(loads.values()) <= {0, 1} and sum(loads.values()) >= 1, loads


def test_dask_sample_fit_locally_score_detector(ddf, files):
    """The documented pattern: sample on the cluster, fit locally, score on the cluster."""
    import anomalia.dask as adask
    from anomalia.registry import make_detector

    train = adask.sample(ddf, 600, random_state=0)
    ds = dataset_from_frame(train, id_column="id", categorical="onehot")
    det = make_detector("gaussian").fit(ds.X)
    got = adask.score(det, ddf, spec=ds.spec).compute()
    assert list(got.columns) == [*ddf.columns, "anomaly_score", "is_anomaly"]
    empty = adask.score(det, ddf[ddf["flags"] < 0], spec=ds.spec, keep="id").compute()
    assert len(empty) == 0 and list(empty.dtypes.astype(str)) == ["string", "float64", "bool"]
    ref_ds = read_table(files["test"], ds.spec)
    scores = det.anomaly_score(ref_ds.X)
    ref = pd.DataFrame(
        {"anomaly_score": scores, "is_anomaly": scores > det.threshold_},
        index=ref_ds.ids.to_numpy(),
    )
    _assert_same(got, ref)


# dask's Parquet reader, run in this process by the threaded scheduler, uses an argument
# that pandas 3.1 deprecates
@pytest.mark.filterwarnings(
    "ignore:The inplace keyword in DataFrame.reset_index:pandas.errors.Pandas4Warning"
)
def test_dask_without_a_client_ships_the_model_once_in_the_graph(ddf, files, monkeypatch):
    import pickle

    import dask

    import anomalia.dask as adask

    monkeypatch.setattr(adask, "_client", lambda: None)
    scored = adask.score(files["iforest"], ddf, keep=["id"])
    graph = dict(scored.__dask_graph__())
    blob = files["iforest"].read_bytes()
    assert [k for k in graph if "anomalia-model-" in str(k)]  # one key holds the bytes
    assert len(pickle.dumps(graph)) < 2 * len(blob)  # not a copy per partition (3 here)
    with dask.config.set(scheduler="threads"):
        got = scored.compute()
    _assert_same(got, _reference(files["iforest"], files["test"]))


def test_dask_sample_is_uniform_seeded_and_sized(ddf):
    import anomalia.dask as adask

    first = adask.sample(ddf, 900, random_state=1)
    _check_uniform(first, 900)
    assert list(first.columns) == list(ddf.columns)
    assert first.equals(adask.sample(ddf, 900, random_state=1))
    assert not first["id"].equals(adask.sample(ddf, 900, random_state=2)["id"])
    everything = adask.sample(ddf, 10_000)
    assert len(everything) == sum(PART_SIZES) and everything["id"].is_unique
    assert len(adask.sample(ddf, 0)) == 0
    with pytest.raises(AnomaliaError, match="n must be"):
        adask.sample(ddf, -1)


def test_dask_bad_partition_raises_data_error(dask_client, files):
    import dask.dataframe as dd

    import anomalia.dask as adask

    bad = dd.from_pandas(_bad_table(), npartitions=3)  # 1000 rows each: row 201 of part 1
    with pytest.raises(DataError, match=r"^partition 1: text in numeric column 'bytes': 'n/a' "):
        adask.score(files["gaussian"], bad).compute()


def test_dask_score_files_end_to_end(files, tmp_path):
    pytest.importorskip("distributed", reason="the dask extra is not installed")
    import anomalia.dask as adask

    out = tmp_path / "scores"
    assert adask.score_files(files["iforest"], files["parts"], out, keep=["id"]) == sum(PART_SIZES)
    assert sorted(p.name for p in out.iterdir()) == [f"part.{i}.parquet" for i in range(3)]
    _assert_same(pd.read_parquet(out), _reference(files["iforest"], files["test"]))
    with pytest.raises(AnomaliaError, match="already exists"):
        adask.score_files(files["iforest"], files["parts"], out)
    broken = tmp_path / "broken.anomalia"
    broken.write_bytes(files["iforest"].read_bytes()[:-100])
    with pytest.raises(ModelFileError, match="broken.anomalia"):
        adask.score_files(broken, files["parts"], tmp_path / "other")
    assert not (tmp_path / "other").exists()


def _cli_score(files: dict, out: Path, *engine: str):
    """``anomalia score`` of the gaussian model on the Parquet parts, with ``engine``'s flags."""
    args = ["score", str(files["gaussian"]), str(files["parts"]), "--out", str(out), *engine]
    return CliRunner().invoke(app, args)


def test_cli_score_engine_dask(dask_client, files, tmp_path):
    out = tmp_path / "cli-scores"
    address = dask_client.scheduler.address
    res = _cli_score(files, out, "--engine", "dask", "--scheduler", address, "--keep-columns", "id")
    assert res.exit_code == 0, res.output
    _assert_same(pd.read_parquet(out), _reference(files["gaussian"], files["test"]))
    res = _cli_score(files, out, "--engine", "dask", "--master", "local[2]")
    assert res.exit_code == 2 and "--master for --engine spark" in res.output


def test_dask_model_and_column_errors_are_clear(files, tmp_path):
    dd = pytest.importorskip("dask.dataframe", reason="the dask extra is not installed")
    import anomalia.dask as adask
    from anomalia.registry import make_detector

    ddf = dd.from_pandas(_table(50, 1), npartitions=2)
    with pytest.raises(ModelFileError, match="model file not found"):
        adask.score(tmp_path / "missing.anomalia", ddf)
    with pytest.raises(AnomaliaError, match="GaussianDetector is not fitted"):
        adask.score(make_detector("gaussian"), ddf)
    with pytest.raises(AnomaliaError, match="model must be a model file path or a fitted"):
        adask.score(42, ddf)
    with pytest.raises(DataError, match=r"keep names column\(s\) \['nope'\]"):
        adask.score(files["gaussian"], ddf, keep=["nope"])
    with pytest.raises(DataError, match="already has column"):
        adask.score(files["gaussian"], ddf.assign(anomaly_score=1.0))
    with pytest.raises(AnomaliaError, match="expected a dask DataFrame"):
        adask.score(files["gaussian"], _table(50, 1))
    det, manifest = load_model(files["gaussian"])
    signed = tmp_path / "signed.anomalia"
    det.save(signed, metadata=manifest["metadata"], key=b"k" * 32)
    with pytest.raises(ModelFileError, match="signature does not match"):
        adask.score(signed, ddf, key=b"w" * 32)
    assert adask.score(signed, ddf, key=b"k" * 32).npartitions == 2


# -- Spark -----------------------------------------------------------------------------------
def _java_missing() -> str | None:
    java = shutil.which("java")
    if java is None:
        return "Java is not installed (PySpark needs a JVM)"
    if subprocess.run([java, "-version"], capture_output=True, check=False).returncode != 0:
        return "`java -version` fails"
    return None


# PySpark 4.3 warns, on the driver, that it does not fully support pandas 3
spark_warnings = pytest.mark.filterwarnings(
    "ignore:PySpark does not yet fully support pandas:FutureWarning"
)


def _session():
    """The test session: anomalia's local[2] builder, several Arrow batches per partition."""
    import anomalia.spark as aspark

    with pytest.MonkeyPatch.context() as mp:  # what session_builder would set, undone after
        mp.setenv("SPARK_LOCAL_IP", "127.0.0.1")
        mp.setenv("PYSPARK_PYTHON", sys.executable)
        session = (
            aspark.session_builder("local[2]")
            .config("spark.sql.execution.arrow.maxRecordsPerBatch", "400")
            .getOrCreate()
        )
    session.sparkContext.setLogLevel("FATAL")  # failing tasks are expected below
    return session


@pytest.fixture(scope="module")
def spark_jvm():
    """Starts the JVM once for the module (a test may stop and restart the session on it)."""
    pytest.importorskip("pyspark", reason="the spark extra is not installed")
    if reason := _java_missing():
        pytest.skip(reason)
    from pyspark.sql import SparkSession

    _session()
    yield
    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()


@pytest.fixture
def spark(spark_jvm):
    from pyspark.sql import SparkSession

    return SparkSession.getActiveSession() or _session()


def _collect(sdf) -> pd.DataFrame:
    return sdf.toArrow().to_pandas()


@pytest.fixture
def sdf(spark, files):
    return spark.read.parquet(str(files["parts"])).repartition(4)


def _worker_loads(sdf, digest: str) -> dict[int, int]:
    """How many times each Python worker process that runs Arrow tasks loaded the model."""
    import pyarrow as pa

    def report(batches):
        from anomalia._utils import cluster

        for _ in batches:
            yield pa.RecordBatch.from_pylist([{"pid": os.getpid(), "n": cluster.loads[digest]}])

    rows = _collect(sdf.mapInArrow(report, "pid long, n long"))
    return dict(zip(rows["pid"], rows["n"], strict=True))


@spark_warnings
# ae: on Dask only; in Spark every Python worker imports torch, which costs ~20 s here
@pytest.mark.parametrize("name", ["gaussian", "iforest"])
def test_spark_scores_equal_in_process_scores(sdf, files, name):
    import anomalia.spark as aspark
    from anomalia._utils import cluster

    scored = aspark.score(files[name], sdf, keep=["id"])
    assert scored.columns == ["id", "anomaly_score", "is_anomaly"]
    assert [f.dataType.typeName() for f in scored.schema.fields] == ["string", "double", "boolean"]
    _assert_same(_collect(scored), _reference(files[name], files["test"]))
    _collect(scored)
    loads = _worker_loads(sdf, cluster.digest_of(files[name].read_bytes()))
    assert set(loads.values()) <= {0, 1} and sum(loads.values()) >= 1, loads


@spark_warnings
def test_spark_sample_fit_locally_score_detector(sdf, files):
    """The documented pattern: sample on the cluster, fit locally, score on the cluster."""
    import anomalia.spark as aspark
    from anomalia.registry import make_detector

    train = aspark.sample(sdf, 600, random_state=0)
    ds = dataset_from_frame(train, id_column="id", categorical="onehot")
    det = make_detector("iforest", n_estimators=25, random_state=0).fit(ds.X)
    got = _collect(aspark.score(det, sdf, spec=ds.spec))
    assert list(got.columns) == [*sdf.columns, "anomaly_score", "is_anomaly"]
    empty = _collect(aspark.score(det, sdf.filter("flags < 0"), spec=ds.spec, keep="id"))
    assert len(empty) == 0 and list(empty.columns) == ["id", "anomaly_score", "is_anomaly"]
    ref_ds = read_table(files["test"], ds.spec)
    scores = det.anomaly_score(ref_ds.X)
    ref = pd.DataFrame(
        {"anomaly_score": scores, "is_anomaly": scores > det.threshold_},
        index=ref_ds.ids.to_numpy(),
    )
    _assert_same(got, ref)


def test_spark_sample_is_uniform_seeded_and_sized(spark, files):
    import anomalia.spark as aspark

    parts = spark.read.parquet(str(files["parts"]))
    first = aspark.sample(parts, 900, random_state=1)
    _check_uniform(first, 900)
    assert list(first.columns) == parts.columns
    assert first.equals(aspark.sample(parts, 900, random_state=1))
    assert not first["id"].equals(aspark.sample(parts, 900, random_state=2)["id"])
    everything = aspark.sample(parts, 10_000)
    assert len(everything) == sum(PART_SIZES) and everything["id"].is_unique
    assert len(aspark.sample(parts, 0)) == 0
    with pytest.raises(AnomaliaError, match="n must be"):
        aspark.sample(parts, 2.5)


@spark_warnings
def test_spark_bad_batch_raises_data_error(spark, files, tmp_path):
    from pyspark.errors import PythonException

    import anomalia.spark as aspark

    bad_file = tmp_path / "bad.parquet"
    bad = _bad_table()
    bad["bytes"] = bad["bytes"].astype(str)
    bad.to_parquet(bad_file, index=False)  # one partition; Arrow batches of 400 rows
    bad_sdf = spark.read.parquet(str(bad_file))
    # what a user's own action sees: Spark's PythonException ending in the worker's error
    with pytest.raises(PythonException, match=r"anomalia\.errors\.DataError: partition 0, batch"):
        _collect(aspark.score(files["gaussian"], bad_sdf))
    # score_files runs the job itself and raises the anomalia error again
    out = tmp_path / "scores"
    with pytest.raises(
        DataError,
        match=r"^partition 0, batch of rows 1201-1600: text in numeric column 'bytes': 'n/a' "
        r"at row 1 ",
    ):
        aspark.score_files(files["gaussian"], bad_file, out)
    assert not out.exists() and not list(tmp_path.glob(".scores*"))


@spark_warnings
def test_spark_score_files_in_the_active_session(spark, files, tmp_path):
    from pyspark.sql import SparkSession

    import anomalia.spark as aspark

    out = tmp_path / "scores"
    rows = aspark.score_files(files["gaussian"], files["parts"], out, keep=["id"])
    assert rows == sum(PART_SIZES)
    assert (out / "_SUCCESS").exists() and list(out.glob("part-*.parquet"))
    _assert_same(pd.read_parquet(out), _reference(files["gaussian"], files["test"]))
    assert SparkSession.getActiveSession() is spark  # the caller's session stays up
    with pytest.raises(AnomaliaError, match="already active"):
        aspark.score_files(files["gaussian"], files["parts"], tmp_path / "other", master="local[1]")
    with pytest.raises(AnomaliaError, match="already exists"):
        aspark.score_files(files["gaussian"], files["parts"], out)


@spark_warnings
def test_cli_score_engine_spark(spark, files, tmp_path):
    out = tmp_path / "cli-scores"
    res = _cli_score(files, out, "--engine", "spark", "--keep-columns", "id")
    assert res.exit_code == 0, res.output
    _assert_same(pd.read_parquet(out), _reference(files["gaussian"], files["test"]))


@spark_warnings
def test_spark_score_files_starts_and_stops_its_own_session(spark, files, tmp_path, monkeypatch):
    """The default path: no active session, so a local[2] one is started, then stopped."""
    from pyspark.sql import SparkSession

    import anomalia.spark as aspark

    spark.stop()
    monkeypatch.delenv("SPARK_LOCAL_IP", raising=False)
    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)
    out = tmp_path / "scores"
    rows = aspark.score_files(files["iforest"], files["parts"], out, keep=["id"])
    assert rows == sum(PART_SIZES)
    assert SparkSession.getActiveSession() is None
    assert os.environ["PYSPARK_PYTHON"] == sys.executable  # workers import this anomalia
    assert os.environ["SPARK_LOCAL_IP"] == "127.0.0.1"
    _assert_same(pd.read_parquet(out), _reference(files["iforest"], files["test"]))
