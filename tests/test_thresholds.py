"""Calibration strategies on data where the right threshold is known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from anomalia import DataError, make_detector
from anomalia.thresholds import check_binary_labels, choose_threshold, operating_points

# Scores sorted: normals at 1..8, anomalies at 6.5, 9, 10. Hand-checked operating points:
SCORES = np.array([1, 2, 3, 4, 5, 6, 7, 8, 6.5, 9, 10], dtype=float)
LABELS = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1])


def test_f1_picks_the_clean_cut():
    # cut at 8.5: TP=2 FP=0 FN=1 -> F1 = 4/5; cut at 6.25: TP=3 FP=2 -> F1 = 6/8 = 0.75
    assert choose_threshold(SCORES, LABELS, "f1") == 8.5


def test_fpr_target_gives_largest_recall_within_false_alarm_budget():
    # FPR <= 0.25 allows 2 false alarms (7, 8): the cut 6.25 catches all 3 anomalies
    assert choose_threshold(SCORES, LABELS, "fpr", target=0.25) == 6.25
    # FPR <= 0.1 allows 0 false alarms: cut 8.5, recall 2/3
    assert choose_threshold(SCORES, LABELS, "fpr", target=0.1) == 8.5


def test_recall_target_gives_fewest_false_alarms():
    assert choose_threshold(SCORES, LABELS, "recall", target=0.6) == 8.5  # 2/3 >= 0.6, 0 FP
    assert choose_threshold(SCORES, LABELS, "recall", target=1.0) == 6.25  # all 3, 2 FP


def test_cost_table_moves_the_threshold():
    # a miss costs 10, a false alarm 1: catching 6.5 (cost 2 FPs) beats missing it (10)
    assert choose_threshold(SCORES, LABELS, "cost", cost_miss=10, cost_false_alarm=1) == 6.25
    # a false alarm costs 10, a miss 1: flag nothing below 8.5
    assert choose_threshold(SCORES, LABELS, "cost", cost_miss=1, cost_false_alarm=10) == 8.5


def test_threshold_separates_exactly_as_counted():
    op = operating_points(SCORES, LABELS)
    for t, tp, fp in zip(op.thresholds, op.tp, op.fp, strict=True):
        flagged = t < SCORES
        assert flagged[LABELS == 1].sum() == tp and flagged[LABELS == 0].sum() == fp


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"strategy": "nope"}, "unknown strategy"),
        ({"strategy": "fpr", "target": -0.1}, "target"),
        ({"strategy": "recall", "target": 1.5}, "target"),
        ({"strategy": "cost", "cost_miss": 1.0}, "cost_false_alarm"),
        ({"strategy": "cost", "cost_miss": 0.0, "cost_false_alarm": 0.0}, "not both zero"),
        ({"strategy": "f1", "cost_miss": 1.0}, "'f1' does not use cost_miss .*no options"),
        ({"strategy": "f1", "target": 0.5}, "'f1' does not use target"),
        ({"strategy": "fpr", "target": 0.1, "cost_false_alarm": 1.0}, "uses target\\)"),
        (
            {"strategy": "cost", "target": 0.1, "cost_miss": 1.0, "cost_false_alarm": 1.0},
            "'cost' does not use target .*cost_miss and cost_false_alarm",
        ),
    ],
)
def test_bad_options_are_named(kwargs, match):
    with pytest.raises(DataError, match=match):
        choose_threshold(SCORES, LABELS, **kwargs)


@pytest.mark.parametrize(
    ("strategy", "defaults"),
    [
        ("fpr", {"target": 0.01}),
        ("recall", {"target": 0.95}),
        ("cost", {"cost_miss": 50.0, "cost_false_alarm": 1.0}),
        ("f1", {}),
    ],
)
def test_strategies_without_options_use_the_documented_defaults(strategy, defaults):
    from anomalia.thresholds import check_strategy

    assert check_strategy(strategy) == defaults
    assert choose_threshold(SCORES, LABELS, strategy) == choose_threshold(
        SCORES, LABELS, strategy, **defaults
    )


def test_messages_can_name_the_callers_flags():
    from anomalia.thresholds import check_strategy

    flags = {
        "target": "--target",
        "cost_miss": "--cost-miss",
        "cost_false_alarm": "--cost-false-alarm",
    }
    with pytest.raises(DataError, match="needs --target in"):
        check_strategy("fpr", target=2.0, names=flags)
    with pytest.raises(DataError, match="needs both --cost-miss and --cost-false-alarm"):
        check_strategy("cost", cost_miss=3.0, names=flags)


@pytest.mark.parametrize(
    ("labels", "match"),
    [(np.zeros(11), "no anomalies"), (np.ones(11), "no normal rows"), (np.arange(11), "only 0")],
)
def test_dev_set_must_hold_both_classes(labels, match):
    with pytest.raises(DataError, match=match):
        choose_threshold(SCORES, labels, "f1")


def test_labels_accept_bool_and_reject_text():
    np.testing.assert_array_equal(check_binary_labels([True, False]), [1, 0])
    with pytest.raises(DataError, match="0 \\(normal\\) and 1"):
        check_binary_labels(["a", "b"])


def test_calibrate_on_detector_sets_threshold_and_returns_self(blobs):
    train, X_test, y_test = blobs
    det = make_detector("gaussian").fit(train)
    default = det.threshold_
    assert det.calibrate(X_test, y_test, "f1") is det
    assert det.threshold_ != default
    assert det.calibration_["strategy"] == "f1"
    dev = det.calibration_["dev"]  # what the threshold reached on the dev set
    flagged = det.anomaly_score(X_test) > det.threshold_
    assert dev["recall"] == flagged[y_test == 1].mean()
    assert dev["false_alarm_rate"] == flagged[y_test == 0].mean()
    assert dev["n_samples"] == len(y_test) and "expected_cost" not in dev
    pred = det.predict(X_test) == -1
    assert (pred == (y_test == 1)).mean() == 1.0  # far outliers: a perfect cut exists
    det.calibrate(X_test, y_test, "cost", cost_miss=5.0, cost_false_alarm=1.0)
    assert {k: v for k, v in det.calibration_.items() if k != "dev"} == {
        "strategy": "cost",
        "cost_miss": 5.0,
        "cost_false_alarm": 1.0,
    }
    assert det.calibration_["dev"]["expected_cost"] >= 0
    with pytest.raises(DataError, match="no anomalies"):
        det.calibrate(X_test[y_test == 0], y_test[y_test == 0])


def test_calibrate_refuses_an_option_the_strategy_ignores(blobs):
    train, X_test, y_test = blobs
    det = make_detector("gaussian").fit(train)
    before = (det.threshold_, det.calibration_)
    with pytest.raises(DataError, match="'f1' does not use target"):
        det.calibrate(X_test, y_test, "f1", target=0.5)
    assert (det.threshold_, det.calibration_) == before
