"""The k-nearest-neighbour and ensemble detectors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import anomalia
from anomalia import make_detector
from anomalia.detectors.classical import KNNDetector
from anomalia.detectors.ensemble import EnsembleDetector
from anomalia.errors import AnomaliaError


def test_knn_score_is_distance_to_kth_neighbour():
    X = np.array([[0.0], [1.0], [3.0], [7.0]])
    det = KNNDetector(n_neighbors=2, scale=False).fit(X)
    # new points: the 2nd nearest training row
    np.testing.assert_allclose(det.anomaly_score([[0.0], [10.0]]), [1.0, 7.0])
    mean = KNNDetector(n_neighbors=2, scale=False, method="mean").fit(X)
    np.testing.assert_allclose(mean.anomaly_score([[10.0]]), [(3.0 + 7.0) / 2])


def test_knn_training_rows_leave_themselves_out():
    X = np.array([[0.0], [1.0], [3.0], [7.0]])
    det = KNNDetector(n_neighbors=1, scale=False, contamination=0.5).fit(X)
    # leave-one-out distances 1, 1, 2, 4: the median split is at 1.5, not at 0
    assert det.threshold_ == pytest.approx(np.quantile([1.0, 1.0, 2.0, 4.0], 0.5))


def test_knn_caps_k_and_subsamples(blobs):
    train, X_test, y_test = blobs
    small = KNNDetector(n_neighbors=50).fit(train[:10])
    assert small.n_neighbors_ == 9
    sub = KNNDetector(max_samples=100, random_state=0).fit(train)
    assert sub.estimator_.n_samples_fit_ == 100
    assert roc_auc_score(y_test, sub.anomaly_score(X_test)) > 0.95


def test_knn_duplicates_ignore_skips_a_rows_own_copies():
    X = np.array([[0.0], [0.0], [0.0], [1.0], [3.0]])
    count = KNNDetector(n_neighbors=1, scale=False).fit(X)
    ignore = KNNDetector(n_neighbors=1, scale=False, duplicates="ignore").fit(X)
    # a copy of a training row: 0 when copies count, the distance to the next distinct row
    np.testing.assert_allclose(count.anomaly_score([[0.0], [2.5]]), [0.0, 0.5])
    np.testing.assert_allclose(ignore.anomaly_score([[0.0], [2.5]]), [1.0, 0.5])
    assert ignore.estimator_.n_samples_fit_ == 3  # each distinct row indexed once
    # training rows: the repeated 0 scores 0 among its copies, 1 when they are ignored
    np.testing.assert_allclose(ignore._training_scores(X), [1.0, 1.0, 1.0, 1.0, 2.0])
    np.testing.assert_allclose(count._training_scores(X), [0.0, 0.0, 0.0, 1.0, 2.0])


def test_knn_rejects_bad_parameters(blobs):
    with pytest.raises(ValueError, match="method"):
        KNNDetector(method="max").fit(blobs[0])
    with pytest.raises(ValueError, match="n_neighbors"):
        KNNDetector(n_neighbors=0).fit(blobs[0])
    with pytest.raises(ValueError, match="duplicates"):
        KNNDetector(duplicates="drop").fit(blobs[0])
    with pytest.raises(ValueError, match="2 distinct training rows"):
        KNNDetector(duplicates="ignore").fit(np.ones((5, 3)))


def _members_by_hand(det, X_train, X):
    scores = []
    for m in det.detectors_:
        tr = m._training_scores(m._validate(X_train, reset=False))
        scores.append((m.anomaly_score(X) - tr.mean()) / tr.std())
    return np.mean(scores, axis=0)


def test_ensemble_is_mean_of_zscored_member_scores(blobs):
    train, X_test, _ = blobs
    det = EnsembleDetector(detectors=("knn", "gaussian")).fit(train)
    np.testing.assert_allclose(det.anomaly_score(X_test), _members_by_hand(det, train, X_test))


@pytest.mark.parametrize("normalization", ["zscore", "robust", "rank"])
def test_ensemble_normalisations_detect_outliers(normalization, blobs):
    train, X_test, y_test = blobs
    det = EnsembleDetector(
        detectors=("knn", ("iforest", {"n_estimators": 25})),
        normalization=normalization,
        random_state=0,
    ).fit(train)
    assert roc_auc_score(y_test, det.anomaly_score(X_test)) > 0.95
    if normalization == "rank":
        assert det.anomaly_score(X_test).max() <= 1.0


def test_ensemble_weights_and_member_seeds(blobs):
    train, X_test, _ = blobs
    only_knn = EnsembleDetector(detectors=("knn", "gaussian"), weights=(1, 0)).fit(train)
    knn = KNNDetector().fit(train)
    tr = knn._training_scores(train)
    np.testing.assert_allclose(
        only_knn.anomaly_score(X_test), (knn.anomaly_score(X_test) - tr.mean()) / tr.std()
    )
    det = EnsembleDetector(detectors=("iforest",), random_state=7).fit(train)
    assert det.detectors_[0].random_state == 7
    own = EnsembleDetector(detectors=(("iforest", {"random_state": 3}),), random_state=7)
    assert own.fit(train).detectors_[0].random_state == 3


def test_trim_refits_members_without_the_most_anomalous_training_rows():
    rng = np.random.default_rng(0)
    train, center = rng.normal(size=(300, 4)), np.full(4, 5.0)
    r = np.random.default_rng(1)
    cluster = center + r.normal(scale=0.3, size=(10, 4))  # anomalies hidden in training
    polluted = np.vstack([train, cluster])
    near = np.vstack([center + r.normal(scale=0.3, size=(5, 4)), rng.normal(size=(50, 4))])
    y_near = np.r_[np.ones(5), np.zeros(50)]
    one = EnsembleDetector(detectors=("knn", "gaussian")).fit(polluted)
    two = EnsembleDetector(detectors=("knn", "gaussian"), trim=0.1).fit(polluted)
    assert two.detectors_[0].estimator_.n_samples_fit_ == 310 - 31
    auc_one = roc_auc_score(y_near, one.anomaly_score(near))
    auc_two = roc_auc_score(y_near, two.anomaly_score(near))
    assert auc_one < 0.98 and auc_two == 1.0  # the cluster no longer masks its kind
    # the threshold still comes from every training row: contamination keeps its meaning
    labels = EnsembleDetector(detectors=("knn",), trim=0.2, contamination=0.1).fit_predict(train)
    assert np.mean(labels == -1) == pytest.approx(0.1, abs=0.01)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"detectors": ()}, "non-empty"),
        ({"detectors": "knn"}, "non-empty"),
        ({"detectors": ("knn", "nope")}, "unknown detector"),
        ({"detectors": ("knn", ("iforest", {"trees": 3}))}, "unknown parameter"),
        ({"detectors": ("knn", "ensemble")}, "cannot contain"),
        ({"detectors": ("knn", 3)}, "name or a"),
        ({"weights": (1.0,)}, "weights"),
        ({"normalization": "minmax"}, "normalization"),
        ({"trim": 0.5}, "trim"),
    ],
)
def test_ensemble_rejects_bad_parameters(params, match, blobs):
    with pytest.raises((ValueError, AnomaliaError), match=match):
        EnsembleDetector(**params).fit(blobs[0])


def test_default_detector_saves_and_loads_with_its_members(tmp_path, blobs):
    train, X_test, _ = blobs
    det = make_detector(
        "default",
        detectors=("knn", ("ae", {"hidden": (8,), "epochs": 2, "batch_size": 32})),
        weights=None,
        random_state=0,
    ).fit(train)
    det.save(tmp_path / "m.zip")
    back = anomalia.load(tmp_path / "m.zip")
    assert [type(m).__name__ for m in back.detectors_] == ["KNNDetector", "AEDetector"]
    np.testing.assert_allclose(back.anomaly_score(X_test), det.anomaly_score(X_test), rtol=1e-6)
    assert back.threshold_ == det.threshold_
    # the registered default (kNN and the robust Gaussian) round-trips too
    real = make_detector("default").fit(train)
    real.save(tmp_path / "default.zip")
    again = anomalia.load(tmp_path / "default.zip")
    assert again.detectors_[1].n_support_ == real.detectors_[1].n_support_ < len(train)
    np.testing.assert_array_equal(again.anomaly_score(X_test), real.anomaly_score(X_test))


def test_default_holds_up_when_training_data_hides_a_cluster_of_anomalies():
    rng = np.random.default_rng(0)

    def data(n, m):  # standard normal rows and a tight cluster of anomalies at +3
        X = np.vstack([rng.normal(size=(n, 4)), rng.normal(size=(m, 4)) * 0.2 + 3.0])
        return X, np.r_[np.zeros(n), np.ones(m)]

    (X_train, _), (X_test, y_test) = data(900, 100), data(300, 30)
    default = make_detector("default").fit(X_train)
    knn = make_detector("knn").fit(X_train)
    # the cluster's rows are each other's neighbours, so kNN alone calls them normal; the
    # robust Gaussian member, fitted on the central half, still sees them far away
    auc_knn = roc_auc_score(y_test, knn.anomaly_score(X_test))
    auc_default = roc_auc_score(y_test, default.anomaly_score(X_test))
    assert auc_knn < 0.1 and auc_default > 0.75


def test_default_is_a_registered_ensemble():
    det = make_detector("default")
    assert isinstance(det, EnsembleDetector)
    robust = {"support_fraction": 0.5, "score_method": "distance"}
    assert det.detectors == (
        ("knn", {"method": "mean", "max_samples": 4000}),
        ("gaussian", robust),
        ("gaussian", {**robust, "scale_from": "all"}),
    )
    assert det.weights == (1.0, 0.5, 0.5)
    assert "default" in anomalia.available_detectors()
