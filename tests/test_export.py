"""ONNX export: every exportable detector scored by onnxruntime as by anomalia, the refusals,
the metadata and ``anomalia export`` end to end."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import anomalia
from anomalia import make_detector
from anomalia.datasets import load
from anomalia.errors import AnomaliaError

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from anomalia.export import to_onnx  # noqa: E402  (after the skips)

#: The documented agreement: |onnx - anomalia| <= RTOL * (|score| + mean |score|).
RTOL = 1e-5
#: float64 graphs of the classical detectors: exact up to rounding (scikit-learn's brute-force
#: neighbour search itself rounds |a|^2 - 2ab + |b|^2 to ~1e-9).
RTOL_FLOAT64 = 1e-8

TINY_NET = {"hidden": (16,), "epochs": 3, "batch_size": 32, "random_state": 0}
TINY_CONV = {
    "channels": (4, 8),
    "epochs": 2,
    "batch_size": 32,
    "image_shape": (8, 8),
    "random_state": 0,
}


@pytest.fixture(scope="module")
def cancer():
    """Breast cancer: the benign rows to train on, all rows to score."""
    X, y = load("breast-cancer")
    return X[y == 0], X


@pytest.fixture(scope="module")
def digits():
    """sklearn's digits (8 x 8, flat rows): the zeros to train on, 400 rows to score."""
    X, y = load("digits")
    return X[y == 0], X[:400]


def session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def run(model, X, dtype=np.float32):
    """``(anomaly_score, is_anomaly)`` of the rows ``X`` under onnxruntime."""
    score, flag = session(model).run(None, {"X": np.asarray(X, dtype=dtype)})
    return score, flag


def relative_error(got, ref):
    """max |got - ref| / (|ref| + mean |ref|): relative, with an absolute floor at the scale
    of the scores (a score crossing 0 has no relative error of its own)."""
    ref = np.asarray(ref, dtype=np.float64)
    return float(np.max(np.abs(got - ref) / (np.abs(ref) + np.mean(np.abs(ref)))))


def check_round_trip(det, X, *, dtype="float32", rtol=RTOL, atol_flag=None):
    """Export ``det``, check the model, and compare onnxruntime's outputs with anomalia's."""
    model = to_onnx(det, dtype=dtype)
    onnx.checker.check_model(model, full_check=True)
    ref = det.anomaly_score(X)
    score, flag = run(model, X, np.dtype(dtype))
    assert score.dtype == np.dtype(dtype) and score.shape == (len(X),)
    assert flag.dtype == np.bool_ and flag.shape == (len(X),)
    err = relative_error(score, ref)
    assert err <= rtol, f"{det.name}: max relative difference {err:.2e}"
    # the flags agree except for rows within the tolerance of the threshold
    tol = rtol * (abs(det.threshold_) + np.mean(np.abs(ref))) if atol_flag is None else atol_flag
    near = np.abs(ref - det.threshold_) <= tol
    assert np.array_equal(flag[~near], (ref > det.threshold_)[~near])
    return model, score


# -- the classical detectors -----------------------------------------------------------------
CLASSICAL = [
    ("gaussian", {}),
    ("gaussian", {"score_method": "distance"}),
    ("gaussian", {"support_fraction": 0.5, "scale_from": "all"}),
    ("knn", {}),
    ("knn", {"method": "mean", "n_neighbors": 10}),
    ("knn", {"method": "median", "n_neighbors": 4}),
    ("knn", {"method": "median", "n_neighbors": 5, "duplicates": "ignore"}),
    ("knn", {"scale": False, "max_samples": 200, "random_state": 0}),
    ("ocsvm", {}),
    ("ocsvm", {"kernel": "linear"}),
    ("ocsvm", {"kernel": "poly", "nu": 0.2}),
    ("ocsvm", {"kernel": "sigmoid"}),
    ("iforest", {"n_estimators": 50, "random_state": 0}),
    ("iforest", {"n_estimators": 50, "max_features": 0.5, "max_samples": 100, "random_state": 1}),
]


@pytest.mark.parametrize(("name", "params"), CLASSICAL)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_classical_round_trip(cancer, name, params, dtype):
    train, X = cancer
    det = make_detector(name, **params).fit(train)
    rtol = RTOL
    if dtype == "float64":  # exact, but trees always compare float32 values
        rtol = 1e-6 if name == "iforest" else RTOL_FLOAT64
    check_round_trip(det, X, dtype=dtype, rtol=rtol)


