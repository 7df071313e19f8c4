"""anomalia demo / datasets / detectors: the main job and what the toolkit holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ._common import Commands, console, handle_errors, metrics_table

app = Commands()


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
