"""anomalia fit / calibrate / score / evaluate / explain / experiment: the workflow."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ._common import (
    Categorical,
    ClassColumn,
    Commands,
    DataArg,
    ModelArg,
    SignKeyFile,
    console,
    data_options,
    err_console,
    handle_errors,
    load_with_spec,
    metrics_table,
    need_labels,
    open_model,
    parse_params,
    print_warning,
    progress_bar,
    read_data,
    saved_spec,
    spec_from_options,
)
from .tree import fit_texts

app = Commands()
Strategy = Annotated[
    str, typer.Option("--strategy", help="Threshold rule: f1, fpr, recall or cost.")
]
Target = Annotated[
    float | None,
    typer.Option(
        "--target",
        help="fpr: highest false-alarm rate (default 0.01); recall: lowest recall (default 0.95).",
    ),
]
CostMiss = Annotated[
    float | None,
    typer.Option("--cost-miss", help="Cost of one missed anomaly, any unit (cost: default 50)."),
]
CostFalseAlarm = Annotated[
    float | None,
    typer.Option(
        "--cost-false-alarm", help="Cost of one false alarm, same unit (cost: default 1)."
    ),
]
#: The command-line flag of each threshold option, for messages.
OPTION_FLAGS = {
    "target": "--target",
    "cost_miss": "--cost-miss",
    "cost_false_alarm": "--cost-false-alarm",
}


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
        return read_data(data, spec)
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
    from ..stream import batches, count_rows, is_streamed

    if not hasattr(det, "fit_stream") or data == "-" or Path(data).is_dir():
        return False
    if not is_streamed(data):
        return False
    if sample_rows is not None and sample_rows < 2:
        raise DataError(f"--sample-rows must be at least 2, got {sample_rows}")
    n = sample_rows or SAMPLE_ROWS.get(detector, DEFAULT_SAMPLE_ROWS)
    total = count_rows(data)
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
    from ..training import stop_message

    n = sample_rows or SAMPLE_ROWS.get(detector, DEFAULT_SAMPLE_ROWS)
    if spec.categorical == "onehot":  # categories from a uniform sample, not the first batch
        spec = dataset_from_frame(sample(data, n, spec, random_state=seed)[0], spec, name=data).spec
    if "verbose" in det.get_params():
        det.set_params(verbose=False)  # the rows bar below shows the progress instead
    with progress_bar(f"training {detector} on {data}") as update:
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
        f"threshold {det.threshold_:.6g}{_estimated(det)}; saved to {out}"
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
    if det.stopped_epoch_ is not None:  # verbose is off here: the rows bar showed progress
        console.print(
            stop_message(det.stopped_epoch_, det.patience), highlight=False, soft_wrap=True
        )
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
    spec = saved_spec(manifest, data, **fields)
    ds = _read_for_fit(data, spec, name, sample_rows, seed)
    X = ds.X[(ds.y == 0) if ds.y is not None and not polluted else slice(None)]
    det.partial_fit(X)
    before = manifest["metadata"].get("train_rows")
    seen = before + len(X) if isinstance(before, int) and before >= 0 else len(X)
    metadata = {**manifest["metadata"], "table": ds.spec.to_dict(), "train_rows": seen}
    det.save(out, metadata=metadata, key=key)
    console.print(
        f"updated [bold]{name}[/] with {len(X)} rows ({seen} trained on in all); "
        f"threshold {det.threshold_:.6g}{_estimated(det)}; saved to {out}"
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


def _estimated(det: Any) -> str:
    """What the fit message adds under ``contamination="auto"``: the estimated share."""
    if getattr(det, "calibration_", {}).get("strategy") != "auto":
        return ""
    return f" (estimated contamination {det.contamination_:.2%})"


def _contamination(text: str) -> float | str:
    """``--contamination``: ``"auto"`` or a share in (0, 0.5], refused before any reading."""
    from ..errors import AnomaliaError
    from ..thresholds import check_contamination

    try:
        value = text if text == "auto" else float(text)
        return check_contamination(value, name="--contamination")  # type: ignore[return-value]
    except ValueError:
        raise AnomaliaError(
            f"--contamination must be 'auto' or a number in (0, 0.5], got {text!r}"
        ) from None


def _summaries(data: str, column: str, det: Any, detector: str) -> Any:
    """The ``--summary-column`` of DATA, one summary per row, for a detector that takes them."""
    import inspect

    from ..errors import AnomaliaError
    from ..io import read_column

    if "summaries" not in inspect.signature(det.fit).parameters:
        raise AnomaliaError(f"--summary-column: detector {detector!r} takes no summaries")
    return read_column(data, column)


@app.command()
@handle_errors
@data_options
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
        str | None,
        typer.Option(
            "--contamination",
            help="Expected anomaly share in (0, 0.5], or 'auto' to estimate it from the "
            "training scores.",
        ),
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
    *,
    columns: dict[str, Any],
    categorical: Categorical = None,
    sign_key_file: SignKeyFile = None,
    summary_column: Annotated[
        str | None,
        typer.Option(
            "--summary-column",
            help="text-ae: human-written summaries in this column teach its critic what a "
            "summary reads like; each step's critic sees those of other rows than the "
            "texts it encodes.",
        ),
    ] = None,
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
        params["contamination"] = _contamination(contamination)
    if update is not None:
        fields = {**columns, "categorical": categorical}
        _fit_update(update, data, out, key, detector, params, polluted, sample_rows, seed, fields)
        return
    detector = detector or "default"
    det = make_detector(detector, **params)
    if hasattr(det, "check_savable"):  # pyod:NAME that no model file holds: before training
        det.check_savable()
    if "random_state" in det.get_params() and "random_state" not in params:
        det.set_params(random_state=seed)
    if "verbose" in det.get_params() and "verbose" not in params:
        det.set_params(verbose=True)
    if detector == "tree-ae":  # texts, one sentence each (.txt, .csv, .jsonl)
        fit_texts(det, detector, data, columns.get("text_column"), out, key)
        return
    spec = spec_from_options(data, **columns, categorical=categorical)
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
            extra["X_outliers"] = read_data(str(outliers), ds.spec).X
        det.fit(X, classes, **extra)
    elif summary_column is not None:
        summaries = _summaries(data, summary_column, det, detector)[keep]
        det.fit(X, summaries=summaries, summaries_of_X=True)
    else:
        det.fit(X)
    metadata = {"table": ds.spec.to_dict(), "train_rows": len(X), "detector": detector}
    det.save(out, metadata=metadata, key=key)
    shape = " x ".join(str(s) for s in X.shape[1:])
    each = "a text each" if ds.spec.text_column else f"{shape} values each"
    console.print(
        f"fitted [bold]{detector}[/] on {len(X)} rows ({each}); "
        f"threshold {det.threshold_:.6g}{_estimated(det)}; saved to {out}"
    )
    if getattr(det, "code_usage_", None) is not None:  # vqvae: how the codebook is used
        from ..represent import codebook_summary

        console.print(codebook_summary(det.code_usage_), highlight=False)


@app.command()
@handle_errors
@data_options
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
    *,
    columns: dict[str, Any],
    sign_key_file: SignKeyFile = None,
) -> None:
    """Choose the model's threshold on a labelled dev set and save the model."""
    from ..persistence import read_key
    from ..thresholds import check_strategy

    given = {"target": target, "cost_miss": cost_miss, "cost_false_alarm": cost_false_alarm}
    options = check_strategy(strategy, **given, names=OPTION_FLAGS)  # before any work
    key = read_key(sign_key_file)
    det, manifest = open_model(model, key)
    ds = read_data(data, saved_spec(manifest, data, **columns))
    det.calibrate(ds.X, need_labels(ds, "calibrate"), strategy, **options)
    det.save(out or model, metadata=manifest["metadata"], key=key)
    rule = ", ".join([strategy, *(f"{OPTION_FLAGS[k]} {v:g}" for k, v in options.items())])
    console.print(f"threshold set to {det.threshold_:.6g} ({rule}); saved to {out or model}")
    dev = det.calibration_["dev"]
    reached = (
        f"false-alarm rate {dev['false_alarm_rate']:.3f}, recall {dev['recall']:.3f}, "
        f"precision {dev['precision']:.3f}, F1 {dev['f1']:.3f}"
    )
    if "expected_cost" in dev:
        reached += f", cost {dev['expected_cost']:.4g} per row"
    console.print(
        f"on the dev set ({dev['n_samples']} rows, {dev['n_anomalies']} anomalies): {reached}",
        highlight=False,
    )


