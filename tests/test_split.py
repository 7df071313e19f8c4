"""The clean and polluted train/dev/test protocols."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from anomalia.errors import DataError
from anomalia.split import Split, split_indices, train_dev_test_split

Y = np.r_[np.zeros(100, dtype=np.int64), np.ones(20, dtype=np.int64)]  # 100 normals, 20 anomalies


def check_partition(split: Split, n: int) -> None:
    parts = [split.train, split.dev, split.test]
    for p in parts:
        assert p.dtype == np.int64
        assert np.all(np.diff(p) > 0)  # sorted, no repeats
    both = np.concatenate(parts)
    assert len(both) == n
    np.testing.assert_array_equal(np.sort(both), np.arange(n))  # disjoint and covering


def test_clean_sizes():
    s = split_indices(Y, random_state=0)
    check_partition(s, 120)
    assert len(s.train) == 50  # round(0.5 * 100)
    assert Y[s.train].sum() == 0
    # the other 50 normals and all 20 anomalies, half to dev, stratified
    assert np.bincount(Y[s.dev]).tolist() == [25, 10]
    assert np.bincount(Y[s.test]).tolist() == [25, 10]


def test_polluted_sizes():
    s = split_indices(Y, protocol="polluted", pollution=0.05, random_state=0)
    check_partition(s, 120)
    k = round(0.05 * 50 / 0.95)
    assert k == 3
    assert np.bincount(Y[s.train]).tolist() == [50, 3]
    assert Y[s.dev].sum() + Y[s.test].sum() == 17
    assert sorted([Y[s.dev].sum(), Y[s.test].sum()]) == [8, 9]
    assert (Y[s.dev] == 0).sum() + (Y[s.test] == 0).sum() == 50


def test_train_fraction_and_dev_fraction():
    s = split_indices(Y, train_fraction=0.8, dev_fraction=0.25, random_state=1)
    check_partition(s, 120)
    assert len(s.train) == 80
    assert np.bincount(Y[s.dev]).tolist() == [5, 5]  # 25 % of 20 normals and 20 anomalies
    assert np.bincount(Y[s.test]).tolist() == [15, 15]


def test_deterministic_and_seed_dependent():
    a = split_indices(Y, protocol="polluted", random_state=42)
    b = split_indices(Y, protocol="polluted", random_state=42)
    c = split_indices(Y, protocol="polluted", random_state=43)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.train, c.train)


def test_global_random_state_untouched():
    state = np.random.get_state()[1].copy()
    split_indices(Y, random_state=0)
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_bool_labels_and_shuffled_positions():
    rng = np.random.default_rng(0)
    y = rng.permutation(Y).astype(bool)
    s = split_indices(y, protocol="polluted", random_state=0)
    check_partition(s, 120)
    assert y[s.train].sum() == 3


def test_train_dev_test_split_arrays_and_frames():
    X = np.arange(240.0).reshape(120, 2)
    out = train_dev_test_split(X, Y, protocol="polluted", random_state=0)
    s = split_indices(Y, protocol="polluted", random_state=0)
    X_tr, y_tr, _, y_dev, X_te, _ = out
    np.testing.assert_array_equal(X_tr, X[s.train])
    np.testing.assert_array_equal(y_dev, Y[s.dev])
    assert X_te.shape == (len(s.test), 2)
    assert y_tr.dtype == np.int64
    df = pd.DataFrame(X, columns=["a", "b"], index=np.arange(120) + 1000)
    df_tr, _, df_dev, _, _, _ = train_dev_test_split(df, Y, protocol="polluted", random_state=0)
    assert isinstance(df_tr, pd.DataFrame)
    np.testing.assert_array_equal(df_tr.index, s.train + 1000)
    np.testing.assert_array_equal(df_dev.to_numpy(), X[s.dev])


def test_length_mismatch():
    with pytest.raises(DataError, match="differ in length"):
        train_dev_test_split(np.zeros((5, 2)), Y)


@pytest.mark.parametrize(
    ("y", "match"),
    [
        ([0, 0, 0, 1, 2], "only 0 \\(normal\\) and 1"),
        ([0, 0, 0, 0, 1], "at least 2 anomalies"),
        ([0, 1, 1, 1, 1], "at least 2 normal rows"),
    ],
)
def test_bad_labels(y, match):
    with pytest.raises(DataError, match=match):
        split_indices(y)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"protocol": "dirty"}, "unknown protocol 'dirty'"),
        ({"train_fraction": 1.0}, "train_fraction must be in"),
        ({"train_fraction": 0}, "train_fraction must be in"),
        ({"dev_fraction": 1.5}, "dev_fraction must be in"),
        ({"protocol": "polluted", "pollution": 0.5}, "pollution must be in"),
        ({"protocol": "polluted", "pollution": 0.0}, "pollution must be in"),
        ({"train_fraction": "half"}, "must be a number"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(DataError, match=match):
        split_indices(Y, **kwargs)


def test_pollution_ignored_for_clean():
    s = split_indices(Y, pollution=0.9, random_state=0)
    assert Y[s.train].sum() == 0


def test_not_enough_anomalies_for_pollution():
    y = np.r_[np.zeros(100, int), np.ones(4, int)]
    # k = round(0.1 * 50 / 0.9) = 6 anomalies wanted, only 4 exist
    with pytest.raises(DataError, match="needs 6 anomalies in training, but only 4 exist"):
        split_indices(y, protocol="polluted", pollution=0.1)
    # k = 3 leaves 1 anomaly: not enough for both dev and test
    with pytest.raises(DataError, match="needs 3 anomalies"):
        split_indices(y, protocol="polluted", pollution=0.05)


def test_pollution_too_small_for_one_anomaly():
    y = np.r_[np.zeros(10, int), np.ones(5, int)]
    with pytest.raises(DataError, match="gives 0 anomalies"):
        split_indices(y, protocol="polluted", pollution=0.05)


def test_too_few_normals_left():
    y = np.r_[np.zeros(4, int), np.ones(4, int)]
    with pytest.raises(DataError, match="train_fraction=0.9"):
        split_indices(y, train_fraction=0.9)


def test_minimal_data():
    y = np.array([0, 1, 0, 0, 1, 0])
    s = split_indices(y, random_state=0)
    check_partition(s, 6)
    assert y[s.train].tolist() == [0, 0]
    assert set(y[s.dev]) == {0, 1}
    assert set(y[s.test]) == {0, 1}
