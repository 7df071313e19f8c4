"""The one training loop for every auto-encoder in :mod:`anomalia.models`.

:func:`train` works with any ``nn.Module`` that provides

- ``loss(x, target=..., weight=..., generator=...) -> Tensor``, a scalar to minimise;
- ``per_sample_loss(x) -> Tensor`` of shape ``(n,)``, used for validation and robust mode.

It contains no model-specific code. Randomness comes from a local ``torch.Generator``
seeded with :attr:`TrainConfig.seed`; the global RNG (which only dropout uses) is forked,
seeded from it and restored, so ``train`` leaves the caller's RNG state untouched and the
same seed gives bitwise-identical weights on CPU.

When early stopping ends training before ``epochs``, :func:`train` says so: the message of
:func:`stop_message` ("stopped at epoch 54: no improvement for 10 epochs; ...") is logged at
INFO level on the ``anomalia.training`` logger and, with ``verbose``, printed where the
progress bar was, the bar first completed; the detectors keep the epoch in ``stopped_epoch_``.

To continue training later (``partial_fit``), make the optimiser with :func:`make_optimizer`,
pass it to :func:`train`, and keep its state: :func:`optimizer_arrays` flattens it into
plain arrays (saved with a model) and :func:`restore_optimizer` rebuilds it from them.

:func:`train_stream` runs the same loop and the same optimisation step on minibatches a
source yields each epoch (rows streamed from a file, shuffled in a bounded buffer by
:func:`shuffled_batches`), for data that never fits in memory at once.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .errors import TrainingError

__all__ = [
    "NOISE_KINDS",
    "TrainConfig",
    "batched_per_sample_loss",
    "check_optimizer_arrays",
    "make_optimizer",
    "optimizer_arrays",
    "restore_optimizer",
    "shuffled_batches",
    "stop_message",
    "stopped_epoch",
    "train",
    "train_stream",
]

logger = logging.getLogger(__name__)

NOISE_KINDS: tuple[str, ...] = ("gaussian", "mask", "swap")
"""Accepted values of :attr:`TrainConfig.noise_kind`."""

_SCORE_ELEMENTS = 1 << 22
"""Inference batches hold about this many input entries (at least ``batch_size`` rows)."""

_FUSED_DEVICES = ("cpu", "cuda")
"""Devices where AdamW uses its fused kernel."""

Callback = Callable[[int, dict[str, float]], None]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class TrainConfig:
    """Options of :func:`train`; validated on creation.

    Parameters
    ----------
    epochs : int, default=100
        Maximum number of passes over the training rows.
    batch_size : int, default=256
        Rows per optimisation step (at least 2). A final batch of one row is dropped.
    lr : float, default=1e-3
        AdamW learning rate.
    weight_decay : float, default=0.0
        AdamW (decoupled) weight decay.
    validation_fraction : float, default=0.1
        Share of rows held out for the validation loss, in ``[0, 1)``. ``0`` disables
        validation and early stopping; so does a split that would leave no validation row
        or fewer than 2 training rows.
    patience : int or None, default=10
        Stop after this many epochs without a lower validation loss, and restore the
        weights (and buffers) of the best epoch. ``None`` trains all ``epochs`` and keeps
        the last weights.
    grad_clip : float or None, default=5.0
        Maximum global gradient norm; ``None`` disables clipping.
    noise : float, default=0.0
        Corruption of the inputs for denoising training (the target stays clean): the
        standard deviation for ``"gaussian"``, the share of entries for ``"mask"`` and
        ``"swap"`` (then in ``[0, 1)``).
    noise_kind : {"gaussian", "mask", "swap"}, default="gaussian"
        ``"gaussian"`` adds N(0, noise^2); ``"mask"`` zeroes entries; ``"swap"`` replaces
        entries by the same feature (entry) of another random row of the batch.
    robust : bool, default=False
        After ``warmup_epochs``, at the start of each epoch give weight 0 to the
        ``robust_fraction`` of training rows with the largest per-sample loss.
    robust_fraction : float, default=0.05
        Share of rows left out in robust mode, in ``(0, 0.5)``.
    warmup_epochs : int, default=5
        Epochs trained on all rows before robust mode starts.
    seed : int, default=0
        Seed of the local generator (shuffling, split, noise, sampling, dropout).
    verbose : bool, default=False
        Show a transient Rich progress bar with the losses.

    Raises
    ------
    ValueError
        On any option out of range.
    """

    epochs: int = 100
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    validation_fraction: float = 0.1
    patience: int | None = 10
    grad_clip: float | None = 5.0
    noise: float = 0.0
    noise_kind: str = "gaussian"
    robust: bool = False
    robust_fraction: float = 0.05
    warmup_epochs: int = 5
    seed: int = 0
    verbose: bool = False

    def __post_init__(self) -> None:
        """Check every option and raise ValueError naming the first bad one."""
        checks: list[tuple[str, bool, str]] = [
            ("epochs", _is_int(self.epochs) and self.epochs >= 1, "an int >= 1"),
            ("batch_size", _is_int(self.batch_size) and self.batch_size >= 2, "an int >= 2"),
            ("lr", _is_real(self.lr) and self.lr > 0, "a number > 0"),
            ("weight_decay", _is_real(self.weight_decay) and self.weight_decay >= 0, ">= 0"),
            (
                "validation_fraction",
                _is_real(self.validation_fraction) and 0 <= self.validation_fraction < 1,
                "in [0, 1)",
            ),
            (
                "patience",
                self.patience is None or (_is_int(self.patience) and self.patience >= 1),
                "None or an int >= 1",
            ),
            (
                "grad_clip",
                self.grad_clip is None or (_is_real(self.grad_clip) and self.grad_clip > 0),
                "None or a number > 0",
            ),
            ("noise_kind", self.noise_kind in NOISE_KINDS, f"one of {NOISE_KINDS}"),
            (
                "noise",
                _is_real(self.noise)
                and self.noise >= 0
                and (self.noise_kind == "gaussian" or self.noise < 1),
                "a number >= 0 (and < 1 for 'mask' and 'swap')",
            ),
            ("robust", isinstance(self.robust, bool), "a bool"),
            (
                "robust_fraction",
                _is_real(self.robust_fraction) and 0 < self.robust_fraction < 0.5,
                "in (0, 0.5)",
            ),
            ("warmup_epochs", _is_int(self.warmup_epochs) and self.warmup_epochs >= 0, ">= 0"),
            ("seed", _is_int(self.seed) and 0 <= self.seed < 2**63, "an int in [0, 2**63)"),
            ("verbose", isinstance(self.verbose, bool), "a bool"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"{name} must be {expected}, got {getattr(self, name)!r}")


def stop_message(epoch: int, patience: int) -> str:
    """What early stopping at ``epoch`` (counted from 1) after ``patience`` epochs without a
    lower validation loss says: the weights kept are those of the best epoch."""
    return (
        f"stopped at epoch {epoch}: no improvement for {patience} epoch{'s' * (patience != 1)}; "
        f"weights of epoch {epoch - patience} kept"
    )


def stopped_epoch(history: dict[str, list[float]], config: TrainConfig) -> int | None:
    """The epoch (counted from 1) at which early stopping ended the training that gave
    ``history`` under ``config``, or None if it ran all ``config.epochs`` (only early
    stopping ends it sooner)."""
    n = len(history["train_loss"])
    return n if n < config.epochs else None


def _trainable(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


def _fused(params: Sequence[Tensor]) -> bool:
    # The fused kernel is about 25% faster per step on CPU, and as deterministic.
    return bool(params) and all(
        p.device.type in _FUSED_DEVICES and p.is_floating_point() for p in params
    )


def make_optimizer(module: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """The AdamW optimiser :func:`train` uses, over the trainable parameters of ``module``.

    Parameters
    ----------
    module : torch.nn.Module
        The model to train (its parameters must already be on their device).
    config : TrainConfig
        Its ``lr`` and ``weight_decay`` are the optimiser's.

    Returns
    -------
    torch.optim.AdamW
        A fresh optimiser (no state yet); pass it to ``train(..., optimizer=...)``.
    """
    params = _trainable(module)
    return torch.optim.AdamW(
        params, lr=config.lr, weight_decay=config.weight_decay, fused=_fused(params) or None
    )


def optimizer_arrays(module: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, np.ndarray]:
    """The AdamW state of ``optimizer`` over ``module``'s trainable parameters, as arrays.

    Returns
    -------
    dict of str to ndarray
        ``"steps"``: float64 of shape (n_parameters,), the optimisation steps each
        parameter tensor has taken (0: no state yet, as for a parameter that never got a
        gradient); ``"exp_avg"`` and ``"exp_avg_sq"``: float32 of shape (n_values,), the
        first and second moment estimates of every parameter value, concatenated in the
        order of ``module.parameters()`` (zeros where there is no state).
    """
    steps, first, second = [], [], []
    for p in _trainable(module):
        state = optimizer.state.get(p, {})
        if "step" in state:
            steps.append(float(state["step"]))
            first.append(state["exp_avg"].detach().reshape(-1).float().cpu().numpy())
            second.append(state["exp_avg_sq"].detach().reshape(-1).float().cpu().numpy())
        else:
            steps.append(0.0)
            first.append(np.zeros(p.numel(), dtype=np.float32))
            second.append(np.zeros(p.numel(), dtype=np.float32))
    cat = np.concatenate if steps else (lambda parts: np.zeros(0, dtype=np.float32))
    return {
        "steps": np.asarray(steps, dtype=np.float64),
        "exp_avg": np.ascontiguousarray(cat(first), dtype=np.float32),
        "exp_avg_sq": np.ascontiguousarray(cat(second), dtype=np.float32),
    }


def check_optimizer_arrays(module: nn.Module, arrays: dict[str, Any]) -> None:
    """Raise ValueError unless ``arrays`` is AdamW state :func:`restore_optimizer` can use.

    Checked: the types, dtypes and shapes for ``module``'s trainable parameters, steps that
    are whole numbers in [0, 2**24) (exact in float32, as AdamW counts them), and second
    moments that are not negative (finiteness is the caller's: model files are checked).
    """
    params = _trainable(module)
    n_values = sum(p.numel() for p in params)
    expected = {
        "steps": (np.float64, (len(params),)),
        "exp_avg": (np.float32, (n_values,)),
        "exp_avg_sq": (np.float32, (n_values,)),
    }
    for name, (dtype, shape) in expected.items():
        arr = arrays.get(name)
        if not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.shape != shape:
            got = getattr(arr, "shape", type(arr).__name__)
            raise ValueError(
                f"optimiser state {name} must be {np.dtype(dtype).name} of shape {shape}, got {got}"
            )
    steps = arrays["steps"]
    if not np.all((steps >= 0) & (steps < 2**24) & (steps == np.floor(steps))):
        raise ValueError("optimiser steps must be whole numbers in [0, 2**24)")
    if (arrays["exp_avg_sq"] < 0).any():
        raise ValueError("optimiser second moments must not be negative")


def restore_optimizer(
    module: nn.Module, config: TrainConfig, arrays: dict[str, np.ndarray]
) -> torch.optim.AdamW:
    """An optimiser from :func:`make_optimizer` holding the state :func:`optimizer_arrays` gave.

    Training with it continues exactly as with the optimiser the arrays came from (the
    learning rate and weight decay are ``config``'s). Raises ValueError if the arrays do
    not fit ``module`` (see :func:`check_optimizer_arrays`).
    """
    check_optimizer_arrays(module, arrays)
    optimizer = make_optimizer(module, config)
    state: dict[int, dict[str, Tensor]] = {}
    offset = 0
    for i, p in enumerate(_trainable(module)):
        k = p.numel()
        step = float(arrays["steps"][i])
        if step > 0:
            state[i] = {
                "step": torch.tensor(step, dtype=torch.float32),
                "exp_avg": torch.from_numpy(arrays["exp_avg"][offset : offset + k].copy())
                .reshape(p.shape)
                .to(dtype=p.dtype, device=p.device),
                "exp_avg_sq": torch.from_numpy(arrays["exp_avg_sq"][offset : offset + k].copy())
                .reshape(p.shape)
                .to(dtype=p.dtype, device=p.device),
            }
        offset += k
    saved = optimizer.state_dict()
    optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
    return optimizer


def _chunk_rows(X: Tensor, batch_size: int) -> int:
    """Rows per inference batch: about ``_SCORE_ELEMENTS`` entries, at least ``batch_size``."""
    return max(batch_size, _SCORE_ELEMENTS // max(1, X[0].numel()))


def batched_per_sample_loss(module: nn.Module, X: Tensor, batch_rows: int = 65536) -> Tensor:
    """Return ``module.per_sample_loss`` of every row of ``X``, in eval mode and big batches.

    Runs under ``torch.inference_mode`` and restores the module's train/eval mode.

    Parameters
    ----------
    module : torch.nn.Module
        A model with ``per_sample_loss(x) -> (n,)``.
    X : Tensor of shape (n, ...)
        Rows to evaluate, on the module's device.
    batch_rows : int, default=65536
        Rows per forward pass.

    Returns
    -------
    Tensor of shape (n,)
        A normal tensor (not an inference tensor), usable in autograd code.
    """
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode():
            parts = [
                module.per_sample_loss(X[i : i + batch_rows]) for i in range(0, len(X), batch_rows)
            ]
            out = torch.cat(parts) if parts else X.new_zeros(0)
    finally:
        module.train(was_training)
    return out.clone()


def _corrupt(x: Tensor, config: TrainConfig, generator: torch.Generator) -> Tensor:
    """Return a corrupted copy of the batch ``x`` (or ``x`` itself when ``noise == 0``)."""
    if config.noise == 0:
        return x
    if config.noise_kind == "gaussian":
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x + config.noise * noise
    hit = torch.rand(x.shape, generator=generator, device=x.device) < config.noise
    if config.noise_kind == "mask":
        return x.masked_fill(hit, 0.0)
    donor = torch.randint(len(x), x.shape, generator=generator, device=x.device)
    return torch.where(hit, x.gather(0, donor), x)


@contextlib.contextmanager
def _private_global_rng(device: torch.device, seed: int) -> Iterator[None]:
    """Fork the global RNG of the CPU (and of ``device``), seed it, restore it on exit."""
    if device.type == "cpu":
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            yield
        return
    mod: Any = torch.get_device_module(device.type)
    index = device.index if device.index is not None else mod.current_device()
    with torch.random.fork_rng(devices=[index], device_type=device.type):
        torch.default_generator.manual_seed(seed)
        if hasattr(mod, "device"):
            with mod.device(index):
                mod.manual_seed(seed)
        else:
            mod.manual_seed(seed)
        yield


def _check_optimizer(module: nn.Module, optimizer: torch.optim.Optimizer | None) -> None:
    if optimizer is not None:
        given = [p for group in optimizer.param_groups for p in group["params"]]
        if [id(p) for p in given] != [id(p) for p in _trainable(module)]:
            raise ValueError("optimizer must hold exactly the module's trainable parameters")


def train(
    module: nn.Module,
    X: Tensor,
    config: TrainConfig,
    *,
    callbacks: Sequence[Callback] = (),
    optimizer: torch.optim.Optimizer | None = None,
) -> dict[str, list[float]]:
    """Train ``module`` on the rows of ``X`` with AdamW; return the history.

    Parameters
    ----------
    module : torch.nn.Module
        A model with ``loss(x, target=, weight=, generator=)`` and ``per_sample_loss(x)``
        (every model of :mod:`anomalia.models`). Trained in place and left in eval mode.
    X : Tensor of shape (n, ...)
        Floating training data, n >= 2. It is moved to the device and dtype of the
        module's parameters if they differ.
    config : TrainConfig
        The options.
    callbacks : sequence of callable, default=()
        Each is called as ``callback(epoch, logs)`` after every epoch, with ``epoch``
        counted from 0 and ``logs`` holding that epoch's ``train_loss``, ``val_loss``
        (with validation), ``epoch_seconds`` and ``n_dropped`` (robust mode).
    optimizer : torch.optim.Optimizer or None, default=None
        The optimiser to step, over exactly ``module``'s trainable parameters, e.g. from
        :func:`make_optimizer` or :func:`restore_optimizer` (its state carries over from
        earlier training). ``None``: a fresh :func:`make_optimizer`. Early stopping
        restores the best weights, not the optimiser's state of that epoch.

    Returns
    -------
    dict of str to list of float
        One entry per epoch run (fewer than ``config.epochs`` when early stopping ended
        training: see :func:`stopped_epoch`): ``"train_loss"`` (mean of the batch losses),
        ``"val_loss"`` (mean per-sample loss of the validation rows; only with
        validation), ``"epoch_seconds"``, and ``"n_dropped"`` (rows given weight 0; only
        in robust mode). Early stopping logs :func:`stop_message`.

    Raises
    ------
    ValueError
        If ``X`` is not a floating tensor with at least 2 rows.
    TrainingError
        If the training loss becomes NaN or infinite (an :class:`~anomalia.errors.AnomaliaError`
        and a :class:`FloatingPointError`).
    """
    if not isinstance(X, Tensor) or X.ndim < 2 or not X.is_floating_point():
        raise ValueError("X must be a floating-point tensor of shape (n_samples, ...)")
    if len(X) < 2:
        raise ValueError(f"training needs at least 2 rows, got {len(X)}")
    _check_optimizer(module, optimizer)
    param = next(module.parameters(), None)
    if param is not None:
        X = X.to(device=param.device, dtype=param.dtype)

    def prepare(generator: torch.Generator) -> tuple[Tensor, EpochSource]:
        n = len(X)
        n_val = int(n * config.validation_fraction)
        if n_val < 1 or n - n_val < 2:
            n_val = 0
        if n_val:
            perm = torch.randperm(n, generator=generator, device=X.device)
            return X[perm[:n_val]], _in_memory(module, X[perm[n_val:]], config)
        return X[:0], _in_memory(module, X, config)

    return _run(module, X.device, config, prepare, callbacks, optimizer)


def train_stream(
    module: nn.Module,
    source: EpochSource,
    config: TrainConfig,
    *,
    X_val: Tensor | None = None,
    callbacks: Sequence[Callback] = (),
    optimizer: torch.optim.Optimizer | None = None,
) -> dict[str, list[float]]:
    """Train ``module`` on minibatches that ``source`` yields each epoch (rows that are
    never all in memory); the loop, the optimisation step and the options are :func:`train`'s.

    Parameters
    ----------
    module : torch.nn.Module
        As in :func:`train`.
    source : callable
        Called as ``source(epoch, generator, logs)`` at the start of every epoch (in train
        mode); returns an iterable of ``(target, weight)`` minibatches: ``target`` a
        floating tensor of rows on the module's device, ``weight`` None or a tensor of
        shape (len(target),) (robust mode: 0 leaves a row out). It should draw its
        shuffling from ``generator`` (seeded by ``config.seed``, as :func:`train`'s) and,
        in robust mode, set ``logs["n_dropped"]`` (rows given weight 0 that epoch). Use
        :func:`shuffled_batches` to shuffle a stream of blocks in bounded memory.
        ``config.robust`` only makes the history keep ``n_dropped``: the source weights.
    config : TrainConfig
        The options; ``validation_fraction`` is not used (the held-out rows are ``X_val``).
    X_val : Tensor or None, default=None
        Validation rows, held in memory: their mean per-sample loss is ``val_loss`` and
        drives early stopping (``config.patience``). None or empty: no validation.
    callbacks, optimizer
        As in :func:`train`.

    Returns
    -------
    dict of str to list of float
        As :func:`train`'s; ``train_loss`` is the mean loss of the minibatches' rows.
    """
    _check_optimizer(module, optimizer)
    param = next(module.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    val = X_val if X_val is not None else torch.zeros(0, 1)
    if param is not None:
        val = val.to(device=param.device, dtype=param.dtype)
    return _run(module, device, config, lambda generator: (val, source), callbacks, optimizer)


def shuffled_batches(
    blocks: Iterable[tuple[Tensor, ...]],
    capacity: int,
    batch_size: int,
    generator: torch.Generator,
) -> Iterator[tuple[Tensor, ...]]:
    """Minibatches of rows that arrive in blocks, shuffled in a buffer of ``capacity`` rows.

    Each block is a tuple of tensors with the same number of rows (e.g. rows and their
    weights). Blocks are appended to the buffer; whenever it holds more than
    ``capacity // 2`` rows it is permuted (with ``generator``) and all but about half of it
    leaves as minibatches of ``batch_size`` rows, so a row can leave with rows up to
    several buffers away in the stream. At the end the rest is permuted and emitted too; a
    final minibatch of one row is dropped, as in :func:`train`. Every other row is emitted
    exactly once. The buffer never holds more than ``capacity`` rows (blocks larger than
    the room left are split), plus a permuted copy while it empties; with blocks of at
    most ``capacity // 4`` rows, the buffer and the block it takes in stay within
    ``capacity`` together.

    Parameters
    ----------
    blocks : iterable of tuple of Tensor
        The stream, in order.
    capacity : int
        Most rows held, at least ``4 * batch_size``.
    batch_size : int
        Rows per minibatch, at least 2.
    generator : torch.Generator
        Source of the permutations.

    Yields
    ------
    tuple of Tensor
        One minibatch, the same tensors as the blocks.
    """
    if batch_size < 2 or capacity < 4 * batch_size:
        raise ValueError(
            f"capacity must be at least 4 * batch_size ({4 * batch_size}), got {capacity}"
        )
    keep = capacity // 2
    room = capacity - keep - batch_size + 1  # rows a block may add to a buffer after a flush
    held: tuple[Tensor, ...] | None = None

    def flush(rows: int) -> Iterator[tuple[Tensor, ...]]:
        nonlocal held
        assert held is not None
        perm = torch.randperm(len(held[0]), generator=generator, device=held[0].device)
        out = tuple(t[perm[:rows]] for t in held)
        held = tuple(t[perm[rows:]] for t in held)
        for lo in range(0, rows, batch_size):
            if rows - lo == 1 and rows > 1:
                break
            yield tuple(t[lo : lo + batch_size] for t in out)

    for block in blocks:
        for lo in range(0, len(block[0]), room):
            piece = tuple(t[lo : lo + room] for t in block)
            held = piece if held is None else tuple(map(torch.cat, zip(held, piece, strict=True)))
            excess = len(held[0]) - keep
            if excess >= batch_size:
                yield from flush(excess // batch_size * batch_size)
    if held is not None and len(held[0]):
        yield from flush(len(held[0]))


#: ``source(epoch, generator, logs)`` -> the epoch's ``(target, weight)`` minibatches.
EpochSource = Callable[
    [int, torch.Generator, dict[str, float]], Iterable[tuple[Tensor, Tensor | None]]
]


def _in_memory(module: nn.Module, X_train: Tensor, config: TrainConfig) -> EpochSource:
    """The epochs of :func:`train`: robust weights from the epoch's losses, a permutation."""
    n_train = len(X_train)
    chunk = _chunk_rows(X_train, config.batch_size)

    def epoch_batches(
        epoch: int, generator: torch.Generator, logs: dict[str, float]
    ) -> Iterator[tuple[Tensor, Tensor | None]]:
        weight = None
        if config.robust:
            n_drop = int(config.robust_fraction * n_train) if epoch >= config.warmup_epochs else 0
            if n_drop:
                losses = batched_per_sample_loss(module, X_train, chunk)
                weight = torch.ones(n_train, device=X_train.device, dtype=X_train.dtype)
                weight[losses.topk(n_drop).indices] = 0.0
            logs["n_dropped"] = n_drop
        order = torch.randperm(n_train, generator=generator, device=X_train.device)
        for lo in range(0, n_train, config.batch_size):
            idx = order[lo : lo + config.batch_size]
            if len(idx) == 1 and n_train > 1:
                break
            yield X_train[idx], None if weight is None else weight[idx]

    return epoch_batches


def _run(
    module: nn.Module,
    device: torch.device,
    config: TrainConfig,
    prepare: Callable[[torch.Generator], tuple[Tensor, EpochSource]],
    callbacks: Sequence[Callback],
    optimizer: torch.optim.Optimizer | None,
) -> dict[str, list[float]]:
    """Seed the local generator and the private global RNG, then run :func:`_fit`."""
    generator = torch.Generator(device=device)
    generator.manual_seed(config.seed)
    global_seed = int(torch.randint(2**62, (1,), generator=generator, device=device))
    if optimizer is None:
        optimizer = make_optimizer(module, config)
    try:
        with _private_global_rng(device, global_seed):
            X_val, source = prepare(generator)
            return _fit(module, X_val, source, config, generator, callbacks, optimizer)
    finally:
        module.eval()


def _step(
    module: nn.Module,
    target: Tensor,
    weight: Tensor | None,
    config: TrainConfig,
    generator: torch.Generator,
    optimizer: torch.optim.Optimizer,
    params: Sequence[Tensor],
    fused: bool,
) -> Tensor:
    """One optimisation step on the minibatch ``target``; returns its (detached) loss."""
    loss = module.loss(
        _corrupt(target, config, generator), target=target, weight=weight, generator=generator
    )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip is not None:
        nn.utils.clip_grad_norm_(params, config.grad_clip, foreach=fused or None)
    optimizer.step()
    return loss.detach()


def _fit(
    module: nn.Module,
    X_val: Tensor,
    source: EpochSource,
    config: TrainConfig,
    generator: torch.Generator,
    callbacks: Sequence[Callback],
    optimizer: torch.optim.Optimizer,
) -> dict[str, list[float]]:
    n_val = len(X_val)
    chunk = _chunk_rows(X_val, config.batch_size) if n_val else config.batch_size
    early_stopping = n_val > 0 and config.patience is not None

    params = _trainable(module)
    fused = _fused(params)
    history: dict[str, list[float]] = {"train_loss": [], "epoch_seconds": []}
    if n_val:
        history["val_loss"] = []
    if config.robust:
        history["n_dropped"] = []
    best_loss, best_state, stale = math.inf, None, 0

    progress, task = None, None
    with contextlib.ExitStack() as stack:
        if config.verbose:
            from rich.progress import Progress  # imported only when asked for

            progress = stack.enter_context(Progress(transient=True))
            task = progress.add_task("training", total=config.epochs)
        for epoch in range(config.epochs):
            start = time.perf_counter()
            logs: dict[str, float] = {}
            module.train()
            total = torch.zeros((), device=X_val.device, dtype=torch.float64)
            seen = 0
            for target, weight in source(epoch, generator, logs):
                loss = _step(module, target, weight, config, generator, optimizer, params, fused)
                total += loss * len(target)
                seen += len(target)
            logs["train_loss"] = float(total) / max(seen, 1)
            if not math.isfinite(logs["train_loss"]):
                raise TrainingError(
                    f"training loss became {logs['train_loss']} at epoch {epoch + 1}: the data "
                    f"may hold values too large to standardise, or lr={config.lr:g} is too high; "
                    "scale the data or lower lr (a grad_clip may help)"
                )

            stop = False
            if n_val:
                val = float(batched_per_sample_loss(module, X_val, chunk).mean())
                logs["val_loss"] = val
                if early_stopping:
                    if val < best_loss:
                        best_loss, stale = val, 0
                        best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
                    else:
                        stale += 1
                        stop = stale >= (config.patience or 0)
            logs["epoch_seconds"] = time.perf_counter() - start
            for key, value in logs.items():
                history[key].append(value)
            logger.debug("epoch %d: %s", epoch, logs)
            if progress is not None and task is not None:
                shown = ", ".join(f"{k} {v:.4g}" for k, v in logs.items() if k.endswith("loss"))
                progress.update(task, advance=1, description=f"epoch {epoch + 1}: {shown}")
            for callback in callbacks:
                callback(epoch, dict(logs))
            if stop and epoch + 1 < config.epochs:
                message = stop_message(epoch + 1, config.patience or 0)
                logger.info(message)
                if progress is not None and task is not None:  # the bar ends full, then says why
                    progress.update(task, total=epoch + 1, completed=epoch + 1)
                    progress.console.print(message, highlight=False, soft_wrap=True)
                break

    if best_state is not None:
        module.load_state_dict(best_state)
    return history