@app.command()
@handle_errors
@data_options
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
    *,
    columns: dict[str, Any],
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
    det, spec = load_with_spec(
        model,
        data,
        **columns,
    )
    if engine == "onnx":
        from ..export import OnnxScorer

        det = OnnxScorer(det)
    say = err_console if str(out) == "-" else console
    if is_streamed(data) and not Path(data).is_dir():
        with progress_bar(f"scoring {data}") as update:
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
    ds = read_data(data, spec)
    try:
        scores = det.anomaly_score(ds.X)
    except DataError as exc:  # e.g. an image stack for a table model: name the file
        raise DataError(f"{data}: {exc}" if data not in str(exc) else str(exc)) from None
    frame = pd.DataFrame({"anomaly_score": scores, "is_anomaly": scores > det.threshold_})
    if ds.ids is not None:
        frame.insert(0, ds.ids.name, ds.ids.to_numpy())
    write_frames(iter([frame]), out)
    return len(frame), int(frame.is_anomaly.sum())


@app.command()
@handle_errors
@data_options
def evaluate(
    model: ModelArg,
    data: DataArg,
    plots: Annotated[
        Path | None, typer.Option("--plots", help="Folder for ROC, PR and score plots.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    cost_miss: CostMiss = None,
    cost_false_alarm: CostFalseAlarm = None,
    *,
    columns: dict[str, Any],
) -> None:
    """Report ROC-AUC, AP, F1, false-alarm rate (and cost) of the model on labelled DATA."""
    from .. import metrics

    det, manifest = open_model(model)
    spec = saved_spec(
        manifest,
        data,
        **columns,
    )
    ds = read_data(data, spec)
    y = need_labels(ds, "evaluate")
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

            title = f"{name}: reconstructions of {Path(data).name}"
            grid = _reconstruction_grid(det, ds.X, scores, y, title)
            save_figure(grid, plots / "reconstructions.png")
    if as_json:
        typer.echo(json.dumps({"detector": name, **result}))
    else:
        console.print(metrics_table([{"detector": name, **result}], f"{model.name} on {data}"))
        if plots is not None:
            console.print(f"plots written to {plots}/")


def _reconstruction_grid(
    det: Any, X: Any, scores: Any, y: Any = None, title: str | None = None, n: int = 8
) -> Any:
    """Originals, reconstructions and error maps of the most and least anomalous images."""
    import numpy as np

    from ..plots import plot_reconstructions

    order = np.argsort(-scores, kind="stable")
    pick = np.r_[order[:n], order[-n:]] if len(order) > 2 * n else order
    rows = X.iloc[pick] if hasattr(X, "iloc") else np.asarray(X)[pick]  # tables keep names
    shape = (len(pick), *det.image_shape_)  # a table's rows are drawn as images too
    return plot_reconstructions(
        np.asarray(rows, dtype=np.float64).reshape(shape),
        np.asarray(det.reconstruct(rows)).reshape(shape),
        np.asarray(det.feature_errors(rows)).reshape(shape),
        scores[pick],
        labels=None if y is None else np.asarray(y)[pick],
        threshold=det.threshold_,
        n=n,
        title=title,
    )


@app.command()
@handle_errors
@data_options
def explain(
    model: ModelArg,
    data: DataArg,
    top: Annotated[int, typer.Option("--top", help="Features listed per row.")] = 5,
    rows: Annotated[int, typer.Option("--rows", help="Rows shown, most anomalous first.")] = 20,
    all_rows: Annotated[bool, typer.Option("--all", help="Also rows below the threshold.")] = False,
    *,
    columns: dict[str, Any],
) -> None:
    """Show, per flagged row, the features with the largest reconstruction error."""
    from .._utils.validation import check_int
    from ..explain import explain as explain_rows

    check_int("--top", top)
    check_int("--rows", rows)
    det, spec = load_with_spec(
        model,
        data,
        **columns,
    )
    ds = read_data(data, spec)
    found = explain_rows(det, ds.X, top=top, flagged_only=not all_rows, max_rows=rows)
    table = Table(title=f"why rows of {data} look anomalous (squared error, scaled units)")
    table.add_column(str(ds.ids.name) if ds.ids is not None else "row")
    table.add_column("anomaly score", justify="right")
    table.add_column(f"top {top} features by reconstruction error")
    for r in found:
        key = ds.ids.iloc[r["row"]] if ds.ids is not None else r["row"] + 1  # counted from 1
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
@data_options
def experiment(
    data: DataArg,
    detector: Annotated[
        list[str] | None,
        typer.Option("--detector", "-d", help="Detector (repeatable; default: default)."),
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
    *,
    columns: dict[str, Any],
    categorical: Categorical = None,
) -> None:
    """Train / dev / test: thresholds chosen on dev (F1 and each cost table), test reported."""
    from ..registry import make_detector
    from ..workflow import run_experiment

    params = parse_params(param)
    names = detector or ["default"]  # as fit: the detector the README recommends
    for name in names:
        make_detector(name, **params)  # unknown names or parameters fail before any work
    ignored = [*(columns["ignore_columns"] or []), *([class_column] if class_column else [])]
    spec = spec_from_options(
        data, **{**columns, "ignore_columns": ignored}, categorical=categorical
    )
    ds = read_data(data, spec)
    y = need_labels(ds, "experiment")
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
