"""Tests of the single training loop."""

from __future__ import annotations

import dataclasses
import math

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from anomalia.errors import AnomaliaError, TrainingError  # noqa: E402
from anomalia.models import ConvAE, ConvVQVAE, DenseAE, DenseVAE, DenseVQVAE  # noqa: E402
from anomalia.training import TrainConfig, stop_message, stopped_epoch, train  # noqa: E402

D = 6
FAST = {"epochs": 4, "batch_size": 32, "lr": 1e-2}

BUILDERS = {
    "ae-dropout": lambda: DenseAE(D, hidden=(16,), bottleneck=3, dropout=0.2),
    "vae": lambda: DenseVAE(D, hidden=(16,), bottleneck=3),
    "vqvae": lambda: DenseVQVAE(D, hidden=(16,), n_latents=2, n_codes=8, code_dim=3),
    "conv-ae": lambda: ConvAE(1, 8, 8, channels=(2, 4), bottleneck=3),
    "conv-vqvae": lambda: ConvVQVAE(1, 8, 8, channels=(2, 4), n_codes=8, code_dim=3),
}


def _build(name, seed=0):
    """Build a model with a fixed initialisation, leaving the global RNG alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return BUILDERS[name]()


def _data(name, n=160, seed=0):
    gen = torch.Generator().manual_seed(seed)
    if name.startswith("conv"):
        return torch.randn(n // 4, 1, 8, 8, generator=gen)
    return torch.randn(n, 3, generator=gen) @ torch.randn(3, D, generator=gen)


class Recorder(nn.Module):
    """The smallest module train() accepts; it records what it is given."""

    def __init__(self, d: int = D) -> None:
        super().__init__()
        self.lin = nn.Linear(d, d)
        self.calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = []

    def loss(self, x, target=None, weight=None, generator=None):
        self.calls.append((x.detach().clone(), target.clone(), weight))
        return (self.lin(x) - target).square().mean()

    def per_sample_loss(self, x):
        return (self.lin(x) - x).square().mean(1)


def _states_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_same_seed_same_weights(name):
    X = _data(name)
    config = TrainConfig(**FAST, seed=3, noise=0.1)
    a, b, c = _build(name), _build(name), _build(name)
    train(a, X, config)
    train(b, X, config)
    train(c, X, TrainConfig(**FAST, seed=4, noise=0.1))
    assert _states_equal(a, b)
    assert not _states_equal(a, c)


@pytest.mark.parametrize("name", ["ae-dropout", "vae", "vqvae"])
def test_global_rng_untouched(name):
    state = torch.get_rng_state()
    train(_build(name), _data(name), TrainConfig(**FAST, robust=True, warmup_epochs=1))
    assert torch.equal(torch.get_rng_state(), state)


def test_history_and_final_mode():
    model = _build("vqvae")
    seen = []
    history = train(
        model,
        _data("vqvae"),
        TrainConfig(**FAST),
        callbacks=[lambda e, logs: seen.append((e, logs))],
    )
    assert set(history) == {"train_loss", "val_loss", "epoch_seconds"}
    assert all(len(v) == FAST["epochs"] for v in history.values())
    assert all(math.isfinite(v) for v in history["train_loss"] + history["val_loss"])
    assert [e for e, _ in seen] == list(range(FAST["epochs"]))
    assert seen[-1][1]["val_loss"] == history["val_loss"][-1]
    assert not model.training


def test_no_validation():
    history = train(_build("vae"), _data("vae"), TrainConfig(**FAST, validation_fraction=0.0))
    assert "val_loss" not in history
    assert len(history["train_loss"]) == FAST["epochs"]


def test_loss_decreases():
    history = train(_build("ae-dropout"), _data("ae-dropout"), TrainConfig(**{**FAST, "epochs": 8}))
    assert history["val_loss"][-1] < 0.7 * history["val_loss"][0]


def test_early_stopping_restores_best():
    model = DenseAE(D, hidden=(8,), bottleneck=1)
    X = torch.randn(200, D, generator=torch.Generator().manual_seed(0))  # noise: plateaus fast
    snapshots = []

    def snapshot(epoch, logs):
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})

    config = TrainConfig(epochs=200, batch_size=32, lr=3e-2, patience=3, validation_fraction=0.3)
    history = train(model, X, config, callbacks=[snapshot])
    n_epochs = len(history["val_loss"])
    assert n_epochs < 200
    best = min(range(n_epochs), key=history["val_loss"].__getitem__)
    assert best == n_epochs - 1 - config.patience
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in snapshots[best].items())
    assert not all(torch.equal(state[k], v) for k, v in snapshots[-1].items())


def test_robust_mode_ignores_planted_outliers():
    gen = torch.Generator().manual_seed(0)
    n, n_out = 400, 20
    X = torch.randn(n, 2, generator=gen) @ torch.randn(2, D, generator=gen)
    X[:n_out] = 5.0 * torch.randn(n_out, D, generator=gen)  # scattered, far away
    config = TrainConfig(
        epochs=25, batch_size=64, lr=1e-2, validation_fraction=0.0, warmup_epochs=3
    )
    ratios = {}
    for robust in (False, True):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = DenseAE(D, hidden=(16,), bottleneck=2)
        history = train(model, X, dataclasses.replace(config, robust=robust))
        with torch.inference_mode():
            loss = model.per_sample_loss(X)
        ratios[robust] = float(loss[:n_out].mean() / loss[n_out:].mean())
        if robust:
            assert history["n_dropped"][: config.warmup_epochs] == [0] * config.warmup_epochs
            assert history["n_dropped"][-1] == int(0.05 * n) > 0
            # the rows left out (largest loss) are exactly the planted outliers
            assert set(loss.topk(n_out).indices.tolist()) == set(range(n_out))
            assert history["train_loss"][-1] < 0.5 * history["train_loss"][0]
    assert ratios[True] > 5 * ratios[False]


@pytest.mark.parametrize("kind", ["gaussian", "mask", "swap"])
def test_denoising_corrupts_inputs_not_targets(kind):
    X = _data("ae-dropout")
    model = Recorder()
    train(model, X, TrainConfig(epochs=1, batch_size=40, noise=0.3, noise_kind=kind))
    for x, target, weight in model.calls:
        assert weight is None
        rows = (target[:, None] == X[None]).all(-1).any(1)
        assert rows.all()  # targets are clean training rows
        share = (x != target).float().mean()
        assert share > 0.99 if kind == "gaussian" else 0.1 < share < 0.5
        if kind == "mask":
            assert (x[x != target] == 0).all()
        if kind == "swap":  # every entry comes from the same column of some row of the batch
            assert (x[:, None, :] == target[None, :, :]).any(1).all()
    # and a real model trains with it
    history = train(_build("vae"), _data("vae"), TrainConfig(**FAST, noise=0.3, noise_kind=kind))
    assert all(math.isfinite(v) for v in history["train_loss"])


def test_final_batch_of_one_dropped():
    model = Recorder()
    train(
        model,
        _data("ae-dropout", n=9),
        TrainConfig(epochs=1, batch_size=4, validation_fraction=0.0),
    )
    assert [len(t) for _, t, _ in model.calls] == [4, 4]


def test_moves_data_to_module_dtype():
    model = Recorder().double()
    train(model, _data("ae-dropout", n=20), TrainConfig(epochs=1, batch_size=8))
    assert model.calls[0][0].dtype == torch.float64


def test_diverging_loss_raises():
    class Diverging(Recorder):
        def loss(self, x, target=None, weight=None, generator=None):
            return super().loss(x, target) * float("inf")

    model = Diverging()
    with pytest.raises(TrainingError, match=r"became (inf|nan) at epoch 1: .* lr=0\.001") as info:
        train(model, _data("ae-dropout", n=20), TrainConfig(epochs=2, batch_size=8))
    assert isinstance(info.value, FloatingPointError)  # the type it was before
    assert isinstance(info.value, AnomaliaError)  # one line, exit 2 in the CLI
    assert "\n" not in str(info.value)
    assert not model.training


def test_early_stopping_says_so_logs_it_and_ends_the_bar_full(caplog, capsys, monkeypatch):
    from rich.progress import Progress

    updates = []
    real_update = Progress.update

    def record(self, task, **kw):
        real_update(self, task, **kw)
        updates.append((self.tasks[0].completed, self.tasks[0].total))

    monkeypatch.setattr(Progress, "update", record)
    X = torch.randn(200, D, generator=torch.Generator().manual_seed(0))  # noise: plateaus fast
    config = TrainConfig(epochs=200, batch_size=32, lr=3e-2, patience=3, validation_fraction=0.3,
                         verbose=True)  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = DenseAE(D, hidden=(8,), bottleneck=1)
    with caplog.at_level("INFO", logger="anomalia.training"):
        history = train(model, X, config)
    n = len(history["train_loss"])
    assert n < 200 and stopped_epoch(history, config) == n
    message = f"stopped at epoch {n}: no improvement for 3 epochs; weights of epoch {n - 3} kept"
    assert stop_message(n, 3) == message
    assert [r.getMessage() for r in caplog.records] == [message]
    assert message in capsys.readouterr().out  # verbose: printed, the bar being transient
    assert updates[-1] == (n, n)  # the bar ended full, not at n of 200
    full = TrainConfig(epochs=3, batch_size=32, patience=None)
    assert stopped_epoch(train(model, X, full), full) is None


def test_verbose_progress_runs():
    history = train(_build("vae"), _data("vae"), TrainConfig(epochs=2, batch_size=32, verbose=True))
    assert len(history["train_loss"]) == 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": 2.0}, "epochs"),
        ({"batch_size": 1}, "batch_size"),
        ({"lr": 0.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"patience": 0}, "patience"),
        ({"grad_clip": 0.0}, "grad_clip"),
        ({"noise": -0.1}, "noise"),
        ({"noise": 1.0, "noise_kind": "mask"}, "noise"),
        ({"noise_kind": "salt"}, "noise_kind"),
        ({"robust_fraction": 0.5}, "robust_fraction"),
        ({"warmup_epochs": -1}, "warmup_epochs"),
        ({"seed": -1}, "seed"),
    ],
)
def test_invalid_config(kwargs, match):
    with pytest.raises(ValueError, match=f"^{match} must be"):
        TrainConfig(**kwargs)


@pytest.mark.parametrize(
    ("X", "match"),
    [
        (torch.zeros(5, 3, dtype=torch.long), "floating"),
        (torch.zeros(5), "floating"),
        (torch.zeros(1, 3), "at least 2 rows"),
    ],
)
def test_invalid_data(X, match):
    with pytest.raises(ValueError, match=match):
        train(Recorder(3), X, TrainConfig(epochs=1))
