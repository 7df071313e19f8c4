"""Streamed training: auto-encoders learn from a file a batch at a time, in bounded memory,
and a file that fits the buffer gives bitwise the in-memory model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.feather as feather
import pytest
import torch
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

import anomalia
import anomalia.detectors.autoencoder as ae_module
import anomalia.stream._train as stream_train
from anomalia.cli.app import app
from anomalia.detectors.autoencoder import AEDetector, VAEDetector, VQVAEDetector
from anomalia.errors import DataError
from anomalia.io import TableSpec, read_table
from anomalia.stream import fit_streaming
from anomalia.training import shuffled_batches

FAST = {"hidden": (16,), "epochs": 3, "batch_size": 32, "random_state": 0}
SPEC = TableSpec(label_column="label", id_column="id")


def run(*args, **kw):
    return CliRunner().invoke(app, [str(a) for a in args], **kw)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """1,500 rows near a 2-D plane in 6-D, 2 % planted anomalies, in three formats."""
    tmp = tmp_path_factory.mktemp("stream_train")
    rng = np.random.default_rng(0)
    n = 1500
    z = rng.normal(size=(n, 2))
    X = np.column_stack([z, z @ rng.normal(size=(2, 4))]) + 0.05 * rng.normal(size=(n, 6))
    y = (np.arange(n) % 50 == 7).astype(int)
    X[y == 1] = 2.0 * rng.normal(size=(int(y.sum()), 6))
    df = pd.DataFrame(X * [1, 10, 100, 1, 1, 1] + [0, 0, 1e6, 0, 0, 0], columns=list("abcdef"))
    df.insert(0, "id", np.arange(n))
    df["label"] = y
    paths = {"csv": tmp / "t.csv", "parquet": tmp / "t.parquet", "arrow": tmp / "t.arrow"}
    df.to_csv(paths["csv"], index=False)
    df.to_parquet(paths["parquet"], index=False, row_group_size=300)
    feather.write_feather(df, paths["arrow"], chunksize=300)
    return df, paths


@pytest.fixture(scope="module")
def reference(files):
    """The in-memory fit on the normal rows, and the whole table."""
    ds = read_table(files[1]["csv"], SPEC)
    return AEDetector(**FAST).fit(ds.X[ds.y == 0]), ds


def _same_weights(a, b):
    sa, sb = a.module_.state_dict(), b.module_.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize("fmt", ["csv", "parquet", "arrow"])
def test_a_file_within_the_buffer_gives_bitwise_the_in_memory_model(files, reference, fmt):
    _, paths = files
    ref, ds = reference
    det = AEDetector(**FAST)
    result = fit_streaming(det, str(paths[fmt]), SPEC, rows=256)
    assert not result.streamed and result.rows == int((ds.y == 0).sum())
    assert result.spec.feature_names == list("abcdef")
    _same_weights(ref, det)
    np.testing.assert_array_equal(det.anomaly_score(ds.X), ref.anomaly_score(ds.X))
    assert det.threshold_ == ref.threshold_


def _spy(monkeypatch):
    """Record the reader's batch sizes and the most rows the shuffle buffer held: rows in
    (blocks it took) less rows out (minibatches it gave), when it takes each block."""
    seen = {"blocks": [], "held": [], "batches": []}
    reader = stream_train.batches

    def batches(*args, **kw):
        for frame in reader(*args, **kw):
            seen["blocks"].append(len(frame))
            yield frame

    shuffle = ae_module.shuffled_batches

    def shuffled(blocks, capacity, batch_size, generator):
        count = {"in": 0, "out": 0}

        def counted():
            for block in blocks:
                count["in"] += len(block[0])
                seen["held"].append(count["in"] - count["out"])
                yield block

        for batch in shuffle(counted(), capacity, batch_size, generator):
            count["out"] += len(batch[0])
            seen["batches"].append(len(batch[0]))
            yield batch

    monkeypatch.setattr(stream_train, "batches", batches)
    monkeypatch.setattr(ae_module, "shuffled_batches", shuffled)
    return seen


def test_streamed_fit_is_bounded_seeded_and_learns(files, reference, monkeypatch):
    df, paths = files
    ref, ds = reference
    seen = _spy(monkeypatch)
    det = AEDetector(**FAST)
    result = fit_streaming(det, str(paths["parquet"]), SPEC, buffer_rows=200, rows=100)
    assert result.streamed and result.rows_read == len(df) and result.buffer_rows == 200
    assert max(seen["blocks"]) <= 100
    assert max(seen["held"]) <= 200 < len(df)  # the buffer, never the file
    assert set(seen["batches"]) <= set(range(2, 33))
    # validation rows are held out of the epochs: each epoch trains on the other rows once
    n_val = result.validation_rows
    assert n_val == int(result.rows * 0.1)
    assert sum(seen["batches"]) <= det.n_epochs_ * (result.rows - n_val)
    auc = roc_auc_score(ds.y, det.anomaly_score(ds.X))
    ref_auc = roc_auc_score(ds.y, ref.anomaly_score(ds.X))
    assert auc > 0.9 and auc > ref_auc - 0.05
    assert np.isfinite(det.threshold_) and (det.anomaly_score(ds.X) > det.threshold_).any()
    again = AEDetector(**FAST)
    fit_streaming(again, str(paths["csv"]), SPEC, buffer_rows=200, rows=100)  # CSV: same rows
    np.testing.assert_array_equal(again.anomaly_score(ds.X), det.anomaly_score(ds.X))
    other = AEDetector(**{**FAST, "random_state": 1})
    fit_streaming(other, str(paths["arrow"]), SPEC, buffer_rows=200, rows=100)
    assert not np.array_equal(other.anomaly_score(ds.X), det.anomaly_score(ds.X))


def test_streamed_standardisation_is_the_in_memory_one(files, reference):
    _, paths = files
    ref, _ = reference
    det = AEDetector(**{**FAST, "epochs": 1})
    fit_streaming(det, str(paths["arrow"]), SPEC, buffer_rows=256, rows=64)
    np.testing.assert_allclose(det.input_shift_, ref.input_shift_, rtol=1e-12, atol=0)
    np.testing.assert_allclose(det.input_scale_, ref.input_scale_, rtol=1e-12, atol=0)
    # the merge is sound far from zero: a mean of 1e6 with unit spread, in uneven blocks
    # (the sum of squares E[x^2] - E[x]^2 is off by 1 % here; the merge by about 1e-11)
    X = 1e6 + np.random.default_rng(1).normal(size=(10_000, 3))
    moments = None
    for block in np.array_split(X, [1, 7, 500, 4321]):
        moments = stream_train._merge(moments, stream_train._moments(block))
    n, mean, m2 = moments
    np.testing.assert_allclose(mean, X.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(np.sqrt(m2 / n), X.std(axis=0), rtol=1e-10)


@pytest.mark.parametrize(
    ("cls", "kw"),
    [
        (VAEDetector, {}),
        (VQVAEDetector, {"n_codes": 8, "code_dim": 2, "n_latents": 2}),
        (AEDetector, {"robust": True, "warmup_epochs": 1, "noise": 0.1}),
    ],
)
def test_every_table_autoencoder_streams(files, cls, kw):
    _, paths = files
    det = cls(**{**FAST, **kw})
    fit_streaming(det, str(paths["parquet"]), SPEC, buffer_rows=256, rows=128)
    ds = read_table(paths["csv"], SPEC)
    assert roc_auc_score(ds.y, det.anomaly_score(ds.X)) > 0.8
    if kw.get("robust"):
        assert det.history_["n_dropped"][0] == 0 and det.history_["n_dropped"][-1] > 0
    if cls is VQVAEDetector:
        assert det.code_usage_.sum() > 0


def test_shuffled_batches_emit_every_row_once_in_bounded_memory():
    x = torch.arange(1000.0)[:, None]
    gen = torch.Generator().manual_seed(0)
    out = list(shuffled_batches(((b,) for b in x.split(97)), 64, 16, gen))
    rows = torch.cat([b[0] for b in out])[:, 0]
    assert sorted(rows.tolist()) == list(range(1000)) and not torch.equal(rows, x[:, 0])
    assert max(len(b[0]) for b in out) == 16
    with pytest.raises(ValueError, match="at least 4"):
        next(shuffled_batches(iter([(x,)]), 63, 16, gen))


def test_a_bad_row_mid_file_is_named_and_nothing_is_written(files, tmp_path):
    df, _ = files
    bad = df.astype({"b": object})
    bad.loc[1233, "b"] = "oops"
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"'oops'.*row 1234"):
        fit_streaming(AEDetector(**FAST), str(path), SPEC, buffer_rows=256, rows=100)
    out = tmp_path / "m.anomalia"
    res = run("fit", path, "-d", "ae", "--label-column", "label", "--id-column", "id",
              "--sample-rows", 500, "--out", out)  # fmt: skip
    assert res.exit_code == 2 and "row 1234" in res.output and "Traceback" not in res.output
    assert not out.exists() and list(tmp_path.glob("*.anomalia*")) == []
    with pytest.raises(DataError, match="not -"):
        fit_streaming(AEDetector(**FAST), "-", SPEC)


def test_cli_streams_an_autoencoder_past_sample_rows(files, tmp_path, monkeypatch):
    _, paths = files
    opts = ["--label-column", "label", "--id-column", "id", "-p", "hidden=16,",
            "-p", "epochs=3", "-p", "batch_size=32"]  # fmt: skip
    whole, within = tmp_path / "whole.anomalia", tmp_path / "within.anomalia"
    res = run("fit", paths["parquet"], "-d", "ae", *opts, "--out", whole)
    assert res.exit_code == 0, res.output
    assert "streamed" not in res.output and "read whole" not in res.output  # unchanged
    res = run("fit", paths["parquet"], "-d", "ae", *opts, "--sample-rows", 500, "--out", within)
    assert res.exit_code == 0, res.output
    assert "read whole" in res.output  # the file fits the buffer: the in-memory fit
    X = read_table(paths["csv"], SPEC).X
    a, b = anomalia.load(whole), anomalia.load(within)
    np.testing.assert_array_equal(a.anomaly_score(X), b.anomaly_score(X))
    _same_weights(a, b)

    monkeypatch.setattr(stream_train, "BUFFER_BYTES", 256 * 8 * 6)  # a 256-row buffer
    streamed = tmp_path / "streamed.anomalia"
    res = run("fit", paths["csv"], "-d", "ae", *opts, "--sample-rows", 500, "--out", streamed)
    assert res.exit_code == 0, res.output
    assert "streamed" in res.output and "buffer of 256 rows" in res.output
    model, manifest = anomalia.persistence.load_model(streamed)
    assert manifest["metadata"]["train_rows"] == 1470
    ds = read_table(paths["csv"], SPEC)
    assert roc_auc_score(ds.y, model.anomaly_score(ds.X)) > 0.9


def test_streamed_early_stopping_ends_the_rows_bar_full_and_the_cli_says_so(
    files, tmp_path, monkeypatch
):
    _, paths = files
    monkeypatch.setattr(stream_train, "BUFFER_BYTES", 256 * 8 * 6)  # a 256-row buffer
    quick = {"hidden": (2,), "epochs": 60, "patience": 1, "lr": 0.3, "validation_fraction": 0.5}
    det = AEDetector(batch_size=32, random_state=0, **quick)
    calls = []
    result = fit_streaming(det, str(paths["parquet"]), SPEC, sample_rows=500,
                           progress=lambda *a: calls.append(a))  # fmt: skip
    assert result.streamed and det.stopped_epoch_ == det.n_epochs_ < 60
    assert calls[-1][0] == calls[-1][1] == 1500 * (det.n_epochs_ + 1)  # the bar ends full
    params = [x for k, v in quick.items() for x in ("-p", f"{k}={v}".replace("(2,)", "2,"))]
    res = run("fit", paths["parquet"], "-d", "ae", "--label-column", "label", "--id-column",
              "id", *params, "-p", "batch_size=32", "--sample-rows", 500,
              "--out", tmp_path / "m.anomalia")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "streamed" in res.output
    epoch = anomalia.load(tmp_path / "m.anomalia").stopped_epoch_
    assert f"stopped at epoch {epoch}: no improvement for 1 epoch;" in res.output
