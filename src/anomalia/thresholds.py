"""Choosing the decision threshold on anomaly scores from a labelled dev set.

A threshold ``t`` flags a record as anomalous when its anomaly score is strictly greater
than ``t``. Candidate thresholds are the midpoints between consecutive distinct dev scores
(plus one below the lowest and one at the highest score), so the chosen ``t`` separates
the dev set exactly as evaluated and sits halfway between the two dev scores it splits.

Labels follow the ADBench convention: ``y == 1`` is an anomaly, ``y == 0`` is normal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._utils.validation import check_fraction, check_option
from .errors import DataError

#: The threshold strategies of :func:`choose_threshold`: name -> what it chooses.
STRATEGIES: dict[str, str] = {
    "f1": "maximise F1 of the anomaly class",
    "fpr": "largest recall whose false-alarm rate is <= target",
    "recall": "smallest false-alarm rate whose recall is >= target",
    "cost": "minimise expected cost = cost_miss * misses + cost_false_alarm * false alarms",
}

#: The options each strategy uses; :func:`choose_threshold` refuses any other option given.
STRATEGY_OPTIONS: dict[str, tuple[str, ...]] = {
    "f1": (),
    "fpr": ("target",),
    "recall": ("target",),
    "cost": ("cost_miss", "cost_false_alarm"),
}


def check_binary_labels(y: ArrayLike, *, name: str = "y") -> NDArray[np.int64]:
    """Return labels as an int array of 0 (normal) and 1 (anomaly).

    Booleans are accepted (True = anomaly). Any other value raises :class:`DataError`.
    """
    arr = np.asarray(y)
    if arr.ndim != 1:
        arr = arr.reshape(-1) if arr.ndim == 2 and 1 in arr.shape else arr
    if arr.ndim != 1:
        raise DataError(f"{name} must be one-dimensional, got shape {np.shape(y)}")
    if arr.dtype == bool:
        return arr.astype(np.int64)
    try:
        num = arr.astype(np.float64)
    except (TypeError, ValueError):
        raise DataError(
            f"{name} must hold 0 (normal) and 1 (anomaly); got values like {arr[:3].tolist()}"
        ) from None
    bad = ~np.isin(num, (0.0, 1.0))
    if bad.any():
        vals = np.unique(arr[bad])[:5].tolist()
        raise DataError(f"{name} must hold only 0 (normal) and 1 (anomaly); found {vals}")
    return num.astype(np.int64)


@dataclass(frozen=True)
class OperatingPoints:
    """Confusion counts for every candidate threshold (anomaly iff score > threshold)."""

    thresholds: NDArray[np.float64]
    tp: NDArray[np.int64]
    fp: NDArray[np.int64]
    n_pos: int
    n_neg: int

    @property
    def fn(self) -> NDArray[np.int64]:
        """Missed anomalies (false negatives) at each threshold."""
        return self.n_pos - self.tp

    @property
    def recall(self) -> NDArray[np.float64]:
        """Share of the anomalies flagged at each threshold."""
        return self.tp / self.n_pos

    @property
    def fpr(self) -> NDArray[np.float64]:
        """False-alarm rate: share of the normal rows flagged at each threshold."""
        return self.fp / self.n_neg

    @property
    def f1(self) -> NDArray[np.float64]:
        """F1 of the anomaly class at each threshold (0 where it is undefined)."""
        denom = 2 * self.tp + self.fp + self.fn
        return np.divide(2 * self.tp, denom, out=np.zeros(len(self.tp)), where=denom > 0)


def operating_points(scores: ArrayLike, y: ArrayLike) -> OperatingPoints:
    """Confusion counts at every distinct cut of ``scores``, vectorised (no Python loop)."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = check_binary_labels(y)
    if s.shape != labels.shape:
        raise DataError(f"scores and labels differ in length: {s.shape[0]} vs {labels.shape[0]}")
    if not np.isfinite(s).all():
        raise DataError("anomaly scores contain NaN or infinity")
    n_pos = int(labels.sum())
    n_neg = int(labels.size - n_pos)
    if n_pos == 0:
        raise DataError("the dev set has no anomalies (label 1): cannot choose a threshold")
    if n_neg == 0:
        raise DataError("the dev set has no normal rows (label 0): cannot choose a threshold")
    u = np.unique(s)
    below = np.nextafter(u[0], -np.inf)
    cuts = np.concatenate(([below], (u[:-1] + u[1:]) / 2, [u[-1]]))
    pos = np.sort(s[labels == 1])
    neg = np.sort(s[labels == 0])
    tp = n_pos - np.searchsorted(pos, cuts, side="right")
    fp = n_neg - np.searchsorted(neg, cuts, side="right")
    return OperatingPoints(cuts, tp.astype(np.int64), fp.astype(np.int64), n_pos, n_neg)


