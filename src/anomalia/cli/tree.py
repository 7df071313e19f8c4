"""anomalia parse: the trees a ``tree-ae`` model induces; and fitting a detector on texts
(``anomalia fit --text-column``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ._common import Commands, ModelArg, atomic_output, console, handle_errors, open_model

app = Commands()

TextColumn = Annotated[
    str | None,
    typer.Option(
        "--text-column",
        help="Column (field) holding the text in .csv and .jsonl(.gz) data; in a .txt file "
        "(one text per line), the header on its first line. Default for parse: the model's.",
    ),
]


def fit_texts(
    det: Any, name: str, data: str, text_column: str | None, out: Path, key: bytes | None
) -> None:
    """``anomalia fit`` on texts: read DATA's texts, fit ``det``, save it with how to read
    texts again (the text column) in its metadata."""
    from ..text.corpus import read_texts

    texts = read_texts(data, text_column)
    det.fit(texts)
    metadata = {"text_column": text_column, "train_rows": len(texts), "detector": name}
    det.save(out, metadata=metadata, key=key)
    console.print(
        f"fitted [bold]{name}[/] on {len(texts)} texts; threshold {det.threshold_:.6g}; "
        f"saved to {out}"
    )


def _txt_header(path: Path, column: str | None) -> str | None:
    """The model's text column for a .txt file only when its first line is that header."""
    try:
        with path.open(encoding="utf-8") as f:
            first = f.readline().strip()
    except (OSError, UnicodeDecodeError):
        return None  # read_texts says what is wrong
    return column if column is not None and first == column else None


@app.command()
@handle_errors
def parse(
    model: ModelArg,
    data: Annotated[str, typer.Argument(help="Texts: .txt (one per line), .csv or .jsonl(.gz).")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Text file to write: one bracketed tree per line.")
    ],
    text_column: TextColumn = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Also draw the first trees to this PNG file.")
    ] = None,
    n_plot: Annotated[int, typer.Option("--n-plot", help="How many trees --plot draws.")] = 4,
) -> None:
    """Write the tree a tree-ae model induces for each text of DATA, in brackets."""
    from ..errors import DataError
    from ..plots import save_figure
    from ..text.corpus import read_texts
    from ..text.trees import bracketed, plot_trees

    if n_plot < 1:
        raise DataError(f"--n-plot must be at least 1, got {n_plot}")
    if plot is not None and plot.suffix.lower() != ".png":
        raise DataError(f"--plot must end in .png, got {plot.name!r}")
    det, manifest = open_model(model)
    if not hasattr(det, "trees"):
        raise DataError(f"{model} is a {manifest['detector']} model; parse needs a tree-ae model")
    column = text_column or manifest["metadata"].get("text_column")
    if Path(data).name.lower().endswith(".txt") and text_column is None:
        column = _txt_header(Path(data), column)
    trees = det.trees(read_texts(data, column))
    lines = [bracketed(tree, words) for tree, words in trees]
    atomic_output(out, lambda tmp: tmp.write_text("\n".join(lines) + "\n", encoding="utf-8"))
    if plot is not None:
        shown = trees[:n_plot]
        fig = plot_trees([t for t, _ in shown], [w for _, w in shown])
        save_figure(fig, plot)
    console.print(
        f"wrote {len(lines)} trees to {out}" + (f"; drew {len(shown)} in {plot}" if plot else "")
    )
