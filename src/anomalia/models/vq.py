"""Vector quantisation with an EMA codebook, and the VQ-VAE built on it."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anomalia.models.autoencoder import row_mean, squared_error, weighted_mean
from anomalia.models.mlp import check_positive_int, check_sizes, mlp

__all__ = ["DenseVQVAE", "VQAutoEncoder", "VectorQuantizer"]


def _sample_rows(n: int, k: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Return ``k`` row indices in ``[0, n)``: distinct when ``n >= k``, else with repeats."""
    if n >= k:
        return torch.randperm(n, generator=generator, device=device)[:k]
    return torch.randint(n, (k,), generator=generator, device=device)


def _check_real(name: str, value: float, low: float, high: float, *, closed: bool) -> float:
    """Return ``value`` if it lies in ``[low, high]`` (or ``(low, high)``), else raise."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    ok = ok and (low <= value <= high if closed else low < value < high)
    if not ok:
        interval = f"[{low}, {high}]" if closed else f"({low}, {high})"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
    return float(value)


class VectorQuantizer(nn.Module):
    """Nearest-neighbour vector quantisation with an EMA codebook and dead-code restarts.

    The layer quantises the last dimension of its input, so ``z`` has shape
    ``(..., code_dim)``: ``(n, code_dim)`` for one vector per row, ``(n, n_latents,
    code_dim)`` for several, or a conv feature map permuted to channels-last
    ``(n, H, W, code_dim)`` (the conv models do that permutation).

    The codebook gets no gradient. In train mode every forward pass:

    1. initialises the codebook from random rows of the first batch (once);
    2. assigns each vector to its nearest code (with the codebook before this update);
    3. updates exponential moving averages of the per-code counts and sums, and sets each
       code to their ratio (Laplace-smoothed counts);
    4. restarts dead codes, those whose EMA count falls below ``dead_code_threshold``, at
       random vectors of the current batch.

    In eval mode nothing changes. The codebook, the EMA counts and sums and the
    ``initialised`` flag are buffers, so they are saved in and restored from the
    ``state_dict``.

    Parameters
    ----------
    n_codes : int, default=64
        Number of code vectors.
    code_dim : int, default=8
        Size of each code vector (the last dimension of the input).
    commitment : float, default=0.25
        Weight of the commitment loss ``mean ||z - sg(q)||^2``, which pulls encoder outputs
        towards their codes.
    decay : float, default=0.99
        EMA decay in ``(0, 1)``; smaller adapts faster.
    eps : float, default=1e-5
        Laplace smoothing of the EMA counts, in ``(0, 1)``.
    dead_code_threshold : float, default=1.0
        A code whose EMA count (assignments per batch) falls below this is restarted;
        ``0`` disables restarts. Keep ``batch vectors / n_codes`` well above it, otherwise
        every code counts as dead.

    Raises
    ------
    ValueError
        On an option out of range.

    Examples
    --------
    >>> import torch
    >>> vq = VectorQuantizer(n_codes=4, code_dim=2)
    >>> q, codes, commit = vq(torch.randn(10, 2, generator=torch.Generator().manual_seed(0)))
    >>> q.shape, codes.shape, commit.shape
    (torch.Size([10, 2]), torch.Size([10]), torch.Size([]))
    """

    codebook: Tensor
    cluster_size: Tensor
    embed_sum: Tensor
    initialised: Tensor

    def __init__(
        self,
        n_codes: int = 64,
        code_dim: int = 8,
        commitment: float = 0.25,
        decay: float = 0.99,
        eps: float = 1e-5,
        dead_code_threshold: float = 1.0,
    ) -> None:
        super().__init__()
        self.n_codes = check_positive_int("n_codes", n_codes)
        self.code_dim = check_positive_int("code_dim", code_dim)
        self.commitment = _check_real("commitment", commitment, 0.0, 1e6, closed=True)
        self.decay = _check_real("decay", decay, 0.0, 1.0, closed=False)
        self.eps = _check_real("eps", eps, 0.0, 1.0, closed=False)
        self.dead_code_threshold = _check_real(
            "dead_code_threshold", dead_code_threshold, 0.0, 1e12, closed=True
        )
        self.register_buffer("codebook", torch.zeros(n_codes, code_dim))
        self.register_buffer("cluster_size", torch.zeros(n_codes))
        self.register_buffer("embed_sum", torch.zeros(n_codes, code_dim))
        self.register_buffer("initialised", torch.tensor(False))

    def extra_repr(self) -> str:
        """Summarise the options."""
        return (
            f"n_codes={self.n_codes}, code_dim={self.code_dim}, commitment={self.commitment}, "
            f"decay={self.decay}, dead_code_threshold={self.dead_code_threshold}"
        )

    def _flat(self, z: Tensor) -> Tensor:
        if z.shape[-1] != self.code_dim:
            raise ValueError(
                f"expected vectors of size code_dim={self.code_dim} in the last dimension, "
                f"got shape {tuple(z.shape)}"
            )
        return z.detach().reshape(-1, self.code_dim)

    def _nearest_flat(self, flat: Tensor) -> Tensor:
        # argmin ||f - c||^2 = argmin (||c||^2 - 2 f.c); ||f||^2 is the same for every code.
        cb = self.codebook
        return torch.addmm(cb.square().sum(1), flat, cb.t(), alpha=-2.0).argmin(1)

    def nearest(self, z: Tensor) -> Tensor:
        """Return the index of the nearest code of each vector, shape ``z.shape[:-1]``.

        Never updates the codebook, in any mode.
        """
        with torch.no_grad():
            return self._nearest_flat(self._flat(z)).view(z.shape[:-1])

    def lookup(self, codes: Tensor) -> Tensor:
        """Return the code vectors of integer ``codes``, shape ``(*codes.shape, code_dim)``."""
        return F.embedding(codes, self.codebook)

    def perplexity(self, codes: Tensor) -> Tensor:
        """Return ``exp(entropy)`` of the code usage in ``codes`` (a 0-d float tensor).

        It ranges from 1 (one code used) to ``n_codes`` (all used equally often).
        """
        counts = torch.bincount(codes.reshape(-1), minlength=self.n_codes).to(self.codebook)
        p = counts / counts.sum().clamp_min(1.0)
        return torch.exp(-torch.special.xlogy(p, p).sum())

    @torch.no_grad()
    def _initialise(
        self, flat: Tensor, w: Tensor | None, generator: torch.Generator | None
    ) -> None:
        rows = flat if w is None else flat[w > 0]
        if rows.shape[0] == 0:
            rows = flat
        self.codebook.copy_(rows[_sample_rows(rows.shape[0], self.n_codes, generator, flat.device)])
        self.cluster_size.fill_(flat.shape[0] / self.n_codes)
        self.embed_sum.copy_(self.codebook * self.cluster_size[:, None])
        self.initialised.fill_(True)

    @torch.no_grad()
    def _update(
        self, flat: Tensor, codes: Tensor, w: Tensor | None, generator: torch.Generator | None
    ) -> None:
        onehot = F.one_hot(codes, self.n_codes).to(flat.dtype)
        if w is not None:
            onehot = onehot * w[:, None]
        self.cluster_size.lerp_(onehot.sum(0), 1.0 - self.decay)
        self.embed_sum.lerp_(onehot.t() @ flat, 1.0 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + self.n_codes * self.eps) * total
        self.codebook.copy_(self.embed_sum / smoothed[:, None])
        if self.dead_code_threshold <= 0:
            return
        dead = (self.cluster_size < self.dead_code_threshold).nonzero().squeeze(1)
        if dead.numel() == 0:
            return
        rows = flat if w is None else flat[w > 0]
        if rows.shape[0] == 0:
            return
        fresh = rows[_sample_rows(rows.shape[0], dead.numel(), generator, flat.device)]
        reset = max(flat.shape[0] / self.n_codes, self.dead_code_threshold)
        self.codebook[dead] = fresh
        self.cluster_size[dead] = reset
        self.embed_sum[dead] = fresh * reset

    def forward(
        self,
        z: Tensor,
        *,
        weight: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Quantise ``z``; in train mode also update the codebook.

        Parameters
        ----------
        z : Tensor of shape (..., code_dim)
            Encoder outputs.
        weight : Tensor of shape z.shape[:-1], optional
            Per-vector weights: for the commitment loss, the EMA statistics and the choice
            of restart vectors (weight-0 vectors do not move the codebook at all).
        generator : torch.Generator, optional
            Source of the random rows used for initialisation and restarts; ``None`` uses
            torch's global RNG.

        Returns
        -------
        quantized : Tensor of shape z.shape
            The code vectors, with a straight-through gradient to ``z`` when ``z`` needs one.
        codes : Tensor of shape z.shape[:-1], dtype long
            Index of the code of each vector.
        commit_loss : Tensor
            Scalar, ``commitment * (weighted) mean ||z - sg(quantized)||^2 / code_dim``.
        """
        flat = self._flat(z)
        w = None
        if weight is not None:
            if weight.shape != z.shape[:-1]:
                raise ValueError(
                    f"weight must have shape {tuple(z.shape[:-1])}, got {tuple(weight.shape)}"
                )
            w = weight.detach().reshape(-1).to(flat.dtype)
        if self.training and not bool(self.initialised):
            self._initialise(flat, w, generator)
        codes = self._nearest_flat(flat)
        quantized = self.lookup(codes).view(z.shape)
        if self.training:
            self._update(flat, codes, w, generator)
        commit = self.commitment * weighted_mean((z - quantized).square().mean(-1).reshape(-1), w)
        if torch.is_grad_enabled() and z.requires_grad:
            quantized = z + (quantized - z).detach()
        return quantized, codes.view(z.shape[:-1]), commit


