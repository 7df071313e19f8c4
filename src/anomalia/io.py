"""Reading user tables (CSV, Parquet, NumPy) into model input.

:func:`read_table` turns a file into a :class:`Dataset`: float64 features in a named
DataFrame, optional 0/1 labels (1 = anomaly), optional ids. A :class:`TableSpec` says which
column is the label, which value of it means anomaly, which columns to skip and how to treat
text columns. After reading training data the returned ``Dataset.spec`` is *fitted*: it
holds the one-hot categories and the final feature names. Saved with a model (``to_dict``)
and passed back to :func:`read_table` for new data, it makes the new columns identical to
the training columns, or raises :class:`~anomalia.errors.DataError` saying what differs.

Every problem with the data raises :class:`~anomalia.errors.DataError` with a one-line
message naming the file and the column(s). Rows in messages are counted from 1, not counting
the header line.
"""

from __future__ import annotations

import io
import logging
import os
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pandas.api import types as ptypes

from .errors import DataError, ModelFileError
from .thresholds import check_binary_labels

__all__ = ["FORMATS", "Dataset", "TableSpec", "dataset_from_frame", "read_bytes", "read_table"]

logger = logging.getLogger(__name__)

#: File name endings :func:`read_table` understands.
FORMATS: tuple[str, ...] = (".csv", ".csv.gz", ".parquet", ".npy", ".npz", ".jsonl", ".jsonl.gz")
#: The JSON Lines endings (one JSON object per line, a row each).
JSONL_FORMATS: tuple[str, ...] = (".jsonl", ".jsonl.gz")

CATEGORICAL_MODES: tuple[str, ...] = ("error", "onehot")

_TRUE = frozenset({"1", "true"})
_FALSE = frozenset({"0", "false"})
_LISTED = 8  # how many names or values a message lists before "... (N more)"


