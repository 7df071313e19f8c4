"""Hostile model files: every one is refused with ModelFileError or still scores; none crashes,
hangs, prints a traceback or eats memory.

The corpus is made from freshly saved models of every detector (an ensemble of four and
``default`` included): truncations, bit flips in every member, out-of-range values in every
stored integer array with the digests recomputed (as an attacker would), type swaps in every
manifest field, extra, missing, duplicated and traversal-named members, and decompression
bombs. A worker subprocess loads and scores each file under a time limit per file
(tests/_hostile_worker.py), so a crash or a hang fails the test and names the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from anomalia import make_detector

from .conftest import FAST_PARAMS, HAS_PYOD

WORKER = Path(__file__).with_name("_hostile_worker.py")
PER_FILE_SECONDS = 30
MEMORY_CEILING_MIB = 3000

# detector -> extra parameters; `confidence` needs labels, images go to conv models
MODELS: dict[str, dict[str, Any]] = {
    "iforest": {},
    "knn": {},
    "gaussian": {"support_fraction": 0.5},
    "ocsvm": {},
    "ae": {},
    "vae": {},
    "vqvae": {},
    "default": {},
    "nested": {},  # an ensemble of four members (ensembles cannot nest deeper)
    "confidence": {},
    "conv-ae": {},
    "lof": {},
    **({"pyod": {}} if HAS_PYOD else {}),  # ECOD, through skops and its allow-list
}
SWAPS: list[Any] = ["abc", -5, 1e9, None, [1], {}, True]


def _fit(name: str) -> tuple[Any, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    if name == "nested":
        det = make_detector(
            "ensemble",
            detectors=(
                "gaussian",
                "knn",
                ("iforest", {"n_estimators": 10}),
                ("ae", FAST_PARAMS["ae"]),
            ),
            random_state=0,
        )
        return det.fit(X), X[:5]
    if name == "conv-ae":
        images = rng.uniform(size=(40, 8, 8))
        return make_detector(name, **FAST_PARAMS[name]).fit(images), images[:3]
    params = {**FAST_PARAMS.get(name, {}), **MODELS[name]}
    if name == "default":
        params = {"random_state": 0}
    det = make_detector(name, **params)
    if name == "confidence":
        return det.fit(X, (X[:, 0] > 0).astype(int)), X[:5]
    return det.fit(X), X[:5]


def _members(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    with zipfile.ZipFile(path) as zf:
        blobs = {n: zf.read(n) for n in zf.namelist()}
    return json.loads(blobs.pop("manifest.json")), blobs


def _write(path: Path, manifest: Any, blobs: dict[str, bytes], *, rehash: bool = True) -> Path:
    """A container of ``blobs``; with ``rehash`` the manifest's sizes and digests match them."""
    if rehash and isinstance(manifest, dict):
        listed = {n: b for n, b in blobs.items() if n != "signature.hmac"}
        manifest = {
            **manifest,
            "sizes": {n: len(b) for n, b in listed.items()},
            "sha256": {n: hashlib.sha256(b).hexdigest() for n, b in listed.items()},
        }
    raw = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", raw)
        for name, blob in blobs.items():
            zf.writestr(name, blob)
    return path


