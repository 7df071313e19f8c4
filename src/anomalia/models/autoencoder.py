"""Deterministic auto-encoders scored by their reconstruction error."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anomalia.models.mlp import check_positive_int, check_sizes, mlp

__all__ = ["AutoEncoder", "DenseAE", "row_mean", "row_sum", "squared_error", "weighted_mean"]


def squared_error(prediction: Tensor, target: Tensor) -> Tensor:
    """Return ``(prediction - target) ** 2`` elementwise, in one fused kernel.

    Raises
    ------
    ValueError
        If the shapes differ (no broadcasting).
    """
    if prediction.shape != target.shape:
        raise ValueError(
            f"target must have shape {tuple(prediction.shape)}, got {tuple(target.shape)}"
        )
    return F.mse_loss(prediction, target, reduction="none")


def row_mean(values: Tensor) -> Tensor:
    """Mean over every dimension but the first: ``(n, ...) -> (n,)``."""
    return values.flatten(1).mean(1)


def row_sum(values: Tensor) -> Tensor:
    """Sum over every dimension but the first: ``(n, ...) -> (n,)``."""
    return values.flatten(1).sum(1)


def weighted_mean(values: Tensor, weight: Tensor | None = None) -> Tensor:
    """Return the (weighted) mean of per-sample ``values``.

    Parameters
    ----------
    values : Tensor of shape (n,)
        One loss value per sample.
    weight : Tensor of shape (n,), optional
        Non-negative per-sample weights. ``None`` gives the plain mean. Rows with weight
        ``0`` do not count at all; if every weight is ``0`` the result is ``0``.

    Returns
    -------
    Tensor
        A scalar, ``sum(weight * values) / sum(weight)``.

    Raises
    ------
    ValueError
        If ``weight`` does not have the shape of ``values``.
    """
    if weight is None:
        return values.mean()
    if weight.shape != values.shape:
        raise ValueError(f"weight must have shape {tuple(values.shape)}, got {tuple(weight.shape)}")
    weight = weight.to(values.dtype)
    return (values * weight).sum() / weight.sum().clamp_min(torch.finfo(values.dtype).tiny)


class AutoEncoder(nn.Module):
    """An encoder/decoder pair trained and scored by mean squared reconstruction error.

    The base of :class:`DenseAE` and :class:`~anomalia.models.conv.ConvAE`; it works for
    any input shape ``(n, ...)`` as long as ``decoder(encoder(x))`` has the shape of ``x``.

    Parameters
    ----------
    encoder : torch.nn.Module
        Maps a batch ``x`` to codes ``z``.
    decoder : torch.nn.Module
        Maps codes back to the input space (linear output).
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def encode(self, x: Tensor) -> Tensor:
        """Return the codes of ``x``."""
        out: Tensor = self.encoder(x)
        return out

    def decode(self, z: Tensor) -> Tensor:
        """Return the reconstruction decoded from codes ``z``."""
        out: Tensor = self.decoder(z)
        return out

    def forward(self, x: Tensor) -> Tensor:
        """Return the reconstruction of ``x`` (same shape as ``x``)."""
        return self.decode(self.encode(x))

    def loss(
        self,
        x: Tensor,
        target: Tensor | None = None,
        weight: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Return the mean squared error of the reconstruction of ``x`` against ``target``.

        Parameters
        ----------
        x : Tensor of shape (n, ...)
            Input batch (possibly corrupted, for denoising).
        target : Tensor of shape (n, ...), optional
            What the reconstruction should match; defaults to ``x``.
        weight : Tensor of shape (n,), optional
            Per-sample weights; the loss is the weighted mean of the per-sample errors.
        generator : torch.Generator, optional
            Unused: this model draws no random numbers. Accepted so that every model
            shares the signature used by :func:`anomalia.training.train`.

        Returns
        -------
        Tensor
            A scalar.
        """
        target = x if target is None else target
        return weighted_mean(row_mean(squared_error(self(x), target)), weight)

    def feature_errors(self, x: Tensor) -> Tensor:
        """Return the squared reconstruction error of every entry, shape of ``x``."""
        return squared_error(self(x), x)

    def per_sample_error(self, x: Tensor) -> Tensor:
        """Return the mean squared reconstruction error of each row, shape ``(n,)``."""
        return row_mean(self.feature_errors(x))

    def per_sample_loss(self, x: Tensor) -> Tensor:
        """Return the training loss of each row, shape ``(n,)`` (the per-sample error)."""
        return self.per_sample_error(x)

    def score(self, x: Tensor) -> Tensor:
        """Return the anomaly score of each row (higher is more anomalous), shape ``(n,)``.

        The mean squared reconstruction error; call it in ``eval()`` mode (and under
        ``torch.inference_mode()``) for deterministic, fast scores.
        """
        return self.per_sample_error(x)

    def score_and_codes(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return :meth:`score` of each row and its codes, from one pass of the encoder."""
        z = self.encode(x)
        return row_mean(squared_error(self.decode(z), x)), z


class DenseAE(AutoEncoder):
    """A fully connected auto-encoder for tabular rows ``(n, n_features)``.

    The encoder maps ``n_features -> *hidden -> bottleneck`` with no activation on the
    code; the decoder mirrors it back to ``n_features`` with a linear output.

    Parameters
    ----------
    n_features : int
        Number of input columns.
    hidden : sequence of int, default=(64, 32)
        Widths of the encoder's hidden layers (the decoder uses them reversed).
    bottleneck : int, default=8
        Size of the code.
    activation : str, default="relu"
        Hidden activation, see :data:`anomalia.models.mlp.ACTIVATIONS`.
    dropout : float, default=0.0
        Dropout after every hidden activation.
    batch_norm : bool, default=False
        Batch normalisation before every hidden activation (see :func:`~anomalia.models.mlp`).

    Examples
    --------
    >>> import torch
    >>> model = DenseAE(5, hidden=(16,), bottleneck=2)
    >>> model.score(torch.zeros(3, 5)).shape
    torch.Size([3])
    """

    def __init__(
        self,
        n_features: int,
        hidden: Sequence[int] = (64, 32),
        bottleneck: int = 8,
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        widths = check_sizes("hidden", hidden)
        check_positive_int("n_features", n_features)
        check_positive_int("bottleneck", bottleneck)
        super().__init__(
            mlp([n_features, *widths, bottleneck], activation, dropout, batch_norm=batch_norm),
            mlp([bottleneck, *reversed(widths), n_features], activation, dropout,
                batch_norm=batch_norm),
        )  # fmt: skip
