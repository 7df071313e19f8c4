"""Shared CLI pieces: option types, the error handler, data reading, output writing."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperArgument, TyperCommand, TyperGroup

from .._utils.files import atomic_output
from ..errors import AnomaliaError

__all__ = [
    "Commands",
    "HelpGroup",
    "atomic_output",
    "console",
    "data_options",
    "err_console",
    "handle_errors",
    "load_with_spec",
    "metrics_table",
    "need_labels",
    "parse_params",
    "print_error",
    "print_warning",
    "progress_bar",
    "read_data",
    "saved_spec",
    "spec_from_options",
]

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

STATE = {"debug": False}

# -- the data options every data-reading command takes, the same way ----------------------
DataArg = Annotated[
    str,
    typer.Argument(
        help="Data file (.csv, .parquet, .npy, .npz, .jsonl) or a built-in dataset name."
    ),
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
TextColumn = Annotated[
    str | None,
    typer.Option(
        "--text-column",
        help="Read this column's texts (for text detectors, e.g. text-ae), not numbers; "
        "other columns are ignored.",
    ),
]
#: The column options of every command that reads a table with a saved or given layout:
#: option parameter -> :class:`anomalia.io.TableSpec` field.
DATA_OPTIONS: dict[str, tuple[str, Any]] = {
    "label_column": ("label_column", LabelColumn),
    "anomaly_value": ("anomaly_value", AnomalyValue),
    "normal_value": ("normal_value", NormalValue),
    "id_column": ("id_column", IdColumn),
    "ignore_column": ("ignore_columns", IgnoreColumn),
    "text_column": ("text_column", TextColumn),
}


def data_options(func: F) -> F:
    """Give a command the column options (``--label-column``, ``--anomaly-value``,
    ``--normal-value``, ``--id-column``, ``--ignore-column``, ``--text-column``), declared
    once here; the
    command receives them as one ``columns`` dict keyed by :class:`~anomalia.io.TableSpec`
    field, ready for :func:`spec_from_options` or :func:`saved_spec`."""
    signature = inspect.signature(func, eval_str=True)
    kept = [p for name, p in signature.parameters.items() if name != "columns"]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=kind)
        for name, (_, kind) in DATA_OPTIONS.items()
    ]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        columns = {field: kwargs.pop(name, None) for name, (field, _) in DATA_OPTIONS.items()}
        return func(*args, columns=columns, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=[*kept, *added])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {
        **{k: v for k, v in func.__annotations__.items() if k != "columns"},
        **{name: kind for name, (_, kind) in DATA_OPTIONS.items()},
    }
    return wrapper  # type: ignore[return-value]


def _plain_help(params: list[Any]) -> list[Any]:
    """Help that names arguments as the command's text does (``MODEL DATA``, not
    ``{model} {data}``) and shows flags as flags (``--json``, not ``--json <bool>``)."""
    for param in params:
        if isinstance(param, TyperArgument) and param.metavar is None:
            param.metavar = param.name.upper()
        elif getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class _HelpCommand(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_help(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        # ``Usage: anomalia score [OPTIONS] MODEL DATA``: required arguments bare, as click
        # writes them, not in braces
        pieces = super().collect_usage_pieces(ctx)
        return [p[1:].replace("}", "", 1) if p.startswith("{") else p for p in pieces]


class HelpGroup(TyperGroup):
    """The ``anomalia`` group: its own options (``--debug``, ``--version``) as flags."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_help(super().get_params(ctx))


class Commands(typer.Typer):
    """The commands of one CLI module; ``anomalia.cli.app`` merges them into ``anomalia``.
    Each command's help follows :class:`_HelpCommand`."""

    def __init__(self) -> None:
        super().__init__(add_completion=False)

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", _HelpCommand)
        return super().command(*args, **kwargs)


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


ModelArg = Annotated[Path, typer.Argument(help="Model file written by 'anomalia fit'.")]
ClassColumn = Annotated[
    str | None,
    typer.Option(
        "--class-column", help="Column of known classes (for 'confidence'); not a feature."
    ),
]


