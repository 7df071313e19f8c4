"""Multi-layer perceptrons, the building block of the dense auto-encoders."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from torch import nn

__all__ = ["ACTIVATIONS", "check_positive_int", "check_sizes", "make_activation", "mlp"]

ACTIVATIONS: Mapping[str, type[nn.Module]] = MappingProxyType(
    {
        "relu": nn.ReLU,
        "leaky_relu": nn.LeakyReLU,
        "elu": nn.ELU,
        "gelu": nn.GELU,
        "tanh": nn.Tanh,
        "sigmoid": nn.Sigmoid,
        "silu": nn.SiLU,
    }
)
"""Activation names accepted by the models, mapped to their ``torch.nn`` class (read-only)."""


_HAS_INPLACE: frozenset[type[nn.Module]] = frozenset({nn.ReLU, nn.LeakyReLU, nn.ELU, nn.SiLU})


def make_activation(name: str, inplace: bool = False) -> nn.Module:
    """Return a new activation module for ``name``.

    Parameters
    ----------
    name : str
        One of the keys of :data:`ACTIVATIONS`.
    inplace : bool, default=False
        Overwrite the input where the activation supports it (ReLU, LeakyReLU, ELU, SiLU).
        Safe right after a ``Linear`` or a convolution, whose backward does not need their
        output, and it saves one allocation per layer, which matters on CPU: fresh
        multi-megabyte buffers cost page faults.

    Returns
    -------
    torch.nn.Module
        A fresh instance of the activation.

    Raises
    ------
    ValueError
        If ``name`` is not a known activation; the message lists the options.
    """
    try:
        cls = ACTIVATIONS[name]
    except (KeyError, TypeError):
        options = ", ".join(map(repr, ACTIVATIONS))
        raise ValueError(f"activation must be one of {options}; got {name!r}") from None
    return cls(inplace=True) if inplace and cls in _HAS_INPLACE else cls()


def check_positive_int(name: str, value: int) -> int:
    """Return ``value`` if it is a positive int, or raise ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def check_sizes(name: str, sizes: Sequence[int], *, min_len: int = 0) -> tuple[int, ...]:
    """Return ``sizes`` as a tuple of positive ints, or raise ValueError naming ``name``.

    A single int is one size (``hidden=8``: one layer of 8), as the CLI's ``-p hidden=8`` says.
    """
    if isinstance(sizes, int) and not isinstance(sizes, bool):
        sizes = (sizes,)
    if isinstance(sizes, str) or not hasattr(sizes, "__iter__"):
        raise ValueError(f"{name} must be a sequence of positive ints, got {sizes!r}")
    out = tuple(sizes)
    if len(out) < min_len or not all(
        isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in out
    ):
        raise ValueError(
            f"{name} must be a sequence of at least {min_len} positive ints, got {sizes!r}"
        )
    return out


def mlp(
    sizes: Sequence[int],
    activation: str = "relu",
    dropout: float = 0.0,
    final_activation: bool = False,
    batch_norm: bool = False,
) -> nn.Sequential:
    """Build ``Linear`` layers through ``sizes`` with an activation between them.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, input first and output last; at least two entries.
    activation : str, default="relu"
        Name of the activation (see :data:`ACTIVATIONS`).
    dropout : float, default=0.0
        Dropout probability after every activation; ``0`` adds no dropout layer.
    final_activation : bool, default=False
        Whether the last ``Linear`` is followed by the activation (and dropout) too.
        Leave it off for a linear output.
    batch_norm : bool, default=False
        Whether a ``BatchNorm1d`` sits between each hidden ``Linear`` and its activation
        (as in PyOD's ``AutoEncoder``). In eval mode it applies the running statistics
        of training, so a row's output does not depend on the rows scored with it.

    Returns
    -------
    torch.nn.Sequential
        The network.

    Raises
    ------
    ValueError
        On fewer than two sizes, a non-positive size, an unknown activation or a dropout
        outside ``[0, 1)``.

    Examples
    --------
    >>> mlp([4, 8, 2])
    Sequential(
      (0): Linear(in_features=4, out_features=8, bias=True)
      (1): ReLU(inplace=True)
      (2): Linear(in_features=8, out_features=2, bias=True)
    )
    """
    widths = check_sizes("sizes", sizes, min_len=2)
    make_activation(activation)  # validate early, even for a single layer
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    layers: list[nn.Module] = []
    n_layers = len(widths) - 1
    for i, (n_in, n_out) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.Linear(n_in, n_out))
        if i < n_layers - 1 or final_activation:
            if batch_norm:
                layers.append(nn.BatchNorm1d(n_out))
            layers.append(make_activation(activation, inplace=True))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)
