"""Tables larger than memory: read in record batches, scored and written as they go.

:func:`batches` reads CSV (pandas' chunked reader: the same parser, so the same floats, as
:func:`anomalia.io.read_table`), Parquet (row groups through pyarrow) and Arrow IPC files, or
CSV on standard input, as raw DataFrames of a bounded number of rows. :func:`score_to` turns
each batch into model input exactly as ``read_table`` would (the model's saved
:class:`~anomalia.io.TableSpec`), scores it and appends it to a CSV or Parquet output, so
peak memory depends on the batch, not on the file. :func:`sample` draws a uniform, seeded
sample of rows in one pass (to fit on a file that does not fit in memory).
:func:`fit_streaming` trains an auto-encoder on the whole file, a batch at a time: epochs
over the file, shuffled in a bounded buffer (see :mod:`anomalia.stream._train`).

A bad row in the middle of a file raises :class:`~anomalia.errors.DataError` naming its
row in the whole file (counted from 1, not counting the header).
"""

from ._files import (
    BATCH_BYTES,
    STREAMED,
    batch_rows_for,
    batches,
    count_rows,
    is_streamed,
    sample,
    score_to,
    write_frames,
)
from ._train import StreamedFit, fit_streaming

__all__ = [
    "BATCH_BYTES",
    "STREAMED",
    "StreamedFit",
    "batch_rows_for",
    "batches",
    "count_rows",
    "fit_streaming",
    "is_streamed",
    "sample",
    "score_to",
    "write_frames",
]
