"""State for detectors that keep learning: a uniform running sample of the rows seen
(reservoir sampling) and exact streaming moments up to the fourth order.

Both are saved with the model as plain arrays and attributes, and both are checked when a
model file is loaded (:func:`check_reservoir`, :func:`check_moments`): ``partial_fit``
continues from them, and nothing in a file reaches it unchecked.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..base import IncrementalMixin
from ..errors import AnomaliaError, ModelFileError

#: Default bound on the running sample, in rows (``reservoir_size``).
DEFAULT_RESERVOIR_SIZE = 10_000

#: Attributes of the running sample, all present or all absent in a model (with ``n_seen_``).
RESERVOIR_ATTRIBUTES = ("reservoir_", "reservoir_size_", "reservoir_seed_")

#: Attributes of the streaming moments, all present or all absent in a model (with ``n_seen_``).
MOMENT_ATTRIBUTES = ("stream_mean_", "stream_m2_", "stream_m3_", "stream_m4_")

_MAX_COUNT = 2**62


# -- reservoir ---------------------------------------------------------------------------------
def update_reservoir(
    rows: NDArray[np.float64] | None,
    n_seen: int,
    X: NDArray[np.float64],
    size: int,
    seed: int,
) -> NDArray[np.float64]:
    """The running sample after the rows ``X`` arrive (Vitter's Algorithm R, vectorised).

    Row number ``t`` of the stream (counted from 0) fills the sample while ``t < size``;
    after that it replaces a uniformly drawn slot ``j`` in ``[0, t]`` when ``j < size``.
    Every row seen is then in the sample with the same probability ``size / n_seen``. The
    draws of each call come from a generator seeded by ``(seed, n_seen)``, so a stream cut
    into the same chunks gives the same sample, whether or not the model was saved between
    the chunks; one decision per row, as the sequential algorithm takes them.

    Parameters
    ----------
    rows : ndarray of shape (min(n_seen, size), n_features) or None
        The sample so far (None when nothing was seen).
    n_seen : int
        Rows seen before ``X``.
    X : ndarray of shape (n_new, n_features)
        The new rows, in stream order.
    size : int
        Most rows the sample keeps.
    seed : int
        Seed of the sample, fixed when the model was first fitted.

    Returns
    -------
    ndarray of shape (min(n_seen + n_new, size), n_features)
        The new sample (a new array; ``rows`` is not modified).
    """
    X = np.asarray(X, dtype=np.float64)
    out = np.empty((0, X.shape[1])) if rows is None else np.array(rows, dtype=np.float64)
    position = n_seen + np.arange(len(X), dtype=np.int64)  # each new row's place in the stream
    fill = position < size
    out = np.concatenate([out, X[fill]])
    rest = np.flatnonzero(~fill)
    if rest.size:
        rng = np.random.default_rng([int(seed), int(n_seen)])
        slot = rng.integers(0, position[rest] + 1)  # uniform in [0, t] for row t
        hit = slot < size
        slot, source = slot[hit][::-1], rest[hit][::-1]
        # a slot hit twice keeps the later row, as the sequential algorithm would
        slot, first = np.unique(slot, return_index=True)
        out[slot] = X[source[first]]
    return out


def _int_attr(det: Any, name: str, low: int, high: int) -> int:
    value = getattr(det, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ModelFileError(f"{name} must be an integer, got {type(value).__name__}")
    if not low <= int(value) < high:
        raise ModelFileError(f"{name} must lie in [{low}, {high}), got {value}")
    return int(value)


def _present(det: Any, names: tuple[str, ...], what: str) -> bool:
    if not any(hasattr(det, n) for n in names):
        return False
    names = (*names, "n_seen_")
    have = [hasattr(det, n) for n in names]
    if any(have) and not all(have):
        missing = [n for n, h in zip(names, have, strict=True) if not h]
        raise ModelFileError(f"the model's {what} lacks {', '.join(missing)}")
    return all(have)


def _float_array(det: Any, name: str, shape: tuple[int, ...]) -> NDArray[np.float64]:
    value = getattr(det, name)
    if not isinstance(value, np.ndarray) or value.dtype != np.float64 or value.shape != shape:
        got = getattr(value, "shape", type(value).__name__)
        raise ModelFileError(f"{name} must be a float64 array of shape {shape}, got {got}")
    return value


def check_reservoir(det: Any) -> None:
    """Refuse a loaded running sample that ``partial_fit`` could not continue from.

    A model without one (saved before it existed) passes: ``partial_fit`` then says so.
    """
    if not _present(det, RESERVOIR_ATTRIBUTES, "running sample"):
        return
    size = _int_attr(det, "reservoir_size_", 2, _MAX_COUNT)
    _int_attr(det, "reservoir_seed_", 0, 2**63)
    n_seen = _int_attr(det, "n_seen_", 1, _MAX_COUNT)
    _float_array(det, "reservoir_", (min(n_seen, size), int(det.n_features_in_)))


def require_reservoir(det: Any) -> None:
    """Raise :class:`AnomaliaError` if ``det`` keeps no running sample to update."""
    if not all(hasattr(det, n) for n in (*RESERVOIR_ATTRIBUTES, "n_seen_")):
        raise AnomaliaError(
            f"this {det.name} model keeps no running sample of its training rows (saved by an "
            "older anomalia, or fitted with other options), so it cannot partial_fit: fit it again"
        )


# -- moments -----------------------------------------------------------------------------------
Moments = tuple[int, NDArray[np.float64], NDArray[np.float64], NDArray[np.float64],
                NDArray[np.float64]]  # fmt: skip


def batch_moments(X: NDArray[np.float64]) -> Moments:
    """Count, mean and the central co-moment sums of the rows ``X`` about their mean.

    With ``A = X - mean``: ``M2 = A^T A`` (sums of ``a_i a_j``), ``M3[i, j] = sum a_i^2 a_j``
    and ``M4[i, j] = sum a_i^2 a_j^2``, each (n_features, n_features).
    """
    mean = X.mean(axis=0)
    A = X - mean
    A2 = A * A
    return len(X), mean, A.T @ A, A2.T @ A, A2.T @ A2


def _shifted(
    n: int, t: NDArray[np.float64], m2: NDArray[np.float64], m3: NDArray[np.float64],
    m4: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:  # fmt: skip
    """The co-moment sums of ``n`` rows about a point moved by ``-t`` from their mean.

    Deviations become ``a + t``; expanding the products and using ``sum a = 0`` gives the
    new sums from the old ones (Pebay 2008, co-moment form).
    """
    d2, t2 = np.diag(m2), t * t
    m4 = (
        m4
        + 2.0 * m3 * t[None, :]
        + 2.0 * m3.T * t[:, None]
        + np.outer(d2, t2)
        + np.outer(t2, d2)
        + 4.0 * m2 * np.outer(t, t)
        + n * np.outer(t2, t2)
    )
    m3 = m3 + np.outer(d2, t) + 2.0 * t[:, None] * m2 + n * np.outer(t2, t)
    m2 = m2 + n * np.outer(t, t)
    return m2, m3, m4


def merge_moments(a: Moments, b: Moments) -> Moments:
    """The moments of two sets of rows together (Chan et al.'s parallel update, to order 4).

    Exact up to rounding: the result equals :func:`batch_moments` of the rows of both sets.
    """
    n_a, mean_a, *rest_a = a
    n_b, mean_b, *rest_b = b
    n = n_a + n_b
    delta = mean_b - mean_a
    mean = mean_a + delta * (n_b / n)
    m_a = _shifted(n_a, mean_a - mean, *rest_a)
    m_b = _shifted(n_b, mean_b - mean, *rest_b)
    return n, mean, m_a[0] + m_b[0], m_a[1] + m_b[1], m_a[2] + m_b[2]


def check_moments(det: Any) -> None:
    """Refuse loaded streaming moments that ``partial_fit`` could not continue from."""
    if not _present(det, MOMENT_ATTRIBUTES, "streaming moments"):
        return
    _int_attr(det, "n_seen_", 1, _MAX_COUNT)
    d = int(det.n_features_in_)
    _float_array(det, "stream_mean_", (d,))
    m2 = _float_array(det, "stream_m2_", (d, d))
    _float_array(det, "stream_m3_", (d, d))
    m4 = _float_array(det, "stream_m4_", (d, d))
    if (np.diag(m2) < 0).any() or (m4 < 0).any():
        raise ModelFileError("the streaming moments hold negative sums of squares")


# -- the running-sample mixin -------------------------------------------------------------------
class ReservoirMixin(IncrementalMixin):
    """``partial_fit`` by refitting on a bounded, uniform running sample of the rows seen.

    The detector implements ``_fit_model(X)`` (its fit on validated rows) and has the
    parameters ``reservoir_size`` and ``random_state``; its ``_fit`` calls ``_fit_model`` and
    then :meth:`_start_reservoir`.
    """

    reservoir_size: int
    random_state: Any

    def _fit_model(self, X: NDArray[np.float64]) -> None:
        raise NotImplementedError

    def _start_reservoir(self, X: NDArray[np.float64]) -> None:
        """Begin the running sample with the training rows of ``fit`` (seeded once here)."""
        from ._torch import seed_from  # no torch import: the seed helper is plain numpy

        self.reservoir_size_ = int(self.reservoir_size)
        self.reservoir_seed_ = seed_from(self.random_state)
        self.reservoir_ = update_reservoir(None, 0, X, self.reservoir_size_, self.reservoir_seed_)
        self.n_seen_ = len(X)

    def _grow_reservoir(self, X: NDArray[np.float64]) -> None:
        self.reservoir_ = update_reservoir(
            self.reservoir_, self.n_seen_, X, self.reservoir_size_, self.reservoir_seed_
        )
        self.n_seen_ += len(X)

    def _check_can_update(self) -> None:
        require_reservoir(self)

    def _partial_fit(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        self._grow_reservoir(X)
        self._fit_model(self.reservoir_)
        return self.reservoir_

    def _check_restored(self) -> None:
        check_reservoir(self)
