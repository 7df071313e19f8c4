"""Auto-encoder detectors: ``ae`` (``dae``, ``conv-ae``), ``vae`` and ``vqvae``.

An auto-encoder is trained to reconstruct normal data through a narrow bottleneck; a record it
reconstructs badly is anomalous. The networks live in :mod:`anomalia.models` and are trained by
:func:`anomalia.training.train`; this module adds the scikit-learn contract around them:
input validation and scaling (saved with the model), seeding, batched scoring under
``torch.inference_mode`` and persistence of the weights.

Tables are 2-D arrays (n_samples, n_features) and use dense networks. Images are
(n, H, W) or (n, C, H, W) arrays, or flat rows with ``image_shape`` set, and use convolutional
networks (``architecture="auto"`` picks by the input). Wherever a method takes ``X``, the
path of a folder of PNG/JPEG files does too (``fit("images/train")``): its images, read as
the CLI reads them (:func:`anomalia.images.read_image_folder`, sorted by path).

They keep learning with ``partial_fit(X)``: the first call on an unfitted detector is ``fit``;
each later call trains ``update_epochs`` more epochs on the new rows alone, with the loss of
``fit`` and the optimiser's state (AdamW's moment estimates and step counts) carried over
from the previous call, so a stream cut into chunks trains as one continued run. The input
scaling stays the one fitted on the first rows (so scores of old and new rows stay
comparable); the batch size, architecture and code size too. Updates use every row of the
batch (no validation split, no early stopping: a fixed number of epochs) and, with
``robust=True``, leave out the worst-reconstructed share from the first update epoch on.
``threshold_`` is set again on the scores of the latest batch under the updated network.
The optimiser state is saved with the model, so ``save`` -> ``load`` -> ``partial_fit``
continues exactly as the unsaved model would; each update draws its shuffling and noise
from a seed made of ``random_state`` and the number of updates so far.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Self

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from sklearn.base import TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted

from .. import models
from .._utils.validation import check_fraction, check_int, check_option
from ..base import IncrementalMixin
from ..errors import DataError, ModelFileError
from ..training import (
    TrainConfig,
    batched_per_sample_loss,
    check_optimizer_arrays,
    make_optimizer,
    optimizer_arrays,
    restore_optimizer,
    shuffled_batches,
    stopped_epoch,
    train,
    train_stream,
)
from ._torch import (
    SCORE_BATCH,
    TorchDetector,
    auto_batch_size,
    images_of_folder,
    module_from_state,
    rows_within,
    seed_from,
)


def auto_bottleneck(n_features: int) -> int:
    """Default code size for tables: about a quarter of the features, between 2 and 32."""
    return int(np.clip(math.ceil(n_features / 4), 2, 32))


#: Fitted attributes holding the optimiser's state (all present or all absent).
OPTIMIZER_ATTRIBUTES = ("optimizer_steps_", "optimizer_exp_avg_", "optimizer_exp_avg_sq_")
#: Most training codes ``code_neighbors`` keeps to compare with (a seeded sample beyond that).
MAX_CODE_ROWS = 10_000


def _positive(value: Any) -> float:
    """A spread to divide by: ``value``, or 1 where it is 0 (all training scores equal)."""
    value = float(value)
    return value if value > 0 else 1.0


class _AutoEncoderBase(IncrementalMixin, TransformerMixin, TorchDetector):
    """Shared machinery of the auto-encoder detectors (not registered itself).

    They are transformers too: ``transform`` gives the bottleneck codes (dimension reduction).
    """

    # -- hooks for the three families ----------------------------------------------------
    def _build_module(self) -> torch.nn.Module:
        raise NotImplementedError

    def _model_score(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return self.module_.score(x)

    # -- parameters ------------------------------------------------------------------------
    def _check_params(self) -> None:
        check_option("architecture", self.architecture, ("auto", "dense", "conv"))
        if getattr(self, "bottleneck", "auto") != "auto":
            check_int("bottleneck", self.bottleneck)
        check_int("epochs", self.epochs)
        check_int("update_epochs", self.update_epochs)
        if self.batch_size != "auto":
            check_int("batch_size", self.batch_size, minimum=2)
        check_fraction("lr", self.lr, low=0.0, high=np.inf)
        check_fraction(
            "dropout", self.dropout, low=0.0, high=1.0, low_inclusive=True, high_inclusive=False
        )
        if self.image_shape is not None:
            shape = tuple(self.image_shape)
            if len(shape) not in (2, 3) or not all(isinstance(s, int) and s > 0 for s in shape):
                raise ValueError(f"image_shape must be (H, W) or (C, H, W), got {shape!r}")

    def _train_config(self) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size_,
            lr=self.lr,
            weight_decay=self.weight_decay,
            validation_fraction=self.validation_fraction,
            patience=self.patience,
            noise=self.noise,
            noise_kind=self.noise_kind,
            robust=self.robust,
            robust_fraction=self.robust_fraction,
            warmup_epochs=self.warmup_epochs,
            seed=self.seed_,
            verbose=self.verbose,
        )

    # -- input -----------------------------------------------------------------------------
    def _check_images_allowed(self) -> None:
        if self.architecture == "dense":
            raise DataError("architecture='dense' needs 2-D tables; got images")

    def _image_shape_for_table(self, n_features: int) -> tuple[int, ...] | None:
        if self.image_shape is not None:
            shape = tuple(self.image_shape)
            shape = (1, *shape) if len(shape) == 2 else shape
            if int(np.prod(shape)) != n_features:
                raise DataError(
                    f"image_shape {tuple(self.image_shape)} holds "
                    f"{int(np.prod(shape))} values, but rows have {n_features}"
                )
            return shape
        if self.architecture != "conv":
            return None
        side = math.isqrt(n_features)
        # square rows are read as square images; other rows as 1 x n strips (a 1-D signal)
        return (1, side, side) if side * side == n_features else (1, 1, n_features)

    def _tensor(self, X: NDArray[np.float64]) -> torch.Tensor:
        # per-feature (tables) or one scalar (images) scaling, in float32 inside torch
        x = torch.from_numpy(np.asarray(X, dtype=np.float32))
        shift = torch.from_numpy(self.input_shift_.astype(np.float32))
        scale = torch.from_numpy(self.input_scale_.astype(np.float32))
        return (x - shift) / scale

    def _untensor(self, t: torch.Tensor, like_ndim: int) -> NDArray[np.float64]:
        arr = t.double().numpy()
        if self.image_shape_ is not None:
            arr = arr * self.input_scale_[0] + self.input_shift_[0]
            if like_ndim == 2:
                return arr.reshape(len(arr), -1)
            return arr[:, 0] if like_ndim == 3 else arr  # (n, H, W) in, (n, H, W) out
        return arr * self.input_scale_ + self.input_shift_

    # -- fit and score ---------------------------------------------------------------------
    def _setup(self, n_rows: int, width: int) -> None:
        """Seed, architecture, activation, code and batch sizes for ``n_rows`` training rows
        whose validated arrays are ``width`` wide (features, or channels of images)."""
        self.seed_ = seed_from(self.random_state)
        self.architecture_ = "conv" if self.image_shape_ is not None else "dense"
        self.activation_ = self.activation
        if self.activation == "auto":  # see AEDetector's docstring
            self.activation_ = "relu" if self.architecture_ == "conv" else "tanh"
        bottleneck = getattr(self, "bottleneck", "auto")  # the VQ-VAE sizes its codes itself
        self.bottleneck_ = auto_bottleneck(width) if bottleneck == "auto" else int(bottleneck)
        self.batch_size_ = (
            auto_batch_size(n_rows) if self.batch_size == "auto" else int(self.batch_size)
        )

    def _new_module(self) -> torch.nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed_)
            return self._build_module()

    def _fit(self, X: NDArray[np.float64]) -> None:
        self._setup(len(X), X.shape[1])
        self._fit_scaling(X)
        self.module_ = self._new_module()
        config = self._train_config()
        optimizer = make_optimizer(self.module_, config)
        history = train(self.module_, self._tensor(X), config, optimizer=optimizer)
        self._keep_history(history, config)
        self._keep_optimizer(optimizer)
        self.n_updates_ = 0
        self._fitted_on(X)

    def _fitted_on(self, X: NDArray[np.float64]) -> None:
        """After training: statistics of the training rows ``X`` (or a sample of them)."""

    def _check_streamable(self) -> None:
        """Refuse, before reading any block, options a streamed fit cannot honour."""

    def fit_stream(
        self,
        epoch_blocks: Callable[[], Iterable[ArrayLike]],
        *,
        n_rows: int,
        mean: ArrayLike,
        std: ArrayLike,
        sample: ArrayLike,
        validation: ArrayLike | None = None,
        buffer_rows: int,
    ) -> Self:
        """Fit on rows that arrive in blocks, never all in memory (a file larger than memory).

        The training loop, its optimisation step and its options are ``fit``'s
        (:func:`anomalia.training.train_stream`); what differs is where rows come from.
        Each epoch calls ``epoch_blocks()`` and shuffles the blocks it yields in a buffer of
        at most ``buffer_rows`` rows (:func:`anomalia.training.shuffled_batches`, seeded by
        ``random_state``). The input scaling comes from ``mean`` and ``std``, the
        statistics of every training row; validation and early stopping use the rows
        ``validation`` (held in memory; the blocks must not hold them), the threshold and
        the detector's other statistics (a VQ-VAE's code usage) the training scores of
        ``sample``. With ``robust=True``, each block's rows whose loss under the current
        network exceeds the ``1 - robust_fraction`` quantile of ``sample``'s losses (taken
        at the start of the epoch) get weight 0: the streamed counterpart of ``fit``'s
        per-epoch top-k. :func:`anomalia.stream.fit_streaming` drives this from a file.

        Parameters
        ----------
        epoch_blocks : callable
            Returns, each time it is called, an iterable over the training rows in blocks
            (arrays or DataFrames of shape (n_block, n_features), float64 or float32,
            finite, the columns of ``sample``).
        n_rows : int
            Training rows in all the blocks together plus ``validation`` (sizes
            ``batch_size="auto"`` as ``fit`` would).
        mean, std : array-like of shape (n_features,)
            Per-feature mean and population standard deviation (ddof 0) of those rows.
        sample : array-like of shape (n_sample, n_features)
            A uniform sample of the training rows (at least 2), e.g. a reservoir sample.
        validation : array-like of shape (n_val, n_features) or None
            Rows held out for the validation loss (None: no validation, no early stopping).
        buffer_rows : int
            Most rows the shuffle buffer holds (at least 4 * the batch size).

        Returns
        -------
        self
        """
        self._check_all_params()
        self._check_streamable()
        Xs = self._validate(sample, reset=True)
        if n_rows < 2:
            raise DataError(f"training needs at least 2 rows, got {n_rows}")
        mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
        if mean.shape != (self.n_features_in_,) or std.shape != mean.shape:
            raise ValueError(f"mean and std must have shape ({self.n_features_in_},)")
        bad = np.flatnonzero(~(np.isfinite(mean) & np.isfinite(std)))
        if bad.size:
            raise DataError(
                f"{self._feature_label(int(bad[0]), Xs.shape[1:])} holds values too large to "
                "compute with (its variance overflows float64): scale the data down"
            )
        self._setup(n_rows, Xs.shape[1])
        if self.image_shape_ is not None:  # all pixels together, from the per-pixel moments
            pooled = float(mean.mean())
            var = float(np.mean(std**2 + (mean - pooled) ** 2))
            mean, std = np.array([pooled]), np.array([math.sqrt(var)])
        self._set_scaling(mean, std)
        if buffer_rows < 4 * self.batch_size_:
            raise ValueError(
                f"buffer_rows must be at least 4 * batch_size ({4 * self.batch_size_}), "
                f"got {buffer_rows}"
            )
        self.module_ = self._new_module()
        config = dataclasses.replace(self._train_config(), verbose=False)
        optimizer = make_optimizer(self.module_, config)
        x_sample = self._tensor(Xs)
        X_val = None
        if validation is not None and len(validation):
            X_val = self._tensor(self._validate(validation, reset=False))

        def source(
            epoch: int, generator: torch.Generator, logs: dict[str, float]
        ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
            cutoff = None
            if config.robust:
                logs["n_dropped"] = 0
                n_drop = int(config.robust_fraction * len(x_sample))
                if epoch >= config.warmup_epochs and n_drop:
                    losses = batched_per_sample_loss(self.module_, x_sample)
                    cutoff = losses.kthvalue(len(losses) - n_drop).values
            blocks = (self._tensor(self._validate(b, reset=False)) for b in epoch_blocks())
            if cutoff is None:
                for (x,) in shuffled_batches(
                    ((x,) for x in blocks), buffer_rows, config.batch_size, generator
                ):
                    yield x, None
                return
            weighted = (
                (x, (batched_per_sample_loss(self.module_, x) <= cutoff).to(x.dtype))
                for x in blocks
            )
            for x, w in shuffled_batches(weighted, buffer_rows, config.batch_size, generator):
                logs["n_dropped"] += int((w == 0).sum())
                yield x, w

        history = train_stream(self.module_, source, config, X_val=X_val, optimizer=optimizer)
        self._keep_history(history, config)
        self._keep_optimizer(optimizer)
        self.n_updates_ = 0
        self._fitted_on(Xs)
        with np.errstate(over="ignore", invalid="ignore"):
            scores = self._training_scores(Xs)
        self._set_threshold(Xs, scores)
        return self

    # -- keep learning -----------------------------------------------------------------------
    def _keep_history(self, history: dict[str, list[float]], config: TrainConfig) -> None:
        self.history_ = history
        self.n_epochs_ = len(history["train_loss"])
        self.stopped_epoch_ = stopped_epoch(history, config)

    def _keep_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        arrays = optimizer_arrays(self.module_, optimizer)
        self.optimizer_steps_ = arrays["steps"]
        self.optimizer_exp_avg_ = arrays["exp_avg"]
        self.optimizer_exp_avg_sq_ = arrays["exp_avg_sq"]

    def _optimizer_state(self) -> dict[str, Any]:
        names = ("steps", "exp_avg", "exp_avg_sq")
        return {k: getattr(self, a) for k, a in zip(names, OPTIMIZER_ATTRIBUTES, strict=True)}

    def _update_config(self) -> TrainConfig:
        """``fit``'s options for one update: ``update_epochs`` epochs on every row given."""
        seed = np.random.SeedSequence([self.seed_, self.n_updates_ + 1]).generate_state(1)[0]
        return dataclasses.replace(
            self._train_config(),
            epochs=self.update_epochs,
            validation_fraction=0.0,
            patience=None,
            warmup_epochs=0,
            seed=int(seed),
        )

    def _partial_fit(self, X: NDArray[np.float64]) -> None:
        if len(X) < 2:
            raise DataError(f"partial_fit of {self.name} needs at least 2 rows; got {len(X)}")
        config = self._update_config()
        if all(hasattr(self, n) for n in OPTIMIZER_ATTRIBUTES):
            optimizer = restore_optimizer(self.module_, config, self._optimizer_state())
        else:  # a model saved before optimiser state was kept: start it afresh
            optimizer = make_optimizer(self.module_, config)
        history = train(self.module_, self._tensor(X), config, optimizer=optimizer)
        self._keep_history(history, config)
        self._keep_optimizer(optimizer)
        self.n_updates_ = getattr(self, "n_updates_", 0) + 1

    def _check_restored(self) -> None:
        have = [hasattr(self, n) for n in OPTIMIZER_ATTRIBUTES]
        if any(have) and not all(have):
            raise ModelFileError("the model's optimiser state is incomplete")
        seed, updates = getattr(self, "seed_", 0), getattr(self, "n_updates_", 0)
        for name, value in (("seed_", seed), ("n_updates_", updates)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**62:
                raise ModelFileError(f"{name} must be an integer in [0, 2**62), got {value!r:.40}")
        if all(have):
            try:
                check_optimizer_arrays(self.module_, self._optimizer_state())
            except ValueError as exc:
                raise ModelFileError(str(exc)) from None

    def _batched(self, X: NDArray[np.float64], fn: Any) -> torch.Tensor:
        """``fn`` over the scaled rows of ``X`` in batches sized by a memory budget
        (:func:`~anomalia.detectors._torch.rows_within`); each batch is converted to
        float32 and scaled on its own, so the whole input is never copied."""
        shape = self.image_shape_ if self.image_shape_ is not None else (self.n_features_in_,)
        rows = rows_within(self.module_, tuple(shape))
        with torch.inference_mode():
            return torch.cat([fn(self._tensor(X[i : i + rows])) for i in range(0, len(X), rows)])

    def _anomaly_score(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        gen = torch.Generator().manual_seed(self.seed_)  # repeatable Monte-Carlo scores
        return self._batched(X, lambda x: self._model_score(x, gen)).double().numpy()

    def _restore_module(self, attribute: str, state: dict[str, Any]) -> torch.nn.Module:
        return module_from_state(self._build_module, state)

    # -- beyond the contract -----------------------------------------------------------------
    def _checked(self, X: ArrayLike) -> tuple[NDArray[np.float64], int]:
        check_is_fitted(self)
        X = images_of_folder(X)  # before its dimensions decide the shape of the output
        ndim = 2 if hasattr(X, "iloc") else np.asarray(X).ndim
        return self._validate(X, reset=False), ndim

    def transform(self, X: ArrayLike) -> NDArray[np.float64]:
        """Bottleneck codes of each row, shape (n_samples, code size)."""
        Xv, _ = self._checked(X)
        codes = self._batched(Xv, self._encode)
        return codes.reshape(len(codes), -1).double().numpy()

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.module_.encode(x)

    def reconstruct(self, X: ArrayLike) -> NDArray[np.float64]:
        """Reconstructions in the original units and shape of ``X``."""
        Xv, ndim = self._checked(X)
        return self._untensor(self._batched(Xv, self.module_), ndim)

    def feature_errors(self, X: ArrayLike) -> NDArray[np.float64]:
        """Squared reconstruction error per feature (per pixel for images), in scaled units.

        Features are standardised first (images by the mean and std of all training pixels),
        so errors of different features compare: the largest say *why* a row is anomalous.
        """
        Xv, ndim = self._checked(X)
        err = self._batched(Xv, self.module_.feature_errors).double().numpy()
        if ndim == 2:
            return err.reshape(len(err), -1)
        return err[:, 0] if ndim == 3 else err

    # -- decoding ----------------------------------------------------------------------------
    def _code_shape(self) -> tuple[int, ...]:
        """Shape of one row's codes as the decoder takes them, e.g. (16,) or (4, 8)."""
        shape = self.image_shape_ if self.image_shape_ is not None else (self.n_features_in_,)
        with torch.inference_mode():
            return tuple(self._encode(torch.zeros(1, *shape)).shape[1:])

    def _decode(self, z: torch.Tensor) -> NDArray[np.float64]:
        """Decode a batch of decoder inputs to original units: (n, F) or (n, C, H, W)."""
        with torch.inference_mode():
            out = torch.cat([self.module_.decode(chunk) for chunk in z.split(SCORE_BATCH)])
        return self._untensor(out, 4 if self.image_shape_ is not None else 2)

    def inverse_transform(self, codes: ArrayLike) -> NDArray[np.float64]:
        """Decode bottleneck codes, as returned by :meth:`transform`, back to the input space.

        Parameters
        ----------
        codes : array-like of shape (n_samples, code size)
            Codes in the units of :meth:`transform` (they may be edited, interpolated or
            quantised). A VQ-VAE decodes the vectors as given, without snapping them to the
            codebook; use :meth:`VQVAEDetector.decode_codes` for code indices.

        Returns
        -------
        ndarray of shape (n_samples, n_features) or (n_samples, C, H, W)
            Rows in the original units (the input scaling undone), or images of the
            model's ``image_shape_``.

        Examples
        --------
        >>> import numpy as np
        >>> from anomalia.detectors.autoencoder import AEDetector
        >>> X = np.random.default_rng(0).normal(size=(200, 4))
        >>> det = AEDetector(bottleneck=2, epochs=2, random_state=0).fit(X)
        >>> det.inverse_transform(det.transform(X[:3])).shape
        (3, 4)
        """
        check_is_fitted(self)
        shape = self._code_shape()
        z = check_array(codes, dtype=(np.float64, np.float32), input_name="codes")
        if z.shape[1] != math.prod(shape):
            raise DataError(
                f"codes must have {math.prod(shape)} values per row (this model's code size); "
                f"got {z.shape[1]}"
            )
        return self._decode(torch.from_numpy(z.astype(np.float32)).reshape(len(z), *shape))


def _common_init(self: Any, **params: Any) -> None:
    for key, value in params.items():
        setattr(self, key, value)


class AEDetector(_AutoEncoderBase):
    """Auto-encoder; anomaly score = mean squared reconstruction error of the scaled input.

    Dense for tables, convolutional for images (``architecture="auto"`` picks by the input).
    ``noise > 0`` makes it a denoising auto-encoder: inputs are corrupted during training
    (Gaussian noise, masking or swap noise) while the target stays clean; registered as
    ``dae`` with ``noise=0.2``. ``conv-ae`` is this class with ``architecture="conv"``.

    Parameters
    ----------
    hidden : tuple of int, default=(64, 32)
        Widths of the dense encoder's hidden layers (the decoder mirrors them).
    channels : tuple of int, default=(32, 64)
        Channels of the convolutional encoder's stride-2 blocks (images only).
    bottleneck : int or "auto", default="auto"
        Code size. ``"auto"``: ceil(n_features / 4) clipped to [2, 32] for tables, 16 for images.
    activation : str, default="auto"
        Hidden activation: relu, leaky_relu, elu, gelu, tanh, sigmoid or silu. ``"auto"``:
        tanh for tables (saturating units do not extrapolate, so rows far from the training
        data reconstruct badly: on the benchmarks it matched relu on ADBench and was clearly
        better on breast cancer), relu for convolutional networks.
    dropout : float in [0, 1), default=0.0
        Dropout after each hidden layer of the dense network.
    batch_norm : bool, default=False
        Batch normalisation before each hidden activation of the dense network (as PyOD's
        ``AutoEncoder``); scoring uses the running statistics of training.
    noise : float, default=0.0
        Input corruption during training: std of the Gaussian noise in standardised units,
        or the share of entries masked/swapped.
    noise_kind : {"gaussian", "mask", "swap"}, default="gaussian"
        Kind of corruption.
    lr : float, default=1e-3
        AdamW learning rate.
    weight_decay : float, default=1e-5
        AdamW weight decay.
    epochs : int, default=100
        Maximum training epochs (early stopping usually ends sooner).
    update_epochs : int, default=5
        Epochs (passes over the new rows) of each :meth:`partial_fit` after the first; see
        the module docstring.
    batch_size : int or "auto", default="auto"
        Rows per training step; ``"auto"``: 32, or n_rows // 1000 for tables over 32,000
        rows (at most 1,024), so an epoch stays near 1,000 steps.
    validation_fraction : float in [0, 1), default=0.1
        Share of training rows held out for early stopping (0 disables it).
    patience : int or None, default=10
        Epochs without a better validation loss before stopping; best weights are restored.
    robust : bool, default=False
        For polluted training data: after ``warmup_epochs``, each epoch ignores the
        ``robust_fraction`` of training rows with the largest reconstruction error, so
        anomalies mixed into the training set are not learned. Use it when training labels
        are unknown and anomalies may hide in the training data.
    robust_fraction : float in (0, 0.5), default=0.05
        Share of rows ignored per epoch in robust mode (set it to the expected pollution).
    warmup_epochs : int, default=5
        Epochs on all rows before robust mode starts.
    standardize : bool, default=True
        Standardise table features (images: by the mean and std of all training pixels) with
        statistics of the training data, saved with the model.
    architecture : {"auto", "dense", "conv"}, default="auto"
        Network kind; ``"auto"`` uses conv for images, dense for tables.
    image_shape : tuple of int or None, default=None
        (H, W) or (C, H, W) to read flat rows as images (e.g. (8, 8) for digits).
    code_neighbors : int, default=0
        ``k > 0``: score in code space too. The score becomes the z-scored reconstruction
        error plus ``code_weight`` times the z-scored mean Euclidean distance of the row's
        bottleneck code to its ``k`` nearest training codes (a seeded sample of at most
        :data:`MAX_CODE_ROWS` training rows is kept; training rows are scored leaving their
        own code out), both z-scored on the training rows. A row the network reconstructs
        well but whose code lies where no training code does is then flagged too. ``0``:
        the reconstruction error alone. Not with ``partial_fit``, a streamed fit or ONNX
        export.
    code_weight : float > 0, default=1.0
        Weight of the z-scored code distance against the z-scored reconstruction error
        (``code_neighbors > 0`` only; unitless). On MNIST one-vs-rest ``code_neighbors=2,
        code_weight=3`` was chosen leave-one-digit-out (benchmarks/code_space.py).
    contamination : float in (0, 0.5], "auto" or None, default=None
        See :class:`anomalia.base.BaseDetector`.
    random_state : int or None, default=None
        Seed for weights, shuffling, validation split and noise; results repeat on CPU.
    verbose : bool, default=False
        Show a progress bar with the epoch and train/validation loss.

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained network (eval mode).
    history_ : dict of list of float
        Per-epoch ``train_loss``, ``val_loss``, ``epoch_seconds`` of the latest training
        (``fit``, or the latest ``partial_fit``: no ``val_loss`` there).
    n_epochs_ : int
        Epochs the latest training ran.
    stopped_epoch_ : int or None
        The epoch (from 1) at which early stopping ended ``fit``, keeping the weights of
        ``patience`` epochs before; None when it ran all ``epochs`` (and after
        ``partial_fit``, which never stops early). ``verbose=True`` prints the message of
        :func:`anomalia.training.stop_message`, and the ``anomalia.training`` logger logs it.
    n_updates_ : int
        ``partial_fit`` calls since ``fit``.
    optimizer_steps_, optimizer_exp_avg_, optimizer_exp_avg_sq_ : ndarray
        The AdamW state ``partial_fit`` continues from (see
        :func:`anomalia.training.optimizer_arrays`).
    threshold_ : float
        Anomaly-score threshold.
    input_shift_, input_scale_ : ndarray
        Input scaling fitted on the training data.
    image_shape_ : tuple or None
        (C, H, W) of the training images, None for tables.
    bottleneck_ : int
        The code size used.
    batch_size_ : int
        The batch size used.
    code_reference_ : ndarray of shape (n_kept, code size), float32
        Training codes that ``code_neighbors > 0`` compares with (absent otherwise).
    code_scaling_ : ndarray of shape (4,)
        Mean and standard deviation of the training rows' reconstruction errors and code
        distances, which z-score the two terms (``code_neighbors > 0`` only).
    activation_ : str
        The activation used.
    n_features_in_ : int
        Number of features (values per image) seen during fit.

    Examples
    --------
    >>> import numpy as np
    >>> from anomalia.detectors.autoencoder import AEDetector
    >>> X = np.random.default_rng(0).normal(size=(300, 4))
    >>> det = AEDetector(epochs=5, random_state=0).fit(X)
    >>> det.anomaly_score([[0, 0, 0, 0], [9, -9, 9, -9]]).argmax()
    np.int64(1)
    """

    name = "ae"

    def __init__(
        self,
        *,
        hidden: tuple[int, ...] = (64, 32),
        channels: tuple[int, ...] = (32, 64),
        bottleneck: int | str = "auto",
        activation: str = "auto",
        dropout: float = 0.0,
        batch_norm: bool = False,
        noise: float = 0.0,
        noise_kind: str = "gaussian",
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        epochs: int = 100,
        update_epochs: int = 5,
        batch_size: int | str = "auto",
        validation_fraction: float = 0.1,
        patience: int | None = 10,
        robust: bool = False,
        robust_fraction: float = 0.05,
        warmup_epochs: int = 5,
        standardize: bool = True,
        architecture: str = "auto",
        image_shape: tuple[int, ...] | None = None,
        code_neighbors: int = 0,
        code_weight: float = 1.0,
        contamination: float | str | None = None,
        random_state: int | None = None,
        verbose: bool = False,
    ) -> None:
        _common_init(self, **{k: v for k, v in locals().items() if k != "self"})

    # -- scoring in code space too (code_neighbors > 0) --------------------------------------
    def _check_params(self) -> None:
        super()._check_params()
        check_int("code_neighbors", self.code_neighbors, minimum=0)
        if not isinstance(self.batch_norm, bool | np.bool_):
            raise ValueError(f"batch_norm must be True or False, got {self.batch_norm!r}")
        w = self.code_weight
        if isinstance(w, bool) or not isinstance(w, int | float) or not 0 < w < float("inf"):
            raise ValueError(f"code_weight must be a finite number > 0, got {w!r}")

    def _fit(self, X: NDArray[np.float64]) -> NDArray[np.float64] | None:
        super()._fit(X)
        if not self.code_neighbors:
            return None
        rng = np.random.default_rng(self.seed_)
        keep = np.sort(rng.choice(len(X), min(len(X), MAX_CODE_ROWS), replace=False))
        if len(keep) <= self.code_neighbors:
            raise DataError(
                f"code_neighbors={self.code_neighbors} needs more training rows than that; "
                f"got {len(keep)}"
            )
        both = self._batched(X, lambda x: self._score_and_codes(x, flat=True))
        recon, codes = both[:, 0].double(), both[:, 1:]
        self.code_reference_ = codes[keep].numpy()
        near = self._code_distance(codes, skip_self=torch.from_numpy(keep)).double()
        self.code_scaling_ = np.array(
            [recon.mean(), _positive(recon.std()), near.mean(), _positive(near.std())]
        )
        return self._combined(recon, near).numpy()

    def _code_distance(
        self, codes: torch.Tensor, skip_self: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean Euclidean distance of each code to its ``code_neighbors`` nearest reference
        codes; with ``skip_self`` (the reference rows' positions in ``codes``), those rows
        leave themselves out. Blocked so a block's distances stay near 64 MiB."""
        ref = torch.from_numpy(self.code_reference_)
        k, block = self.code_neighbors, max(1, (1 << 24) // max(len(ref), 1))
        self_pos = torch.full((len(codes),), -1, dtype=torch.long)
        if skip_self is not None:
            self_pos[skip_self] = torch.arange(len(skip_self))
        out = []
        for i in range(0, len(codes), block):
            d = torch.cdist(codes[i : i + block].float(), ref)
            rows = torch.nonzero(self_pos[i : i + block] >= 0).reshape(-1)
            d[rows, self_pos[i : i + block][rows]] = torch.inf  # its own code
            out.append(d.topk(k, dim=1, largest=False).values.mean(dim=1))
        return torch.cat(out)

    def _score_and_codes(self, x: torch.Tensor, *, flat: bool = False) -> Any:
        """Reconstruction error and codes of a batch from one encoder pass; ``flat``: as one
        float32 tensor, the error in column 0 (what :meth:`_batched` concatenates)."""
        recon, codes = self.module_.score_and_codes(x)
        codes = codes.reshape(len(x), -1).float()
        return torch.cat([recon.float()[:, None], codes], dim=1) if flat else (recon, codes)

    def _combined(self, recon: torch.Tensor, near: torch.Tensor) -> torch.Tensor:
        c = self.code_scaling_
        return (recon - c[0]) / c[1] + self.code_weight * (near - c[2]) / c[3]

    def _model_score(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if not self.code_neighbors:
            return self.module_.score(x)
        recon, codes = self._score_and_codes(x)
        return self._combined(recon.double(), self._code_distance(codes).double())

    def _partial_fit(self, X: NDArray[np.float64]) -> None:
        self._refuse_with_codes("partial_fit")
        super()._partial_fit(X)

    def _check_streamable(self) -> None:
        self._refuse_with_codes("a streamed fit")

    def _refuse_with_codes(self, what: str) -> None:
        if self.code_neighbors:
            raise DataError(
                f"{what} cannot keep code_neighbors={self.code_neighbors}: the training codes "
                "it compares with would go stale as the network learns; fit on the rows in "
                "memory (or a sample of them), or use code_neighbors=0"
            )

    def _check_restored(self) -> None:
        super()._check_restored()
        if not self.code_neighbors:
            return
        ref, c = getattr(self, "code_reference_", None), getattr(self, "code_scaling_", None)
        if (
            not isinstance(ref, np.ndarray)
            or ref.dtype != np.float32
            or ref.ndim != 2
            or not self.code_neighbors < len(ref) <= MAX_CODE_ROWS
            or not np.isfinite(ref).all()
        ):
            raise ModelFileError(
                "code_reference_ must be finite float32 training codes, one row per code, "
                f"more than code_neighbors and at most {MAX_CODE_ROWS} rows (edited file?)"
            )
        if (
            not isinstance(c, np.ndarray)
            or c.shape != (4,)
            or not np.isfinite(c).all()
            or not (c[[1, 3]] > 0).all()
        ):
            raise ModelFileError("code_scaling_ must be 4 finite numbers, scales > 0")
        width = self._batched(np.zeros((1, self.n_features_in_)), self._encode).reshape(1, -1)
        if width.shape[1] != ref.shape[1]:
            raise ModelFileError(
                f"code_reference_ holds codes of {ref.shape[1]} values, the network's are "
                f"{width.shape[1]} (edited file?)"
            )

    def _build_module(self) -> torch.nn.Module:
        if self.architecture_ == "conv":
            c, h, w = self.image_shape_
            code = 16 if self.bottleneck == "auto" else self.bottleneck_
            return models.ConvAE(
                c, h, w, channels=self.channels, bottleneck=code, activation=self.activation_
            )
        return models.DenseAE(
            self.n_features_in_,
            hidden=self.hidden,
            bottleneck=self.bottleneck_,
            activation=self.activation_,
            dropout=self.dropout,
            batch_norm=self.batch_norm,
        )


class VAEDetector(_AutoEncoderBase):
    """Variational auto-encoder; anomaly score = negative ELBO or Monte-Carlo reconstruction.

    A Gaussian encoder q(z|x) = N(mu, sigma^2), the reparameterisation trick, a unit-variance
    Gaussian decoder and a KL term to N(0, I) weighted by ``beta``. Scores are repeatable:
    ``score_method="elbo"`` uses z = mu (deterministic); ``score_method="mc"`` averages the negative
    log-likelihood over ``n_mc_samples`` draws from a generator seeded by the model, so two
    calls on the same input give identical scores. :meth:`sample` draws new data.

    Parameters
    ----------
    beta : float, default=1.0
        Weight of the KL term (beta-VAE); larger values give smoother, more regular codes.
    score_method : {"elbo", "mc"}, default="elbo"
        Anomaly score: negative ELBO at the posterior mean, or Monte-Carlo reconstruction
        probability (negative mean log-likelihood over posterior draws).
    n_mc_samples : int, default=10
        Posterior draws for ``score_method="mc"``.
    hidden, channels, bottleneck, activation, dropout, noise, noise_kind, lr, weight_decay,
    epochs, update_epochs, batch_size, validation_fraction, patience, robust, robust_fraction,
    warmup_epochs, standardize, architecture, image_shape, contamination, random_state, verbose
        As in :class:`AEDetector`.

    Attributes
    ----------
    module_, history_, threshold_, input_shift_, input_scale_, image_shape_, bottleneck_,
    n_features_in_
        As in :class:`AEDetector`.
    """

    name = "vae"

    def __init__(
        self,
        *,
        hidden: tuple[int, ...] = (64, 32),
        channels: tuple[int, ...] = (32, 64),
        bottleneck: int | str = "auto",
        activation: str = "auto",
        dropout: float = 0.0,
        beta: float = 1.0,
        score_method: str = "elbo",
        n_mc_samples: int = 10,
        noise: float = 0.0,
        noise_kind: str = "gaussian",
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        epochs: int = 100,
        update_epochs: int = 5,
        batch_size: int | str = "auto",
        validation_fraction: float = 0.1,
        patience: int | None = 10,
        robust: bool = False,
        robust_fraction: float = 0.05,
        warmup_epochs: int = 5,
        standardize: bool = True,
        architecture: str = "auto",
        image_shape: tuple[int, ...] | None = None,
        contamination: float | str | None = None,
        random_state: int | None = None,
        verbose: bool = False,
    ) -> None:
        _common_init(self, **{k: v for k, v in locals().items() if k != "self"})

    def _check_params(self) -> None:
        super()._check_params()
        check_option("score_method", self.score_method, ("elbo", "mc"))
        check_int("n_mc_samples", self.n_mc_samples)
        check_fraction("beta", self.beta, low=0.0, high=np.inf, low_inclusive=True)

    def _build_module(self) -> torch.nn.Module:
        if self.architecture_ == "conv":
            c, h, w = self.image_shape_
            code = 16 if self.bottleneck == "auto" else self.bottleneck_
            return models.ConvVAE(
                c,
                h,
                w,
                channels=self.channels,
                bottleneck=code,
                activation=self.activation_,
                beta=self.beta,
            )
        return models.DenseVAE(
            self.n_features_in_,
            hidden=self.hidden,
            bottleneck=self.bottleneck_,
            activation=self.activation_,
            dropout=self.dropout,
            beta=self.beta,
        )

    def _model_score(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return self.module_.score(
            x, method=self.score_method, n_samples=self.n_mc_samples, generator=generator
        )

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.module_.encode(x)[0]  # the posterior mean

    def sample(self, n_samples: int = 1, random_state: int | None = None) -> NDArray[np.float64]:
        """Draw ``n_samples`` new records (or images) from the decoder, in original units.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples.
        random_state : int or None, default=None
            Seed of the prior draws.

        Returns
        -------
        ndarray of shape (n_samples, n_features) or (n_samples, C, H, W)
        """
        check_is_fitted(self)
        n = check_int("n_samples", n_samples)
        gen = torch.Generator().manual_seed(seed_from(random_state))
        with torch.inference_mode():
            out = self.module_.sample(n, generator=gen)
        return self._untensor(out, 4 if self.image_shape_ is not None else 2)


class VQVAEDetector(_AutoEncoderBase):
    """VQ-VAE: a discrete codebook bottleneck; anomaly score = reconstruction error.

    The encoder's output vectors are replaced by their nearest codebook entries (gradients
    pass straight through); the codebook follows the encoder by exponential moving averages,
    and codes unused for a while are restarted on encoder outputs so the whole codebook is
    used. With ``score_method="recon+rarity"`` the score adds ``rarity_weight`` times the mean
    surprise ``-log p(code)`` of the row's codes under their training frequencies.

    Parameters
    ----------
    n_codes : int, default=64
        Codebook size.
    code_dim : int, default=8
        Dimension of each code vector.
    n_latents : int, default=4
        Code vectors per row or image.
    spatial_codes : bool, default=False
        Images only: quantise every position of the last feature map instead (``codes``
        then returns an (n, h, w) map of the code each image patch uses). Local codes can
        rebuild unseen shapes from familiar strokes, so keep False to score anomalies.
    commitment : float, default=0.25
        Weight of the commitment loss pulling encoder outputs to their codes.
    decay : float, default=0.99
        EMA decay of the codebook updates.
    score_method : {"recon", "recon+rarity"}, default="recon"
        Anomaly score.
    rarity_weight : float, default=0.1
        Weight of the code-rarity term with ``score_method="recon+rarity"``.
    hidden, channels, activation, dropout, noise, noise_kind, lr, weight_decay, epochs,
    update_epochs, batch_size, validation_fraction, patience, robust, robust_fraction,
    warmup_epochs, standardize, architecture, image_shape, contamination, random_state, verbose
        As in :class:`AEDetector`.

    Attributes
    ----------
    code_log_prob_ : ndarray of shape (n_codes,)
        Log-frequency of each code on the training data (smoothed).
    perplexity_ : float
        Codebook perplexity on the training data (effective number of codes used).
    code_usage_ : ndarray of shape (n_codes,), int64
        How many code vectors of the training data use each code (the usage histogram).
    module_, history_, threshold_, input_shift_, input_scale_, image_shape_, n_features_in_
        As in :class:`AEDetector`.
    """

    name = "vqvae"

    def __init__(
        self,
        *,
        n_codes: int = 64,
        code_dim: int = 8,
        n_latents: int = 4,
        spatial_codes: bool = False,
        commitment: float = 0.25,
        decay: float = 0.99,
        score_method: str = "recon",
        rarity_weight: float = 0.1,
        hidden: tuple[int, ...] = (64, 32),
        channels: tuple[int, ...] = (32, 64),
        activation: str = "auto",
        dropout: float = 0.0,
        noise: float = 0.0,
        noise_kind: str = "gaussian",
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        epochs: int = 100,
        update_epochs: int = 5,
        batch_size: int | str = "auto",
        validation_fraction: float = 0.1,
        patience: int | None = 10,
        robust: bool = False,
        robust_fraction: float = 0.05,
        warmup_epochs: int = 5,
        standardize: bool = True,
        architecture: str = "auto",
        image_shape: tuple[int, ...] | None = None,
        contamination: float | str | None = None,
        random_state: int | None = None,
        verbose: bool = False,
    ) -> None:
        _common_init(self, **{k: v for k, v in locals().items() if k != "self"})

    def _check_params(self) -> None:
        super()._check_params()
        check_int("n_codes", self.n_codes, minimum=2)
        check_int("code_dim", self.code_dim)
        check_int("n_latents", self.n_latents)
        check_option("score_method", self.score_method, ("recon", "recon+rarity"))

    def _build_module(self) -> torch.nn.Module:
        if self.architecture_ == "conv":
            c, h, w = self.image_shape_
            return models.ConvVQVAE(
                c,
                h,
                w,
                channels=self.channels,
                n_codes=self.n_codes,
                code_dim=self.code_dim,
                commitment=self.commitment,
                decay=self.decay,
                activation=self.activation_,
                n_latents=None if self.spatial_codes else self.n_latents,
            )
        return models.DenseVQVAE(
            self.n_features_in_,
            hidden=self.hidden,
            n_latents=self.n_latents,
            n_codes=self.n_codes,
            code_dim=self.code_dim,
            commitment=self.commitment,
            decay=self.decay,
            activation=self.activation_,
            dropout=self.dropout,
        )

    def _fitted_on(self, X: NDArray[np.float64]) -> None:
        self._code_statistics(X)

    def _partial_fit(self, X: NDArray[np.float64]) -> None:
        super()._partial_fit(X)
        self._code_statistics(X)  # of the latest batch, as the threshold

    def _code_statistics(self, X: NDArray[np.float64]) -> None:
        codes = self._batched(X, self.module_.codes).reshape(-1)
        counts = torch.bincount(codes, minlength=self.n_codes).double().numpy()
        self.code_usage_ = counts.astype(np.int64)
        self.code_log_prob_ = np.log((counts + 1.0) / (counts.sum() + self.n_codes))
        self.perplexity_ = float(self.module_.quantizer.perplexity(codes))

    def _model_score(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        recon = self.module_.score(x)
        if self.score_method == "recon":
            return recon
        surprise = -torch.from_numpy(self.code_log_prob_).to(recon.dtype)[self.module_.codes(x)]
        return recon + self.rarity_weight * surprise.reshape(len(x), -1).mean(dim=1)

    def codes(self, X: ArrayLike) -> NDArray[np.int64]:
        """Code indices of each row, shape (n_samples, number of code vectors per row)."""
        Xv, _ = self._checked(X)
        codes = self._batched(Xv, self.module_.codes)
        return codes.reshape(len(codes), -1).numpy().astype(np.int64)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.module_.quantizer.lookup(self.module_.codes(x))

    def decode_codes(self, indices: ArrayLike) -> NDArray[np.float64]:
        """Decode code indices, as returned by :meth:`codes`, to rows or images.

        Parameters
        ----------
        indices : array-like of int, shape (n_samples, code vectors per row)
            Codebook indices in [0, n_codes).

        Returns
        -------
        ndarray of shape (n_samples, n_features) or (n_samples, C, H, W)
            Decoded rows in the original units, or images of the model's ``image_shape_``;
            ``decode_codes(codes(X))`` equals ``reconstruct(X)``.
        """
        check_is_fitted(self)
        shape = self._code_shape()[:-1]  # positions; the last axis is the code vector
        idx = check_array(indices, dtype=None, input_name="indices")
        if idx.dtype.kind not in "iu":
            raise DataError(f"code indices must be integers; got dtype {idx.dtype}")
        if idx.shape[1] != math.prod(shape):
            raise DataError(
                f"indices must have {math.prod(shape)} codes per row (this model's code "
                f"vectors per row); got {idx.shape[1]}"
            )
        n_codes = self.module_.quantizer.n_codes
        if idx.min() < 0 or idx.max() >= n_codes:
            raise DataError(
                f"code indices must lie in [0, {n_codes}); got {idx.min()}..{idx.max()}"
            )
        t = torch.from_numpy(idx.astype(np.int64)).reshape(len(idx), *shape)
        return self._decode(self.module_.quantizer.lookup(t))
