"""Lossy compression with the auto-encoders: 8-bit codes in a versioned container."""

from __future__ import annotations

import struct

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import anomalia  # noqa: E402
from anomalia import AnomaliaError, make_detector  # noqa: E402
from anomalia.compression import (  # noqa: E402
    MAGIC,
    compress,
    decompress,
    dequantize,
    fingerprint,
    mse_psnr,
    quantize,
    read_header,
)

from .conftest import FAST_PARAMS  # noqa: E402

TINY = {**FAST_PARAMS["ae"], "hidden": (16,), "epochs": 10}


def _manifold(n, seed=0):
    """Rows near a curved 2-D manifold in 6 dimensions."""
    rng = np.random.default_rng(seed)
    W = np.random.default_rng(123).normal(size=(2, 6))
    return 3 * np.tanh(rng.normal(size=(n, 2)) @ W) + 0.05 * rng.normal(size=(n, 6))


@pytest.fixture(scope="module")
def X():
    return _manifold(300)


@pytest.fixture(scope="module")
def models(X):
    images = np.random.default_rng(0).random((64, 8, 8))
    return {
        # tanh and no batch norm or dropout (the class's defaults): the Lipschitz bound below
        "ae": make_detector(
            "ae", bottleneck=3, activation="tanh", dropout=0.0, batch_norm=False, **TINY
        ).fit(X),
        "vae": make_detector("vae", bottleneck=3, **TINY).fit(X),
        "vqvae": make_detector("vqvae", **FAST_PARAMS["vqvae"]).fit(X),
        "conv-ae": make_detector("conv-ae", bottleneck=4, **FAST_PARAMS["conv-ae"]).fit(images),
        "images": images,
    }


def _header_size(blob):
    return struct.unpack_from("<I", blob, len(MAGIC) + 2)[0]


def test_quantize_is_within_half_a_step():
    z = np.random.default_rng(0).normal(size=(500, 5)) * [1, 10, 0.01, 100, 0]
    q, low, step = quantize(z)
    assert q.dtype == np.uint8 and low.dtype == step.dtype == np.float32
    assert q.min() == 0 and q.max(axis=0)[:4].tolist() == [255] * 4
    err = np.abs(dequantize(q, low, step) - z)
    assert (err <= step / 2 * (1 + 1e-6) + 1e-12).all()
    assert (err[:, 4] == 0).all()  # a constant dimension is stored exactly


def _decoder_lipschitz(module):
    """Upper bound of the decoder's Lipschitz constant: product of the layers' spectral norms
    (the activations of these tiny models, tanh, are 1-Lipschitz)."""
    bound = 1.0
    for layer in module.decoder.modules():
        if isinstance(layer, torch.nn.Linear):
            bound *= float(torch.linalg.matrix_norm(layer.weight.detach(), ord=2))
        elif not isinstance(layer, torch.nn.Tanh | torch.nn.Sequential):
            pytest.fail(f"no Lipschitz bound for {layer}")
    return bound


@pytest.mark.parametrize("name", ["ae", "vae"])
def test_round_trip_shape_size_and_distortion_bound(models, X, name):
    det = models[name]
    blob = compress(det, X, codec="none")
    X_hat = decompress(det, blob)
    assert X_hat.shape == X.shape and X_hat.dtype == np.float64
    width = det.transform(X[:1]).shape[1]
    # container = magic, version, header size, JSON header, then offsets, steps and codes
    assert len(blob) == len(MAGIC) + 6 + _header_size(blob) + 8 * width + len(X) * width
    assert read_header(blob)["code_width"] == width == 3

    # Bound derived from the model: per row, ||x - x_q|| <= ||x - x_rec|| + B, where the
    # quantisation moves each code by at most step/2, the decoder by at most L times that
    # (scaled units), and undoing the scaling by at most max(input_scale_) times again.
    _, _, step = quantize(det.transform(X))
    B = det.input_scale_.max() * _decoder_lipschitz(det.module_) * np.linalg.norm(step / 2)
    rec_err = np.linalg.norm(X - det.reconstruct(X), axis=1)
    bound = np.mean((rec_err + B) ** 2) / X.shape[1]
    mse, _ = mse_psnr(X, X_hat)
    mse_rec, _ = mse_psnr(X, det.reconstruct(X))
    assert mse <= bound
    assert mse < 1.1 * mse_rec  # 8 bits cost little on top of the model's own error


