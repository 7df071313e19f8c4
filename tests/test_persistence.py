"""Model files: round trips, and clear refusals for anything that is not a sound model."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import anomalia
from anomalia import ModelFileError, make_detector
from anomalia.persistence import load_model


@pytest.fixture
def model_file(tmp_path, blobs):
    det = make_detector("iforest", n_estimators=10, random_state=1).fit(blobs[0])
    path = tmp_path / "model.anomalia"
    det.save(path, metadata={"spec": {"label_column": "y", "ignore": ("a", "b")}})
    return path


def _rewrite(path, member, transform):
    with zipfile.ZipFile(path) as zf:
        blobs = {n: zf.read(n) for n in zf.namelist()}
    blobs[member] = transform(blobs[member])
    with zipfile.ZipFile(path, "w") as zf:
        for n, b in blobs.items():
            zf.writestr(n, b)


def test_metadata_and_versions_are_kept(model_file):
    det, manifest = load_model(model_file)
    assert manifest["metadata"] == {"spec": {"label_column": "y", "ignore": ["a", "b"]}}
    assert manifest["format_version"] == 2 and manifest["detector"] == "iforest"
    assert {"anomalia", "numpy", "scikit-learn"} <= set(manifest["versions"])
    assert det.n_features_in_ == 4


def test_no_pickle_inside(model_file):
    with zipfile.ZipFile(model_file) as zf:
        names = zf.namelist()
        assert not any(n.endswith((".pkl", ".pickle", ".joblib")) for n in names)
        for n in names:
            assert b"\x80\x04\x95" not in zf.read(n)[:3]  # pickle protocol-4 header


def test_feature_names_survive(tmp_path):
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(np.random.default_rng(0).normal(size=(50, 2)), columns=["amount", "age"])
    make_detector("gaussian").fit(X).save(tmp_path / "m")
    back = anomalia.load(tmp_path / "m")
    assert list(back.feature_names_in_) == ["amount", "age"]


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        anomalia.load(tmp_path / "nope.anomalia")


def test_not_a_model(tmp_path):
    p = tmp_path / "data.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(ModelFileError, match="not an anomalia model"):
        anomalia.load(p)


def test_zip_without_manifest(tmp_path):
    p = tmp_path / "other.zip"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(ModelFileError, match="no manifest"):
        anomalia.load(p)


def test_truncated(model_file):
    data = model_file.read_bytes()
    model_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated or corrupted"):
        anomalia.load(model_file)


def test_tampered_arrays(model_file):
    _rewrite(model_file, "arrays.safetensors", lambda b: b[:-10] + b"0123456789")
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        anomalia.load(model_file)


def test_wrong_format_version(model_file):
    def bump(b):
        m = json.loads(b)
        m["format_version"] = 99
        return json.dumps(m).encode()

    _rewrite(model_file, "manifest.json", bump)
    with pytest.raises(ModelFileError, match="format version 99"):
        anomalia.load(model_file)


def test_unknown_detector_name_in_manifest(model_file):
    def rename(b):
        m = json.loads(b)
        m["detector"] = "os.system"
        return json.dumps(m).encode()

    _rewrite(model_file, "manifest.json", rename)
    with pytest.raises(ModelFileError, match="unknown detector 'os.system'"):
        anomalia.load(model_file)


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path, blobs):
    det = make_detector("gaussian").fit(blobs[0])
    det.save(tmp_path / "m.anomalia")
    det.save(tmp_path / "m.anomalia")  # overwrite in place
    assert [p.name for p in tmp_path.iterdir()] == ["m.anomalia"]


def test_unfitted_cannot_be_saved(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        make_detector("gaussian").save(tmp_path / "m")
    assert not (tmp_path / "m").exists()


KEY = b"0123456789abcdef-secret"


def test_signed_model_loads_with_its_key_only(tmp_path, blobs):
    det = make_detector("gaussian").fit(blobs[0])
    det.save(tmp_path / "m.anomalia", key=KEY)
    back = anomalia.load(tmp_path / "m.anomalia", key=KEY)
    np.testing.assert_array_equal(back.anomaly_score(blobs[1]), det.anomaly_score(blobs[1]))
    anomalia.load(tmp_path / "m.anomalia")  # without a key: digests only, still loads
    with pytest.raises(ModelFileError, match="signature does not match"):
        anomalia.load(tmp_path / "m.anomalia", key=b"another key of 16+ bytes")


def test_unsigned_model_is_refused_when_a_key_is_required(model_file):
    with pytest.raises(ModelFileError, match="not signed"):
        anomalia.load(model_file, key=KEY)


def test_a_signature_detects_an_edit_the_digests_cannot(tmp_path, blobs):
    path = tmp_path / "m.anomalia"
    make_detector("gaussian").fit(blobs[0]).save(path, key=KEY)

    def edit(b):
        m = json.loads(b)
        m["attributes"]["threshold_"] = 1e9  # within the schema: only a signature tells
        return json.dumps(m).encode()

    _rewrite(path, "manifest.json", edit)
    assert anomalia.load(path).threshold_ == 1e9
    with pytest.raises(ModelFileError, match="signature does not match"):
        anomalia.load(path, key=KEY)


def test_short_keys_are_refused(tmp_path, blobs, monkeypatch):
    from anomalia.errors import AnomaliaError
    from anomalia.persistence import KEY_ENV, read_key

    with pytest.raises(AnomaliaError, match="at least 16"):
        make_detector("gaussian").fit(blobs[0]).save(tmp_path / "m", key=b"short")
    (tmp_path / "k").write_text("tiny\n")
    with pytest.raises(AnomaliaError, match="needs at least 16"):
        read_key(tmp_path / "k")
    monkeypatch.setenv(KEY_ENV, "x" * 20)
    assert read_key() == b"x" * 20
    monkeypatch.delenv(KEY_ENV)
    assert read_key() is None


def test_size_ceiling_is_checked_before_reading(model_file, monkeypatch):
    from anomalia.persistence import MAX_BYTES_ENV

    with pytest.raises(ModelFileError, match="above the ceiling"):
        anomalia.load(model_file, max_bytes=1000)
    monkeypatch.setenv(MAX_BYTES_ENV, "1000")
    with pytest.raises(ModelFileError, match="above the ceiling"):
        anomalia.load(model_file)


def test_models_follow_the_umask(tmp_path, blobs):
    import os

    old = os.umask(0o022)
    try:
        make_detector("gaussian").fit(blobs[0]).save(tmp_path / "m.anomalia")
    finally:
        os.umask(old)
    assert (tmp_path / "m.anomalia").stat().st_mode & 0o777 == 0o644


def test_format_version_1_is_refused_with_a_remedy(model_file):
    def old(b):
        m = json.loads(b)
        m["format_version"] = 1
        return json.dumps(m).encode()

    _rewrite(model_file, "manifest.json", old)
    with pytest.raises(ModelFileError, match="version 1.*save the model again"):
        anomalia.load(model_file)


def test_a_classifier_with_compiled_trees_is_refused_when_saving(tmp_path, blobs):
    from sklearn.ensemble import RandomForestClassifier

    from anomalia.errors import AnomaliaError

    X = blobs[0]
    det = make_detector("confidence", classifier=RandomForestClassifier(n_estimators=3))
    det.fit(X, (X[:, 0] > 0).astype(int))
    with pytest.raises(AnomaliaError, match="Tree"):
        det.save(tmp_path / "m.anomalia")
    assert not (tmp_path / "m.anomalia").exists()


@pytest.mark.parametrize("name", ["iforest", "knn", "lof", "ocsvm", "gaussian"])
def test_scikit_learn_parts_round_trip_exactly(tmp_path, blobs, name):
    det = make_detector(name, random_state=0) if name != "gaussian" else make_detector(name)
    det.fit(blobs[0]).save(tmp_path / "m")
    with zipfile.ZipFile(tmp_path / "m") as zf:
        assert not any(n.endswith(".skops") for n in zf.namelist())
    back = anomalia.load(tmp_path / "m")
    np.testing.assert_array_equal(back.anomaly_score(blobs[1]), det.anomaly_score(blobs[1]))


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        ({"novelty": False}, "must be a novelty one"),
        ({"metric": "precomputed"}, "named metric"),
        ({"n_neighbors": 300}, "300 neighbours for 300 rows"),
        ({"n_neighbors": "x"}, "invalid LocalOutlierFactor parameters"),
    ],
)
def test_a_local_outlier_factor_is_rebuilt_from_its_rows_only(tmp_path, blobs, edit, match):
    path = tmp_path / "lof.anomalia"
    make_detector("lof").fit(blobs[0]).save(path)
    manifest = json.loads(zipfile.ZipFile(path).read("manifest.json"))
    spec = manifest["sklearn"]["estimator_"]
    assert spec["class"] == "LocalOutlierFactor" and spec["params"]["novelty"] is True

    def tamper(b):
        m = json.loads(b)
        m["sklearn"]["estimator_"]["params"].update(edit)
        return json.dumps(m).encode()

    _rewrite(path, "manifest.json", tamper)
    with pytest.raises(ModelFileError, match=match):
        anomalia.load(path)


def test_a_pyod_name_in_a_manifest_is_an_unknown_detector(model_file):
    def rename(b):
        m = json.loads(b)
        m["detector"] = "pyod:os"  # make_detector's spelling, never a saved model's
        return json.dumps(m).encode()

    _rewrite(model_file, "manifest.json", rename)
    with pytest.raises(ModelFileError, match="unknown detector 'pyod:os'"):
        anomalia.load(model_file)
