"""The ``disentangle`` detector: content and style of images, separated and swappable.

A content encoder with instance normalisation, a style encoder and an AdaIN decoder
(:class:`anomalia.models.disentangle.DisentangleAE`), trained by reconstruction only. Its
anomaly score is the reconstruction error, like the other auto-encoders; beyond that it gives
the content codes and style vectors of images, and decodes the content of one image with the
style of another (:meth:`DisentangleDetector.swap`, :meth:`DisentangleDetector.swap_grid`,
drawn by :func:`plot_swap_grid`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from .._utils.validation import check_fraction, check_int
from ..errors import DataError
from ..models.disentangle import DisentangleAE
from .autoencoder import _AutoEncoderBase, _common_init

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["DisentangleDetector", "plot_swap_grid"]


class DisentangleDetector(_AutoEncoderBase):
    """Content/style auto-encoder (AdaIN-VC); anomaly score = reconstruction error.

    The content encoder normalises each of its feature maps per image (instance
    normalisation, no affine), which removes per-image statistics -- the style: stroke
    thickness, contrast, brightness. The style encoder pools its feature maps into a vector
    that conditions the decoder through adaptive instance normalisation. Trained by
    reconstruction only; :meth:`swap` then decodes the content of one image with the style of
    another. :meth:`content` and :meth:`style` give the two parts of the code;
    :meth:`transform` gives both, flattened and concatenated.

    Images are (n, H, W) or (n, C, H, W) arrays; flat rows are read as images as
    ``conv-ae`` does (``image_shape``, else square rows as square images, other rows as
    1 x n strips), so tables work too (as a 1-D signal over the features).

    Parameters
    ----------
    channels : tuple of int, default=(32, 64)
        Channels of the stride-2 conv blocks of both encoders (the decoder mirrors them).
        The content code keeps ``ceil(H / 2**len(channels))`` x ``ceil(W / 2**len(channels))``
        positions (7 x 7 for 28 x 28 MNIST).
    content_channels : int, default=4
        Channels of the content code per position: the capacity of the content path.
    style_dim : int, default=8
        Size of the style vector.
    kl_weight : float, default=0.3
        ``> 0``: unit-variance noise on the content code in training and a KL penalty
        ``kl_weight * 0.5 * mean(code ** 2)`` (AdaIN-VC), limiting the content path further so
        that more of the style goes through the style vector. On MNIST (benchmarks/
        disentangle.py) 0.3 moved stroke thickness to the style (correlation of a swap's
        thickness with its style image's 0.53 -> 0.74) at a small cost in content kept (95.5
        -> 94.2 % of swaps classified as the content digit); ``0`` disables it.
    activation : str, default="auto"
        Activation (see :class:`~anomalia.detectors.autoencoder.AEDetector`); ``"auto"``: relu.
    noise, noise_kind, lr, weight_decay, epochs, update_epochs, batch_size,
    validation_fraction, patience, robust, robust_fraction, warmup_epochs, standardize,
    image_shape, contamination, random_state, verbose
        As in :class:`~anomalia.detectors.autoencoder.AEDetector` (``partial_fit`` too).

    Attributes
    ----------
    module_ : DisentangleAE
        The trained network (eval mode).
    bottleneck_ : int
        Size of the whole code: the flattened content code, then the style vector (the
        width of :meth:`transform`; :meth:`inverse_transform` decodes it).
    history_, threshold_, input_shift_, input_scale_, image_shape_, batch_size_,
    activation_, n_features_in_
        As in :class:`~anomalia.detectors.autoencoder.AEDetector`.

    See Also
    --------
    plot_swap_grid : draw the result of :meth:`swap_grid`.

    References
    ----------
    Chou, Yeh and Lee, "One-shot Voice Conversion by Separating Speaker and Content
    Representations with Instance Normalization", Interspeech 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from anomalia.detectors.disentangle import DisentangleDetector
    >>> X = np.random.default_rng(0).random((64, 8, 8))
    >>> det = DisentangleDetector(channels=(4, 8), epochs=2, random_state=0).fit(X)
    >>> det.content(X[:3]).shape, det.style(X[:3]).shape, det.swap(X[:3], X[3:6]).shape
    ((3, 4, 2, 2), (3, 8), (3, 8, 8))
    >>> det.swap_grid(X[:2], X[2:5]).shape  # (1 + contents, 1 + styles, C, H, W)
    (3, 4, 1, 8, 8)
    """

    name = "disentangle"
    # Always convolutional: the base reads flat rows as images as for architecture="conv".
    architecture = "conv"
    dropout = 0.0

    def __init__(
        self,
        *,
        channels: tuple[int, ...] = (32, 64),
        content_channels: int = 4,
        style_dim: int = 8,
        kl_weight: float = 0.3,
        activation: str = "auto",
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
        image_shape: tuple[int, ...] | None = None,
        contamination: float | str | None = None,
        random_state: int | None = None,
        verbose: bool = False,
    ) -> None:
        _common_init(self, **{k: v for k, v in locals().items() if k != "self"})

    def _check_params(self) -> None:
        super()._check_params()
        check_int("content_channels", self.content_channels)
        check_int("style_dim", self.style_dim)
        check_fraction("kl_weight", self.kl_weight, low=0.0, high=np.inf, low_inclusive=True)

    def _build_module(self) -> torch.nn.Module:
        c, h, w = self.image_shape_
        return DisentangleAE(
            c,
            h,
            w,
            channels=self.channels,
            content_channels=self.content_channels,
            style_dim=self.style_dim,
            kl_weight=self.kl_weight,
            activation=self.activation_,
        )

    def _fit(self, X: NDArray[np.float64]) -> None:
        super()._fit(X)
        self.bottleneck_ = math.prod(self.module_.content_shape) + self.style_dim

    # -- content, style and swaps ------------------------------------------------------------
    def content(self, X: ArrayLike) -> NDArray[np.float64]:
        """Content codes, shape (n_samples, content_channels, h, w) (see ``channels``)."""
        Xv, _ = self._checked(X)
        return self._batched(Xv, self.module_.content).double().numpy()

    def style(self, X: ArrayLike) -> NDArray[np.float64]:
        """Style vectors, shape (n_samples, style_dim)."""
        Xv, _ = self._checked(X)
        return self._batched(Xv, self.module_.style).double().numpy()

    def swap(self, X_content: ArrayLike, X_style: ArrayLike) -> NDArray[np.float64]:
        """Decode the content of each row of ``X_content`` with the style of the same row of
        ``X_style``.

        Parameters
        ----------
        X_content, X_style : array-like, same number of rows
            Images (n, H, W) or (n, C, H, W), or flat rows, of the training image shape.

        Returns
        -------
        ndarray
            The swapped images in the original pixel units, in the shape of ``X_content``.
        """
        Xc, ndim = self._checked(X_content)
        Xs, _ = self._checked(X_style)
        if len(Xc) != len(Xs):
            raise DataError(
                f"X_content has {len(Xc)} rows but X_style has {len(Xs)}; swap pairs rows"
            )
        # side by side as channels, so both halves of a batch stay paired
        pairs = np.concatenate([Xc, Xs], axis=1)
        out = self._batched(pairs, lambda t: self.module_.swap(*t.chunk(2, dim=1)))
        return self._untensor(out, ndim)

    def swap_grid(self, X_content: ArrayLike, X_style: ArrayLike) -> NDArray[np.float64]:
        """Every content decoded with every style, framed by the inputs.

        Parameters
        ----------
        X_content : array-like of n_content images (or flat rows)
            Images whose content is kept (one grid row each).
        X_style : array-like of n_style images (or flat rows)
            Images whose style is applied (one grid column each).

        Returns
        -------
        ndarray of shape (n_content + 1, n_style + 1, C, H, W)
            ``[0, j + 1]``: style image j; ``[i + 1, 0]``: content image i; ``[i + 1, j + 1]``:
            content i with style j; ``[0, 0]`` is NaN (no image). Original pixel units.
        """
        Xc, _ = self._checked(X_content)
        Xs, _ = self._checked(X_style)
        nc, ns = len(Xc), len(Xs)
        with torch.inference_mode():
            codes = self.module_.content(self._tensor(Xc))
            styles = self.module_.style(self._tensor(Xs))
            pairs = codes.repeat_interleave(ns, dim=0), styles.repeat(nc, 1)
            cells = self.module_.decode_parts(*pairs)
        shape = self.image_shape_
        grid = np.full((nc + 1, ns + 1, *shape), np.nan)
        grid[1:, 1:] = self._untensor(cells, 4).reshape(nc, ns, *shape)
        grid[0, 1:] = Xs
        grid[1:, 0] = Xc
        return grid


def plot_swap_grid(grid: ArrayLike, *, cmap: str = "gray") -> Figure:
    """Draw a :meth:`DisentangleDetector.swap_grid`: styles on top, contents on the left.

    Parameters
    ----------
    grid : array-like of shape (rows, cols, C, H, W), C in {1, 3}
        Images in any pixel unit; all share the colour scale of the input images (the
        first row and column), decoded images are clipped to it. The NaN corner stays blank.
    cmap : str, default="gray"
        Matplotlib colormap for grey images.

    Returns
    -------
    matplotlib.figure.Figure
        About 1 inch per image.
    """
    from matplotlib.figure import Figure

    g = np.asarray(grid, dtype=np.float64)
    if g.ndim != 5 or g.shape[2] not in (1, 3) or g.shape[0] < 2 or g.shape[1] < 2:
        raise DataError(
            f"a swap grid has shape (rows >= 2, cols >= 2, C in {{1, 3}}, H, W); got {g.shape}"
        )
    # one colour scale, that of the input images (first row and column); swaps are clipped to it
    frame = np.concatenate([g[0, 1:].ravel(), g[1:, 0].ravel()])
    lo, hi = float(frame.min()), float(frame.max())
    g = np.clip((np.moveaxis(g, 2, -1) - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)
    n_rows, n_cols = g.shape[:2]
    fig = Figure(figsize=(n_cols + 0.6, n_rows + 0.4), dpi=120, layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for (r, c), ax in np.ndenumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        cell = g[r, c]
        if np.isfinite(cell).all():
            img = cell[..., 0] if cell.shape[-1] == 1 else cell
            ax.imshow(img, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
        else:
            ax.set_axis_off()
        if r == 0 and c == 1:
            ax.set_title("style", fontsize="small", loc="left")
        if c == 0 and r == 1:
            ax.set_ylabel("content", fontsize="small")
    return fig
