"""Train an auto-encoder on a table larger than memory, streaming it from its file.

:func:`fit_streaming` reads the file several times, one record batch at a time:

1. a first pass converts every batch exactly as :func:`anomalia.io.read_table` would, and
   merges per-feature means and sums of squared deviations over the batches (Chan et al.'s
   parallel update, float64): the input standardisation of the whole file, as an in-memory
   ``fit`` computes it. The same pass keeps a seeded uniform sample of the training rows
   (reservoir sampling, :func:`anomalia.detectors._incremental.update_reservoir`);
2. each epoch then reads the file again, in order, and the detector shuffles its rows in a
   bounded buffer into minibatches for the one training loop of :mod:`anomalia.training`.

The sample gives the rows held out for validation (``validation_fraction`` of the training
rows, at most half the sample; they are left out of the epochs) and, once trained, the
threshold: the training scores of the rest of the sample, rows the network trained on (so
the threshold is the quantile of a uniform sample of the training scores, not of all of
them). A file of at most the
buffer's rows is read whole and fitted in memory instead: then the model is, bitwise, the
one ``fit`` makes on the same rows with the same seed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ..detectors._incremental import update_reservoir
from ..detectors._torch import seed_from
from ..errors import DataError
from ..io import Dataset, TableSpec, dataset_from_frame
from ._files import _dataset, batch_rows_for, batches, count_rows

__all__ = ["BUFFER_BYTES", "SAMPLE_ROWS", "StreamedFit", "buffer_rows_for", "fit_streaming"]

#: Memory budget of the shuffle buffer, in bytes (its float32 rows and the permuted copy
#: made while it empties).
BUFFER_BYTES = 256 * 2**20

#: Rows of the uniform sample :func:`fit_streaming` keeps (validation rows and threshold).
SAMPLE_ROWS = 100_000

Moments = tuple[int, NDArray[np.float64], NDArray[np.float64]]


def buffer_rows_for(n_values: int, budget: int | None = None) -> int:
    """Rows of a shuffle buffer of ``budget`` bytes (default :data:`BUFFER_BYTES`) for rows
    of ``n_values`` values each: float32 values, twice (the buffer and its permuted copy),
    at least 256 rows."""
    budget = BUFFER_BYTES if budget is None else budget
    return max(256, budget // (8 * max(n_values, 1)))


@dataclass(frozen=True)
class StreamedFit:
    """What :func:`fit_streaming` did.

    Attributes
    ----------
    rows : int
        Training rows (the file's rows less the labelled anomalies, unless kept).
    rows_read : int
        Rows in the file.
    spec : TableSpec
        The fitted data options (feature names, one-hot categories), to save with the model.
    streamed : bool
        False when the file fitted in the buffer and was fitted in memory.
    buffer_rows : int
        Most rows the shuffle buffer held (or could have held).
    sample_rows : int
        Rows of the uniform sample the threshold was set on (all rows when in memory).
    validation_rows : int
        Rows held out for validation.
    """

    rows: int
    rows_read: int
    spec: TableSpec
    streamed: bool
    buffer_rows: int
    sample_rows: int
    validation_rows: int


def _moments(X: NDArray[np.float64]) -> Moments:
    """Count, per-feature mean and sum of squared deviations from it of the rows ``X``."""
    mean = X.mean(axis=0)
    dev = X - mean
    return len(X), mean, np.einsum("ij,ij->j", dev, dev)


def _merge(a: Moments | None, b: Moments) -> Moments:
    """The moments of two sets of rows together (Chan, Golub and LeVeque's update)."""
    if a is None:
        return b
    n_a, mean_a, m2_a = a
    n_b, mean_b, m2_b = b
    n = n_a + n_b
    delta = mean_b - mean_a
    return n, mean_a + delta * (n_b / n), m2_a + m2_b + delta * delta * (n_a * n_b / n)


def _training_rows(ds: Dataset, normal_only: bool) -> pd.DataFrame:
    """The rows of ``ds`` to train on: the normal ones when labelled and ``normal_only``."""
    return ds.X[(ds.y == 0) if ds.y is not None and normal_only else slice(None)]


def fit_streaming(
    detector: Any,
    data: str,
    spec: TableSpec | None = None,
    *,
    buffer_rows: int | None = None,
    sample_rows: int = SAMPLE_ROWS,
    in_memory_rows: int = 0,
    normal_only: bool = True,
    rows: int | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> StreamedFit:
    """Fit an auto-encoder detector on a CSV, Parquet or Arrow file, streaming its rows.

    Parameters
    ----------
    detector : auto-encoder detector
        ``ae``, ``dae``, ``vae``, ``vqvae`` (any detector with ``fit_stream``); fitted in place.
    data : str
        A ``.csv`` / ``.csv.gz``, ``.parquet`` or Arrow IPC file (read several times, so
        not standard input).
    spec : TableSpec, optional
        How rows become features. Unfitted (no ``feature_names``), it is fitted on the
        first batch (one-hot categories then come from that batch; pass a spec fitted on a
        sample, as ``anomalia fit`` does, to see more of the file).
    buffer_rows : int, optional
        Most rows in the shuffle buffer (default: :func:`buffer_rows_for` a 256 MiB budget).
    sample_rows : int, default=100,000
        Rows of the uniform sample kept in memory for validation and the threshold.
    in_memory_rows : int, default=0
        A file of at most ``max(buffer_rows, in_memory_rows)`` rows is read whole and
        fitted in memory (``detector.fit``).
    normal_only : bool, default=True
        With a label column, train on the normal rows only (``--polluted`` turns it off).
    rows : int, optional
        Rows per record batch read (default: from a 64 MiB budget); the epochs read at
        most a quarter of ``buffer_rows`` at a time.
    progress : callable, optional
        Called as ``progress(rows_read, rows_total_or_None)`` after each batch, counting
        the rows of every pass (the total assumes all epochs run; when early stopping ends
        them sooner, a last call gives the rows read as the total, so a bar ends full).

    Returns
    -------
    StreamedFit

    Raises
    ------
    DataError
        On a bad row anywhere in the file (naming its row, counted from 1 in the file), a
        file with fewer than 2 training rows, or standard input.
    """
    if data == "-":
        raise DataError("streamed training reads the file several times: give a file, not -")
    if not hasattr(detector, "fit_stream"):
        raise DataError(f"{type(detector).__name__} cannot train by streaming a file")
    if sample_rows < 2:
        raise DataError(f"sample_rows must be at least 2, got {sample_rows}")
    given = spec or TableSpec()
    seed = seed_from(getattr(detector, "random_state", None))
    total = count_rows(data)
    fitted: TableSpec | None = given if given.feature_names is not None else None
    cap, moments, reservoir = buffer_rows, None, None
    raw: list[pd.DataFrame] | None = []  # the file's batches while it may fit in memory
    raw_bytes = 0  # what they hold, every column counted (label, id, ignored, text)
    n_read = n_train = 0
    n_columns = 1
    for frame in batches(data, given, rows=rows):
        ds = _dataset(frame, fitted or given, n_read + 1, data)
        fitted = fitted or ds.spec
        n_columns = len(frame.columns)
        X = _training_rows(ds, normal_only).to_numpy(dtype=np.float64)
        if cap is None:
            cap = buffer_rows_for(X.shape[1])
        n_read += len(frame)
        if raw is not None:
            raw_bytes += int(frame.memory_usage(index=False, deep=True).sum())
            # rows and bytes: the kept batches cost what the features of max(cap,
            # in_memory_rows) rows would, at most, however many other columns they carry
            budget = max(cap, in_memory_rows) * max(X.shape[1], 1) * 8
            if n_read <= max(cap, in_memory_rows) and raw_bytes <= max(budget, BUFFER_BYTES):
                raw.append(frame)
            else:
                raw = None
        if len(X):
            moments = _merge(moments, _moments(X))
            indexed = np.column_stack([X, np.arange(n_train, n_train + len(X))])
            reservoir = update_reservoir(reservoir, n_train, indexed, sample_rows, seed)
            n_train += len(X)
        if progress is not None:
            progress(n_read, total)
    if fitted is None or cap is None:
        raise DataError(f"{data}: the table has no rows")
    if n_train < 2 or moments is None or reservoir is None:
        raise DataError(f"{data}: training needs at least 2 rows, got {n_train}")

    if raw is not None:  # it fits: exactly the in-memory fit
        ds = dataset_from_frame(pd.concat(raw, ignore_index=True), given, name=data)
        X_all = _training_rows(ds, normal_only)
        detector.fit(X_all)
        return StreamedFit(len(X_all), n_read, ds.spec, False, cap, len(X_all), 0)

    n_val = int(n_train * detector.validation_fraction)
    if n_val < 1 or n_train - n_val < 2:
        n_val = 0
    # at most half the sample: the threshold is set on the other half, rows the network
    # trained on, as the in-memory fit sets it on training rows
    n_val = min(n_val, len(reservoir) // 2)
    rng = np.random.default_rng([seed, 1])
    val_slots = np.sort(rng.choice(len(reservoir), size=n_val, replace=False))
    held = np.sort(reservoir[val_slots, -1].astype(np.int64))  # training-row numbers
    names = list(fitted.feature_names or [])
    n, mean, m2 = moments
    epoch_total = n_read * (detector.epochs + 1)
    done = {"rows": n_read}
    spec_used = fitted
    # a quarter of the buffer per batch: the buffer, after it emptied, and the batch coming
    # in hold at most capacity // 2 + batch_size + capacity // 4 rows, within its capacity
    epoch_rows = max(1, min(rows or batch_rows_for(n_columns), cap // 4))

    def epoch_blocks() -> Iterator[pd.DataFrame]:
        read = position = 0
        for frame in batches(data, spec_used, rows=epoch_rows):
            ds = _dataset(frame, spec_used, read + 1, data)
            read += len(frame)
            X = _training_rows(ds, normal_only)
            at = position + np.arange(len(X))
            position += len(X)
            found = np.searchsorted(held, at)
            is_held = held[np.minimum(found, len(held) - 1)] == at if len(held) else None
            done["rows"] += len(frame)
            if progress is not None:
                progress(min(done["rows"], epoch_total), epoch_total)
            yield X if is_held is None else X[~is_held]

    detector.fit_stream(
        epoch_blocks,
        n_rows=n_train,
        mean=mean,
        std=np.sqrt(m2 / n),
        sample=pd.DataFrame(np.delete(reservoir, val_slots, axis=0)[:, :-1], columns=names),
        validation=pd.DataFrame(reservoir[val_slots, :-1], columns=names),
        buffer_rows=cap,
    )
    if progress is not None:  # early stopping ends the passes before the total assumed
        progress(done["rows"], done["rows"])
    return StreamedFit(n_train, n_read, fitted, True, cap, len(reservoir) - n_val, n_val)
