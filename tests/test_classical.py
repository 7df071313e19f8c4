"""The Gaussian density detector: maximum likelihood, and the robust fit for polluted data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.metrics import roc_auc_score

from anomalia.detectors.classical import GaussianDetector


@pytest.fixture
def polluted():
    """900 normal rows around 0 and a 100-row cluster of anomalies at +4 (10 % pollution)."""
    rng = np.random.default_rng(0)
    normal = rng.normal(size=(900, 3)) * [1.0, 2.0, 0.5]
    anomalies = rng.normal(size=(100, 3)) * 0.3 + 4.0
    X = np.vstack([normal, anomalies])
    y = np.r_[np.zeros(900), np.ones(100)]
    return X, y


def test_density_is_the_maximum_likelihood_gaussian():
    X = np.random.default_rng(1).normal(size=(400, 3)) @ [[2, 0, 0], [1, 1, 0], [0, 0, 3]]
    det = GaussianDetector(shrinkage=0.0, reg_covar=0.0).fit(X)
    np.testing.assert_allclose(det.location_, X.mean(axis=0))
    np.testing.assert_allclose(det.covariance_, np.cov(X, rowvar=False, bias=True))
    ref = multivariate_normal(X.mean(axis=0), np.cov(X, rowvar=False, bias=True))
    np.testing.assert_allclose(det.anomaly_score(X[:5]), -ref.logpdf(X[:5]))
    assert (det.n_support_, det.n_steps_) == (400, 0)


def test_distance_score_is_the_mahalanobis_distance(polluted):
    X, _ = polluted
    density = GaussianDetector().fit(X)
    distance = GaussianDetector(score_method="distance").fit(X)
    np.testing.assert_allclose(distance.anomaly_score(X), np.sqrt(density.mahalanobis(X)))
    # the same ranking either way
    np.testing.assert_array_equal(
        np.argsort(distance.anomaly_score(X)), np.argsort(density.anomaly_score(X))
    )


def test_support_fraction_ignores_the_pollution(polluted):
    X, y = polluted
    ml = GaussianDetector().fit(X)
    robust = GaussianDetector(support_fraction=0.5).fit(X)
    assert robust.n_support_ == math.ceil(0.5 * len(X)) and 1 <= robust.n_steps_ <= 5
    # the anomalies pull the ML mean towards +4 and inflate its covariance; the robust fit
    # is the normal rows' own
    scale = np.array([1.0, 2.0, 0.5])  # the normal rows' standard deviations
    assert np.abs(ml.location_ / scale).max() > 0.5
    assert np.abs(robust.location_ / scale).max() < 0.15
    auc_ml = roc_auc_score(y, ml.anomaly_score(X))
    auc_robust = roc_auc_score(y, robust.anomaly_score(X))
    assert auc_robust > 0.99 and auc_robust > auc_ml + 0.02


def test_support_fraction_is_deterministic_and_harmless_on_clean_data():
    X = np.random.default_rng(2).normal(size=(500, 4))
    a = GaussianDetector(support_fraction=0.75).fit(X)
    b = GaussianDetector(support_fraction=0.75).fit(X)
    np.testing.assert_array_equal(a.anomaly_score(X), b.anomaly_score(X))
    # the central 75 % of a Gaussian: same centre, the shape kept (a shrunken scale)
    np.testing.assert_allclose(a.location_, 0.0, atol=0.15)
    corr = a.covariance_ / np.sqrt(np.outer(np.diag(a.covariance_), np.diag(a.covariance_)))
    np.testing.assert_allclose(corr, np.eye(4), atol=0.15)
    one = GaussianDetector(support_fraction=1.0).fit(X)
    assert one.n_steps_ == 0
    np.testing.assert_allclose(one.location_, X.mean(axis=0))


def test_scale_from_all_keeps_the_training_rows_scale(polluted):
    X, y = polluted
    robust = {"support_fraction": 0.5, "score_method": "distance"}
    own = GaussianDetector(**robust).fit(X)
    full = GaussianDetector(**robust, scale_from="all").fit(X)
    # features measured in the standard deviations of every training row; the centre and
    # the covariance are still the support's, so the pollution is ignored either way
    np.testing.assert_allclose(full.scaler_.scale_, X.std(axis=0))
    assert not np.allclose(own.scaler_.scale_, X.std(axis=0))
    assert np.abs(full.location_ / [1.0, 2.0, 0.5]).max() < 0.15
    assert full.n_support_ == own.n_support_ == 500
    assert roc_auc_score(y, full.anomaly_score(X)) > 0.99
    # the ML fit (no support_fraction) ignores the option
    np.testing.assert_array_equal(
        GaussianDetector(scale_from="all").fit(X).anomaly_score(X),
        GaussianDetector().fit(X).anomaly_score(X),
    )


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"support_fraction": 0.0}, "support_fraction"),
        ({"support_fraction": 1.5}, "support_fraction"),
        ({"max_steps": 0}, "max_steps"),
        ({"score_method": "likelihood"}, "score_method"),
        ({"scale_from": "train"}, "scale_from"),
    ],
)
def test_gaussian_rejects_bad_parameters(params, match, polluted):
    with pytest.raises(ValueError, match=match):
        GaussianDetector(**params).fit(polluted[0])


@pytest.mark.parametrize("n_features", [5, 20])
def test_nearest_distances_are_exact(n_features):
    """The faiss path (from 16 features) finds neighbours in float32 and measures them in
    float64: the exact distances (from the differences themselves), duplicates included."""
    from sklearn.neighbors import NearestNeighbors

    from anomalia.detectors.classical import nearest_distances

    rng = np.random.default_rng(1)
    ref = rng.normal(size=(3000, n_features))
    ref[10] = ref[11] = ref[12]  # exact copies: distance 0 to each other, not to themselves
    query = np.vstack([rng.normal(size=(500, n_features)), ref[:50] + 1e-9])
    nn = NearestNeighbors(n_neighbors=7).fit(ref)
    all_d = np.sqrt(((query[:, None, :] - ref[None]) ** 2).sum(axis=2))
    exact = np.sort(all_d, axis=1)[:, :7]
    np.testing.assert_allclose(nearest_distances(nn, query, 7), exact, rtol=1e-9, atol=1e-7)
    self_d = np.sqrt(((ref[:, None, :] - ref[None]) ** 2).sum(axis=2))
    np.fill_diagonal(self_d, np.inf)
    left_out = nearest_distances(nn, None, 7)
    np.testing.assert_allclose(left_out, np.sort(self_d, axis=1)[:, :7], rtol=1e-9)
    assert left_out[10, 0] == 0.0 and left_out[10, 2] > 0.0  # two copies, then others
    if n_features >= 16:  # measured from the differences: near neighbours keep their digits
        np.testing.assert_allclose(
            nearest_distances(nn, query[500:], 1)[:, 0], 1e-9 * np.sqrt(n_features), rtol=1e-6
        )


def test_nearest_distances_survive_large_offsets_and_float32_overflow():
    """Unscaled rows far from 0 are searched centred on the reference mean (a timestamp-like
    offset keeps its digits); rows whose squares overflow float32 take the exact search."""
    from anomalia.detectors.classical import KNNDetector

    rng = np.random.default_rng(0)
    T = rng.normal(size=(500, 16))
    T[:, 0] += 1.7e12
    q = T[:4] + 1e-3
    det = KNNDetector(scale=False, n_neighbors=3).fit(T)
    exact = np.sort(np.sqrt(((q[:, None, :] - T[None]) ** 2).sum(axis=2)), axis=1)[:, 2]
    np.testing.assert_allclose(det.anomaly_score(q), exact, rtol=1e-6)
    X = rng.normal(size=(500, 16))
    X[:, 0] = 1e20 + 1e18 * rng.normal(size=500)
    huge = KNNDetector(scale=False, n_neighbors=1).fit(X)
    assert np.all(huge.anomaly_score(X[:5] + 1e-2) < 1e18)  # not a far row's distance


# -- local outlier factor --------------------------------------------------------------------
def test_lof_is_scikit_learns_novelty_lof_on_standardised_rows():
    """Two clusters of different densities: LOF judges a row by its neighbours' density,
    so a point as far from the tight cluster as the wide cluster's rows are from theirs is
    an anomaly there and not in the wide one."""
    from sklearn.neighbors import LocalOutlierFactor
    from sklearn.preprocessing import StandardScaler

    from anomalia.detectors.classical import LOFDetector

    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 0.1, size=(150, 2)), rng.normal(5, 1.0, size=(150, 2))])
    T = np.array([[0.0, 0.8], [5.0, 5.8]])  # 0.8 from each centre
    det = LOFDetector(n_neighbors=10).fit(X)
    scaler = StandardScaler().fit(X)
    ref = LocalOutlierFactor(n_neighbors=10, novelty=True).fit(scaler.transform(X))
    np.testing.assert_allclose(det.anomaly_score(T), -ref.score_samples(scaler.transform(T)))
    # training rows are scored leaving themselves out, as scikit-learn's fit_predict
    np.testing.assert_allclose(det.decision_scores_, -ref.negative_outlier_factor_)
    assert det.predict(T).tolist() == [-1, 1]
    unscaled = LOFDetector(n_neighbors=10, scale=False).fit(X)
    ref = LocalOutlierFactor(n_neighbors=10, novelty=True).fit(X)
    np.testing.assert_allclose(unscaled.anomaly_score(T), -ref.score_samples(T))


def test_lof_caps_its_neighbours_and_subsamples():
    from anomalia.detectors.classical import LOFDetector

    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    small = LOFDetector().fit(X[:5])  # 20 neighbours asked, 4 exist: no warning
    assert small.estimator_.n_neighbors == 4
    sub = LOFDetector(max_samples=50, random_state=0).fit(X)
    assert sub.estimator_.n_samples_fit_ == 50
    np.testing.assert_array_equal(sub.decision_scores_, sub.anomaly_score(X))
    again = LOFDetector(max_samples=50, random_state=0).fit(X)
    np.testing.assert_array_equal(again.anomaly_score(X), sub.anomaly_score(X))
    for params, match in [({"n_neighbors": 0}, "n_neighbors"), ({"max_samples": 1}, "max_samples")]:
        with pytest.raises(ValueError, match=match):
            LOFDetector(**params).fit(X)


@pytest.mark.parametrize("name", ["knn", "lof", "ocsvm", "ae", "vae"])
def test_a_value_a_constant_training_feature_never_took_is_far(name, tmp_path):
    """A feature constant in every training row (here 0, as a one-hot category the normal
    rows never showed, and 500) scales by constant_feature_scale, not 1: a test row that
    differs there (by 1 from 0, by 10 % from 500) outranks rows 4 standard deviations out
    on a varying feature; the training rows' own scores are those of the fit without those
    features, and a saved model scores the same."""
    import anomalia
    from anomalia import make_detector
    from anomalia._utils.scaling import UNSEEN_SCALE

    rng = np.random.default_rng(0)
    X = np.c_[rng.normal(size=(400, 6)), np.zeros(400), np.full(400, 500.0)]
    far = np.tile(X[:1], (4, 1))
    far[:, 0] = 4.0  # far out on a varying feature
    unseen = np.tile(X[:1], (2, 1))
    unseen[0, 6], unseen[1, 7] = 1.0, 550.0  # values the constant features never took
    params = {"epochs": 5} if "ae" in name else {}
    det = make_detector(name, random_state=0, **params).fit(X)
    assert det.anomaly_score(unseen).min() > det.anomaly_score(far).max()
    scale = det.input_scale_ if "ae" in name else det.scaler_.scale_
    np.testing.assert_allclose(scale[6:], [UNSEEN_SCALE, UNSEEN_SCALE * 500.0])
    det.save(tmp_path / "m.anomalia")
    loaded = anomalia.load(tmp_path / "m.anomalia")
    np.testing.assert_allclose(loaded.anomaly_score(unseen), det.anomaly_score(unseen), rtol=1e-6)
    if name == "knn":  # the constant features add nothing to training rows' distances
        alone = make_detector(name, random_state=0).fit(X[:, :6])
        np.testing.assert_allclose(det.decision_scores_, alone.decision_scores_, rtol=1e-10)


def test_constant_feature_scale_is_relative_and_never_above_1():
    """0.1 % of the value (at least of 1), capped at 1: a large constant (a year, a
    timestamp) is never treated as less unusual than scale 1 would, and float32 rounding of
    a mid-sized one stays small."""
    from anomalia._utils.scaling import constant_feature_scale, constant_features

    got = constant_feature_scale(np.array([0.0, -0.5, 5.0, -200.0, 2024.0, 1.7e9]))
    np.testing.assert_allclose(got, [1e-3, 1e-3, 5e-3, 0.2, 1.0, 1.0])
    X = np.c_[np.full(50, 1.0), np.full(50, 1.0) + np.spacing(1.0) * (np.arange(50) % 2)]
    assert constant_features(X.mean(axis=0), X.std(axis=0)).all()  # rounding noise counts


def test_near_constant_features_scale_alike_in_knn_and_the_auto_encoders():
    from anomalia import make_detector

    rng = np.random.default_rng(1)
    X = np.c_[rng.normal(size=(200, 3)), 1.0 + np.spacing(1.0) * (np.arange(200) % 2)]
    knn = make_detector("knn").fit(X)
    ae = make_detector("ae", epochs=1, random_state=0).fit(X)
    np.testing.assert_allclose(knn.scaler_.scale_[3], 1e-3)
    np.testing.assert_allclose(ae.input_scale_[3], 1e-3)


def test_knn_partial_fit_keeps_the_constant_scale_only_while_every_row_seen_holds_it():
    """The running sample may drop a rare value: five 1s among 3,000 streamed rows, none in
    the 200-row sample. Their column must not be scaled as constant (the rows seen are not
    constant), so those training rows do not score as 1,000 units out; a column that stays
    0 in every row seen keeps the constant-feature scale."""
    from anomalia import make_detector

    rng = np.random.default_rng(0)
    det = make_detector("knn", reservoir_size=200, random_state=0)
    det.fit(np.c_[rng.normal(size=(200, 3)), np.zeros((200, 2))])
    rare = []
    for i in range(14):
        batch = np.c_[rng.normal(size=(200, 3)), np.zeros((200, 2))]
        if i < 5:
            batch[0, 3] = 1.0
            rare.append(batch[0])
        det.partial_fit(batch)
    assert not (det.reservoir_[:, 3] == 1.0).any()  # the sample dropped every rare row
    assert det.scaler_.scale_[3] == 1.0  # scikit-learn's scale: not the constant-feature one
    np.testing.assert_allclose(det.scaler_.scale_[4], 1e-3)  # still constant everywhere
    assert det.anomaly_score(np.array(rare)).max() < 20
