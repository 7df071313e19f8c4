"""anomalia summarize: a text model's bottleneck, written out as text."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import (
    Commands,
    DataArg,
    IdColumn,
    ModelArg,
    TextColumn,
    atomic_output,
    console,
    handle_errors,
    load_with_spec,
    read_data,
)

app = Commands()


@app.command()
@handle_errors
def summarize(
    model: ModelArg,
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Summaries file to write (.csv).")],
    text_column: TextColumn = None,
    id_column: IdColumn = None,
    reference_column: Annotated[
        str | None,
        typer.Option(
            "--reference-column",
            help="Column of human-written summaries: kept in the output (as 'reference'), and "
            "the ROUGE of the generated ones against them printed (needs anomalia[text]).",
        ),
    ] = None,
) -> None:
    """Write the generated summary (the bottleneck words) of every text of DATA (text-ae)."""
    import numpy as np
    import pandas as pd

    from ..errors import AnomaliaError, DataError
    from ..io import read_column

    if out.suffix.lower() != ".csv":
        raise DataError(f"--out must end in .csv, got {out.name!r}")
    det, spec = load_with_spec(model, data, text_column=text_column, id_column=id_column)
    if not hasattr(det, "summarize"):
        raise AnomaliaError(f"{model}: a {det.name} model writes no summaries (use text-ae)")
    if spec.text_column is None:
        raise DataError("the model was not trained on a text column: pass --text-column")
    ds = read_data(data, spec)
    references = None if reference_column is None else read_column(data, reference_column)
    summaries = det.summarize(ds.X)
    ids = ds.ids if ds.ids is not None else pd.Series(np.arange(1, len(summaries) + 1), name="row")
    frame = pd.DataFrame({str(ids.name): ids.to_numpy(), "summary": summaries})
    if references is not None:
        from ..text.summaries import rouge_scores

        frame["reference"] = references
        rouge = rouge_scores(summaries, [str(r) for r in references])
    atomic_output(out, lambda tmp: frame.to_csv(tmp, index=False))
    console.print(f"wrote the summaries of {len(frame)} texts to {out}")
    if references is not None:
        console.print(
            f"ROUGE against {reference_column}: "
            + ", ".join(f"{k} {v:.3f}" for k, v in rouge.items()),
            highlight=False,
        )
