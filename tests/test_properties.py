"""Property-based tests (hypothesis): bad input of any kind ends in a documented user error.

The promise: whatever a user hands anomalia -- a table file with random text or bytes, an
array of any shape, dtype and value (NaN, infinity, 1e308, 1e-308), a corrupted
compressed-codes file, a damaged model file -- the call either succeeds with a well-formed
result or raises :class:`anomalia.AnomaliaError` (:class:`~anomalia.DataError`,
:class:`~anomalia.ModelFileError`), never another exception, a crash or a hang:

1. ``read_table`` returns a :class:`~anomalia.io.Dataset` (finite float64 features, 0/1
   labels) or raises AnomaliaError.
2. ``anomaly_score`` of every table detector returns a finite float64 array of one score
   per row, or raises DataError.
3. ``compression.read_header`` and ``compression.decompress`` raise only AnomaliaError,
   and a successful decode has the declared shape and finite values.
4. ``anomalia.load`` raises only ModelFileError; a model it returns still scores.

Warnings are not the property tested here, so each call runs with warnings ignored, except
numpy's RuntimeWarnings about overflow or invalid values, which are noise a user would see.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import struct
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import anomalia
from anomalia import AnomaliaError, DataError, ModelFileError, make_detector
from anomalia.compression import MAGIC, compress, decompress, read_header
from anomalia.io import FORMATS, Dataset, TableSpec, read_table

from .conftest import FAST_PARAMS

N_FEATURES = 4
TABLE_DETECTORS = (
    "gaussian",
    "ocsvm",
    "iforest",
    "knn",
    "ae",
    "vae",
    "vqvae",
    "default",
    "ensemble",
)
#: Examples per property, sized so that the file runs in about 20 s on two cores; no
#: example database is written.
_COMMON = {"deadline": None, "database": None, "suppress_health_check": [HealthCheck.too_slow]}
PER_DETECTOR = settings(max_examples=60, **_COMMON)
PER_READER = settings(max_examples=200, **_COMMON)


def outcome(call: Callable[[], Any], allowed: type[Exception] = AnomaliaError) -> Any:
    """``call()``'s result, or None when it raises ``allowed``; any other exception fails.

    Warnings are ignored, except numpy's RuntimeWarnings (overflow, invalid value): those
    would reach the user as noise before the error, and fail the property.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", RuntimeWarning)
        try:
            return call()
        except allowed:
            return None


# --------------------------------------------------------------------------- strategies

EXTREME_FLOATS = (np.nan, np.inf, -np.inf, 1e308, -1e308, 1e-308, -1e-308, 5e-324, 0.0, -0.0)


def floats_with_extremes() -> st.SearchStrategy[float]:
    """Ordinary floats, mostly small, and the values that break arithmetic."""
    return st.one_of(
        st.floats(-10, 10),
        st.sampled_from(EXTREME_FLOATS),
        st.floats(allow_nan=True, allow_infinity=True),
    )


def texts_in_cells() -> st.SearchStrategy[str]:
    """What a table cell might hold: numbers as text, special words, random text."""
    return st.one_of(
        floats_with_extremes().map(repr),
        st.integers(-(2**70), 2**70).map(str),
        st.sampled_from(["", "nan", "NaN", "inf", "-inf", "1e309", "true", "a", '"', "NA"]),
        st.text(max_size=6),
    )


def shapes(max_dims: int = 3) -> st.SearchStrategy[tuple[int, ...]]:
    """Table-like shapes (rows x N_FEATURES) half the time, any small shape otherwise."""
    return st.one_of(
        st.tuples(st.integers(0, 6), st.just(N_FEATURES)),
        hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=5),
    )


@st.composite
def arrays_of_any_dtype(draw: st.DrawFn, max_dims: int = 3) -> np.ndarray:
    """Arrays of a random shape and dtype (floats, ints, bool, complex, text, objects)."""
    shape = draw(shapes(max_dims))
    kind = draw(
        st.sampled_from(
            ["float64", "float32", "int64", "uint8", "bool", "complex", "str", "object"]
        )
    )
    if kind in ("float64", "float32", "complex"):
        arr = draw(hnp.arrays(np.float64, shape, elements=floats_with_extremes()))
        if kind == "complex":
            return arr + 1j * draw(hnp.arrays(np.float64, shape, elements=st.floats(-1, 1)))
        with np.errstate(over="ignore"):
            return arr.astype(kind)  # 1e308 becomes inf in float32
    if kind in ("int64", "uint8", "bool"):
        return draw(hnp.arrays(np.dtype(kind), shape))
    if kind == "str":
        texts = texts_in_cells().filter(lambda t: not t.endswith("\x00"))  # numpy drops those
        return draw(hnp.arrays(np.dtype("U32"), shape, elements=texts))
    objects = st.one_of(floats_with_extremes(), texts_in_cells(), st.none(), st.integers())
    return draw(hnp.arrays(np.dtype(object), shape, elements=objects))


