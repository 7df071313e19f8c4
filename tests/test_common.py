"""Every registered detector against scikit-learn's own estimator checks and our contract."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import anomalia
from anomalia import make_detector

from .conftest import FAST_PARAMS, HAS_PYOD, SUPERVISED, TEXT

#: Detectors of tables trained without labels: the contract tests below call fit(X) (PyOD's
#: when the optional package is installed, as `make test` does).
NAMES = [n for n in FAST_PARAMS if n not in SUPERVISED | TEXT and (n != "pyod" or HAS_PYOD)]


def _make(name: str, **extra):
    return make_detector(name, **{**FAST_PARAMS[name], **extra})


def test_every_registered_detector_has_fast_test_settings():
    assert set(anomalia.available_detectors()) == set(FAST_PARAMS)


FLOAT32_REASON = (
    "the network scores in float32 for speed: a row's score moves by ~1e-7 relative with the "
    "composition of its batch (vectorised kernels), above this check's 1e-7 absolute tolerance"
)


KNN_REASON = (
    "predict(X_train) scores each training row with itself as its nearest neighbour, so fewer "
    "than `contamination` rows are flagged; the threshold comes from leave-one-out training "
    "scores (what fit_predict returns, checked by check_outliers_fit_predict), as in PyOD"
)

LOF_REASON = (
    "fit_predict labels the training rows by their leave-one-out LOF (scikit-learn's "
    "negative_outlier_factor_, as PyOD's LOF), predict(X_train) by scikit-learn's novelty "
    "score, each row among its own neighbours: a few rows near the threshold differ"
)

ECOD_REASON = (
    "PyOD's ECOD and COPOD score new rows together with the training rows (decision_function "
    "re-estimates the empirical distributions on both), so a row's score moves with the batch "
    "it is scored in (see PyODDetector's docstring)"
)


def _expected_failures(estimator):
    if estimator.name in SUPERVISED:
        reason = "calls fit(X) without y; this detector needs the known classes"
        return {"check_outliers_train": reason, "check_outliers_fit_predict": reason}
    members = [m if isinstance(m, str) else m[0] for m in getattr(estimator, "detectors", ())]
    out = {}
    # disentangle is an auto-encoder too (a float32 network scored in batches): same reason
    if type(estimator).__module__.endswith(("autoencoder", "disentangle")) or "ae" in members:
        out["check_methods_subset_invariance"] = FLOAT32_REASON
        out["check_methods_sample_order_invariance"] = FLOAT32_REASON
    if estimator.name == "knn" or "knn" in members:
        out["check_outliers_train"] = KNN_REASON
    if estimator.name == "pyod" and estimator.model in ("ECOD", "COPOD"):
        out["check_methods_subset_invariance"] = ECOD_REASON
    if estimator.name == "lof":
        out["check_outliers_train"] = KNN_REASON
        out["check_outliers_fit_predict"] = LOF_REASON
    return out


@parametrize_with_checks([_make(n) for n in NAMES], expected_failed_checks=_expected_failures)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("name", NAMES)
def test_orientation_and_threshold(name, blobs):
    train, X_test, y_test = blobs
    det = _make(name).fit(train)
    a = det.anomaly_score(X_test)
    assert a.dtype == np.float64 and a.shape == (len(X_test),)
    np.testing.assert_allclose(det.score_samples(X_test), -a)
    np.testing.assert_allclose(det.decision_function(X_test), det.threshold_ - a)
    np.testing.assert_array_equal(det.predict(X_test), np.where(a > det.threshold_, -1, 1))
    assert roc_auc_score(y_test, a) > 0.95
    # default rule: about 1 % of the clean training rows are above the threshold
    assert 0.0 < np.mean(det.anomaly_score(train) > det.threshold_) <= 0.02


@pytest.mark.parametrize("name", NAMES)
def test_contamination_sets_share_of_flagged_training_rows(name, blobs):
    train, _, _ = blobs
    labels = _make(name, contamination=0.1).fit_predict(train)
    assert np.mean(labels == -1) == pytest.approx(0.1, abs=0.01)


@pytest.mark.parametrize("name", NAMES)
def test_auto_contamination_flags_its_estimate_of_the_training_rows(name, blobs):
    train, _, _ = blobs
    det = _make(name, contamination="auto")
    labels = det.fit_predict(train)
    assert det.calibration_ == {"strategy": "auto", "rate": det.contamination_}
    assert 0 < det.contamination_ <= 0.5
    assert np.mean(labels == -1) == pytest.approx(det.contamination_, abs=0.01)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [0.0, 0.6, -0.1, "banana", "AUTO"])
def test_contamination_out_of_range_is_rejected(name, bad, blobs):
    with pytest.raises(ValueError, match="contamination"):
        _make(name, contamination=bad).fit(blobs[0])


@pytest.mark.parametrize("name", NAMES)
def test_toy_outliers_rank_last(name):
    X = np.array(
        [[0, 0], [0.1, 0.2], [0.2, 0.1], [-0.1, 0.1], [0.1, -0.1], [0, 0.1], [5, 5], [-6, 4]],
        dtype=float,
    )
    det = _make(name).fit(X[:6])
    order = np.argsort(det.anomaly_score(X))
    assert set(order[-2:]) == {6, 7}


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_scores_and_global_rng_untouched(name, blobs):
    train, X_test, _ = blobs
    state = np.random.get_state()[1].copy()
    a = _make(name).fit(train).anomaly_score(X_test)
    b = clone(_make(name)).fit(train).anomaly_score(X_test)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.random.get_state()[1], state)


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(name, blobs, tmp_path):
    train, X_test, y_test = blobs
    det = _make(name).fit(train).calibrate(X_test, y_test, "f1")
    det.save(tmp_path / "m.anomalia")
    back = anomalia.load(tmp_path / "m.anomalia")
    assert type(back) is type(det)
    assert back.get_params() == det.get_params()
    assert back.threshold_ == det.threshold_
    np.testing.assert_array_equal(back.anomaly_score(X_test), det.anomaly_score(X_test))
    np.testing.assert_array_equal(back.predict(X_test), det.predict(X_test))


@pytest.mark.parametrize("name", NAMES)
def test_works_in_pipeline(name, blobs):
    train, X_test, y_test = blobs
    pipe = make_pipeline(MinMaxScaler(), _make(name)).fit(train)
    assert pipe.predict(X_test).shape == (len(X_test),)
    assert roc_auc_score(y_test, -pipe.score_samples(X_test)) > 0.95


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_input_is_rejected(name, value, blobs):
    det = _make(name).fit(blobs[0])
    X = blobs[1].copy()
    X[3, 1] = value
    with pytest.raises(ValueError, match="NaN|infinity"):
        det.anomaly_score(X)


@pytest.mark.parametrize("name", NAMES)
def test_wrong_number_of_features_is_rejected(name, blobs):
    det = _make(name).fit(blobs[0])
    with pytest.raises(ValueError, match="features"):
        det.anomaly_score(blobs[1][:, :3])


@pytest.mark.parametrize("name", NAMES)
def test_features_too_large_to_compute_with_are_refused_at_fit(name, blobs):
    X = blobs[0].copy()
    X[3, 1] = 1e308  # its square, the variance, overflows; warnings are errors in the tests
    with pytest.raises(
        anomalia.DataError, match=r"(column 1|pixel \(0, 0, 1\)) holds values too large"
    ):
        _make(name).fit(X)


@pytest.mark.parametrize("name", ["gaussian", "knn", "ae", "vae"])
def test_rows_whose_score_overflows_are_refused(name, blobs):
    det = _make(name).fit(pd.DataFrame(blobs[0], columns=list("abcd")))
    X = pd.DataFrame(blobs[1], columns=list("abcd"))
    X.iloc[3, 1] = 1e308
    with pytest.raises(anomalia.DataError, match=r"1 of 120 rows .*row 3, .*1e\+308 in column 'b'"):
        det.anomaly_score(X)


@pytest.mark.parametrize("name", ["gaussian", "ocsvm", "iforest", "knn", "ensemble"])
def test_an_array_of_more_dimensions_is_refused_without_a_warning(name, blobs):
    det = _make(name).fit(pd.DataFrame(blobs[0], columns=list("abcd")))
    with pytest.raises(anomalia.DataError, match=r"takes a table .*shape \(120, 2, 2\)"):
        det.anomaly_score(blobs[1].reshape(-1, 2, 2))


def test_unknown_detector_and_parameter_are_named():
    with pytest.raises(anomalia.AnomaliaError, match="unknown detector 'nope'.*gaussian"):
        make_detector("nope")
    with pytest.raises(anomalia.AnomaliaError, match="unknown parameter.*n_trees.*n_estimators"):
        make_detector("iforest", n_trees=3)


@pytest.mark.parametrize("name", ["gaussian", "knn", "ae"])
def test_scoring_skips_validation_only_for_ready_tables(name):
    """The shortcut past validate_data takes exactly the input validate_data would return
    unchanged, and gives the same scores; anything else takes the checked path."""
    from sklearn.utils.validation import validate_data

    rng = np.random.default_rng(0)
    cols = ["a", "b", "c"]
    X = pd.DataFrame(rng.normal(size=(80, 3)), columns=cols)
    det = _make(name, random_state=0).fit(X)
    T = pd.DataFrame(rng.normal(size=(7, 3)), columns=cols)
    dtypes = (np.float64, np.float32) if name == "ae" else (np.float64,)
    ready = det._ready_table(T, dtypes)
    checked = validate_data(det, T, reset=False, dtype=dtypes)
    assert ready is not None
    np.testing.assert_array_equal(ready, checked)
    assert ready.flags.f_contiguous == checked.flags.f_contiguous
    np.testing.assert_array_equal(
        det.anomaly_score(T), det._anomaly_score(det._validate(T, reset=False))
    )
    not_ready = [
        T[["b", "a", "c"]],  # columns out of order: validate_data refuses
        T.astype(np.int64),  # converted
        T.to_numpy(),  # fitted with names: validate_data warns
        T.iloc[:0],  # no rows
        T.assign(a=np.where(np.arange(7) == 3, np.nan, T["a"])),  # NaN: refused by name
        T.assign(d=1.0),  # extra column
    ]
    for bad in not_ready:
        assert det._ready_table(bad, dtypes) is None
    with pytest.raises(anomalia.DataError, match="NaN"):
        det.anomaly_score(not_ready[4])
