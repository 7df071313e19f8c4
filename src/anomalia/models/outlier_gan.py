"""Pure torch GAN that generates boundary outliers for a classifier (Lee et al. 2018).

A generator maps Gaussian noise to inputs shaped like the training data; a discriminator
tells them from real rows. Trained jointly with a classifier
(:func:`anomalia.outlier_training.train_boundary_gan`), the generator's loss adds ``beta``
times the classifier's cross-entropy to the uniform distribution on the generated inputs
(KL(uniform || p) up to the constant log K), so the samples stay near the data (the GAN
term) but where the classifier is unsure (the KL term): "boundary" samples, which then serve
as outliers for outlier exposure.

- :class:`MLPGenerator` / :func:`mlp_discriminator`: tables ``(n, n_features)``;
- :class:`ConvGenerator` / :func:`conv_discriminator`: images ``(n, C, H, W)``, the mirror of
  the classifier's stride-2 conv blocks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anomalia.models.conv import ConvDecoder, ConvEncoder, _check_image, feature_map_sizes
from anomalia.models.mlp import check_positive_int, check_sizes, make_activation, mlp

__all__ = [
    "LATENT_DIM",
    "BoundaryGAN",
    "ConvGenerator",
    "MLPGenerator",
    "conv_discriminator",
    "mlp_discriminator",
]

LATENT_DIM: int = 32
"""Default width of the generator's Gaussian noise input."""


class MLPGenerator(nn.Module):
    """Noise ``(n, latent_dim)`` -> rows ``(n, n_features)`` through dense layers.

    Parameters
    ----------
    latent_dim : int
        Width of the noise input.
    n_features : int
        Width of the generated rows.
    hidden : sequence of int, default=(64, 64)
        Hidden widths, first layer first.
    activation : str, default="relu"
        Hidden activation, see :data:`anomalia.models.mlp.ACTIVATIONS`; the output is linear.

    Examples
    --------
    >>> import torch
    >>> MLPGenerator(4, 3, hidden=(8,))(torch.zeros(2, 4)).shape
    torch.Size([2, 3])
    """

    def __init__(
        self,
        latent_dim: int,
        n_features: int,
        hidden: Sequence[int] = (64, 64),
        activation: str = "relu",
    ) -> None:
        check_positive_int("latent_dim", latent_dim)
        check_positive_int("n_features", n_features)
        widths = check_sizes("hidden", hidden)
        super().__init__()
        self.latent_dim = latent_dim
        self.net = mlp([latent_dim, *widths, n_features], activation)

    def forward(self, z: Tensor) -> Tensor:
        """Return the generated rows of noise ``z``."""
        out: Tensor = self.net(z)
        return out


class ConvGenerator(nn.Module):
    """Noise ``(n, latent_dim)`` -> images ``(n, C, H, W)``: a dense layer to the smallest
    feature map, then the transposed conv blocks of :class:`~anomalia.models.conv.ConvDecoder`.

    Parameters
    ----------
    latent_dim : int
        Width of the noise input.
    out_channels, height, width : int
        Shape of the generated images.
    channels : sequence of int, default=(32, 64)
        The classifier's conv channels (used in reverse).
    activation : str, default="relu"
        Hidden activation; the output is linear.

    Examples
    --------
    >>> import torch
    >>> ConvGenerator(4, 1, 8, 8, channels=(4, 8))(torch.zeros(2, 4)).shape
    torch.Size([2, 1, 8, 8])
    """

    def __init__(
        self,
        latent_dim: int,
        out_channels: int,
        height: int,
        width: int,
        channels: Sequence[int] = (32, 64),
        activation: str = "relu",
    ) -> None:
        check_positive_int("latent_dim", latent_dim)
        _check_image(out_channels, height, width, channels)
        channels = tuple(channels)
        super().__init__()
        self.latent_dim = latent_dim
        self.map_shape = (channels[-1], *feature_map_sizes(height, width, len(channels))[-1])
        n_map = self.map_shape[0] * self.map_shape[1] * self.map_shape[2]
        self.stem = nn.Sequential(nn.Linear(latent_dim, n_map), make_activation(activation))
        self.decoder = ConvDecoder(out_channels, height, width, channels, activation)

    def forward(self, z: Tensor) -> Tensor:
        """Return the generated images of noise ``z``."""
        out: Tensor = self.decoder(self.stem(z).reshape(-1, *self.map_shape))
        return out


def mlp_discriminator(
    n_features: int, hidden: Sequence[int] = (64, 64), activation: str = "leaky_relu"
) -> nn.Sequential:
    """A dense discriminator: rows ``(n, n_features)`` -> one logit each, shape ``(n, 1)``."""
    check_positive_int("n_features", n_features)
    return mlp([n_features, *check_sizes("hidden", hidden), 1], activation)


def conv_discriminator(
    in_channels: int,
    height: int,
    width: int,
    channels: Sequence[int] = (32, 64),
    activation: str = "leaky_relu",
) -> nn.Sequential:
    """A conv discriminator: images ``(n, C, H, W)`` -> one logit each, shape ``(n, 1)``."""
    _check_image(in_channels, height, width, channels)
    h, w = feature_map_sizes(height, width, len(channels))[-1]
    return nn.Sequential(
        ConvEncoder(in_channels, channels, activation),
        nn.Flatten(1),
        nn.Linear(tuple(channels)[-1] * h * w, 1),
    )


class BoundaryGAN(nn.Module):
    """A generator and its discriminator, with the two GAN losses.

    Parameters
    ----------
    generator : MLPGenerator or ConvGenerator
        Maps noise ``(n, generator.latent_dim)`` to inputs.
    discriminator : torch.nn.Module
        Maps inputs to one logit each, shape ``(n, 1)`` (high = real).

    Examples
    --------
    >>> import torch
    >>> gan = BoundaryGAN(MLPGenerator(4, 3, hidden=(8,)), mlp_discriminator(3, hidden=(8,)))
    >>> fake = gan.sample(5, torch.Generator().manual_seed(0))
    >>> fake.shape, gan.discriminator_loss(torch.zeros(5, 3), fake).shape
    (torch.Size([5, 3]), torch.Size([]))
    """

    def __init__(self, generator: MLPGenerator | ConvGenerator, discriminator: nn.Module) -> None:
        super().__init__()
        self.generator = generator
        self.discriminator = discriminator

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Return ``n`` generated inputs from noise drawn with ``generator``."""
        param = next(self.generator.parameters())
        z = torch.randn(
            n,
            self.generator.latent_dim,
            generator=generator,
            device=param.device,
            dtype=param.dtype,
        )
        out: Tensor = self.generator(z)
        return out

    def discriminator_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        """Binary cross-entropy of telling ``real`` (label 1) from ``fake`` (label 0); the
        generated inputs are detached, so only the discriminator learns from it."""
        d_real = self.discriminator(real)
        d_fake = self.discriminator(fake.detach())
        return F.binary_cross_entropy_with_logits(
            d_real, torch.ones_like(d_real)
        ) + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))

    def generator_loss(self, fake: Tensor) -> Tensor:
        """The non-saturating generator loss: cross-entropy of ``fake`` being called real."""
        d_fake = self.discriminator(fake)
        return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
