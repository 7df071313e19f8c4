"""Evaluation metrics as pure functions of anomaly scores and labels.

Conventions (shared with :mod:`anomalia.thresholds`):

* labels: ``1`` (or ``True``) = anomaly, ``0`` (or ``False``) = normal;
* anomaly scores: higher = more anomalous;
* a record is flagged anomalous iff its score is *strictly* greater than the threshold.

Ranking metrics (ROC-AUC, average precision) and confusion counts come from
:mod:`sklearn.metrics`; this module only validates the inputs, turns user mistakes into
:class:`~anomalia.errors.DataError` and returns plain Python numbers (JSON-serialisable).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

from .errors import DataError
from .thresholds import check_binary_labels

__all__ = [
    "average_precision",
    "evaluate",
    "expected_cost",
    "false_alarm_rate",
    "roc_auc",
]


def check_scores(
    scores: ArrayLike, n_samples: int | None = None, *, name: str = "scores"
) -> NDArray[np.float64]:
    """Return anomaly scores as a finite 1-D float64 array, or raise :class:`DataError`.

    Parameters
    ----------
    scores : array-like of shape (n_samples,) or (n_samples, 1)
        Anomaly scores, in the detector's own unit (higher = more anomalous).
    n_samples : int, optional
        Expected number of scores (the number of labels); checked when given.
    name : str, default="scores"
        Name of the argument, used in error messages.

    Returns
    -------
    ndarray of shape (n_samples,), dtype float64
        The scores.
    """
    try:
        arr = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{name} must be numeric anomaly scores") from None
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise DataError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise DataError(f"{name} is empty")
    if n_samples is not None and arr.shape[0] != n_samples:
        raise DataError(
            f"{name} and labels differ in length: {arr.shape[0]} scores vs {n_samples} labels"
        )
    if not np.isfinite(arr).all():
        n_bad = int((~np.isfinite(arr)).sum())
        raise DataError(f"{name} contain {n_bad} NaN or infinite value(s)")
    return arr


def check_labels_and_scores(
    y_true: ArrayLike, scores: ArrayLike, *, name: str = "scores"
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Validate labels (0 normal / 1 anomaly) and matching finite scores; see :func:`check_scores`.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels, 1 (or True) = anomaly, 0 (or False) = normal.
    scores : array-like of shape (n_samples,)
        Anomaly scores (higher = more anomalous).
    name : str, default="scores"
        Name of the scores argument, used in error messages.

    Returns
    -------
    y : ndarray of shape (n_samples,), dtype int64
        Labels as 0/1.
    scores : ndarray of shape (n_samples,), dtype float64
        The scores.
    """
    y = check_binary_labels(y_true, name="y_true")
    if y.size == 0:
        raise DataError("y_true is empty")
    return y, check_scores(scores, y.shape[0], name=name)


