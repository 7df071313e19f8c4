"""For users arriving from PyOD: decision_scores_, labels_, predict_proba and
predict_confidence on every detector, and any PyOD detector behind the anomalia contract
(``make_detector("pyod:ECOD")``), saved pickle-free or refused."""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pandas as pd
import pytest
from scipy.special import erf
from scipy.stats import binom
from sklearn.preprocessing import MinMaxScaler
from typer.testing import CliRunner

import anomalia
from anomalia import AnomaliaError, ModelFileError, make_detector
from anomalia.cli.app import app

from .conftest import HAS_PYOD
from .test_hostile_models import _members, _write

needs_pyod = pytest.mark.skipif(not HAS_PYOD, reason="PyOD (the 'bench' extra) is not installed")


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(205, 4))
    T = np.vstack([rng.normal(size=(40, 4)), rng.normal(5, 1, size=(10, 4))])
    return X, T


# -- PyOD's formulas, written out as PyOD's BaseDetector computes them ---------------------
def pyod_proba(train, test, method):
    if method == "linear":
        p = MinMaxScaler().fit(train.reshape(-1, 1)).transform(test.reshape(-1, 1)).ravel()
    else:
        p = erf((test - train.mean()) / (train.std() * np.sqrt(2)))
    p = p.clip(0, 1)
    return np.column_stack([1 - p, p])


def pyod_confidence(train, test, threshold, contamination):
    n = len(train)
    count = np.array([np.count_nonzero(train <= s) for s in test])
    confidence = 1 - binom.cdf(n - int(n * contamination), n, (1 + count) / (2 + n))
    return np.where(test > threshold, confidence, 1 - confidence)


@pytest.mark.parametrize("name", ["gaussian", "knn", "iforest"])
@pytest.mark.parametrize("contamination", [None, 0.1])
def test_training_scores_labels_and_probabilities_follow_pyod(data, name, contamination):
    X, T = data
    seed = {} if name == "gaussian" else {"random_state": 0}
    det = make_detector(name, contamination=contamination, **seed)
    flags = det.fit_predict(X)
    train, scores = det.decision_scores_, det.anomaly_score(T)
    assert train.shape == (len(X),) and train.dtype == np.float64
    np.testing.assert_array_equal(det.labels_, (train > det.threshold_).astype(int))
    np.testing.assert_array_equal(det.labels_, (flags == -1).astype(int))
    for method in ("linear", "unify"):
        proba = det.predict_proba(T, method=method)
        assert proba.shape == (len(T), 2)
        assert ((proba >= 0) & (proba <= 1)).all()
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        np.testing.assert_allclose(proba, pyod_proba(train, scores, method), rtol=0, atol=1e-15)
    confidence = det.predict_confidence(T)
    assert confidence.shape == (len(T),) and ((confidence >= 0) & (confidence <= 1)).all()
    if contamination is not None:  # PyOD's formula, which uses the contamination itself
        np.testing.assert_allclose(
            confidence, pyod_confidence(train, scores, det.threshold_, contamination), atol=1e-15
        )
    # sklearn's orientation stays: decision_function negative and predict -1 for anomalies
    np.testing.assert_array_equal(det.predict(T), np.where(scores > det.threshold_, -1, 1))


def test_labels_follow_calibrate_and_the_scores_survive_a_file(data, tmp_path):
    X, T = data
    det = make_detector("gaussian").fit(X)
    y = np.r_[np.zeros(40, int), np.ones(10, int)]
    det.calibrate(T, y)
    np.testing.assert_array_equal(det.labels_, det.decision_scores_ > det.threshold_)
    det.save(tmp_path / "m.anomalia")
    back = anomalia.load(tmp_path / "m.anomalia")
    np.testing.assert_array_equal(back.decision_scores_, det.decision_scores_)
    np.testing.assert_array_equal(back.predict_proba(T), det.predict_proba(T))
    np.testing.assert_array_equal(back.predict_confidence(T), det.predict_confidence(T))


def test_constant_training_scores_give_no_nan():
    X = np.tile([[1.0, 2.0]], (20, 1))
    X[:, 0] += np.arange(20) % 2  # two values: every k-NN score is 0 or the same distance
    det = make_detector("knn", n_neighbors=2, scale=False).fit(X)
    assert np.ptp(det.decision_scores_) == 0
    T = np.array([[1.0, 2.0], [9.0, 9.0]])
    for method in ("linear", "unify"):
        p = det.predict_proba(T, method=method)[:, 1]
        assert np.isfinite(p).all() and p[1] == 1.0


def test_bad_method_unfitted_and_old_models_are_refused(data):
    X, T = data
    with pytest.raises(ValueError, match="method must be one of 'linear', 'unify'"):
        make_detector("gaussian").fit(X).predict_proba(T, method="softmax")
    with pytest.raises(Exception, match="not fitted"):
        make_detector("gaussian").predict_proba(T)
    assert not hasattr(make_detector("gaussian"), "labels_")
    det = make_detector("gaussian").fit(X)
    del det.decision_scores_  # as a model saved before anomalia kept them
    with pytest.raises(AnomaliaError, match="keeps no training scores.*fit it again"):
        det.predict_proba(T)


