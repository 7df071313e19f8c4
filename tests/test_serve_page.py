"""The threshold page in a real browser: Playwright drives Debian's Chromium against a real
``anomalia serve`` process, and the numbers the page shows are checked against
:mod:`anomalia.metrics` and :mod:`anomalia.thresholds` on the model's own scores.

``ANOMALIA_SCREENSHOT=path.png`` also saves a 1280x900 screenshot of the page after upload
(benchmarks/results/serve_page.png is made that way).
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import anomalia
from anomalia.cli.app import app
from anomalia.metrics import evaluate
from anomalia.thresholds import choose_threshold

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn", reason="the serve extra is not installed")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "page-test-token-0123456789"
FEATURES = ["amount", "hour", "distance", "velocity"]
COST_MISS, COST_FALSE_ALARM = 50.0, 1.0  # the page's default costs
IDS = ["tp", "fp", "tn", "fn", "precision", "recall", "f1", "far", "cost"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}"),
]


def _table(rng: np.random.Generator, n: int, n_anomalies: int, first_id: int) -> pd.DataFrame:
    X = rng.normal(size=(n, len(FEATURES)))
    X[:n_anomalies] += rng.normal(2.5, 1.0, size=(n_anomalies, len(FEATURES)))
    df = pd.DataFrame(X, columns=FEATURES)
    df.insert(0, "txn", np.arange(first_id, first_id + n))
    df["fraud"] = (np.arange(n) < n_anomalies).astype(int)
    return df.sample(frac=1, random_state=0)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A gaussian model fitted by the CLI, its labelled dev CSV, the dev scores and labels."""
    d = tmp_path_factory.mktemp("page")
    rng = np.random.default_rng(0)
    _table(rng, 400, 20, 0).to_csv(d / "train.csv", index=False)
    _table(rng, 300, 30, 1000).to_csv(d / "dev.csv", index=False)
    model = d / "fraud.anomalia"
    args = ["fit", d / "train.csv", "-d", "gaussian", "--label-column", "fraud"]
    args += ["--id-column", "txn", "--out", model]
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    (d / "token").write_text(TOKEN + "\n")
    dev = pd.read_csv(d / "dev.csv")  # read as the service reads it
    scores = anomalia.load(model).anomaly_score(dev[FEATURES])
    return {"dir": d, "model": model, "dev": d / "dev.csv", "scores": scores, "y": dev["fraud"]}


def _start(files, *extra):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = files["dir"] / f"serve-{port}.log"
    code = "from anomalia.cli.app import main; main()"
    cmd = [sys.executable, "-c", code, "serve", str(files["model"]), *extra]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--threads", "1"]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}", log


def _wait(proc, url, log, seconds=30):
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the service did not start:\n{log.read_text()}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def servers(files):
    """Two services of the model, started together: an open one and one needing TOKEN."""
    started = {
        "open": _start(files),
        "token": _start(files, "--token-file", str(files["dir"] / "token")),
    }
    try:
        for proc, url, log in started.values():
            _wait(proc, url, log)
        yield {k: url for k, (_, url, _) in started.items()}
    finally:
        for proc, _, _ in started.values():
            proc.send_signal(signal.SIGTERM)
        for proc, _, _ in started.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert not errors, f"the page raised: {errors}"


def _upload(page, files):
    page.set_input_files("#file", str(files["dev"]))
    page.wait_for_selector("#results", state="visible")
    assert page.input_value("#label-column") == "fraud"  # the model's saved label column


def _shown(page) -> dict[str, str]:
    return page.evaluate(
        "ids => Object.fromEntries(ids.map(i => [i, document.getElementById(i).textContent]))",
        IDS,
    )


def _check_numbers(page, files, t, cost_miss=COST_MISS, cost_false_alarm=COST_FALSE_ALARM):
    """The panel shows what anomalia.metrics computes at threshold t (anomaly iff score > t)."""
    shown = _shown(page)
    m = evaluate(files["y"], files["scores"], t)
    for k in ("tp", "fp", "tn", "fn"):
        assert int(shown[k]) == m[k], (k, t, shown)
    # rates have 4 decimals: within half a unit of the last digit
    for k, name in [("precision",) * 2, ("recall",) * 2, ("f1",) * 2, ("far", "false_alarm_rate")]:
        assert abs(float(shown[k]) - m[name]) <= 5e-5 + 1e-12, (k, t, shown)
        assert len(shown[k].split(".")[1]) == 4
    cost = cost_miss * m["fn"] + cost_false_alarm * m["fp"]
    assert float(shown["cost"]) == pytest.approx(cost, rel=1e-5), (t, shown)