def inputs_to_score() -> st.SearchStrategy[Any]:
    """What a user might pass to ``anomaly_score``: arrays, frames, ragged lists, junk."""
    return st.one_of(
        arrays_of_any_dtype(),
        # the right number of columns: the interesting case is values, not shapes
        hnp.arrays(
            np.float64,
            st.tuples(st.integers(1, 6), st.just(N_FEATURES)),
            elements=floats_with_extremes(),
        ),
        hnp.arrays(
            np.float64, st.tuples(st.integers(1, 4), st.just(N_FEATURES)), elements=st.floats()
        ).map(lambda a: pd.DataFrame(a, columns=list("abcd"))),
        st.lists(st.lists(floats_with_extremes(), max_size=5), max_size=4),  # maybe ragged
        st.sampled_from([None, 3.0, "abc", [], [[]]]),
    )


SPECS = (
    TableSpec(),
    TableSpec(label_column="x0"),
    TableSpec(label_column="x0", anomaly_value="1"),
    TableSpec(label_column="x0", normal_value="a"),
    TableSpec(id_column="x1", ignore_columns=("x2",)),
    TableSpec(categorical="onehot"),
    TableSpec(feature_names=["x0", "x1"]),
    TableSpec(feature_names=["x0", "x1=a"], categories={"x1": ["a", "b"]}),
)


@st.composite
def csv_texts(draw: st.DrawFn) -> str:
    """CSV text: a header of random names and rows of random cells, sometimes ragged."""
    names = draw(st.lists(st.sampled_from(["x0", "x1", "x2", "x3", "", "a,b", "x0"]), max_size=5))
    rows = draw(st.lists(st.lists(texts_in_cells(), max_size=6), max_size=6))
    sep = draw(st.sampled_from([",", ";", "\t"]))
    return "\n".join(sep.join(row) for row in [names, *rows])


def csv_noise() -> st.SearchStrategy[str]:
    """Text built from the characters CSV parsing cares about."""
    return st.text(alphabet=",;\n\r\"'x0123456789.e-+ nainf\x00", max_size=200)


@st.composite
def table_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """A file name ending in a known format and its content: random or almost valid."""
    ext = draw(st.sampled_from(FORMATS))
    how = draw(st.sampled_from(["bytes", "text", "array"]))
    if how == "bytes":
        return ext, draw(st.binary(max_size=300))
    if how == "text":
        text = draw(st.one_of(csv_texts(), csv_noise()))
        data = text.encode("utf-8", "surrogatepass")
        return ext, gzip.compress(data) if ext == ".csv.gz" else data
    arr = draw(arrays_of_any_dtype(max_dims=4))
    return ext, _array_file(ext, arr, labels=draw(st.none() | arrays_of_any_dtype(max_dims=2)))


def _array_file(ext: str, arr: np.ndarray, labels: np.ndarray | None) -> bytes:
    """``arr`` saved in format ``ext`` (an unsavable array gives a random-looking file)."""
    buf = io.BytesIO()
    try:
        if ext == ".npy":
            np.save(buf, arr, allow_pickle=False)
        elif ext == ".npz":
            np.savez(buf, X=arr, **({} if labels is None else {"y": labels}))
        else:
            table = arr.reshape(len(arr), -1) if arr.ndim > 1 else arr.reshape(-1, 1)
            frame = pd.DataFrame(table, columns=[f"x{j}" for j in range(table.shape[1])])
            if ext == ".parquet":
                frame.to_parquet(buf)
            else:
                frame.to_csv(buf, index=False, compression="gzip" if ext == ".csv.gz" else None)
    except Exception as exc:  # e.g. complex numbers or mixed objects to parquet
        return repr(exc).encode()
    return buf.getvalue()


def flips(data: bytes) -> st.SearchStrategy[bytes]:
    """``data`` with a few bytes XOR-ed with random values."""

    @st.composite
    def flipped(draw: st.DrawFn) -> bytes:
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(out) - 1))
            out[i] ^= draw(st.integers(1, 255))
        return bytes(out)

    return flipped()