def _fmt(items: Iterable[Any], limit: int = _LISTED) -> str:
    """Quote and join names or values for a message, listing at most ``limit``."""
    items = list(items)
    shown = ", ".join(repr(v) for v in items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def _first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (messages must stay one line)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


@dataclass
class TableSpec:
    """How to turn a raw table into model input.

    Saved with a model (:meth:`to_dict`, JSON-able) so that new data is read exactly like
    the training data.

    Parameters
    ----------
    label_column : str, optional
        Column holding the labels. It is not a feature. Without ``anomaly_value`` or
        ``normal_value`` it must hold only 0/1 (or booleans, "0"/"1", "true"/"false"), with
        1 = anomaly. When ``feature_names`` is set (data for a fitted model) the column may be
        absent: the data is then unlabelled.
    anomaly_value : str, optional
        The label value that means anomaly; every other value is normal. Compared as text
        and, when the label column is numeric, as a number, so "1" matches 1 and 1.0.
    normal_value : str, optional
        The label value that means normal; every other value is an anomaly (e.g. "normal"
        for intrusion data whose anomalies carry attack names). Mutually exclusive with
        ``anomaly_value``.
    id_column : str, optional
        Column identifying rows (kept in ``Dataset.ids`` to write outputs); not a feature.
    ignore_columns : tuple of str, default=()
        Columns to drop. When ``feature_names`` is set they may be absent.
    categorical : {"error", "onehot"}, default="error"
        What to do with text columns: ``"error"`` raises :class:`DataError` naming them;
        ``"onehot"`` replaces each by one 0/1 column per category, named ``col=value``.
    categories : dict of str to list of str, optional
        Fitted one-hot categories per column (sorted), set when reading training data.
        Reused for later data so the columns are identical; a value not seen in training
        gives all-zero dummies.
    feature_names : list of str, optional
        The final numeric column names, set when reading training data. When set, data
        read with this spec must have exactly these columns, in this order.
    text_column : str, optional
        Read texts, not numbers: ``Dataset.X`` is then this one column of strings (for text
        detectors such as ``text-ae``) and the other columns are ignored, except the label
        and id columns. Every row must hold a non-empty text.
    """

    label_column: str | None = None
    anomaly_value: str | None = None
    normal_value: str | None = None
    id_column: str | None = None
    ignore_columns: tuple[str, ...] = ()
    categorical: str = "error"
    categories: dict[str, list[str]] | None = None
    feature_names: list[str] | None = None
    text_column: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.ignore_columns, str):
            self.ignore_columns = (self.ignore_columns,)
        self.ignore_columns = tuple(str(c) for c in self.ignore_columns)
        if self.anomaly_value is not None:
            self.anomaly_value = str(self.anomaly_value)
        if self.normal_value is not None:
            self.normal_value = str(self.normal_value)
        if self.categorical not in CATEGORICAL_MODES:
            raise DataError(
                f"categorical must be one of {_fmt(CATEGORICAL_MODES)}; got {self.categorical!r}"
            )
        if self.anomaly_value is not None and self.normal_value is not None:
            raise DataError("give anomaly_value or normal_value, not both")
        if (
            self.anomaly_value is not None or self.normal_value is not None
        ) and self.label_column is None:
            raise DataError("anomaly_value and normal_value need a label_column")
        if self.categories is not None:
            cats = {str(k): [str(v) for v in vals] for k, vals in self.categories.items()}
            for col, vals in cats.items():
                if len(set(vals)) != len(vals):
                    raise DataError(f"categories of column {col!r} contain duplicates")
            self.categories = cats
        if self.feature_names is not None:
            self.feature_names = [str(c) for c in self.feature_names]

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as a JSON-able dict (lists, strings, None)."""
        return {
            "label_column": self.label_column,
            "anomaly_value": self.anomaly_value,
            "normal_value": self.normal_value,
            "id_column": self.id_column,
            "ignore_columns": list(self.ignore_columns),
            "categorical": self.categorical,
            "categories": (
                None
                if self.categories is None
                else {k: list(v) for k, v in self.categories.items()}
            ),
            "feature_names": None if self.feature_names is None else list(self.feature_names),
            "text_column": self.text_column,
        }

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any], source: str = "") -> TableSpec:
        """The spec saved in a model file's manifest (``metadata.table``).

        Raises :class:`~anomalia.errors.ModelFileError` (prefixed by ``source``) when the
        saved options are not a valid spec: the file was edited or corrupted.
        """
        try:
            return cls.from_dict(manifest["metadata"].get("table", {}))
        except DataError as exc:
            prefix = f"{source}: " if source else ""
            raise ModelFileError(
                f"{prefix}the model's saved data options are invalid: {exc}"
            ) from None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TableSpec:
        """Rebuild a spec from :meth:`to_dict` output.

        Parameters
        ----------
        d : mapping
            A dict as written by :meth:`to_dict`. Missing keys take their defaults;
            unknown keys raise :class:`DataError`.
        """
        if not isinstance(d, Mapping):
            raise DataError(f"a table spec must be a dict, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise DataError(f"unknown table spec field(s) {_fmt(unknown)}")

        def strings(value: Any) -> bool:
            return isinstance(value, list) and all(isinstance(v, str) for v in value)

        for key, value in d.items():
            if key in ("ignore_columns", "feature_names"):
                ok = strings(value) or (value is None and key == "feature_names")
            elif key == "categories":
                ok = value is None or (
                    isinstance(value, Mapping) and all(strings(v) for v in value.values())
                )
            else:
                ok = value is None or isinstance(value, str)
            if not ok:
                raise DataError(
                    f"table spec field {key} has the wrong type ({type(value).__name__})"
                )
        return cls(**d)


@dataclass
class Dataset:
    """A table ready for a detector.

    Parameters
    ----------
    X : pandas.DataFrame
        Numeric float64 features, one named column each, rows in file order.
    y : ndarray of int64 or None
        Labels, 1 = anomaly, 0 = normal; None when the data is unlabelled.
    ids : pandas.Series or None
        The id column, kept to write outputs; None without ``id_column``.
    labels : ndarray or None, default=None
        The original label values (e.g. attack names, digit classes) when known.
    name : str, default=""
        Short name, e.g. the file name without its extension.
    spec : TableSpec or None, default=None
        The fitted spec (categories and feature_names filled in); pass it to
        :func:`read_table` to read new data the same way.
    """

    X: pd.DataFrame
    y: NDArray[np.int64] | None
    ids: pd.Series | None
    labels: np.ndarray | None = None
    name: str = ""
    spec: TableSpec | None = None


# --------------------------------------------------------------------------- reading files


def _format_of(path: Path) -> str:
    name = path.name.lower()
    for ext in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(ext):
            return ext
    raise DataError(
        f"{path}: unsupported file type {''.join(path.suffixes) or '(no extension)'!r}; "
        f"use one of {', '.join(FORMATS)}"
    )


def _check_unique(names: Sequence[str], source: str) -> None:
    counts = Counter(n for n in names if n != "")
    dups = [n for n, k in counts.items() if k > 1]
    if dups:
        raise DataError(
            f"{source}: duplicated column name(s) {_fmt(dups)}; every column needs a unique name"
        )


def _source(data: Path | bytes) -> Any:
    """A path as it is; bytes as a fresh buffer (each reader starts at byte 0)."""
    return io.BytesIO(data) if isinstance(data, bytes) else data


def _read_csv(data: Path | bytes, spec: TableSpec, source: str | None = None) -> pd.DataFrame:
    source = source or str(data)
    try:
        header = pd.read_csv(_source(data), header=None, nrows=1, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{source}: the file is empty (no header, no rows)") from None
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{source}: cannot read it as CSV: {_first_line(exc)}") from None
    names = [str(v) for v in header.iloc[0].tolist()]
    _check_unique(names, source)
    # Fitted categorical columns stay text even when they look numeric in this file.
    dtype = {c: str for c in (spec.categories or {}) if c in names}
    try:
        return pd.read_csv(_source(data), low_memory=False, dtype=dtype or None)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{source}: cannot read it as CSV: {_first_line(exc)}") from None


def _read_jsonl(path: Path) -> pd.DataFrame:
    """A JSON Lines file (``.jsonl``, or gzip-compressed ``.jsonl.gz``): one object a row,
    values kept as written (no guessing of dates or numbers in strings)."""
    try:
        frame = pd.read_json(path, lines=True, dtype=False)
    except (ValueError, OSError, EOFError, zlib.error) as exc:  # zlib: a corrupt .gz
        raise DataError(f"{path}: cannot read it as JSON Lines: {_first_line(exc)}") from None
    if frame.shape[1] == 0 and len(frame) == 0:
        raise DataError(f"{path}: the file is empty (no rows)")
    return frame


def _read_parquet(data: Path | bytes, source: str | None = None) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = source or str(data)
    try:
        if isinstance(data, bytes):  # a request body: one file, no dataset discovery
            pf = pq.ParquetFile(pa.BufferReader(data))
            _check_unique(pf.schema_arrow.names, source)
            table = pf.read()
            return table.to_pandas(use_threads=table.num_rows > 10_000)
        _check_unique(pq.read_schema(data).names, source)
        return pq.read_table(data).to_pandas()
    except (pa.ArrowException, OSError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{source}: cannot read it as Parquet: {_first_line(exc)}") from None


def read_bytes(
    data: bytes, fmt: str, spec: TableSpec | None = None, *, source: str = "request body"
) -> Dataset:
    """Read a CSV or Parquet table held in memory, exactly as :func:`read_table` reads a file.

    Parameters
    ----------
    data : bytes
        The table's bytes (e.g. an HTTP request body).
    fmt : {".csv", ".parquet"}
        Its format.
    spec : TableSpec, optional
        How to read it; see :func:`read_table`.
    source : str, default="request body"
        What error messages call the table.
    """
    spec = spec if spec is not None else TableSpec()
    if fmt == ".csv":
        frame = _read_csv(data, spec, source)
    elif fmt == ".parquet":
        frame = _read_parquet(data, source)
    else:
        raise DataError(f"{source}: unsupported table format {fmt!r} (use .csv or .parquet)")
    return _to_dataset(frame, spec, y=None, name=source, source=source)


def _numeric_matrix(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.ndim not in (2, 3, 4):
        raise DataError(
            f"{what} must be a 2-D array (rows x features) or an image stack (n, H, W) or "
            f"(n, C, H, W), got shape {arr.shape}"
        )
    if arr.dtype.kind not in "biuf":
        raise DataError(f"{what} must hold numbers, got dtype {arr.dtype}")
    return arr


def _frame_from_array(arr: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(arr, columns=[f"x{j}" for j in range(arr.shape[1])])


def _read_npy(path: Path) -> np.ndarray:
    source = str(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{source}: cannot read it as a .npy array: {_first_line(exc)}") from None
    if not isinstance(arr, np.ndarray):
        arr.close()
        raise DataError(f"{source}: is an .npz archive, not a .npy array; rename it to .npz")
    return _numeric_matrix(arr, source)


def _read_npz(path: Path) -> tuple[np.ndarray, NDArray[np.int64] | None]:
    source = str(path)
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.ndarray):
            raise DataError(f"{source}: is a .npy array, not an .npz archive; rename it to .npy")
        with data:
            files = list(data.files)
            X = data["X"] if "X" in files else None
            y = data["y"] if "y" in files else None
    except DataError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"{source}: cannot read it as an .npz archive: {_first_line(exc)}"
        ) from None
    if X is None:
        raise DataError(
            f"{source}: no array 'X' in the archive (found {_fmt(files)}); "
            "an .npz file must hold features X and optional labels y (1 = anomaly)"
        )
    X = _numeric_matrix(X, f"{source}: array 'X'")
    labels = None
    if y is not None:
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise DataError(
                f"{source}: array 'y' has shape {y.shape}, expected ({X.shape[0]},) "
                "like the rows of X"
            )
        labels = check_binary_labels(y, name=f"{source}: array 'y'")
    return X, labels


def read_table(
    path: str | os.PathLike[str], spec: TableSpec | None = None, **spec_fields: Any
) -> Dataset:
    """Read a CSV, Parquet, .npy or .npz file into a :class:`Dataset`.

    Parameters
    ----------
    path : str or path-like
        The file. Its ending picks the format: ``.csv`` or ``.csv.gz`` (header line
        required), ``.parquet``, ``.npy`` (a 2-D numeric array; columns are named
        ``x0 .. x{d-1}``) or ``.npz`` (ADBench format: arrays ``X`` and optional ``y``
        with ``y == 1`` anomaly; ``label_column`` does not apply), ``.jsonl`` or
        ``.jsonl.gz`` (JSON Lines: one object per row, its keys the columns). A ``.npy`` or ``.npz``
        array of 3 or 4 dimensions is an image stack (n, H, W) or (n, C, H, W).
    spec : TableSpec, optional
        How to read the table. Pass ``Dataset.spec`` of the training data to read new data
        for a fitted model: its columns must then equal ``spec.feature_names``.
    **spec_fields
        :class:`TableSpec` fields that override those of ``spec`` (or of the default spec),
        e.g. ``label_column="Class"``.

    Returns
    -------
    Dataset
        Features, labels, ids and the fitted spec.

    Raises
    ------
    DataError
        When the file is missing, of an unsupported type, unreadable or empty; when a named
        column is absent; when features are non-numeric (and ``categorical="error"``), mix
        numbers and text, or hold NaN or infinity; when labels are missing or not 0/1 without
        ``anomaly_value``/``normal_value``; when column names repeat; or when the columns
        differ from ``spec.feature_names`` (or an image stack's values per image do).

    Notes
    -----
    Typical use: ``train = read_table("train.csv", label_column="label",
    normal_value="normal")``, then ``new = read_table("new.csv", train.spec)``.
    """
    spec = _make_spec(spec, spec_fields, "read_table")
    path = Path(path)
    if not path.exists():
        raise DataError(f"file not found: {path}")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a data file")
    fmt = _format_of(path)
    name = path.name[: -len(fmt)]
    y = None
    if fmt == ".npz":
        if spec.label_column is not None:
            raise DataError(
                f"{path}: label_column does not apply to .npz files; their labels are array 'y'"
            )
        arr, y = _read_npz(path)
    elif fmt == ".npy":
        arr = _read_npy(path)
    if fmt in (".npz", ".npy"):
        if arr.ndim > 2:  # an image stack: no columns to check; the model checks the shape
            if len(arr) == 0:
                raise DataError(f"{path}: the image stack has no images")
            expected = spec.feature_names
            if expected is not None and int(np.prod(arr.shape[1:])) != len(expected):
                raise DataError(
                    f"{path}: holds an array of shape {arr.shape}, but the model was trained "
                    f"on a table of {len(expected)} columns (rows x features)"
                )
            return Dataset(X=arr, y=y, ids=None, name=name, spec=spec)
        frame = _frame_from_array(arr)
    elif fmt == ".parquet":
        frame = _read_parquet(path)
    elif fmt in JSONL_FORMATS:
        frame = _read_jsonl(path)
    else:
        frame = _read_csv(path, spec)
    return _to_dataset(frame, spec, y=y, name=name, source=str(path))


def dataset_from_frame(
    frame: pd.DataFrame, spec: TableSpec | None = None, *, name: str = "", **spec_fields: Any
) -> Dataset:
    """Turn an in-memory DataFrame into a :class:`Dataset`, exactly as :func:`read_table` does.

    Parameters
    ----------
    frame : pandas.DataFrame
        The raw table, one column per field (features, and optionally label, id, ...).
    spec : TableSpec, optional
        How to read the table; see :func:`read_table`.
    name : str, default=""
        Name of the dataset, used in error messages and kept in ``Dataset.name``.
    **spec_fields
        :class:`TableSpec` fields that override those of ``spec``.

    Returns
    -------
    Dataset
        Features, labels, ids and the fitted spec.

    Examples
    --------
    >>> import pandas as pd
    >>> raw = pd.DataFrame({"bytes": [10, 20], "proto": ["tcp", "udp"], "label": ["ok", "dos"]})
    >>> ds = dataset_from_frame(raw, label_column="label", normal_value="ok", categorical="onehot")
    >>> list(ds.X.columns), ds.y.tolist()
    (['bytes', 'proto=tcp', 'proto=udp'], [0, 1])
    """
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    spec = _make_spec(spec, spec_fields, "dataset_from_frame")
    return _to_dataset(frame, spec, y=None, name=name, source=name or "table")


def _make_spec(spec: TableSpec | None, spec_fields: dict[str, Any], func: str) -> TableSpec:
    known = {f.name for f in fields(TableSpec)}
    unknown = sorted(set(spec_fields) - known)
    if unknown:
        raise TypeError(f"{func}() got unknown option(s) {_fmt(unknown)}; valid: {_fmt(known)}")
    base = spec if spec is not None else TableSpec()
    return replace(base, **spec_fields) if spec_fields else base


# --------------------------------------------------------------------------- frame -> Dataset


def _to_dataset(
    frame: pd.DataFrame,
    spec: TableSpec,
    *,
    y: NDArray[np.int64] | None,
    name: str,
    source: str,
) -> Dataset:
    if frame.shape[1] == 0:
        raise DataError(f"{source}: the table has no columns")
    if len(frame) == 0:
        raise DataError(f"{source}: the table has no rows")
    frame = frame.set_axis([str(c) for c in frame.columns], axis=1)
    _check_unique(list(frame.columns), source)
    if not frame.index.equals(pd.RangeIndex(len(frame))):
        frame = frame.reset_index(drop=True)
    columns = list(frame.columns)
    present = set(columns)
    scoring = spec.feature_names is not None

    if spec.label_column is not None and spec.label_column == spec.id_column:
        raise DataError(f"{source}: column {spec.label_column!r} cannot be both label and id")
    missing = []
    if spec.label_column is not None and spec.label_column not in present and not scoring:
        missing.append(f"label column {spec.label_column!r}")
    if spec.id_column is not None and spec.id_column not in present:
        missing.append(f"id column {spec.id_column!r}")
    if not scoring:
        missing += [f"ignored column {c!r}" for c in spec.ignore_columns if c not in present]
    if missing:
        raise DataError(
            f"{source}: {', '.join(missing)} not found; available columns: {_fmt(columns, 20)}"
        )

    labels = None
    if y is None and spec.label_column is not None and spec.label_column in present:
        y, labels = _labels(frame[spec.label_column], spec, source)
    ids = frame[spec.id_column].copy() if spec.id_column is not None else None

    if spec.text_column is not None:
        return _text_dataset(frame, spec, y=y, labels=labels, ids=ids, name=name, source=source)
    dropped = {spec.label_column, spec.id_column, *spec.ignore_columns}
    feat_cols = [c for c in columns if c not in dropped]
    if not feat_cols:
        raise DataError(
            f"{source}: no feature columns left after removing the label, id and ignored columns"
        )
    if spec.feature_names is not None:
        _check_columns(feat_cols, _raw_columns(spec.feature_names, spec.categories), source)

    X, fitted = _features(frame, feat_cols, spec, source)
    if spec.feature_names is not None:
        _check_columns(list(X.columns), spec.feature_names, source)
    return Dataset(X=X, y=y, ids=ids, labels=labels, name=name, spec=fitted)


def _text_dataset(
    frame: pd.DataFrame,
    spec: TableSpec,
    *,
    y: NDArray[np.int64] | None,
    labels: np.ndarray | None,
    ids: pd.Series | None,
    name: str,
    source: str,
) -> Dataset:
    """The :class:`Dataset` of ``spec.text_column``: X is that one column of strings."""
    col = str(spec.text_column)
    if col not in frame.columns:
        raise DataError(
            f"{source}: text column {col!r} not found; available columns: "
            f"{_fmt(list(frame.columns), 20)}"
        )
    if col in (spec.label_column, spec.id_column):
        raise DataError(f"{source}: column {col!r} cannot be both the text and a label or id")
    values = frame[col]
    missing = np.flatnonzero(values.isna().to_numpy())
    if missing.size:
        raise DataError(
            f"{source}: text column {col!r} has {missing.size} missing values "
            f"(first: row {int(missing[0]) + 1})"
        )
    is_text = values.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    if not is_text.all():
        i = int(np.flatnonzero(~is_text)[0])
        value = values.iloc[i]
        raise DataError(
            f"{source}: column {col!r} is not text: row {i + 1} holds {value!s:.40} "
            f"({type(value).__name__}; {int((~is_text).sum())} such rows)"
        )
    empty = np.flatnonzero((values.str.strip() == "").to_numpy())
    if empty.size:
        raise DataError(
            f"{source}: text column {col!r} has {empty.size} empty texts "
            f"(first: row {int(empty[0]) + 1})"
        )
    X = frame[[col]].astype(object)
    return Dataset(
        X=X, y=y, ids=ids, labels=labels, name=name, spec=replace(spec, feature_names=[col])
    )


def _raw_columns(feature_names: list[str], categories: dict[str, list[str]] | None) -> list[str]:
    """The raw columns behind final feature names (one-hot ``col=value`` -> ``col``)."""
    if not categories:
        return list(feature_names)
    prefixes = [(f"{c}=", c) for c in categories]
    raw = []
    for f in feature_names:
        raw.append(next((c for p, c in prefixes if f.startswith(p)), f))
    return list(dict.fromkeys(raw))


def _check_columns(actual: list[str], expected: list[str], source: str) -> None:
    if actual == expected:
        return
    exp, act = set(expected), set(actual)
    missing = [c for c in expected if c not in act]
    unexpected = [c for c in actual if c not in exp]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {_fmt(missing)}")
        if unexpected:
            parts.append(f"unexpected {_fmt(unexpected)}")
        raise DataError(f"{source}: columns do not match the model's: {'; '.join(parts)}")
    raise DataError(
        f"{source}: columns are in a different order than the model's; "
        f"expected {_fmt(expected, 12)}"
    )


def _matches(col: pd.Series, value: str) -> NDArray[np.bool_]:
    """Rows whose label equals ``value``, as text or, for a numeric column, as a number."""
    if ptypes.is_bool_dtype(col):
        v = value.strip().lower()
        if v in _TRUE or v in _FALSE:
            return col.to_numpy(dtype=bool) == (v in _TRUE)
    hit = (col.astype(str).str.strip() == value.strip()).to_numpy(dtype=bool)
    if ptypes.is_numeric_dtype(col) and not ptypes.is_bool_dtype(col):
        try:
            num = float(value)
        except ValueError:
            return hit
        hit = hit | (col.to_numpy(dtype=np.float64) == num)
    return hit


def _labels(col: pd.Series, spec: TableSpec, source: str) -> tuple[NDArray[np.int64], np.ndarray]:
    name = spec.label_column
    na = col.isna().to_numpy()
    if na.any():
        raise DataError(
            f"{source}: label column {name!r} has {int(na.sum())} missing value(s), "
            f"first at row {int(na.argmax()) + 1}"
        )
    labels = col.to_numpy(copy=True)
    value = spec.anomaly_value if spec.anomaly_value is not None else spec.normal_value
    if value is not None:
        hit = _matches(col, value)
        if not hit.any():
            logger.warning(
                "%s: no row of label column %r equals %r (values: %s)",
                source,
                name,
                value,
                _fmt(col.drop_duplicates().tolist()),
            )
        y = hit if spec.anomaly_value is not None else ~hit
        return y.astype(np.int64), labels
    if ptypes.is_bool_dtype(col):
        return col.to_numpy(dtype=bool).astype(np.int64), labels
    if ptypes.is_numeric_dtype(col):
        num = col.to_numpy(dtype=np.float64)
        if np.isin(num, (0.0, 1.0)).all():
            return num.astype(np.int64), labels
    else:
        text = col.astype(str).str.strip().str.lower()
        mapped = text.map({**dict.fromkeys(_TRUE, 1.0), **dict.fromkeys(_FALSE, 0.0)})
        if mapped.notna().all():
            return mapped.to_numpy(dtype=np.float64).astype(np.int64), labels
    values = col.drop_duplicates().tolist()
    raise DataError(
        f"{source}: label column {name!r} must hold 0/1 (1 = anomaly), but found values "
        f"{_fmt(values)}; pass anomaly_value or normal_value to say which value means what"
    )


def _plain_numeric(
    frame: pd.DataFrame, feat_cols: list[str], fitted_cats: dict[str, list[str]] | None
) -> NDArray[np.float64] | None:
    """The features as one float64 array when every feature column is a plain NumPy number
    column (bool, int, float) with finite values and none is categorical: the values and
    the column-major layout the column-by-column path below makes, in one conversion
    instead of one pandas access per column (milliseconds on a one-row request). None
    otherwise, for the path that names each problem."""
    if fitted_cats and any(c in fitted_cats for c in feat_cols):
        return None
    part = frame if len(feat_cols) == frame.shape[1] else frame[feat_cols]
    if not all(isinstance(t, np.dtype) and t.kind in "biuf" for t in part.dtypes):
        return None
    data = np.asfortranarray(part.to_numpy(dtype=np.float64))
    return data if np.isfinite(data).all() else None


def _features(
    frame: pd.DataFrame, feat_cols: list[str], spec: TableSpec, source: str
) -> tuple[pd.DataFrame, TableSpec]:
    """Numeric and one-hot features in column order, plus the fitted spec."""
    fitted_cats = spec.categories
    plain = _plain_numeric(frame, feat_cols, fitted_cats)
    if plain is not None:
        empty = {} if spec.categorical == "onehot" else None
        categories = dict(fitted_cats) if fitted_cats is not None else empty
        X = pd.DataFrame(plain, columns=list(feat_cols), copy=False)
        return X, replace(spec, categories=categories, feature_names=list(feat_cols))
    numeric: dict[str, np.ndarray] = {}
    text_cols: list[str] = []
    text_examples: dict[str, tuple[Any, int]] = {}
    for c in feat_cols:  # a loop over columns; the work per column is vectorised
        col = frame[c]
        if fitted_cats is not None and c in fitted_cats:
            text_cols.append(c)
        elif ptypes.is_complex_dtype(col):
            raise DataError(f"{source}: column {c!r} holds complex numbers")
        elif ptypes.is_datetime64_any_dtype(col) or ptypes.is_timedelta64_dtype(col):
            raise DataError(f"{source}: column {c!r} holds dates or times; convert them to numbers")
        elif ptypes.is_numeric_dtype(col):
            numeric[c] = col.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            num = pd.to_numeric(col, errors="coerce")
            is_text = (num.isna() & col.notna()).to_numpy()
            n_text = int(is_text.sum())
            n_num = int(num.notna().sum())
            if n_text == 0:
                numeric[c] = num.to_numpy(dtype=np.float64, na_value=np.nan)
                continue
            row = int(is_text.argmax())
            if n_num >= n_text:
                raise DataError(
                    f"{source}: text in numeric column {c!r}: {col.iloc[row]!r} at row "
                    f"{row + 1} ({n_text} of {len(col)} values are not numbers)"
                )
            text_cols.append(c)
            text_examples[c] = (col.iloc[row], row)

    new_text = [c for c in text_cols if fitted_cats is None or c not in fitted_cats]
    if new_text and (spec.categorical == "error" or fitted_cats is not None):
        c = new_text[0]
        value, row = text_examples[c]
        if fitted_cats is not None:
            raise DataError(
                f"{source}: column {c!r} holds text ({value!r} at row {row + 1}) "
                "but was numeric in the training data"
            )
        raise DataError(
            f"{source}: non-numeric column(s) {_fmt(new_text)} (e.g. {value!r} in column "
            f"{c!r}, row {row + 1}); convert them to numbers, drop them with ignore_columns, "
            "or one-hot encode them with --categorical onehot"
        )

    n = len(frame)
    text_values = {c: frame[c].astype(str) for c in text_cols}
    _check_finite(numeric, {c: frame[c].isna().to_numpy() for c in text_cols}, n, source)

    categories = dict(fitted_cats) if fitted_cats is not None else None
    if spec.categorical == "onehot" and categories is None:
        categories = {c: sorted(pd.unique(text_values[c].to_numpy())) for c in text_cols}

    widths = {c: 1 if c in numeric else len((categories or {})[c]) for c in feat_cols}
    # Column-major, so the DataFrame wraps it without copying (one float64 block).
    data = np.zeros((n, sum(widths.values())), dtype=np.float64, order="F")
    names: list[str] = []
    for c in feat_cols:
        j = len(names)
        if c in numeric:
            names.append(c)
            data[:, j] = numeric[c]
        else:
            cats = (categories or {})[c]
            codes = pd.Index(cats, dtype=object).get_indexer(text_values[c].to_numpy())
            seen = codes >= 0
            data[np.flatnonzero(seen), j + codes[seen]] = 1.0  # unseen values: all zeros
            names.extend(f"{c}={v}" for v in cats)
    X = pd.DataFrame(data, columns=names, copy=False)
    fitted = replace(spec, categories=categories, feature_names=list(names))
    return X, fitted


def _check_finite(
    numeric: dict[str, np.ndarray], text_missing: dict[str, np.ndarray], n: int, source: str
) -> None:
    bad_cols: dict[str, np.ndarray] = {}
    for c, values in numeric.items():
        bad = ~np.isfinite(values)
        if bad.any():
            bad_cols[c] = bad
    for c, bad in text_missing.items():
        if bad.any():
            bad_cols[c] = bad
    if not bad_cols:
        return
    any_bad = np.zeros(n, dtype=bool)
    for bad in bad_cols.values():
        any_bad |= bad
    per_col = ", ".join(f"{c!r} ({int(b.sum())} rows)" for c, b in list(bad_cols.items())[:_LISTED])
    more = f", ... ({len(bad_cols) - _LISTED} more columns)" if len(bad_cols) > _LISTED else ""
    raise DataError(
        f"{source}: NaN (missing) or infinite values in {int(any_bad.sum())} row(s), first at "
        f"row {int(any_bad.argmax()) + 1}, in column(s) {per_col}{more}; "
        "drop or fill them before use"
    )


def read_column(path: str | os.PathLike[str], column: str) -> np.ndarray:
    """One column of a CSV or Parquet table, e.g. the known classes of the rows.

    Parameters
    ----------
    path : str or path-like
        A ``.csv``, ``.csv.gz``, ``.parquet``, ``.jsonl`` or ``.jsonl.gz`` file.
    column : str
        The column's name.

    Returns
    -------
    ndarray of shape (n_rows,)
        The column's values, in row order.
    """
    path = Path(path)
    fmt = _format_of(path)
    if fmt not in (".csv", ".csv.gz", ".parquet", *JSONL_FORMATS):
        raise DataError(
            f"{path}: a column by name needs a CSV, Parquet or JSON Lines file, not {fmt}"
        )
    try:
        if fmt in JSONL_FORMATS:
            frame = _read_jsonl(path)
            if column not in frame.columns:
                raise KeyError(f"available columns: {_fmt(list(frame.columns), 20)}")
        elif fmt == ".parquet":
            frame = pd.read_parquet(path, columns=[column])
        else:
            frame = pd.read_csv(path, usecols=[column], low_memory=False)
    except DataError:
        raise
    except (ValueError, KeyError, OSError) as exc:  # pyarrow errors are ValueErrors
        raise DataError(f"{path}: column {column!r} not found ({_first_line(exc)})") from None
    values = frame[column]
    if values.isna().any():
        raise DataError(f"{path}: column {column!r} has {int(values.isna().sum())} missing values")
    return values.to_numpy()
