"""Generated outliers for ``confidence`` (``outliers="generate"``): the boundary GAN of Lee et
al. 2018, its joint training, the detector option, persistence and the CLI, on tiny data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

import anomalia  # noqa: E402
from anomalia import make_detector  # noqa: E402
from anomalia.cli.app import app  # noqa: E402
from anomalia.models.classifier import MLPClassifierNet  # noqa: E402
from anomalia.models.outlier_gan import (  # noqa: E402
    BoundaryGAN,
    ConvGenerator,
    MLPGenerator,
    conv_discriminator,
    mlp_discriminator,
)
from anomalia.outlier_training import train_boundary_gan  # noqa: E402
from anomalia.training import TrainConfig  # noqa: E402

FAST = {
    "hidden": (16,),
    "epochs": 15,
    "gan_epochs": 8,
    "batch_size": 32,
    "lr": 1e-2,
    "random_state": 0,
}


def _make(**params):
    return make_detector("confidence", **{**FAST, **params})


@pytest.fixture
def blobs():
    """Three well-separated 2-D blobs of 60 rows (the known classes)."""
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 4.0], [-3.5, -2.0], [3.5, -2.0]])
    X = np.concatenate([c + 0.5 * rng.normal(size=(60, 2)) for c in centres])
    return X, np.repeat(np.arange(3), 60)


# -- the networks and the joint loop -----------------------------------------------------------
def test_generators_and_discriminators_shapes():
    z = torch.zeros(3, 5)
    assert MLPGenerator(5, 4, hidden=(8,))(z).shape == (3, 4)
    assert ConvGenerator(5, 1, 7, 9, channels=(4, 8))(z).shape == (3, 1, 7, 9)
    assert mlp_discriminator(4, hidden=(8,))(torch.zeros(3, 4)).shape == (3, 1)
    assert conv_discriminator(1, 7, 9, channels=(4, 8))(torch.zeros(3, 1, 7, 9)).shape == (3, 1)


def test_joint_training_makes_the_classifier_unsure_on_generated_inputs(blobs):
    X, y = blobs
    x, labels = torch.tensor(X, dtype=torch.float32), torch.from_numpy(y)
    torch.manual_seed(0)
    net = MLPClassifierNet(2, 3, hidden=(16,), oe_weight=1.0)
    gan = BoundaryGAN(MLPGenerator(4, 2, hidden=(16,)), mlp_discriminator(2, hidden=(16,)))
    before = torch.get_rng_state()
    history = train_boundary_gan(
        net, gan, x, labels, TrainConfig(epochs=10, batch_size=32, lr=1e-2, seed=0)
    )
    assert torch.equal(torch.get_rng_state(), before)  # the caller's RNG is left alone
    assert set(history) == {"d_loss", "g_loss", "c_loss", "fake_msp", "epoch_seconds"}
    assert len(history["d_loss"]) == 10
    with torch.no_grad():
        msp_real = torch.softmax(net(x), 1).amax(1).mean()
        msp_fake = torch.softmax(net(gan.sample(200, torch.Generator().manual_seed(1))), 1)
    assert msp_fake.amax(1).mean() < msp_real - 0.2  # 1/3 is as unsure as it gets


# -- the detector ------------------------------------------------------------------------------
def test_generate_fits_scores_and_repeats(blobs):
    X, y = blobs
    a = _make(outliers="generate").fit(X, y)
    b = _make(outliers="generate").fit(X, y)
    scores = a.anomaly_score(X)
    assert scores.shape == (len(X),)
    assert scores.dtype == np.float64
    np.testing.assert_array_equal(scores, b.anomaly_score(X))
    np.testing.assert_array_equal(a.sample_outliers(5, random_state=3), b.sample_outliers(5, 3))
    assert a.sample_outliers(7).shape == (7, 2)
    assert len(a.gan_history_["d_loss"]) == FAST["gan_epochs"]


def test_generated_exposure_lowers_confidence_on_generated_samples(blobs):
    """The classifier trained with generated outliers is unsure on them, unlike on its
    training rows and unlike the same classifier trained without them."""
    X, y = blobs
    gen = _make(outliers="generate").fit(X, y)
    plain = _make().fit(X, y)
    fake = gen.sample_outliers(300, random_state=1)
    msp_fake = gen.predict_proba(fake).max(1).mean()
    assert msp_fake < gen.predict_proba(X).max(1).mean() - 0.2
    assert msp_fake < plain.predict_proba(fake).max(1).mean() - 0.1


def test_generated_outliers_on_images():
    rng = np.random.default_rng(0)
    X = rng.random((40, 1, 8, 8))
    X[:20, :, :4] += 2.0  # class 0: bright top half; class 1: bright bottom half
    X[20:, :, 4:] += 2.0
    y = np.repeat([0, 1], 20)
    det = _make(outliers="generate", channels=(4, 8), epochs=3, gan_epochs=2).fit(X, y)
    assert det.sample_outliers(6).shape == (6, 1, 8, 8)
    assert det.anomaly_score(X).shape == (40,)


@pytest.mark.parametrize(
    ("params", "fit_kw", "match"),
    [
        ({"outliers": "gan"}, {}, r"outliers must be one of None, 'generate'; got 'gan'"),
        ({"outliers": "generate", "gan_epochs": 0}, {}, "gan_epochs must be an integer >= 1"),
        ({"outliers": "generate"}, {"X_outliers": np.zeros((3, 2))}, "pass no X_outliers"),
    ],
)
def test_bad_options_are_one_line_errors(blobs, params, fit_kw, match):
    X, y = blobs
    with pytest.raises(ValueError, match=match) as info:
        _make(**params).fit(X, y, **fit_kw)
    assert "\n" not in str(info.value)


def test_generate_needs_the_built_in_network(blobs):
    from sklearn.linear_model import LogisticRegression

    X, y = blobs
    with pytest.raises(ValueError, match="needs the built-in network"):
        make_detector("confidence", classifier=LogisticRegression(), outliers="generate").fit(X, y)


def test_without_generate_there_is_no_generator(blobs):
    X, y = blobs
    det = _make(outliers="generate").fit(X, y)
    det.set_params(outliers=None).fit(X, y)  # a refit drops the old generator
    assert not hasattr(det, "generator_")
    with pytest.raises(ValueError, match="outliers='generate'"):
        det.sample_outliers(3)


def test_save_load_round_trip(blobs, tmp_path):
    X, y = blobs
    det = _make(outliers="generate").fit(X, y)
    path = tmp_path / "gen.anomalia"
    det.save(path)
    back = anomalia.load(path)
    assert back.get_params()["outliers"] == "generate"
    np.testing.assert_array_equal(back.anomaly_score(X), det.anomaly_score(X))
    np.testing.assert_array_equal(
        back.sample_outliers(4, random_state=2), det.sample_outliers(4, random_state=2)
    )


# -- the command line --------------------------------------------------------------------------
runner = CliRunner()


def test_cli_fit_generate_score_and_draw(blobs, tmp_path):
    X, y = blobs
    frame = pd.DataFrame(X, columns=["a", "b"])
    frame["digit"] = y
    data = tmp_path / "known.csv"
    frame.to_csv(data, index=False)
    model, scores, drawn = tmp_path / "gen.anomalia", tmp_path / "s.csv", tmp_path / "o.csv"
    opts = [f"{k}={v}" for k, v in FAST.items() if k != "random_state"]
    opts = [p for kv in opts for p in ("-p", kv.replace("(16,)", "16,"))]
    fit = ["fit", str(data), "-d", "confidence", "--class-column", "digit"]
    res = runner.invoke(app, [*fit, "-p", "outliers=generate", *opts, "--out", str(model)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["score", str(model), str(data), "--out", str(scores)])
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(scores)) == len(X)
    res = runner.invoke(app, ["outliers", str(model), "-n", "10", "--out", str(drawn)])
    assert res.exit_code == 0, res.output
    assert pd.read_csv(drawn).shape == (10, 2)
    png = tmp_path / "o.png"  # a table model: no image grid, and nothing written
    res = runner.invoke(app, ["outliers", str(model), "--out", str(png)])
    assert res.exit_code == 2
    assert not png.exists()


def test_cli_outliers_refuses_a_model_without_generator(blobs, tmp_path):
    X, y = blobs
    model = tmp_path / "plain.anomalia"
    _make().fit(X, y).save(model)
    res = runner.invoke(app, ["outliers", str(model), "--out", str(tmp_path / "o.csv")])
    assert res.exit_code == 2
    assert "no generator of outliers" in res.output
