"""anomalia compress / decompress / sample / interpolate: the decoder at work."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ._common import (
    Commands,
    DataArg,
    ModelArg,
    atomic_output,
    console,
    handle_errors,
    load_with_spec,
    open_model,
    read_data,
)

app = Commands()

GRID_COLUMNS = 8
GRID_MAX = 64  # images drawn in a .png grid; a .npy file keeps them all


def _check_out(out: Path, det: Any, what: str) -> None:
    """.npy always; .png for image models; .csv/.parquet for models fitted on a table."""
    from ..errors import AnomaliaError

    images = getattr(det, "image_shape_", None) is not None
    formats = [".npy", *([".png"] if images else [])]
    if not images or hasattr(det, "feature_names_in_"):
        formats += [".csv", ".parquet"]
    if out.suffix.lower() not in formats:
        raise AnomaliaError(f"{what} are written to {', '.join(formats)}; got {out.name!r}")


def _write(
    out: Path, X: Any, det: Any, extra: dict[str, Any] | None = None, title: str = ""
) -> None:
    """Write decoded rows or images by the suffix of ``out`` (checked by ``_check_out``).

    .npy: the array as is; .png: a grid of the first GRID_MAX images under ``title``;
    .csv/.parquet: rows with the model's feature names, ``extra`` columns first.
    """
    import numpy as np
    import pandas as pd

    from ..plots import plot_image_grid, save_figure

    X = np.asarray(X)
    suffix = out.suffix.lower()
    if suffix == ".npy":
        atomic_output(out, lambda tmp: tmp.write_bytes(_npy_bytes(X)))
    elif suffix == ".png":
        shown = X.reshape(len(X), *det.image_shape_)[:GRID_MAX]
        starts = range(0, len(shown), GRID_COLUMNS)
        rows = [shown[i : i + GRID_COLUMNS] for i in starts]
        titles = [f"{i + 1}-{i + len(r)}" for i, r in zip(starts, rows, strict=True)]
        count = f"the first {len(shown)} of {len(X)}" if len(X) > len(shown) else len(X)
        title = f"{title} ({count} images)"
        save_figure(plot_image_grid(rows, titles, title=title), out)
    else:
        rows2d = X.reshape(len(X), -1)
        names = getattr(det, "feature_names_in_", None)
        if names is None or len(names) != rows2d.shape[1]:
            names = [f"x{j}" for j in range(rows2d.shape[1])]
        frame = pd.DataFrame(rows2d, columns=[str(n) for n in names])
        for i, (name, values) in enumerate((extra or {}).items()):
            frame.insert(i, name, values)
        if suffix == ".csv":
            atomic_output(out, lambda tmp: frame.to_csv(tmp, index=False))
        else:
            atomic_output(out, lambda tmp: frame.to_parquet(tmp, index=False))


def _npy_bytes(X: Any) -> bytes:
    import io

    import numpy as np

    buf = io.BytesIO()
    np.save(buf, X)
    return buf.getvalue()


@app.command()
@handle_errors
def compress(
    model: ModelArg,
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Compressed file to write.")],
    codec: Annotated[
        str, typer.Option("--codec", help="Payload compression: zlib, lzma or none.")
    ] = "zlib",
) -> None:
    """Store DATA as the model's 8-bit bottleneck codes (vqvae: code indices) in the --out
    file; report the size against DATA's own bytes and the error in DATA's own units."""
    import numpy as np

    from ..compression import compress as encode
    from ..compression import decompress as decode
    from ..compression import mse_psnr

    det, spec = load_with_spec(model, data)
    ds = read_data(data, spec)
    ids = None if ds.ids is None else ds.ids.to_numpy()
    name = "id" if ds.ids is None else str(ds.ids.name)
    blob = encode(det, ds.X, ids=ids, id_name=name, codec=codec)
    X_hat = decode(det, blob)
    mse, psnr = mse_psnr(ds.X, X_hat)
    atomic_output(out, lambda tmp: tmp.write_bytes(blob))
    n, given = len(ds.X), _input_bytes(data, ds.X)
    console.print(
        f"compressed {n} rows of {given[1]} ({given[0]:,} bytes) into {len(blob):,} bytes: "
        f"{given[0] / len(blob):.1f}x smaller, {len(blob) / n:.1f} bytes per row; wrote {out}",
        highlight=False,
        soft_wrap=True,
    )
    error = np.asarray(X_hat, dtype=np.float64) - np.asarray(ds.X, dtype=np.float64)
    console.print(
        f"round trip error in the data's units: RMSE {np.sqrt(mse):.4g}, largest "
        f"{np.abs(error).max():.4g}; PSNR {psnr:.1f} dB (peak = the data's range)",
        highlight=False,
        soft_wrap=True,
    )
    if hasattr(ds.X, "columns"):  # a table: which columns the codes keep worst
        console.print(_column_errors(ds.X, error))


#: Columns listed by ``compress`` (worst first); the rest are counted.
ERROR_COLUMNS = 10


def _input_bytes(data: str, X: Any) -> tuple[int, str]:
    """What DATA takes as given: the file's bytes, a folder's image files, or (a built-in
    dataset) its values at their own type; with words that say which."""
    from ..images import image_files

    path = Path(data)
    if path.is_file():
        return path.stat().st_size, data
    if path.is_dir():
        files = image_files(path)
        return sum(f.stat().st_size for f in files), f"{data} ({len(files)} image files)"
    values = X.to_numpy() if hasattr(X, "to_numpy") else X
    return int(values.nbytes), f"{data} (as {values.dtype} values)"


def _column_errors(X: Any, error: Any) -> Any:
    """A table of each column's RMSE beside the column's spread, worst columns first."""
    import numpy as np
    from rich.table import Table

    rmse = np.sqrt(np.mean(error**2, axis=0))
    spread = X.to_numpy(dtype=np.float64).std(axis=0)
    order = np.argsort(-rmse, kind="stable")
    table = Table(title="round trip error per column (the column's units)")
    for header in ("column", "RMSE", "column std"):
        table.add_column(header, justify="left" if header == "column" else "right")
    for j in order[:ERROR_COLUMNS]:
        table.add_row(str(X.columns[j]), f"{rmse[j]:.4g}", f"{spread[j]:.4g}")
    if len(order) > ERROR_COLUMNS:
        table.caption = f"and {len(order) - ERROR_COLUMNS} more columns with smaller errors"
    return table


@app.command()
@handle_errors
def decompress(
    model: ModelArg,
    file: Annotated[Path, typer.Argument(help="File written by 'anomalia compress'.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Tables: .csv/.parquet/.npy; images: .npy/.png.")
    ],
) -> None:
    """Decode FILE with the model that compressed it: rows (tables) or images."""
    from ..compression import MAX_BYTES, read_header
    from ..compression import decompress as decode
    from ..errors import AnomaliaError

    det = open_model(model)[0]
    _check_out(out, det, "decoded data")
    if file.is_file() and file.stat().st_size > MAX_BYTES:
        raise AnomaliaError(f"{file} is larger than {MAX_BYTES} bytes: not a codes file to decode")
    blob = file.read_bytes()
    header = read_header(blob)
    X_hat = decode(det, blob)
    ids = {header.get("id_name", "id"): header["ids"]} if "ids" in header else None
    _write(out, X_hat, det, ids, f"decoded from {file.name}")
    console.print(f"decoded {len(X_hat)} rows of shape {tuple(X_hat.shape[1:])}; wrote {out}")


@app.command()
@handle_errors
def sample(
    model: ModelArg,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Images: .png/.npy; tables: .csv/.parquet/.npy.")
    ],
    n: Annotated[int, typer.Option("-n", "--n-samples", min=1, help="Number of samples.")] = 64,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the prior draws.")] = 0,
) -> None:
    """Draw new rows or images from a trained vae's decoder."""
    from ..detectors.autoencoder import VAEDetector
    from ..errors import AnomaliaError

    det = open_model(model)[0]
    if not isinstance(det, VAEDetector):
        kind = getattr(det, "name", type(det).__name__)
        raise AnomaliaError(f"sample needs a vae model; {model.name} is a {kind!r} model")
    _check_out(out, det, "samples")
    title = f"samples from the prior of {model.name}, seed {seed}"
    _write(out, det.sample(n, random_state=seed), det, title=title)
    console.print(f"drew {n} samples (seed {seed}); wrote {out}")


