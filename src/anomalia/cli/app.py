"""``anomalia``: fit, calibrate, score and evaluate detectors from the shell.

Each command parses its options and calls the library; no algorithm lives here. User errors
print one line on stderr and exit with code 2, writing no partial output (``--debug`` shows
the traceback instead).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ._common import (
    STATE,
    AnomalyValue,
    Categorical,
    DataArg,
    IdColumn,
    IgnoreColumn,
    LabelColumn,
    NormalValue,
    SignKeyFile,
    console,
    err_console,
    handle_errors,
    open_model,
    parse_params,
    print_error,
    print_warning,
)

app = typer.Typer(
    name="anomalia",
    help="Find anomalies with auto-encoders and their classical rivals.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)

ModelArg = Annotated[Path, typer.Argument(help="Model file written by 'anomalia fit'.")]
ClassColumn = Annotated[
    str | None,
    typer.Option(
        "--class-column", help="Column of known classes (for 'confidence'); not a feature."
    ),
]
Strategy = Annotated[
    str, typer.Option("--strategy", help="Threshold rule: f1, fpr, recall or cost.")
]
Target = Annotated[
    float | None,
    typer.Option("--target", help="For fpr: highest false-alarm rate; for recall: lowest recall."),
]
CostMiss = Annotated[
    float | None, typer.Option("--cost-miss", help="Cost of one missed anomaly (any unit).")
]
CostFalseAlarm = Annotated[
    float | None, typer.Option("--cost-false-alarm", help="Cost of one false alarm (same unit).")
]


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"anomalia {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    STATE["debug"] = debug


#: Column names that usually hold labels; as a feature they deserve a warning.
LABEL_LIKE = {"class", "label", "labels", "y", "target", "is_anomaly", "anomaly", "outlier"}


def _warn_label_like(columns: Any) -> None:
    """One warning line per feature column named like a label (``Class``, ``target``...)."""
    for name in columns:
        if str(name).lower() in LABEL_LIKE:
            print_warning(
                f"column {name!r} looks like a label but is used as a feature; "
                f"pass --label-column {name} if it holds labels"
            )


def _folder_labels(data: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Image folders carry labels as sub-folder names: their label column is "folder"."""
    wants_labels = fields.get("anomaly_value") or fields.get("normal_value")
    if Path(data).is_dir() and wants_labels and not fields.get("label_column"):
        fields["label_column"] = "folder"
    return fields


def _spec_from_options(data: str, **fields: Any) -> Any:
    from ..io import TableSpec

    fields = _folder_labels(data, fields)
    fields["ignore_columns"] = tuple(fields.get("ignore_columns") or ())
    if fields.get("categorical") is None:
        fields["categorical"] = "error"
    return TableSpec(**fields)


def _read(data: str, spec: Any) -> Any:
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
        if expected is not None and list(ds.X.columns) != list(expected):
            raise DataError(f"built-in dataset {data!r} does not have the model's columns")
        if ds.spec is None:
            ds.spec = dataclasses.replace(spec, feature_names=list(ds.X.columns))
        return ds
    return read_table(data, spec)


def _load_with_spec(model: Path, data: str, **overrides: Any) -> tuple[Any, Any]:
    """The detector and the data spec saved with it, with the command's options applied."""
    det, manifest = open_model(model)
    return det, _saved_spec(manifest, data, **overrides)


def _saved_spec(manifest: dict[str, Any], data: str, **overrides: Any) -> Any:
    """The data spec saved in a model's manifest, with the command's options applied."""
    from ..io import TableSpec

    spec = TableSpec.from_manifest(manifest)
    overrides = _folder_labels(data, overrides)
    changes = {k: v for k, v in overrides.items() if v not in (None, [], ())}
    if "ignore_columns" in changes:
        changes["ignore_columns"] = tuple(changes["ignore_columns"])
    return dataclasses.replace(spec, **changes)


#: Rows ``fit`` reads from a streamed file before it samples (``--sample-rows``).
SAMPLE_ROWS = {"ocsvm": 20_000}
DEFAULT_SAMPLE_ROWS = 1_000_000


