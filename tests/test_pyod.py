"""For users arriving from PyOD: decision_scores_, labels_, predict_proba and
predict_confidence on every detector."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import erf
from scipy.stats import binom
from sklearn.preprocessing import MinMaxScaler

import anomalia
from anomalia import AnomaliaError, ModelFileError, make_detector

from .test_hostile_models import _members, _write


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
