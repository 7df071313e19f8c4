"""The train/dev/test workflow, and the quality bar on breast cancer."""

from __future__ import annotations

import pytest

from anomalia.datasets import load
from anomalia.workflow import run_experiment


@pytest.fixture(scope="module")
def breast_cancer_clean():
    X, y = load("breast-cancer")
    dets = {n: {"detector": n} for n in ("gaussian", "ocsvm", "iforest")}
    return run_experiment(
        X,
        y,
        dets,
        protocol="clean",
        strategy="f1",
        random_state=0,
        cost_miss=10,
        cost_false_alarm=1,
    )


def test_clean_protocol_sizes(breast_cancer_clean):
    # 357 benign: round(0.5 * 357) = 178 train; 179 benign + 212 malignant split 50/50
    assert breast_cancer_clean.sizes == {"train": 178, "dev": 195, "test": 196}
    assert breast_cancer_clean.y_test.sum() == 106


@pytest.mark.parametrize("name", ["gaussian", "ocsvm", "iforest"])
def test_breast_cancer_roc_auc_at_least_0_9(breast_cancer_clean, name):
    row = next(r for r in breast_cancer_clean.rows if r["detector"] == name)
    assert row["roc_auc"] >= 0.9
    assert row["f1"] > 0.7
    assert "expected_cost" in row


def test_polluted_protocol_runs_with_contamination():
    X, y = load("breast-cancer")
    res = run_experiment(
        X,
        y,
        {"iforest": {"contamination": 0.05}},
        protocol="polluted",
        pollution=0.05,
        random_state=1,
    )
    assert res.sizes["train"] == 178 + 9  # round(0.05 * 178 / 0.95) = 9 anomalies mixed in
    assert res.rows[0]["roc_auc"] > 0.85


def test_repeatable(breast_cancer_clean):
    X, y = load("breast-cancer")
    again = run_experiment(X, y, {"iforest": {}}, random_state=0, cost_miss=10, cost_false_alarm=1)
    first = next(r for r in breast_cancer_clean.rows if r["detector"] == "iforest")
    assert again.rows[0] == first
