"""Parameter checks shared by the detectors (our own, not scikit-learn internals)."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..errors import DataError


def check_fraction(
    name: str,
    value: Any,
    *,
    low: float = 0.0,
    high: float = 1.0,
    low_inclusive: bool = False,
    high_inclusive: bool = True,
) -> float:
    """Return ``value`` as float if it lies in the interval, else raise ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    ok_low = v >= low if low_inclusive else v > low
    ok_high = v <= high if high_inclusive else v < high
    if not (ok_low and ok_high):
        lb = "[" if low_inclusive else "("
        hb = "]" if high_inclusive else ")"
        raise ValueError(f"{name} must be in {lb}{low}, {high}{hb}, got {value!r}")
    return v


def check_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """Return ``value`` as int if it is an integer >= minimum, else raise ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_option(name: str, value: Any, options: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``options``, else raise ValueError listing them."""
    options = tuple(options)
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}; got {value!r}")
    return value


@contextmanager
def input_errors_as_data_errors() -> Iterator[None]:
    """Turn scikit-learn's and numpy's ValueErrors about input data into :class:`DataError`.

    Their messages (NaN, wrong feature count, 1-D input, text, complex numbers) become the
    one-line user error anomalia promises, their lines joined (scikit-learn's remedy, such as
    "Reshape your data ...", stays in the message). The floating-point
    warnings of the checks themselves (``inf + -inf`` in scikit-learn's finiteness test) are
    silenced: the error that follows says what is wrong.
    """
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            yield
    except DataError:
        raise
    except ValueError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        raise DataError(" ".join(lines) if lines else type(exc).__name__) from None
