"""Tests of the pure torch models: shapes, contracts and invariants."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from anomalia.models import (  # noqa: E402
    ACTIVATIONS,
    ConvAE,
    ConvVAE,
    ConvVQVAE,
    DenseAE,
    DenseVAE,
    DenseVQVAE,
    VectorQuantizer,
    mlp,
)

N_FEATURES = 6

DENSE = {
    "ae": lambda: DenseAE(N_FEATURES, hidden=(16, 8), bottleneck=3),
    "ae-dropout": lambda: DenseAE(N_FEATURES, hidden=(16,), bottleneck=3, dropout=0.2),
    "vae": lambda: DenseVAE(N_FEATURES, hidden=(16,), bottleneck=3),
    "vqvae": lambda: DenseVQVAE(N_FEATURES, hidden=(16,), n_latents=2, n_codes=8, code_dim=3),
}
CONV = {
    "ae": lambda c, h, w: ConvAE(c, h, w, channels=(4, 8), bottleneck=3),
    "vae": lambda c, h, w: ConvVAE(c, h, w, channels=(4, 8), bottleneck=3),
    "vqvae": lambda c, h, w: ConvVQVAE(c, h, w, channels=(4, 8), n_codes=8, code_dim=3),
}
IMAGE_SHAPES = [(1, 8, 8), (1, 28, 28), (3, 8, 8), (2, 9, 11)]


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def _rand(gen, *shape):
    return torch.randn(*shape, generator=gen)


def _check_contract(model, x, gen):
    """Shapes and types of every method, identical in train and eval mode."""
    n = x.shape[0]
    types = {}
    for mode in (True, False):
        model.train(mode)
        out = {
            "forward": model(x),
            "loss": model.loss(x, generator=gen),
            "weighted": model.loss(x, target=x, weight=torch.ones(n), generator=gen),
            "per_sample_loss": model.per_sample_loss(x),
            "score": model.score(x),
            "feature_errors": model.feature_errors(x),
        }
        assert out["forward"].shape == x.shape
        assert out["loss"].shape == ()
        assert out["weighted"].shape == ()
        assert out["per_sample_loss"].shape == (n,)
        assert out["score"].shape == (n,)
        assert out["feature_errors"].shape == x.shape
        assert all(v.dtype == x.dtype for v in out.values())
        types[mode] = {k: (type(v), v.dtype, v.shape) for k, v in out.items()}
    assert types[True] == types[False]


# --- mlp ------------------------------------------------------------------------------------


def test_mlp_layers():
    net = mlp([4, 8, 2], activation="tanh", dropout=0.5)
    assert [type(m) for m in net] == [nn.Linear, nn.Tanh, nn.Dropout, nn.Linear]
    net = mlp([4, 2], activation="gelu", final_activation=True)
    assert [type(m) for m in net] == [nn.Linear, nn.GELU]


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_mlp_every_activation(name, gen):
    assert mlp([3, 5, 2], activation=name)(_rand(gen, 4, 3)).shape == (4, 2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sizes": [3, 2], "activation": "swish"}, "relu"),
        ({"sizes": [3]}, "sizes"),
        ({"sizes": [3, 0]}, "sizes"),
        ({"sizes": [3, 2], "dropout": 1.0}, "dropout"),
    ],
)
def test_mlp_invalid(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mlp(**kwargs)


# --- shapes and contract ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DENSE))
def test_dense_contract(name, gen):
    _check_contract(DENSE[name](), _rand(gen, 10, N_FEATURES), gen)


@pytest.mark.parametrize("shape", IMAGE_SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(CONV))
def test_conv_contract(name, shape, gen):
    _check_contract(CONV[name](*shape), _rand(gen, 3, *shape), gen)


def test_conv_vq_code_grid(gen):
    model = ConvVQVAE(1, 28, 28, channels=(4, 8), n_codes=8, code_dim=3, n_latents=None).eval()
    assert model.codes(_rand(gen, 2, 1, 28, 28)).shape == (2, 7, 7)
    x = _rand(gen, 2, 1, 28, 28)
    assert model.decode_codes(model.codes(x)).shape == (2, 1, 28, 28)


def test_conv_vq_global_codes(gen):
    model = ConvVQVAE(1, 28, 28, channels=(4, 8), n_codes=8, code_dim=3, n_latents=5).eval()
    x = _rand(gen, 2, 1, 28, 28)
    assert model.codes(x).shape == (2, 5)
    torch.testing.assert_close(model.decode_codes(model.codes(x)), model(x))


@pytest.mark.parametrize("name", sorted(DENSE))
def test_float64(name, gen):
    model = DENSE[name]().double().eval()
    assert model.score(_rand(gen, 5, N_FEATURES).double()).dtype == torch.float64


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: DenseAE(0), "n_features"),
        (lambda: DenseAE(3, hidden=(4, -1)), "hidden"),
        (lambda: DenseAE(3, activation="nope"), "activation"),
        (lambda: DenseVAE(3, beta=-1.0), "beta"),
        (lambda: DenseVQVAE(3, n_latents=0), "n_latents"),
        (lambda: DenseVQVAE(3, decay=2.0), "decay"),
        (lambda: ConvAE(1, 8, 8, channels=()), "channels"),
        (lambda: ConvVAE(1, 0, 8), "height"),
    ],
)
def test_invalid_model_options(build, match):
    with pytest.raises(ValueError, match=match):
        build()


# --- losses -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ae", "vae", "vqvae"])
def test_zero_weight_rows_do_not_count(name, gen):
    model = DENSE[name]().eval()
    x = _rand(gen, 8, N_FEATURES)
    weight = torch.tensor([1.0, 0, 1, 1, 0, 1, 1, 1])
    keep = weight > 0
    got = model.loss(x, weight=weight, generator=torch.Generator().manual_seed(1))
    if name == "vae":  # the noise draw depends on the number of rows: compare at z = mu
        got = model.loss_parts(x, weight=weight)["kl"]
        want = model.loss_parts(x[keep])["kl"]
    else:
        want = model.loss(x[keep], generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(got, want)


def test_weight_shape_checked(gen):
    with pytest.raises(ValueError, match="weight"):
        DENSE["ae"]().loss(_rand(gen, 4, N_FEATURES), weight=torch.ones(3))


def test_ae_denoising_target(gen):
    model = DENSE["ae"]().eval()
    x, target = _rand(gen, 5, N_FEATURES), _rand(gen, 5, N_FEATURES)
    want = (model(x) - target).square().mean()
    torch.testing.assert_close(model.loss(x, target=target), want)


def test_ae_score_is_mean_feature_error(gen):
    model = DENSE["ae"]().eval()
    x = _rand(gen, 5, N_FEATURES)
    torch.testing.assert_close(model.score(x), model.feature_errors(x).mean(1))


# --- VAE --------------------------------------------------------------------------------------


def test_vae_kl_positive_and_scaled_by_beta(gen):
    x = _rand(gen, 16, N_FEATURES)
    model = DenseVAE(N_FEATURES, hidden=(16,), bottleneck=3, beta=1.0)
    parts = model.loss_parts(x, generator=torch.Generator().manual_seed(3))
    assert parts["kl"] > 0
    losses = {}
    for beta in (0.0, 1.0, 4.0):
        model.beta = beta
        losses[beta] = model.loss(x, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(losses[0.0], parts["recon"])
    torch.testing.assert_close(losses[4.0] - losses[1.0], 3 * parts["kl"])


def test_vae_beta_shrinks_kl_in_training(gen):
    from anomalia.training import TrainConfig, train

    x = _rand(gen, 128, N_FEATURES) @ _rand(gen, N_FEATURES, N_FEATURES)
    config = TrainConfig(epochs=15, batch_size=32, lr=1e-2, validation_fraction=0.0)
    kl = {}
    for beta in (0.1, 10.0):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = DenseVAE(N_FEATURES, hidden=(16,), bottleneck=3, beta=beta)
        train(model, x, config)
        kl[beta] = model.loss_parts(x, generator=torch.Generator().manual_seed(0))["kl"]
    assert kl[10.0] < 0.5 * kl[0.1]


def test_vae_elbo_score_is_deterministic(gen):
    model = DenseVAE(N_FEATURES, hidden=(16,), bottleneck=3, beta=2.0).eval()
    x = _rand(gen, 10, N_FEATURES)
    s1, s2 = model.score(x), model.score(x, method="elbo")
    assert torch.equal(s1, s2)
    torch.testing.assert_close(s1, model.per_sample_loss(x))
    mu, logvar = model.encode(x)
    kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(1)
    torch.testing.assert_close(s1, 0.5 * model.feature_errors(x).sum(1) + 2.0 * kl)


def test_vae_mc_score_repeatable(gen):
    model = DenseVAE(N_FEATURES, hidden=(16,), bottleneck=3).eval()
    x = _rand(gen, 10, N_FEATURES)
    state = torch.get_rng_state()

    def mc(seed):
        return model.score(x, "mc", n_samples=4, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(mc(7), mc(7))
    assert not torch.equal(mc(7), mc(8))
    assert torch.equal(model.score(x, "mc", n_samples=3), model.score(x, "mc", n_samples=3))
    assert torch.equal(torch.get_rng_state(), state)
    assert (mc(7) > model.score(x, "elbo") - 1e3).all()


def test_vae_invalid_score_method(gen):
    model = DenseVAE(N_FEATURES, hidden=(16,), bottleneck=3)
    with pytest.raises(ValueError, match="method"):
        model.score(_rand(gen, 3, N_FEATURES), method="bogus")
    with pytest.raises(ValueError, match="n_samples"):
        model.score(_rand(gen, 3, N_FEATURES), method="mc", n_samples=0)


def test_vae_logvar_clamped(gen):
    model = DenseVAE(N_FEATURES, hidden=(16,), bottleneck=3)
    _, logvar = model.encode(1e6 * _rand(gen, 10, N_FEATURES))
    assert logvar.abs().max() <= 10.0


def test_vae_sample(gen):
    model = DenseVAE(N_FEATURES, hidden=(16,), bottleneck=3).eval()
    a = model.sample(5, torch.Generator().manual_seed(0))
    b = model.sample(5, torch.Generator().manual_seed(0))
    assert a.shape == (5, N_FEATURES)
    assert torch.equal(a, b)


# --- VQ ---------------------------------------------------------------------------------------


def test_vq_straight_through_gradient_reaches_encoder(gen):
    model = DenseVQVAE(N_FEATURES, hidden=(16,), n_latents=2, n_codes=8, code_dim=3, commitment=0)
    x = _rand(gen, 32, N_FEATURES)
    z = model.encode(x)
    zq, _, commit = model.quantizer(z, generator=gen)
    assert commit == 0
    model.decode(zq).square().sum().backward()
    for p in model.encoder.parameters():
        assert p.grad is not None
        assert p.grad.abs().sum() > 0
    assert not any(b.requires_grad for b in model.quantizer.buffers())


@pytest.mark.parametrize("conv", [False, True])
def test_vq_decode_codes_equals_quantized_reconstruction(conv, gen):
    if conv:
        model, x = CONV["vqvae"](1, 8, 8), _rand(gen, 16, 1, 8, 8)
    else:
        model, x = DENSE["vqvae"](), _rand(gen, 16, N_FEATURES)
    model.train()
    model.loss(x, generator=gen)  # initialises the codebook
    model.eval()
    with torch.inference_mode():
        codes = model.codes(x)
        assert codes.dtype == torch.long
        assert torch.equal(model.decode_codes(codes), model(x))
        _, fwd_codes, _ = model.quantizer(model.encode(x))
        assert torch.equal(fwd_codes, codes)
    recon = model(x)  # with autograd on: straight-through, equal up to rounding
    torch.testing.assert_close(recon, model.decode_codes(model.codes(x)))


def test_vq_codebook_initialised_from_first_batch(gen):
    vq = VectorQuantizer(n_codes=4, code_dim=2)
    z = _rand(gen, 50, 2)
    vq.eval()
    vq(z)
    assert not vq.initialised
    vq.train()
    vq(z, generator=gen)
    assert vq.initialised
    # every code starts at a batch row (then moves by one EMA step towards its cluster mean)
    vq2 = VectorQuantizer(n_codes=4, code_dim=2, decay=1 - 1e-12)
    vq2(z, generator=torch.Generator().manual_seed(0))
    dist = (vq2.codebook[:, None] - z).norm(dim=-1).min(1).values
    assert dist.max() < 1e-4


def test_vq_ema_updates_only_in_train_mode(gen):
    vq = VectorQuantizer(n_codes=4, code_dim=2)
    vq(_rand(gen, 50, 2), generator=gen)
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    vq.eval()
    vq(_rand(gen, 50, 2) + 3.0)
    assert all(torch.equal(before[k], v) for k, v in vq.state_dict().items())
    vq.train()
    vq(_rand(gen, 50, 2) + 3.0, generator=gen)
    assert not torch.equal(before["codebook"], vq.codebook)
    assert not torch.equal(before["cluster_size"], vq.cluster_size)


def test_vq_scoring_never_updates(gen):
    model = DENSE["vqvae"]().train()
    x = _rand(gen, 16, N_FEATURES)
    model.loss(x, generator=gen)
    before = model.quantizer.codebook.clone()
    model.score(x + 5)
    model.codes(x + 5)
    model.feature_errors(x + 5)
    assert torch.equal(before, model.quantizer.codebook)


def _clusters(gen, n_per, centres):
    return torch.cat(
        [c + 0.05 * torch.randn(n_per, centres.shape[1], generator=gen) for c in centres]
    )


@pytest.mark.parametrize("threshold", [1.0, 0.0])
def test_vq_dead_codes_restarted(threshold, gen):
    centres = 4.0 * torch.eye(8)
    vq = VectorQuantizer(n_codes=16, code_dim=8, decay=0.8, dead_code_threshold=threshold)
    vq(_clusters(gen, 32, 20.0 * centres[:1]), generator=gen)  # every code starts far away
    data = _clusters(gen, 32, centres)
    for _ in range(20):
        vq(data[torch.randperm(len(data), generator=gen)], generator=gen)
    vq.eval()
    used = vq.perplexity(vq.nearest(data))
    far = (vq.codebook[:, None] - data).norm(dim=-1).min(1).values > 10
    if threshold > 0:  # every cluster gets a code: perplexity close to 8
        assert used > 6.0
        assert not far.any()
    else:  # codes never chosen stay where they started
        assert used < 6.0
        assert far.any()


def test_vq_perplexity():
    vq = VectorQuantizer(n_codes=8, code_dim=2)
    assert float(vq.perplexity(torch.arange(8))) == pytest.approx(8.0)
    assert float(vq.perplexity(torch.zeros(5, dtype=torch.long))) == pytest.approx(1.0)
    assert vq.perplexity(torch.arange(8)).dtype.is_floating_point


def test_vq_lookup_and_nearest(gen):
    vq = VectorQuantizer(n_codes=4, code_dim=2)
    vq(_rand(gen, 20, 2), generator=gen)
    codes = torch.tensor([[0, 3], [2, 1]])
    vectors = vq.lookup(codes)
    assert vectors.shape == (2, 2, 2)
    assert torch.equal(vq.nearest(vectors), codes)


def test_vq_weight_zero_rows_do_not_move_codebook(gen):
    vq = VectorQuantizer(n_codes=2, code_dim=2, dead_code_threshold=0.0)
    z = _rand(gen, 40, 2)
    vq(z, generator=gen)
    far = torch.cat([z, z[:10] + 100.0])
    weight = torch.cat([torch.ones(40), torch.zeros(10)])
    before = vq.codebook.clone()
    ref = VectorQuantizer(n_codes=2, code_dim=2, dead_code_threshold=0.0)
    ref.load_state_dict(vq.state_dict())
    vq(far, weight=weight)
    ref(z)
    torch.testing.assert_close(vq.codebook, ref.codebook)
    assert (vq.codebook - before).abs().max() < 10


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_codes": 0},
        {"code_dim": 1.5},
        {"commitment": -1},
        {"decay": 1.0},
        {"decay": 0.0},
        {"eps": 0},
        {"dead_code_threshold": -1},
    ],
)
def test_vq_invalid_options(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        VectorQuantizer(**kwargs)


def test_vq_wrong_code_dim(gen):
    with pytest.raises(ValueError, match="code_dim"):
        VectorQuantizer(n_codes=4, code_dim=3)(_rand(gen, 5, 2))


def test_vq_state_dict_roundtrip(gen):
    model = DENSE["vqvae"]()
    x = _rand(gen, 16, N_FEATURES)
    model.loss(x, generator=gen)
    assert {"quantizer.codebook", "quantizer.initialised"} <= set(model.state_dict())
    clone = DENSE["vqvae"]()
    clone.load_state_dict(model.state_dict())
    model.eval()
    clone.eval()
    assert torch.equal(model.score(x), clone.score(x))


def test_models_do_not_import_numpy_or_sklearn():
    import ast
    from pathlib import Path

    import anomalia.models as pkg

    for path in Path(pkg.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                names.append(getattr(node, "module", None) or "")
                assert not any(n.split(".")[0] in {"numpy", "sklearn"} for n in names), path
