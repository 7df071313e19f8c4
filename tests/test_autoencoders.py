"""Auto-encoder detectors beyond the common contract: codes, reconstructions, explanations,
robust training, denoising, VQ codebook use, VAE sampling, images and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

import anomalia
from anomalia import DataError, make_detector

SMALL = {"hidden": (32,), "epochs": 40, "batch_size": 32, "random_state": 0}
#: The class defaults the registry's ``ae`` preset overrides (PyOD's training), for tests of
#: early stopping and of the tanh / robust-mode mechanics.
CLASS_AE = {"activation": "tanh", "dropout": 0.0, "batch_norm": False,
            "validation_fraction": 0.1, "patience": 10}  # fmt: skip


def _manifold(rng, n, d=8):
    """Rows on a curved 2-D manifold in d dimensions."""
    W = np.random.default_rng(123).normal(size=(2, d))
    return np.tanh(rng.normal(size=(n, 2)) @ W)


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    X = _manifold(rng, 600) + 0.02 * rng.normal(size=(600, 8))
    return {
        "ae": make_detector("ae", bottleneck=2, **SMALL).fit(X),
        "vae": make_detector("vae", bottleneck=2, **SMALL).fit(X),
        "vqvae": make_detector("vqvae", n_codes=16, code_dim=2, n_latents=2, **SMALL).fit(X),
    }


@pytest.mark.parametrize("name", ["ae", "vae", "vqvae"])
def test_output_shapes(fitted, name):
    det = fitted[name]
    X = np.random.default_rng(1).normal(size=(7, 8))
    assert det.reconstruct(X).shape == (7, 8)
    assert det.feature_errors(X).shape == (7, 8)
    assert det.transform(X).shape[0] == 7
    assert det.history_["train_loss"]
    err = det.feature_errors(X)
    assert (err >= 0).all()


def test_ae_codes_and_reconstruction_units(fitted):
    det = fitted["ae"]
    X = _manifold(np.random.default_rng(2), 50)
    assert det.transform(X).shape == (50, 2)
    # reconstructions are in the original units: close to on-manifold inputs
    assert np.abs(det.reconstruct(X) - X).mean() < 0.2 * np.abs(X).mean()


def test_vae_sample_and_repeatable_monte_carlo_scores(fitted):
    det = fitted["vae"]
    assert det.sample(5, random_state=0).shape == (5, 8)
    np.testing.assert_array_equal(det.sample(3, random_state=1), det.sample(3, random_state=1))
    X = np.random.default_rng(3).normal(size=(20, 8))
    det_mc = make_detector("vae", score_method="mc", n_mc_samples=4, bottleneck=2, **SMALL)
    det_mc.fit(_manifold(np.random.default_rng(0), 300))
    np.testing.assert_array_equal(det_mc.anomaly_score(X), det_mc.anomaly_score(X))
    assert det.transform(X).shape == (20, 2)


def test_vqvae_codes_and_codebook_use(fitted):
    det = fitted["vqvae"]
    codes = det.codes(_manifold(np.random.default_rng(4), 100))
    assert codes.shape == (100, 2)
    assert codes.dtype == np.int64
    assert codes.min() >= 0 and codes.max() < 16
    assert det.perplexity_ > 4.0  # dead-code restarts keep the codebook in use
    assert det.transform(np.zeros((3, 8))).shape == (3, 4)  # 2 latents x 2 dims


def test_vqvae_rarity_score_adds_to_reconstruction():
    X = _manifold(np.random.default_rng(0), 300)
    kw = {"n_codes": 8, "code_dim": 2, "n_latents": 2, **SMALL}
    plain = make_detector("vqvae", **kw).fit(X)
    rare = make_detector("vqvae", score_method="recon+rarity", rarity_weight=1.0, **kw).fit(X)
    assert (rare.anomaly_score(X) > plain.anomaly_score(X)).all()


def test_feature_errors_point_at_the_corrupted_feature(fitted):
    X = _manifold(np.random.default_rng(5), 20)
    X[:, 3] += 3.0
    assert (fitted["ae"].feature_errors(X).argmax(axis=1) == 3).all()


def test_robust_mode_ignores_anomalies_in_training_data():
    rng = np.random.default_rng(0)
    normals = _manifold(rng, 600) + 0.02 * rng.normal(size=(600, 8))
    planted = rng.normal(0, 3, size=(1, 8)) + 0.01 * rng.normal(size=(32, 8))
    X = np.vstack([normals, planted])
    y = np.r_[np.zeros(600), np.ones(32)]
    kw = {**SMALL, **CLASS_AE, "bottleneck": 4, "epochs": 60}
    plain = make_detector("ae", **kw).fit(X)
    robust = make_detector("ae", robust=True, robust_fraction=0.08, **kw).fit(X)
    assert roc_auc_score(y, plain.anomaly_score(X)) < 0.5  # the tight cluster was learned
    assert roc_auc_score(y, robust.anomaly_score(X)) > 0.95
    assert max(robust.history_["n_dropped"]) > 0


def test_denoising_beats_plain_ae_on_noisy_inputs():
    rng = np.random.default_rng(0)
    X = _manifold(rng, 1000)
    clean = _manifold(rng, 300)
    noisy = clean + rng.normal(0, 0.3, size=clean.shape)
    kw = {**SMALL, "bottleneck": 2, "patience": None}
    plain = make_detector("ae", **kw).fit(X)
    dae = make_detector("dae", **{**kw, "noise": 0.5}).fit(X)
    err_plain = ((plain.reconstruct(noisy) - clean) ** 2).mean()
    err_dae = ((dae.reconstruct(noisy) - clean) ** 2).mean()
    assert err_dae < 0.85 * err_plain


def test_dae_preset_and_noise_kinds():
    assert make_detector("dae").noise == 0.2
    X = _manifold(np.random.default_rng(0), 200)
    for kind in ("mask", "swap"):
        det = make_detector("dae", noise=0.1, noise_kind=kind, **{**SMALL, "epochs": 3})
        assert det.fit(X).anomaly_score(X).shape == (200,)


def test_global_rng_untouched_and_seed_repeatable():
    X = _manifold(np.random.default_rng(0), 200)
    torch_state = torch.get_rng_state()
    a = make_detector("vae", **{**SMALL, "epochs": 5}).fit(X).anomaly_score(X)
    b = make_detector("vae", **{**SMALL, "epochs": 5}).fit(X).anomaly_score(X)
    c = make_detector("vae", **{**SMALL, "epochs": 5, "random_state": 1}).fit(X)
    assert torch.equal(torch_state, torch.get_rng_state())
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c.anomaly_score(X))


# -- images ---------------------------------------------------------------------------------


def test_early_stopping_is_told_and_kept_in_stopped_epoch(tmp_path, caplog):
    X = np.random.default_rng(0).normal(size=(200, 6))  # noise: the validation loss plateaus
    det = make_detector("ae", **{**CLASS_AE, "patience": 2}, hidden=(8,), epochs=200, lr=0.03,
                        batch_size=32, random_state=0)  # fmt: skip
    with caplog.at_level("INFO", logger="anomalia.training"):
        det.fit(X)
    assert det.stopped_epoch_ == det.n_epochs_ < 200
    assert caplog.messages == [
        f"stopped at epoch {det.n_epochs_}: no improvement for 2 epochs; "
        f"weights of epoch {det.n_epochs_ - 2} kept"
    ]
    det.save(tmp_path / "m.anomalia")
    assert anomalia.load(tmp_path / "m.anomalia").stopped_epoch_ == det.stopped_epoch_
    assert det.partial_fit(X[:50]).stopped_epoch_ is None  # updates never stop early
    assert make_detector("ae", hidden=(8,), epochs=2).fit(X).stopped_epoch_ is None


@pytest.fixture(scope="module")
def digits_images():
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images, d.target


@pytest.mark.parametrize("name", ["conv-ae", "vae", "vqvae"])
def test_image_detectors_on_digits(digits_images, name, tmp_path):
    images, target = digits_images
    train = images[target == 0][:120]
    test = np.concatenate([images[target == 0][120:], images[target == 1][:40]])
    y = np.r_[np.zeros(len(test) - 40), np.ones(40)]
    det = make_detector(name, channels=(8, 16), epochs=15, batch_size=32, random_state=0)
    det.fit(train)
    assert det.image_shape_ == (1, 8, 8)
    scores = det.anomaly_score(test)
    assert roc_auc_score(y, scores) > 0.9
    assert det.reconstruct(test[:3]).shape == (3, 8, 8)
    assert det.feature_errors(test[:3]).shape == (3, 8, 8)
    det.save(tmp_path / "m.anomalia")
    np.testing.assert_array_equal(
        anomalia.load(tmp_path / "m.anomalia").anomaly_score(test), scores
    )


def test_flat_rows_with_image_shape(digits_images):
    images, target = digits_images
    flat = images[target == 0][:100].reshape(100, 64)
    det = make_detector(
        "conv-ae", image_shape=(8, 8), channels=(4, 8), epochs=2, random_state=0
    ).fit(flat)
    assert det.image_shape_ == (1, 8, 8)
    assert det.reconstruct(flat[:2]).shape == (2, 64)
    with pytest.raises(DataError, match="image_shape"):
        make_detector("conv-ae", image_shape=(7, 7), epochs=1).fit(flat)


def test_wrong_image_size_and_nan_are_clear_errors(digits_images):
    images, _ = digits_images
    det = make_detector("conv-ae", channels=(4, 8), epochs=2, random_state=0).fit(images[:50])
    with pytest.raises(DataError, match=r"images have shape \(1, 9, 9\)"):
        det.anomaly_score(np.zeros((3, 9, 9)))
    bad = images[:3].copy()
    bad[0, 2, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        det.anomaly_score(bad)
    with pytest.raises(DataError, match="trained on tables"):
        make_detector("ae", epochs=1).fit(images[:20].reshape(20, 64)).anomaly_score(images[:2])


def test_batch_norm_sits_before_each_hidden_activation_and_scores_rows_alone():
    from anomalia.models import mlp

    net = mlp([5, 8, 3], "relu", 0.2, batch_norm=True)
    assert [type(m).__name__ for m in net] == ["Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear"]
    X = np.random.default_rng(0).normal(size=(120, 5))
    det = make_detector("ae", random_state=0).fit(X)  # the preset: PyOD's training
    assert det.batch_norm and det.get_params()["hidden"] == (64,)
    assert sum(type(m).__name__ == "BatchNorm1d" for m in det.module_.modules()) == 2
    alone = np.array([det.anomaly_score(X[i : i + 1])[0] for i in range(5)])
    np.testing.assert_allclose(alone, det.anomaly_score(X)[:5], rtol=1e-5)  # running stats


def test_a_negative_batch_norm_variance_in_a_file_is_refused(tmp_path):
    from anomalia.errors import ModelFileError

    from .test_hostile_models import _tampered

    X = np.random.default_rng(0).normal(size=(100, 4))
    path = tmp_path / "m.anomalia"
    make_detector("ae", epochs=2, random_state=0).fit(X).save(path)
    bad = _tampered(path, tmp_path / "bad.anomalia", "module_/encoder.1.running_var", np.negative)
    with pytest.raises(ModelFileError, match="batch-norm variance"):
        anomalia.load(bad)
    with pytest.raises(ValueError, match="batch_norm must be True or False"):
        make_detector("ae", batch_norm="yes").fit(X)