def _read_for_fit(data: str, spec: Any, detector: str, sample_rows: int | None, seed: int) -> Any:
    """The training table: a CSV, Parquet or Arrow file larger than the sample size is
    sampled uniformly in one streaming pass (seeded by ``--seed``), never held whole."""
    from ..errors import DataError
    from ..io import dataset_from_frame
    from ..stream import is_streamed, sample

    if sample_rows is not None and sample_rows < 2:
        raise DataError(f"--sample-rows must be at least 2, got {sample_rows}")
    if not is_streamed(data) or Path(data).is_dir():
        return _read(data, spec)
    n = sample_rows or SAMPLE_ROWS.get(detector, DEFAULT_SAMPLE_ROWS)
    frame, seen = sample(data, n, spec, random_state=seed)
    source = "standard input" if data == "-" else data
    ds = dataset_from_frame(frame, spec, name=source)
    if seen > n:
        console.print(f"fitting on a uniform sample of {n} of {seen} rows of {source}")
    return ds


def _streams(det: Any, data: str, detector: str, sample_rows: int | None) -> bool:
    """Whether ``fit`` trains ``det`` by streaming DATA: an auto-encoder on a CSV, Parquet
    or Arrow file (not standard input: it is read more than once) of more rows than
    ``--sample-rows``. Parquet and Arrow files say their rows; a CSV file is counted."""
    from ..errors import DataError
    from ..stream import _count, batches, is_streamed

    if not hasattr(det, "fit_stream") or data == "-" or Path(data).is_dir():
        return False
    if not is_streamed(data):
        return False
    if sample_rows is not None and sample_rows < 2:
        raise DataError(f"--sample-rows must be at least 2, got {sample_rows}")
    n = sample_rows or SAMPLE_ROWS.get(detector, DEFAULT_SAMPLE_ROWS)
    total = _count(data)
    if total is None:  # CSV: count until past n (raw batches, no conversion)
        total = 0
        for frame in batches(data):
            total += len(frame)
            if total > n:
                break
    return total > n


def _fit_streamed(
    det: Any,
    data: str,
    out: Path,
    key: bytes | None,
    detector: str,
    spec: Any,
    polluted: bool,
    sample_rows: int | None,
    seed: int,
) -> None:
    """``fit`` of an auto-encoder on a file of more rows than ``--sample-rows``: the network
    trains on every row, streamed from the file in epochs (:func:`anomalia.stream.fit_streaming`);
    one-hot categories are those of a uniform sample of ``--sample-rows`` rows (as for the
    other detectors), the other data options need no fitting."""
    from ..io import dataset_from_frame
    from ..stream import fit_streaming, sample
    from ..stream._train import SAMPLE_ROWS as STREAM_SAMPLE_ROWS

    n = sample_rows or SAMPLE_ROWS.get(detector, DEFAULT_SAMPLE_ROWS)
    if spec.categorical == "onehot":  # categories from a uniform sample, not the first batch
        spec = dataset_from_frame(sample(data, n, spec, random_state=seed)[0], spec, name=data).spec
    if "verbose" in det.get_params():
        det.set_params(verbose=False)  # the rows bar below shows the progress instead
    with _progress(f"training {detector} on {data}") as update:
        result = fit_streaming(
            det,
            data,
            spec,
            sample_rows=min(n, STREAM_SAMPLE_ROWS),
            in_memory_rows=n,
            normal_only=not polluted,
            progress=update,
        )
    _warn_label_like(result.spec.feature_names or [])
    metadata = {"table": result.spec.to_dict(), "train_rows": result.rows, "detector": detector}
    det.save(out, metadata=metadata, key=key)
    console.print(
        f"fitted [bold]{detector}[/] on {result.rows} rows ({det.n_features_in_} values each); "
        f"threshold {det.threshold_:.6g}; saved to {out}"
    )
    if result.streamed:
        console.print(
            f"streamed: {det.n_epochs_} epochs over the file, shuffle buffer of "
            f"{result.buffer_rows} rows, threshold from a uniform sample of "
            f"{result.sample_rows} rows",
            highlight=False,
        )
    else:
        console.print(f"read whole: the file fits a buffer of {result.buffer_rows} rows")
    if getattr(det, "code_usage_", None) is not None:  # vqvae: how the codebook is used
        from ..represent import codebook_summary

        console.print(codebook_summary(det.code_usage_), highlight=False)