@app.command()
@handle_errors
def interpolate(
    model: ModelArg,
    data: DataArg,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Images: .png/.npy; tables: .csv/.parquet/.npy.")
    ],
    start: Annotated[
        int, typer.Option("--start", help="First row (counted from 1, as everywhere in the CLI).")
    ] = 1,
    end: Annotated[int, typer.Option("--end", help="Last row (counted from 1).")] = 2,
    steps: Annotated[int, typer.Option("--steps", min=2, help="Points on the path.")] = 8,
) -> None:
    """Decode a straight line between the codes of rows START and END (ae, vae: means)."""
    import numpy as np

    from ..detectors.autoencoder import AEDetector, VAEDetector
    from ..errors import AnomaliaError, DataError

    det, spec = load_with_spec(model, data)
    if not isinstance(det, AEDetector | VAEDetector):
        kind = getattr(det, "name", type(det).__name__)
        raise AnomaliaError(f"interpolate needs an ae or vae model; {model.name} is {kind!r}")
    _check_out(out, det, "interpolations")
    X = read_data(data, spec).X
    for row in (start, end):
        if not 1 <= row <= len(X):
            raise DataError(f"row {row} is out of range: {data} has rows 1..{len(X)}")
    picked = [start - 1, end - 1]
    pair = X.iloc[picked] if hasattr(X, "iloc") else np.asarray(X)[picked]
    codes = det.transform(pair)
    t = np.linspace(0.0, 1.0, steps)[:, None]
    path = det.inverse_transform((1 - t) * codes[0] + t * codes[1])
    if out.suffix.lower() == ".png":
        from ..plots import plot_image_grid, save_figure

        ends = np.asarray(pair, dtype=np.float64).reshape(2, *det.image_shape_)
        strip = np.concatenate([ends[:1], path, ends[1:]])
        titles = [f"row {start}", *(f"t={v:.2f}" for v in t[:, 0]), f"row {end}"]
        title = f"{model.name}: a straight line in code space from row {start} to row {end}"
        grid = plot_image_grid([strip], ["input, path, input"], col_titles=titles, title=title)
        save_figure(grid, out)
    else:
        _write(out, path, det, {"t": t[:, 0]})
    console.print(f"decoded {steps} points from row {start} to row {end}; wrote {out}")
