"""anomalia bench: the ADBench protocols, side by side with PyOD and scikit-learn."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..bench import available_cores, default_data_dir, default_reference_dir
from ._common import (
    AnomalyValue,
    Commands,
    IdColumn,
    IgnoreColumn,
    LabelColumn,
    NormalValue,
    atomic_output,
    console,
    err_console,
    handle_errors,
    read_data,
    spec_from_options,
)

app = Commands()


@app.command()
@handle_errors
def bench(
    data: Annotated[
        list[str] | None,
        typer.Argument(
            help="'adbench' (every .npz in --data-dir) and/or labelled data files "
            "(with --label-column). Default: adbench."
        ),
    ] = None,
    detector: Annotated[
        list[str] | None,
        typer.Option(
            "--detector",
            "-d",
            help="Detector spec, repeat for several: NAME or NAME(key=value, ...) for ours, "
            "sklearn:IsolationForest, pyod:ECOD, ... Default: ours and the usual peers.",
        ),
    ] = None,
    protocol: Annotated[
        list[str] | None,
        typer.Option("--protocol", help="unsup (ADBench) and/or clean (DTE). Default: both."),
    ] = None,
    seed: Annotated[
        list[int] | None, typer.Option("--seed", help="Seed; repeat for several (0 1 2).")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Folder of ADBench-format .npz files. Default: $ANOMALIA_DATA_DIR/adbench if "
            "set, else ../shared/datasets/adbench beside the anomalia checkout (here: "
            f"{default_data_dir()}).",
        ),
    ] = None,
    dataset: Annotated[
        list[str] | None,
        typer.Option("--dataset", help="Only datasets whose name contains this (repeat)."),
    ] = None,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Results file (.csv or .parquet); resumed: a finished job is reused while its "
            "data file's SHA-256 and its detector's parameters are unchanged, else run again "
            "(so are the rows of files written before hashes were recorded).",
        ),
    ] = Path("bench-results.csv"),
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            help="Jobs at once. Default (or -1): the CPU cores this process may use "
            f"(here: {available_cores()}).",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds one job may take (0: no limit).")
    ] = 600.0,
    threads: Annotated[int, typer.Option("--threads", help="CPU threads per job.")] = 1,
    reference_dir: Annotated[
        Path | None,
        typer.Option(
            "--reference-dir",
            help="Published figures to compare with. Default: reference beside the datasets "
            f"folder above (here: {default_reference_dir()}).",
        ),
    ] = None,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Write the figures.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    summary_only: Annotated[
        bool,
        typer.Option(
            "--summary-only",
            help="Run nothing: rebuild the summary and figures from every finished row of "
            "--out (after runs of a few detectors at a time into one file).",
        ),
    ] = False,
    label_column: LabelColumn = None,
    anomaly_value: AnomalyValue = None,
    normal_value: NormalValue = None,
    id_column: IdColumn = None,
    ignore_column: IgnoreColumn = None,
) -> None:
    """Benchmark detectors under the published ADBench protocols; resume an interrupted run.

    Writes one row per (protocol, dataset, detector, seed) to --out, a markdown summary
    beside it (<out>_summary.md) and, with --plots, ROC-AUC spread and heatmap figures.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from .. import bench as B
    from ..errors import AnomaliaError, DataError

    if out.suffix not in (".csv", ".parquet"):
        raise AnomaliaError(f"--out must end in .csv or .parquet, got {out.name}")
    if summary_only:
        chosen = {"DATA": data, "--detector": detector, "--protocol": protocol, "--seed": seed,
                  "--dataset": dataset}  # fmt: skip
        given = [name for name, value in chosen.items() if value]
        if given:
            raise AnomaliaError(f"--summary-only uses every row of --out; drop {', '.join(given)}")
        if not out.exists():
            raise AnomaliaError(f"--summary-only: there is no results file {out}")
        df = B.read_results(out)
        if df.empty:
            raise AnomaliaError(f"--summary-only: {out} holds no results")
    else:
        jobs = available_cores() if jobs is None or jobs == -1 else jobs
        if jobs < 1 or threads < 1 or timeout < 0:
            raise AnomaliaError("--jobs must be -1 or >= 1, --threads >= 1, --timeout >= 0")
        datasets: dict[str, Path] = {}
        for item in data or ["adbench"]:
            if item == "adbench" and not Path(item).exists():
                datasets.update(B.adbench_datasets(data_dir or default_data_dir()))
                continue
            spec = spec_from_options(
                item,
                label_column=label_column,
                anomaly_value=anomaly_value,
                normal_value=normal_value,
                id_column=id_column,
                ignore_columns=ignore_column,
            )
            ds = read_data(item, spec)
            if ds.y is None:
                raise DataError(f"{item}: a benchmark needs labels (give --label-column)")
            name = Path(item).stem.lower()
            datasets[name] = B.frame_dataset(ds.X, ds.y, B.temp_folder(), name)
        if dataset:
            wanted = [w.lower() for w in dataset]
            datasets = {k: v for k, v in datasets.items() if any(w in k for w in wanted)}
            if not datasets:
                raise AnomaliaError(f"no dataset name contains any of {', '.join(dataset)}")
        plan, notes = B.plan(
            datasets,
            detector or B.DEFAULT_DETECTORS,
            protocol or B.PROTOCOLS,
            seed if seed is not None else (0, 1, 2),
            threads,
        )
        for note in notes:
            err_console.print(f"[yellow]note:[/] {note}", highlight=False)
        if not plan:
            raise AnomaliaError("nothing to run: no detector left")
        resumed = B.resume(B.read_results(out), plan)
        if resumed.reused:
            err_console.print(f"reusing {resumed.reused} finished jobs of {out}", highlight=False)
        for note in resumed.notes:
            err_console.print(f"[yellow]note:[/] {note}", highlight=False)
        wanted_keys = {j.key() for j in plan}
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            disable=as_json,
        ) as bar:
            task = bar.add_task("bench", total=len(plan), completed=resumed.reused)

            def advance(row: dict) -> None:
                bar.update(task, advance=1, description=f"{row['dataset']} {row['detector']}")

            try:
                df = B.run(plan, out, n_jobs=jobs, timeout=timeout or None, progress=advance)
            except KeyboardInterrupt:
                err_console.print(
                    f"interrupted: finished jobs are kept in {out}; run the same command again "
                    "to resume",
                    highlight=False,
                )
                raise typer.Exit(130) from None
        df = df[[k in wanted_keys for k in B.keys(df)]]
    reference_dir = reference_dir or default_reference_dir()
    summary = B.summarize(df, reference_dir=reference_dir if reference_dir.is_dir() else None)
    markdown = B.summary_markdown(summary)
    stem = out.with_suffix("")
    atomic_output(Path(f"{stem}_summary.md"), lambda p: p.write_text(markdown + "\n"))
    figures = B.plot_results(df, stem) if plots else []
    if as_json:
        typer.echo(B.summary_json(summary))
        return
    typer.echo(markdown)
    console.print(f"results: {out}; summary: {stem}_summary.md", highlight=False)
    for fig in figures:
        console.print(f"figure: {fig}", highlight=False)
