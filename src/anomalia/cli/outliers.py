"""anomalia outliers: draw the generated outliers of a confidence model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import Commands, ModelArg, console, handle_errors, open_model
from .generate import _check_out, _write

app = Commands()


@app.command()
@handle_errors
def outliers(
    model: ModelArg,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Images: .png/.npy; tables: .csv/.parquet/.npy.")
    ],
    n: Annotated[int, typer.Option("-n", "--n-samples", min=1, help="Number of outliers.")] = 64,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generator's noise.")] = 0,
) -> None:
    """Draw outliers from the generator of a model fitted with -p outliers=generate."""
    from ..errors import AnomaliaError

    det = open_model(model)[0]
    if getattr(det, "generator_", None) is None:
        kind = getattr(det, "name", type(det).__name__)
        raise AnomaliaError(
            f"{model.name} ({kind!r}) has no generator of outliers: fit it with "
            "-d confidence -p outliers=generate"
        )
    _check_out(out, det, "outliers")
    title = f"generated outliers of {model.name}, seed {seed}"
    _write(out, det.sample_outliers(n, random_state=seed), det, title=title)
    console.print(f"drew {n} generated outliers (seed {seed}); wrote {out}")