def test_ensemble_members_keep_no_copy_of_the_training_scores(data):
    X, _ = data
    det = make_detector("ensemble", detectors=("knn", "gaussian")).fit(X)
    assert det.decision_scores_.shape == (len(X),)
    assert all(not hasattr(m, "decision_scores_") for m in det.detectors_)


def test_a_tampered_training_score_array_is_refused(data, tmp_path):
    from safetensors.numpy import load as st_load
    from safetensors.numpy import save as st_save

    path = tmp_path / "m.anomalia"
    make_detector("gaussian").fit(data[0]).save(path)
    manifest, blobs = _members(path)
    arrays = st_load(blobs["arrays.safetensors"])
    arrays["decision_scores_"] = arrays["decision_scores_"].astype(np.float32)
    _write(path, manifest, {**blobs, "arrays.safetensors": st_save(arrays)})
    with pytest.raises(ModelFileError, match="decision_scores_ must be a non-empty 1-D float64"):
        anomalia.load(path)


# -- the wrapper -----------------------------------------------------------------------------
@needs_pyod
@pytest.mark.parametrize("name", ["ECOD", "KNN"])
def test_the_wrapper_gives_pyods_own_scores_threshold_and_probabilities(data, name):
    from anomalia.detectors.pyod import pyod_class

    X, T = data
    ref = pyod_class(name)(contamination=0.1).fit(X)
    det = make_detector(f"pyod:{name}", contamination=0.1).fit(X)
    np.testing.assert_array_equal(det.decision_scores_, ref.decision_scores_)
    np.testing.assert_array_equal(det.anomaly_score(T), ref.decision_function(T))
    assert det.threshold_ == pytest.approx(ref.threshold_, rel=1e-12)
    np.testing.assert_array_equal(det.labels_, ref.labels_)
    np.testing.assert_array_equal(det.predict(T), np.where(ref.predict(T) == 1, -1, 1))
    for method in ("linear", "unify"):
        np.testing.assert_allclose(
            det.predict_proba(T, method=method), ref.predict_proba(T, method=method), atol=1e-15
        )
    np.testing.assert_allclose(det.predict_confidence(T), ref.predict_confidence(T), atol=1e-15)


@needs_pyod
def test_pyod_parameters_and_the_wrappers_own(data):
    X, _ = data
    det = make_detector("pyod:LODA", n_bins=5, random_state=3, contamination=0.2)
    assert det.get_params()["params"] == {"n_bins": 5}
    det.fit(X)
    assert det.estimator_.n_bins == 5 and det.estimator_.random_state == 3
    assert det.calibration_ == {"strategy": "contamination", "rate": 0.2}
    with pytest.raises(AnomaliaError, match=r"unknown parameter\(s\) n_trees for detector "):
        make_detector("pyod:ECOD", n_trees=3)
    with pytest.raises(AnomaliaError, match="pyod has no detector 'Nope'"):
        make_detector("pyod:Nope")
    with pytest.raises(ValueError, match="params must not set contamination"):
        make_detector("pyod", params={"contamination": 0.1}).fit(X)


@needs_pyod
@pytest.mark.parametrize("name", ["ECOD", "COPOD", "PCA", "MCD", "LODA", "GMM", "INNE", "KPCA"])
def test_savable_pyod_models_round_trip_through_skops(data, tmp_path, name):
    X, T = data
    det = make_detector(f"pyod:{name}", random_state=0).fit(X)
    det.check_savable()
    det.save(tmp_path / "m.anomalia")
    with zipfile.ZipFile(tmp_path / "m.anomalia") as zf:
        assert "sklearn/estimator_.skops" in zf.namelist()
    back = anomalia.load(tmp_path / "m.anomalia")
    assert type(back.estimator_) is type(det.estimator_)
    np.testing.assert_array_equal(back.anomaly_score(T), det.anomaly_score(T))
    assert back.threshold_ == det.threshold_


@needs_pyod
def test_a_pyod_member_of_an_ensemble_is_saved(data, tmp_path):
    X, T = data
    det = make_detector("ensemble", detectors=("knn", "pyod:ECOD")).fit(X)
    det.save(tmp_path / "m.anomalia")
    back = anomalia.load(tmp_path / "m.anomalia")
    np.testing.assert_array_equal(back.anomaly_score(T), det.anomaly_score(T))


