"""The scoring service: FastAPI routes over models loaded once at start-up.

No request ever names a file on the server: the models are those given to
:func:`create_app`, loaded before the first request and never changed (calibration on the
threshold page works on a copy, returned to the caller). Bad requests get a 4xx with one
line naming the problem and the service keeps serving; scoring runs in a thread pool sized
to the cores, off the event loop, so a large request does not stall ``/health``.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import AnomaliaError, DataError
from ._models import BadRequest, ServedModel

#: The logger of the access log: one line per request (``anomalia serve`` prints it on stderr).
access_log = logging.getLogger("anomalia.access")

#: Default ceiling on a request body, in bytes (64 MiB).
MAX_BODY = 64 * 2**20

_FORMATS = {
    "application/json": ".json",
    "text/csv": ".csv",
    "application/vnd.apache.parquet": ".parquet",
    "application/x-parquet": ".parquet",
    "application/octet-stream": ".parquet",
}


@dataclass
class Settings:
    """How a service runs (the options of ``anomalia serve``).

    Parameters
    ----------
    token : str, optional
        When set, every endpoint but ``/health`` and the page's static files needs
        ``Authorization: Bearer <token>``.
    key : bytes, optional
        Signing key: models must carry a valid signature, and calibrated downloads are
        signed with it.
    max_body : int, default=64 MiB
        Largest request body accepted, in bytes (larger: 413).
    cors_origins : sequence of str, default=()
        Origins allowed to call the API from a browser (none by default).
    threads : int, optional
        Threads that score requests (default: the number of cores).
    blas_threads : int or None, default=1
        BLAS / OpenMP threads per scoring thread: 1 lets requests run side by side on the
        cores without oversubscribing them (measured: a 100-row request's CPU halves);
        None leaves the libraries' defaults (one large request at a time uses every core).
    """

    token: str | None = None
    key: bytes | None = None
    max_body: int = MAX_BODY
    cors_origins: Sequence[str] = ()
    threads: int | None = None
    blas_threads: int | None = 1


class _Metrics:
    def __init__(self) -> None:
        disable_created_metrics()  # no *_created series: only what a dashboard reads
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "anomalia_requests", "HTTP requests", ["endpoint", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "anomalia_request_seconds",
            "Time to answer a request, in seconds",
            ["endpoint"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.rows = Counter("anomalia_rows_scored", "Rows scored", ["model"], registry=r)
        self.flagged = Counter(
            "anomalia_rows_flagged", "Rows flagged anomalous", ["model"], registry=r
        )
        self.load = Gauge(
            "anomalia_model_load_seconds",
            "Time to load each model, in seconds",
            ["model"],
            registry=r,
        )


class _BodyLimit:
    """ASGI middleware: a body over ``limit`` bytes gets 413 before the app reads it all."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(self.limit)(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _too_large(self.limit)(scope, receive, send)


class _Access:
    """ASGI middleware: the bearer token, request metrics and the JSON access log.

    Plain ASGI rather than ``@app.middleware("http")``, whose request/response wrapping cost
    about a millisecond per request. A request that raises is counted and logged as 500.
    """

    def __init__(self, app: ASGIApp, token: bytes | None, metrics: _Metrics) -> None:
        self.app, self.token, self.metrics = app, token, metrics

    def _authorised(self, scope: Scope) -> bool:
        if self.token is None:
            return True
        path = scope["path"]
        if path in _PUBLIC or path.startswith("/static/"):
            return True
        given = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, value = given.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(value, self.token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status, rows = 500, None

        async def sending(message: Message) -> None:
            nonlocal status, rows
            if message["type"] == "http.response.start":
                status = message["status"]
                rows = dict(message.get("headers", ())).get(b"x-rows")
            await send(message)

        try:
            if self._authorised(scope):
                await self.app(scope, receive, sending)
            else:
                await JSONResponse(
                    {"detail": "missing or wrong bearer token"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )(scope, receive, sending)
        finally:
            endpoint = getattr(scope.get("route"), "path", "unmatched")
            seconds = time.perf_counter() - start
            self.metrics.requests.labels(endpoint, scope["method"], str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(seconds)
            client = scope.get("client")
            access_log.info(
                json.dumps(
                    {
                        "time": round(time.time(), 3),
                        "method": scope["method"],
                        "endpoint": endpoint,
                        "status": status,
                        "ms": round(seconds * 1000, 2),
                        "rows": rows.decode() if rows else None,
                        "client": client[0] if client else None,
                    }
                )
            )


#: Paths the token does not guard: liveness and the page shell (no data).
_PUBLIC = frozenset({"/health", "/", "/favicon.ico"})


class _TooLarge(Exception):
    pass


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(
        {"detail": f"the request body is larger than {limit} bytes"}, status_code=413
    )


def _page(name: str) -> str:
    return resources.files("anomalia.serve").joinpath("static", name).read_text()


def create_app(models: Sequence[ServedModel], settings: Settings | None = None) -> FastAPI:
    """The FastAPI application serving ``models`` (see the module docstring).

    Parameters
    ----------
    models : sequence of ServedModel
        The loaded models; their names must differ.
    settings : Settings, optional
        Access, limits and threads.
    """
    settings = settings or Settings()
    by_name = {m.name: m for m in models}
    if len(by_name) != len(models):
        raise AnomaliaError("two models have the same name: give each a --name")
    metrics = _Metrics()
    for m in models:
        metrics.load.labels(m.name).set(m.load_seconds)
    limiter = anyio.CapacityLimiter(settings.threads or os.cpu_count() or 1)
    controller = None
    if settings.blas_threads is not None:
        from threadpoolctl import ThreadpoolController

        controller = ThreadpoolController()  # made once: inspecting the libraries is slow

    async def offload(work: Callable[[], Any]) -> Any:
        """``work()`` in the scoring pool, with ``blas_threads`` BLAS/OpenMP threads each."""

        def limited() -> Any:
            if controller is None:
                return work()
            with controller.limit(limits=settings.blas_threads):
                return work()

        return await anyio.to_thread.run_sync(limited, limiter=limiter)

    token = settings.token.encode() if settings.token else None

    app = FastAPI(
        title="anomalia",
        summary="Anomaly scores from the models this service was started with.",
        version=_version(),
        docs_url=None,  # served below from the swagger-ui-bundle package: no CDN
        redoc_url=None,
    )
    app.state.models, app.state.metrics, app.state.settings = by_name, metrics, settings

    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(_BodyLimit, limit=settings.max_body)
    # outermost (added last): every answer is logged and counted with its real status,
    # a 413 of the body limit included
    app.add_middleware(_Access, token=token, metrics=metrics)

    @app.exception_handler(AnomaliaError)
    async def user_error(request: Request, exc: AnomaliaError) -> JSONResponse:
        status = 400 if isinstance(exc, BadRequest) else 422
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return JSONResponse({"detail": msg}, status_code=status)

    def model(name: str) -> ServedModel:
        if name not in by_name:
            raise _NotFound(f"no model named {name!r}; this service has {sorted(by_name)}")
        return by_name[name]

    @app.exception_handler(_NotFound)
    async def not_found(request: Request, exc: _NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    async def body(request: Request) -> tuple[bytes, str]:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in _FORMATS:
            raise _Unsupported(
                f"content type {kind or 'missing'!r}: send application/json, text/csv or "
                "application/vnd.apache.parquet"
            )
        data = await request.body()
        if not data.strip():
            raise BadRequest("the request body is empty")
        return data, _FORMATS[kind]

    @app.exception_handler(_Unsupported)
    async def unsupported(request: Request, exc: _Unsupported) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=415)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness: always answered, without a token, even while requests are scored."""
        return {"status": "ok", "models": sorted(by_name)}

    @app.get("/v1/models")
    async def list_models() -> list[dict[str, Any]]:
        """The model card of every model."""
        return [m.card() for m in models]

    @app.get("/v1/models/{name}")
    async def model_card(name: str) -> dict[str, Any]:
        """Detector, parameters, feature names, threshold and how it was chosen, versions."""
        return model(name).card()

    @app.post("/v1/models/{name}/score")
    async def score(name: str, request: Request, explain: int = 0) -> Response:
        """Scores of a JSON (rows or columns + data), CSV or Parquet table, in row order.

        ``?explain=k`` adds each row's k worst-reconstructed features (auto-encoders).
        """
        m = model(name)
        if not 0 <= explain <= 1000:
            raise DataError("explain must be between 0 and 1000")
        data, fmt = await body(request)

        def work() -> dict[str, Any]:
            return m.score(m.read(data, fmt), explain=explain)

        out = await offload(work)
        n = len(out["anomaly_score"])
        metrics.rows.labels(name).inc(n)
        metrics.flagged.labels(name).inc(sum(out["is_anomaly"]))
        return _json(out, n)

    @app.post("/v1/models/{name}/dev")
    async def dev_scores(
        name: str,
        request: Request,
        label_column: str | None = None,
        strategy: str | None = None,
        target: float | None = None,
        cost_miss: float | None = None,
        cost_false_alarm: float | None = None,
    ) -> Response:
        """Scores and labels of a labelled dev set (the threshold page); nothing is kept.

        ``thresholds`` holds what each strategy of ``calibrate`` chooses with its default
        options; with ``strategy`` (and its options), ``chosen`` is that strategy's pick.
        """
        from ..thresholds import check_strategy, choose_threshold

        m = model(name)
        options = {"target": target, "cost_miss": cost_miss, "cost_false_alarm": cost_false_alarm}
        options = {k: v for k, v in options.items() if v is not None}
        if strategy is not None:
            check_strategy(strategy, **options)
        data, fmt = await body(request)

        def work() -> dict[str, Any]:
            ds = m.read(data, fmt, labels=label_column)
            if ds.y is None:
                raise DataError("the dev set needs labels: choose its label column")
            scores = m.anomaly_score(ds.X)
            out = {"anomaly_score": scores.tolist(), "label": ds.y.tolist()}
            out["thresholds"] = _strategies(scores, ds.y)
            if strategy is not None:
                out["chosen"] = choose_threshold(scores, ds.y, strategy, **options)
            return out

        out = await offload(work)
        return _json(out, len(out["label"]))

    @app.post("/v1/models/{name}/calibrated")
    async def calibrated(
        name: str,
        request: Request,
        strategy: str = "f1",
        label_column: str | None = None,
        threshold: float | None = None,
        target: float | None = None,
        cost_miss: float | None = None,
        cost_false_alarm: float | None = None,
    ) -> Response:
        """A copy of the model calibrated on the dev set in the body (the server keeps
        nothing and changes no file): what ``anomalia calibrate`` would write."""
        m = model(name)
        data, fmt = await body(request)
        options = {"target": target, "cost_miss": cost_miss, "cost_false_alarm": cost_false_alarm}
        options = {k: v for k, v in options.items() if v is not None}
        if strategy == "manual":
            options = {"threshold": threshold}
        elif threshold is not None:
            raise DataError("threshold applies to strategy 'manual' only")

        def work() -> bytes:
            return m.calibrated(
                m.read(data, fmt, labels=label_column), strategy, options, settings.key
            )

        blob = await offload(work)
        return Response(
            blob,
            media_type="application/octet-stream",
            headers={"content-disposition": f'attachment; filename="{name}-calibrated.anomalia"'},
        )

    @app.get("/metrics")
    async def prometheus() -> Response:
        """Prometheus metrics: requests, latency, rows scored and flagged, model load time."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    _self_hosted_docs(app)

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        """The threshold page: choose the operating threshold on a labelled dev set."""
        return HTMLResponse(_page("index.html"))

    @app.get("/static/{asset}")
    async def static(asset: str) -> Response:
        kinds = {"page.js": "text/javascript", "page.css": "text/css"}
        if asset not in kinds:
            raise _NotFound(f"no asset {asset!r}")
        return Response(_page(asset), media_type=kinds[asset])

    return app


def _json(out: dict[str, Any], rows: int) -> Response:
    """A JSON response through orjson (floats written shortest and exact, fast)."""
    import orjson

    return Response(orjson.dumps(out), media_type="application/json", headers={"x-rows": str(rows)})


def _self_hosted_docs(app: FastAPI) -> None:
    """OpenAPI docs at /docs with Swagger UI's files from the swagger-ui-bundle package."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs/assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="anomalia API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
        )


def _strategies(scores: Any, y: Any) -> dict[str, Any]:
    """The thresholds ``calibrate``'s strategies choose with their default options."""
    from ..thresholds import STRATEGIES, choose_threshold

    return {strategy: choose_threshold(scores, y, strategy) for strategy in STRATEGIES}


class _NotFound(Exception):
    pass


class _Unsupported(Exception):
    pass


def _version() -> str:
    from .._version import __version__

    return __version__


def load_models(
    paths: Sequence[str | Path],
    names: Sequence[str] = (),
    key: bytes | None = None,
    engine: str = "python",
) -> list[ServedModel]:
    """Load the model files of ``anomalia serve`` (``names`` in the same order, optional;
    ``engine``: see :meth:`ServedModel.load`)."""
    if names and len(names) != len(paths):
        raise AnomaliaError(f"got {len(names)} --name for {len(paths)} models: give one per model")
    return [
        ServedModel.load(p, names[i] if names else None, key, engine) for i, p in enumerate(paths)
    ]