def _tampered(path, out, name, fn):
    """``path`` with array ``name`` replaced by ``fn(array)``, sizes and digests rewritten
    (as an attacker would), so the loader's own checks must refuse it."""
    from safetensors.numpy import load as st_load
    from safetensors.numpy import save as st_save

    manifest, blobs = _members(path)
    arrays = st_load(blobs["arrays.safetensors"])
    arrays[name] = np.ascontiguousarray(fn(arrays[name]))
    blobs["arrays.safetensors"] = st_save(arrays)
    return _write(out, manifest, blobs)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path in the manifest (lists: their first item), the sha256/sizes maps once."""
    out = [prefix] if prefix else []
    if isinstance(value, dict) and prefix[-1:] not in (("sha256",), ("sizes",)):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list) and value:
        out += _paths(value[0], (*prefix, 0))
    return out


def _replaced(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replaced(value[path[0]], path[1:], new)
    return copy


def _int_mutations(arr: np.ndarray) -> list[np.ndarray]:
    info = np.iinfo(arr.dtype)
    values = [v for v in (2**40, -5, info.max, info.min, 10**9) if info.min <= v <= info.max]
    out = []
    for v in values:
        first = arr.copy()
        first.flat[0] = v
        out += [first, np.full_like(arr, v)]
    if arr.size > 1:
        out.append(arr[::-1].copy())  # every index points elsewhere, consistently typed
    return out


def _corpus(base: Path, out: Path) -> list[tuple[str, Path]]:
    """(description, file) for every mutation of the model file ``base``."""
    manifest, blobs = _members(base)
    raw = base.read_bytes()
    cases: list[tuple[str, Path]] = []
    n = 0

    def add(what: str, write: Any) -> None:
        nonlocal n
        n += 1
        path = out / f"{base.stem}-{n:04d}.anomalia"
        write(path)
        cases.append((what, path))

    for frac in (0.0, 0.1, 0.5, 0.9, 0.999):
        add(f"truncated at {frac}", lambda p, f=frac: p.write_bytes(raw[: int(len(raw) * f)]))
    rng = np.random.default_rng(0)
    for i in rng.choice(len(raw), size=12, replace=False):
        flipped = bytearray(raw)
        flipped[i] ^= 0xFF
        add(f"byte {i} flipped", lambda p, b=bytes(flipped): p.write_bytes(b))
    for name, blob in blobs.items():  # a flip inside each member, the zip's CRC recomputed
        bad = bytearray(blob)
        bad[len(bad) // 2] ^= 0x01
        add(
            f"{name}: bit flipped",
            lambda p, nm=name, b=bytes(bad): _write(p, manifest, {**blobs, nm: b}, rehash=False),
        )
    for name, blob in blobs.items():  # out-of-range integers, digests recomputed
        if not name.endswith("arrays.safetensors"):
            continue
        arrays = st_load(blob)
        for key, arr in arrays.items():
            if arr.size == 0:
                continue
            if arr.dtype.kind in "iu":
                mutations = _int_mutations(arr)
            elif arr.dtype.kind == "f":
                mutations = [np.full_like(arr, np.nan), np.full_like(arr, np.finfo(arr.dtype).max)]
            else:
                continue
            for j, m in enumerate(mutations):
                forged = st_save({**arrays, key: m})
                add(
                    f"{name}:{key} mutation {j}",
                    lambda p, nm=name, b=forged: _write(p, manifest, {**blobs, nm: b}),
                )
            flat = arr.reshape(-1)  # 0-d too (a batch-norm counter)
            reshaped = st_save({**arrays, key: flat[:-1] if arr.size > 1 else flat[:0]})
            add(
                f"{name}:{key} shortened",
                lambda p, nm=name, b=reshaped: _write(p, manifest, {**blobs, nm: b}),
            )
    for path in _paths(manifest):  # type swaps in every manifest field
        for new in SWAPS:
            add(
                f"manifest {path} = {new!r}",
                lambda p, pa=path, v=new: _write(
                    p,
                    _replaced(manifest, pa, v),
                    blobs,
                    rehash=pa[:1] not in (("sha256",), ("sizes",)),
                ),
            )
    add("manifest = [1]", lambda p: _write(p, [1], blobs, rehash=False))
    add("manifest deeply nested", lambda p: _write(p, b"[" * 100_000 + b"]" * 100_000, blobs))
    add("manifest not JSON", lambda p: _write(p, b"\xff\xfe{", blobs))
    add(
        "manifest NaN threshold",
        lambda p: _write(
            p,
            json.dumps(manifest).replace('"threshold_": ', '"threshold_": NaN, "x_": ').encode(),
            blobs,
            rehash=False,
        ),
    )
    add(
        "attribute __dict__",
        lambda p: _write(
            p, {**manifest, "attributes": {**manifest["attributes"], "__dict__": {}}}, blobs
        ),
    )
    add(
        "attribute shadows a method",
        lambda p: _write(
            p,
            {**manifest, "attributes": {**manifest["attributes"], "predict_": 1, "fit": 1}},
            blobs,
        ),
    )
    add("extra member", lambda p: _write(p, manifest, {**blobs, "evil.py": b"import os"}))
    add(
        "extra member unlisted",
        lambda p: (
            _write(p, manifest, {**blobs, "evil.py": b"x"}, rehash=False)
            and _append(p, "evil2", b"x")
        ),
    )
    add("traversal member", lambda p: _write(p, manifest, {**blobs, "../../etc/passwd": b"x"}))
    add("absolute member", lambda p: _write(p, manifest, {**blobs, "/etc/passwd": b"x"}))
    for name in blobs:
        add(
            f"missing {name}",
            lambda p, nm=name: _write(p, manifest, {k: v for k, v in blobs.items() if k != nm}),
        )
    add(
        "duplicated member",
        lambda p: (
            _write(p, manifest, blobs)
            and _append(p, "arrays.safetensors", blobs["arrays.safetensors"])
        ),
    )
    add(
        "pickle member",
        lambda p: _write(
            p, manifest, {**blobs, "sklearn/estimator_.skops": b"\x80\x04\x95" + b"\0" * 20}
        ),
    )
    big = b"\0" * (80 * 2**20)  # 80 MiB of zeros: about 80 KiB compressed
    add("decompression bomb", lambda p: _write(p, manifest, {**blobs, "arrays.safetensors": big}))
    add(
        "bomb with a false size",
        lambda p: _write(
            p,
            {**manifest, "sizes": {**manifest["sizes"], "arrays.safetensors": 10}},
            {**blobs, "arrays.safetensors": big},
            rehash=False,
        ),
    )
    return cases


def _append(path: Path, name: str, blob: bytes) -> Path:
    with zipfile.ZipFile(path, "a") as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of a duplicate name: that is the point
        zf.writestr(name, blob)
    return path


def _run_worker(jobs: list[tuple[str, Path, Path]]) -> list[tuple[str, str, str, int]]:
    """Each (what, model, data) through the worker; a crash or hang restarts it after the file."""
    results: list[tuple[str, str, str, int]] = []
    todo = list(jobs)
    while todo:
        jobs_file = todo[0][1].with_name(f"jobs-{len(results)}.txt")
        stderr_file = jobs_file.with_suffix(".stderr")
        jobs_file.write_text("".join(f"{m}\t{d}\n" for _, m, d in todo))
        done, failed = _one_worker(jobs_file, stderr_file, todo, results)
        if not failed:
            stderr = stderr_file.read_text()
            assert "Traceback" not in stderr, stderr[-2000:]
        todo = todo[done + 1 :] if failed else []
    return results


def _one_worker(jobs_file: Path, stderr_file: Path, todo: list, results: list) -> tuple[int, bool]:
    """Run one worker over ``todo``; (files done, whether it crashed or hung on the next)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, str(WORKER), str(jobs_file)]
    with (
        stderr_file.open("w") as err,
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True, env=env) as proc,
    ):
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_pump, args=(proc, lines), daemon=True).start()
        for done, (what, model, _) in enumerate(todo):
            line = _next(lines, PER_FILE_SECONDS + 60 if done == 0 else PER_FILE_SECONDS)
            if line == "START":
                line = _next(lines, PER_FILE_SECONDS)
            if line is None or not line.startswith("DONE"):
                proc.kill()
                proc.wait()
                status = "hang" if line is None else "crash"
                results.append((what, str(model), f"{status} (exit {proc.returncode})", 0))
                return done, True
            _, outcome, *rest = line.split("\t")
            results.append((what, str(model), "\t".join([outcome, *rest[:-1]]), int(rest[-1])))
        proc.wait(timeout=60)
    return len(todo), False


