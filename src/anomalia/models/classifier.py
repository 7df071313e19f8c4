"""Pure torch classifiers for open-set recognition (the ``confidence`` detector).

Both networks are a feature extractor (``features(x)``, the penultimate layer) and a linear
head (``forward(x)`` returns the logits). They share the contract of :mod:`anomalia.models`
with class labels as the target:

- ``loss(x, target=labels, weight=None, generator=None)``: mean cross-entropy on the rows of
  known classes, plus ``oe_weight`` times the mean cross-entropy to the uniform distribution
  on rows labelled ``-1`` (known anomalies: outlier exposure, Hendrycks et al. 2019);
- ``per_sample_loss(x, target)``: the same terms, one value per row;
- ``score(x, method, temperature)``: an anomaly score from the logits (:func:`logit_scores`).

:func:`anomalia.training.train` trains on a single tensor; :class:`PackedLabels` adapts a
classifier to it by carrying each row's label in an extra last column.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anomalia.models.autoencoder import weighted_mean
from anomalia.models.conv import ConvEncoder, _check_image, feature_map_sizes
from anomalia.models.mlp import check_positive_int, check_sizes, mlp

__all__ = [
    "LOGIT_SCORES",
    "CNNClassifierNet",
    "ClassifierNet",
    "MLPClassifierNet",
    "PackedLabels",
    "logit_scores",
]

LOGIT_SCORES: tuple[str, ...] = ("msp", "entropy", "energy")
"""Anomaly scores computed from logits alone, accepted by :func:`logit_scores`."""


def logit_scores(logits: Tensor, method: str = "msp", temperature: float = 1.0) -> Tensor:
    """Return an anomaly score per row from ``logits`` (higher is more anomalous).

    Parameters
    ----------
    logits : Tensor of shape (n, n_classes)
        Unnormalised class scores.
    method : {"msp", "entropy", "energy"}, default="msp"
        ``"msp"``: 1 - the maximum softmax probability, computed as the sum of the other
        probabilities (no cancellation for confident rows). ``"entropy"``: entropy of the
        softmax distribution, in nats. ``"energy"``: ``-T * logsumexp(logits / T)``
        (Liu et al. 2020).
    temperature : float, default=1.0
        Softmax temperature ``T`` (> 0); the logits are divided by it.

    Returns
    -------
    Tensor of shape (n,)

    Examples
    --------
    >>> import torch
    >>> logit_scores(torch.tensor([[5.0, 0.0], [0.0, 0.0]]), "msp")
    tensor([0.0067, 0.5000])
    """
    if method not in LOGIT_SCORES:
        raise ValueError(f"method must be one of {LOGIT_SCORES}, got {method!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    z = logits / temperature
    if method == "energy":
        return -temperature * torch.logsumexp(z, dim=1)
    log_p = torch.log_softmax(z, dim=1)
    p = log_p.exp()
    if method == "entropy":
        return -(p * log_p).sum(dim=1)
    top = z.argmax(dim=1, keepdim=True)
    return p.scatter(1, top, 0.0).sum(dim=1)


class ClassifierNet(nn.Module):
    """A feature extractor ``body`` followed by a linear head; the base of both networks.

    Parameters
    ----------
    body : torch.nn.Module
        Maps a batch to penultimate features of shape ``(n, n_features_out)``.
    n_features_out : int
        Width of the features.
    n_classes : int
        Number of known classes (at least 2).
    oe_weight : float, default=0.5
        Weight of the outlier-exposure term for rows labelled ``-1``.
    """

    def __init__(
        self, body: nn.Module, n_features_out: int, n_classes: int, oe_weight: float = 0.5
    ) -> None:
        check_positive_int("n_features_out", n_features_out)
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(f"n_classes must be an int >= 2, got {n_classes!r}")
        if isinstance(oe_weight, bool) or not isinstance(oe_weight, int | float) or oe_weight < 0:
            raise ValueError(f"oe_weight must be a number >= 0, got {oe_weight!r}")
        super().__init__()
        self.body = body
        self.head = nn.Linear(n_features_out, n_classes)
        self.n_classes = n_classes
        self.oe_weight = float(oe_weight)

    def features(self, x: Tensor) -> Tensor:
        """Return the penultimate features of ``x``, shape ``(n, n_features_out)``."""
        out: Tensor = self.body(x)
        return out

    def forward(self, x: Tensor) -> Tensor:
        """Return the logits of ``x``, shape ``(n, n_classes)``."""
        out: Tensor = self.head(self.features(x))
        return out

    def _terms(self, x: Tensor, target: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """Cross-entropy to the label, cross-entropy to uniform, and the known-row mask."""
        if target is None:
            raise ValueError("a classifier needs target labels (-1 marks known anomalies)")
        if target.shape != (len(x),):
            raise ValueError(f"target must have shape ({len(x)},), got {tuple(target.shape)}")
        target = target.long()
        log_p = torch.log_softmax(self(x), dim=1)
        known = target >= 0
        ce = F.nll_loss(log_p, target.clamp_min(0), reduction="none")
        to_uniform = -log_p.mean(dim=1)
        return ce, to_uniform, known

    def loss(
        self,
        x: Tensor,
        target: Tensor | None = None,
        weight: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Return the training loss of a batch.

        Parameters
        ----------
        x : Tensor of shape (n, ...)
            Input batch.
        target : Tensor of shape (n,)
            Class index of each row in ``[0, n_classes)``, or ``-1`` for a known anomaly.
        weight : Tensor of shape (n,), optional
            Per-sample weights.
        generator : torch.Generator, optional
            Unused (dropout draws from the global generator, which
            :func:`anomalia.training.train` forks and seeds).

        Returns
        -------
        Tensor
            A scalar: weighted mean cross-entropy of the known rows plus ``oe_weight`` times
            the weighted mean cross-entropy to uniform of the ``-1`` rows (each 0 when the
            batch has no such row).
        """
        ce, to_uniform, known = self._terms(x, target)
        w = torch.ones_like(ce) if weight is None else weight.to(ce.dtype)
        known_w = w * known
        return weighted_mean(ce, known_w) + self.oe_weight * weighted_mean(to_uniform, w - known_w)

    def per_sample_loss(self, x: Tensor, target: Tensor | None = None) -> Tensor:
        """Return each row's loss term, shape ``(n,)`` (see :meth:`loss`)."""
        ce, to_uniform, known = self._terms(x, target)
        return torch.where(known, ce, self.oe_weight * to_uniform)

    def score(self, x: Tensor, method: str = "msp", temperature: float = 1.0) -> Tensor:
        """Return the anomaly score of each row (see :func:`logit_scores`), shape ``(n,)``."""
        return logit_scores(self(x), method, temperature)