def truncations(data: bytes) -> st.SearchStrategy[bytes]:
    """A proper prefix of ``data``."""
    return st.integers(0, len(data) - 1).map(lambda k: data[:k])


def json_values() -> st.SearchStrategy[Any]:
    """Any JSON value, nested a little."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(2**70), 2**70)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=10)
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=10,
    )


# --------------------------------------------------------------------------- 1. table readers


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("properties")


@PER_READER
@given(file=table_files(), spec=st.sampled_from(SPECS))
def test_read_table_returns_a_dataset_or_raises_a_user_error(workdir, file, spec):
    ext, content = file
    path = workdir / f"table{ext}"
    path.write_bytes(content)
    ds = outcome(lambda: read_table(path, spec))
    if ds is None:
        return
    assert isinstance(ds, Dataset)
    if isinstance(ds.X, pd.DataFrame):
        assert len(ds.X) > 0 and ds.X.shape[1] > 0
        assert (ds.X.dtypes == np.float64).all()
        assert np.isfinite(ds.X.to_numpy()).all()
    else:  # an image stack; the model checks its values
        assert ds.X.ndim in (3, 4) and len(ds.X) > 0
    if ds.y is not None:
        assert ds.y.dtype == np.int64 and len(ds.y) == len(ds.X)
        assert np.isin(ds.y, (0, 1)).all()


# --------------------------------------------------------------------------- 2. anomaly_score


@functools.cache
def fitted(name: str) -> Any:
    """Each detector fitted once, on 200 normal rows of N_FEATURES features."""
    X = np.random.default_rng(0).normal(size=(200, N_FEATURES))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make_detector(name, **FAST_PARAMS[name]).fit(X)


@pytest.mark.parametrize("name", TABLE_DETECTORS)
@PER_DETECTOR
@given(X=inputs_to_score())
@example(X=[])  # sklearn's ValueError "Expected 2D array" escaped as it was
@example(X=np.ones(N_FEATURES))
@example(X=np.array([[np.inf, -np.inf, 0.0, 0.0]]))  # a RuntimeWarning came before the error
@example(X=np.full((1, N_FEATURES), 1.7e308))  # knn and ocsvm: standardising overflowed
def test_anomaly_score_is_finite_per_row_or_a_data_error(name, X):
    det = fitted(name)
    scores = outcome(lambda: det.anomaly_score(X), allowed=DataError)
    if scores is None:
        return
    assert isinstance(scores, np.ndarray) and scores.dtype == np.float64
    assert scores.shape == (len(X),)
    assert np.isfinite(scores).all()


# --------------------------------------------------------------------------- 3. codes files


@functools.cache
def tiny_ae() -> Any:
    return fitted("ae")


@functools.cache
def valid_codes(codec: str, with_ids: bool) -> bytes:
    X = np.random.default_rng(1).normal(size=(5, N_FEATURES))
    ids = ["a", "b", 3, 4.5, "e"] if with_ids else None
    return compress(tiny_ae(), X, codec=codec, ids=ids)


def _container(header: Any, payload: bytes) -> bytes:
    head = json.dumps(header).encode()
    return MAGIC + struct.pack("<HI", 1, len(head)) + head + payload


@st.composite
def edited_headers(draw: st.DrawFn, blob: bytes) -> bytes:
    """A valid file whose header has one field replaced, added or removed."""
    header = read_header(blob)
    payload = blob[-header["payload_bytes"] :] if header["payload_bytes"] else b""
    key = draw(st.sampled_from([*header, "quantization.kind", "new"]))
    if key == "quantization.kind":
        header["quantization"] = {**header["quantization"], "kind": draw(json_values())}
    elif draw(st.booleans()) or key == "new":
        header[key] = draw(json_values())
    else:
        del header[key]
    return _container(header, payload)


@st.composite
def consistent_headers(draw: st.DrawFn, blob: bytes) -> bytes:
    """A header that passes every check, over a random payload of exactly its declared size.

    These reach the decoder: rows, code width and row shape need not match the model, and
    the payload's float32 offsets and steps may be NaN, infinite or huge.
    """
    header = read_header(blob)
    n = draw(st.integers(0, 4))
    width = draw(st.integers(1, 6))
    header.update(
        n_rows=n,
        code_width=width,
        row_shape=draw(st.sampled_from([[N_FEATURES], [2, 2], [1, 2, 2], [3], [5]])),
        codec="none",
    )
    header.pop("ids", None)
    header.pop("id_name", None)
    lows = draw(
        hnp.arrays(np.dtype("<f4"), 2 * width, elements=st.floats(width=32) | st.just(np.nan))
    )
    payload = lows.tobytes() + draw(st.binary(min_size=n * width, max_size=n * width))
    header["payload_bytes"] = len(payload)
    return _container(header, payload)


@st.composite
def damaged_codes_files(draw: st.DrawFn) -> bytes:
    """Random bytes, or a valid codes file flipped, truncated or with another header."""
    blob = valid_codes(draw(st.sampled_from(["none", "zlib", "lzma"])), draw(st.booleans()))
    return draw(
        st.one_of(
            st.binary(max_size=200),
            st.binary(max_size=200).map(lambda b: MAGIC + b),
            flips(blob),
            truncations(blob),
            json_values().map(lambda h: _container(h, b"")),
            edited_headers(blob),
            consistent_headers(blob),
        )
    )


@PER_READER
@given(data=damaged_codes_files())
def test_codes_reader_raises_only_user_errors(data):
    header = outcome(lambda: read_header(data))
    assert header is None or isinstance(header, dict)
    out = outcome(lambda: decompress(tiny_ae(), data))
    if out is None:
        return
    assert header is not None
    assert out.dtype == np.float64
    assert out.shape == (header["n_rows"], *header["row_shape"])
    assert np.isfinite(out).all()


def test_codes_that_decode_to_infinity_are_refused():
    """A relu decoder turns huge (corrupted) codes into infinity: refused, not returned."""
    X = np.random.default_rng(0).normal(size=(200, N_FEATURES))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = make_detector("ae", **{**FAST_PARAMS["ae"], "activation": "relu"}).fit(X)
    header = read_header(compress(det, X[:1], codec="none"))
    width = header["code_width"]
    offsets = np.full(width, 3.4e38, "<f4")  # finite float32 codes, near the largest
    assert not np.isfinite(det.inverse_transform(offsets[None])).all()
    payload = offsets.tobytes() + np.zeros(width, "<f4").tobytes() + bytes(width)
    data = _container({**header, "payload_bytes": len(payload)}, payload)
    with pytest.raises(AnomaliaError, match="decode to infinite or NaN values"):
        decompress(det, data)


# --------------------------------------------------------------------------- 4. model files


@functools.cache
def saved_model(name: str) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{name}.anomalia"
        fitted(name).save(path)
        return path.read_bytes()


def _members(blob: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicated names warn
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in members:
                zf.writestr(name, data)
    return buf.getvalue()


@st.composite
def random_zips(draw: st.DrawFn, blob: bytes) -> bytes:
    """Zips of the model's members, random bytes and random names, in any mix."""
    real = _members(blob)
    names = st.sampled_from([*real, "signature.hmac", "../x", "sklearn/a.skops"]) | st.text(
        min_size=1, max_size=10
    )
    contents = st.sampled_from(list(real.values())) | st.binary(max_size=100)
    return _zip(draw(st.lists(st.tuples(names, contents), max_size=5)))


