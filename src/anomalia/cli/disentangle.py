"""anomalia swap: content of one input decoded with the style of another."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import Commands, ModelArg, console, handle_errors, load_with_spec, read_data

app = Commands()


@app.command()
@handle_errors
def swap(
    model: ModelArg,
    content_data: Annotated[
        str, typer.Argument(help="Images whose content is kept: the rows of the grid.")
    ],
    style_data: Annotated[
        str, typer.Argument(help="Images whose style is applied: the columns of the grid.")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Grid image to write (.png); .wav for speech.")
    ],
    n: Annotated[
        int,
        typer.Option(
            "-n", "--n-images", help="Images taken from each input (the first n of each)."
        ),
    ] = 8,
) -> None:
    """Draw the content of each CONTENT_DATA image decoded with the style of each STYLE_DATA
    image (a 'disentangle' model): first row the styles, first column the contents. For
    speech, CONTENT_DATA and STYLE_DATA are .wav utterances and --out a .wav: the words of
    the first said in the voice of the second (what 'anomalia convert' does)."""
    from ..detectors.disentangle import DisentangleDetector, plot_swap_grid
    from ..errors import DataError
    from ..plots import save_figure

    if all(str(p).lower().endswith(".wav") for p in (content_data, style_data, out)):
        from .speech import convert

        return convert(model, Path(content_data), Path(style_data), out)

    if out.suffix.lower() != ".png":
        raise DataError(f"--out must end in .png, got {out.name!r}")
    if n < 1:
        raise DataError(f"-n/--n-images must be at least 1, got {n}")
    det, spec = load_with_spec(model, content_data)
    if not isinstance(det, DisentangleDetector):
        raise DataError(
            f"{model} is not a disentangle model (it holds {type(det).__name__}); swap needs "
            "one trained with 'anomalia fit --detector disentangle'"
        )
    contents = read_data(content_data, spec).X[:n]
    styles = read_data(style_data, spec).X[:n]
    for name, X in ((content_data, contents), (style_data, styles)):
        if len(X) == 0:
            raise DataError(f"{name}: no images to swap")
    grid = det.swap_grid(contents, styles)  # checks the image shape against the model
    save_figure(plot_swap_grid(grid), out)
    console.print(
        f"swapped {len(contents)} contents x {len(styles)} styles; wrote {out}", highlight=False
    )
