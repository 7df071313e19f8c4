"""anomalia export: a model file as one ONNX graph, to score without Python or anomalia."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .._utils.files import sha256_of
from ._common import Commands, ModelArg, atomic_output, console, handle_errors, open_model

app = Commands()


def _feature_names(det: Any, manifest: dict[str, Any]) -> list[str] | None:
    """The model's feature names saved with it by ``anomalia fit`` (None if it has none)."""
    table = (manifest.get("metadata") or {}).get("table") or {}
    names = table.get("feature_names")
    if isinstance(names, list) and len(names) == int(det.n_features_in_):
        return [str(n) for n in names]
    return None


@app.command("export")
@handle_errors
def export_model(
    model: ModelArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="ONNX file to write (.onnx).")],
    float64: Annotated[
        bool,
        typer.Option(
            "--float64",
            help="Take float64 rows and compute in float64: for features whose values are "
            "large next to their spread (timestamps, ids), which float32 rounds too coarsely; "
            "networks and trees compute in float32 either way.",
        ),
    ] = False,
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file",
            help="Verify MODEL's signature with the HMAC key in this file (default: "
            "$ANOMALIA_MODEL_KEY, if set).",
        ),
    ] = None,
) -> None:
    """Write MODEL as one ONNX graph: input X (rows x features, float32), outputs
    anomaly_score and is_anomaly (score > the model's threshold), every preprocessing step
    included. Its metadata holds the feature names, threshold, detector and MODEL's SHA-256."""
    from ..errors import AnomaliaError, DataError
    from ..persistence import read_key

    if out.suffix.lower() != ".onnx":
        raise DataError(f"--out must end in .onnx, got {out.name!r}")
    key = read_key(key_file) if key_file is not None else None
    sha = sha256_of(model) if model.is_file() else None
    det, manifest = open_model(model, key)  # names a missing or bad file
    if sha is None or sha256_of(model) != sha:
        raise AnomaliaError(f"{model} changed while it was read; export again")
    name = (manifest.get("metadata") or {}).get("detector") or det.name

    from ..export import to_onnx

    dtype = "float64" if float64 else "float32"
    onnx_model = to_onnx(
        det,
        sha256=sha,
        feature_names=_feature_names(det, manifest),
        dtype=dtype,
        detector_name=str(name),
    )
    try:
        blob = onnx_model.SerializeToString()
    except ValueError as exc:  # protobuf refuses messages over 2 GiB
        raise AnomaliaError(f"the ONNX model is too large for one file: {exc}") from None
    atomic_output(out, lambda tmp: tmp.write_bytes(blob))
    console.print(
        f"exported [bold]{name}[/] ({det.n_features_in_} {dtype} features per row, threshold "
        f"{det.threshold_:.6g}) to {out} ({len(blob) / 2**20:.1f} MiB)",
        highlight=False,
    )
    console.print(f"sha256 of {model.name}: {sha}", highlight=False, soft_wrap=True)
