"""anomalia plot-density / plot-boundary: a fitted model drawn over two of its features."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ._common import (
    Commands,
    DataArg,
    ModelArg,
    console,
    data_options,
    handle_errors,
    open_model,
    read_data,
    saved_spec,
)

app = Commands()

FeaturesOption = Annotated[
    str | None,
    typer.Option(
        "--features",
        "-f",
        help="Two of the model's columns, comma-separated (x axis first), e.g. 'V1,V2'; "
        "default: the first two.",
    ),
]
OutOption = Annotated[Path, typer.Option("--out", "-o", help="Picture to write (.png).")]


def _read_for_map(
    model: Path, data: str, columns: dict[str, Any], features: str | None, out: Path
) -> tuple[Any, str, Any, tuple[str, str] | None]:
    """The detector, its name, the rows of DATA read its way and the two features chosen;
    every check that can fail without scoring comes before DATA is read."""
    from ..errors import DataError

    if out.suffix.lower() != ".png":
        raise DataError(f"--out must end in .png, got {out.name!r}")
    det, manifest = open_model(model)
    if getattr(det, "image_shape_", None) is not None:
        raise DataError(
            f"{model} holds an image model ({det.name}); a map over two features needs a "
            "model fitted on a table"
        )
    spec = saved_spec(manifest, data, **columns)
    names = list(spec.feature_names or [])
    pair = None
    if features is not None:
        chosen = [part.strip() for part in features.split(",")]
        if len(chosen) != 2 or not all(chosen):
            raise DataError(f"--features takes two column names, e.g. 'a,b'; got {features!r}")
        for column in chosen:
            if column not in names:
                shown = ", ".join(repr(n) for n in names[:8])
                more = f", ... ({len(names) - 8} more)" if len(names) > 8 else ""
                raise DataError(
                    f"--features: {column!r} is not a column of the model; its columns are "
                    f"{shown}{more}"
                )
        if chosen[0] == chosen[1]:
            raise DataError(f"--features names {chosen[0]!r} twice; give two different columns")
        pair = (chosen[0], chosen[1])
    elif len(names) < 2:
        raise DataError(f"a map over two features needs a model of 2 or more; {model} has 1")
    ds = read_data(data, spec)
    name = str(manifest.get("metadata", {}).get("detector") or det.name)
    return det, name, ds.X, pair


@app.command("plot-density")
@handle_errors
@data_options
def plot_density(
    model: ModelArg,
    data: DataArg,
    out: OutOption,
    features: FeaturesOption = None,
    *,
    columns: dict[str, Any],
) -> None:
    """Draw a 'gaussian' model over two features: the rows of DATA, the fitted mean mu*, the
    density of N(mu*, Sigma*) (with more features: the slice through mu*), the threshold
    contour and the flagged rows."""
    from ..detectors.classical import GaussianDetector
    from ..errors import DataError
    from ..plots import plot_density as draw
    from ..plots import save_figure

    det, name, X, pair = _read_for_map(model, data, columns, features, out)
    if not isinstance(det, GaussianDetector):
        raise DataError(
            f"{model} holds the {name!r} detector; plot-density draws a 'gaussian' model (fit "
            "one with -d gaussian); plot-boundary draws any"
        )
    fig = draw(det, X, pair)
    save_figure(fig, out)
    console.print(f"density map of {len(X)} rows written to {out}", highlight=False)


@app.command("plot-boundary")
@handle_errors
@data_options
def plot_boundary(
    model: ModelArg,
    data: DataArg,
    out: OutOption,
    features: FeaturesOption = None,
    *,
    columns: dict[str, Any],
) -> None:
    """Draw any table model's anomaly score over two features, with its decision boundary
    (score = threshold), the rows of DATA and the flagged rows; other features are held at
    DATA's median."""
    from ..plots import plot_boundary as draw
    from ..plots import save_figure

    det, name, X, pair = _read_for_map(model, data, columns, features, out)
    save_figure(draw(det, X, pair, name=name), out)
    console.print(f"score map of {len(X)} rows written to {out}", highlight=False)