def test_page_numbers_strategies_and_download(page, servers, files):
    scores, y = files["scores"], files["y"]
    page.goto(servers["open"])
    page.wait_for_selector("#model option[value=fraud]", state="attached")
    page.select_option("#model", "fraud")
    assert page.text_content("#card-detector") == "gaussian"
    sha256 = hashlib.sha256(files["model"].read_bytes()).hexdigest()
    assert page.text_content("#card-sha256") == sha256
    _upload(page, files)
    # opens at the model's saved threshold
    saved = anomalia.load(files["model"]).threshold_
    assert float(page.input_value("#threshold")) == saved
    _check_numbers(page, files, saved)

    ordered = np.sort(scores)
    for t in [ordered[0] - 1, ordered[10], float(np.median(scores)), ordered[-5], ordered[-1]]:
        page.fill("#threshold", repr(float(t)))  # a score itself: that row is not flagged
        _check_numbers(page, files, float(t))
    # the slider, moved by hand, drives the same numbers and the number field
    t = float(np.quantile(scores, 0.8))
    page.eval_on_selector(
        "#slider", "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }", repr(t)
    )
    assert float(page.input_value("#threshold")) == pytest.approx(t, rel=1e-12)
    _check_numbers(page, files, t)
    page.focus("#slider")  # the keyboard moves it too
    page.keyboard.press("ArrowRight")
    assert float(page.input_value("#threshold")) > t
    page.fill("#threshold", repr(t))
    # the cost inputs change the total cost live
    page.fill("#cost-miss", "7")
    page.fill("#cost-false-alarm", "0.5")
    _check_numbers(page, files, t, 7, 0.5)

    with page.expect_download() as download:
        page.click("#download")
    manual = anomalia.load(download.value.path())
    assert download.value.suggested_filename == "fraud-calibrated.anomalia"
    assert manual.threshold_ == pytest.approx(t, rel=1e-12)
    assert manual.calibration_ == {"strategy": "manual", "dev_rows": len(y)}

    # strategies ask the server and move the slider to its pick
    page.click("#strategy-f1")
    best = choose_threshold(scores, y, "f1")
    page.wait_for_function(f"Number(document.getElementById('threshold').value) === {best!r}")
    assert float(page.input_value("#slider")) == pytest.approx(best, rel=1e-12)
    _check_numbers(page, files, best, 7, 0.5)
    if os.environ.get("ANOMALIA_SCREENSHOT"):
        page.fill("#cost-miss", "50")
        page.fill("#cost-false-alarm", "1")
        page.evaluate("document.activeElement.blur(); window.scrollTo(0, 0)")
        page.mouse.move(0, 0)
        page.screenshot(path=os.environ["ANOMALIA_SCREENSHOT"], full_page=True)
    with page.expect_download() as download:
        page.click("#download")
    calibrated = anomalia.load(download.value.path())
    assert calibrated.threshold_ == best
    assert calibrated.calibration_["strategy"] == "f1" and "dev" in calibrated.calibration_

    page.fill("#fpr-target", "0.05")
    page.click("#strategy-fpr")
    fpr = choose_threshold(scores, y, "fpr", target=0.05)
    page.wait_for_function(f"Number(document.getElementById('threshold').value) === {fpr!r}")
    assert float(_shown(page)["far"]) <= 0.05

    # a bad request: the server's one-line reason in the alert box
    page.select_option("#label-column", "amount")
    page.wait_for_selector("#message", state="visible")
    assert "422" in page.text_content("#message")


def test_page_with_a_token(page, servers, files):
    page.goto(servers["token"])  # the page and its assets need no token
    page.wait_for_selector("#message", state="visible")
    assert "API token" in page.text_content("#message")
    assert page.eval_on_selector_all("#model option", "o => o.length") == 0
    page.set_input_files("#file", str(files["dev"]))  # no model to score with: still refused
    assert page.is_visible("#message") and page.is_hidden("#results")

    page.fill("#token", TOKEN)
    page.dispatch_event("#token", "change")
    page.wait_for_selector("#results", state="visible")  # the chosen file is scored now
    assert page.is_hidden("#message")
    assert page.evaluate("sessionStorage.getItem('anomalia-token')") == TOKEN
    page.reload()  # the token stays for the tab's session
    page.wait_for_selector("#model option[value=fraud]", state="attached")
    _upload(page, files)
    _check_numbers(page, files, anomalia.load(files["model"]).threshold_)

    page.fill("#token", "wrong-token-0123456789")
    page.dispatch_event("#token", "change")
    page.wait_for_function("!document.getElementById('message').hidden")
    assert "API token" in page.text_content("#message")