def _pump(proc: subprocess.Popen, lines: queue.Queue) -> None:
    for line in proc.stdout:
        lines.put(line.rstrip("\n"))
    lines.put("")  # the worker ended


def _next(lines: queue.Queue, timeout: float) -> str | None:
    """The worker's next line, "" if it ended, None if it said nothing for ``timeout`` s."""
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return None


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, str, int]]:
    root = tmp_path_factory.mktemp("hostile")
    jobs: list[tuple[str, Path, Path]] = []
    for name in MODELS:
        det, X = _fit(name)
        base = root / f"{name}.anomalia"
        det.save(base)
        data = root / f"{name}.npy"
        np.save(data, X)
        jobs.append((f"{name}: the saved model", base, data))
        jobs += [(f"{name}: {what}", path, data) for what, path in _corpus(base, root)]
    start = time.perf_counter()
    results = _run_worker(jobs)
    print(f"{len(results)} hostile files in {time.perf_counter() - start:.1f} s")
    return results


@pytest.mark.slow
def test_no_file_crashes_hangs_or_raises_a_foreign_error(corpus):
    bad = [
        (what, outcome)
        for what, _, outcome, _ in corpus
        if not outcome.startswith(("ok", "refused"))
    ]
    assert not bad, f"{len(bad)} of {len(corpus)} hostile files misbehave:\n" + "\n".join(
        f"{w}: {o}" for w, o in bad[:40]
    )


@pytest.mark.slow
def test_memory_stays_under_the_ceiling(corpus):
    peak = max(rss for *_, rss in corpus)
    assert peak < MEMORY_CEILING_MIB, f"peak RSS {peak} MiB"


@pytest.mark.slow
def test_every_saved_model_loads_and_the_named_attacks_are_refused(corpus):
    outcome = {what: o for what, _, o, _ in corpus}
    for name in MODELS:
        assert outcome[f"{name}: the saved model"] == "ok", name
    node = "iforest: arrays.safetensors:sklearn/estimator_/node"
    expectations = {
        f"{node}/left_child mutation 0": "points outside",
        f"{node}/right_child mutation 3": "leaf",
        f"{node}/feature mutation 1": "feature",
        "iforest: decompression bomb": "decompression bomb",
        "iforest: bomb with a false size": "not the size",
        "iforest: attribute __dict__": "no detector has",
        "iforest: manifest deeply nested": "not valid JSON",
        "iforest: traversal member": "not a plain path",
        "iforest: duplicated member": "appears twice",
        "knn: manifest ('attributes', 'threshold_') = 'abc'": "threshold_",
    }
    for what, expected in expectations.items():
        assert outcome[what].startswith("refused") and expected in outcome[what], (
            what,
            outcome[what],
        )
