"""Built-in datasets and the readers of the real benchmark files in ../shared/datasets."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from anomalia import datasets
from anomalia.errors import DataError
from anomalia.io import Dataset

SHARED = datasets.data_dir()


@pytest.fixture
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared/datasets is not present")
    return SHARED


def test_data_dir_is_the_variable_else_the_shared_folder_beside_the_checkout(monkeypatch):
    monkeypatch.setenv("ANOMALIA_DATA_DIR", "/data/real")
    assert datasets.data_dir() == Path("/data/real")
    monkeypatch.delenv("ANOMALIA_DATA_DIR")
    checkout = Path(datasets.__file__).resolve().parents[2]  # src/anomalia/datasets.py
    assert datasets.data_dir() == checkout.parent / "shared" / "datasets"


# --------------------------------------------------------------------------- built-ins


def test_available():
    names = datasets.available()
    assert set(names) == {"breast-cancer", "digits", "faces"}
    assert all(isinstance(d, str) and "\n" not in d for d in names.values())


def test_breast_cancer():
    X, y = datasets.load("breast-cancer")
    assert X.shape == (569, 30)
    assert X.dtype == np.float64
    assert y.dtype == np.int64
    assert int(y.sum()) == 212  # malignant = anomaly
    ds = datasets.load_dataset("breast-cancer")
    assert ds.X.columns[0] == "mean radius"
    assert set(ds.labels[ds.y == 1]) == {"malignant"}


@pytest.mark.parametrize("normal_digit", [0, 7])
def test_digits(normal_digit):
    ds = datasets.load_dataset("digits", normal_digit=normal_digit)
    assert ds.X.shape == (1797, 64)
    np.testing.assert_array_equal(ds.y == 0, ds.labels == normal_digit)
    assert set(ds.labels.tolist()) == set(range(10))
    X, y = datasets.load("digits", normal_digit=normal_digit)
    np.testing.assert_array_equal(X, ds.X.to_numpy())
    np.testing.assert_array_equal(y, ds.y)


def test_faces_are_images_faces_first():
    pytest.importorskip("skimage")
    ds = datasets.load_dataset("faces")
    assert ds.X.shape == (200, 25, 25) and ds.X.dtype == np.float64
    assert ds.X.min() >= 0.0 and ds.X.max() <= 1.0
    np.testing.assert_array_equal(ds.y, np.r_[np.zeros(100), np.ones(100)])
    assert set(ds.labels[:100]) == {"face"} and set(ds.labels[100:]) == {"non-face"}
    X, y = datasets.load("faces")
    assert X.shape == (200, 25, 25) and y.sum() == 100


def test_faces_without_scikit_image_say_how_to_install_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "skimage", None)  # importing it raises ImportError
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    with pytest.raises(DataError, match=r"pip install 'anomalia\[faces\]'"):
        datasets.load_dataset("faces")


def test_faces_from_the_command_line(tmp_path):
    """The homework in two commands: a conv-ae on the faces, scored on held-out images."""
    pytest.importorskip("skimage")
    from typer.testing import CliRunner

    from anomalia.cli.app import app

    runner = CliRunner()
    model = tmp_path / "faces.anomalia"
    res = runner.invoke(
        app, ["fit", "faces", "-d", "conv-ae", "-p", "epochs=2", "--out", str(model)]
    )
    assert res.exit_code == 0, res.output
    assert "on 100 rows" in res.output  # the built-in labels: trained on the faces only
    res = runner.invoke(app, ["evaluate", str(model), "faces", "--json"])
    assert res.exit_code == 0, res.output
    assert '"n_anomalies": 100' in res.output


def test_unknown_name_lists_names():
    with pytest.raises(DataError, match="unknown dataset 'mnist'.*breast-cancer, digits"):
        datasets.load("mnist")


@pytest.mark.parametrize("bad", [10, -1, 1.5, True])
def test_bad_normal_digit(bad):
    with pytest.raises(DataError, match="normal_digit"):
        datasets.load("digits", normal_digit=bad)


def test_unknown_option():
    with pytest.raises(DataError, match="no options"):
        datasets.load("breast-cancer", normal_digit=1)


# --------------------------------------------------------------------------- real files


def test_adbench(shared):
    ds = datasets.read_adbench(shared / "adbench" / "4_breastw.npz")
    assert ds.name == "4_breastw"
    assert ds.X.shape == (683, 9)
    assert int(ds.y.sum()) == 239


def test_creditcard(shared):
    ds = datasets.read_creditcard(shared / "creditcard" / "creditcard_sample.csv")
    assert ds.X.shape == (5412, 30)
    assert list(ds.X.columns) == list(datasets.CREDITCARD_FEATURES)
    assert int(ds.y.sum()) == 492


def test_nsl_kdd_train_and_test_have_identical_columns(shared):
    train = datasets.read_nsl_kdd(shared / "nsl-kdd" / "KDDTrain+_20Percent.txt")
    test = datasets.read_nsl_kdd(shared / "nsl-kdd" / "KDDTest+.txt")
    assert len(train.X) == 25_192
    assert len(test.X) == 22_544
    assert list(train.X.columns) == list(test.X.columns)
    assert train.X.shape[1] == 38 + sum(len(v) for v in datasets.KDD_CATEGORIES.values())
    assert "difficulty" not in train.X.columns
    assert "service=http" in train.X.columns
    # each row has exactly one protocol, one service and one flag dummy set
    for col in datasets.KDD_CATEGORIES:
        np.testing.assert_array_equal(train.X.filter(like=f"{col}=").sum(axis=1), 1.0)
    np.testing.assert_array_equal(test.y, test.labels != "normal")
    assert "apache2" in set(test.labels)  # an attack absent from training
    assert train.spec.feature_names == list(train.X.columns)


def test_nsl_kdd_field_names_match(shared):
    path = shared / "nsl-kdd" / "Field Names.csv"
    names = [line.split(",")[0] for line in path.read_text().splitlines() if line.strip()]
    assert tuple(names) == datasets.KDD_FEATURES


def test_nsl_kdd_wrong_file(shared):
    with pytest.raises(DataError, match="43 for NSL-KDD"):
        datasets.read_nsl_kdd(shared / "creditcard" / "creditcard_sample.csv")


@pytest.mark.slow
def test_kddcup99(shared):
    ds = datasets.read_kddcup99(shared / "kddcup99" / "kddcup.data_10_percent.gz")
    assert len(ds.X) == 494_021
    assert ds.X.shape[1] == 119
    assert not any(label.endswith(".") for label in set(ds.labels))
    np.testing.assert_array_equal(ds.y, ds.labels != "normal")
    assert int(ds.y.sum()) == 396_743


def test_kddcup99_same_columns_as_nsl_kdd(tmp_path, shared):
    lines = (shared / "nsl-kdd" / "KDDTest+.txt").read_text().splitlines()[:5]
    (tmp_path / "kdd.gz").write_bytes(
        gzip.compress("".join(",".join(ln.split(",")[:42]) + ".\n" for ln in lines).encode())
    )
    ds = datasets.read_kddcup99(tmp_path / "kdd.gz")
    nsl = datasets.read_nsl_kdd(shared / "nsl-kdd" / "KDDTest+.txt")
    assert list(ds.X.columns) == list(nsl.X.columns)
    np.testing.assert_array_equal(ds.X.to_numpy(), nsl.X.to_numpy()[:5])
    assert ds.labels.tolist() == nsl.labels[:5].tolist()


def test_mnist(shared):
    images, labels = datasets.read_mnist(
        shared / "mnist" / "t10k-images-idx3-ubyte.gz",
        shared / "mnist" / "t10k-labels-idx1-ubyte.gz",
    )
    assert images.shape == (10_000, 28, 28)
    assert images.dtype == np.uint8
    assert labels.shape == (10_000,)
    assert set(labels.tolist()) == set(range(10))


def test_mnist_bad_files(tmp_path, shared):
    labels = shared / "mnist" / "t10k-labels-idx1-ubyte.gz"
    images = shared / "mnist" / "t10k-images-idx3-ubyte.gz"
    with pytest.raises(DataError, match="not an IDX images file"):
        datasets.read_mnist(labels, labels)  # swapped: wrong magic number
    (tmp_path / "junk.gz").write_bytes(b"\x1f\x8bjunk")
    with pytest.raises(DataError, match="cannot read it"):
        datasets.read_mnist(tmp_path / "junk.gz", labels)
    raw = gzip.decompress(images.read_bytes())
    (tmp_path / "short").write_bytes(raw[:1000])
    with pytest.raises(DataError, match="truncated or corrupt"):
        datasets.read_mnist(tmp_path / "short", labels)


def test_mnist_count_mismatch(tmp_path):
    header = (0x803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (2, 28, 28))
    (tmp_path / "img").write_bytes(header + bytes(2 * 28 * 28))
    (tmp_path / "lab").write_bytes((0x801).to_bytes(4, "big") + (3).to_bytes(4, "big") + b"\0\1\2")
    with pytest.raises(DataError, match="2 images but .* 3 labels"):
        datasets.read_mnist(tmp_path / "img", tmp_path / "lab")


def test_readers_return_datasets(shared):
    ds = datasets.read_adbench(shared / "adbench" / "42_WBC.npz")
    assert isinstance(ds, Dataset)
    assert ds.X.dtypes.eq(np.float64).all()