class VQAutoEncoder(nn.Module):
    """An auto-encoder with a vector-quantised bottleneck, scored by reconstruction error.

    The base of :class:`DenseVQVAE` and :class:`~anomalia.models.conv.ConvVQVAE`.

    Parameters
    ----------
    encoder : torch.nn.Module
        Maps ``x`` to vectors of shape ``(n, ..., code_dim)`` (channels last).
    quantizer : VectorQuantizer
        The bottleneck.
    decoder : torch.nn.Module
        Maps quantised vectors ``(n, ..., code_dim)`` back to the input shape.
    """

    def __init__(self, encoder: nn.Module, quantizer: VectorQuantizer, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.quantizer = quantizer
        self.decoder = decoder

    def encode(self, x: Tensor) -> Tensor:
        """Return the continuous (not yet quantised) latents, shape ``(n, ..., code_dim)``."""
        out: Tensor = self.encoder(x)
        return out

    def codes(self, x: Tensor) -> Tensor:
        """Return the code indices of ``x``, shape ``(n, ...)``, dtype long."""
        return self.quantizer.nearest(self.encode(x))

    def decode(self, zq: Tensor) -> Tensor:
        """Return the reconstruction from quantised latents ``zq``, shape ``(n, ..., code_dim)``."""
        out: Tensor = self.decoder(zq)
        return out

    def decode_codes(self, codes: Tensor) -> Tensor:
        """Return the reconstruction from code indices, as returned by :meth:`codes`."""
        return self.decode(self.quantizer.lookup(codes))

    def forward(self, x: Tensor) -> Tensor:
        """Return the quantised reconstruction of ``x`` (updates the codebook in train mode)."""
        return self.decode(self.quantizer(self.encode(x))[0])

    def loss_parts(
        self,
        x: Tensor,
        target: Tensor | None = None,
        weight: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Return the (weighted) reconstruction MSE and commitment loss of a batch.

        Parameters
        ----------
        x : Tensor of shape (n, ...)
            Input batch (possibly corrupted, for denoising).
        target : Tensor of shape (n, ...), optional
            What the reconstruction should match; defaults to ``x``.
        weight : Tensor of shape (n,), optional
            Per-sample weights, also applied to the codebook statistics.
        generator : torch.Generator, optional
            Source of randomness for codebook initialisation and dead-code restarts.

        Returns
        -------
        dict of str to Tensor
            Scalars ``"recon"`` and ``"commit"``; the loss is their sum.
        """
        target = x if target is None else target
        z = self.encode(x)
        w = None
        if weight is not None:
            w = weight.reshape(-1, *([1] * (z.ndim - 2))).expand(z.shape[:-1])
        zq, _, commit = self.quantizer(z, weight=w, generator=generator)
        recon = self.decode(zq)
        return {
            "recon": weighted_mean(row_mean(squared_error(recon, target)), weight),
            "commit": commit,
        }

    def loss(
        self,
        x: Tensor,
        target: Tensor | None = None,
        weight: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Return reconstruction MSE plus commitment loss; see :meth:`loss_parts`."""
        parts = self.loss_parts(x, target, weight, generator)
        return parts["recon"] + parts["commit"]

    def feature_errors(self, x: Tensor) -> Tensor:
        """Return the squared error of the quantised reconstruction per entry, shape of ``x``.

        Never updates the codebook, in any mode.
        """
        return squared_error(self.decode_codes(self.codes(x)), x)

    def per_sample_error(self, x: Tensor) -> Tensor:
        """Return the mean squared error of the quantised reconstruction per row, ``(n,)``."""
        return row_mean(self.feature_errors(x))

    def per_sample_loss(self, x: Tensor) -> Tensor:
        """Return the reconstruction error of each row, shape ``(n,)``."""
        return self.per_sample_error(x)

    def score(self, x: Tensor) -> Tensor:
        """Return the anomaly score (reconstruction error) of each row, shape ``(n,)``."""
        return self.per_sample_error(x)


class DenseVQVAE(VQAutoEncoder):
    """A fully connected VQ-VAE for tabular rows ``(n, n_features)``.

    The encoder maps each row to ``n_latents`` vectors of size ``code_dim``, each replaced
    by its nearest code; the decoder reconstructs the row from the concatenated codes.

    Parameters
    ----------
    n_features : int
        Number of input columns.
    hidden : sequence of int, default=(64, 32)
        Widths of the encoder's hidden layers (the decoder uses them reversed).
    n_latents : int, default=4
        Number of code vectors per row.
    n_codes : int, default=64
        Codebook size.
    code_dim : int, default=8
        Size of each code vector.
    commitment : float, default=0.25
        Weight of the commitment loss.
    decay : float, default=0.99
        EMA decay of the codebook.
    dead_code_threshold : float, default=1.0
        EMA count below which a code is restarted (``0`` disables restarts).
    activation : str, default="relu"
        Hidden activation, see :data:`anomalia.models.mlp.ACTIVATIONS`.
    dropout : float, default=0.0
        Dropout after every hidden activation.

    Examples
    --------
    >>> import torch
    >>> model = DenseVQVAE(5, hidden=(16,), n_latents=2, n_codes=8, code_dim=3).eval()
    >>> model.codes(torch.zeros(4, 5)).shape
    torch.Size([4, 2])
    """

    def __init__(
        self,
        n_features: int,
        hidden: Sequence[int] = (64, 32),
        n_latents: int = 4,
        n_codes: int = 64,
        code_dim: int = 8,
        commitment: float = 0.25,
        decay: float = 0.99,
        dead_code_threshold: float = 1.0,
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        widths = check_sizes("hidden", hidden)
        check_positive_int("n_features", n_features)
        check_positive_int("n_latents", n_latents)
        check_positive_int("code_dim", code_dim)
        latent = n_latents * code_dim
        super().__init__(
            nn.Sequential(
                mlp([n_features, *widths, latent], activation, dropout),
                nn.Unflatten(1, (n_latents, code_dim)),
            ),
            VectorQuantizer(
                n_codes=n_codes,
                code_dim=code_dim,
                commitment=commitment,
                decay=decay,
                dead_code_threshold=dead_code_threshold,
            ),
            nn.Sequential(
                nn.Flatten(1), mlp([latent, *reversed(widths), n_features], activation, dropout)
            ),
        )