def test_vqvae_stores_indices_and_loses_nothing_more(models, X):
    det = models["vqvae"]
    blob = compress(det, X, codec="none")
    header = read_header(blob)
    width = det.codes(X[:1]).shape[1]
    assert header["quantization"] == {"kind": "index", "dtype": "uint8", "n_codes": 8}
    assert len(blob) == len(MAGIC) + 6 + _header_size(blob) + len(X) * width
    np.testing.assert_allclose(decompress(det, blob), det.reconstruct(X), rtol=1e-6, atol=1e-6)


def test_decode_codes_and_inverse_transform_match_reconstruct(models, X):
    vq, ae = models["vqvae"], models["ae"]
    np.testing.assert_allclose(vq.decode_codes(vq.codes(X)), vq.reconstruct(X), atol=1e-6)
    np.testing.assert_allclose(vq.inverse_transform(vq.transform(X)), vq.reconstruct(X), atol=1e-6)
    np.testing.assert_allclose(ae.inverse_transform(ae.transform(X)), ae.reconstruct(X), atol=1e-6)
    with pytest.raises(AnomaliaError, match=r"\[0, 8\)"):
        vq.decode_codes([[0, 8]])
    with pytest.raises(AnomaliaError, match="integers"):
        vq.decode_codes([[0.0, 1.0]])
    with pytest.raises(AnomaliaError, match="3 values per row"):
        ae.inverse_transform(np.zeros((2, 4)))


@pytest.mark.parametrize("codec", ["none", "zlib", "lzma"])
def test_images_keep_their_shape_with_every_codec(models, codec):
    det, images = models["conv-ae"], models["images"]
    assert det.inverse_transform(det.transform(images[:2])).shape == (2, 1, 8, 8)
    expected = decompress(det, compress(det, images))
    assert expected.shape == (64, 8, 8)
    stack = images[:, None]  # (n, C, H, W) in, (n, C, H, W) out
    out = decompress(det, compress(det, stack, codec=codec))
    assert out.shape == (64, 1, 8, 8)
    np.testing.assert_array_equal(out[:, 0], expected)


def test_ids_and_saved_model(models, X, tmp_path):
    det = models["ae"]
    blob = compress(det, X[:4], ids=["a", "b", "c", "d"], id_name="txn")
    assert read_header(blob)["ids"] == ["a", "b", "c", "d"]
    det.save(tmp_path / "m.anomalia")
    again = anomalia.load(tmp_path / "m.anomalia")
    assert fingerprint(again) == fingerprint(det)
    np.testing.assert_array_equal(decompress(again, blob), decompress(det, blob))
    with pytest.raises(AnomaliaError, match="3 ids for 4 rows"):
        compress(det, X[:4], ids=[1, 2, 3])


def _with_version(blob, version):
    return blob[: len(MAGIC)] + struct.pack("<H", version) + blob[len(MAGIC) + 2 :]


@pytest.mark.parametrize(
    ("corrupt", "match"),
    [
        (lambda b: b"PK\x03\x04" + b[4:], "wrong magic"),
        (lambda b: b[:5], "wrong magic"),
        (lambda b: _with_version(b, 2), "version 2 is unknown"),
        (lambda b: b[:-1], "truncated"),
        (lambda b: b[:20], "truncated"),
        (lambda b: b + b"\0", "trailing bytes"),
    ],
)
def test_bad_containers_give_clear_errors(models, X, corrupt, match):
    blob = compress(models["ae"], X[:10])
    with pytest.raises(AnomaliaError, match=match):
        decompress(models["ae"], corrupt(blob))


def test_corrupted_zlib_payload(models, X):
    blob = compress(models["ae"], X[:50], codec="zlib")
    bad = blob[:-8] + bytes(8)
    with pytest.raises(AnomaliaError, match="corrupted"):
        decompress(models["ae"], bad)


def test_other_model_is_refused(models, X):
    blob = compress(models["ae"], X[:10])
    other = make_detector("ae", bottleneck=3, **{**TINY, "random_state": 1}).fit(X)
    with pytest.raises(AnomaliaError, match="another model"):
        decompress(other, blob)
    with pytest.raises(AnomaliaError, match="class AEDetector, not VAEDetector"):
        decompress(models["vae"], blob)
    gaussian = make_detector("gaussian").fit(X)
    with pytest.raises(AnomaliaError, match="needs a model with a decoder"):
        compress(gaussian, X)
    with pytest.raises(ValueError, match="4 features"):  # the detector's own check
        compress(models["ae"], X[:, :4])


def test_mse_psnr():
    mse, psnr = mse_psnr(np.zeros(4), np.full(4, 0.1), peak=1.0)
    assert mse == pytest.approx(0.01) and psnr == pytest.approx(20.0)
    assert mse_psnr([0, 255], [0, 255])[1] == np.inf