class MLPClassifierNet(ClassifierNet):
    """A fully connected classifier for tabular rows ``(n, n_features)``.

    Parameters
    ----------
    n_features : int
        Number of input columns.
    n_classes : int
        Number of known classes (at least 2).
    hidden : sequence of int, default=(64, 64)
        Widths of the hidden layers (at least one); the last is the feature layer.
    activation : str, default="relu"
        Hidden activation, see :data:`anomalia.models.mlp.ACTIVATIONS`.
    dropout : float, default=0.0
        Dropout after every hidden activation.
    oe_weight : float, default=0.5
        Weight of the outlier-exposure term.

    Examples
    --------
    >>> import torch
    >>> net = MLPClassifierNet(4, 3, hidden=(8,))
    >>> net(torch.zeros(2, 4)).shape, net.features(torch.zeros(2, 4)).shape
    (torch.Size([2, 3]), torch.Size([2, 8]))
    """

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        hidden: Sequence[int] = (64, 64),
        activation: str = "relu",
        dropout: float = 0.0,
        oe_weight: float = 0.5,
    ) -> None:
        check_positive_int("n_features", n_features)
        widths = check_sizes("hidden", hidden, min_len=1)
        body = mlp([n_features, *widths], activation, dropout, final_activation=True)
        super().__init__(body, widths[-1], n_classes, oe_weight)


