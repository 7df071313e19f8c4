"""Detectors that keep learning: ``partial_fit`` and ``anomalia fit --update``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save
from scipy import stats

import anomalia
from anomalia import make_detector
from anomalia.detectors._incremental import batch_moments, merge_moments, update_reservoir
from anomalia.errors import AnomaliaError, DataError, ModelFileError

from .conftest import FAST_PARAMS
from .test_cli import run
from .test_hostile_models import _members, _write

AE_NAMES = ["ae", "dae", "vae", "vqvae"]


def _data(n: int = 600, d: int = 5, seed: int = 0) -> np.ndarray:
    """Correlated features on very different scales, one of them constant."""
    rng = np.random.default_rng(seed)
    X = rng.standard_t(5, size=(n, d)) @ rng.normal(size=(d, d))
    X = X * np.geomspace(1e-2, 1e3, d) + 50.0
    X[:, 2] = 7.0
    return X


def _chunks(X: np.ndarray) -> list[np.ndarray]:
    return np.split(X, [2, 3, 60, 61, 400])  # single rows too (the first call is fit: 2)


def _rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-300))


# -- gaussian: exact streaming moments ------------------------------------------------------------
def test_streaming_moments_equal_those_of_all_rows():
    X = _data()
    acc = batch_moments(X[:1])
    for chunk in [X[1:2], *_chunks(X)[1:]]:
        acc = merge_moments(acc, batch_moments(chunk))
    whole = batch_moments(X)
    assert acc[0] == whole[0] == len(X)
    for got, want in zip(acc[1:], whole[1:], strict=True):
        assert _rel(want, got) < 1e-12


@pytest.mark.parametrize("params", [{}, {"shrinkage": 0.2}, {"shrinkage": 0.0}])
def test_gaussian_partial_fit_over_chunks_equals_fit_on_all_rows(params):
    X = _data()
    full = make_detector("gaussian", **params).fit(X)
    inc = make_detector("gaussian", **params)
    for chunk in _chunks(X):
        inc.partial_fit(chunk)
    assert inc.n_seen_ == len(X) and inc.n_support_ == len(X)
    for name in ("location_", "covariance_", "cholesky_", "log_det_"):
        assert _rel(getattr(full, name), getattr(inc, name)) < 1e-10, name
    np.testing.assert_allclose(inc.scaler_.scale_, full.scaler_.scale_, rtol=1e-12)
    assert inc.shrinkage_ == pytest.approx(full.shrinkage_, rel=1e-10, abs=1e-14)
    assert _rel(full.anomaly_score(X), inc.anomaly_score(X)) < 1e-10


def test_gaussian_ledoit_wolf_from_moments_is_sklearns_coefficient():
    # few rows, many features: the coefficient is far from 0, so a wrong formula shows
    X = np.random.default_rng(1).normal(size=(30, 12)) * np.arange(1, 13)
    full = make_detector("gaussian").fit(X)
    inc = make_detector("gaussian").partial_fit(X[:10]).partial_fit(X[10:])
    assert full.shrinkage_ > 0.1
    assert inc.shrinkage_ == pytest.approx(full.shrinkage_, rel=1e-10)


def test_gaussian_threshold_after_partial_fit_is_set_on_the_latest_batch():
    X = _data()
    det = make_detector("gaussian").fit(X[:300]).partial_fit(X[300:])
    assert det.threshold_ == pytest.approx(np.quantile(det.anomaly_score(X[300:]), 0.99))
    det = make_detector("gaussian", contamination=0.1).fit(X[:300]).partial_fit(X[300:])
    assert np.mean(det.anomaly_score(X[300:]) > det.threshold_) == pytest.approx(0.1, abs=0.01)
    assert det.calibration_["strategy"] == "contamination"


def test_first_partial_fit_is_fit():
    X = _data()
    for name in ("gaussian", "iforest", "knn", "ae"):
        a = make_detector(name, **FAST_PARAMS[name]).fit(X)
        b = make_detector(name, **FAST_PARAMS[name]).partial_fit(X)
        np.testing.assert_array_equal(a.anomaly_score(X), b.anomaly_score(X))
        assert a.threshold_ == b.threshold_


def test_robust_gaussian_refits_on_its_running_sample():
    X = _data(800)
    det = make_detector("gaussian", support_fraction=0.6, reservoir_size=300, random_state=0)
    det.fit(X[:200]).partial_fit(X[200:500]).partial_fit(X[500:])
    assert det.reservoir_.shape == (300, X.shape[1]) and det.n_seen_ == 800
    ref = make_detector("gaussian", support_fraction=0.6).fit(det.reservoir_)
    np.testing.assert_array_equal(det.location_, ref.location_)
    np.testing.assert_array_equal(det.covariance_, ref.covariance_)
    assert det.threshold_ == ref.threshold_


# -- reservoir detectors --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["iforest", "knn"])
def test_reservoir_detectors_equal_fit_on_their_sample(name):
    X = _data(900)
    params = {**FAST_PARAMS[name], "reservoir_size": 250, "random_state": 3}
    det = make_detector(name, **params).fit(X[:100])
    for chunk in np.array_split(X[100:], 4):
        det.partial_fit(chunk)
    assert det.reservoir_.shape == (250, X.shape[1]) and det.n_seen_ == 900
    ref = make_detector(name, **params).fit(det.reservoir_)
    np.testing.assert_array_equal(det.anomaly_score(X), ref.anomaly_score(X))
    assert det.threshold_ == ref.threshold_  # knn: leave-one-out scores of the sample


def test_reservoir_keeps_every_row_until_full_then_stays_bounded():
    X = np.arange(40, dtype=float)[:, None]
    rows = update_reservoir(None, 0, X[:25], 30, seed=0)
    np.testing.assert_array_equal(rows, X[:25])
    rows = update_reservoir(rows, 25, X[25:], 30, seed=0)
    assert rows.shape == (30, 1) and set(rows[:, 0]) <= set(X[:, 0])
    assert len(np.unique(rows)) == 30  # a row is kept at most once


def test_reservoir_is_uniform_over_the_stream():
    """Chi-square: which decile of a 20,000-row stream the 2,000 kept rows come from."""
    n, size = 20_000, 2_000
    stream = np.arange(n, dtype=float)[:, None]
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.choice(np.arange(1, n), size=30, replace=False))
    rows, seen = None, 0
    for chunk in np.split(stream, cuts):  # chunks of uneven sizes, fed in order
        rows = update_reservoir(rows, seen, chunk, size, seed=12345)
        seen += len(chunk)
    counts = np.bincount((rows[:, 0] * 10 // n).astype(int), minlength=10)
    assert counts.sum() == size
    assert stats.chisquare(counts).pvalue > 0.01, counts


def test_reservoir_keeps_each_row_with_the_same_probability():
    """Over 400 seeds, each of 60 rows fed in chunks is kept ~ size / n of the time."""
    n, size, trials = 60, 12, 400
    stream = np.arange(n, dtype=float)[:, None]
    kept = np.zeros(n)
    for seed in range(trials):
        rows, seen = None, 0
        for chunk in np.split(stream, [5, 12, 13, 40]):
            rows = update_reservoir(rows, seen, chunk, size, seed=seed)
            seen += len(chunk)
        kept[rows[:, 0].astype(int)] += 1
    expected = np.full(n, trials * size / n)
    assert stats.chisquare(kept, expected).pvalue > 0.01
    # the rows that first filled the sample are not favoured (binomial, 4 standard deviations)
    first, p = kept[:size].sum(), size / n
    assert abs(first - trials * size * p) < 4 * np.sqrt(trials * size * p * (1 - p))


# -- auto-encoders --------------------------------------------------------------------------------
def _ae(name: str, **extra):
    return make_detector(name, **{**FAST_PARAMS[name], **extra})


@pytest.mark.parametrize("name", AE_NAMES)
def test_autoencoder_partial_fit_is_deterministic_and_resumable_across_save_load(name, tmp_path):
    X = _data(300)
    a = _ae(name, update_epochs=2).fit(X[:150])
    path = tmp_path / "m.anomalia"
    a.save(path)
    a.partial_fit(X[150:220]).partial_fit(X[220:])
    b = anomalia.load(path).partial_fit(X[150:220])
    b.save(path)
    b = anomalia.load(path).partial_fit(X[220:])
    c = _ae(name, update_epochs=2).fit(X[:150]).partial_fit(X[150:220]).partial_fit(X[220:])
    for other in (b, c):
        np.testing.assert_array_equal(a.anomaly_score(X), other.anomaly_score(X))
        np.testing.assert_array_equal(a.optimizer_exp_avg_sq_, other.optimizer_exp_avg_sq_)
        assert a.threshold_ == other.threshold_ and other.n_updates_ == 2
    # the scaling stays the first fit's; the threshold comes from the latest batch
    fresh = _ae(name).fit(X[:150])
    np.testing.assert_array_equal(a.input_shift_, fresh.input_shift_)
    assert a.threshold_ == pytest.approx(np.quantile(a.anomaly_score(X[220:]), 0.99))


def test_autoencoder_keeps_its_optimiser_state_across_calls():
    X = _data(300)
    det = _ae("ae", update_epochs=3, batch_size=20).fit(X[:200])
    steps = det.optimizer_steps_.copy()
    assert (steps > 0).all() and det.history_["train_loss"]
    det.partial_fit(X[200:])  # 100 rows, batches of 20: 5 steps an epoch, 3 epochs
    np.testing.assert_array_equal(det.optimizer_steps_, steps + 15)
    assert len(det.history_["train_loss"]) == 3 and "val_loss" not in det.history_
    # a fresh optimiser (AdamW's bias correction restarts) would train differently
    cold = _ae("ae", update_epochs=3, batch_size=20).fit(X[:200])
    for name in ("optimizer_steps_", "optimizer_exp_avg_", "optimizer_exp_avg_sq_"):
        delattr(cold, name)
    cold.partial_fit(X[200:])
    assert not np.array_equal(cold.anomaly_score(X), det.anomaly_score(X))


def test_autoencoder_partial_fit_learns_the_new_data():
    rng = np.random.default_rng(0)
    old, new = rng.normal(size=(400, 4)), rng.normal(size=(400, 4)) @ np.diag([1, 1, 3, 0.2])
    det = _ae("ae", hidden=(16,), epochs=30, update_epochs=20, random_state=0).fit(old)
    before = det.anomaly_score(new).mean()
    det.partial_fit(new)
    assert det.anomaly_score(new).mean() < 0.8 * before


# -- ensembles ------------------------------------------------------------------------------------
def test_ensemble_partial_fit_updates_members_and_normalisation():
    X = _data(700)
    det = make_detector("ensemble", **{**FAST_PARAMS["ensemble"], "random_state": 0})
    det.fit(X[:300]).partial_fit(X[300:])
    knn, gauss = det.detectors_
    assert knn.n_seen_ == gauss.n_seen_ == 700
    np.testing.assert_allclose(det.center_[1], gauss.anomaly_score(X[300:]).mean())
    knn_scores = knn._training_scores(knn.reservoir_)
    np.testing.assert_allclose(det.center_[0], knn_scores.mean())
    assert det.threshold_ == pytest.approx(np.quantile(det.anomaly_score(X[300:]), 0.99))


@pytest.mark.parametrize("normalization", ["robust", "rank"])
def test_ensemble_partial_fit_with_other_normalisations(normalization):
    X = _data(700)
    det = make_detector(
        "ensemble",
        detectors=(("knn", {"reservoir_size": 200}), "gaussian"),
        normalization=normalization,
        trim=0.05,
        random_state=0,
    )
    det.fit(X[:300]).partial_fit(X[300:])
    scores = det.anomaly_score(X)
    assert np.isfinite(scores).all()
    if normalization == "rank":  # 200 sample rows vs 380 batch rows: common length 200
        assert det.train_scores_.shape == (2, 200)
        assert ((scores >= 0) & (scores <= 1)).all()


def test_default_detector_keeps_learning(tmp_path):
    X = _data(500)
    det = make_detector("default", random_state=0).fit(X[:250])
    det.save(tmp_path / "m.anomalia")
    det.partial_fit(X[250:])
    back = anomalia.load(tmp_path / "m.anomalia").partial_fit(X[250:])
    np.testing.assert_array_equal(det.anomaly_score(X), back.anomaly_score(X))
    assert all(m.n_seen_ == 500 for m in det.detectors_)


def test_ensemble_with_a_member_that_cannot_learn_is_refused_unchanged():
    X = _data(300)
    det = make_detector("ensemble", detectors=("knn", "ocsvm"), random_state=0).fit(X[:200])
    before = det.anomaly_score(X)
    with pytest.raises(AnomaliaError, match=r"member 2 \(ocsvm\) cannot learn incrementally"):
        det.partial_fit(X[200:])
    np.testing.assert_array_equal(det.anomaly_score(X), before)
    assert det.detectors_[0].n_seen_ == 200


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["gaussian", "iforest", "knn", "ae", "ensemble"])
def test_partial_fit_refuses_rows_that_do_not_match(name):
    X = _data(200)
    det = make_detector(name, **FAST_PARAMS[name]).fit(X)
    with pytest.raises(DataError, match="features"):
        det.partial_fit(X[:, :3])
    bad = X[:10].copy()
    bad[2, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        det.partial_fit(bad)
    frame = make_detector(name, **FAST_PARAMS[name]).fit(pd.DataFrame(X, columns=list("abcde")))
    with pytest.raises(DataError, match="feature names"):
        frame.partial_fit(pd.DataFrame(X, columns=list("edcba")))


def test_partial_fit_refuses_state_it_lacks():
    X = _data(200)
    robust_then_plain = make_detector("gaussian", support_fraction=0.5).fit(X)
    robust_then_plain.set_params(support_fraction=None)
    with pytest.raises(AnomaliaError, match="no streaming moments"):
        robust_then_plain.partial_fit(X)
    plain_then_robust = make_detector("gaussian").fit(X).set_params(support_fraction=0.5)
    with pytest.raises(AnomaliaError, match="no running sample"):
        plain_then_robust.partial_fit(X)
    with pytest.raises(DataError, match="at least 2 rows"):
        _ae("ae").fit(X).partial_fit(X[:1])
    assert not hasattr(make_detector("ocsvm"), "partial_fit")


def _forge(path, out, arrays=None, attributes=None):
    """A copy of the model file with arrays / attributes replaced, digests recomputed."""
    manifest, blobs = _members(path)
    if arrays:
        stored = st_load(blobs["arrays.safetensors"])
        blobs = {**blobs, "arrays.safetensors": st_save({**stored, **arrays})}
    if attributes:
        manifest = {**manifest, "attributes": {**manifest["attributes"], **attributes}}
    return _write(out, manifest, blobs)


@pytest.mark.parametrize(
    ("name", "arrays", "attributes", "match"),
    [
        ("knn", {"reservoir_": np.zeros((3, 5))}, None, "reservoir_ must be"),
        ("knn", None, {"n_seen_": -4}, "n_seen_ must lie"),
        ("iforest", None, {"reservoir_seed_": "x"}, "reservoir_seed_ must be an integer"),
        ("gaussian", {"stream_m2_": np.zeros((4, 4))}, None, "stream_m2_ must be"),
        ("gaussian", {"stream_m4_": -np.ones((5, 5))}, None, "negative sums"),
        ("ae", {"optimizer_exp_avg_": np.zeros(3, np.float32)}, None, "exp_avg must be"),
        ("ae", {"optimizer_steps_": np.full(4, 0.5)}, None, "steps must be"),
        ("ae", None, {"n_updates_": -1}, "n_updates_ must be"),
    ],
)
def test_loading_refuses_partial_fit_state_that_does_not_fit(
    name, arrays, attributes, match, tmp_path
):
    path = tmp_path / "m.anomalia"
    make_detector(name, **FAST_PARAMS[name]).fit(_data(100)).save(path)
    if name == "ae" and arrays and "optimizer_steps_" in arrays:
        n = len(anomalia.load(path).optimizer_steps_)
        arrays = {"optimizer_steps_": np.full(n, 0.5)}
    forged = _forge(path, tmp_path / "forged.anomalia", arrays, attributes)
    with pytest.raises(ModelFileError, match=match):
        anomalia.load(forged)


# -- the CLI --------------------------------------------------------------------------------------
@pytest.fixture
def stream_tables(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(2):
        X = np.vstack([rng.normal(size=(150, 3)), rng.normal(6, 1, size=(5, 3))])
        df = pd.DataFrame(X, columns=["amount", "age", "hour"])
        df.insert(0, "txn", np.arange(len(df)) + 1000 * i)
        df["fraud"] = np.r_[np.zeros(150, int), np.ones(5, int)]
        paths.append(tmp_path / f"day{i}.csv")
        df.to_csv(paths[-1], index=False)
    return paths


def test_cli_fit_update_continues_a_saved_model(tmp_path, stream_tables):
    first, second = stream_tables
    model, updated = tmp_path / "m.anomalia", tmp_path / "m2.anomalia"
    spec = ["--label-column", "fraud", "--id-column", "txn"]
    assert run("fit", first, "-d", "gaussian", *spec, "--out", model).exit_code == 0
    res = run("fit", "--update", model, second, "--out", updated)  # the saved spec is used
    assert res.exit_code == 0, res.output
    assert "updated gaussian with 150 rows (300 trained on in all)" in res.output
    det, manifest = anomalia.persistence.load_model(updated)
    assert det.n_seen_ == 300 and manifest["metadata"]["train_rows"] == 300
    frames = [pd.read_csv(p) for p in stream_tables]
    normal = [f[f.fraud == 0][["amount", "age", "hour"]] for f in frames]
    ref = make_detector("gaussian").fit(normal[0]).partial_fit(normal[1])
    np.testing.assert_array_equal(det.location_, ref.location_)
    assert det.threshold_ == ref.threshold_
    res = run("score", updated, second, "--out", tmp_path / "scores.csv")
    assert res.exit_code == 0, res.output


def test_cli_fit_update_takes_params_and_polluted(tmp_path, stream_tables):
    first, second = stream_tables
    model, updated = tmp_path / "m.anomalia", tmp_path / "m2.anomalia"
    spec = ["--label-column", "fraud", "--id-column", "txn"]
    ae = ["-d", "ae", "-p", "hidden=8", "-p", "epochs=2"]
    assert run("fit", first, *ae, *spec, "--out", model).exit_code == 0
    res = run("fit", "--update", model, second, "-p", "update_epochs=1", "--polluted",
              "--out", updated)  # fmt: skip
    assert res.exit_code == 0, res.output
    det = anomalia.load(updated)
    assert det.update_epochs == 1 and det.n_updates_ == 1 and len(det.history_["train_loss"]) == 1
    assert "with 155 rows" in res.output


@pytest.mark.parametrize(
    ("detector", "extra", "match"),
    [
        ("ocsvm", [], "a ocsvm model cannot keep learning"),
        ("gaussian", ["-d", "knn"], "--update keeps the model's own detector"),
        ("gaussian", ["-p", "nope=1"], "nope"),
    ],
)
def test_cli_fit_update_refusals_are_one_line(tmp_path, stream_tables, detector, extra, match):
    first, second = stream_tables
    model = tmp_path / "m.anomalia"
    assert (
        run("fit", first, "-d", detector, "--label-column", "fraud", "--out", model).exit_code == 0
    )
    res = run("fit", "--update", model, second, *extra, "--out", tmp_path / "m2.anomalia")
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and match in lines[0], res.output
    assert not (tmp_path / "m2.anomalia").exists()
