"""contamination="auto": the estimator on hand-made scores, detectors, model files, the CLI."""

from __future__ import annotations

import json
import warnings
import zipfile

import numpy as np
import pytest
from typer.testing import CliRunner

import anomalia
from anomalia import make_detector
from anomalia.cli.app import app
from anomalia.errors import DataError, ModelFileError
from anomalia.thresholds import DEFAULT_MAD_K, estimate_contamination

runner = CliRunner()


def two_groups(n_normal: int, n_anomalies: int, seed: int = 0) -> np.ndarray:
    """Scores of normal rows (chi-square, 4 dof) and of anomalies far above them."""
    rng = np.random.default_rng(seed)
    return np.r_[rng.chisquare(4, n_normal), rng.uniform(40, 60, n_anomalies)]


@pytest.mark.parametrize("method", ["mad", "gmm"])
@pytest.mark.parametrize("share", [0.05, 0.2])
def test_two_clear_groups_give_about_the_true_share(method, share):
    n = 2000
    scores = two_groups(int(n * (1 - share)), int(n * share))
    estimate = estimate_contamination(scores, method)
    # the tail rule also counts the upper tail of the normal scores (a few percent)
    assert share - 0.01 <= estimate <= share + 0.06, estimate


@pytest.mark.parametrize(
    "scores",
    [
        np.random.default_rng(1).normal(size=3000),
        np.random.default_rng(2).chisquare(5, 3000),
        np.abs(np.random.default_rng(3).normal(size=3000)),
    ],
    ids=["normal", "chi2", "half-normal"],
)
def test_clean_scores_give_a_small_estimate(scores):
    assert estimate_contamination(scores) <= 0.06


def test_gmm_finds_two_groups_even_in_clean_scores():
    # why the tail rule is the default: the mixture splits any skewed clean sample
    assert estimate_contamination(np.random.default_rng(2).chisquare(5, 3000), "gmm") > 0.2


@pytest.mark.parametrize("method", ["mad", "gmm"])
def test_constant_and_tied_scores_give_a_sane_value_without_warnings(method):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert estimate_contamination(np.full(50, 3.0), method) == 1 / 50
        assert estimate_contamination(np.full(1, 3.0), method) == 0.5  # one row: capped
        tied = np.r_[np.zeros(90), np.ones(10)]  # MAD is 0: the mean deviation instead
        assert estimate_contamination(tied, method) == pytest.approx(0.1)


@pytest.mark.parametrize("method", ["mad", "gmm"])
def test_bounds_determinism_and_invariance(method):
    rng = np.random.default_rng(4)
    for scores in (rng.uniform(size=200), two_groups(100, 300), rng.normal(size=5)):
        est = estimate_contamination(scores, method)
        assert 0 < est <= 0.5
        assert est == estimate_contamination(scores.copy(), method)  # deterministic
        assert est == pytest.approx(estimate_contamination(3.0 * scores + 7.0, method), abs=0.02)
    # a majority of high scores: the tail rule takes them for the normal rows (it never
    # flags more than the half above the median); the mixture's upper group is capped
    expected = {"mad": 0.01, "gmm": 0.5}[method]
    assert estimate_contamination(two_groups(100, 300), method) == pytest.approx(expected, abs=0.01)


def test_k_moves_the_tail_rule():
    scores = np.random.default_rng(5).chisquare(5, 2000)
    low, high = (estimate_contamination(scores, k=k) for k in (1.0, 2 * DEFAULT_MAD_K))
    assert low > estimate_contamination(scores, k=DEFAULT_MAD_K) > high


@pytest.mark.parametrize(
    ("scores", "kwargs", "error", "match"),
    [
        ([], {}, DataError, "no training scores"),
        ([1.0, np.nan], {}, DataError, "NaN"),
        ([1.0, 2.0], {"method": "otsu"}, ValueError, "method"),
        ([1.0, 2.0], {"method": "gmm", "k": 2.0}, ValueError, "'mad'"),
        ([1.0, 2.0], {"k": 0.0}, ValueError, "k must be"),
    ],
)
def test_bad_input_is_refused(scores, kwargs, error, match):
    with pytest.raises(error, match=match):
        estimate_contamination(scores, **kwargs)


@pytest.fixture(scope="module")
def polluted():
    """300 rows of a tight blob and 30 far away (9 % anomalies)."""
    rng = np.random.default_rng(0)
    return np.r_[rng.normal(size=(300, 3)), rng.uniform(-15, 15, size=(30, 3))]


@pytest.mark.parametrize(
    ("name", "params"), [("iforest", {"random_state": 0}), ("gaussian", {}), ("knn", {})]
)
def test_auto_sets_the_threshold_from_the_estimate(polluted, name, params):
    det = make_detector(name, contamination="auto", **params).fit(polluted)
    assert det.calibration_ == {"strategy": "auto", "rate": det.contamination_}
    assert det.contamination_ == estimate_contamination(det.decision_scores_)
    assert 0.05 <= det.contamination_ <= 0.2
    assert det.threshold_ == np.quantile(det.decision_scores_, 1 - det.contamination_)
    assert det.labels_.mean() == pytest.approx(det.contamination_, abs=1 / len(polluted))
    flagged = det.predict(polluted) == -1
    assert flagged[300:].mean() > 0.8  # the far rows are flagged