@needs_pyod
@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("KNN", {}, "sklearn.neighbors._kd_tree.KDTree"),  # a search tree: compiled, indexed
        ("IForest", {"n_estimators": 5}, "sklearn.tree._tree.Tree"),
        ("HBOS", {}, "pyod.models.hbos.HBOS"),  # numba over stored histograms
        ("AutoEncoder", {"epoch_num": 1}, "skops cannot store it without pickle"),  # torch
    ],
)
def test_models_a_file_cannot_hold_safely_are_refused_at_save(data, tmp_path, name, params, match):
    X, _ = data
    det = make_detector(f"pyod:{name}", random_state=0, **params)
    with pytest.raises(AnomaliaError, match=f"pyod:{name} cannot be saved"):
        det.check_savable()
    det.fit(X[:60])
    path = tmp_path / "m.anomalia"
    with pytest.raises(AnomaliaError, match=rf"cannot save estimator_ .*{match}.*PyOD's ECOD"):
        det.save(path)
    assert not path.exists()


@needs_pyod
def test_tampered_pyod_files_are_refused_without_running_their_content(data, tmp_path):
    import skops.io as sio
    from sklearn.svm import OneClassSVM

    X, _ = data
    path = tmp_path / "ecod.anomalia"
    make_detector("pyod:ECOD").fit(X).save(path)
    manifest, blobs = _members(path)

    def forged(blob=None, **changes):
        out = tmp_path / "forged.anomalia"
        params = {**manifest["params"], **changes}
        member = {"sklearn/estimator_.skops": blob} if blob is not None else {}
        return _write(out, {**manifest, "params": params}, {**blobs, **member})

    knn = make_detector("pyod:KNN").fit(X).estimator_  # holds a KDTree: never loaded
    with pytest.raises(ModelFileError, match="holds .*KDTree.*types anomalia never loads"):
        anomalia.load(forged(sio.dumps(knn), model="KNN"))
    with pytest.raises(ModelFileError, match=r"holds .*(posix|os)\.system"):
        anomalia.load(forged(sio.dumps({"run": os.system})))
    # types skops trusts by default, but not where a PyOD detector belongs
    svm = OneClassSVM().fit(X)
    with pytest.raises(ModelFileError, match="holds a sklearn.svm.*where a PyOD ECOD belongs"):
        anomalia.load(forged(sio.dumps(svm), model="ECOD"))
    with pytest.raises(ModelFileError, match="pyod.models.ecod.ECOD where a PyOD COPOD belongs"):
        anomalia.load(forged(model="COPOD"))
    with pytest.raises(ModelFileError, match="model must be a PyOD class name"):
        anomalia.load(forged(model="os.system"))
    with pytest.raises(ModelFileError):
        anomalia.load(forged(b"\x80\x04\x95" + b"\0" * 20))  # a pickle, not a skops file


def test_without_pyod_the_errors_say_how_to_install_it(data, tmp_path, monkeypatch):
    from anomalia.detectors import pyod as pyod_wrapper

    X, _ = data
    path = tmp_path / "m.anomalia"
    if HAS_PYOD:
        make_detector("pyod:ECOD").fit(X).save(path)
    monkeypatch.setattr(pyod_wrapper, "pyod_available", lambda: False)
    with pytest.raises(AnomaliaError, match=r"PyOD is not installed \(pip install 'anomalia"):
        make_detector("pyod:ECOD")
    with pytest.raises(AnomaliaError, match="PyOD is not installed"):
        make_detector("pyod").fit(X)
    if HAS_PYOD:
        with pytest.raises(ModelFileError, match="PyOD is not installed"):
            anomalia.load(path)


# -- the command line ------------------------------------------------------------------------
runner = CliRunner()


@needs_pyod
def test_cli_fits_scores_and_refuses_pyod_detectors(tmp_path, data):
    X, T = data
    pd.DataFrame(X, columns=list("abcd")).to_csv(tmp_path / "data.csv", index=False)
    pd.DataFrame(T, columns=list("abcd")).to_csv(tmp_path / "new.csv", index=False)
    model = tmp_path / "m.anomalia"
    res = runner.invoke(app, ["fit", "-d", "pyod:ECOD", str(tmp_path / "data.csv"),
                              "--out", str(model)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "fitted pyod:ECOD on 205 rows" in res.output
    res = runner.invoke(app, ["score", str(model), str(tmp_path / "new.csv"), "--out",
                              str(tmp_path / "s.csv")])  # fmt: skip
    assert res.exit_code == 0, res.output
    scores = pd.read_csv(tmp_path / "s.csv")
    det = anomalia.load(model)
    expected = det.anomaly_score(pd.DataFrame(T, columns=list("abcd")))
    np.testing.assert_allclose(scores.anomaly_score, expected, rtol=1e-12)
    assert scores.is_anomaly.iloc[-10:].all() and not scores.is_anomaly.iloc[:40].any()
    for detector, match in [
        ("pyod:KNN", "pyod:KNN cannot be saved in a model file"),  # before any training
        ("pyod:Nope", "pyod has no detector 'Nope'"),
    ]:
        out = tmp_path / "refused.anomalia"
        res = runner.invoke(app, ["fit", "-d", detector, str(tmp_path / "data.csv"),
                                  "--out", str(out)])  # fmt: skip
        assert res.exit_code == 2 and match in res.stderr, res.output
        assert not out.exists()
