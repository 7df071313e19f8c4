"""``ae`` / ``conv-ae`` with ``code_neighbors``: scoring in code space beside reconstruction."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

import anomalia
from anomalia import DataError, make_detector
from anomalia.cli.app import app
from anomalia.errors import AnomaliaError, ModelFileError

from .test_hostile_models import _tampered


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6))
    T = np.r_[rng.normal(size=(60, 6)), rng.normal(size=(60, 6)) + 4.0]
    return X, T, np.r_[np.zeros(60), np.ones(60)]


@pytest.fixture(scope="module")
def fitted(data):
    return make_detector("ae", epochs=5, code_neighbors=5, random_state=0).fit(data[0])


def test_scores_combine_both_terms_z_scored_on_training(fitted, data):
    X, T, y = data
    assert fitted.code_reference_.shape == (300, fitted.bottleneck_)
    assert fitted.code_reference_.dtype == np.float32
    # the training scores the threshold is set on: mean 0 per term, so their sum is near 0
    assert abs(fitted.decision_scores_.mean()) < 1e-6
    assert roc_auc_score(y, fitted.anomaly_score(T)) > 0.95
    plain = make_detector("ae", epochs=5, random_state=0).fit(X)
    recon = plain.anomaly_score(T)  # same seed, same network: the first term alone
    c = fitted.code_scaling_
    near = fitted.anomaly_score(T) - (recon - c[0]) / c[1]
    assert np.all(near > -c[2] / c[3] - 1e-6)  # distances are >= 0


def test_code_weight_scales_the_code_term(fitted, data):
    X, T, _ = data
    heavy = make_detector("ae", epochs=5, code_neighbors=5, code_weight=2.0, random_state=0)
    heavy.fit(X)
    np.testing.assert_array_equal(heavy.code_scaling_, fitted.code_scaling_)  # same network
    c = fitted.code_scaling_
    recon = make_detector("ae", epochs=5, random_state=0).fit(X).anomaly_score(T)
    near = fitted.anomaly_score(T) - (recon - c[0]) / c[1]
    np.testing.assert_allclose(heavy.anomaly_score(T), (recon - c[0]) / c[1] + 2 * near,
                               rtol=1e-6, atol=1e-6)  # fmt: skip
    assert heavy.get_params()["code_weight"] == 2.0
    for bad in (0, -1.0, float("inf"), True, "2"):
        with pytest.raises(ValueError, match="code_weight must be a finite number > 0"):
            make_detector("ae", epochs=1, code_neighbors=5, code_weight=bad).fit(X)


def test_training_rows_leave_their_own_code_out(fitted, data):
    X = data[0]
    # scored as new rows, training rows find their own code at distance 0: lower scores
    assert fitted.anomaly_score(X).mean() < fitted.decision_scores_.mean()


def test_repeatable_and_saved(fitted, data, tmp_path):
    X, T, _ = data
    again = make_detector("ae", epochs=5, code_neighbors=5, random_state=0).fit(X)
    np.testing.assert_array_equal(fitted.anomaly_score(T), again.anomaly_score(T))
    path = tmp_path / "m.anomalia"
    fitted.save(path)
    np.testing.assert_allclose(anomalia.load(path).anomaly_score(T), fitted.anomaly_score(T))


def test_a_tampered_reference_is_refused(fitted, tmp_path):
    path = tmp_path / "m.anomalia"
    fitted.save(path)
    cases = {
        "nan": ("code_reference_", lambda a: a * np.nan),
        "wide": ("code_reference_", lambda a: np.c_[a, a]),
        "float64": ("code_reference_", lambda a: a.astype(np.float64)),
        "zero-scale": ("code_scaling_", lambda a: a * 0),
    }
    for case, (name, fn) in cases.items():
        with pytest.raises(ModelFileError):
            anomalia.load(_tampered(path, tmp_path / f"{case}.anomalia", name, fn))


def test_what_it_cannot_do_says_why(fitted, data):
    X = data[0]
    with pytest.raises(DataError, match="partial_fit cannot keep code_neighbors"):
        fitted.partial_fit(X)
    with pytest.raises(ValueError, match="code_neighbors must be an integer >= 0"):
        make_detector("ae", code_neighbors=-1).fit(X)
    with pytest.raises(DataError, match="needs more training rows"):
        make_detector("ae", epochs=1, code_neighbors=10).fit(X[:8])
    pytest.importorskip("onnx")
    from anomalia.export import to_onnx

    with pytest.raises(AnomaliaError, match="cannot export an ae with code_neighbors=5"):
        to_onnx(fitted)


def test_conv_ae_on_digits():
    X, y = anomalia.datasets.load("digits")
    images = np.asarray(X, dtype=float).reshape(-1, 8, 8)
    det = make_detector("conv-ae", epochs=2, code_neighbors=3, random_state=0)
    det.fit(images[y == 0][:80])
    X = images
    assert det.anomaly_score(X[:20]).shape == (20,)


def test_cli_fit_with_code_neighbors_then_score(tmp_path, data):
    import pandas as pd

    X, T, _ = data
    pd.DataFrame(X, columns=[f"f{i}" for i in range(6)]).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame(T, columns=[f"f{i}" for i in range(6)]).to_csv(tmp_path / "new.csv", index=False)
    runner = CliRunner()
    model, out = tmp_path / "m.anomalia", tmp_path / "scores.csv"
    res = runner.invoke(app, ["fit", str(tmp_path / "train.csv"), "-d", "ae", "-p", "epochs=3",
                              "-p", "code_neighbors=5", "-p", "code_weight=2",
                              "--out", str(model)])  # fmt: skip
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["score", str(model), str(tmp_path / "new.csv"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(out)) == len(T)
    assert anomalia.load(model).code_weight == 2
    res = runner.invoke(app, ["export", str(model), "--out", str(tmp_path / "m.onnx")])
    assert res.exit_code == 2 and "code_neighbors" in res.output
    assert not (tmp_path / "m.onnx").exists()


def test_a_streamed_fit_refuses_before_reading(data):
    X = data[0]
    det = make_detector("ae", epochs=1, code_neighbors=5)
    with pytest.raises(DataError, match="a streamed fit cannot keep code_neighbors"):
        det.fit_stream(
            lambda: iter(()), n_rows=len(X), mean=X.mean(0), std=X.std(0), sample=X,
            buffer_rows=64,
        )  # fmt: skip
