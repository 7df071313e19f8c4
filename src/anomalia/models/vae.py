"""Variational auto-encoders with a Gaussian encoder and a unit-variance Gaussian decoder."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from anomalia.models.autoencoder import row_mean, row_sum, squared_error, weighted_mean
from anomalia.models.mlp import check_positive_int, check_sizes, mlp

__all__ = ["LOGVAR_RANGE", "SCORE_METHODS", "DenseVAE", "VariationalAutoEncoder"]

LOGVAR_RANGE: tuple[float, float] = (-10.0, 10.0)
"""The encoder's log-variance is clamped to this range (std from about 0.007 to 150)."""

SCORE_METHODS: tuple[str, ...] = ("elbo", "mc")
"""Accepted values of ``method`` in :meth:`VariationalAutoEncoder.score`."""

_LOG_2PI = math.log(2 * math.pi)


def check_beta(beta: float) -> float:
    """Return ``beta`` if it is a finite number >= 0, else raise ValueError."""
    if isinstance(beta, bool) or not isinstance(beta, int | float) or not 0 <= beta < math.inf:
        raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
    return float(beta)


class VariationalAutoEncoder(nn.Module):
    """A VAE: Gaussian encoder ``q(z|x)``, decoder ``p(x|z) = N(decoder(z), I)``, prior N(0, I).

    The base of :class:`DenseVAE` and :class:`~anomalia.models.conv.ConvVAE`; inputs may
    have any shape ``(n, ...)``. With a unit-variance decoder the negative ELBO is, up to
    the constant ``0.5 * D * log(2 pi)``, ``0.5 * ||x - decoder(z)||^2 + beta * KL``.

    Parameters
    ----------
    encoder : torch.nn.Module
        Maps ``x`` to ``(n, 2 * latent_dim)``: the mean, then the log-variance.
    decoder : torch.nn.Module
        Maps ``(n, latent_dim)`` back to the input shape (the decoder mean).
    latent_dim : int
        Size of the latent code.
    beta : float, default=1.0
        Weight of the KL term (beta-VAE); ``1`` is the proper ELBO.
    """

    def __init__(
        self, encoder: nn.Module, decoder: nn.Module, latent_dim: int, beta: float = 1.0
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        self.beta = check_beta(beta)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return the mean and the clamped log-variance of ``q(z|x)``, each ``(n, latent_dim)``."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(*LOGVAR_RANGE)

    def decode(self, z: Tensor) -> Tensor:
        """Return the decoder mean for codes ``z`` of shape ``(n, latent_dim)``."""
        out: Tensor = self.decoder(z)
        return out

    def forward(self, x: Tensor) -> Tensor:
        """Return the deterministic reconstruction ``decode(mu(x))``, in any mode."""
        return self.decode(self.encode(x)[0])

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Decode ``n`` draws from the prior N(0, I) (decoder means, without output noise).

        Parameters
        ----------
        n : int
            Number of samples.
        generator : torch.Generator, optional
            Source of the draws (on the model's device); ``None`` uses torch's global RNG.

        Returns
        -------
        Tensor of shape (n, ...)
            Samples in the input space.
        """
        ref = next(self.decoder.parameters())
        z = torch.randn(
            (n, self.latent_dim), generator=generator, device=ref.device, dtype=ref.dtype
        )
        return self.decode(z)

    def _kl(self, mu: Tensor, logvar: Tensor) -> Tensor:
        """KL(q(z|x) || N(0, I)) per sample, shape ``(n,)``."""
        return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(1)

    def loss_parts(
        self,
        x: Tensor,
        target: Tensor | None = None,
        weight: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Return the (weighted) batch means of the two ELBO terms, with one draw of ``z``.

        Parameters
        ----------
        x : Tensor of shape (n, ...)
            Input batch (possibly corrupted, for denoising).
        target : Tensor of shape (n, ...), optional
            What the decoder should reconstruct; defaults to ``x``.
        weight : Tensor of shape (n,), optional
            Per-sample weights for the means.
        generator : torch.Generator, optional
            Source of the reparameterisation noise; ``None`` uses torch's global RNG.

        Returns
        -------
        dict of str to Tensor
            ``"recon"``: ``0.5 * squared error`` summed over features (the negative
            log-likelihood up to a constant); ``"kl"``: the KL divergence to the prior, not
            multiplied by ``beta``. Both scalars; the loss is ``recon + beta * kl``.
        """
        target = x if target is None else target
        mu, logvar = self.encode(x)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        recon = self.decode(mu + eps * (0.5 * logvar).exp())
        return {
            "recon": weighted_mean(0.5 * row_sum(squared_error(recon, target)), weight),
            "kl": weighted_mean(self._kl(mu, logvar), weight),
        }

    def loss(
        self,
        x: Tensor,
        target: Tensor | None = None,
        weight: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Return the mean negative ELBO (up to a constant) with one reparameterised draw.

        The draw happens in train and eval mode alike; see :meth:`loss_parts` for the
        parameters. For a deterministic value use :meth:`per_sample_loss`.
        """
        parts = self.loss_parts(x, target, weight, generator)
        return parts["recon"] + self.beta * parts["kl"]

    def feature_errors(self, x: Tensor) -> Tensor:
        """Return the squared error of ``decode(mu)`` against ``x`` per entry, shape of ``x``."""
        return squared_error(self(x), x)

    def per_sample_error(self, x: Tensor) -> Tensor:
        """Return the mean squared error of ``decode(mu)`` per row, shape ``(n,)``."""
        return row_mean(self.feature_errors(x))

    def per_sample_loss(self, x: Tensor) -> Tensor:
        """Return the negative ELBO of each row with ``z = mu`` (deterministic), shape ``(n,)``."""
        return self.score(x, method="elbo")

    def score(
        self,
        x: Tensor,
        method: str = "elbo",
        n_samples: int = 1,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Return the anomaly score of each row (higher is more anomalous), shape ``(n,)``.

        Parameters
        ----------
        x : Tensor of shape (n, ...)
            Batch to score. Call in ``eval()`` mode so dropout is off.
        method : {"elbo", "mc"}, default="elbo"
            ``"elbo"``: negative ELBO with ``z = mu`` (``0.5 * squared error + beta * KL``,
            without the constant), deterministic. ``"mc"``: Monte-Carlo reconstruction
            score, the mean over ``n_samples`` draws ``z ~ q(z|x)`` of the full negative
            Gaussian log-likelihood ``0.5 * squared error + 0.5 * D * log(2 pi)``.
        n_samples : int, default=1
            Number of draws for ``"mc"``; ignored by ``"elbo"``.
        generator : torch.Generator, optional
            Source of the ``"mc"`` draws, on ``x``'s device. ``None`` uses a fresh generator
            seeded with 0, so scores are repeatable and the global RNG is left alone.

        Returns
        -------
        Tensor of shape (n,)
            The scores.

        Raises
        ------
        ValueError
            On an unknown ``method`` or ``n_samples < 1``.
        """
        if method not in SCORE_METHODS:
            raise ValueError(f"method must be one of {SCORE_METHODS}; got {method!r}")
        mu, logvar = self.encode(x)
        if method == "elbo":
            err = 0.5 * row_sum(squared_error(self.decode(mu), x))
            return err + self.beta * self._kl(mu, logvar)
        check_positive_int("n_samples", n_samples)
        if generator is None:
            generator = torch.Generator(device=x.device).manual_seed(0)
        std = (0.5 * logvar).exp()
        const = 0.5 * math.prod(x.shape[1:]) * _LOG_2PI
        total = torch.zeros(x.shape[0], device=x.device, dtype=mu.dtype)
        for _ in range(n_samples):
            eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
            total += 0.5 * row_sum(squared_error(self.decode(mu + eps * std), x))
        return total / n_samples + const


class DenseVAE(VariationalAutoEncoder):
    """A fully connected VAE for tabular rows ``(n, n_features)``.

    Parameters
    ----------
    n_features : int
        Number of input columns.
    hidden : sequence of int, default=(64, 32)
        Widths of the encoder's hidden layers (the decoder uses them reversed).
    bottleneck : int, default=8
        Size of the latent code.
    activation : str, default="relu"
        Hidden activation, see :data:`anomalia.models.mlp.ACTIVATIONS`.
    dropout : float, default=0.0
        Dropout after every hidden activation.
    beta : float, default=1.0
        Weight of the KL term.

    Examples
    --------
    >>> import torch
    >>> model = DenseVAE(5, hidden=(16,), bottleneck=2).eval()
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
        beta: float = 1.0,
    ) -> None:
        widths = check_sizes("hidden", hidden)
        check_positive_int("n_features", n_features)
        check_positive_int("bottleneck", bottleneck)
        super().__init__(
            mlp([n_features, *widths, 2 * bottleneck], activation, dropout),
            mlp([bottleneck, *reversed(widths), n_features], activation, dropout),
            latent_dim=bottleneck,
            beta=beta,
        )