@st.composite
def members_replaced_with_digests(draw: st.DrawFn, blob: bytes) -> bytes:
    """One member replaced by random bytes, the manifest's sizes and digests updated."""
    real = _members(blob)
    manifest = json.loads(real["manifest.json"])
    name = draw(st.sampled_from(sorted(manifest["sizes"])))
    data = real[name]
    new = draw(st.binary(max_size=200) | flips(data) | truncations(data))
    manifest["sizes"][name] = len(new)
    manifest["sha256"][name] = hashlib.sha256(new).hexdigest()
    real[name] = new
    real["manifest.json"] = json.dumps(manifest).encode()
    return _zip(list(real.items()))


@st.composite
def damaged_model_files(draw: st.DrawFn) -> bytes:
    """Random bytes, or a saved model flipped, truncated, re-zipped or with a member replaced."""
    blob = saved_model(draw(st.sampled_from(["gaussian", "iforest"])))
    return draw(
        st.one_of(
            st.binary(max_size=300),
            flips(blob),
            truncations(blob),
            random_zips(blob),
            members_replaced_with_digests(blob),
        )
    )


@PER_READER
@given(data=damaged_model_files())
def test_loading_a_damaged_model_raises_only_model_file_errors(workdir, data):
    path = workdir / "model.anomalia"
    path.write_bytes(data)
    det = outcome(lambda: anomalia.load(path), allowed=ModelFileError)
    if det is None:
        return
    X = np.random.default_rng(2).normal(size=(3, N_FEATURES))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isfinite(det.anomaly_score(X)).all()