#: The options a strategy uses when none are given (the README's table of strategies).
DEFAULT_OPTIONS: dict[str, dict[str, float]] = {
    "fpr": {"target": 0.01},
    "recall": {"target": 0.95},
    "cost": {"cost_miss": 50.0, "cost_false_alarm": 1.0},
}


def check_strategy(
    strategy: str,
    *,
    target: float | None = None,
    cost_miss: float | None = None,
    cost_false_alarm: float | None = None,
    names: dict[str, str] | None = None,
) -> dict[str, float]:
    """Refuse an unknown strategy, a bad option, or an option it does not use; return the
    options it will use, defaults filled in (:data:`DEFAULT_OPTIONS`).

    The checks of :func:`choose_threshold`, to run before any scoring.

    Parameters
    ----------
    strategy, target, cost_miss, cost_false_alarm
        As for :func:`choose_threshold`. ``fpr`` and ``recall`` without ``target`` use 0.01
        and 0.95; ``cost`` without costs uses 50 for a miss and 1 for a false alarm (give
        both costs, or neither).
    names : dict, optional
        What the caller calls each option in messages, e.g. ``{"target": "--target"}`` for
        a command line; by default the Python names.

    Returns
    -------
    dict of str to float
        The options ``strategy`` uses (empty for ``f1``).

    Raises
    ------
    DataError
        Naming the strategy and the option.
    """
    names = names or {}

    def name(option: str) -> str:
        return names.get(option, option)

    if strategy not in STRATEGIES:
        raise DataError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    given = {"target": target, "cost_miss": cost_miss, "cost_false_alarm": cost_false_alarm}
    uses = STRATEGY_OPTIONS[strategy]
    unused = [name(k) for k, v in given.items() if v is not None and k not in uses]
    if unused:
        raise DataError(
            f"strategy {strategy!r} does not use {' or '.join(unused)} "
            + (f"(it uses {' and '.join(map(name, uses))})" if uses else "(it takes no options)")
        )
    if strategy == "cost" and (cost_miss is None) != (cost_false_alarm is None):
        raise DataError(
            f"strategy 'cost' needs both {name('cost_miss')} and {name('cost_false_alarm')} "
            "(or neither: 50 for a miss, 1 for a false alarm)"
        )
    options = {k: float(v) for k, v in given.items() if k in uses and v is not None}
    options = {**DEFAULT_OPTIONS.get(strategy, {}), **options}
    if strategy in ("fpr", "recall") and not 0.0 <= options["target"] <= 1.0:
        raise DataError(f"strategy {strategy!r} needs {name('target')} in [0, 1], got {target!r}")
    if strategy == "cost" and (
        min(options["cost_miss"], options["cost_false_alarm"]) < 0
        or options["cost_miss"] + options["cost_false_alarm"] == 0
    ):
        raise DataError(
            f"{name('cost_miss')} and {name('cost_false_alarm')} must be >= 0 and not both zero"
        )
    return options


