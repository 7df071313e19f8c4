"""Convolutional auto-encoders for images ``(n, C, H, W)`` of any size.

All three models share one encoder/decoder pair: ``len(channels)`` stride-2 3x3 conv blocks
halve the image (rounding up) at each step, and the decoder mirrors them with transposed
convolutions whose ``output_padding`` is chosen per step, so the output has exactly the
input's height and width (8x8 digits and 28x28 MNIST alike) with no cropping. Outputs are
linear: scale or standardise the inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from anomalia.models.autoencoder import AutoEncoder
from anomalia.models.mlp import check_positive_int, check_sizes, make_activation
from anomalia.models.vae import VariationalAutoEncoder
from anomalia.models.vq import VectorQuantizer, VQAutoEncoder

__all__ = ["ConvAE", "ConvDecoder", "ConvEncoder", "ConvVAE", "ConvVQVAE", "feature_map_sizes"]


def feature_map_sizes(height: int, width: int, n_blocks: int) -> list[tuple[int, int]]:
    """Return the spatial size before and after each stride-2 block, input first."""
    sizes = [(height, width)]
    for _ in range(n_blocks):
        h, w = sizes[-1]
        sizes.append(((h + 1) // 2, (w + 1) // 2))
    return sizes


def _check_image(in_channels: int, height: int, width: int, channels: Sequence[int]) -> None:
    check_positive_int("in_channels", in_channels)
    check_positive_int("height", height)
    check_positive_int("width", width)
    check_sizes("channels", channels, min_len=1)


class ConvEncoder(nn.Sequential):
    """Stride-2 3x3 conv blocks (conv + activation): ``(n, C, H, W) -> (n, c_last, h, w)``.

    Parameters
    ----------
    in_channels : int
        Number of image channels ``C``.
    channels : sequence of int
        Output channels of each block.
    activation : str
        Activation after each conv.
    """

    def __init__(self, in_channels: int, channels: Sequence[int], activation: str) -> None:
        channels = tuple(channels)
        layers: list[nn.Module] = []
        for c_in, c_out in zip((in_channels, *channels[:-1]), channels, strict=True):
            layers += [
                nn.Conv2d(c_in, c_out, 3, stride=2, padding=1),
                make_activation(activation, inplace=True),
            ]
        super().__init__(*layers)


class ConvDecoder(nn.Sequential):
    """The mirror of :class:`ConvEncoder`: ``(n, c_last, h, w) -> (n, C, H, W)``, linear output.

    Parameters
    ----------
    out_channels : int
        Number of image channels ``C``.
    height, width : int
        Size of the image to produce.
    channels : sequence of int
        The encoder's ``channels`` (used in reverse).
    activation : str
        Activation after each transposed conv but the last.
    """

    def __init__(
        self, out_channels: int, height: int, width: int, channels: Sequence[int], activation: str
    ) -> None:
        sizes = feature_map_sizes(height, width, len(channels))[::-1]
        ins = tuple(reversed(channels))
        outs = (*ins[1:], out_channels)
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip(ins, outs, strict=True)):
            (h_in, w_in), (h_out, w_out) = sizes[i], sizes[i + 1]
            # (in - 1) * 2 - 2 + 3 + pad = out, so pad is 1 for an even size and 0 for odd.
            pad = (h_out - 2 * h_in + 1, w_out - 2 * w_in + 1)
            layers.append(nn.ConvTranspose2d(c_in, c_out, 3, 2, padding=1, output_padding=pad))
            if i < len(ins) - 1:
                layers.append(make_activation(activation, inplace=True))
        super().__init__(*layers)


class _ChannelsLast(nn.Module):
    """``(n, C, H, W) <-> (n, H, W, C)``, so the quantiser sees vectors in the last dim."""

    def __init__(self, *, inverse: bool = False) -> None:
        super().__init__()
        self.dims = (0, 3, 1, 2) if inverse else (0, 2, 3, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x.permute(self.dims)


class ConvAE(AutoEncoder):
    """A convolutional auto-encoder with a dense bottleneck, for ``(n, C, H, W)`` images.

    Parameters
    ----------
    in_channels : int
        Number of image channels.
    height, width : int
        Image size; any positive size works.
    channels : sequence of int, default=(32, 64)
        Channels of the stride-2 conv blocks.
    bottleneck : int, default=16
        Size of the code.
    activation : str, default="relu"
        Activation, see :data:`anomalia.models.mlp.ACTIVATIONS`.

    Examples
    --------
    >>> import torch
    >>> model = ConvAE(1, 8, 8, channels=(4, 8), bottleneck=2)
    >>> model(torch.zeros(3, 1, 8, 8)).shape
    torch.Size([3, 1, 8, 8])
    """

    def __init__(
        self,
        in_channels: int,
        height: int,
        width: int,
        channels: Sequence[int] = (32, 64),
        bottleneck: int = 16,
        activation: str = "relu",
    ) -> None:
        _check_image(in_channels, height, width, channels)
        check_positive_int("bottleneck", bottleneck)
        channels = tuple(channels)
        h, w = feature_map_sizes(height, width, len(channels))[-1]
        flat = channels[-1] * h * w
        super().__init__(
            nn.Sequential(
                ConvEncoder(in_channels, channels, activation),
                nn.Flatten(1),
                nn.Linear(flat, bottleneck),
            ),
            nn.Sequential(
                nn.Linear(bottleneck, flat),
                make_activation(activation, inplace=True),
                nn.Unflatten(1, (channels[-1], h, w)),
                ConvDecoder(in_channels, height, width, channels, activation),
            ),
        )


class ConvVAE(VariationalAutoEncoder):
    """A convolutional VAE with a dense Gaussian latent, for ``(n, C, H, W)`` images.

    Same API as :class:`~anomalia.models.vae.DenseVAE`.

    Parameters
    ----------
    in_channels : int
        Number of image channels.
    height, width : int
        Image size; any positive size works.
    channels : sequence of int, default=(32, 64)
        Channels of the stride-2 conv blocks.
    bottleneck : int, default=16
        Size of the latent code.
    activation : str, default="relu"
        Activation, see :data:`anomalia.models.mlp.ACTIVATIONS`.
    beta : float, default=1.0
        Weight of the KL term.
    """

    def __init__(
        self,
        in_channels: int,
        height: int,
        width: int,
        channels: Sequence[int] = (32, 64),
        bottleneck: int = 16,
        activation: str = "relu",
        beta: float = 1.0,
    ) -> None:
        _check_image(in_channels, height, width, channels)
        check_positive_int("bottleneck", bottleneck)
        channels = tuple(channels)
        h, w = feature_map_sizes(height, width, len(channels))[-1]
        flat = channels[-1] * h * w
        super().__init__(
            nn.Sequential(
                ConvEncoder(in_channels, channels, activation),
                nn.Flatten(1),
                nn.Linear(flat, 2 * bottleneck),
            ),
            nn.Sequential(
                nn.Linear(bottleneck, flat),
                make_activation(activation, inplace=True),
                nn.Unflatten(1, (channels[-1], h, w)),
                ConvDecoder(in_channels, height, width, channels, activation),
            ),
            latent_dim=bottleneck,
            beta=beta,
        )


class ConvVQVAE(VQAutoEncoder):
    """A convolutional VQ-VAE with a global or a per-position discrete bottleneck.

    Global (``n_latents`` an int, the default for anomaly detection): the encoder's feature
    map is flattened and mapped to ``n_latents`` vectors of ``code_dim``, each quantised; the
    decoder sees only those few codes, so it cannot rebuild images unlike the training ones.
    :meth:`codes` returns ``(n, n_latents)``.

    Per position (``n_latents=None``): a 1x1 conv maps the feature map to ``code_dim``
    channels, quantised at every position; :meth:`codes` returns ``(n, h, w)`` with
    ``h = ceil(H / 2**len(channels))`` (likewise ``w``): a map of which code each image patch
    uses. Local codes can rebuild unseen shapes from familiar strokes, so this variant is for
    representation, not for scoring anomalies by reconstruction.
    Same API as :class:`~anomalia.models.vq.DenseVQVAE`.

    Parameters
    ----------
    in_channels : int
        Number of image channels.
    height, width : int
        Image size; any positive size works.
    channels : sequence of int, default=(32, 64)
        Channels of the stride-2 conv blocks.
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
        Activation, see :data:`anomalia.models.mlp.ACTIVATIONS`.
    n_latents : int or None, default=4
        Number of global code vectors per image; None quantises every feature-map position.
    """

    def __init__(
        self,
        in_channels: int,
        height: int,
        width: int,
        channels: Sequence[int] = (32, 64),
        n_codes: int = 64,
        code_dim: int = 8,
        commitment: float = 0.25,
        decay: float = 0.99,
        dead_code_threshold: float = 1.0,
        activation: str = "relu",
        n_latents: int | None = 4,
    ) -> None:
        _check_image(in_channels, height, width, channels)
        check_positive_int("code_dim", code_dim)
        channels = tuple(channels)
        if n_latents is not None:
            check_positive_int("n_latents", n_latents)
            h, w = feature_map_sizes(height, width, len(channels))[-1]
            flat = channels[-1] * h * w
            to_codes: nn.Module = nn.Sequential(
                nn.Flatten(1),
                nn.Linear(flat, n_latents * code_dim),
                nn.Unflatten(1, (n_latents, code_dim)),
            )
            from_codes: nn.Module = nn.Sequential(
                nn.Flatten(1),
                nn.Linear(n_latents * code_dim, flat),
                make_activation(activation, inplace=True),
                nn.Unflatten(1, (channels[-1], h, w)),
            )
        else:
            to_codes = nn.Sequential(nn.Conv2d(channels[-1], code_dim, 1), _ChannelsLast())
            from_codes = nn.Sequential(
                _ChannelsLast(inverse=True),
                nn.Conv2d(code_dim, channels[-1], 1),
                make_activation(activation, inplace=True),
            )
        super().__init__(
            nn.Sequential(ConvEncoder(in_channels, channels, activation), to_codes),
            VectorQuantizer(
                n_codes=n_codes,
                code_dim=code_dim,
                commitment=commitment,
                decay=decay,
                dead_code_threshold=dead_code_threshold,
            ),
            nn.Sequential(
                from_codes, ConvDecoder(in_channels, height, width, channels, activation)
            ),
        )
