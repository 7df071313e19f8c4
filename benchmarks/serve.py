"""Throughput and latency of ``anomalia serve`` under load, against in-process scoring.

    python benchmarks/serve.py [--detector gaussian] [--csv] [--cell-seconds 10] [--requests 20000]

What it does, in order, all on 127.0.0.1:

1. makes a 30-feature table like card transactions (``Time``, ``V1`` .. ``V28``, ``Amount``),
   writes the training rows to a temporary CSV and fits ``--detector`` with the CLI
   (``anomalia fit``, in this process through typer's ``CliRunner``), so the model file
   carries the CLI's metadata; its name in URLs is the file stem (the detector's name);
2. times in-process ``det.anomaly_score`` on the same batches the load will send (batches
   of 1, 100, 1,000 and 10,000 rows cut from a pool of test rows, as the Dataset the
   service builds), and where one request's work goes inside the service code (JSON
   parsing, DataFrame, validation, scoring, response encoding), in this process;
3. starts the real service (``anomalia serve MODEL --host 127.0.0.1 --port P``, P a free
   ephemeral port) as a subprocess and waits for ``/health``;
4. sends every distinct batch once and checks the scores against the in-process ones (exact
   float equality); those verified response bodies are the reference for the load;
5. the load: for each batch size and 1, 8 and 32 connections, requests pre-encoded as
   ``{"columns": [...], "data": [[...], ...]}`` JSON (``--csv``: also as CSV), sent by one
   asyncio thread over keep-alive connections (a minimal HTTP/1.1 client on asyncio
   streams; ``--client httpx`` uses ``httpx.AsyncClient``), each cell bounded by a request
   count and ``--cell-seconds``; an error is a failed request, a status other than 200 or a
   body other than the verified one;
6. mixes 10 % bad requests (missing column, NaN, text in a numeric field, malformed JSON,
   wrong content type, empty body, unknown model) into good ones: every bad one must get
   its 4xx with a JSON ``detail``, every good one exactly the in-process scores; then checks
   ``/health`` and that ``/metrics`` counted the same rows and statuses;
7. stops the service with SIGTERM and checks that it exits 0.

Prints markdown tables and, only when everything ran, writes
``benchmarks/results/serve_<detector>.csv`` (one row per load cell, per mixed-phase kind and
per final check). The client and the service share this machine's cores: the CPU columns say
how the time split (process CPU seconds over wall seconds; 200 % is both cores of a 2-core
machine). Run it on a quiet machine: other busy processes lower every figure, and with BLAS
and OpenMP at their default thread counts they slow small batches badly (``--blas-threads 1``
sets one thread here and in the service).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
HOST = "127.0.0.1"  # never any other address
COLUMNS = ["Time", *(f"V{i}" for i in range(1, 29)), "Amount"]
BATCHES = (1, 100, 1_000, 10_000)
CONNECTIONS = (1, 8, 32)
#: Share of the request budget per batch size (per concurrency and encoding).
SHARE = {1: 0.45, 100: 0.30, 1_000: 0.20, 10_000: 0.05}
#: Distinct batches per size (each verified once, then sent in turn).
DISTINCT = {1: 64, 100: 32, 1_000: 16, 10_000: 4}
GOAL_RATIO, GOAL_P50_MS = 0.80, 10.0
ALL_WORK = "**all of the endpoint's work** (read, score, encode)"


# ------------------------------------------------------------------------------------ data
def transactions(n: int, seed: int, anomalies: float = 0.002) -> pd.DataFrame:
    """Card-transaction-like rows: seconds since the start, 28 correlated PCA-like
    components (6 decimals), a log-normal amount (cents); a few rows shifted far out."""
    mix = np.random.default_rng(12345).normal(size=(6, 28)) / np.sqrt(6)
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, 6)) @ mix + 0.3 * rng.normal(size=(n, 28))
    bad = rng.random(n) < anomalies
    v[bad] += rng.choice([-5.0, 5.0], size=(int(bad.sum()), 28)) * (rng.random((1, 28)) < 0.3)
    frame = pd.DataFrame(v.round(6), columns=COLUMNS[1:-1])
    frame.insert(0, "Time", np.sort(rng.uniform(0, 172_800, n)).round())
    frame["Amount"] = rng.lognormal(3.0, 1.2, n).round(2)
    return frame


def json_body(frame: pd.DataFrame) -> bytes:
    doc = {"columns": list(frame.columns), "data": frame.to_numpy().tolist()}
    return json.dumps(doc, separators=(",", ":")).encode()


def parquet_body(frame: pd.DataFrame) -> bytes:
    import io

    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def csv_body(frame: pd.DataFrame) -> bytes:
    lines = [",".join(frame.columns)]
    lines += [",".join(map(repr, row)) for row in frame.to_numpy().tolist()]
    return ("\n".join(lines) + "\n").encode()


def fit_model(detector: str, train: pd.DataFrame, tmp: Path) -> Path:
    """``anomalia fit train.csv --detector D --out tmp/D.anomalia`` through the CLI."""
    from typer.testing import CliRunner

    from anomalia.cli.app import app

    data, out = tmp / "train.csv", tmp / f"{detector}.anomalia"
    train.to_csv(data, index=False)
    result = CliRunner().invoke(app, ["fit", str(data), "--detector", detector, "-o", str(out)])
    if result.exit_code != 0 or not out.exists():
        raise SystemExit(f"anomalia fit failed ({result.exit_code}):\n{result.output}")
    return out


# ------------------------------------------------------------------------------ in process
@dataclass
class Batch:
    rows: int
    frame: pd.DataFrame
    X: pd.DataFrame  # what the service hands the detector (the Dataset's features)
    scores: list[float]
    flags: list[bool]
    bodies: dict[str, bytes] = field(default_factory=dict)  # encoding -> request body
    reference: dict[str, bytes] = field(default_factory=dict)  # encoding -> verified response


def per_call(
    fn: Any, items: list[Any], min_seconds: float, clock: Any = time.perf_counter
) -> float:
    """Mean seconds of ``clock`` per ``fn(item)``, cycling ``items`` (one warm-up call, then
    at least one pass and ``min_seconds`` of wall time)."""
    fn(items[0])
    calls, start, start_clock = 0, time.perf_counter(), clock()
    while calls < len(items) or time.perf_counter() - start < min_seconds:
        fn(items[calls % len(items)])
        calls += 1
    return (clock() - start_clock) / calls


def stage_profile(model: Any, batches: list[Batch], min_seconds: float) -> dict[str, float]:
    """Where one JSON request's work goes inside the service code, in CPU ms per request
    (this process's CPU time: comparable with the service's, and little changed by other
    processes' load). The stages are the service's own functions, called as the endpoint
    calls them."""
    from anomalia.io import dataset_from_frame
    from anomalia.serve._models import frame_from_json, parse_json
    from anomalia.serve.app import _json

    det, spec = model.detector, model.spec
    bodies = [b.bodies["json"] for b in batches]
    docs = [parse_json(body) for body in bodies]
    frames = [frame_from_json(doc, spec) for doc in docs]
    datasets = [model.read(body, ".json") for body in bodies]
    outs = [model.score(ds) for ds in datasets]
    xs = [b.X for b in batches]

    CPU = time.process_time
    ms = {
        "`parse_json` (orjson.loads)": per_call(parse_json, bodies, min_seconds, CPU),
        "`ServedModel.read` (parse, numeric fast path, Dataset)": per_call(
            lambda b: model.read(b, ".json"), bodies, min_seconds, CPU
        ),
        "for comparison, the general path: `frame_from_json` (per-value checks, DataFrame)": (
            per_call(lambda d: frame_from_json(d, spec), docs, min_seconds, CPU)
        ),
        "for comparison, the general path: `dataset_from_frame` (validation, float64)": (
            per_call(
                lambda f: dataset_from_frame(f, spec, name="request body"),
                frames,
                min_seconds,
                CPU,
            )
        ),
        "`det.anomaly_score`": per_call(det.anomaly_score, xs, min_seconds, CPU),
        "`ServedModel.score` (anomaly_score, tolist)": per_call(
            model.score, datasets, min_seconds, CPU
        ),
        "response encoding (orjson.dumps)": per_call(lambda o: _json(o, 0), outs, min_seconds, CPU),
        ALL_WORK: per_call(
            lambda b: _json(model.score(model.read(b, ".json")), 0), bodies, min_seconds, CPU
        ),
    }
    return {k: 1000 * v for k, v in ms.items()}


# ---------------------------------------------------------------------------------- client
class RawConnection:
    """One keep-alive HTTP/1.1 connection on asyncio streams; requests are pre-encoded."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port, limit=2**20)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
            self.reader = self.writer = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None or self.writer.is_closing() or self.reader.at_eof():
            await self.close()  # the service closed it (idle keep-alive): reconnect
            await self._open()
        assert self.reader is not None
        assert self.writer is not None
        try:
            self.writer.write(raw)
            await self.writer.drain()
            head = await self.reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            low = head.lower()
            i = low.find(b"\r\ncontent-length:")
            if i >= 0:
                n = int(low[i + 17 : low.index(b"\r\n", i + 2)])
                body = await self.reader.readexactly(n)
            elif b"\r\ntransfer-encoding: chunked" in low:
                parts = []
                while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                    parts.append(await self.reader.readexactly(size))
                    await self.reader.readexactly(2)
                await self.reader.readuntil(b"\r\n")
                body = b"".join(parts)
            else:
                body = await self.reader.read()
                low += b"\r\nconnection: close"
        except BaseException:
            await self.close()
            raise
        if b"\r\nconnection: close" in low:
            await self.close()
        return status, body


class HttpxConnection:
    """The same interface over one shared ``httpx.AsyncClient`` (``--client httpx``)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def request(self, req: Request) -> tuple[int, bytes]:
        r = await self.client.post(req.path, content=req.body, headers=req.headers)
        return r.status_code, r.content

    async def close(self) -> None:
        pass


@dataclass
class Request:
    path: str
    body: bytes
    content_type: str | None
    port: int
    raw: bytes = b""

    def __post_init__(self) -> None:
        head = [f"POST {self.path} HTTP/1.1", f"Host: {HOST}:{self.port}"]
        if self.content_type is not None:
            head.append(f"Content-Type: {self.content_type}")
        head.append(f"Content-Length: {len(self.body)}")
        self.raw = ("\r\n".join(head) + "\r\n\r\n").encode() + self.body

    @property
    def headers(self) -> dict[str, str]:
        return {"Content-Type": self.content_type} if self.content_type else {}


CONTENT = {
    "json": "application/json",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
}


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux ``/proc``), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Cell:
    encoding: str
    rows: int
    connections: int
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    client_cpu: float = 0.0
    server_cpu: float | None = None
    first_error: str = ""


async def make_connections(args: Any, port: int, n: int) -> tuple[list[Any], Any]:
    if args.client == "httpx":
        import httpx

        limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
        client = httpx.AsyncClient(base_url=f"http://{HOST}:{port}", limits=limits, timeout=120)
        return [HttpxConnection(client)] * n, client
    return [RawConnection(port) for _ in range(n)], None


async def send(conn: Any, req: Request) -> tuple[int, bytes]:
    return await conn.request(req if isinstance(conn, HttpxConnection) else req.raw)


async def run_cell(
    cell: Cell,
    batches: list[Batch],
    reqs: list[Request],
    warm: Request,
    cap: int,
    args: Any,
    server_pid: int,
) -> None:
    conns, client = await make_connections(args, reqs[0].port, cell.connections)
    try:  # connect, and one 1-row request on each connection (not counted)
        await asyncio.gather(*(send(conn, warm) for conn in conns))
        issued = 0
        deadline = 0.0

        async def worker(conn: Any) -> None:
            nonlocal issued
            while issued < cap and time.perf_counter() < deadline:
                k = issued % len(reqs)
                issued += 1
                start = time.perf_counter()
                try:
                    async with asyncio.timeout(120):
                        status, body = await send(conn, reqs[k])
                except Exception as exc:  # a failed request is an error, not a crash
                    cell.errors += 1
                    cell.first_error = cell.first_error or f"{type(exc).__name__}: {exc}"
                    continue
                finally:
                    cell.requests += 1
                cell.latencies.append(time.perf_counter() - start)
                if status != 200 or body != batches[k].reference[cell.encoding]:
                    cell.errors += 1
                    cell.first_error = cell.first_error or f"{status}: {body[:200]!r}"

        cpu0, srv0, start = time.process_time(), cpu_seconds(server_pid), time.perf_counter()
        deadline = start + args.cell_seconds
        await asyncio.gather(*(worker(c) for c in conns))
        cell.seconds = time.perf_counter() - start
        cell.client_cpu = time.process_time() - cpu0
        srv1 = cpu_seconds(server_pid)
        cell.server_cpu = None if srv0 is None or srv1 is None else srv1 - srv0
    finally:
        for conn in dict.fromkeys(conns):
            await conn.close()
        if client is not None:
            await client.aclose()


def check_response(status: int, body: bytes, batch: Batch, name: str, threshold: float) -> str:
    """'' when ``body`` is a 200 with exactly the in-process scores, else what differs."""
    if status != 200:
        return f"status {status}: {body[:200]!r}"
    try:
        doc = json.loads(body)
    except ValueError:
        return "the response is not JSON"
    if doc.get("anomaly_score") != batch.scores:
        got = doc.get("anomaly_score") or []
        diff = sum(a != b for a, b in zip(got, batch.scores, strict=False))
        return f"{diff} of {len(batch.scores)} scores differ (got {len(got)})"
    if doc.get("is_anomaly") != batch.flags:
        return "is_anomaly differs"
    if doc.get("threshold") != threshold or doc.get("model") != name:
        return f"threshold/model differ: {doc.get('threshold')!r} {doc.get('model')!r}"
    return ""


async def verify(
    batches: list[Batch], encodings: list[str], port: int, name: str, threshold: float
) -> list[str]:
    """Send every distinct batch once; keep the verified bodies as the load's reference."""
    problems = []
    conn = RawConnection(port)
    try:
        for enc in encodings:
            for b in batches:
                req = Request(f"/v1/models/{name}/score", b.bodies[enc], CONTENT[enc], port)
                status, body = await conn.request(req.raw)
                why = check_response(status, body, b, name, threshold)
                if why:
                    problems.append(f"{enc} batch of {b.rows}: {why}")
                b.reference[enc] = body
    finally:
        await conn.close()
    return problems


# ------------------------------------------------------------------------------ bad requests
BAD_KINDS = {
    # kind: expected status
    "missing column": 422,
    "missing value (null)": 422,
    "NaN literal (not JSON)": 400,
    "text in a numeric field": 422,
    "malformed JSON": 400,
    "wrong content type": 415,
    "empty body": 400,
    "unknown model": 404,
}


def bad_request(kind: str, batch: Batch, name: str, port: int) -> Request:
    path = f"/v1/models/{name}/score"
    cols, data = list(batch.frame.columns), batch.frame.to_numpy().tolist()
    ctype = "application/json"
    if kind == "missing column":
        j = cols.index("V7")
        doc = {"columns": cols[:j] + cols[j + 1 :], "data": [r[:j] + r[j + 1 :] for r in data]}
        body = json.dumps(doc).encode()
    elif kind == "missing value (null)":
        data[len(data) // 2][5] = None
        body = json.dumps({"columns": cols, "data": data}).encode()
    elif kind == "NaN literal (not JSON)":
        data[len(data) // 2][5] = float("nan")  # Python's json writes NaN; JSON has no NaN
        body = json.dumps({"columns": cols, "data": data}).encode()
    elif kind == "text in a numeric field":
        data[len(data) // 2][4] = "12,5 EUR"
        body = json.dumps({"columns": cols, "data": data}).encode()
    elif kind == "malformed JSON":
        body = batch.bodies["json"][:-3]
    elif kind == "wrong content type":
        body, ctype = batch.bodies["json"], "text/plain"
    elif kind == "empty body":
        body = b""
    elif kind == "unknown model":
        path, body = "/v1/models/no-such-model/score", batch.bodies["json"]
    else:
        raise ValueError(kind)
    return Request(path, body, ctype, port)


async def mixed_phase(
    batches: list[Batch], args: Any, port: int, name: str, threshold: float
) -> tuple[dict[str, list[int]], int, list[str]]:
    """Good and bad requests shuffled together over 8 connections; counts per kind
    ([sent, as expected, other]), rows scored, the first few problems."""
    rng = np.random.default_rng(1)
    good = [b for b in batches if b.rows <= 1_000]
    bad_src = [b for b in batches if b.rows == 100]
    plan: list[tuple[str, Request, Batch | None]] = []
    kinds = list(BAD_KINDS)
    for i in range(args.mixed_requests):
        if i % 10 == 0:  # 10 % bad, each kind in turn
            kind = kinds[(i // 10) % len(kinds)]
            src = bad_src[int(rng.integers(len(bad_src)))]
            plan.append((kind, bad_request(kind, src, name, port), None))
        else:
            b = good[int(rng.integers(len(good)))]
            req = Request(f"/v1/models/{name}/score", b.bodies["json"], CONTENT["json"], port)
            plan.append(("good", req, b))
    order = rng.permutation(len(plan))
    counts = {k: [0, 0, 0] for k in ["good", *kinds]}
    problems: list[str] = []
    rows = 0
    conns = [RawConnection(port) for _ in range(8)]
    nxt = 0

    async def worker(conn: RawConnection) -> None:
        nonlocal nxt, rows
        while nxt < len(order):
            kind, req, batch = plan[order[nxt]]
            nxt += 1
            counts[kind][0] += 1
            try:
                async with asyncio.timeout(120):
                    status, body = await conn.request(req.raw)
            except Exception as exc:
                counts[kind][2] += 1
                problems.append(f"{kind}: {type(exc).__name__}: {exc}")
                continue
            if batch is not None:
                why = check_response(status, body, batch, name, threshold)
                rows += batch.rows if status == 200 else 0
            else:
                want = BAD_KINDS[kind]
                why = "" if status == want else f"status {status}, expected {want}"
                try:
                    detail = json.loads(body).get("detail")
                except (ValueError, AttributeError):
                    detail = None
                if not why and not isinstance(detail, str):
                    why = f"no JSON detail: {body[:100]!r}"
            counts[kind][1 if not why else 2] += 1
            if why:
                problems.append(f"{kind}: {why}")

    try:
        await asyncio.gather(*(worker(c) for c in conns))
    finally:
        for c in conns:
            await c.close()
    return counts, rows, problems[:5]


# ---------------------------------------------------------------------------------- service
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def anomalia_command() -> list[str]:
    script = Path(sys.executable).parent / "anomalia"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from anomalia.cli.app import main; main()"]


def start_service(model: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """``anomalia serve MODEL --host 127.0.0.1 --port P``, once ``/health`` answers."""
    import httpx

    for _attempt in range(3):  # another process may take the port between probe and bind
        port = free_port()
        cmd = [*anomalia_command(), "serve", str(model), "--host", HOST, "--port", str(port)]
        with log.open("ab") as err:
            proc = subprocess.Popen(cmd, stdout=err, stderr=err, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"http://{HOST}:{port}/health", timeout=2).status_code == 200:
                    return proc, port
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            raise SystemExit(f"the service did not answer /health within 120 s; log: {log}")
    tail = log.read_text(errors="replace")[-2000:]
    raise SystemExit(f"the service exited ({proc.returncode}) before answering:\n{tail}")


def metrics(port: int) -> dict[str, float]:
    import httpx

    out = {}
    for line in httpx.get(f"http://{HOST}:{port}/metrics", timeout=10).text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def stop_service(proc: subprocess.Popen[bytes]) -> tuple[int | None, float]:
    start = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        rc = None
    return rc, time.perf_counter() - start


# -------------------------------------------------------------------------------- the run
def plan_caps(total: int, encodings: int) -> dict[int, int]:
    per = total / (len(CONNECTIONS) * encodings)
    return {b: max(8, int(per * SHARE[b])) for b in BATCHES}


def pct(values: list[float], q: float) -> float:
    return 1000 * float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", default="gaussian", help="e.g. iforest, default, ae")
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=20_000, help="load requests in all")
    parser.add_argument("--cell-seconds", type=float, default=10.0)
    parser.add_argument("--mixed-requests", type=int, default=2_000)
    parser.add_argument("--csv", action="store_true", help="also load with text/csv bodies")
    parser.add_argument(
        "--parquet", action="store_true", help="also load with Parquet bodies (a binary table)"
    )
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw")
    parser.add_argument(
        "--quick", action="store_true", help="a few seconds in all, to try the script"
    )
    parser.add_argument(
        "--blas-threads",
        type=int,
        help="BLAS/OpenMP threads, here and in the service (default: the libraries' own)",
    )
    parser.add_argument("--no-save", action="store_true", help="print only; write no CSV")
    args = parser.parse_args()
    if args.quick:
        args.train_rows = min(args.train_rows, 5_000)
        args.requests, args.cell_seconds, args.mixed_requests = 600, 0.3, 200
        for size in DISTINCT:
            DISTINCT[size] = max(1, DISTINCT[size] // 4)
    encodings = ["json"] + ["csv"] * args.csv + ["parquet"] * args.parquet
    min_seconds = 0.05 if args.quick else 0.5
    cores = os.cpu_count()
    load_before = os.getloadavg()[0]
    if args.blas_threads is not None:
        from threadpoolctl import threadpool_limits

        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.blas_threads)  # the service inherits them
        threadpool_limits(args.blas_threads)

    from anomalia.serve import ServedModel

    tmp_dir = tempfile.TemporaryDirectory(prefix="anomalia-serve-bench-")
    tmp = Path(tmp_dir.name)
    t0 = time.perf_counter()
    model_path = fit_model(args.detector, transactions(args.train_rows, seed=0), tmp)
    fit_s = time.perf_counter() - t0
    model = ServedModel.load(model_path)
    det, name, threshold = model.detector, model.name, float(model.detector.threshold_)

    pool = transactions(max(BATCHES[-1] * DISTINCT[BATCHES[-1]], 40_000), seed=1)
    batches: dict[int, list[Batch]] = {}
    for size in BATCHES:
        batches[size] = []
        for i in range(DISTINCT[size]):
            frame = pool.iloc[i * size : (i + 1) * size].reset_index(drop=True)
            bodies = {"json": json_body(frame), "csv": csv_body(frame)}
            if args.parquet:
                bodies["parquet"] = parquet_body(frame)
            X = model.read(bodies["json"], ".json").X  # exactly what the service scores
            s = det.anomaly_score(X)
            batches[size].append(
                Batch(size, frame, X, s.tolist(), (s > threshold).tolist(), bodies)
            )
    everything = [b for size in BATCHES for b in batches[size]]
    from threadpoolctl import threadpool_info

    pools = sorted({f"{i['internal_api']} {i['num_threads']}" for i in threadpool_info()})

    # in-process throughput on the same batches, and where a request's work goes
    inproc = {
        size: size / per_call(det.anomaly_score, [b.X for b in batches[size]], min_seconds)
        for size in BATCHES
    }
    stages = {size: stage_profile(model, batches[size], min_seconds) for size in BATCHES}

    caps = plan_caps(args.requests, len(encodings))
    log = tmp / "service.log"
    proc, port = start_service(model_path, log)
    cells: list[Cell] = []
    try:
        problems = asyncio.run(verify(everything, encodings, port, name, threshold))
        warm = Request(
            f"/v1/models/{name}/score", batches[1][0].bodies["json"], CONTENT["json"], port
        )
        for enc in encodings:
            for size in BATCHES:
                reqs = [
                    Request(f"/v1/models/{name}/score", b.bodies[enc], CONTENT[enc], port)
                    for b in batches[size]
                ]
                for n in CONNECTIONS:
                    cell = Cell(enc, size, n)
                    asyncio.run(
                        run_cell(cell, batches[size], reqs, warm, caps[size], args, proc.pid)
                    )
                    cells.append(cell)
                    print(
                        f"  {enc} {size:>6} rows x {n:>2} conns: {cell.requests:>5} requests "
                        f"in {cell.seconds:.1f} s, {cell.errors} errors",
                        file=sys.stderr,
                        flush=True,
                    )
        counts, mixed_rows, mixed_problems = asyncio.run(
            mixed_phase(everything, args, port, name, threshold)
        )
        import httpx

        healthy = httpx.get(f"http://{HOST}:{port}/health", timeout=10).status_code == 200
        prom = metrics(port)
    except BaseException:
        proc.kill()
        proc.wait()
        print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
        raise
    rc, stop_s = stop_service(proc)

    # what /metrics should say: every 200 answered here, each warm-up included
    sent_rows = (
        sum(b.rows for b in everything) * len(encodings)  # the verification pass
        + sum((c.requests - c.errors) * c.rows + c.connections for c in cells)  # + warm-ups
        + mixed_rows
    )
    counted_rows = prom.get(f'anomalia_rows_scored_total{{model="{name}"}}', -1)
    bad_sent = sum(v[0] for k, v in counts.items() if k != "good")
    counted_4xx = sum(
        v for k, v in prom.items() if k.startswith("anomalia_requests_total") and 'status="4' in k
    )

    # ---------------------------------------------------------------------------- report
    import anomalia

    print(
        f"\n`anomalia serve` {anomalia.__version__}, model `{args.detector}` fitted by "
        f"`anomalia fit` on {args.train_rows:,} rows x {len(COLUMNS)} features in {fit_s:.1f} s "
        f"({model_path.stat().st_size:,} bytes); service on {HOST}, 1 worker, default scoring "
        f"threads; client: one asyncio thread ({args.client}), bodies pre-encoded; "
        f"thread pools (threads): {', '.join(pools)}"
        + (" (set by --blas-threads, here and in the service)" if args.blas_threads else "")
        + f". Client and service share this machine's {cores} cores; load average (1 min) "
        f"{load_before:.2f} at the start, {os.getloadavg()[0]:.2f} at the end (above ~0.5 "
        "at the start: other processes were busy, and every figure is lower than on a quiet "
        "machine).\n"
    )
    print(
        "Where one JSON request's work goes: the service's own functions called in this "
        "process, CPU ms per request (process CPU time, all threads):\n"
    )
    keys = list(stages[BATCHES[0]])
    print("| stage | " + " | ".join(f"{s:,} rows" for s in BATCHES) + " |")
    print("|---|" + "---:|" * len(BATCHES))
    for k in keys:
        print(f"| {k} | " + " | ".join(f"{stages[s][k]:.3f}" for s in BATCHES) + " |")
    first = {c.rows: c for c in cells if c.connections == 1 and c.encoding == "json"}
    if all(first[s].server_cpu is not None for s in BATCHES):
        per_req = {s: 1000 * first[s].server_cpu / first[s].requests for s in BATCHES}
        print(
            "| service CPU per request (load below, 1 connection) | "
            + " | ".join(f"{per_req[s]:.3f}" for s in BATCHES)
            + " |"
        )
        print(
            "| service CPU minus the endpoint's work (HTTP, ASGI, middleware, log) | "
            + " | ".join(f"{per_req[s] - stages[s][ALL_WORK]:.3f}" for s in BATCHES)
            + " |"
        )
    print(
        "| in-process `det.anomaly_score` rows/s | "
        + " | ".join(f"{inproc[s]:,.0f}" for s in BATCHES)
        + " |\n"
    )

    print(
        f"Load: each cell at most {args.cell_seconds:g} s and "
        + ", ".join(f"{caps[s]:,}" for s in BATCHES)
        + " requests (batches of "
        + ", ".join(f"{s:,}" for s in BATCHES)
        + " rows); ratio = service rows/s / in-process `anomaly_score` rows/s on the same "
        f"batches; CPU = process CPU s / wall s (client / service; {100 * (cores or 1)} % = all "
        "cores).\n"
    )
    print(
        "| body | rows/request | connections | requests | requests/s | rows/s | p50 ms | "
        "p99 ms | errors | ratio | CPU client / service | service CPU ms/request | goals | pass |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    records = []
    for c in cells:
        ok = c.requests - c.errors
        rps, rows_s = ok / c.seconds, ok * c.rows / c.seconds
        ratio = rows_s / inproc[c.rows]
        p50, p99 = pct(c.latencies, 50), pct(c.latencies, 99)
        goals, passed = ["0 errors"], [c.errors == 0]
        if c.rows == 1_000:
            goals.append(f"ratio >= {GOAL_RATIO:.2f}")
            passed.append(ratio >= GOAL_RATIO)
        if c.rows == 1 and c.connections == 1:  # with more, p50 is mostly queueing
            goals.append(f"p50 < {GOAL_P50_MS:g} ms")
            passed.append(p50 < GOAL_P50_MS)
        srv = "n/a" if c.server_cpu is None else f"{100 * c.server_cpu / c.seconds:.0f} %"
        cpu = f"{100 * c.client_cpu / c.seconds:.0f} % / {srv}"
        per_req = "n/a" if c.server_cpu is None else f"{1000 * c.server_cpu / c.requests:.2f}"
        verdict = "pass" if all(passed) else "**FAIL**"
        print(
            f"| {c.encoding} | {c.rows:,} | {c.connections} | {c.requests:,} | {rps:,.0f} | "
            f"{rows_s:,.0f} | {p50:.2f} | {p99:.2f} | {c.errors} | {ratio:.3f} | {cpu} | "
            f"{per_req} | {', '.join(goals)} | {verdict} |"
        )
        records.append(
            {
                "phase": "load",
                "detector": args.detector,
                "client": args.client,
                "body": c.encoding,
                "rows_per_request": c.rows,
                "connections": c.connections,
                "requests": c.requests,
                "seconds": round(c.seconds, 3),
                "requests_per_s": round(rps, 1),
                "rows_per_s": round(rows_s, 1),
                "p50_ms": round(p50, 3),
                "p99_ms": round(p99, 3),
                "errors": c.errors,
                "inprocess_rows_per_s": round(inproc[c.rows], 1),
                "ratio": round(ratio, 4),
                "client_cpu_s": round(c.client_cpu, 3),
                "service_cpu_s": None if c.server_cpu is None else round(c.server_cpu, 3),
                "service_cpu_ms_per_request": None
                if c.server_cpu is None or not c.requests
                else round(1000 * c.server_cpu / c.requests, 3),
                "pass": all(passed),
            }
        )
        if c.first_error:
            print(f"|  | first error: {c.first_error[:150]} |" + " |" * 12)

    print(
        f"\nMixed load: {args.mixed_requests:,} requests over 8 connections, 10 % bad "
        "(each kind in turn), good ones batches of 1 to 1,000 rows checked value by value:\n"
    )
    print("| request | expected | sent | as expected | other |")
    print("|---|---|---:|---:|---:|")
    for kind, (sent, right, wrong) in counts.items():
        want = "200 + exact scores" if kind == "good" else f"{BAD_KINDS[kind]} + detail"
        print(f"| {kind} | {want} | {sent} | {right} | {wrong} |")
        records.append(
            {
                "phase": "mixed",
                "detector": args.detector,
                "kind": kind,
                "expected": want,
                "sent": sent,
                "as_expected": right,
                "other": wrong,
                "pass": wrong == 0,
            }
        )
    for p in mixed_problems:
        print(f"  problem: {p}")

    checks = {
        "every distinct batch's first response equals the in-process scores": not problems,
        "/health after the mixed load": healthy,
        f"/metrics rows scored = rows answered here ({counted_rows:,.0f} vs {sent_rows:,})": (
            counted_rows == sent_rows
        ),
        f"/metrics 4xx count = bad requests sent ({counted_4xx:,.0f} vs {bad_sent:,})": (
            counted_4xx == bad_sent
        ),
        f"SIGTERM: exit code {rc} after {stop_s:.2f} s": rc == 0,
    }
    print()
    for what, ok in checks.items():
        print(f"* {'pass' if ok else '**FAIL**'}: {what}")
        records.append({"phase": "check", "detector": args.detector, "kind": what, "pass": ok})
    for p in problems[:5]:
        print(f"  problem: {p}")
    load_ok = all(r["pass"] for r in records)
    print(f"\nAll goals met: {'yes' if load_ok else 'no'}")

    if not args.no_save and not args.quick:
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"serve_{args.detector}.csv"
        fields = list(dict.fromkeys(k for r in records for k in r))
        with out.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(records)
        print(f"wrote {out.relative_to(ROOT)}")
    tmp_dir.cleanup()


if __name__ == "__main__":
    main()