def _fit_update(
    model: Path,
    data: str,
    out: Path,
    key: bytes | None,
    detector: str | None,
    params: dict[str, Any],
    polluted: bool,
    sample_rows: int | None,
    seed: int,
    fields: dict[str, Any],
) -> None:
    """``fit --update``: continue a saved model on DATA with its ``partial_fit``."""
    from ..errors import AnomaliaError

    if detector is not None:
        raise AnomaliaError("--update keeps the model's own detector: drop --detector")
    det, manifest = open_model(model, key)
    name = manifest["metadata"].get("detector")
    name = name if isinstance(name, str) else det.name
    if not hasattr(det, "partial_fit"):
        raise AnomaliaError(
            f"{model}: a {name} model cannot keep learning (it has no partial_fit); "
            "fit a new model on all the data instead"
        )
    if params:
        det.set_params(**params)  # e.g. update_epochs; checked by partial_fit
    spec = _saved_spec(manifest, data, **fields)
    ds = _read_for_fit(data, spec, name, sample_rows, seed)
    X = ds.X[(ds.y == 0) if ds.y is not None and not polluted else slice(None)]
    det.partial_fit(X)
    before = manifest["metadata"].get("train_rows")
    seen = before + len(X) if isinstance(before, int) and before >= 0 else len(X)
    metadata = {**manifest["metadata"], "table": ds.spec.to_dict(), "train_rows": seen}
    det.save(out, metadata=metadata, key=key)
    console.print(
        f"updated [bold]{name}[/] with {len(X)} rows ({seen} trained on in all); "
        f"threshold {det.threshold_:.6g}; saved to {out}"
    )


def _known_classes(data: str, ds: Any, class_column: str | None, detector: str) -> Any:
    """The known class of every row: the --class-column, or a built-in dataset's labels."""
    from ..errors import DataError
    from ..io import read_column

    if class_column is not None:
        return read_column(data, class_column)
    if ds.labels is not None:
        return ds.labels
    raise DataError(f"detector {detector!r} learns known classes: pass --class-column")


def _need_labels(ds: Any, what: str) -> Any:
    from ..errors import DataError

    if ds.y is None:
        raise DataError(f"{what} needs labels: pass --label-column (1 = anomaly)")
    return ds.y


