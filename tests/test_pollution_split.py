"""The split of benchmarks/pollution.py: shares met (or capped), one test set, no leak."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "pollution.py"
SHARES = (0.0, 0.01, 0.02, 0.05, 0.10, 0.20)


@pytest.fixture(scope="module")
def pollution():
    spec = importlib.util.spec_from_file_location("benchmark_pollution", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shares_met_test_set_fixed_and_no_leak(pollution, seed):
    y = np.r_[np.zeros(1000, int), np.ones(300, int)]
    np.random.default_rng(seed).shuffle(y)
    split = pollution.pollution_split(y, SHARES, seed)
    n_normal_train = 500
    test = set(split.test.tolist())
    assert len(split.test) == 500 + 150
    assert int(y[split.test].sum()) == 150
    previous = set()
    for s in SHARES:
        train = split.train[s]
        k = int(y[train].sum())
        assert k == split.n_anomalies[s] == round(s * n_normal_train / (1 - s))
        assert not split.capped[s]
        assert len(train) == n_normal_train + k
        assert abs(k / len(train) - s) <= 0.5 / len(train)  # exact up to rounding of k
        assert len(np.unique(train)) == len(train)
        assert not test & set(train.tolist())  # no training row, normal or not, is tested
        assert previous <= set(train.tolist())  # a larger share adds to a smaller one
        previous = set(train.tolist())
    # every training set shares the same normals
    normals = {tuple(t[y[t] == 0]) for t in split.train.values()}
    assert len(normals) == 1


def test_test_set_does_not_depend_on_the_shares(pollution):
    y = np.r_[np.zeros(400, int), np.ones(100, int)]
    a = pollution.pollution_split(y, (0.0,), 7)
    b = pollution.pollution_split(y, SHARES, 7)
    np.testing.assert_array_equal(a.test, b.test)
    np.testing.assert_array_equal(a.train[0.0], b.train[0.0])
    assert pollution.pollution_split(y, SHARES, 8).test.tolist() != a.test.tolist()


def test_capped_when_the_pool_runs_out(pollution):
    y = np.r_[np.zeros(1000, int), np.ones(41, int)]  # 21 test anomalies, 20 in the pool
    split = pollution.pollution_split(y, SHARES, 0)
    assert int(y[split.test].sum()) == 21
    assert split.n_anomalies[0.02] == 10 and not split.capped[0.02]
    assert split.n_anomalies[0.05] == 20 and split.capped[0.05]  # wanted 26
    assert split.n_anomalies[0.20] == 20 and split.capped[0.20]
    assert not set(split.test.tolist()) & set(split.train[0.20].tolist())


def test_subsample_is_stratified_and_seeded(pollution):
    y = np.r_[np.zeros(9000, int), np.ones(1000, int)]
    keep = pollution.subsample(y, 5000, 0)
    assert len(keep) == 5000 and int(y[keep].sum()) == 500
    np.testing.assert_array_equal(keep, pollution.subsample(y, 5000, 0))
    assert pollution.subsample(y, 20000, 0).tolist() == list(range(10000))
