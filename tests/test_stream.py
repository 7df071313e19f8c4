"""Streaming: record batches give the rows, and the scores, that reading whole files gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.feather as feather
import pytest
from scipy.stats import chisquare
from typer.testing import CliRunner

import anomalia
from anomalia.cli.app import app
from anomalia.errors import DataError
from anomalia.io import read_table
from anomalia.stream import batches, sample, score_to


def run(*args, **kw):
    return CliRunner().invoke(app, [str(a) for a in args], **kw)


@pytest.fixture
def table(tmp_path):
    rng = np.random.default_rng(0)
    n = 1000
    df = pd.DataFrame(rng.normal(size=(n, 3)), columns=["amount", "age", "hour"])
    df.insert(0, "txn", np.arange(n))
    df["channel"] = rng.choice(["web", "shop", "phone"], size=n)
    df["fraud"] = (rng.uniform(size=n) < 0.05).astype(int)
    paths = {
        "csv": tmp_path / "t.csv",
        "parquet": tmp_path / "t.parquet",
        "arrow": tmp_path / "t.arrow",
    }
    df.to_csv(paths["csv"], index=False)
    df.to_parquet(paths["parquet"], index=False, row_group_size=128)
    feather.write_feather(df, paths["arrow"], chunksize=300)
    model = tmp_path / "m.anomalia"
    res = run(
        "fit",
        paths["csv"],
        "-d",
        "gaussian",
        "--label-column",
        "fraud",
        "--id-column",
        "txn",
        "--categorical",
        "onehot",
        "--out",
        model,
    )
    assert res.exit_code == 0, res.output
    return df, paths, model


def _model(model):
    from anomalia.cli._common import open_model
    from anomalia.io import TableSpec

    det, manifest = open_model(model)
    return det, TableSpec.from_dict(manifest["metadata"]["table"])


@pytest.mark.parametrize("fmt", ["csv", "parquet", "arrow"])
def test_streamed_scores_equal_the_in_memory_ones(table, tmp_path, fmt):
    df, paths, model = table
    det, spec = _model(model)
    whole = det.anomaly_score(read_table(paths["csv"], spec).X)
    out = tmp_path / "s.parquet"
    n, flagged = score_to(det, spec, str(paths[fmt]), out, rows=37, keep=["amount"])
    got = pd.read_parquet(out)
    assert n == len(df) and flagged == int((whole > det.threshold_).sum())
    assert list(got.columns) == ["txn", "amount", "anomaly_score", "is_anomaly"]
    np.testing.assert_array_equal(got.anomaly_score.to_numpy(), whole)  # identical floats
    assert got.txn.tolist() == df.txn.tolist()


def test_batches_are_bounded(table):
    _, paths, _ = table
    sizes = [len(b) for b in batches(str(paths["csv"]), rows=100)]
    assert sizes == [100] * 10
    assert max(len(b) for b in batches(str(paths["arrow"]), rows=64)) == 64


def test_a_bad_row_in_the_middle_is_named_and_nothing_is_left(table, tmp_path):
    df, _, model = table
    bad = df.astype({"amount": object})
    bad.loc[633, "amount"] = "oops"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    det, spec = _model(model)
    with pytest.raises(DataError, match=r"'oops'.*row 634"):
        score_to(det, spec, str(tmp_path / "bad.csv"), tmp_path / "s.csv", rows=100)
    assert not (tmp_path / "s.csv").exists()
    assert list(tmp_path.glob(".s.csv*")) == []
    res = run("score", model, tmp_path / "bad.csv", "--out", tmp_path / "s.csv")
    assert res.exit_code == 2 and "row 634" in res.output and "Traceback" not in res.output


def test_stdin_and_stdout(table, tmp_path):
    df, paths, model = table
    res = run(
        "score", model, "-", "--out", "-", "--keep-columns", "hour", input=paths["csv"].read_text()
    )
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0] == "txn,hour,anomaly_score,is_anomaly" and len(lines) == len(df) + 1
    ref = tmp_path / "ref.csv"
    assert run("score", model, paths["csv"], "--out", ref).exit_code == 0
    ref_lines = ref.read_text().splitlines()[1:]
    assert [x.split(",")[2] for x in lines[1:]] == [x.split(",")[1] for x in ref_lines]


def test_keep_all_and_clashes(table, tmp_path):
    df, paths, model = table
    out = tmp_path / "s.csv"
    assert run("score", model, paths["parquet"], "--out", out, "--keep-all").exit_code == 0
    assert list(pd.read_csv(out).columns) == [*df.columns, "anomaly_score", "is_anomaly"]
    res = run("score", model, paths["csv"], "--out", out, "--keep-columns", "nope")
    assert res.exit_code == 2 and "nope" in res.output
    res = run("score", model, paths["csv"], "--out", out, "--keep-all", "--keep-columns", "age")
    assert res.exit_code == 2 and "not both" in res.output


def test_reservoir_sample_is_uniform_and_seeded(tmp_path):
    n_rows, k = 20_000, 2_000
    pd.DataFrame({"i": np.arange(n_rows)}).to_csv(tmp_path / "i.csv", index=False)
    s1, seen = sample(str(tmp_path / "i.csv"), k, random_state=3, rows=700)
    s2, _ = sample(str(tmp_path / "i.csv"), k, random_state=3, rows=700)
    assert seen == n_rows and len(s1) == k and s1.i.is_unique
    assert s1.i.tolist() == s2.i.tolist() == sorted(s1.i.tolist())  # seeded, file order
    counts = np.bincount(s1.i.to_numpy() * 10 // n_rows, minlength=10)
    assert chisquare(counts).pvalue > 0.01  # each tenth of the file equally likely
    small, seen = sample(str(tmp_path / "i.csv"), 10 * n_rows)
    assert seen == n_rows and small.i.tolist() == list(range(n_rows))


def test_fit_samples_a_large_file(table, tmp_path):
    _, paths, model = table
    out = tmp_path / "sampled.anomalia"
    fit = ["fit", paths["parquet"], "-d", "gaussian", "--label-column", "fraud"]
    fit += ["--id-column", "txn", "--categorical", "onehot"]
    res = run(*fit, "--sample-rows", 500, "--out", out)
    assert res.exit_code == 0, res.output
    assert "sample of 500 of 1000 rows" in res.output
    meta_rows = anomalia.persistence.load_model(out)[1]["metadata"]["train_rows"]
    assert meta_rows < 500  # the normal rows of the sample
    # a file within the sample size is fitted whole: the same model as before
    same = tmp_path / "whole.anomalia"
    assert run(*fit, "--out", same).exit_code == 0
    X = read_table(paths["csv"], _model(model)[1]).X
    np.testing.assert_array_equal(
        anomalia.load(same).anomaly_score(X), anomalia.load(model).anomaly_score(X)
    )


def test_a_reader_that_leaves_early_ends_the_pipeline_quietly(tmp_path):
    """`anomalia score ... --out - | head`: when the reader closes the pipe, score stops with
    the status a shell reports for a program stopped by SIGPIPE (141), and says nothing."""
    import subprocess
    import sys

    from anomalia import make_detector

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(60_000, 4)), columns=list("abcd"))
    frame.to_csv(tmp_path / "big.csv", index=False)
    make_detector("gaussian").fit(frame).save(tmp_path / "m.anomalia")
    cli = "from anomalia.cli.app import main; main()"
    args = [sys.executable, "-c", cli, "score", str(tmp_path / "m.anomalia")]
    proc = subprocess.Popen(
        [*args, str(tmp_path / "big.csv"), "--out", "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout.readline() == b"anomaly_score,is_anomaly\n"
    proc.stdout.close()  # what `head -1` does
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141, err
    assert b"error" not in err and b"Traceback" not in err