@app.command()
@handle_errors
def fit(
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Model file to write.")],
    detector: Annotated[
        str | None,
        typer.Option(
            "--detector", "-d", help="Detector name (default: default; see 'anomalia detectors')."
        ),
    ] = None,
    update: Annotated[
        Path | None,
        typer.Option(
            "--update",
            help="Keep training this saved model on DATA (partial_fit), with the data options "
            "saved in it, instead of fitting a new one; written to --out.",
        ),
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Detector parameter key=value.")
    ] = None,
    contamination: Annotated[
        float | None, typer.Option("--contamination", help="Expected anomaly share in (0, 0.5].")
    ] = None,
    polluted: Annotated[
        bool, typer.Option("--polluted", help="With labels: train on anomalies too.")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="random_state for the detector.")] = 0,
    class_column: ClassColumn = None,
    outliers: Annotated[
        Path | None,
        typer.Option("--outliers", help="Known anomalies for outlier exposure (confidence)."),
    ] = None,
    label_column: LabelColumn = None,
    anomaly_value: AnomalyValue = None,
    normal_value: NormalValue = None,
    id_column: IdColumn = None,
    ignore_column: IgnoreColumn = None,
    categorical: Categorical = None,
    sign_key_file: SignKeyFile = None,
    sample_rows: Annotated[
        int | None,
        typer.Option(
            "--sample-rows",
            help="CSV/Parquet/Arrow larger than this: fit on a uniform sample of this many "
            "rows, drawn in one streaming pass (default: 1,000,000; ocsvm 20,000); "
            "auto-encoders instead train on every row, streamed from the file in epochs.",
        ),
    ] = None,
) -> None:
    """Train a detector on DATA (only the normal rows when labels are given)."""
    from ..persistence import read_key
    from ..registry import make_detector

    key = read_key(sign_key_file)  # a bad key file fails before training
    params = parse_params(param)
    if contamination is not None:
        params["contamination"] = contamination
    if update is not None:
        fields = {"label_column": label_column, "anomaly_value": anomaly_value,
                  "normal_value": normal_value, "id_column": id_column,
                  "ignore_columns": ignore_column, "categorical": categorical}  # fmt: skip
        _fit_update(update, data, out, key, detector, params, polluted, sample_rows, seed, fields)
        return
    detector = detector or "default"
    det = make_detector(detector, **params)
    if "random_state" in det.get_params() and "random_state" not in params:
        det.set_params(random_state=seed)
    if "verbose" in det.get_params() and "verbose" not in params:
        det.set_params(verbose=True)
    spec = _spec_from_options(
        data,
        label_column=label_column,
        anomaly_value=anomaly_value,
        normal_value=normal_value,
        id_column=id_column,
        ignore_columns=ignore_column,
        categorical=categorical,
    )
    if class_column is not None:
        spec = dataclasses.replace(spec, ignore_columns=(*spec.ignore_columns, class_column))
    if _streams(det, data, detector, sample_rows):
        _fit_streamed(det, data, out, key, detector, spec, polluted, sample_rows, seed)
        return
    ds = _read_for_fit(data, spec, detector, sample_rows, seed)
    if hasattr(ds.X, "columns"):
        _warn_label_like(ds.X.columns)
    X = ds.X
    keep = (ds.y == 0) if ds.y is not None and not polluted else slice(None)
    X = X[keep]
    if det.__sklearn_tags__().target_tags.required:
        classes = _known_classes(data, ds, class_column, detector)[keep]
        extra = {}
        if outliers is not None:
            extra["X_outliers"] = _read(str(outliers), ds.spec).X
        det.fit(X, classes, **extra)
    else:
        det.fit(X)
    metadata = {"table": ds.spec.to_dict(), "train_rows": len(X), "detector": detector}
    det.save(out, metadata=metadata, key=key)
    shape = " x ".join(str(s) for s in X.shape[1:])
    console.print(
        f"fitted [bold]{detector}[/] on {len(X)} rows ({shape} values each); "
        f"threshold {det.threshold_:.6g}; saved to {out}"
    )
    if getattr(det, "code_usage_", None) is not None:  # vqvae: how the codebook is used
        from ..represent import codebook_summary

        console.print(codebook_summary(det.code_usage_), highlight=False)


@app.command()
@handle_errors
def calibrate(
    model: ModelArg,
    data: DataArg,
    strategy: Strategy = "f1",
    target: Target = None,
    cost_miss: CostMiss = None,
    cost_false_alarm: CostFalseAlarm = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write here instead of rewriting MODEL.")
    ] = None,
    label_column: LabelColumn = None,
    anomaly_value: AnomalyValue = None,
    normal_value: NormalValue = None,
    id_column: IdColumn = None,
    ignore_column: IgnoreColumn = None,
    sign_key_file: SignKeyFile = None,
) -> None:
    """Choose the model's threshold on a labelled dev set and save the model."""
    from ..persistence import read_key
    from ..thresholds import check_strategy

    kwargs = {"target": target, "cost_miss": cost_miss, "cost_false_alarm": cost_false_alarm}
    check_strategy(strategy, **kwargs)  # before any work
    key = read_key(sign_key_file)
    det, manifest = open_model(model, key)
    spec = _saved_spec(
        manifest,
        data,
        label_column=label_column,
        anomaly_value=anomaly_value,
        normal_value=normal_value,
        id_column=id_column,
        ignore_columns=ignore_column,
    )
    ds = _read(data, spec)
    det.calibrate(
        ds.X,
        _need_labels(ds, "calibrate"),
        strategy,
        **{k: v for k, v in kwargs.items() if v is not None},
    )
    det.save(out or model, metadata=manifest["metadata"], key=key)
    console.print(f"threshold set to {det.threshold_:.6g} ({strategy}); saved to {out or model}")