class CNNClassifierNet(ClassifierNet):
    """A small convolutional classifier for images ``(n, C, H, W)``.

    The convolutional encoder of the auto-encoders (stride-2 3x3 blocks), flattened, then
    dense hidden layers; the last hidden layer is the feature layer (the flattened feature
    map when ``hidden`` is empty).

    Parameters
    ----------
    in_channels : int
        Number of image channels.
    height, width : int
        Image size; any positive size works.
    n_classes : int
        Number of known classes (at least 2).
    channels : sequence of int, default=(32, 64)
        Channels of the stride-2 conv blocks.
    hidden : sequence of int, default=(128,)
        Widths of the dense layers after the convolutions.
    activation : str, default="relu"
        Activation, see :data:`anomalia.models.mlp.ACTIVATIONS`.
    dropout : float, default=0.0
        Dropout after every dense hidden activation.
    oe_weight : float, default=0.5
        Weight of the outlier-exposure term.

    Examples
    --------
    >>> import torch
    >>> net = CNNClassifierNet(1, 8, 8, 3, channels=(4, 8), hidden=(16,))
    >>> net(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 3])
    """

    def __init__(
        self,
        in_channels: int,
        height: int,
        width: int,
        n_classes: int,
        channels: Sequence[int] = (32, 64),
        hidden: Sequence[int] = (128,),
        activation: str = "relu",
        dropout: float = 0.0,
        oe_weight: float = 0.5,
    ) -> None:
        _check_image(in_channels, height, width, channels)
        channels = tuple(channels)
        widths = check_sizes("hidden", hidden)
        h, w = feature_map_sizes(height, width, len(channels))[-1]
        flat = channels[-1] * h * w
        layers: list[nn.Module] = [ConvEncoder(in_channels, channels, activation), nn.Flatten(1)]
        if widths:
            layers.append(mlp([flat, *widths], activation, dropout, final_activation=True))
        super().__init__(
            nn.Sequential(*layers), widths[-1] if widths else flat, n_classes, oe_weight
        )


class PackedLabels(nn.Module):
    """Adapt a classifier to :func:`anomalia.training.train`, which trains on one tensor.

    Each training row is the flattened input followed by its label (``-1`` for a known
    anomaly) as a float; :meth:`pack` builds such rows. Exact for fewer than 2**24 classes.
    The classifier is a submodule, so training this wrapper trains it.

    Parameters
    ----------
    net : ClassifierNet
        The classifier to train.
    input_shape : sequence of int
        Shape of one input row without the label, e.g. ``(n_features,)`` or ``(C, H, W)``.

    Examples
    --------
    >>> import torch
    >>> net = MLPClassifierNet(2, 2, hidden=(4,))
    >>> rows = PackedLabels.pack(torch.zeros(3, 2), torch.tensor([0, 1, -1]))
    >>> PackedLabels(net, (2,)).per_sample_loss(rows).shape
    torch.Size([3])
    """

    def __init__(self, net: ClassifierNet, input_shape: Sequence[int]) -> None:
        super().__init__()
        self.net = net
        self.input_shape = tuple(input_shape)

    @staticmethod
    def pack(x: Tensor, labels: Tensor) -> Tensor:
        """Return rows ``[x.flatten(1), label]`` in the floating dtype of ``x``."""
        return torch.cat([x.flatten(1), labels.to(x.dtype)[:, None]], dim=1)

    def _unpack(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        return rows[:, :-1].reshape(-1, *self.input_shape), rows[:, -1].round().long()

    def forward(self, rows: Tensor) -> Tensor:
        """Return the logits of packed rows."""
        out: Tensor = self.net(self._unpack(rows)[0])
        return out

    def loss(
        self,
        x: Tensor,
        target: Tensor | None = None,
        weight: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Return the classifier's loss; inputs come from ``x``, labels from ``target``
        (or from ``x`` when ``target`` is None)."""
        inputs, labels = self._unpack(x)
        if target is not None:
            labels = self._unpack(target)[1]
        return self.net.loss(inputs, labels, weight=weight, generator=generator)

    def per_sample_loss(self, x: Tensor) -> Tensor:
        """Return the classifier's per-sample loss of packed rows, shape ``(n,)``."""
        return self.net.per_sample_loss(*self._unpack(x))
