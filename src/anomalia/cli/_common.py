"""Shared CLI pieces: option types, the error handler, data reading, output writing."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from .._utils.files import atomic_output
from ..errors import AnomaliaError

__all__ = [
    "atomic_output",
    "console",
    "err_console",
    "handle_errors",
    "parse_params",
    "print_error",
    "print_warning",
]

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

STATE = {"debug": False}

# -- the data options every data-reading command takes, the same way ----------------------
DataArg = Annotated[
    str,
    typer.Argument(help="Data file (.csv, .parquet, .npy, .npz) or a built-in dataset name."),
]
LabelColumn = Annotated[
    str | None, typer.Option("--label-column", help="Column holding the labels.")
]
AnomalyValue = Annotated[
    str | None,
    typer.Option("--anomaly-value", help="Label value meaning anomaly (default: labels 0/1)."),
]
NormalValue = Annotated[
    str | None,
    typer.Option(
        "--normal-value",
        help="Label value meaning normal; every other value is an "
        "anomaly (e.g. 'normal' for intrusion data).",
    ),
]
IdColumn = Annotated[
    str | None, typer.Option("--id-column", help="Column kept as row id in outputs, not a feature.")
]
IgnoreColumn = Annotated[
    list[str] | None,
    typer.Option("--ignore-column", help="Column to leave out (repeat for several)."),
]
SignKeyFile = Annotated[
    Path | None,
    typer.Option(
        "--sign-key-file",
        help="Sign the model with the HMAC key in this file (default: $ANOMALIA_MODEL_KEY, "
        "if set); a signed input model is verified with it.",
    ),
]
Categorical = Annotated[
    str | None,
    typer.Option("--categorical", help="Non-numeric columns: 'error' (default) or 'onehot'."),
]


def handle_errors(func: F) -> F:
    """Turn user errors into one line on stderr and exit code 2 (``--debug``: traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except BrokenPipeError:  # the reader of --out - left (`| head`): as other Unix tools
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush is quiet
            raise typer.Exit(141) from None  # 128 + SIGPIPE, what a shell reports for `head`
        except (AnomaliaError, ValueError, OSError) as exc:
            if STATE["debug"]:
                raise
            print_error(_os_error_line(exc) if isinstance(exc, OSError) else str(exc), exc)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def print_error(message: str, exc: BaseException | None = None) -> None:
    """Print ``error: <first line of message>`` on stderr (the exception's type if empty)."""
    msg = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
    err_console.print(f"[bold red]error:[/] {escape(msg)}", highlight=False, soft_wrap=True)


def print_warning(message: str) -> None:
    """Print ``warning: <message>`` on stderr, one line."""
    err_console.print(
        f"[bold yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True
    )


def _os_error_line(exc: OSError) -> str:
    """``cannot access PATH: reason`` for an operating-system error that names its file."""
    reason = exc.strerror or str(exc)
    if exc.filename is None:
        return reason
    if exc.filename2 is not None:
        return f"cannot move {exc.filename} to {exc.filename2}: {reason}"
    return f"cannot access {exc.filename}: {reason}"


def open_model(path: Path, key: bytes | None = None) -> tuple[Any, dict[str, Any]]:
    """Load a model file and its manifest; with a key (default: ``$ANOMALIA_MODEL_KEY``)
    the file must carry a valid signature made with it."""
    from ..persistence import load_model, read_key

    return load_model(path, key=key if key is not None else read_key())


def parse_value(text: str) -> Any:
    """Parse one ``--param`` value: bool, None, int, float, comma list (tuple) or string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    if "," in text:
        return tuple(parse_value(part) for part in text.split(",") if part.strip())
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_params(pairs: list[str] | None) -> dict[str, Any]:
    """``["k=v", ...]`` -> ``{k: parsed v}``; a pair without ``=`` is a clear error."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise AnomaliaError(f"--param expects key=value, got {pair!r}")
        out[key.strip()] = parse_value(value)
    return out