@app.command()
@handle_errors
def score(
    model: ModelArg,
    data: DataArg,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Scores file: .csv or .parquet, or - (stdout, CSV).")
    ],
    keep_columns: Annotated[
        str | None,
        typer.Option("--keep-columns", help="Input columns passed through, comma-separated."),
    ] = None,
    keep_all: Annotated[
        bool, typer.Option("--keep-all", help="Pass every input column through.")
    ] = False,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="stream (this process), onnx (this process, through onnxruntime: the "
            "export extra), dask or spark (Parquet in, a folder of part files out).",
        ),
    ] = "stream",
    scheduler: Annotated[
        str | None, typer.Option("--scheduler", help="dask: an existing scheduler's address.")
    ] = None,
    master: Annotated[
        str | None, typer.Option("--master", help="spark: an existing cluster's master URL.")
    ] = None,
    label_column: LabelColumn = None,
    anomaly_value: AnomalyValue = None,
    normal_value: NormalValue = None,
    id_column: IdColumn = None,
    ignore_column: IgnoreColumn = None,
) -> None:
    """Write anomaly_score and is_anomaly for every row of DATA (- reads CSV from stdin).

    CSV, Parquet and Arrow files are streamed in record batches: memory does not grow
    with the file.
    """
    from ..errors import DataError
    from ..stream import is_streamed, score_to

    if keep_all and keep_columns:
        raise DataError("give --keep-columns or --keep-all, not both")
    keep: Any = (
        "all" if keep_all else [c.strip() for c in (keep_columns or "").split(",") if c.strip()]
    )
    if engine not in ("stream", "onnx"):
        n = _score_on_cluster(model, data, out, engine, keep, scheduler, master)
        console.print(f"scored {n} rows with {engine}; wrote {out}/")
        return
    if scheduler or master:
        raise DataError("--scheduler is for --engine dask, --master for --engine spark")
    if str(out) != "-" and out.suffix.lower() not in (".csv", ".parquet"):
        raise DataError(f"--out must end in .csv or .parquet (or be -), got {out.name!r}")
    det, spec = _load_with_spec(
        model,
        data,
        label_column=label_column,
        anomaly_value=anomaly_value,
        normal_value=normal_value,
        id_column=id_column,
        ignore_columns=ignore_column,
    )
    if engine == "onnx":
        from ..export import OnnxScorer

        det = OnnxScorer(det)
    say = err_console if str(out) == "-" else console
    if is_streamed(data) and not Path(data).is_dir():
        with _progress(f"scoring {data}") as update:
            n, flagged = score_to(det, spec, data, out, keep=keep, progress=update)
    else:  # arrays, image folders, built-in datasets: read whole
        n, flagged = _score_in_memory(det, spec, data, out, keep)
    where = "standard output" if str(out) == "-" else out
    say.print(f"scored {n} rows, {flagged} flagged; wrote {where}")


def _score_on_cluster(
    model: Path, data: str, out: Path, engine: str, keep: Any, scheduler: Any, master: Any
) -> int:
    """``anomalia.dask.score_files`` or ``anomalia.spark.score_files`` (their extras)."""
    import importlib

    from ..errors import DataError
    from ..persistence import read_key

    if engine not in ("dask", "spark"):
        raise DataError(f"--engine must be stream, onnx, dask or spark; got {engine!r}")
    if (engine == "dask" and master) or (engine == "spark" and scheduler):
        raise DataError("--scheduler is for --engine dask, --master for --engine spark")
    where = {"scheduler": scheduler} if engine == "dask" else {"master": master}
    try:  # the engines import dask / pyspark when first used
        backend = importlib.import_module(f"anomalia.{engine}")
        return backend.score_files(model, data, out, keep=keep or None, key=read_key(), **where)
    except ImportError as exc:
        raise DataError(
            f"--engine {engine} needs the {engine} extra ({exc.name} is missing): "
            f"pip install 'anomalia[{engine}]'"
        ) from None


def _score_in_memory(det: Any, spec: Any, data: str, out: Path, keep: Any) -> tuple[int, int]:
    import pandas as pd

    from ..errors import DataError
    from ..stream import write_frames

    if keep:
        raise DataError("--keep-columns and --keep-all apply to CSV, Parquet and Arrow input")
    ds = _read(data, spec)
    try:
        scores = det.anomaly_score(ds.X)
    except DataError as exc:  # e.g. an image stack for a table model: name the file
        raise DataError(f"{data}: {exc}" if data not in str(exc) else str(exc)) from None
    frame = pd.DataFrame({"anomaly_score": scores, "is_anomaly": scores > det.threshold_})
    if ds.ids is not None:
        frame.insert(0, ds.ids.name, ds.ids.to_numpy())
    write_frames(iter([frame]), out)
    return len(frame), int(frame.is_anomaly.sum())