def choose_threshold(
    scores: ArrayLike,
    y: ArrayLike,
    strategy: str = "f1",
    *,
    target: float | None = None,
    cost_miss: float | None = None,
    cost_false_alarm: float | None = None,
) -> float:
    """Choose the anomaly-score threshold that best serves ``strategy`` on a dev set.

    Parameters
    ----------
    scores : array-like of shape (n_samples,)
        Anomaly scores of the dev set (higher = more anomalous).
    y : array-like of shape (n_samples,)
        Dev labels, 1 = anomaly, 0 = normal. Both classes must be present.
    strategy : {"f1", "fpr", "recall", "cost"}, default="f1"
        ``f1``: maximise F1. ``fpr``: largest recall with false-alarm rate <= ``target``.
        ``recall``: smallest false-alarm rate with recall >= ``target``.
        ``cost``: minimise ``cost_miss * FN + cost_false_alarm * FP``.
    target : float, optional
        A rate in [0, 1]: the highest tolerated false-alarm rate (``fpr``, default 0.01) or
        the lowest accepted recall (``recall``, default 0.95). Refused by the others.
    cost_miss, cost_false_alarm : float, optional
        Cost of one missed anomaly and of one false alarm, in any common unit (e.g. euros),
        both >= 0 and not both zero (``cost``; give both or neither: default 50 and 1).
        Refused by the others.

    Returns
    -------
    float
        Threshold: a record is anomalous when its score is strictly greater.

    Examples
    --------
    >>> choose_threshold([0.1, 0.2, 0.9, 1.0], [0, 0, 1, 1], "f1")
    0.55
    """
    options = check_strategy(
        strategy, target=target, cost_miss=cost_miss, cost_false_alarm=cost_false_alarm
    )
    op = operating_points(scores, y)
    # Candidate cuts run from low (flag everything) to high (flag nothing).
    if strategy == "f1":
        i = int(np.argmax(op.f1))
    elif strategy == "fpr":
        ok = np.flatnonzero(
            op.fpr <= options["target"] + 1e-12
        )  # the top cut (fp=0) always qualifies
        # recall falls as the cut rises: the lowest admissible cut has the largest recall
        i = int(ok[0])
    elif strategy == "recall":
        ok = np.flatnonzero(
            op.recall >= options["target"] - 1e-12
        )  # the bottom cut always qualifies
        i = int(ok[-1])  # highest cut that still reaches the recall: fewest false alarms
    else:
        cost = options["cost_miss"] * op.fn + options["cost_false_alarm"] * op.fp
        i = int(np.argmin(cost))
    return float(op.thresholds[i])


def describe_strategy(strategy: str, **kwargs: Any) -> dict[str, Any]:
    """A JSON-able record of how a threshold was chosen (kept in the model file)."""
    return {"strategy": strategy, **{k: v for k, v in kwargs.items() if v is not None}}


# -- estimating the contamination from training scores (contamination="auto") ---------------
#: The rules of :func:`estimate_contamination`: name -> what it estimates.
CONTAMINATION_METHODS: dict[str, str] = {
    "mad": "share of the scores above median + k * MAD (robust tail rule)",
    "gmm": "share of the scores in the upper component of a 2-component Gaussian mixture "
    "on log-scaled scores",
}
#: The tail rule's constant ``k`` (in robust standard deviations: 1.4826 MAD), chosen on
#: ADBench by benchmarks/contamination.py: the ``k`` with the best F1 under the ``unsup``
#: protocol among those that flag at most 5 % of clean training data (the ``clean``
#: protocol) on average, by leave-datasets-out cross-validation.
DEFAULT_MAD_K = 5.0
#: The rule ``contamination="auto"`` uses.
DEFAULT_CONTAMINATION_METHOD = "mad"
#: Most rows the mixture is fitted on (a fixed-seed sample beyond that); all rows are assigned.
GMM_MAX_ROWS = 100_000


def check_contamination(value: Any, *, name: str = "contamination") -> float | str | None:
    """Refuse a ``contamination`` that is not None, ``"auto"`` or a number in (0, 0.5].

    Returns the value (a number as float). Raises ValueError naming ``name``.
    """
    if value is None or (isinstance(value, str) and value == "auto"):
        return value
    if isinstance(value, str):
        raise ValueError(f"{name} must be 'auto' or a number in (0, 0.5], got {value!r}")
    return check_fraction(name, value, low=0.0, high=0.5)


