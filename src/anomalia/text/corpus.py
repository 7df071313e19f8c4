"""Texts in: reading one text per row from a file, splitting texts into words, and a
vocabulary that maps words to ids.

Files: a ``.txt`` file holds one text per line (blank lines skipped), after a header line
naming its one column when ``text_column`` is given; ``.csv``, ``.jsonl`` and ``.jsonl.gz``
files hold one record per row, the text in the column ``text_column`` names.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ..errors import DataError

__all__ = ["TEXT_SUFFIXES", "build_vocabulary", "encode", "read_texts", "tokenize"]

#: The file kinds :func:`read_texts` reads.
TEXT_SUFFIXES = (".txt", ".csv", ".jsonl", ".jsonl.gz")

_WORD = re.compile(r"\w+(?:[-'.+]\w+)*\+*|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Lower-cased words and single punctuation marks, e.g. ``"GNU C library: shared"`` ->
    ``["gnu", "c", "library", ":", "shared"]``; words keep inner ``-``, ``'``, ``.``, ``+``
    and trailing ``+`` (``c++``)."""
    return _WORD.findall(text.lower())


def build_vocabulary(
    sentences: Iterable[Sequence[str]], *, max_size: int, min_count: int = 1
) -> list[str]:
    """The ``max_size`` most frequent words seen at least ``min_count`` times, most
    frequent first (ties in first-seen order)."""
    counts = Counter(w for s in sentences for w in s)
    return [w for w, c in counts.most_common(max_size) if c >= min_count]


def encode(
    sentences: Sequence[Sequence[str]], vocabulary: Sequence[str], *, width: int, offset: int
) -> NDArray[np.float32]:
    """Word ids ``(n, width)``: word ``vocabulary[k]`` is ``k + offset``, an unknown word
    ``offset - 2`` (the models' unknown id, 1, with ``offset=3``), padding 0; rows longer than
    ``width`` words are cut. Floating, as the training loop takes rows."""
    lookup = {w: k + offset for k, w in enumerate(vocabulary)}
    unk = offset - 2
    out = np.zeros((len(sentences), width), dtype=np.float32)
    for i, s in enumerate(sentences):
        ids = [lookup.get(w, unk) for w in s[:width]]
        out[i, : len(ids)] = ids
    return out


def read_texts(path: str | os.PathLike[str], text_column: str | None = None) -> list[str]:
    """The texts of a file, one per row (see the module docstring).

    Parameters
    ----------
    path : str or path-like
        A ``.txt``, ``.csv``, ``.jsonl`` or ``.jsonl.gz`` file.
    text_column : str, optional
        The column (field) holding the text; required for ``.csv`` and JSON lines. For
        ``.txt``: the header the first line must hold (then not a text); None: no header.

    Returns
    -------
    list of str
        The texts, in file order; empty records are refused.

    Raises
    ------
    DataError
        A missing or unreadable file, another kind of file, a missing column, a row with no
        text, or no text at all.
    """
    import pandas as pd

    p = Path(path)
    name = p.name.lower()
    kind = next((s for s in TEXT_SUFFIXES if name.endswith(s)), None)
    if kind is None:
        raise DataError(f"{p}: texts are read from {', '.join(TEXT_SUFFIXES)} files")
    if not p.is_file():
        raise DataError(f"text file not found: {p}")
    if kind == ".txt":
        try:
            lines = p.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read {p}: {exc}") from None
        if text_column is not None:  # a one-column file with a header line
            if not lines or lines[0].strip() != text_column:
                first = lines[0].strip()[:40] if lines else ""
                raise DataError(
                    f"{p}: with a text column, a .txt file starts with its name as a header "
                    f"line; its first line is {first!r}, not {text_column!r}"
                )
            lines = lines[1:]
        texts = [line for line in lines if line.strip()]
    else:
        if text_column is None:
            raise DataError(f"{p}: say which column holds the text (--text-column)")
        try:
            if kind == ".csv":
                frame = pd.read_csv(p, dtype=str, keep_default_na=False)
            else:
                frame = pd.read_json(p, lines=True, dtype=False)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"cannot read {p}: {msg}") from None
        if text_column not in frame.columns:
            cols = ", ".join(map(str, frame.columns[:10]))
            raise DataError(f"{p} has no column {text_column!r}; its columns: {cols}")
        column = frame[text_column]
        bad = np.flatnonzero([not isinstance(t, str) or not t.strip() for t in column])
        if bad.size:
            raise DataError(
                f"{p}: row {int(bad[0]) + 1} of column {text_column!r} holds no text "
                f"({bad.size} such rows)"
            )
        texts = column.tolist()
    if not texts:
        raise DataError(f"{p} holds no text")
    return texts
