"""anomalia embed / plot-codes / codebook: the bottleneck as a representation."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer

from ._common import (
    Commands,
    DataArg,
    IdColumn,
    IgnoreColumn,
    ModelArg,
    atomic_output,
    console,
    handle_errors,
    load_with_spec,
    read_data,
)

app = Commands()

ClassColumn = Annotated[
    str | None,
    typer.Option(
        "--label-column",
        help="Column of classes (any values, e.g. digits), kept in the output; not a feature. "
        "Image folders and built-in datasets bring their own labels.",
    ),
]


def _read_for_model(
    model: Path, data: str, label_column: str | None, id_column: str | None, ignore: Any
) -> tuple[Any, Any, Any, str | None]:
    """The model, the data read its way, and the class of each row (or None) with its name.

    Classes are taken as they are (digits, names), not as 0/1 anomaly labels: from
    ``--label-column`` of a table, else from the labels the data brings (the model's label
    column, image sub-folders, a built-in dataset, an .npz file's y).
    """
    from ..errors import DataError
    from ..io import read_column

    det, spec = load_with_spec(model, data, id_column=id_column, ignore_columns=ignore)
    classes = None
    if label_column is not None and Path(data).is_file():
        classes = read_column(data, label_column)
        dropped = (*spec.ignore_columns, label_column, spec.label_column)
        spec = dataclasses.replace(
            spec,
            label_column=None,
            anomaly_value=None,
            normal_value=None,
            ignore_columns=tuple(dict.fromkeys(c for c in dropped if c is not None)),
        )
    ds = read_data(data, spec)
    name = label_column or spec.label_column or "label"
    if classes is None:
        classes = ds.labels if ds.labels is not None else ds.y
    if label_column is not None and classes is None:
        raise DataError(f"{data} has no labels to take as column {label_column!r}")
    return det, ds, classes, (name if classes is not None else None)


def _check_suffix(out: Path, allowed: tuple[str, ...]) -> None:
    from ..errors import DataError

    if out.suffix.lower() not in allowed:
        raise DataError(f"--out must end in {' or '.join(allowed)}, got {out.name!r}")


@app.command()
@handle_errors
def embed(
    model: ModelArg,
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Codes file: .csv or .parquet.")],
    codes: Annotated[
        bool, typer.Option("--codes", help="vqvae: write code indices, not code vectors.")
    ] = False,
    label_column: ClassColumn = None,
    id_column: IdColumn = None,
    ignore_column: IgnoreColumn = None,
) -> None:
    """Write the bottleneck codes (code_0 .. code_k-1) of every row or image of DATA."""
    import numpy as np
    import pandas as pd

    from ..represent import embed as embed_codes

    _check_suffix(out, (".csv", ".parquet"))
    det, ds, classes, class_name = _read_for_model(
        model, data, label_column, id_column, ignore_column
    )
    values = embed_codes(det, ds.X, codes=codes)
    frame = pd.DataFrame(values, columns=[f"code_{i}" for i in range(values.shape[1])])
    ids = ds.ids if ds.ids is not None else pd.Series(np.arange(1, len(frame) + 1), name="row")
    frame.insert(0, str(ids.name), ids.to_numpy())
    if classes is not None:
        frame[class_name] = classes

    def write(tmp: Path) -> None:
        if out.suffix.lower() == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)

    atomic_output(out, write)
    what = "code indices" if codes else "codes"
    console.print(f"wrote {what} of {len(frame)} rows ({values.shape[1]} columns) to {out}")


@app.command("plot-codes")
@handle_errors
def plot_codes(
    model: ModelArg,
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Picture to write (.png).")],
    label_column: ClassColumn = None,
    id_column: IdColumn = None,
    ignore_column: IgnoreColumn = None,
) -> None:
    """Draw a 2-D map of the codes of DATA coloured by class (PCA of codes wider than 2)."""
    from ..plots import plot_codes as draw
    from ..plots import save_figure
    from ..represent import embed as embed_codes

    _check_suffix(out, (".png",))
    det, ds, classes, class_name = _read_for_model(
        model, data, label_column, id_column, ignore_column
    )
    values = embed_codes(det, ds.X)
    title = f"{det.name} codes of {Path(data).name} ({values.shape[1]}-D)"
    save_figure(draw(values, classes, title=title, label_name=class_name or "class"), out)
    console.print(f"code map of {len(values)} rows written to {out}")


@app.command()
@handle_errors
def codebook(
    model: ModelArg,
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Picture to write (.png).")],
    images: Annotated[
        int, typer.Option("--images", help="Images shown with their code maps (spatial codes).")
    ] = 8,
    id_column: IdColumn = None,
    ignore_column: IgnoreColumn = None,
) -> None:
    """Draw a vqvae's codebook usage on DATA, with perplexity (and patch code maps)."""
    import numpy as np

    from ..plots import plot_codebook, save_figure
    from ..represent import code_maps, code_usage, perplexity

    _check_suffix(out, (".png",))
    det, ds, _, _ = _read_for_model(model, data, None, id_column, ignore_column)
    counts = code_usage(det, ds.X)
    pictures = maps = None
    if getattr(det, "spatial_codes", False) and det.image_shape_ is not None and images > 0:
        pick = np.linspace(0, len(ds.X) - 1, min(images, len(ds.X))).astype(int)
        X = ds.X.iloc[pick] if hasattr(ds.X, "iloc") else ds.X[pick]  # tables keep names
        maps = code_maps(det, X)
        pictures = np.asarray(X).reshape(len(X), *det.image_shape_)
    fig = plot_codebook(counts, images=pictures, code_maps=maps)
    save_figure(fig, out)
    console.print(
        f"codebook usage on {len(ds.X)} rows: perplexity {perplexity(counts):.1f} of "
        f"{len(counts)} codes, {int((counts > 0).sum())} used; written to {out}"
    )