@contextlib.contextmanager
def _progress(what: str) -> Any:
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


@app.command()
@handle_errors
def evaluate(
    model: ModelArg,
    data: DataArg,
    plots: Annotated[
        Path | None, typer.Option("--plots", help="Folder for ROC, PR and score plots.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    cost_miss: CostMiss = None,
    cost_false_alarm: CostFalseAlarm = None,
    label_column: LabelColumn = None,
    anomaly_value: AnomalyValue = None,
    normal_value: NormalValue = None,
    id_column: IdColumn = None,
    ignore_column: IgnoreColumn = None,
) -> None:
    """Report ROC-AUC, AP, F1, false-alarm rate (and cost) of the model on labelled DATA."""
    from .. import metrics

    det, manifest = open_model(model)
    spec = _saved_spec(
        manifest,
        data,
        label_column=label_column,
        anomaly_value=anomaly_value,
        normal_value=normal_value,
        id_column=id_column,
        ignore_columns=ignore_column,
    )
    ds = _read(data, spec)
    y = _need_labels(ds, "evaluate")
    scores = det.anomaly_score(ds.X)
    result = metrics.evaluate(
        y, scores, det.threshold_, cost_miss=cost_miss, cost_false_alarm=cost_false_alarm
    )
    name = manifest["metadata"].get("detector", manifest["detector"])
    if plots is not None:
        from ..plots import save_evaluation_plots

        save_evaluation_plots(y, scores, det.threshold_, plots, title=name)
        if getattr(det, "image_shape_", None) is not None and hasattr(det, "reconstruct"):
            from ..plots import save_figure

            save_figure(_reconstruction_grid(det, ds.X, scores), plots / "reconstructions.png")
    if as_json:
        typer.echo(json.dumps({"detector": name, **result}))
    else:
        console.print(metrics_table([{"detector": name, **result}], f"{model.name} on {data}"))
        if plots is not None:
            console.print(f"plots written to {plots}/")


def _reconstruction_grid(det: Any, X: Any, scores: Any, n: int = 8) -> Any:
    """Originals, reconstructions and error maps of the most and least anomalous images."""
    import numpy as np

    from ..plots import plot_image_grid

    order = np.argsort(-scores, kind="stable")
    pick = np.r_[order[:n], order[-n:]]
    images = np.asarray(X)[pick]
    recon = det.reconstruct(images)
    errors = det.feature_errors(images)
    if images.ndim == 4 and images.shape[1] == 1:
        images, recon, errors = images[:, 0], recon[:, 0], errors[:, 0]
    if errors.ndim == 4:
        errors = errors.mean(axis=1)
    titles = [f"{s:.3g}" for s in scores[pick]]
    return plot_image_grid(
        [images, recon, errors],
        ["original", "reconstruction", "squared error"],
        col_titles=titles,
        cmap=["gray", "gray", "magma"],
    )


@app.command()
@handle_errors
def explain(
    model: ModelArg,
    data: DataArg,
    top: Annotated[int, typer.Option("--top", help="Features listed per row.")] = 5,
    rows: Annotated[int, typer.Option("--rows", help="Rows shown, most anomalous first.")] = 20,
    all_rows: Annotated[bool, typer.Option("--all", help="Also rows below the threshold.")] = False,
    label_column: LabelColumn = None,
    anomaly_value: AnomalyValue = None,
    normal_value: NormalValue = None,
    id_column: IdColumn = None,
    ignore_column: IgnoreColumn = None,
) -> None:
    """Show, per flagged row, the features with the largest reconstruction error."""
    from .._utils.validation import check_int
    from ..explain import explain as explain_rows

    check_int("--top", top)
    check_int("--rows", rows)
    det, spec = _load_with_spec(
        model,
        data,
        label_column=label_column,
        anomaly_value=anomaly_value,
        normal_value=normal_value,
        id_column=id_column,
        ignore_columns=ignore_column,
    )
    ds = _read(data, spec)
    found = explain_rows(det, ds.X, top=top, flagged_only=not all_rows, max_rows=rows)
    table = Table(title=f"why rows of {data} look anomalous (squared error, scaled units)")
    table.add_column(str(ds.ids.name) if ds.ids is not None else "row")
    table.add_column("anomaly score", justify="right")
    table.add_column(f"top {top} features by reconstruction error")
    for r in found:
        key = ds.ids.iloc[r["row"]] if ds.ids is not None else r["row"]
        feats = ", ".join(f"{name} ({err:.3g})" for name, err in r["features"])
        table.add_row(str(key), f"{r['anomaly_score']:.4g}", feats)
    console.print(table if found else "no row is above the threshold (use --all to list them)")


#: The two cost tables of `anomalia experiment`: (cost of a miss, cost of a false alarm).
COST_TABLES = {"review-queue": (1.0, 5.0), "screening": (50.0, 1.0)}


def _cost_tables(specs: list[str] | None) -> dict[str, tuple[float, float]]:
    from ..errors import AnomaliaError

    if not specs:
        return dict(COST_TABLES)
    tables = {}
    for spec in specs:
        name, _, costs = spec.partition("=")
        parts = costs.split(",")
        try:
            miss, false_alarm = (float(p) for p in parts)
        except ValueError:
            raise AnomaliaError(
                f"--cost-table expects NAME=MISS,FALSE_ALARM (e.g. screening=50,1), got {spec!r}"
            ) from None
        tables[name] = (miss, false_alarm)
    return tables


@app.command()
@handle_errors
def experiment(
    data: DataArg,
    detector: Annotated[
        list[str] | None, typer.Option("--detector", "-d", help="Detector (repeatable).")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Parameter key=value, all detectors.")
    ] = None,
    protocol: Annotated[
        str, typer.Option("--protocol", help="clean (train on normals) or polluted.")
    ] = "clean",
    pollution: Annotated[
        float, typer.Option("--pollution", help="Anomaly share in training when polluted.")
    ] = 0.05,
    train_fraction: Annotated[
        float, typer.Option("--train-fraction", help="Share of normal rows that train.")
    ] = 0.5,
    cost_table: Annotated[
        list[str] | None,
        typer.Option(
            "--cost-table",
            help="NAME=MISS,FALSE_ALARM (repeatable); default: "
            "review-queue=1,5 and screening=50,1.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split and detectors.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON rows.")] = False,
    class_column: ClassColumn = None,
    label_column: LabelColumn = None,
    anomaly_value: AnomalyValue = None,
    normal_value: NormalValue = None,
    id_column: IdColumn = None,
    ignore_column: IgnoreColumn = None,
    categorical: Categorical = None,
) -> None:
    """Train / dev / test: thresholds chosen on dev (F1 and each cost table), test reported."""
    from ..registry import make_detector
    from ..workflow import run_experiment

    params = parse_params(param)
    names = detector or ["iforest"]
    for name in names:
        make_detector(name, **params)  # unknown names or parameters fail before any work
    spec = _spec_from_options(
        data,
        label_column=label_column,
        anomaly_value=anomaly_value,
        normal_value=normal_value,
        id_column=id_column,
        ignore_columns=[*(ignore_column or []), *([class_column] if class_column else [])],
        categorical=categorical,
    )
    ds = _read(data, spec)
    y = _need_labels(ds, "experiment")
    classes = None
    if class_column is not None or (ds.labels is not None and "confidence" in names):
        classes = _known_classes(data, ds, class_column, "confidence")
    tables = _cost_tables(cost_table)
    res = run_experiment(
        ds.X,
        y,
        {n: {"detector": n, **params} for n in names},
        protocol=protocol,
        pollution=pollution,
        train_fraction=train_fraction,
        strategy="f1",
        cost_tables=tables,
        classes=classes,
        random_state=seed,
    )
    if as_json:
        typer.echo(json.dumps({"sizes": res.sizes, "cost_tables": tables, "rows": res.rows}))
        return
    table = Table(
        title=f"{data}: test set ({res.sizes['test']} rows); thresholds chosen on dev "
        f"({res.sizes['dev']} rows); trained on {res.sizes['train']} rows"
    )
    for header in (
        "detector",
        "ROC-AUC",
        "AP",
        "F1",
        "FAR",
        *(f"cost/row {t} ({m:g}/{f:g})" for t, (m, f) in tables.items()),
    ):
        table.add_column(header, justify="left" if header == "detector" else "right")
    for r in res.rows:
        table.add_row(
            r["detector"],
            *(f"{r[k]:.3f}" for k in ("roc_auc", "average_precision", "f1", "false_alarm_rate")),
            *(f"{r['cost_' + t]:.4f}" for t in tables),
        )
    console.print(table)
    console.print(
        "cost/row NAME (miss/false alarm): mean cost per test row at the threshold "
        "that minimised that cost on dev; F1 and FAR at the max-F1 threshold."
    )


@app.command()
@handle_errors
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the plots.")] = Path(
        "demo-output"
    ),
    seed: Annotated[int, typer.Option("--seed", help="Seed for the split and detectors.")] = 0,
) -> None:
    """The main job: breast cancer, train on half the benign cases, calibrate on dev, test."""
    from .. import datasets
    from ..plots import save_evaluation_plots
    from ..workflow import run_experiment

    ds = datasets.load_dataset("breast-cancer")
    names = {n: {"detector": n, **p} for n, p in DEMO_DETECTORS.items()}
    res = run_experiment(ds.X, ds.y, names, protocol="clean", strategy="f1", random_state=seed)
    console.print(
        f"breast cancer (malignant = anomaly): train {res.sizes['train']} benign rows, "
        f"dev {res.sizes['dev']}, test {res.sizes['test']}; threshold chosen for max F1 on dev"
    )
    console.print(metrics_table(res.rows, "test-set results"))
    paths = save_evaluation_plots(
        res.y_test, res.scores, res.thresholds, out, title="breast cancer, test set"
    )
    console.print(f"plots: {', '.join(str(p) for p in paths)}")


