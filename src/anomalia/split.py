"""The train / dev / test workflow for anomaly detection.

Two protocols:

* ``"clean"``: the detector is trained on normal rows only. A share ``train_fraction`` of
  the normal rows (chosen at random) forms the training set; the remaining normal rows and
  *all* anomalies are split, stratified by label, into a dev set (a share ``dev_fraction``;
  used to choose the threshold) and a test set (used once, to report results).
* ``"polluted"``: as ``"clean"``, but the training set also holds anomalies, so that they
  make up a share ``pollution`` of it, as when unlabelled training data is not perfectly
  clean. Those anomalies are taken out of dev and test.

Labels follow the ADBench convention: ``y == 1`` is an anomaly, ``y == 0`` is normal.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state

from .errors import DataError
from .thresholds import check_binary_labels

__all__ = ["PROTOCOLS", "Split", "split_indices", "train_dev_test_split"]

#: The protocols of :func:`split_indices`: name -> what the training set holds.
PROTOCOLS: dict[str, str] = {
    "clean": "train on normal rows only; dev and test get the other normals and all anomalies",
    "polluted": "train on normal rows plus a share `pollution` of anomalies",
}


class Split(NamedTuple):
    """Row indices of the three parts, each an int64 array sorted in increasing order.

    The parts are disjoint and together cover every row of ``y``.
    """

    train: NDArray[np.int64]
    dev: NDArray[np.int64]
    test: NDArray[np.int64]


def _fraction(name: str, value: Any, high: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise DataError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not 0.0 < v < high:
        raise DataError(f"{name} must be in (0, {high:g}), got {value!r}")
    return v


def split_indices(
    y: ArrayLike,
    *,
    protocol: str = "clean",
    train_fraction: float = 0.5,
    pollution: float = 0.05,
    dev_fraction: float = 0.5,
    random_state: int | np.random.RandomState | None = None,
) -> Split:
    """Split row indices into train, dev and test sets following a protocol.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Labels, 1 = anomaly, 0 = normal (booleans accepted). At least 2 of each.
    protocol : {"clean", "polluted"}, default="clean"
        ``"clean"``: the training set holds normal rows only. ``"polluted"``: it also holds
        anomalies, a share ``pollution`` of it.
    train_fraction : float, default=0.5
        Share of the *normal* rows that go to training, in (0, 1); the training set gets
        ``round(train_fraction * n_normal)`` of them.
    pollution : float, default=0.05
        Share of anomalies in the training set with ``protocol="polluted"``, in (0, 0.5):
        ``k = round(pollution * n_train_normal / (1 - pollution))`` anomalies are added.
        Ignored with ``protocol="clean"``.
    dev_fraction : float, default=0.5
        Share of the remaining rows (those not in training) that go to the dev set, in
        (0, 1); the split is stratified by label and the rest is the test set.
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffling; pass an int for a reproducible split. The global random state
        is never seeded.

    Returns
    -------
    Split
        ``(train, dev, test)`` row indices, each sorted in increasing order (int64).

    Raises
    ------
    DataError
        When ``y`` is not binary, holds fewer than 2 normal rows or 2 anomalies, an option is
        out of range, or the data is too small for dev and test to each get at least one
        normal row and one anomaly.

    Examples
    --------
    >>> y = [0] * 100 + [1] * 20
    >>> s = split_indices(y, protocol="polluted", random_state=0)
    >>> len(s.train), int(sum(y[i] for i in s.train))
    (53, 3)
    """
    labels = check_binary_labels(y)
    if protocol not in PROTOCOLS:
        raise DataError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    train_fraction = _fraction("train_fraction", train_fraction)
    dev_fraction = _fraction("dev_fraction", dev_fraction)
    if protocol == "polluted":
        pollution = _fraction("pollution", pollution, high=0.5)

    normals = np.flatnonzero(labels == 0)
    anomalies = np.flatnonzero(labels == 1)
    if len(normals) < 2:
        raise DataError(f"need at least 2 normal rows (label 0) to split, found {len(normals)}")
    if len(anomalies) < 2:
        raise DataError(f"need at least 2 anomalies (label 1) to split, found {len(anomalies)}")

    n_train = round(train_fraction * len(normals))
    if n_train < 1 or len(normals) - n_train < 2:
        raise DataError(
            f"train_fraction={train_fraction:g} puts {n_train} of {len(normals)} normal rows in "
            "training; training needs at least 1, dev and test at least 1 each"
        )
    k = 0
    if protocol == "polluted":
        k = round(pollution * n_train / (1 - pollution))
        if k < 1:
            raise DataError(
                f"pollution={pollution:g} with {n_train} training normals gives 0 anomalies "
                "in training; raise pollution or train_fraction"
            )
        if len(anomalies) - k < 2:
            raise DataError(
                f"pollution={pollution:g} needs {k} anomalies in training, but only "
                f"{len(anomalies)} exist; dev and test need at least 1 each"
            )

    rng = check_random_state(random_state)
    normals = rng.permutation(normals)
    anomalies = rng.permutation(anomalies)
    train = np.concatenate([normals[:n_train], anomalies[:k]])
    rest = np.concatenate([normals[n_train:], anomalies[k:]])
    try:
        dev, test = train_test_split(
            rest, train_size=dev_fraction, stratify=labels[rest], random_state=rng
        )
    except ValueError as exc:
        raise DataError(f"cannot split dev and test: {exc}") from None
    for part, idx in (("dev", dev), ("test", test)):
        counts = np.bincount(labels[idx], minlength=2)
        if counts.min() == 0:
            missing = "normal rows" if counts[0] == 0 else "anomalies"
            raise DataError(
                f"the {part} set gets no {missing} with dev_fraction={dev_fraction:g}; "
                "use a dev_fraction nearer 0.5 or more data"
            )
    return Split(*(np.sort(a).astype(np.int64) for a in (train, dev, test)))


def train_dev_test_split(
    X: Any,
    y: ArrayLike,
    *,
    protocol: str = "clean",
    train_fraction: float = 0.5,
    pollution: float = 0.05,
    dev_fraction: float = 0.5,
    random_state: int | np.random.RandomState | None = None,
) -> tuple[Any, NDArray[np.int64], Any, NDArray[np.int64], Any, NDArray[np.int64]]:
    """Split features and labels into train, dev and test sets; see :func:`split_indices`.

    Parameters
    ----------
    X : ndarray or pandas.DataFrame of shape (n_samples, ...)
        Features (any number of trailing dimensions, e.g. images). DataFrames are indexed
        by position and keep their original index.
    y : array-like of shape (n_samples,)
        Labels, 1 = anomaly, 0 = normal.
    protocol, train_fraction, pollution, dev_fraction, random_state
        As in :func:`split_indices`.

    Returns
    -------
    X_train, y_train, X_dev, y_dev, X_test, y_test
        Rows in their original order within each part; ``y_*`` are int64 arrays.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(240.0).reshape(120, 2)
    >>> y = np.r_[np.zeros(100, int), np.ones(20, int)]
    >>> X_tr, y_tr, X_dev, y_dev, X_te, y_te = train_dev_test_split(X, y, random_state=0)
    >>> X_tr.shape, int(y_tr.sum()), len(y_dev), len(y_te)
    ((50, 2), 0, 35, 35)
    """
    labels = check_binary_labels(y)
    n = X.shape[0] if hasattr(X, "shape") else len(X)
    if n != len(labels):
        raise DataError(f"X and y differ in length: {n} rows vs {len(labels)} labels")
    split = split_indices(
        labels,
        protocol=protocol,
        train_fraction=train_fraction,
        pollution=pollution,
        dev_fraction=dev_fraction,
        random_state=random_state,
    )
    if isinstance(X, pd.DataFrame | pd.Series):
        parts = [X.iloc[idx] for idx in split]
    else:
        arr = np.asarray(X)
        parts = [arr[idx] for idx in split]
    return (
        parts[0],
        labels[split.train],
        parts[1],
        labels[split.dev],
        parts[2],
        labels[split.test],
    )