def test_auto_with_a_torch_detector(polluted):
    pytest.importorskip("torch")
    det = make_detector(
        "ae", contamination="auto", hidden=(8,), epochs=2, batch_size=64, random_state=0
    )
    det.fit(polluted)
    assert det.calibration_["strategy"] == "auto"
    assert 0 < det.contamination_ <= 0.5
    assert det.threshold_ == np.quantile(det.decision_scores_, 1 - det.contamination_)


def test_other_settings_record_their_share(polluted):
    assert make_detector("gaussian").fit(polluted).contamination_ is None
    assert make_detector("gaussian", contamination=0.1).fit(polluted).contamination_ == 0.1


@pytest.mark.parametrize("bad", ["banana", "AUTO", 0.0, 0.7])
def test_bad_contamination_is_refused_at_fit(polluted, bad):
    with pytest.raises(ValueError, match="contamination"):
        make_detector("gaussian", contamination=bad).fit(polluted)


def test_calibrate_keeps_the_estimate(polluted):
    det = make_detector("gaussian", contamination="auto").fit(polluted)
    estimate = det.contamination_
    y = np.r_[np.zeros(300), np.ones(30)]
    det.calibrate(polluted, y)
    assert det.calibration_["strategy"] == "f1" and det.contamination_ == estimate


@pytest.fixture
def auto_file(tmp_path, polluted):
    det = make_detector("iforest", contamination="auto", random_state=0).fit(polluted)
    path = tmp_path / "auto.anomalia"
    det.save(path)
    return det, path


def test_save_and_load_keep_the_estimate_and_threshold(auto_file, polluted):
    det, path = auto_file
    back = anomalia.load(path)
    assert back.contamination == "auto" and back.contamination_ == det.contamination_
    assert back.threshold_ == det.threshold_ and back.calibration_ == det.calibration_
    np.testing.assert_array_equal(back.predict(polluted), det.predict(polluted))


def _edit(path, change):
    with zipfile.ZipFile(path) as zf:
        blobs = {n: zf.read(n) for n in zf.namelist()}
    manifest = json.loads(blobs["manifest.json"])
    change(manifest["attributes"])
    blobs["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for n, b in blobs.items():
            zf.writestr(n, b)


def _set(**values):
    return lambda attributes: attributes.update(values)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (_set(contamination_=0.9), r"contamination_ must be None or a number in \(0, 0.5\]"),
        (_set(contamination_="x"), "contamination_ must be"),
        (_set(contamination_=True), "contamination_ must be"),
        (_set(contamination_=0.3), "not the estimate"),  # in range, but not what it was
        (_set(contamination_=None), "lacks contamination_"),
        (lambda a: a.pop("contamination_"), "lacks contamination_"),
        (lambda a: a["calibration_"].update(rate=0.3), "does not follow"),
        (_set(threshold_=-1e9), "does not follow"),
    ],
)
def test_a_tampered_estimate_is_refused(auto_file, change, match):
    _, path = auto_file
    _edit(path, change)
    with pytest.raises(ModelFileError, match=match):
        anomalia.load(path)


def test_a_share_that_is_not_the_parameter_is_refused(tmp_path, polluted):
    path = tmp_path / "c.anomalia"
    make_detector("gaussian", contamination=0.1).fit(polluted).save(path)
    _edit(path, _set(contamination_=0.2))
    with pytest.raises(ModelFileError, match="not the model's contamination"):
        anomalia.load(path)


# -- the command line ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def table(tmp_path_factory, polluted):
    path = tmp_path_factory.mktemp("data") / "train.csv"
    np.savetxt(path, polluted, delimiter=",", header="a,b,c", comments="")
    return path


def test_cli_fit_with_auto_contamination(tmp_path, table, polluted):
    out = tmp_path / "m.anomalia"
    res = runner.invoke(
        app, ["fit", str(table), "-d", "iforest", "--contamination", "auto", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    det = anomalia.load(out)
    assert det.calibration_["strategy"] == "auto"
    said = " ".join(res.output.split())
    assert f"estimated contamination {det.contamination_:.2%}" in said
    expected = make_detector("iforest", contamination="auto", random_state=0).fit(polluted)
    assert det.contamination_ == expected.contamination_


@pytest.mark.parametrize("bad", ["banana", "1.5", "0", "nan"])
def test_cli_refuses_a_bad_contamination(tmp_path, table, bad):
    out = tmp_path / "m.anomalia"
    res = runner.invoke(app, ["fit", str(table), "--contamination", bad, "--out", str(out)])
    assert res.exit_code == 2
    assert res.stderr.strip().count("\n") == 0  # one line
    assert "--contamination must be 'auto' or a number in (0, 0.5]" in res.stderr
    assert repr(bad) in res.stderr
    assert not out.exists()
