"""Reading user tables: formats, labels, ids, one-hot, fitted specs and every error."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anomalia.errors import DataError
from anomalia.io import Dataset, TableSpec, dataset_from_frame, read_table


@pytest.fixture
def frame() -> pd.DataFrame:
    """Six rows: two features, an id, a text label and a 0/1 label."""
    return pd.DataFrame(
        {
            "id": ["a", "b", "c", "d", "e", "f"],
            "f1": [0.5, 1.5, 2.5, 3.5, 4.5, 5.5],
            "f2": [1, 2, 3, 4, 5, 6],
            "kind": ["normal", "normal", "dos", "normal", "probe", "normal"],
            "target": [0, 0, 1, 0, 1, 0],
        }
    )


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("ext", [".csv", ".csv.gz", ".parquet"])
def test_table_round_trip(tmp_path, frame, ext):
    path = tmp_path / f"data{ext}"
    if ext == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    ds = read_table(path, label_column="target", id_column="id", ignore_columns=("kind",))
    assert isinstance(ds, Dataset)
    assert ds.name == "data"
    assert list(ds.X.columns) == ["f1", "f2"]
    assert (ds.X.dtypes == np.float64).all()
    np.testing.assert_array_equal(ds.X.to_numpy(), frame[["f1", "f2"]].to_numpy(float))
    assert ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.y, [0, 0, 1, 0, 1, 0])
    assert ds.ids.tolist() == list("abcdef")
    np.testing.assert_array_equal(ds.labels, [0, 0, 1, 0, 1, 0])
    assert ds.spec.feature_names == ["f1", "f2"]
    assert ds.spec.categories is None


def test_npy_round_trip(tmp_path):
    arr = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "m.npy", arr)
    ds = read_table(tmp_path / "m.npy")
    assert list(ds.X.columns) == ["x0", "x1", "x2"]
    np.testing.assert_array_equal(ds.X.to_numpy(), arr)
    assert ds.X.dtypes.eq(np.float64).all()
    assert ds.y is None
    assert ds.ids is None


def test_npz_round_trip(tmp_path):
    X = np.arange(10.0).reshape(5, 2)
    np.savez(tmp_path / "b.npz", X=X, y=np.array([0, 1, 0, 0, 1]))
    ds = read_table(tmp_path / "b.npz")
    assert ds.name == "b"
    np.testing.assert_array_equal(ds.X.to_numpy(), X)
    np.testing.assert_array_equal(ds.y, [0, 1, 0, 0, 1])
    np.savez(tmp_path / "u.npz", X=X)
    assert read_table(tmp_path / "u.npz").y is None


def test_npy_ignore_and_id_columns(tmp_path):
    np.save(tmp_path / "m.npy", np.arange(12.0).reshape(4, 3))
    ds = read_table(tmp_path / "m.npy", id_column="x0", ignore_columns="x2")
    assert list(ds.X.columns) == ["x1"]
    assert ds.ids.tolist() == [0.0, 3.0, 6.0, 9.0]


def test_bool_feature_becomes_float(tmp_path):
    path = write_csv(tmp_path / "b.csv", "a,flag\n1,true\n2,false\n")
    ds = read_table(path)
    np.testing.assert_array_equal(ds.X["flag"].to_numpy(), [1.0, 0.0])


def test_dataset_from_frame(frame):
    ds = dataset_from_frame(frame, name="mem", label_column="target", ignore_columns=("id", "kind"))
    assert list(ds.X.columns) == ["f1", "f2"]
    assert ds.name == "mem"
    assert ds.y.sum() == 2


# --------------------------------------------------------------------------- labels


@pytest.mark.parametrize(
    "values",
    [["0", "1", "0"], ["true", "false", "true"], ["True", "False", "False"], ["0.0", "1", "0"]],
)
def test_binary_label_spellings(tmp_path, values):
    rows = "\n".join(f"{i},{v}" for i, v in enumerate(values))
    ds = read_table(write_csv(tmp_path / "l.csv", "f,lab\n" + rows + "\n"), label_column="lab")
    expected = [int(v.lower() in ("1", "true")) for v in values]
    np.testing.assert_array_equal(ds.y, expected)


def test_anomaly_value_text(tmp_path, frame):
    frame.to_csv(tmp_path / "d.csv", index=False)
    ds = read_table(
        tmp_path / "d.csv", label_column="kind", anomaly_value="dos", ignore_columns=("id",)
    )
    np.testing.assert_array_equal(ds.y, [0, 0, 1, 0, 0, 0])
    assert ds.labels.tolist() == frame["kind"].tolist()
    assert "target" in ds.X.columns


def test_normal_value_text(tmp_path, frame):
    frame.to_csv(tmp_path / "d.csv", index=False)
    ds = read_table(
        tmp_path / "d.csv", label_column="kind", normal_value="normal", ignore_columns=("id",)
    )
    np.testing.assert_array_equal(ds.y, [0, 0, 1, 0, 1, 0])


@pytest.mark.parametrize("value", ["1", "1.0", 1])
def test_anomaly_value_numeric_column(tmp_path, value):
    path = write_csv(tmp_path / "n.csv", "f,cls\n1,1.0\n2,2.0\n3,1.0\n4,4.0\n")
    ds = read_table(path, label_column="cls", anomaly_value=value)
    np.testing.assert_array_equal(ds.y, [1, 0, 1, 0])


def test_normal_value_numeric_column(tmp_path):
    path = write_csv(tmp_path / "n.csv", "f,digit\n1,3\n2,7\n3,3\n")
    ds = read_table(path, label_column="digit", normal_value="3")
    np.testing.assert_array_equal(ds.y, [0, 1, 0])


def test_anomaly_value_matching_nothing_is_logged(tmp_path, frame, caplog):
    frame.to_csv(tmp_path / "d.csv", index=False)
    with caplog.at_level(logging.WARNING, logger="anomalia.io"):
        ds = read_table(
            tmp_path / "d.csv", label_column="kind", anomaly_value="Dos", ignore_columns=("id",)
        )
    assert ds.y.sum() == 0
    assert "no row of label column" in caplog.text


def test_non_binary_labels_need_a_value(tmp_path, frame):
    frame.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match=r"must hold 0/1.*'normal'.*anomaly_value or normal_value"):
        read_table(tmp_path / "d.csv", label_column="kind")


def test_numeric_non_binary_labels(tmp_path):
    path = write_csv(tmp_path / "n.csv", "f,cls\n1,2\n2,4\n")
    with pytest.raises(DataError, match=r"found values 2, 4"):
        read_table(path, label_column="cls")


def test_missing_label_values(tmp_path):
    path = write_csv(tmp_path / "m.csv", "f,lab\n1,0\n2,\n3,1\n")
    with pytest.raises(DataError, match=r"'lab' has 1 missing value\(s\), first at row 2"):
        read_table(path, label_column="lab")


def test_both_label_values_rejected():
    with pytest.raises(DataError, match="not both"):
        TableSpec(label_column="y", anomaly_value="1", normal_value="0")


def test_label_value_needs_label_column():
    with pytest.raises(DataError, match="need a label_column"):
        TableSpec(anomaly_value="1")


def test_npz_rejects_label_column(tmp_path):
    np.savez(tmp_path / "b.npz", X=np.ones((3, 2)), y=np.array([0, 1, 0]))
    with pytest.raises(DataError, match="label_column does not apply"):
        read_table(tmp_path / "b.npz", label_column="y")


def test_npz_bad_labels(tmp_path):
    np.savez(tmp_path / "b.npz", X=np.ones((3, 2)), y=np.array([0, 2, 0]))
    with pytest.raises(DataError, match=r"array 'y'.*only 0 \(normal\) and 1"):
        read_table(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", X=np.ones((3, 2)), y=np.array([0, 1]))
    with pytest.raises(DataError, match=r"array 'y' has shape \(2,\)"):
        read_table(tmp_path / "c.npz")


# --------------------------------------------------------------------------- one-hot


def test_onehot_fits_and_reuses_categories(tmp_path):
    train = write_csv(tmp_path / "train.csv", "n,proto,svc\n1,tcp,http\n2,udp,dns\n3,tcp,ftp\n")
    ds = read_table(train, categorical="onehot")
    assert ds.spec.categories == {"proto": ["tcp", "udp"], "svc": ["dns", "ftp", "http"]}
    names = ["n", "proto=tcp", "proto=udp", "svc=dns", "svc=ftp", "svc=http"]
    assert list(ds.X.columns) == names
    np.testing.assert_array_equal(ds.X.iloc[1].to_numpy(), [2, 0, 1, 1, 0, 0])

    # new data: one unseen protocol (all-zero dummies), categories reused, same columns
    new = write_csv(tmp_path / "new.csv", "n,proto,svc\n7,icmp,ftp\n8,udp,http\n")
    spec = TableSpec.from_dict(json.loads(json.dumps(ds.spec.to_dict())))
    out = read_table(new, spec)
    assert list(out.X.columns) == names
    np.testing.assert_array_equal(out.X.to_numpy(), [[7, 0, 0, 0, 1, 0], [8, 0, 1, 0, 0, 1]])
    assert out.spec.categories == ds.spec.categories


def test_onehot_fitted_column_that_looks_numeric(tmp_path):
    train = write_csv(tmp_path / "t.csv", "f,code\n1,a\n2,7\n3,b\n")
    ds = read_table(train, categorical="onehot")
    assert list(ds.X.columns) == ["f", "code=7", "code=a", "code=b"]
    new = write_csv(tmp_path / "n.csv", "f,code\n1,7\n2,7\n")
    out = read_table(new, ds.spec)
    np.testing.assert_array_equal(out.X["code=7"].to_numpy(), [1, 1])


def test_onehot_text_in_column_numeric_at_training(tmp_path):
    ds = read_table(write_csv(tmp_path / "t.csv", "f,g\n1,2\n3,4\n"), categorical="onehot")
    assert ds.spec.categories == {}
    new = write_csv(tmp_path / "n.csv", "f,g\n1,x\n3,y\n")
    with pytest.raises(DataError, match=r"'g' holds text .* numeric in the training data"):
        read_table(new, ds.spec)


def test_spec_dict_round_trip():
    spec = TableSpec(
        label_column="y",
        normal_value="ok",
        id_column="id",
        ignore_columns=("a", "b"),
        categorical="onehot",
        categories={"c": ["x", "y"]},
        feature_names=["c=x", "c=y"],
    )
    d = spec.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert TableSpec.from_dict(d) == spec
    with pytest.raises(DataError, match="unknown table spec field"):
        TableSpec.from_dict({**d, "colour": "red"})


def test_bad_categorical_option():
    with pytest.raises(DataError, match="categorical must be one of"):
        TableSpec(categorical="ordinal")


# --------------------------------------------------------------------------- feature_names


def test_feature_names_match_and_label_optional(tmp_path, frame):
    frame.to_csv(tmp_path / "d.csv", index=False)
    ds = read_table(tmp_path / "d.csv", label_column="target", ignore_columns=("id", "kind"))
    unlabelled = frame.drop(columns=["target", "kind"])
    unlabelled.to_csv(tmp_path / "u.csv", index=False)
    out = read_table(tmp_path / "u.csv", ds.spec)
    assert out.y is None
    assert list(out.X.columns) == ["f1", "f2"]


def test_feature_names_missing_and_unexpected(tmp_path):
    spec = TableSpec(feature_names=["a", "b", "c"])
    path = write_csv(tmp_path / "d.csv", "a,b,z\n1,2,3\n")
    with pytest.raises(DataError, match=r"do not match the model's: missing 'c'; unexpected 'z'"):
        read_table(path, spec)


def test_feature_names_order(tmp_path):
    spec = TableSpec(feature_names=["a", "b"])
    path = write_csv(tmp_path / "d.csv", "b,a\n1,2\n")
    with pytest.raises(DataError, match=r"different order than the model's; expected 'a', 'b'"):
        read_table(path, spec)


def test_feature_names_with_onehot_reports_raw_columns(tmp_path):
    ds = read_table(write_csv(tmp_path / "t.csv", "f,c\n1,x\n2,y\n"), categorical="onehot")
    with pytest.raises(DataError, match=r"missing 'c'"):
        read_table(write_csv(tmp_path / "n.csv", "f\n1\n"), ds.spec)


# --------------------------------------------------------------------------- errors


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_table(tmp_path / "nope.csv")


def test_directory(tmp_path):
    with pytest.raises(DataError, match="is a directory"):
        read_table(tmp_path)


def test_unsupported_extension(tmp_path):
    path = write_csv(tmp_path / "d.xlsx", "a\n1\n")
    with pytest.raises(DataError, match=r"unsupported file type '.xlsx'.*\.csv"):
        read_table(path)


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("bad.parquet", b"garbage!", "cannot read it as Parquet"),
        ("bad.npy", b"garbage!", "cannot read it as a .npy array"),
        ("bad.npz", b"garbage!", "cannot read it as an .npz archive"),
        ("bad.csv.gz", b"garbage!", "cannot read it as CSV"),
        ("bad.csv", b"a,b\n1,2\n3,4,5\n", "cannot read it as CSV"),
        ("bad2.csv", b"a,b\n\xff\xfe,1\n", "cannot read it as CSV"),
    ],
)
def test_corrupt_files(tmp_path, name, content, match):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=match) as info:
        read_table(tmp_path / name)
    assert "\n" not in str(info.value)


def test_truncated_gzip_csv(tmp_path):
    data = gzip.compress(b"a,b\n" + b"1,2\n" * 1000)
    (tmp_path / "t.csv.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cannot read it as CSV"):
        read_table(tmp_path / "t.csv.gz")


def test_npy_wrong_dimensions(tmp_path):
    np.save(tmp_path / "one.npy", np.arange(3.0))
    np.save(tmp_path / "five.npy", np.zeros((2, 2, 2, 2, 2)))
    np.save(tmp_path / "text.npy", np.array([["a", "b"]]))
    for name, match in [("one", "2-D array"), ("five", "image stack"), ("text", "hold numbers")]:
        with pytest.raises(DataError, match=match):
            read_table(tmp_path / f"{name}.npy")


def test_image_stack_for_a_table_spec_names_file_and_shape(tmp_path):
    spec = read_table(_npy(tmp_path, "train.npy", np.zeros((4, 3)))).spec
    cube = _npy(tmp_path, "cube.npy", np.zeros((5, 3, 2)))
    with pytest.raises(DataError, match=r"cube\.npy: .*shape \(5, 3, 2\).*table of 3 columns"):
        read_table(cube, spec)
    flat_as_images = _npy(tmp_path, "flat.npy", np.zeros((5, 3, 1)))  # the model decides
    assert read_table(flat_as_images, spec).X.shape == (5, 3, 1)
    assert read_table(cube).X.shape == (5, 3, 2)  # no model: an image stack


def _npy(folder: Path, name: str, arr: np.ndarray) -> Path:
    np.save(folder / name, arr)
    return folder / name


def test_npz_without_X(tmp_path):
    np.savez(tmp_path / "b.npz", data=np.ones((2, 2)))
    with pytest.raises(DataError, match=r"no array 'X'.*'data'"):
        read_table(tmp_path / "b.npz")


@pytest.mark.parametrize("content", ["", "a,b\n"])
def test_empty_table(tmp_path, content):
    with pytest.raises(DataError, match="empty|no rows"):
        read_table(write_csv(tmp_path / "e.csv", content))


def test_no_feature_columns_left(tmp_path):
    path = write_csv(tmp_path / "d.csv", "id,lab\n1,0\n2,1\n")
    with pytest.raises(DataError, match="no feature columns left"):
        read_table(path, id_column="id", label_column="lab")


@pytest.mark.parametrize(
    ("option", "match"),
    [
        ({"label_column": "Class"}, "label column 'Class' not found"),
        ({"id_column": "key"}, "id column 'key' not found"),
        ({"ignore_columns": ("zz",)}, "ignored column 'zz' not found"),
    ],
)
def test_column_not_found_lists_available(tmp_path, frame, option, match):
    frame.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match=match) as info:
        read_table(tmp_path / "d.csv", **option)
    assert "available columns: 'id', 'f1', 'f2', 'kind', 'target'" in str(info.value)


def test_non_numeric_columns(tmp_path):
    path = write_csv(tmp_path / "d.csv", "a,proto,svc\n1,tcp,http\n2,udp,dns\n")
    with pytest.raises(DataError, match=r"non-numeric column\(s\) 'proto', 'svc'") as info:
        read_table(path)
    msg = str(info.value)
    assert "'tcp'" in msg
    assert "row 1" in msg
    assert "--categorical onehot" in msg


def test_text_in_numeric_column(tmp_path):
    path = write_csv(tmp_path / "d.csv", "a,b\n1,2\n2,oops\n3,4\n")
    for categorical in ("error", "onehot"):
        with pytest.raises(DataError, match=r"text in numeric column 'b': 'oops' at row 2"):
            read_table(path, categorical=categorical)


def test_nan_and_inf_in_features(tmp_path):
    path = write_csv(tmp_path / "d.csv", "a,b,c\n1,2,3\n,4,5\n6,inf,7\n8,9,NaN\n")
    with pytest.raises(DataError, match=r"NaN \(missing\) or infinite values in 3 row") as info:
        read_table(path)
    assert "'a' (1 rows), 'b' (1 rows), 'c' (1 rows)" in str(info.value)


def test_missing_category_value_is_reported(tmp_path):
    path = write_csv(tmp_path / "d.csv", "a,c\n1,x\n2,\n")
    with pytest.raises(DataError, match=r"NaN \(missing\).*'c'"):
        read_table(path, categorical="onehot")


def test_duplicated_columns_csv(tmp_path):
    path = write_csv(tmp_path / "d.csv", "a,b,a\n1,2,3\n")
    with pytest.raises(DataError, match="duplicated column name.*'a'"):
        read_table(path)


def test_duplicated_columns_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table([pa.array([1, 2]), pa.array([3, 4])], names=["a", "a"])
    pq.write_table(table, tmp_path / "d.parquet")
    with pytest.raises(DataError, match="duplicated column name.*'a'"):
        read_table(tmp_path / "d.parquet")


def test_unknown_option_is_a_type_error(tmp_path):
    with pytest.raises(TypeError, match="unknown option"):
        read_table(tmp_path / "d.csv", labelcolumn="y")


def test_npy_and_npz_image_stacks(tmp_path):
    images = np.arange(5 * 8 * 8, dtype=np.uint8).reshape(5, 8, 8)
    np.save(tmp_path / "imgs.npy", images)
    np.savez(tmp_path / "imgs.npz", X=images[:, None], y=np.array([0, 0, 0, 1, 1]))
    ds = read_table(tmp_path / "imgs.npy")
    assert ds.X.shape == (5, 8, 8)
    assert ds.y is None
    ds = read_table(tmp_path / "imgs.npz")
    assert ds.X.shape == (5, 1, 8, 8)
    assert ds.y.tolist() == [0, 0, 0, 1, 1]


@pytest.mark.parametrize("categorical", ["error", "onehot"])
def test_plain_numeric_shortcut_equals_the_column_by_column_path(monkeypatch, categorical):
    """All-number tables take one conversion; it must give exactly what the general path
    gives: values, dtype, memory layout, names and the fitted spec."""
    import anomalia.io as io

    rng = np.random.default_rng(0)
    raw = pd.DataFrame(
        {
            "f": rng.normal(size=50),
            "i": rng.integers(-5, 5, size=50),
            "b": rng.random(50) > 0.5,
            "f32": rng.normal(size=50).astype(np.float32),
            "Class": rng.integers(0, 2, size=50),
        }
    )
    fast = dataset_from_frame(raw, label_column="Class", categorical=categorical)
    monkeypatch.setattr(io, "_plain_numeric", lambda *a: None)
    slow = dataset_from_frame(raw, label_column="Class", categorical=categorical)
    pd.testing.assert_frame_equal(fast.X, slow.X)
    assert fast.X.to_numpy().flags.f_contiguous == slow.X.to_numpy().flags.f_contiguous
    assert fast.spec == slow.spec
    np.testing.assert_array_equal(fast.y, slow.y)


def test_plain_numeric_shortcut_leaves_bad_values_to_the_named_error():
    raw = pd.DataFrame({"a": [1.0, np.nan, 3.0], "b": [1, 2, 3]})
    with pytest.raises(DataError, match="'a'"):
        dataset_from_frame(raw)
