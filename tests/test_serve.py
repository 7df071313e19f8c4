"""The scoring service end to end: a real uvicorn process on 127.0.0.1, and the app in-process.

Scores must be the very floats ``anomalia score`` writes; every bad request gets a 4xx naming
the problem while the service keeps serving; tokens, signatures, TLS, metrics and a SIGTERM
with a request in flight behave as the README says.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import anomalia  # noqa: E402
from anomalia.cli.app import app as cli  # noqa: E402
from anomalia.serve import ServedModel, Settings, create_app  # noqa: E402

TOKEN = "a-bearer-token-of-some-length"


def _cli(*args) -> None:
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exit_code == 0, res.output


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """train/test CSVs (with a text column one-hot encoded and an id), models fitted by the CLI."""
    root = tmp_path_factory.mktemp("serve")
    rng = np.random.default_rng(0)

    def table(n, start):
        df = pd.DataFrame(rng.normal(size=(n, 3)), columns=["amount", "age", "hour"])
        df.insert(0, "txn", np.arange(start, start + n))
        df["channel"] = rng.choice(["web", "shop", "phone"], size=n)
        df["fraud"] = (rng.uniform(size=n) < 0.1).astype(int)
        df.loc[df.fraud == 1, ["amount", "age"]] += 5
        return df

    out = {"train": root / "train.csv", "test": root / "test.csv"}
    table(300, 0).to_csv(out["train"], index=False)
    table(120, 1000).to_csv(out["test"], index=False)
    common = ("--label-column", "fraud", "--id-column", "txn", "--categorical", "onehot")
    for name, extra in {"gaussian": (), "ae": ("-p", "epochs=3", "-p", "hidden=8")}.items():
        out[name] = root / f"{name}.anomalia"
        _cli("fit", out["train"], "-d", name, *common, "--out", out[name], *extra)
    out["key"] = root / "model.key"
    out["key"].write_text("a-signing-key-for-the-tests-0123\n")
    out["signed"] = root / "signed.anomalia"
    _cli(
        "fit",
        out["train"],
        "-d",
        "gaussian",
        *common,
        "--out",
        out["signed"],
        "--sign-key-file",
        out["key"],
    )
    out["token"] = root / "token"
    out["token"].write_text(TOKEN + "\n")
    _cli("score", out["gaussian"], out["test"], "--out", root / "scores.csv")
    out["scores"] = root / "scores.csv"
    return out


# -- in-process: the app through FastAPI's test client ---------------------------------------
@pytest.fixture(scope="module")
def client(files) -> TestClient:
    models = [ServedModel.load(files["gaussian"]), ServedModel.load(files["ae"])]
    return TestClient(create_app(models, Settings(max_body=200_000)))


def test_health_and_model_cards(client, files):
    assert client.get("/health").json() == {"status": "ok", "models": ["ae", "gaussian"]}
    card = client.get("/v1/models/gaussian").json()
    assert card["detector"] == "gaussian" and card["id_column"] == "txn"
    assert card["feature_names"][:3] == ["amount", "age", "hour"]
    assert card["train_rows"] > 0 and card["calibration"]["strategy"] == "default"
    import hashlib

    assert card["sha256"] == hashlib.sha256(files["gaussian"].read_bytes()).hexdigest()
    assert "path" not in json.dumps(card) or str(files["gaussian"]) not in json.dumps(card)
    assert [c["name"] for c in client.get("/v1/models").json()] == ["gaussian", "ae"]


def test_csv_json_and_parquet_bodies_give_the_cli_scores(client, files):
    expected = pd.read_csv(files["scores"])
    raw = pd.read_csv(files["test"])
    csv = client.post(
        "/v1/models/gaussian/score",
        content=files["test"].read_bytes(),
        headers={"content-type": "text/csv"},
    ).json()
    rows = client.post(
        "/v1/models/gaussian/score", json={"rows": raw.drop(columns="fraud").to_dict("records")}
    ).json()
    cols = client.post(
        "/v1/models/gaussian/score",
        json={"columns": list(raw.columns), "data": raw.values.tolist()},
    ).json()
    buf = io.BytesIO()
    raw.to_parquet(buf, index=False)
    parquet = client.post(
        "/v1/models/gaussian/score",
        content=buf.getvalue(),
        headers={"content-type": "application/vnd.apache.parquet"},
    ).json()
    for out in (csv, rows, cols, parquet):
        assert out["anomaly_score"] == expected.anomaly_score.tolist()  # the very same floats
        assert out["is_anomaly"] == expected.is_anomaly.tolist()
        assert out["ids"] == {"column": "txn", "values": raw.txn.tolist()}
        assert out["model"] == "gaussian"


def test_explain_adds_the_top_features(client, files):
    out = client.post(
        "/v1/models/ae/score?explain=2",
        content=files["test"].read_bytes(),
        headers={"content-type": "text/csv"},
    ).json()
    assert len(out["explanation"]) == len(out["anomaly_score"])
    assert all(len(e) == 2 and {"feature", "error"} == set(e[0]) for e in out["explanation"])
    res = client.post(
        "/v1/models/gaussian/score?explain=2",
        content=files["test"].read_bytes(),
        headers={"content-type": "text/csv"},
    )
    assert res.status_code == 422 and "cannot explain" in res.json()["detail"]


ROW = {"txn": 1, "amount": 0.1, "age": 0.2, "hour": 0.3, "channel": "web"}


@pytest.mark.parametrize(
    ("body", "kind", "status", "words"),
    [
        ({"rows": [{k: v for k, v in ROW.items() if k != "age"}]}, "json", 422, "missing 'age'"),
        ({"rows": [{**ROW, "extra": 1}]}, "json", 422, "extra"),
        ({"rows": [{**ROW, "amount": None}]}, "json", 422, "amount"),
        ({"rows": [{**ROW, "amount": "abc"}]}, "json", 422, "amount"),
        ({"rows": [ROW, {"txn": 2}]}, "json", 422, "row 2"),
        ({"columns": ["txn"], "data": [[1, 2]]}, "json", 422, "row 1 has 2 values"),
        ({"rows": [{**ROW, "amount": [1]}]}, "json", 422, "nested"),
        ({"table": []}, "json", 422, '"rows"'),
        (b'{"rows": [', "json", 400, "not valid JSON"),
        (b"", "json", 400, "empty"),
        (b"a,b\n1,2\n", "text/plain", 415, "content type"),
        (b"txn,amount\n1,2\n", "text/csv", 422, "missing"),
        (b"\x00\x01garbage", "application/vnd.apache.parquet", 422, "Parquet"),
        (b"x" * 300_000, "text/csv", 413, "larger than"),
    ],
)
def test_bad_requests_get_a_4xx_and_the_service_keeps_serving(client, body, kind, status, words):
    headers = {"content-type": "application/json" if kind == "json" else kind}
    content = json.dumps(body).encode() if isinstance(body, dict) else body
    res = client.post("/v1/models/gaussian/score", content=content, headers=headers)
    assert res.status_code == status, res.text
    assert words in res.json()["detail"]
    assert len(res.json()["detail"].splitlines()) == 1
    assert client.get("/health").status_code == 200


def test_unknown_model_and_bad_explain(client, files):
    res = client.post("/v1/models/nope/score", json={"rows": [ROW]})
    assert res.status_code == 404 and "no model named 'nope'" in res.json()["detail"]
    assert (
        client.post("/v1/models/gaussian/score?explain=-1", json={"rows": [ROW]}).status_code == 422
    )
    assert (
        client.post("/v1/models/gaussian/score?explain=x", json={"rows": [ROW]}).status_code == 422
    )


def test_dev_scores_and_a_calibrated_copy(client, files, tmp_path):
    body = files["test"].read_bytes()
    h = {"content-type": "text/csv"}
    dev = client.post("/v1/models/gaussian/dev?strategy=fpr&target=0.05", content=body, headers=h)
    out = dev.json()
    det = anomalia.load(files["gaussian"])
    raw = pd.read_csv(files["test"])
    assert out["label"] == raw.fraud.tolist()
    from anomalia.thresholds import choose_threshold

    scores = np.array(out["anomaly_score"])
    assert out["chosen"] == choose_threshold(scores, raw.fraud.to_numpy(), "fpr", target=0.05)
    assert set(out["thresholds"]) == {"f1", "fpr", "recall", "cost"}
    res = client.post(
        "/v1/models/gaussian/calibrated?strategy=cost&cost_miss=20&cost_false_alarm=1",
        content=body,
        headers=h,
    )
    assert res.status_code == 200
    (tmp_path / "c.anomalia").write_bytes(res.content)
    # the same file `anomalia calibrate` writes
    cli_copy = tmp_path / "cli.anomalia"
    _cli(
        "calibrate",
        files["gaussian"],
        files["test"],
        "--strategy",
        "cost",
        "--cost-miss",
        20,
        "--cost-false-alarm",
        1,
        "--out",
        cli_copy,
    )
    mine, theirs = anomalia.load(tmp_path / "c.anomalia"), anomalia.load(cli_copy)
    assert mine.threshold_ == theirs.threshold_ and mine.calibration_ == theirs.calibration_
    assert anomalia.load(files["gaussian"]).threshold_ == det.threshold_  # the server's file
    manual = client.post(
        "/v1/models/gaussian/calibrated?strategy=manual&threshold=3.5", content=body, headers=h
    )
    (tmp_path / "m.anomalia").write_bytes(manual.content)
    m = anomalia.load(tmp_path / "m.anomalia")
    assert m.threshold_ == 3.5 and m.calibration_["strategy"] == "manual"
    bad = client.post(
        "/v1/models/gaussian/calibrated?strategy=f1&target=0.3", content=body, headers=h
    )
    assert bad.status_code == 422 and "target" in bad.json()["detail"]


def test_metrics_parse(client):
    from prometheus_client.parser import text_string_to_metric_families

    client.post("/v1/models/gaussian/score", json={"rows": [ROW]})
    text = client.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {
        "anomalia_requests",
        "anomalia_request_seconds",
        "anomalia_rows_scored",
        "anomalia_rows_flagged",
        "anomalia_model_load_seconds",
    } <= set(families)
    scored = {s.labels["model"]: s.value for s in families["anomalia_rows_scored"].samples}
    assert scored["gaussian"] >= 1


def test_a_body_over_the_limit_is_logged_and_counted_as_413(files, caplog):
    """Declared or streamed (chunked), a body over --max-body gets 413, and the access log
    and /metrics record that 413, not a 500."""
    import logging

    c = TestClient(create_app([ServedModel.load(files["gaussian"])], Settings(max_body=1000)))

    def chunks():
        for _ in range(30):
            yield b"a,b,c\n" * 20

    with caplog.at_level(logging.INFO, logger="anomalia.access"):
        streamed = c.post(
            "/v1/models/gaussian/score", content=chunks(), headers={"content-type": "text/csv"}
        )
        declared = c.post(
            "/v1/models/gaussian/score", content=b"x" * 5000, headers={"content-type": "text/csv"}
        )
    assert streamed.status_code == declared.status_code == 413
    statuses = [json.loads(r.getMessage())["status"] for r in caplog.records]
    assert statuses == [413, 413]
    text = c.get("/metrics").text
    assert 'status="413"' in text and 'status="500"' not in text


def test_a_token_guards_everything_but_health(files):
    app = create_app([ServedModel.load(files["gaussian"])], Settings(token=TOKEN))
    c = TestClient(app)
    assert c.get("/health").status_code == 200
    assert c.get("/").status_code == 200  # the page shell holds no data
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}):
        assert c.get("/v1/models", headers=headers).status_code == 401
        assert c.get("/metrics", headers=headers).status_code == 401
    ok = c.get("/v1/models", headers={"authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200


# -- a real server: uvicorn in a subprocess ---------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(*args, scheme="http", env=None) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    cmd = [
        sys.executable,
        "-c",
        "from anomalia.cli.app import main; main()",
        "serve",
        *map(str, args),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    url = f"{scheme}://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return proc, url
        try:
            if httpx.get(f"{url}/health", verify=False, timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("the service did not start")


def _stop(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err


@pytest.mark.slow
def test_real_server_scores_and_drains_a_request_in_flight_on_sigterm(files, tmp_path):
    # a large request (300,000 rows for knn) is in flight when SIGTERM arrives
    rng = np.random.default_rng(1)
    big = pd.DataFrame(rng.normal(size=(300_000, 3)), columns=["a", "b", "c"])
    big.to_csv(tmp_path / "big.csv", index=False)
    big[:5000].to_csv(tmp_path / "small.csv", index=False)
    _cli("fit", tmp_path / "small.csv", "-d", "knn", "--out", tmp_path / "knn.anomalia")
    proc, url = _start(tmp_path / "knn.anomalia", files["gaussian"])
    result = {}

    def send():
        result["res"] = httpx.post(
            f"{url}/v1/models/knn/score",
            content=(tmp_path / "big.csv").read_bytes(),
            headers={"content-type": "text/csv"},
            timeout=60,
        )

    t = threading.Thread(target=send)
    t.start()
    time.sleep(0.5)
    health = httpx.get(f"{url}/health", timeout=5)  # answered while the big one is scored
    assert health.status_code == 200
    assert t.is_alive(), "the big request should still be in flight"
    code, err = _stop(proc)
    t.join(60)
    assert result["res"].status_code == 200
    assert len(result["res"].json()["anomaly_score"]) == 300_000
    assert code == 0, err
    lines = [json.loads(x) for x in err.splitlines() if x.startswith("{")]
    assert any(x["endpoint"] == "/v1/models/{name}/score" and x["status"] == 200 for x in lines)
    assert "amount" not in err  # the access log holds no row contents


@pytest.mark.slow
def test_signed_service_refuses_an_unsigned_model(files):
    proc, _ = _start(files["gaussian"], "--require-signature", "--sign-key-file", files["key"])
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "not signed" in err and "Traceback" not in err
    proc, url = _start(files["signed"], "--require-signature", "--sign-key-file", files["key"])
    try:
        assert httpx.get(f"{url}/v1/models/signed").json()["detector"] == "gaussian"
    finally:
        assert _stop(proc)[0] == 0


@pytest.mark.slow
def test_token_and_tls(files, tmp_path):
    cryptography = pytest.importorskip("cryptography")
    del cryptography
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    proc, url = _start(
        files["gaussian"],
        "--token-file",
        files["token"],
        "--ssl-certfile",
        tmp_path / "cert.pem",
        "--ssl-keyfile",
        tmp_path / "key.pem",
        scheme="https",
    )
    try:
        assert url.startswith("https://")
        assert httpx.get(f"{url}/v1/models", verify=False).status_code == 401
        auth = {"authorization": f"Bearer {TOKEN}"}
        res = httpx.post(
            f"{url}/v1/models/gaussian/score", json={"rows": [ROW]}, headers=auth, verify=False
        )
        assert res.status_code == 200 and len(res.json()["anomaly_score"]) == 1
    finally:
        code, err = _stop(proc)
    assert code == 0 and TOKEN not in err  # the token is never logged


def test_serve_refuses_bad_options_in_one_line(files):
    res = CliRunner().invoke(cli, ["serve", str(files["gaussian"]), "--workers", "0"])
    assert res.exit_code == 2 and "--workers" in res.output
    res = CliRunner().invoke(cli, ["serve", "missing.anomalia"])
    assert res.exit_code == 2 and "not found" in res.output
    res = CliRunner().invoke(cli, ["serve", str(files["gaussian"]), "--ssl-certfile", "x.pem"])
    assert res.exit_code == 2 and "both" in res.output


def test_openapi_docs_are_served_without_a_cdn(client):
    html = client.get("/docs").text
    assert "/docs/assets/swagger-ui-bundle.js" in html and "cdn" not in html.lower()
    assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/v1/models", "/v1/models/{name}/score", "/metrics"} <= set(paths)


def test_the_plain_numeric_fast_path_gives_the_same_floats(tmp_path):
    rng = np.random.default_rng(3)
    df = pd.DataFrame(rng.normal(size=(200, 4)), columns=["a", "b", "c", "d"])
    df.to_csv(tmp_path / "t.csv", index=False)
    _cli("fit", tmp_path / "t.csv", "-d", "gaussian", "--out", tmp_path / "p.anomalia")
    m = ServedModel.load(tmp_path / "p.anomalia")
    c = TestClient(create_app([m]))
    body = {"columns": list(df.columns), "data": df.values.tolist()}
    assert m._plain_rows(body) is not None  # the fast path is taken
    fast = c.post("/v1/models/p/score", json=body).json()["anomaly_score"]
    slow = c.post("/v1/models/p/score", json={"rows": df.to_dict("records")}).json()
    csv = c.post(
        "/v1/models/p/score",
        content=(tmp_path / "t.csv").read_bytes(),
        headers={"content-type": "text/csv"},
    ).json()
    assert fast == slow["anomaly_score"] == csv["anomaly_score"]
    assert fast == m.detector.anomaly_score(df).tolist()
    bad = {"columns": list(df.columns), "data": [[1.0, None, 2.0, 3.0]]}
    res = c.post("/v1/models/p/score", json=bad)  # not finite: the full path names it
    assert res.status_code == 422 and "'b'" in res.json()["detail"]
