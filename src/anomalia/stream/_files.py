"""Reading tables in record batches, sampling them, scoring and writing them as they go
(the functions :mod:`anomalia.stream` exports; see its docstring)."""

from __future__ import annotations

import contextlib
import csv
import io
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import sklearn

from ..errors import DataError
from ..io import Dataset, TableSpec, dataset_from_frame

#: File endings read in record batches (others are read whole by :func:`anomalia.io.read_table`).
STREAMED: tuple[str, ...] = (".csv", ".csv.gz", ".parquet", ".arrow", ".feather", ".ipc")

#: Memory budget of one batch's raw values, in bytes.
BATCH_BYTES = 64 * 2**20
#: scikit-learn's working memory while scoring a batch, in MiB.
WORKING_MEMORY_MIB = 128


def batch_rows_for(n_columns: int, budget: int = BATCH_BYTES) -> int:
    """Rows per batch so that one batch's values (as float64, with pandas' copies, ~4x) fit
    ``budget`` bytes: between 1,024 and 262,144."""
    return int(np.clip(budget // (32 * max(n_columns, 1)), 1024, 262_144))


def is_streamed(data: str) -> bool:
    """Whether ``data`` (a path, or ``-`` for standard input) is read in batches."""
    return data == "-" or data.lower().endswith(STREAMED)


class _Prepended:
    """A binary stream that first returns ``head``, then reads ``rest`` (stdin after its
    header line was read)."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self.head, self.rest = head, rest

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if n is None or n < 0:
                out, self.head = self.head + self.rest.read(), b""
                return out
            out, self.head = self.head[:n], self.head[n:]
            return out
        return self.rest.read(n)

    def __iter__(self) -> Iterator[bytes]:  # pandas checks for it
        return iter(self.read, b"")


def _csv_batches(data: str, spec: TableSpec, rows: int | None) -> Iterator[pd.DataFrame]:
    source = "standard input" if data == "-" else data
    if data == "-":
        fh: Any = sys.stdin.buffer
    else:
        path = Path(data)
        if not path.is_file():
            raise DataError(f"file not found: {data}")
        import gzip

        fh = gzip.open(path, "rb") if data.lower().endswith(".gz") else path.open("rb")  # noqa: SIM115 - closed below
    with contextlib.nullcontext() if data == "-" else fh:
        header = fh.readline()
        if not header.strip():
            raise DataError(f"{source}: the file is empty (no header, no rows)")
        try:
            names = next(csv.reader([header.decode("utf-8-sig")]))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise DataError(f"{source}: cannot read its header as CSV: {exc}") from None
        dups = sorted({n for n in names if n and names.count(n) > 1})
        if dups:
            raise DataError(
                f"{source}: duplicated column name(s) {dups}; every column needs a unique name"
            )
        dtype = {c: str for c in (spec.categories or {}) if c in names}
        reader = pd.read_csv(
            _Prepended(header, fh),
            chunksize=rows or batch_rows_for(len(names)),
            low_memory=False,
            dtype=dtype or None,
        )
        try:
            yield from reader
        except (ValueError, OSError, EOFError) as exc:
            raise DataError(
                f"{source}: cannot read it as CSV: {str(exc).splitlines()[0]}"
            ) from None


def _arrow_batches(data: str, rows: int | None) -> Iterator[pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(data)
    if not path.is_file():
        raise DataError(f"file not found: {data}")
    try:
        if data.lower().endswith(".parquet"):
            # pre-buffering reads far ahead (1.1 GB peak for a 780 MB file, measured);
            # without it, one row group at a time (260 MB)
            pf = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
            size = rows or batch_rows_for(len(pf.schema_arrow.names))
            for batch in pf.iter_batches(batch_size=size):
                yield batch.to_pandas()
            return
        try:
            reader: Any = pa.ipc.open_file(path)
            parts: Iterator[Any] = (reader.get_batch(i) for i in range(reader.num_record_batches))
        except pa.ArrowInvalid:
            reader = pa.ipc.open_stream(path)
            parts = iter(reader)
        size = rows or batch_rows_for(len(reader.schema.names))
        for batch in parts:
            for start in range(0, batch.num_rows, size):  # a huge IPC batch, re-sliced
                yield batch.slice(start, size).to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise DataError(
            f"{data}: cannot read it as Parquet or Arrow: {str(exc).splitlines()[0]}"
        ) from None


def batches(
    data: str, spec: TableSpec | None = None, *, rows: int | None = None
) -> Iterator[pd.DataFrame]:
    """Raw DataFrames of at most ``rows`` rows (default: from a 64 MiB budget), in file order.

    Parameters
    ----------
    data : str
        A ``.csv`` / ``.csv.gz``, ``.parquet`` or Arrow IPC (``.arrow``, ``.feather``,
        ``.ipc``) file, or ``-`` for CSV on standard input.
    spec : TableSpec, optional
        Its fitted categorical columns are read as text, as :func:`anomalia.io.read_table`
        does.
    rows : int, optional
        Rows per batch.
    """
    spec = spec or TableSpec()
    if data == "-" or data.lower().endswith((".csv", ".csv.gz")):
        return _csv_batches(data, spec, rows)
    if data.lower().endswith(STREAMED):
        return _arrow_batches(data, rows)
    raise DataError(f"{data}: not a streamed format; use one of {', '.join(STREAMED)} or '-'")


_ROW = re.compile(r"\brow (\d+)")


def _dataset(frame: pd.DataFrame, spec: TableSpec, first_row: int, source: str) -> Dataset:
    """``dataset_from_frame`` with rows in messages counted in the whole file."""
    try:
        return dataset_from_frame(frame, spec, name=source)
    except DataError as exc:
        # every message names rows by 1-based position in the frame: shift to the file's
        shifted = _ROW.sub(lambda m: f"row {int(m.group(1)) + first_row - 1}", str(exc))
        raise DataError(shifted) from None


def sample(
    data: str,
    n: int,
    spec: TableSpec | None = None,
    *,
    random_state: int = 0,
    rows: int | None = None,
) -> tuple[pd.DataFrame, int]:
    """A uniform sample of ``n`` raw rows drawn in one pass, and the number of rows read.

    Each row gets a random key from a generator seeded by ``random_state``; the ``n`` rows
    with the smallest keys are kept (reservoir sampling by random keys: every subset of
    ``n`` rows is equally likely, memory holds ``n`` rows plus one batch). The sample keeps
    file order. A file of at most ``n`` rows is returned whole.
    """
    rng = np.random.default_rng(random_state)
    kept: pd.DataFrame | None = None
    keys = np.empty(0)
    order = np.empty(0, dtype=np.int64)
    seen = 0
    for frame in batches(data, spec, rows=rows):
        frame = frame.reset_index(drop=True)
        batch_keys = rng.random(len(frame))
        merged = frame if kept is None else pd.concat([kept, frame], ignore_index=True)
        all_keys = np.concatenate([keys, batch_keys])
        all_order = np.concatenate([order, np.arange(seen, seen + len(frame))])
        seen += len(frame)
        if len(all_keys) > n:
            pick = np.sort(np.argpartition(all_keys, n - 1)[:n])
            merged, all_keys, all_order = merged.iloc[pick], all_keys[pick], all_order[pick]
        kept, keys, order = merged.reset_index(drop=True), all_keys, all_order
    if kept is None:
        raise DataError(f"{data}: the table has no rows")
    return kept, seen


def score_to(
    detector: Any,
    spec: TableSpec,
    data: str,
    out: str | Path,
    *,
    keep: Sequence[str] | str | None = None,
    rows: int | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> tuple[int, int]:
    """Score ``data`` batch by batch and write ``anomaly_score`` and ``is_anomaly`` to ``out``.

    Parameters
    ----------
    detector : fitted detector
    spec : TableSpec
        The model's saved data options (how rows become features; the id column leads
        the output).
    data : str
        The input (see :func:`batches`).
    out : str or Path
        ``.csv`` or ``.parquet`` (row groups, one per batch), or ``-`` for CSV on standard
        output. A file is written to a temporary name and renamed at the end: nothing
        partial is left on error (standard output cannot be taken back).
    keep : sequence of str or "all", optional
        Input columns passed through next to the scores.
    rows : int, optional
        Rows per batch (default: from a 64 MiB budget).
    progress : callable, optional
        Called as ``progress(rows_done, rows_total_or_None)`` after each batch.

    Returns
    -------
    (rows, flagged) : tuple of int
    """
    total = count_rows(data)
    state = {"rows": 0, "flagged": 0}
    source = "standard input" if data == "-" else data

    def frames() -> Iterator[pd.DataFrame]:
        for frame in batches(data, spec, rows=rows):
            ds = _dataset(frame, spec, state["rows"] + 1, source)
            # scikit-learn's neighbour search blocks by its working memory (1 GiB by
            # default): bounded here too, so peak memory stays near one batch's
            with sklearn.config_context(working_memory=WORKING_MEMORY_MIB):
                scores = detector.anomaly_score(ds.X)
            flagged = scores > detector.threshold_
            outf = pd.DataFrame({"anomaly_score": scores, "is_anomaly": flagged})
            passed = _kept(frame, keep, ds, source)
            outf = pd.concat([passed.reset_index(drop=True), outf], axis=1)
            state["rows"] += len(frame)
            state["flagged"] += int(flagged.sum())
            if progress is not None:
                progress(state["rows"], total)
            yield outf

    write_frames(frames(), out)
    return state["rows"], state["flagged"]


def write_frames(frames: Iterator[pd.DataFrame], out: str | Path) -> None:
    """Write DataFrames of the same columns, as they come, to a ``.csv`` or ``.parquet`` file
    (atomically: renamed into place at the end) or to standard output (``-``, CSV)."""
    from .._utils.files import atomic_output

    if str(out) == "-":
        _write_csv(frames, sys.stdout.buffer)
        sys.stdout.flush()
    elif str(out).lower().endswith(".parquet"):
        atomic_output(Path(out), lambda tmp: _write_parquet(frames, tmp))
    elif str(out).lower().endswith(".csv"):

        def write(tmp: Path) -> None:
            with tmp.open("wb") as fh:
                _write_csv(frames, fh)

        atomic_output(Path(out), write)
    else:
        raise DataError(f"--out must end in .csv or .parquet (or be -), got {str(out)!r}")


def _kept(
    frame: pd.DataFrame, keep: Sequence[str] | str | None, ds: Dataset, source: str
) -> pd.DataFrame:
    """The id column (first), then the kept input columns, as they were read."""
    names = [str(ds.ids.name)] if ds.ids is not None else []
    if keep == "all":
        names += [str(c) for c in frame.columns if str(c) not in names]
    elif keep:
        missing = [c for c in keep if c not in frame.columns]
        if missing:
            raise DataError(f"{source}: --keep-columns names {missing}, not in the input")
        names += [c for c in keep if c not in names]
    reserved = {"anomaly_score", "is_anomaly"} & set(names)
    if reserved:
        raise DataError(f"{source}: input column(s) {sorted(reserved)} would clash with the scores")
    return frame[names]


def _write_csv(frames: Iterator[pd.DataFrame], fh: BinaryIO) -> None:
    text = io.TextIOWrapper(fh, encoding="utf-8", newline="", write_through=True)
    try:
        for i, f in enumerate(frames):
            f.to_csv(text, header=i == 0, index=False)
    finally:
        text.detach()


def _write_parquet(frames: Iterator[pd.DataFrame], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    try:
        for f in frames:
            table = pa.Table.from_pandas(f, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            elif table.schema != writer.schema:
                try:
                    table = table.cast(writer.schema)
                except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):
                    raise DataError(
                        f"a passed-through column changes type within the file ({table.schema} "
                        f"vs {writer.schema}); write CSV instead"
                    ) from None
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def count_rows(data: str) -> int | None:
    """Rows in a Parquet or Arrow file from its metadata (None for CSV: unknown in advance)."""
    if data == "-" or data.lower().endswith((".csv", ".csv.gz")):
        return None
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if data.lower().endswith(".parquet"):
            return int(pq.ParquetFile(data).metadata.num_rows)
        reader = pa.ipc.open_file(pa.memory_map(data))  # batch headers only: no data read
        return int(sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches)))
    except (pa.ArrowException, OSError):
        return None
