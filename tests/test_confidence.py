"""The ``confidence`` detector (open-set recognition) and its classifier networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

import anomalia
from anomalia import make_detector
from anomalia.models.classifier import (
    CNNClassifierNet,
    MLPClassifierNet,
    PackedLabels,
    logit_scores,
)

SCORES = ("msp", "entropy", "energy", "mahalanobis")
FAST = {"hidden": (16,), "epochs": 20, "batch_size": 32, "lr": 1e-2, "random_state": 0}


def _make(**params):
    return make_detector("confidence", **{**FAST, **params})


@pytest.fixture
def open_set():
    """Three known 2-D blobs on a triangle and a fourth, unknown blob between them.

    Returns training rows and labels (known classes only), test rows, and whether each
    test row is unknown.
    """
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 4.0], [-3.5, -2.0], [3.5, -2.0], [0.0, 0.0]])
    X = np.concatenate([c + 0.7 * rng.normal(size=(120, 2)) for c in centres])
    y = np.repeat(np.arange(4), 120)
    train = (y < 3) & (np.arange(len(y)) % 120 < 80)
    return X[train], y[train], X[~train], y[~train] == 3


# -- the networks ------------------------------------------------------------------------------
def test_logit_scores_values():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    p_top = np.exp(2) / (np.exp(2) + 2)
    np.testing.assert_allclose(logit_scores(logits, "msp"), [1 - p_top, 2 / 3])
    np.testing.assert_allclose(logit_scores(logits, "entropy")[1], np.log(3))
    np.testing.assert_allclose(
        logit_scores(logits, "energy", temperature=2.0), -2 * np.log([np.exp(1) + 2, 3])
    )
    # a confident row keeps a tiny, positive msp (no cancellation in 1 - max p)
    assert 0 < logit_scores(torch.tensor([[60.0, 0.0]], dtype=torch.float64), "msp")[0] < 1e-25
    with pytest.raises(ValueError, match="method"):
        logit_scores(logits, "maxlogit")


def test_networks_shapes_and_outlier_exposure_term():
    net = MLPClassifierNet(3, 4, hidden=(8, 5), oe_weight=0.5)
    x = torch.randn(6, 3)
    assert net(x).shape == (6, 4) and net.features(x).shape == (6, 5)
    torch.nn.init.zeros_(net.head.weight)
    torch.nn.init.zeros_(net.head.bias)  # uniform predictions
    per = net.per_sample_loss(x, torch.tensor([0, 1, 2, 3, -1, -1]))
    np.testing.assert_allclose(per.detach(), [np.log(4)] * 4 + [0.5 * np.log(4)] * 2, rtol=1e-6)
    cnn = CNNClassifierNet(1, 8, 8, 3, channels=(4, 8), hidden=(16,))
    assert cnn(torch.zeros(2, 1, 8, 8)).shape == (2, 3)
    with pytest.raises(ValueError, match="n_classes"):
        MLPClassifierNet(3, 1)


def test_packed_labels_round_trip():
    net = MLPClassifierNet(2, 3, hidden=(4,))
    x, labels = torch.randn(5, 2), torch.tensor([0, 2, 1, -1, 0])
    rows = PackedLabels.pack(x, labels)
    wrapped = PackedLabels(net, (2,))
    torch.testing.assert_close(wrapped(rows), net(x))
    torch.testing.assert_close(wrapped.per_sample_loss(rows), net.per_sample_loss(x, labels))
    torch.testing.assert_close(wrapped.loss(rows), net.loss(x, labels))


# -- the detector ------------------------------------------------------------------------------
@pytest.mark.parametrize("score_method", SCORES)
def test_every_score_ranks_the_unknown_cluster_first(score_method, open_set):
    X, y, X_test, unknown = open_set
    det = _make(score_method=score_method).fit(X, y)
    scores = det.anomaly_score(X_test)
    assert scores.dtype == np.float64 and scores.shape == (len(X_test),)
    assert roc_auc_score(unknown, scores) > 0.9


def test_classifies_known_classes(open_set):
    X, y, X_test, unknown = open_set
    det = _make().fit(X, y)
    proba = det.predict_proba(X_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    truth = np.repeat(np.arange(3), 40)
    assert np.mean(det.classes_[proba[~unknown].argmax(1)] == truth) > 0.95


def test_orientation_threshold_and_contamination(open_set):
    X, y, X_test, _ = open_set
    det = _make().fit(X, y)
    a = det.anomaly_score(X_test)
    np.testing.assert_allclose(det.score_samples(X_test), -a)
    np.testing.assert_allclose(det.decision_function(X_test), det.threshold_ - a)
    np.testing.assert_array_equal(det.predict(X_test), np.where(a > det.threshold_, -1, 1))
    det = _make(contamination=0.1).fit(X, y)
    assert np.mean(det.predict(X) == -1) == pytest.approx(0.1, abs=0.01)


def test_outlier_exposure_raises_held_out_entropy(open_set):
    X, y, X_test, unknown = open_set
    rng = np.random.default_rng(1)
    X_outliers = np.array([0.0, 0.0]) + 0.7 * rng.normal(size=(40, 2))  # the unknown blob
    plain = _make(score_method="entropy").fit(X, y)
    exposed = _make(score_method="entropy", oe_weight=1.0).fit(X, y, X_outliers=X_outliers)
    held_out = X_test[unknown]
    assert exposed.anomaly_score(held_out).mean() > plain.anomaly_score(held_out).mean() + 0.1
    assert exposed.anomaly_score(held_out).mean() > 0.9 * np.log(3)  # near uniform


def test_temperature_changes_probabilities_not_msp_ranking(open_set):
    X, y, X_test, _ = open_set
    two = y < 2  # with two classes, msp = sigmoid(-|logit gap| / T): T cannot reorder rows
    base = _make().fit(X[two], y[two])
    hot = clone(base).set_params(temperature=3.0).fit(X[two], y[two])
    assert hot.temperature_ == 3.0 and base.temperature_ == 1.0
    p_base, p_hot = base.predict_proba(X_test), hot.predict_proba(X_test)
    assert np.abs(p_base - p_hot).max() > 0.05
    assert p_hot.max() < p_base.max()  # a higher temperature flattens the distribution
    np.testing.assert_array_equal(
        np.argsort(base.anomaly_score(X_test), kind="stable"),
        np.argsort(hot.anomaly_score(X_test), kind="stable"),
    )


def test_temperature_auto_is_fitted_on_held_out_rows(open_set):
    X, y, X_test, _ = open_set
    det = _make(temperature="auto", validation_fraction=0.2).fit(X, y)
    assert 0.05 <= det.temperature_ <= 20 and det.temperature_ != 1.0
    np.testing.assert_allclose(det.predict_proba(X_test).sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="validation_fraction"):
        _make(temperature="auto", validation_fraction=0.0).fit(X, y)


def test_predict_class_returns_minus_one_for_flagged_rows(open_set):
    X, y, X_test, _ = open_set
    names = np.array(["cat", "dog", "owl"])[y]
    det = _make(contamination=0.05).fit(X, names)
    classes = det.predict_class(X_test)
    flagged = det.predict(X_test) == -1
    assert flagged.any() and (~flagged).any()
    assert all(c == -1 for c in classes[flagged])
    assert set(classes[~flagged]) <= {"cat", "dog", "owl"}
    numeric = _make(contamination=0.05).fit(X, y + 10).predict_class(X_test)
    assert numeric.dtype.kind == "i" and set(numeric) <= {-1, 10, 11, 12}


def test_scikit_learn_classifier(open_set):
    X, y, X_test, unknown = open_set
    det = _make().fit(X, y).set_params(classifier=LogisticRegression()).fit(X, y)
    assert not hasattr(det, "module_") and isinstance(det.classifier_, LogisticRegression)
    assert roc_auc_score(unknown, det.anomaly_score(X_test)) > 0.9
    np.testing.assert_allclose(
        det.predict_proba(X_test), det.classifier_.predict_proba(X_test), rtol=1e-12
    )
    assert det.set_params(score_method="entropy").anomaly_score(X_test).shape == (len(X_test),)
    with pytest.raises(ValueError, match="built-in network"):
        _make(classifier=LogisticRegression(), score_method="energy").fit(X, y)
    with pytest.raises(ValueError, match="X_outliers"):
        _make(classifier=LogisticRegression()).fit(X, y, X_outliers=X_test[:5])


def test_classifier_without_predict_proba_is_refused(open_set):
    X, y, _, _ = open_set
    with pytest.raises(ValueError, match="LinearSVC has no predict_proba"):
        _make(classifier=LinearSVC()).fit(X, y)


def test_missing_labels_are_refused(open_set):
    with pytest.raises(ValueError, match="requires y to be passed"):
        _make().fit(open_set[0])


def test_single_class_labels_are_refused(open_set):
    X = open_set[0]
    with pytest.raises(ValueError, match="needs at least 2 known classes"):
        _make().fit(X, np.zeros(len(X)))


def test_bad_inputs_are_refused(open_set):
    X, y, X_test, _ = open_set
    with pytest.raises(ValueError, match="score_method"):
        _make(score_method="odin").fit(X, y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        _make().fit(X, y[:-1])
    det = _make().fit(X, y)
    with pytest.raises(ValueError, match="features"):
        det.anomaly_score(X_test[:, :1])
    bad = X_test.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        det.anomaly_score(bad)


@pytest.mark.parametrize("sparse", ["csr_matrix", "csr_array"])
def test_sparse_input_is_refused_as_by_the_other_detectors(sparse, open_set):
    scipy_sparse = pytest.importorskip("scipy.sparse")
    X, y, X_test, _ = open_set
    S = getattr(scipy_sparse, sparse)(X)
    with pytest.raises(TypeError) as other:
        make_detector("gaussian").fit(S)
    message = str(other.value)
    assert "Sparse data was passed" in message
    det = _make(epochs=2).fit(X, y)
    for call in (
        lambda: _make().fit(S, y),
        lambda: _make().fit(X, y, X_outliers=getattr(scipy_sparse, sparse)(X_test)),
        lambda: det.anomaly_score(S),
        lambda: det.predict_proba(S),
    ):
        with pytest.raises(TypeError) as info:
            call()
        assert str(info.value) == message


def test_same_seed_same_scores_and_global_rng_untouched(open_set):
    X, y, X_test, _ = open_set
    np_state, torch_state = np.random.get_state()[1].copy(), torch.get_rng_state()
    a = _make(score_method="mahalanobis", temperature="auto").fit(X, y).anomaly_score(X_test)
    b = _make(score_method="mahalanobis", temperature="auto").fit(X, y).anomaly_score(X_test)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_save_load_round_trip(open_set, tmp_path):
    X, y, X_test, unknown = open_set
    X_outliers = 0.7 * np.random.default_rng(1).normal(size=(20, 2))
    det = _make(temperature="auto").fit(X, y, X_outliers=X_outliers)
    det.calibrate(X_test, unknown.astype(int), "f1")
    det.save(tmp_path / "m.anomalia")
    back = anomalia.load(tmp_path / "m.anomalia")
    assert type(back) is type(det) and back.get_params() == det.get_params()
    assert back.threshold_ == det.threshold_ and back.temperature_ == det.temperature_
    for method in SCORES:
        np.testing.assert_array_equal(
            back.set_params(score_method=method).anomaly_score(X_test),
            det.set_params(score_method=method).anomaly_score(X_test),
        )
    np.testing.assert_array_equal(back.predict_proba(X_test), det.predict_proba(X_test))
    np.testing.assert_array_equal(back.predict_class(X_test), det.predict_class(X_test))


def test_save_load_round_trip_with_a_scikit_learn_classifier(open_set, tmp_path):
    X, y, X_test, _ = open_set
    det = _make(classifier=LogisticRegression(C=0.5), temperature="auto").fit(X, y)
    det.save(tmp_path / "m.anomalia")
    back = anomalia.load(tmp_path / "m.anomalia")
    assert back.classifier.get_params() == det.classifier.get_params()
    np.testing.assert_array_equal(back.anomaly_score(X_test), det.anomaly_score(X_test))


def test_works_in_a_pipeline(open_set):
    X, y, X_test, unknown = open_set
    pipe = make_pipeline(StandardScaler(), _make(score_method="energy")).fit(X, y)
    assert roc_auc_score(unknown, -pipe.score_samples(X_test)) > 0.9
    assert pipe.fit_predict(X, y).shape == (len(X),)


def test_images_use_the_cnn():
    from sklearn.datasets import load_digits

    digits = load_digits()
    known = digits.target < 3
    images, labels = digits.images[known][:300] / 16, digits.target[known][:300]
    det = _make(channels=(4, 8), epochs=8, lr=3e-3).fit(images, labels)
    assert type(det.module_).__name__ == "CNNClassifierNet" and det.image_shape_ == (1, 8, 8)
    test = digits.images[known][300:400] / 16
    accuracy = np.mean(det.predict_proba(test).argmax(1) == digits.target[known][300:400])
    assert accuracy > 0.8
    scores = det.anomaly_score(test)
    np.testing.assert_array_equal(det.anomaly_score(test.reshape(100, 64)), scores)
    np.testing.assert_array_equal(det.anomaly_score(test[:, None]), scores)
    assert set(det.predict_class(test)) <= {-1, 0, 1, 2}
    with pytest.raises(ValueError, match="shape"):
        det.anomaly_score(np.zeros((2, 1, 4, 4)))


def test_a_classifier_keeps_scale_1_for_features_constant_in_training():
    """Only the auto-encoders scale a constant feature to make unseen values far; the
    classifier's inputs stay in the range it was trained on."""
    from anomalia import make_detector

    rng = np.random.default_rng(0)
    X = np.c_[rng.normal(size=(120, 3)), np.zeros(120)]
    y = (X[:, 0] > 0).astype(int)
    det = make_detector("confidence", epochs=2, random_state=0).fit(X, y)
    assert det.input_scale_[3] == 1.0
