"""anomalia serve: the scoring service and the threshold page (the ``serve`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import Commands, console, handle_errors

app = Commands()


@app.command()
@handle_errors
def serve(
    models: Annotated[list[Path], typer.Argument(help="Model files to serve (one or more).")],
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port (0: any free port).")] = 8000,
    name: Annotated[
        list[str] | None,
        typer.Option(
            "--name", help="Name of each model in URLs (repeat, in order; default: file stem)."
        ),
    ] = None,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes.")] = 1,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="What scores: python (the detector) or onnx (its exported graph in "
            "onnxruntime; the export extra).",
        ),
    ] = "python",
    threads: Annotated[
        int | None, typer.Option("--threads", help="Scoring threads per worker (default: cores).")
    ] = None,
    require_signature: Annotated[
        bool, typer.Option("--require-signature", help="Refuse models without a valid signature.")
    ] = False,
    sign_key_file: Annotated[
        Path | None,
        typer.Option(
            "--sign-key-file",
            help="HMAC key: verifies the models and signs calibrated downloads "
            "(default: $ANOMALIA_MODEL_KEY).",
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option("--token-file", help="Require 'Authorization: Bearer <token in this file>'."),
    ] = None,
    max_body: Annotated[
        int, typer.Option("--max-body", help="Largest request body, in bytes (larger: 413).")
    ] = 64 * 2**20,
    cors_origin: Annotated[
        list[str] | None, typer.Option("--cors-origin", help="Browser origin allowed (repeat).")
    ] = None,
    ssl_certfile: Annotated[
        Path | None, typer.Option("--ssl-certfile", help="TLS certificate (PEM).")
    ] = None,
    ssl_keyfile: Annotated[
        Path | None, typer.Option("--ssl-keyfile", help="TLS private key (PEM).")
    ] = None,
) -> None:
    """Serve MODELS over HTTP: scores, model cards, /health, /metrics, the threshold page."""
    from ..errors import AnomaliaError

    try:
        from ..serve import run
    except ImportError as exc:
        raise AnomaliaError(
            f"anomalia serve needs the serve extra ({exc.name} is missing): "
            "pip install 'anomalia[serve]'"
        ) from None
    for opt, value in (
        ("--workers", workers),
        ("--max-body", max_body),
        ("--threads", threads or 1),
    ):
        if value < 1:
            raise AnomaliaError(f"{opt} must be at least 1, got {value}")
    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise AnomaliaError("give both --ssl-certfile and --ssl-keyfile, or neither")
    config = {
        "models": [str(m) for m in models],
        "names": name or [],
        "key_file": str(sign_key_file) if sign_key_file else None,
        "require_signature": require_signature,
        "token_file": str(token_file) if token_file else None,
        "max_body": max_body,
        "cors_origins": cors_origin or [],
        "threads": threads,
        "engine": engine,
    }
    scheme = "https" if ssl_certfile else "http"

    def ready(service: object) -> None:
        names = ", ".join(sorted(service.state.models))  # type: ignore[attr-defined]
        console.print(f"serving {names} on {scheme}://{host}:{port}/ (Ctrl-C stops)")

    run(
        config,
        host=host,
        port=port,
        workers=workers,
        ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
        ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
        on_ready=ready,
    )