#: Detectors the demo compares, with settings that run in seconds on a laptop.
DEMO_DETECTORS: dict[str, dict[str, Any]] = {
    name: {}
    for name in ("default", "gaussian", "ocsvm", "iforest", "knn", "ae", "dae", "vae", "vqvae")
}


@app.command("datasets")
@handle_errors
def list_datasets() -> None:
    """List the built-in datasets (no download needed)."""
    from .. import datasets

    table = Table(title="built-in datasets")
    table.add_column("name")
    table.add_column("description")
    for name, desc in datasets.available().items():
        table.add_row(name, desc)
    console.print(table)
    console.print(
        "Readers for the shared real data: anomalia.datasets.read_adbench, "
        "read_creditcard, read_nsl_kdd, read_kddcup99, read_mnist."
    )


@app.command("detectors")
@handle_errors
def list_detectors(
    name: Annotated[
        str | None, typer.Argument(help="A detector: list its parameters, defaults, meaning.")
    ] = None,
) -> None:
    """List the detectors and when to use each; with NAME, that detector's parameters."""
    from ..registry import available_detectors, detector_parameters

    if name is not None:
        table = Table(title=f"parameters of {name} (-p NAME=VALUE)")
        for header in ("parameter", "default", "meaning"):
            table.add_column(header)
        for param, default, meaning in detector_parameters(name):
            table.add_row(param, default, meaning)
        console.print(table)
        return
    table = Table(title="detectors")
    table.add_column("name")
    table.add_column("when to use it")
    for det_name, desc in available_detectors().items():
        table.add_row(det_name, desc)
    console.print(table)


def main() -> None:
    """Console-script entry point: a usage error (an unknown option, a bad or missing value)
    is one ``error:`` line on stderr with exit code 2, like every other user error."""
    try:  # recent typer carries its own copy of click
        from typer._click.exceptions import ClickException
    except ImportError:  # pragma: no cover - typer that depends on click
        from click.exceptions import ClickException

    try:
        code = app(standalone_mode=False)
    except ClickException as exc:
        message = exc.format_message()
        if type(exc).__name__ == "NoArgsIsHelpError":  # the help (rich has printed it already)
            if message.strip():
                typer.echo(message, err=True)
        else:
            ctx = getattr(exc, "ctx", None)
            hint = f"; see '{ctx.command_path} --help'" if ctx is not None else ""
            print_error(message.strip().rstrip(".") + hint, exc)
        sys.exit(exc.exit_code)
    except typer.Abort:
        print_error("aborted")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


# Commands defined in sibling modules register themselves on ``app`` when imported.
from . import bench, disentangle, export, generate, represent, serve  # noqa: E402, F401

if __name__ == "__main__":  # python -m anomalia.cli.app ...
    main()