def _folder_labels(data: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Image folders carry labels as sub-folder names: their label column is "folder"."""
    wants_labels = fields.get("anomaly_value") or fields.get("normal_value")
    if Path(data).is_dir() and wants_labels and not fields.get("label_column"):
        fields["label_column"] = "folder"
    return fields


def spec_from_options(data: str, **fields: Any) -> Any:
    from ..io import TableSpec

    fields = _folder_labels(data, fields)
    fields["ignore_columns"] = tuple(fields.get("ignore_columns") or ())
    if fields.get("categorical") is None:
        fields["categorical"] = "error"
    return TableSpec(**fields)


def read_data(data: str, spec: Any) -> Any:
    """A file, or a built-in dataset when ``data`` names one and no such file exists."""
    from .. import datasets
    from ..errors import DataError
    from ..io import read_table

    if Path(data).is_dir():
        from ..images import read_image_folder

        return read_image_folder(data, spec)
    if not Path(data).exists() and data in datasets.available():
        ds = datasets.load_dataset(data)
        expected = spec.feature_names
        columns = list(getattr(ds.X, "columns", []))
        if expected is not None and columns != list(expected):
            raise DataError(f"built-in dataset {data!r} does not have the model's columns")
        if ds.spec is None:
            ds.spec = dataclasses.replace(spec, feature_names=list(ds.X.columns))
        return ds
    return read_table(data, spec)


def load_with_spec(model: Path, data: str, **overrides: Any) -> tuple[Any, Any]:
    """The detector and the data spec saved with it, with the command's options applied."""
    det, manifest = open_model(model)
    return det, saved_spec(manifest, data, **overrides)


def saved_spec(manifest: dict[str, Any], data: str, **overrides: Any) -> Any:
    """The data spec saved in a model's manifest, with the command's options applied."""
    from ..io import TableSpec

    spec = TableSpec.from_manifest(manifest)
    overrides = _folder_labels(data, overrides)
    changes = {k: v for k, v in overrides.items() if v not in (None, [], ())}
    if "ignore_columns" in changes:
        changes["ignore_columns"] = tuple(changes["ignore_columns"])
    return dataclasses.replace(spec, **changes)


def need_labels(ds: Any, what: str) -> Any:
    from ..errors import DataError

    if ds.y is None:
        raise DataError(f"{what} needs labels: pass --label-column (1 = anomaly)")
    return ds.y


@contextlib.contextmanager
def progress_bar(what: str) -> Any:
    """A progress bar on stderr (a terminal only): rows done, rows/s, time left when known."""
    import time

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows, {task.fields[rate]} rows/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    start = time.perf_counter()
    with Progress(*columns, console=err_console, disable=not err_console.is_terminal) as bar:
        task = bar.add_task(what, total=None, rate="-")

        def update(done: int, total: int | None) -> None:
            rate = f"{done / max(time.perf_counter() - start, 1e-9):,.0f}"
            bar.update(task, completed=done, total=total, rate=rate)

        yield update


def metrics_table(rows: list[dict[str, Any]], title: str) -> Table:
    """A Rich table of evaluation rows (one per detector); counts are in ``--json``."""
    cols = {
        "roc_auc": "ROC-AUC",
        "average_precision": "AP",
        "precision": "prec",
        "recall": "recall",
        "f1": "F1",
        "false_alarm_rate": "FAR",
    }
    if any("expected_cost" in r for r in rows):
        cols["expected_cost"] = "cost/row"
    table = Table(title=title, caption="FAR: false-alarm rate, the share of normal rows flagged")
    table.add_column("detector")
    for header in [*cols.values(), "threshold"]:
        table.add_column(header, justify="right")
    for r in rows:
        cells = [f"{r[c]:.3f}" for c in cols] + [f"{r['threshold']:.4g}"]
        table.add_row(str(r.get("detector", "")), *cells)
    return table
