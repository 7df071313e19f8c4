"""``anomalia serve``: a scoring service over HTTP, and a page for choosing the threshold.

:func:`create_app` builds the FastAPI application from models loaded once
(:class:`ServedModel`); :func:`run` serves it with uvicorn. Needs the ``serve`` extra
(FastAPI, uvicorn, prometheus-client).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._models import ServedModel
from .app import Settings, create_app, load_models

__all__ = ["ServedModel", "Settings", "create_app", "load_models", "run"]

_CONFIG_ENV = "ANOMALIA_SERVE_CONFIG"


def _log_access() -> None:
    log = logging.getLogger("anomalia.access")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def _build(config: dict[str, Any]) -> Any:
    from ..errors import AnomaliaError
    from ..persistence import read_key

    key = read_key(config.get("key_file"))  # None: $ANOMALIA_MODEL_KEY, if set
    if config.get("require_signature") and key is None:
        raise AnomaliaError("--require-signature needs --sign-key-file or $ANOMALIA_MODEL_KEY")
    models = load_models(
        config["models"], config.get("names") or (), key, config.get("engine", "python")
    )
    token = None
    if config.get("token_file"):
        try:
            token = Path(config["token_file"]).read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise AnomaliaError(f"cannot read token file {config['token_file']}: {exc}") from None
        if len(token) < 16:
            raise AnomaliaError("the token file must hold a token of at least 16 characters")
    settings = Settings(
        token=token,
        key=key,
        max_body=config.get("max_body", Settings.max_body),
        cors_origins=tuple(config.get("cors_origins") or ()),
        threads=config.get("threads"),
    )
    _log_access()
    return create_app(models, settings)


def _drained_server() -> type:
    import uvicorn

    class Drained(uvicorn.Server):
        """uvicorn's server, exiting 0 after a graceful SIGTERM (uvicorn re-raises it: 143)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                yield
                self._captured_signals.clear()  # requests in flight were drained: a clean exit

    return Drained


def app_from_env() -> Any:
    """The application for one of several uvicorn workers (configuration in the environment)."""
    return _build(json.loads(os.environ[_CONFIG_ENV]))


def run(
    config: dict[str, Any],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    on_ready: Any = None,
) -> None:
    """Load the models (failing before listening if one is bad), then serve until SIGTERM.

    ``config``: ``models`` (paths), ``names``, ``key_file``, ``require_signature``,
    ``token_file``, ``max_body``, ``cors_origins``, ``threads``, ``engine``. SIGTERM or Ctrl-C stop
    accepting connections, let requests in flight finish, and exit 0. ``on_ready(app)`` is
    called once the models are loaded.
    """
    import uvicorn

    app = _build(config)  # every model is checked here, once, even with several workers
    if app.state.settings.blas_threads is not None:
        import torch

        torch.set_num_threads(app.state.settings.blas_threads)  # as BLAS: per scoring thread
    if on_ready is not None:
        on_ready(app)
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "access_log": False,
        "ssl_certfile": ssl_certfile,
        "ssl_keyfile": ssl_keyfile,
        "timeout_graceful_shutdown": 30,
        "log_level": "warning",
    }
    if workers > 1:
        os.environ[_CONFIG_ENV] = json.dumps(config)
        uvicorn.run("anomalia.serve:app_from_env", factory=True, workers=workers, **common)
    else:
        _drained_server()(uvicorn.Config(app, **common)).run()
