"""The lecture's workflow: train set, dev set to choose the threshold, test set to report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import metrics
from .registry import make_detector
from .split import split_indices
from .thresholds import choose_threshold


@dataclass
class ExperimentResult:
    """Per-detector test metrics, plus what the plots need."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    scores: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    detectors: dict[str, Any] = field(default_factory=dict)
    y_test: NDArray[np.int64] | None = None
    sizes: dict[str, int] = field(default_factory=dict)


def run_experiment(
    X: Any,
    y: NDArray[np.int64],
    detectors: Mapping[str, Mapping[str, Any]],
    *,
    protocol: str = "clean",
    train_fraction: float = 0.5,
    pollution: float = 0.05,
    strategy: str = "f1",
    strategy_kwargs: Mapping[str, Any] | None = None,
    cost_miss: float | None = None,
    cost_false_alarm: float | None = None,
    cost_tables: Mapping[str, tuple[float, float]] | None = None,
    classes: Any = None,
    random_state: int = 0,
) -> ExperimentResult:
    """Split, fit each detector on train, calibrate on dev, evaluate on test.

    Parameters
    ----------
    X : array-like or DataFrame of shape (n_samples, n_features)
        All rows, normal and anomalous.
    y : ndarray of shape (n_samples,)
        1 = anomaly, 0 = normal.
    detectors : mapping
        Label -> ``{"detector": registry name, **params}``; the label names the row.
    protocol : {"clean", "polluted"}, default="clean"
        ``clean`` trains on normals only; ``polluted`` mixes a share ``pollution`` of
        anomalies into training (see :func:`anomalia.split.split_indices`).
    train_fraction : float, default=0.5
        Share of the normal rows used for training.
    pollution : float, default=0.05
        Share of anomalies in the training set under ``polluted``.
    strategy : str, default="f1"
        Threshold strategy on dev (see :func:`anomalia.thresholds.choose_threshold`).
    strategy_kwargs : mapping, optional
        ``target`` or the costs for that strategy.
    cost_miss, cost_false_alarm : float, optional
        Cost table used to report the expected cost on test.
    cost_tables : mapping, optional
        Name -> (cost of a miss, cost of a false alarm). For each table the threshold that
        minimises that cost on dev is chosen, and the test set reports ``cost_<name>`` (mean
        cost per row) and ``threshold_<name>``.
    classes : array-like of shape (n_samples,), optional
        Known classes of the rows, for detectors trained with labels (``confidence``).
    random_state : int, default=0
        Seeds the split and every detector that takes a ``random_state``.
    """
    split = split_indices(
        y,
        protocol=protocol,
        train_fraction=train_fraction,
        pollution=pollution,
        random_state=random_state,
    )
    take = (lambda idx: X.iloc[idx]) if hasattr(X, "iloc") else (lambda idx: np.asarray(X)[idx])
    X_train, X_dev, X_test = take(split.train), take(split.dev), take(split.test)
    result = ExperimentResult(
        y_test=y[split.test],
        sizes={"train": len(split.train), "dev": len(split.dev), "test": len(split.test)},
    )
    for label, spec in detectors.items():
        params = dict(spec)
        name = params.pop("detector", label)
        det = make_detector(name, **params)
        if "random_state" in det.get_params() and "random_state" not in params:
            det.set_params(random_state=random_state)
        if classes is not None and det.__sklearn_tags__().target_tags.required:
            det.fit(X_train, np.asarray(classes)[split.train])
        else:
            det.fit(X_train)
        dev_scores, scores = det.anomaly_score(X_dev), det.anomaly_score(X_test)
        row: dict[str, Any] = {"detector": label}
        for table, (miss, false_alarm) in (cost_tables or {}).items():
            t = choose_threshold(
                dev_scores, y[split.dev], "cost", cost_miss=miss, cost_false_alarm=false_alarm
            )
            row[f"cost_{table}"] = metrics.expected_cost(
                y[split.test], scores > t, cost_miss=miss, cost_false_alarm=false_alarm
            )
            row[f"threshold_{table}"] = t
        det.calibrate(X_dev, y[split.dev], strategy, **dict(strategy_kwargs or {}))
        row.update(
            metrics.evaluate(
                y[split.test],
                scores,
                det.threshold_,
                cost_miss=cost_miss,
                cost_false_alarm=cost_false_alarm,
            )
        )
        result.rows.append(row)
        result.scores[label] = scores
        result.thresholds[label] = det.threshold_
        result.detectors[label] = det
    return result