def _check_flags(
    y_true: ArrayLike, y_flag: ArrayLike
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    y = check_binary_labels(y_true, name="y_true")
    flag = check_binary_labels(y_flag, name="y_flag")
    if y.size == 0:
        raise DataError("y_true is empty")
    if flag.shape != y.shape:
        raise DataError(
            f"y_flag and y_true differ in length: {flag.shape[0]} flags vs {y.shape[0]} labels"
        )
    return y, flag


def _require_both_classes(y: NDArray[np.int64], what: str) -> None:
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        present = "anomalies (1)" if n_pos else "normal rows (0)"
        raise DataError(f"{what} needs both classes in y_true; it holds only {present}")


def _counts(y: NDArray[np.int64], flag: NDArray[np.int64]) -> tuple[int, int, int, int]:
    """Return ``(tn, fp, fn, tp)`` as Python ints."""
    tn, fp, fn, tp = confusion_matrix(y, flag, labels=[0, 1]).ravel()
    return int(tn), int(fp), int(fn), int(tp)


def _check_cost(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0:
        raise DataError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


def roc_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Compute the area under the ROC curve of anomaly scores.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels, 1 (or True) = anomaly, 0 (or False) = normal. Both must be present.
    scores : array-like of shape (n_samples,)
        Anomaly scores, any unit (higher = more anomalous); only their ranking matters.

    Returns
    -------
    float
        ROC-AUC in [0, 1]: the probability that a random anomaly scores higher than a
        random normal record (ties count one half). 0.5 is chance, 1.0 a perfect ranking.

    Examples
    --------
    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    y, s = check_labels_and_scores(y_true, scores)
    _require_both_classes(y, "ROC-AUC")
    return float(roc_auc_score(y, s))


def average_precision(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Compute the average precision (step-wise area under the PR curve) of anomaly scores.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels, 1 (or True) = anomaly, 0 (or False) = normal. At least one anomaly.
    scores : array-like of shape (n_samples,)
        Anomaly scores, any unit (higher = more anomalous); only their ranking matters.

    Returns
    -------
    float
        Average precision in [0, 1]; a random ranking scores about the anomaly prevalence.

    Examples
    --------
    >>> average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.8333333333333333
    """
    y, s = check_labels_and_scores(y_true, scores)
    if not y.any():
        raise DataError("average precision needs at least one anomaly (1) in y_true")
    return float(average_precision_score(y, s))


def false_alarm_rate(y_true: ArrayLike, y_flag: ArrayLike) -> float:
    """Compute the fraction of normal records flagged anomalous: ``FP / (FP + TN)``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels, 1 (or True) = anomaly, 0 (or False) = normal. At least one normal.
    y_flag : array-like of shape (n_samples,)
        Decisions, 1 (or True) = flagged anomalous, 0 (or False) = passed as normal,
        e.g. ``scores > threshold``.

    Returns
    -------
    float
        False-alarm rate (false-positive rate) in [0, 1], a fraction of the normal records.

    Examples
    --------
    >>> false_alarm_rate([0, 0, 0, 0, 1], [1, 0, 0, 0, 1])
    0.25
    """
    y, flag = _check_flags(y_true, y_flag)
    tn, fp, _, _ = _counts(y, flag)
    if tn + fp == 0:
        raise DataError("the false-alarm rate needs at least one normal row (0) in y_true")
    return fp / (fp + tn)


def expected_cost(
    y_true: ArrayLike, y_flag: ArrayLike, *, cost_miss: float, cost_false_alarm: float
) -> float:
    """Compute the mean cost per record: ``(cost_miss * FN + cost_false_alarm * FP) / n_samples``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels, 1 (or True) = anomaly, 0 (or False) = normal.
    y_flag : array-like of shape (n_samples,)
        Decisions, 1 (or True) = flagged anomalous, 0 (or False) = passed as normal.
    cost_miss : float
        Cost of one missed anomaly (false negative), >= 0, in any unit (e.g. euros).
    cost_false_alarm : float
        Cost of one false alarm (false positive), >= 0, in the same unit as ``cost_miss``.

    Returns
    -------
    float
        Average cost per record, in the unit of the costs. Correct decisions cost nothing.

    Examples
    --------
    >>> expected_cost([0, 0, 1, 1], [1, 0, 0, 1], cost_miss=10.0, cost_false_alarm=1.0)
    2.75
    """
    c_miss = _check_cost("cost_miss", cost_miss)
    c_fa = _check_cost("cost_false_alarm", cost_false_alarm)
    y, flag = _check_flags(y_true, y_flag)
    _, fp, fn, _ = _counts(y, flag)
    return (c_miss * fn + c_fa * fp) / y.size


def evaluate(
    y_true: ArrayLike,
    scores: ArrayLike,
    threshold: float,
    *,
    cost_miss: float | None = None,
    cost_false_alarm: float | None = None,
) -> dict[str, float | int]:
    """Compute all metrics of anomaly scores and of one decision threshold, as a flat dict.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels, 1 (or True) = anomaly, 0 (or False) = normal. Both must be present.
    scores : array-like of shape (n_samples,)
        Anomaly scores (higher = more anomalous), in the detector's own unit.
    threshold : float
        Decision threshold, in the unit of ``scores``: a record is flagged anomalous iff
        its score is strictly greater than ``threshold``.
    cost_miss : float, optional
        Cost of one missed anomaly, >= 0, in any unit. Give it with ``cost_false_alarm``.
    cost_false_alarm : float, optional
        Cost of one false alarm, >= 0, same unit. Give it with ``cost_miss``.

    Returns
    -------
    dict of str to float or int
        In this order: ``roc_auc``, ``average_precision`` (threshold-free ranking metrics),
        ``threshold``, ``precision``, ``recall``, ``f1``, ``false_alarm_rate`` (rates in
        [0, 1] at the threshold; precision is 0 when nothing is flagged), ``tp``, ``fp``,
        ``tn``, ``fn`` (record counts), ``n_samples``, ``n_anomalies``, and
        ``expected_cost`` (mean cost per record, see :func:`expected_cost`) when both costs
        are given. Rates are Python floats, counts Python ints.

    Examples
    --------
    >>> m = evaluate([0, 0, 0, 1, 1], [0.1, 0.2, 0.7, 0.6, 0.9], threshold=0.5)
    >>> m["tp"], m["fp"], m["tn"], m["fn"], m["precision"], m["recall"]
    (2, 1, 2, 0, 0.6666666666666666, 1.0)
    """
    if (cost_miss is None) != (cost_false_alarm is None):
        raise DataError("give both cost_miss and cost_false_alarm, or neither")
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise DataError(f"threshold must be a number, got {threshold!r}") from None
    if math.isnan(t):
        raise DataError("threshold is NaN")
    y, s = check_labels_and_scores(y_true, scores)
    _require_both_classes(y, "evaluate")
    flag = (s > t).astype(np.int64)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y, flag, pos_label=1, average="binary", zero_division=0
    )
    tn, fp, fn, tp = _counts(y, flag)
    result: dict[str, float | int] = {
        "roc_auc": float(roc_auc_score(y, s)),
        "average_precision": float(average_precision_score(y, s)),
        "threshold": t,
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "false_alarm_rate": fp / (fp + tn),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "n_samples": int(y.size),
        "n_anomalies": int(y.sum()),
    }
    if cost_miss is not None and cost_false_alarm is not None:
        c_miss = _check_cost("cost_miss", cost_miss)
        c_fa = _check_cost("cost_false_alarm", cost_false_alarm)
        result["expected_cost"] = (c_miss * fn + c_fa * fp) / y.size
    return result
