"""Metrics against values worked out by hand on tiny arrays."""

from __future__ import annotations

import json

import numpy as np
import pytest

from anomalia.errors import DataError
from anomalia.metrics import (
    average_precision,
    evaluate,
    expected_cost,
    false_alarm_rate,
    roc_auc,
)

# Six records, 4 normal and 2 anomalies.
#   index   0    1    2    3    4    5
Y = [0, 0, 0, 0, 1, 1]
S = [0.1, 0.3, 0.6, 0.2, 0.8, 0.4]
# With threshold 0.5 (flag iff score > 0.5) records 2 and 4 are flagged:
#   TP = 1 (record 4)   FP = 1 (record 2)   TN = 3 (records 0, 1, 3)   FN = 1 (record 5)
#   precision = 1 / (1 + 1) = 0.5, recall = 1 / (1 + 1) = 0.5, F1 = 0.5
#   false-alarm rate = FP / (FP + TN) = 1 / 4
#   cost with miss = 10, false alarm = 1: (10 * 1 + 1 * 1) / 6 = 11 / 6
# ROC-AUC: anomaly 0.8 outranks all 4 normals, 0.4 outranks 3 (not 0.6): 7 / 8 pairs.
# AP: ranked 0.8 (hit), 0.6 (miss), 0.4 (hit): 0.5 * 1 + 0.5 * 2/3 = 5 / 6.
FLAGS = [0, 0, 1, 0, 1, 0]

KEYS = [
    "roc_auc",
    "average_precision",
    "threshold",
    "precision",
    "recall",
    "f1",
    "false_alarm_rate",
    "tp",
    "fp",
    "tn",
    "fn",
    "n_samples",
    "n_anomalies",
]


def test_evaluate_matches_hand_computed_values():
    m = evaluate(Y, S, 0.5, cost_miss=10.0, cost_false_alarm=1.0)
    assert list(m) == [*KEYS, "expected_cost"]
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (1, 1, 3, 1)
    assert (m["n_samples"], m["n_anomalies"]) == (6, 2)
    assert m["threshold"] == 0.5
    assert m["precision"] == pytest.approx(0.5)
    assert m["recall"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx(0.5)
    assert m["false_alarm_rate"] == pytest.approx(0.25)
    assert m["expected_cost"] == pytest.approx(11 / 6)
    assert m["roc_auc"] == pytest.approx(7 / 8)
    assert m["average_precision"] == pytest.approx(5 / 6)


def test_evaluate_returns_plain_python_numbers():
    m = evaluate(np.array(Y), np.array(S, dtype=np.float32), np.float64(0.5))
    assert list(m) == KEYS
    for key in ("tp", "fp", "tn", "fn", "n_samples", "n_anomalies"):
        assert type(m[key]) is int
    for key in ("roc_auc", "average_precision", "threshold", "precision", "f1"):
        assert type(m[key]) is float
    assert json.loads(json.dumps(m)) == m


def test_evaluate_threshold_is_strict():
    at_score = evaluate(Y, S, 0.4)  # record 5 scores exactly 0.4: not flagged
    below = evaluate(Y, S, 0.39)
    assert (at_score["tp"], at_score["fn"]) == (1, 1)
    assert (below["tp"], below["fn"]) == (2, 0)


def test_evaluate_nothing_flagged_gives_zero_precision_without_warning():
    m = evaluate(Y, S, 1.0)
    assert (m["tp"], m["fp"], m["precision"], m["recall"], m["f1"]) == (0, 0, 0.0, 0.0, 0.0)


def test_evaluate_needs_both_costs_or_neither():
    with pytest.raises(DataError, match="both"):
        evaluate(Y, S, 0.5, cost_miss=1.0)


def test_false_alarm_rate_hand_computed_and_accepts_booleans():
    assert false_alarm_rate(Y, FLAGS) == pytest.approx(1 / 4)
    assert false_alarm_rate(np.array(Y, bool), np.array(S) > 0.5) == pytest.approx(1 / 4)


def test_false_alarm_rate_needs_normals():
    with pytest.raises(DataError, match="normal"):
        false_alarm_rate([1, 1], [0, 1])


def test_expected_cost_hand_computed():
    assert expected_cost(Y, FLAGS, cost_miss=10.0, cost_false_alarm=1.0) == pytest.approx(11 / 6)
    # flag everything: 4 false alarms, no miss
    assert expected_cost(Y, [1] * 6, cost_miss=10.0, cost_false_alarm=1.0) == pytest.approx(4 / 6)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_expected_cost_rejects_bad_costs(bad):
    with pytest.raises(DataError, match="cost_miss"):
        expected_cost(Y, FLAGS, cost_miss=bad, cost_false_alarm=1.0)


def test_roc_auc_perfect_reversed_and_hand_computed():
    y = [0, 0, 0, 1, 1]
    perfect = [0.1, 0.2, 0.3, 0.8, 0.9]
    assert roc_auc(y, perfect) == 1.0
    assert roc_auc(y, [-v for v in perfect]) == 0.0
    assert roc_auc(y, [0.5] * 5) == 0.5  # all tied: chance
    assert roc_auc(Y, S) == pytest.approx(7 / 8)


def test_average_precision_hand_computed():
    assert average_precision(Y, S) == pytest.approx(5 / 6)
    assert average_precision([0, 0, 1], [0.1, 0.2, 0.9]) == 1.0


@pytest.mark.parametrize("labels", [[0, 0, 0], [1, 1, 1]])
@pytest.mark.parametrize("func", [roc_auc, lambda y, s: evaluate(y, s, 0.5)])
def test_one_class_labels_raise(func, labels):
    with pytest.raises(DataError, match="both classes"):
        func(labels, [0.1, 0.2, 0.3])


def test_average_precision_needs_an_anomaly():
    with pytest.raises(DataError, match="anomaly"):
        average_precision([0, 0, 0], [0.1, 0.2, 0.3])


@pytest.mark.parametrize(
    "call",
    [
        lambda: roc_auc(Y, S[:5]),
        lambda: average_precision(Y, [*S, 0.5]),
        lambda: evaluate(Y, S[:5], 0.5),
        lambda: false_alarm_rate(Y, FLAGS[:5]),
        lambda: expected_cost(Y, FLAGS[:5], cost_miss=1.0, cost_false_alarm=1.0),
    ],
)
def test_length_mismatch_raises(call):
    with pytest.raises(DataError, match="differ in length"):
        call()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("func", [roc_auc, average_precision, lambda y, s: evaluate(y, s, 0.5)])
def test_non_finite_scores_raise(func, bad):
    with pytest.raises(DataError, match="NaN or infinite"):
        func(Y, [*S[:5], bad])


def test_labels_other_than_0_1_raise_a_value_error():
    with pytest.raises(ValueError, match="0 \\(normal\\) and 1 \\(anomaly\\)"):
        roc_auc([0, 1, 2], [0.1, 0.2, 0.3])


def test_nan_threshold_raises():
    with pytest.raises(DataError, match="threshold"):
        evaluate(Y, S, float("nan"))