def test_float64_for_large_offsets():
    """A feature far from 0 next to its spread (a timestamp): float32 input rounds it by
    ~1e-1 standard deviations, which moves the scores; float64 is exact."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    X[:, 0] = 1.7e9 + 1000.0 * X[:, 0]
    for name in ("gaussian", "knn", "ocsvm"):
        det = make_detector(name).fit(X)
        ref = det.anomaly_score(X)
        assert relative_error(run(to_onnx(det), X)[0], ref) > 1e-4
        check_round_trip(det, X, dtype="float64", rtol=RTOL_FLOAT64)
    det = make_detector("iforest", n_estimators=25, random_state=0).fit(X)
    check_round_trip(det, X)  # trees compare float32 values in scikit-learn too


def test_constant_training_features_keep_their_scale(cancer):
    """A feature constant in training scales by constant_feature_scale in the graph too:
    rows that differ there score the same in onnxruntime as in anomalia."""
    train, X = cancer
    train = np.c_[train, np.zeros(len(train))]
    X = np.c_[X, (np.arange(len(X)) % 3 == 0).astype(float)]  # a third never seen in training
    for det in (make_detector("knn").fit(train), make_detector("ae", epochs=3).fit(train)):
        check_round_trip(det, X)


def test_knn_ignores_its_own_copies(cancer):
    """duplicates='ignore': scoring the (repeated) training rows skips each row's own copy,
    as the detector does; with 'count' a row held twice is its own two nearest neighbours."""
    train, _ = cancer
    rows = np.vstack([train, train[:50]])  # 50 rows twice
    for duplicates in ("ignore", "count"):
        det = make_detector("knn", n_neighbors=2, duplicates=duplicates).fit(rows)
        _, score = check_round_trip(det, rows)
        if duplicates == "ignore":
            assert np.all(score > 0)
        else:
            assert np.all(score[:50] < 1e-5)  # 0, up to the rounding of float32 standardising


def test_iforest_thresholds_round_down(cancer):
    """Rows lying exactly on a float32-rounded split value take scikit-learn's branch: each
    float64 threshold is rounded down, so ``x <= t`` holds for the same float32 values."""
    rng = np.random.default_rng(0)
    X = rng.choice([0.1, 0.2, 0.3, 0.7, 1.1], size=(300, 4)) + rng.normal(0, 1e-3, (300, 4))
    det = make_detector("iforest", n_estimators=30, random_state=0).fit(X)
    trees = [t.tree_ for t in det.estimator_.estimators_]
    split = np.concatenate([t.threshold[t.children_left != -1] for t in trees])
    feature = np.concatenate([t.feature[t.children_left != -1] for t in trees])
    X_on = np.stack(
        [rng.choice(split[feature == j].astype(np.float32), 3000) for j in range(4)], axis=1
    ).astype(np.float64)
    score, _ = run(to_onnx(det), X_on)
    np.testing.assert_allclose(score, det.anomaly_score(X_on), rtol=1e-6, atol=0)


# -- the networks ------------------------------------------------------------------------------
# torch's dynamo exporter takes seconds per network: each network is fitted and exported once
# (float32) for the round trip and the batch sizes.
NETWORKS = {
    "ae": ("ae", TINY_NET),
    "dae": ("dae", TINY_NET),
    "vae": ("vae", TINY_NET),
    "vqvae": ("vqvae", {**TINY_NET, "n_codes": 8, "code_dim": 2, "n_latents": 2}),
    "vqvae-rarity": ("vqvae", {**TINY_NET, "n_codes": 8, "score_method": "recon+rarity"}),
}
IMAGE_NETWORKS = ("conv-ae", "vae", "vqvae", "disentangle")


@pytest.fixture(scope="module")
def exported(cancer, digits):
    """``exported(key, images=False)``: a fitted network and its float32 ONNX model, cached."""
    cache = {}

    def get(key, images=False):
        if (key, images) not in cache:
            if images:
                det = make_detector(key, **TINY_CONV).fit(digits[0])
            else:
                name, params = NETWORKS[key]
                det = make_detector(name, **params).fit(cancer[0])
            cache[key, images] = det, to_onnx(det)
        return cache[key, images]

    return get


def check_network(det, model, X):
    """The checks of :func:`check_round_trip` on an already exported network."""
    onnx.checker.check_model(model, full_check=True)
    ref = det.anomaly_score(X)
    score, flag = run(model, X)
    assert score.dtype == np.float32 and flag.dtype == np.bool_
    err = relative_error(score, ref)
    assert err <= RTOL, f"{det.name}: max relative difference {err:.2e}"
    near = np.abs(ref - det.threshold_) <= RTOL * (abs(det.threshold_) + np.mean(np.abs(ref)))
    assert np.array_equal(flag[~near], (ref > det.threshold_)[~near])


@pytest.mark.slow
@pytest.mark.parametrize("key", list(NETWORKS))
def test_network_round_trip_tables(cancer, exported, key):
    det, model = exported(key)
    check_network(det, model, cancer[1])


@pytest.mark.slow
@pytest.mark.parametrize("name", IMAGE_NETWORKS)
def test_network_round_trip_images(digits, exported, name):
    """Image models take flat rows (C x H x W values); the pixel scaling is in the graph."""
    det, model = exported(name, images=True)
    assert det.image_shape_ == (1, 8, 8)
    check_network(det, model, digits[1])
    assert json.loads(meta(model)["image_shape"]) == [1, 8, 8]


@pytest.mark.slow
def test_network_float64_input(cancer, exported):
    """float64 input is cast to float32 for the network, as anomalia itself does."""
    det, _ = exported("ae")
    check_round_trip(det, cancer[1], dtype="float64")


# -- ensembles ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "params",
    [
        {"detectors": ("knn", "gaussian")},
        {
            "detectors": ("knn", "gaussian", "iforest"),
            "normalization": "robust",
            "weights": (2.0, 1.0, 0.5),
            "trim": 0.1,
        },
    ],
)
def test_ensemble_round_trip(cancer, params):
    train, X = cancer
    det = make_detector("ensemble", random_state=0, **params).fit(train)
    check_round_trip(det, X)


def test_default_detector_round_trip(cancer):
    """The recommended detector: knn (mean, subsampled) and two robust Gaussians."""
    train, X = cancer
    det = make_detector("default", random_state=0).fit(train)
    model, _ = check_round_trip(det, X)
    assert meta(model)["detector"] == "ensemble"  # to_onnx's default; the CLI says 'default'


def test_rank_ensemble_steps(cancer):
    """rank normalisation is a step function: on rows other than the training rows (whose
    member scores equal training scores exactly) the scores agree to rounding, and any
    difference is at most one step of one member."""
    train, X = cancer
    fit_rows, new_rows = train[:250], np.vstack([train[250:], X[:50]])
    det = make_detector(
        "ensemble", detectors=("knn", "iforest", "ocsvm"), normalization="rank", random_state=0
    ).fit(fit_rows)
    score, _ = run(to_onnx(det), new_rows)
    diff = np.abs(score - det.anomaly_score(new_rows))
    step = 1.0 / len(det.detectors_) / det.train_scores_.shape[1]
    assert diff.max() <= step * (1 + 1e-5)
    assert np.mean(diff > 1e-6) < 0.05


@pytest.mark.slow
def test_ensemble_of_two_networks(cancer):
    """Two exported networks in one graph: their names never collide."""
    train, X = cancer
    det = make_detector(
        "ensemble", detectors=(("ae", TINY_NET), ("vae", TINY_NET)), random_state=0
    ).fit(train)
    check_round_trip(det, X)


# -- dynamic batch size ------------------------------------------------------------------------
def check_batch_sizes(det, model, X, noise):
    """One graph scores 1 row and 10,000 rows (the batch axis is dynamic)."""
    dim = model.graph.input[0].type.tensor_type.shape.dim
    assert dim[0].dim_param and dim[1].dim_value == X.shape[1]
    sess = session(model)
    rng = np.random.default_rng(0)
    big = noise(X[rng.integers(0, len(X), 10_000)], rng)
    for rows in (X[:1], big):
        score, flag = sess.run(None, {"X": rows.astype(np.float32)})
        assert score.shape == flag.shape == (len(rows),)
        assert relative_error(score, det.anomaly_score(rows)) <= RTOL


def jitter(rows, rng):
    return rows * rng.normal(1.0, 0.05, rows.shape)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("gaussian", {}),
        ("knn", {"duplicates": "ignore"}),
        ("ocsvm", {}),
        ("iforest", {"n_estimators": 25, "random_state": 0}),
        ("ensemble", {"detectors": ("knn", "iforest"), "normalization": "robust"}),
    ],
)
def test_batch_sizes(cancer, name, params):
    train, X = cancer
    det = make_detector(name, **params).fit(train)
    check_batch_sizes(det, to_onnx(det), X, jitter)


@pytest.mark.slow
def test_batch_sizes_networks(cancer, digits, exported):
    check_batch_sizes(*exported("ae"), cancer[1], jitter)
    check_batch_sizes(
        *exported("conv-ae", images=True),
        digits[1],
        lambda rows, rng: np.clip(rows + rng.normal(0, 0.5, rows.shape), 0, 16),
    )


# -- what is refused ---------------------------------------------------------------------------
def test_vae_monte_carlo_is_refused(cancer):
    train, _ = cancer
    det = make_detector("vae", score_method="mc", **TINY_NET).fit(train)
    with pytest.raises(AnomaliaError, match=r"score_method='mc'.*draws random numbers"):
        to_onnx(det)
    ens = make_detector(
        "ensemble", detectors=("knn", ("vae", {"score_method": "mc", **TINY_NET}))
    ).fit(train)
    with pytest.raises(AnomaliaError, match="draws random numbers"):
        to_onnx(ens)  # a member's refusal, before any graph is built


def test_other_refusals(cancer):
    train, _ = cancer
    with pytest.raises(AnomaliaError, match="unfitted"):
        to_onnx(make_detector("gaussian"))
    with pytest.raises(AnomaliaError, match="needs an anomalia detector"):
        to_onnx(object())
    det = make_detector("gaussian").fit(train)
    with pytest.raises(AnomaliaError, match="dtype must be one of"):
        to_onnx(det, dtype="float16")
    with pytest.raises(AnomaliaError, match="feature_names holds 2 names"):
        to_onnx(det, feature_names=["a", "b"])
    with pytest.raises(AnomaliaError, match="64 hexadecimal digits"):
        to_onnx(det, sha256="abc")


def test_confidence_is_refused(cancer):
    train, _ = cancer
    classes = (train[:, 0] > np.median(train[:, 0])).astype(int)
    det = make_detector("confidence", hidden=(8,), epochs=2, random_state=0).fit(train, classes)
    with pytest.raises(AnomaliaError, match=r"cannot export ConfidenceDetector \(confidence\)"):
        to_onnx(det)


@pytest.mark.parametrize("name", ["lof", "pyod:ECOD"])
def test_lof_and_pyod_models_are_refused(cancer, tmp_path, name):
    from anomalia.cli.app import app

    if name.startswith("pyod:"):
        pytest.importorskip("pyod")
    train, _ = cancer
    det = make_detector(name).fit(train)
    kind = r"LOFDetector \(lof\)" if name == "lof" else r"PyODDetector \(pyod\)"
    with pytest.raises(AnomaliaError, match=rf"cannot export {kind} to ONNX"):
        to_onnx(det)
    det.save(tmp_path / "m.anomalia")
    out = tmp_path / "m.onnx"
    res = CliRunner().invoke(app, ["export", str(tmp_path / "m.anomalia"), "--out", str(out)])
    assert res.exit_code == 2 and "cannot export" in res.output and not out.exists()


# -- metadata ----------------------------------------------------------------------------------
def meta(model):
    return {p.key: p.value for p in model.metadata_props}


def test_metadata(cancer):
    train, _ = cancer
    names = [f"f{j}" for j in range(train.shape[1])]
    det = make_detector("gaussian").fit(pd.DataFrame(train, columns=names))
    sha = hashlib.sha256(b"model file").hexdigest()
    model = to_onnx(det, sha256=sha.upper(), dtype="float64")
    props = meta(model)
    assert json.loads(props["feature_names"]) == names  # from feature_names_in_
    assert float(props["threshold"]) == det.threshold_  # exact: repr of the float64
    assert props["anomalia_version"] == anomalia.__version__
    assert props["detector"] == "gaussian"
    assert props["model_sha256"] == sha
    assert props["dtype"] == "float64"
    assert json.loads(props["image_shape"]) is None
    assert [i.name for i in model.graph.input] == ["X"]
    assert [o.name for o in model.graph.output] == ["anomaly_score", "is_anomaly"]
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    # defaults: no names fitted -> x0, x1, ...; no sha256 -> no key; names can be given
    plain = make_detector("gaussian").fit(train)
    props = meta(to_onnx(plain))
    assert json.loads(props["feature_names"])[:2] == ["x0", "x1"]
    assert "model_sha256" not in props
    given = meta(to_onnx(plain, feature_names=names[::-1], detector_name="mine"))
    assert json.loads(given["feature_names"]) == names[::-1] and given["detector"] == "mine"


# -- the CLI -----------------------------------------------------------------------------------
def test_cli_fit_export_score(tmp_path):
    from anomalia.cli.app import app

    X, y = load("breast-cancer")
    cols = [f"feature {j}" for j in range(X.shape[1])]
    train = pd.DataFrame(X[y == 0][:300], columns=cols)
    test = pd.DataFrame(X[200:400], columns=cols)
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "fit",
            str(tmp_path / "train.csv"),
            "-d",
            "default",
            "--out",
            str(tmp_path / "m.anomalia"),
        ],
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app, ["export", str(tmp_path / "m.anomalia"), "--out", str(tmp_path / "m.onnx")]
    )
    assert res.exit_code == 0, res.output
    assert "exported default" in res.output
    model = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(model, full_check=True)
    props = meta(model)
    digest = hashlib.sha256((tmp_path / "m.anomalia").read_bytes()).hexdigest()
    assert props["model_sha256"] == digest and digest in res.output
    assert props["detector"] == "default"
    assert json.loads(props["feature_names"]) == cols
    # the same CSV rows, scored by onnxruntime alone and by the saved model
    rows = pd.read_csv(tmp_path / "test.csv")
    det = anomalia.load(tmp_path / "m.anomalia")
    ref = det.anomaly_score(rows)
    score, flag = run(model, rows[json.loads(props["feature_names"])].to_numpy())
    assert relative_error(score, ref) <= RTOL
    near = np.abs(ref - det.threshold_) <= RTOL * (abs(det.threshold_) + np.mean(np.abs(ref)))
    assert np.array_equal(flag[~near], (ref > det.threshold_)[~near])
    assert float(props["threshold"]) == det.threshold_

    # --float64
    res = runner.invoke(
        app,
        ["export", str(tmp_path / "m.anomalia"), "--float64", "--out", str(tmp_path / "m64.onnx")],
    )
    assert res.exit_code == 0, res.output
    score64, _ = run(onnx.load(str(tmp_path / "m64.onnx")), rows.to_numpy(), np.float64)
    assert relative_error(score64, ref) <= RTOL_FLOAT64


def test_cli_export_verifies_signatures(tmp_path):
    from anomalia.cli.app import app

    runner = CliRunner()
    (tmp_path / "key").write_bytes(b"k" * 32)
    (tmp_path / "other").write_bytes(b"o" * 32)
    X, y = load("breast-cancer")
    pd.DataFrame(X[y == 0][:100]).to_csv(tmp_path / "train.csv", index=False)
    res = runner.invoke(
        app,
        [
            "fit",
            str(tmp_path / "train.csv"),
            "-d",
            "gaussian",
            "--sign-key-file",
            str(tmp_path / "key"),
            "--out",
            str(tmp_path / "m.anomalia"),
        ],
    )
    assert res.exit_code == 0, res.output
    out = tmp_path / "m.onnx"
    args = ["export", str(tmp_path / "m.anomalia"), "--out", str(out), "--key-file"]
    res = runner.invoke(app, [*args, str(tmp_path / "other")])
    assert res.exit_code == 2 and "signature" in res.output and not out.exists()
    res = runner.invoke(app, [*args, str(tmp_path / "key")])
    assert res.exit_code == 0, res.output
    assert meta(onnx.load(str(out)))["detector"] == "gaussian"


def test_cli_export_errors(tmp_path):
    from anomalia.cli.app import app

    runner = CliRunner()
    X, y = load("breast-cancer")
    pd.DataFrame(X[y == 0][:100]).to_csv(tmp_path / "train.csv", index=False)
    res = runner.invoke(
        app,
        [
            "fit",
            str(tmp_path / "train.csv"),
            "-d",
            "vae",
            "-p",
            "score_method=mc",
            "-p",
            "epochs=1",
            "-p",
            "hidden=8,",
            "--out",
            str(tmp_path / "mc.anomalia"),
        ],
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app, ["export", str(tmp_path / "mc.anomalia"), "--out", str(tmp_path / "mc.onnx")]
    )
    assert res.exit_code == 2 and "draws random numbers" in res.output
    assert not (tmp_path / "mc.onnx").exists()
    res = runner.invoke(
        app, ["export", str(tmp_path / "mc.anomalia"), "--out", str(tmp_path / "mc.txt")]
    )
    assert res.exit_code == 2 and "must end in .onnx" in res.output
    res = runner.invoke(
        app, ["export", str(tmp_path / "missing.anomalia"), "--out", str(tmp_path / "m.onnx")]
    )
    assert res.exit_code == 2 and "missing.anomalia" in res.output


# -- scoring through onnxruntime: --engine onnx -------------------------------------------------
@pytest.mark.parametrize("name", ["default", "gaussian", "knn", "iforest"])
def test_onnx_scorer_gives_the_detectors_scores(cancer, name):
    from anomalia.export import OnnxScorer

    train, X = cancer
    det = make_detector(name, random_state=0).fit(train)
    scorer = OnnxScorer(det)
    rtol = RTOL if name == "iforest" else RTOL_FLOAT64  # trees split in float32
    got = scorer.anomaly_score(X)
    assert got.dtype == np.float64 and scorer.threshold_ == det.threshold_
    assert relative_error(got, det.anomaly_score(X)) <= rtol
    big = np.repeat(X, 5, axis=0)  # more rows than one onnxruntime call takes
    assert relative_error(scorer.anomaly_score(big), det.anomaly_score(big)) <= rtol
    with pytest.raises(anomalia.DataError, match="feature columns"):
        scorer.anomaly_score(X[:, :3])
    bad = X[:4].copy()
    bad[2, 1] = np.nan
    with pytest.raises(anomalia.DataError, match="row 2 holds NaN"):
        scorer.anomaly_score(bad)


def test_cli_score_engine_onnx_matches_the_python_engine(tmp_path):
    from anomalia.cli.app import app

    X, y = load("breast-cancer")
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])]).assign(Class=y)
    frame.to_csv(tmp_path / "data.csv", index=False)
    runner = CliRunner()
    for det in ("default", "ae"):
        model = tmp_path / f"{det}.anomalia"
        fit = ["fit", str(tmp_path / "data.csv"), "-d", det, "--label-column", "Class"]
        if det == "ae":
            fit += ["-p", "epochs=3", "-p", "random_state=0"]
        res = runner.invoke(app, [*fit, "--out", str(model)])
        assert res.exit_code == 0, res.output
        outs = {}
        for engine in ("stream", "onnx"):
            out = tmp_path / f"{det}-{engine}.csv"
            args = ["score", str(model), str(tmp_path / "data.csv"), "--out", str(out)]
            res = runner.invoke(app, [*args, "--engine", engine])
            assert res.exit_code == 0, res.output
            outs[engine] = pd.read_csv(out)
        ref, got = outs["stream"].anomaly_score, outs["onnx"].anomaly_score
        assert relative_error(got.to_numpy(), ref.to_numpy()) <= RTOL
    res = runner.invoke(
        app, ["score", str(model), str(tmp_path / "data.csv"), "--out", "x.csv", "--engine", "gpu"]
    )
    assert res.exit_code == 2 and "--engine must be stream, onnx, dask or spark" in res.output


def test_serve_engine_onnx(tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from anomalia.serve import ServedModel, create_app

    train, X = load("breast-cancer")[0][:200], load("breast-cancer")[0]
    det = make_detector("default").fit(pd.DataFrame(train, columns=[f"f{j}" for j in range(30)]))
    det.save(tmp_path / "m.anomalia")
    served = ServedModel.load(tmp_path / "m.anomalia", engine="onnx")
    client = TestClient(create_app([served]))
    assert client.get("/v1/models/m").json()["engine"] == "onnx"
    body = {"columns": [f"f{j}" for j in range(30)], "data": X[:50].tolist()}
    res = client.post("/v1/models/m/score", json=body)
    assert res.status_code == 200, res.text
    ref = det.anomaly_score(pd.DataFrame(X[:50], columns=body["columns"]))
    assert relative_error(np.array(res.json()["anomaly_score"]), ref) <= RTOL_FLOAT64
    with pytest.raises(AnomaliaError, match="--engine must be one of python, onnx"):
        ServedModel.load(tmp_path / "m.anomalia", engine="tvm")