def _log_scale(s: NDArray[np.float64]) -> NDArray[np.float64]:
    """``log1p((s - min) / (median - min))``: shift- and scale-free, the tail compressed."""
    low = s.min()
    spread = np.median(s) - low
    if spread <= 0:
        spread = s.max() - low
    return np.log1p((s - low) / spread)


def estimate_contamination(
    train_scores: ArrayLike,
    method: str = DEFAULT_CONTAMINATION_METHOD,
    *,
    k: float | None = None,
) -> float:
    """Estimate the share of anomalies in training data from its anomaly scores.

    What ``contamination="auto"`` uses to set ``threshold_`` (at the ``1 - estimate``
    quantile of the training scores). Unsupervised: no labels; the estimate depends only on
    the ranks and spacing of the scores, so it is the same for any shift or positive scaling
    of the scores.

    Parameters
    ----------
    train_scores : array-like of shape (n_samples,)
        Anomaly scores of the training rows (higher = more anomalous), finite, at least one.
    method : {"mad", "gmm"}, default="mad"
        ``"mad"``: the share of scores above ``median + k * 1.4826 * MAD`` (the median
        absolute deviation; where more than half the scores tie, the mean absolute
        deviation times 1.2533 instead), a robust tail rule that stays small on clean
        data. ``"gmm"``: the share of scores assigned to the upper component of a
        two-component Gaussian mixture fitted (scikit-learn, fixed seed, on at most
        :data:`GMM_MAX_ROWS` rows) to ``log1p((s - min) / (median - min))``; closer to the
        true share on heavily polluted data, but it always finds two groups, so on clean
        data it flags a third or more of the rows.
    k : float, optional
        ``"mad"`` only: how many robust standard deviations above the median a score
        must lie to count as anomalous (> 0; default :data:`DEFAULT_MAD_K`).

    Returns
    -------
    float
        Estimated share of anomalies in (0, 0.5]: at least ``1 / n_samples`` (one row; also
        for constant scores) and at most 0.5.

    Raises
    ------
    DataError
        If the scores are empty or hold NaN or infinity.
    ValueError
        For an unknown ``method`` or a bad ``k``.

    Examples
    --------
    >>> scores = np.r_[np.linspace(0.0, 1.0, 95), np.full(5, 10.0)]
    >>> estimate_contamination(scores)
    0.05
    """
    check_option("method", method, tuple(CONTAMINATION_METHODS))
    if k is not None and method != "mad":
        raise ValueError(f"k is an option of method 'mad', not {method!r}")
    k = DEFAULT_MAD_K if k is None else k
    if isinstance(k, bool) or not isinstance(k, int | float) or not np.isfinite(k) or k <= 0:
        raise ValueError(f"k must be a number > 0, got {k!r}")
    s = np.asarray(train_scores, dtype=np.float64).reshape(-1)
    if s.size == 0:
        raise DataError("no training scores to estimate the contamination from")
    if not np.isfinite(s).all():
        raise DataError("training scores contain NaN or infinity")
    floor = 1.0 / s.size
    if s.max() == s.min():  # constant scores: nothing stands out
        return min(floor, 0.5)
    if method == "mad":
        centre = np.median(s)
        dev = np.abs(s - centre)
        scale = 1.4826 * np.median(dev)
        if scale <= 0:  # over half the scores tie at the median
            scale = 1.2533 * dev.mean()
        share = float(np.count_nonzero(s > centre + k * scale)) / s.size
    else:
        share = _gmm_share(_log_scale(s))
    return float(min(max(share, floor), 0.5))


def _gmm_share(x: NDArray[np.float64]) -> float:
    """Share of ``x`` assigned to the upper of two Gaussian components (fixed seeds)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    fit_on = x
    if x.size > GMM_MAX_ROWS:
        fit_on = np.random.default_rng(0).choice(x, GMM_MAX_ROWS, replace=False)
    if np.unique(fit_on).size < 2:
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm = GaussianMixture(n_components=2, random_state=0).fit(fit_on[:, None])
    upper = int(np.argmax(gmm.means_.ravel()))
    return float(np.count_nonzero(gmm.predict(x[:, None]) == upper)) / x.size
