"""Benchmark harness: the published ADBench protocols, our detectors and their peers side by side.

Protocols (exactly as published, so numbers are comparable to the papers):

* ``unsup`` -- ADBench (Han et al., NeurIPS 2022): a dataset under 1,000 rows is resampled
  with replacement to 1,000 rows and one over 10,000 rows subsampled to 10,000 (stratified,
  so a dataset with a handful of anomalies keeps them in both parts); a stratified
  70/30 train/test split; MinMaxScaler fitted on train. Training keeps its anomalies, with
  labels hidden (polluted training data).
* ``clean`` -- the semi-supervised protocol of DTE (Livernoche et al., ICLR 2024) and ICL:
  half of the normal rows (shuffled by the seed) train; the other half plus every anomaly
  test; StandardScaler fitted on train.

A detector is given by a spec string:

* ``NAME`` or ``NAME(key=value, ...)`` -- an anomalia detector (``knn``, ``ae(epochs=20)``);
* ``sklearn:CLASS(...)`` -- IsolationForest, OneClassSVM, LocalOutlierFactor, EllipticEnvelope;
* ``pyod:CLASS(...)`` -- any PyOD detector (``pyod:ECOD``, ``pyod:KNN``); needs the ``bench``
  extra, and is skipped with a note when PyOD is not installed.

Values are Python literals (numbers, strings, tuples, None). Every job (dataset x protocol x
detector x seed) runs in its own process, so a job over the time limit is killed and recorded
as timed out; jobs run in parallel (joblib) and each finished one is kept, so an interrupted
run resumes where it stopped. A finished row is reused only for the same data and the same
detector: each row records the SHA-256 of its dataset file and the detector's parameters
with every default filled in, and a row whose file or parameters changed since is run again.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import json
import math
import multiprocessing
import os
import platform
import re
import signal
import tempfile
import threading
import time
import warnings
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ._utils.files import sha256_of
from .datasets import data_dir
from .detectors import pyod as _pyod
from .detectors.pyod import PYOD_MODULES, pyod_class, with_seed
from .errors import AnomaliaError

#: The protocols, as the module docstring describes them: ADBench's and DTE's.
PROTOCOLS = ("unsup", "clean")
SKLEARN_PEERS = ("IsolationForest", "OneClassSVM", "LocalOutlierFactor", "EllipticEnvelope")
#: The detectors a run compares when none are named.
DEFAULT_DETECTORS = (
    "default",
    "knn",
    "iforest",
    "ae",
    "sklearn:IsolationForest",
    "sklearn:OneClassSVM",
    "sklearn:LocalOutlierFactor",
    "sklearn:EllipticEnvelope",
    "pyod:IForest",
    "pyod:ECOD",
    "pyod:COPOD",
    "pyod:KNN",
    "pyod:AutoEncoder",
)
COLUMNS = [
    "protocol", "dataset", "detector", "seed", "status", "roc_auc", "average_precision",
    "fit_seconds", "score_seconds", "n_train", "n_test", "n_features", "train_anomalies",
    "test_anomalies", "error", "versions", "data_sha256", "params",
]  # fmt: skip
KEY = ["protocol", "dataset", "detector", "seed"]
TEXT = ["protocol", "dataset", "detector", "status", "error", "versions", "data_sha256", "params"]


def available_cores() -> int:
    """CPU cores this process may run on: ``os.process_cpu_count()`` (Python 3.13), else
    the size of its affinity mask (``os.sched_getaffinity``), else ``os.cpu_count()``."""
    if hasattr(os, "process_cpu_count"):
        return os.process_cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def default_data_dir() -> Path:
    """Where ``anomalia bench`` looks for the ADBench files: ``adbench`` in
    :func:`anomalia.datasets.data_dir` (``$ANOMALIA_DATA_DIR``, else the shared folder)."""
    return data_dir() / "adbench"


def default_reference_dir() -> Path:
    """Where the published figures are: ``reference`` beside :func:`anomalia.datasets.data_dir`."""
    return data_dir().parent / "reference"


# -- datasets and protocols ------------------------------------------------------------------
def adbench_datasets(data_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Every ADBench-format ``.npz`` (arrays ``X``, ``y`` with 1 = anomaly) in ``data_dir``.

    Names drop ADBench's number prefix and are lower case (``"4_breastw.npz"`` ->
    ``"breastw"``); files are ordered by that number, then by name.
    """
    folder = Path(data_dir)
    if not folder.is_dir():
        raise AnomaliaError(
            f"no ADBench data folder at {folder} (use --data-dir, or set $ANOMALIA_DATA_DIR)"
        )
    paths = sorted(folder.glob("*.npz"))
    if not paths:
        raise AnomaliaError(f"no .npz files in {folder}")

    def order(p: Path) -> tuple[int, str]:
        head, _, rest = p.stem.partition("_")
        return (int(head), rest) if head.isdigit() and rest else (10**9, p.stem)

    out = {}
    for p in sorted(paths, key=order):
        head, _, rest = p.stem.partition("_")
        out[(rest if head.isdigit() and rest else p.stem).lower()] = p
    return out


def load_npz(path: str | os.PathLike[str]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """``X`` (float64) and ``y`` (0 normal, 1 anomaly) of an ADBench-format file, checked."""
    try:
        with np.load(path, allow_pickle=False) as data:
            X, y = np.asarray(data["X"], dtype=np.float64), np.asarray(data["y"]).astype(int)
    except (KeyError, ValueError, OSError) as exc:
        raise AnomaliaError(f"{path}: not an ADBench-format file (arrays X, y): {exc}") from None
    if X.ndim != 2 or y.shape != (len(X),):
        raise AnomaliaError(f"{path}: X must be 2-D and y one label per row")
    if not set(np.unique(y)) <= {0, 1} or not (y == 1).any() or not (y == 0).any():
        raise AnomaliaError(f"{path}: y must hold 0 (normal) and 1 (anomaly), both present")
    if not np.isfinite(X).all():
        raise AnomaliaError(f"{path}: X holds NaN or infinity")
    return X, y


def split(
    X: NDArray[np.float64], y: NDArray[np.int64], protocol: str, seed: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]:
    """Train and test sets of one protocol and seed, scaled as published.

    Returns ``X_train, X_test, y_train, y_test``; ``y_train`` is for reporting only
    (detectors never see it).
    """
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    rng = np.random.default_rng(seed)
    if protocol == "unsup":
        if len(y) < 1000:
            idx = rng.choice(len(y), 1000, replace=True)
            X, y = X[idx], y[idx]
        elif len(y) > 10000:  # stratified, so that rare anomalies (smtp: 0.03 %) survive
            X, _, y, _ = train_test_split(X, y, train_size=10000, stratify=y, random_state=seed)
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=0.3, shuffle=True, stratify=y, random_state=seed
        )
        scaler: Any = MinMaxScaler()
    elif protocol == "clean":
        normal = rng.permutation(np.flatnonzero(y == 0))
        half = len(normal) // 2
        test = np.concatenate([normal[half:], np.flatnonzero(y == 1)])
        X_train, y_train, X_test, y_test = X[normal[:half]], y[normal[:half]], X[test], y[test]
        scaler = StandardScaler()
    else:
        raise AnomaliaError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    scaler.fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


# -- detector specs --------------------------------------------------------------------------
def parse_spec(spec: str) -> tuple[str, str, dict[str, Any]]:
    """``"pyod:KNN(n_neighbors=10)"`` -> ``("pyod", "KNN", {"n_neighbors": 10})``.

    The source is ``"anomalia"``, ``"sklearn"`` or ``"pyod"``.
    """
    text = spec.strip()
    head, paren, tail = text.partition("(")
    source, sep, rest = head.partition(":")  # a ':' inside the parameters is not a source
    if sep:
        rest = rest + paren + tail
    else:
        source, rest = "anomalia", text
    if source not in ("anomalia", "sklearn", "pyod"):
        raise AnomaliaError(f"detector {spec!r}: the source must be sklearn: or pyod:")
    name, paren, args = rest.partition("(")
    name = name.strip()
    params: dict[str, Any] = {}
    if paren:
        if not args.rstrip().endswith(")"):
            raise AnomaliaError(f"detector {spec!r}: missing closing parenthesis")
        try:
            call = ast.parse(f"f({args}", mode="eval").body
            if not isinstance(call, ast.Call) or call.args:
                raise ValueError("only key=value arguments")
            params = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg}
        except (SyntaxError, ValueError) as exc:
            raise AnomaliaError(
                f"detector {spec!r}: parameters must be key=literal pairs ({exc})"
            ) from None
    if not name.replace("-", "").replace("_", "").isalnum():
        raise AnomaliaError(f"detector {spec!r}: {name!r} is not a detector name")
    return source, name, params


def make_scorer(spec: str, seed: int) -> tuple[Any, Callable[[Any], NDArray[np.float64]]]:
    """The unfitted model of ``spec`` and a function giving its anomaly scores once fitted."""
    try:
        return _make_scorer(spec, seed)
    except TypeError as exc:  # a peer's constructor refusing a parameter
        raise AnomaliaError(f"detector {spec!r}: {exc}") from None


def _make_scorer(spec: str, seed: int) -> tuple[Any, Callable[[Any], NDArray[np.float64]]]:
    source, name, params = parse_spec(spec)
    if source == "anomalia":
        from .registry import detector_class, make_detector

        model = make_detector(name, **with_seed(detector_class(name), params, seed))
        return model, model.anomaly_score
    if source == "sklearn":
        if name not in SKLEARN_PEERS:
            raise AnomaliaError(f"sklearn peer {name!r}: choose from {', '.join(SKLEARN_PEERS)}")
        module = {"IsolationForest": "ensemble", "OneClassSVM": "svm"}.get(name)
        module = module or ("neighbors" if name == "LocalOutlierFactor" else "covariance")
        cls = getattr(importlib.import_module(f"sklearn.{module}"), name)
        if name == "LocalOutlierFactor":
            params = {"novelty": True, **params}
        model = cls(**with_seed(cls, params, seed))
        return model, lambda X: -model.score_samples(X)
    cls = pyod_class(name)
    model = cls(**with_seed(cls, params, seed, quiet=True))
    return model, model.decision_function


def _versions(source: str) -> str:
    import sklearn

    from ._version import __version__

    parts = [f"anomalia {__version__}", f"scikit-learn {sklearn.__version__}"]
    if source == "pyod":
        from importlib.metadata import version

        parts.append(f"pyod {version('pyod')}")
    if source in ("anomalia", "pyod"):
        import torch

        parts.append(f"torch {torch.__version__}")
    parts.append(f"python {platform.python_version()}")
    return "; ".join(parts)


def detector_params(spec: str, seed: int) -> str:
    """The parameters the detector of ``spec`` runs with under ``seed``, every default filled
    in, as canonical JSON: a finished job stands while they are the same (a new version that
    changes a default, or redefines a preset such as ``default``, changes them)."""
    model, _ = make_scorer(spec, seed)
    text = json.dumps(model.get_params(deep=False), sort_keys=True, default=repr)
    return re.sub(r" at 0x[0-9a-fA-F]+", "", text)  # object addresses differ between runs


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of a dataset file's bytes (:func:`anomalia._utils.files.sha256_of`); a
    file that cannot be read is an :class:`AnomaliaError` naming it."""
    try:
        return sha256_of(path)
    except OSError as exc:
        raise AnomaliaError(f"cannot read the dataset file {path}: {exc.strerror}") from None


# -- jobs -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """One fit and score: a dataset file under a protocol, a detector spec and a seed.

    ``sha256`` is the dataset file's SHA-256 and ``params`` the detector's
    :func:`detector_params`; :func:`plan` fills them in, and so does :func:`run` for a job
    made without them.
    """

    protocol: str
    dataset: str
    path: str
    detector: str
    seed: int
    threads: int = 1
    sha256: str = ""
    params: str = ""

    def key(self) -> tuple[str, str, str, int]:
        """The job's identity in the results: ``(protocol, dataset, detector, seed)``."""
        return (self.protocol, self.dataset, self.detector, self.seed)

    def row(self, **fields: Any) -> dict[str, Any]:
        """A results row of this job: its key, data hash and parameters, then ``fields``."""
        mine = {"data_sha256": self.sha256, "params": self.params}
        return {**dict(zip(KEY, self.key(), strict=True)), **mine, **fields}


def run_job(job: Job) -> dict[str, Any]:
    """Fit and score one job in this process; a failing detector gives a row, not an error."""
    from sklearn.metrics import average_precision_score, roc_auc_score
    from threadpoolctl import threadpool_limits

    row = job.row(status="ok", error="")
    X, y = load_npz(job.path)
    X_train, X_test, y_train, y_test = split(X, y, job.protocol, job.seed)
    row.update(
        n_train=len(X_train),
        n_test=len(X_test),
        n_features=X.shape[1],
        train_anomalies=int(y_train.sum()),
        test_anomalies=int(y_test.sum()),
    )
    source = parse_spec(job.detector)[0]
    row["versions"] = _versions(source)
    try:
        # peers warn freely (rank-deficient covariances, ...): a benchmark records scores
        with threadpool_limits(job.threads), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if source != "sklearn":
                import torch

                torch.set_num_threads(job.threads)
            model, scorer = make_scorer(job.detector, job.seed)
            t0 = time.perf_counter()
            model.fit(X_train)
            t1 = time.perf_counter()
            scores = np.asarray(scorer(X_test), dtype=np.float64).reshape(-1)
            t2 = time.perf_counter()
        if not np.isfinite(scores).all():
            raise AnomaliaError(f"{int((~np.isfinite(scores)).sum())} non-finite scores")
        row.update(
            roc_auc=float(roc_auc_score(y_test, scores)),
            average_precision=float(average_precision_score(y_test, scores)),
            fit_seconds=t1 - t0,
            score_seconds=t2 - t1,
        )
    except Exception as exc:  # recorded in the results: one bad detector must not stop a run
        row.update(status="error", error=f"{type(exc).__name__}: {exc}"[:300])
    return row


def _child(job: Job, conn: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        row = run_job(job)
    except Exception as exc:  # data could not be read: still a row
        row = job.row(status="error", error=str(exc))
    conn.send(row)
    conn.close()


#: Imported once in the fork server, so that no job pays for them (a missing one is skipped).
_PRELOAD = [
    "anomalia.bench",
    "anomalia.detectors.classical",
    "anomalia.detectors.ensemble",
    "anomalia.detectors.autoencoder",
    "sklearn.metrics",
    "sklearn.ensemble",
    "sklearn.neighbors",
    "sklearn.svm",
    "sklearn.covariance",
    "threadpoolctl",
    "torch",
]
_PYOD_PRELOAD = [f"pyod.models.{m}" for m in PYOD_MODULES.values()]


@functools.cache
def _context() -> Any:
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        # modules loaded once in the (thread-free) fork server, shared by every job
        ctx.set_forkserver_preload(_PRELOAD + (_PYOD_PRELOAD if _pyod.pyod_available() else []))
        return ctx
    return multiprocessing.get_context("spawn")


#: Processes of the jobs running now (killed when a run is interrupted).
_LIVE: set[Any] = set()


def execute(job: Job, timeout: float | None) -> dict[str, Any]:
    """Run ``job`` in a fresh process; kill it after ``timeout`` seconds (recorded)."""
    ctx = _context()
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(job, send), daemon=True)
    start = time.perf_counter()
    proc.start()
    _LIVE.add(proc)
    send.close()
    try:
        if recv.poll(timeout):
            try:
                return recv.recv()
            except EOFError:
                proc.join()
                status, error = "error", f"the job's process died (exit code {proc.exitcode})"
        else:
            status, error = "timeout", f"over the time limit of {timeout:g} s"
    finally:
        _LIVE.discard(proc)
        if proc.is_alive():
            proc.kill()
        proc.join()
        recv.close()
    elapsed = time.perf_counter() - start
    return job.row(status=status, error=error, fit_seconds=elapsed)


# -- results -------------------------------------------------------------------------------
def read_results(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Results written by :func:`run` (CSV or Parquet, by suffix); empty frame if absent."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=COLUMNS)
    try:
        df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as exc:
        raise AnomaliaError(f"cannot read benchmark results {path}: {exc}") from None
    missing = {*KEY, "status"} - set(df.columns)
    if missing:
        raise AnomaliaError(f"{path} is not a benchmark results file (no {', '.join(missing)})")
    return _tidy(df)


def _tidy(df: pd.DataFrame) -> pd.DataFrame:
    """All result columns present, numbers as numbers (CSV round trips and empty frames)."""
    df = df.reindex(columns=list(dict.fromkeys([*COLUMNS, *df.columns])))
    for col in (c for c in COLUMNS if c not in TEXT and c != "seed"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    df["seed"] = df["seed"].astype(int)
    for col in ("error", "versions", "data_sha256", "params"):  # absent in older files: ""
        df[col] = df[col].astype(object).where(df[col].notna(), "").astype(str)
    return df


def keys(df: pd.DataFrame) -> list[tuple[str, str, str, int]]:
    """The job key (protocol, dataset, detector, seed) of every results row."""
    return list(df[KEY].astype({"seed": int}).itertuples(index=False, name=None))


def _write(df: pd.DataFrame, path: Path) -> None:
    from ._utils.files import atomic_output

    def write(tmp: Path) -> None:
        if path.suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)

    atomic_output(path, write)


def plan(
    datasets: dict[str, Path],
    detectors: Sequence[str],
    protocols: Sequence[str] = PROTOCOLS,
    seeds: Sequence[int] = (0, 1, 2),
    threads: int = 1,
) -> tuple[list[Job], list[str]]:
    """All jobs of a run, and notes on detectors left out (PyOD missing).

    Each dataset file is hashed here, once (:func:`file_sha256`), and each detector's
    parameters are resolved once per seed (:func:`detector_params`), by :func:`_described`.
    """
    notes, kept = [], []
    for spec in detectors:
        if parse_spec(spec)[0] == "pyod" and not _pyod.pyod_available():
            notes.append(f"skipped {spec}: {_pyod.NOT_INSTALLED}")
            continue
        make_scorer(spec, 0)  # unknown names and parameters fail now, not in every job
        kept.append(spec)
    for p in protocols:
        if p not in PROTOCOLS:
            raise AnomaliaError(f"unknown protocol {p!r}; choose from {', '.join(PROTOCOLS)}")
    jobs = [  # seed by seed: a run cut short has whole seeds, and a timeout is known early
        Job(p, name, str(path), spec, int(seed), threads)
        for seed in seeds
        for p in protocols
        for name, path in datasets.items()
        for spec in kept
    ]
    return _described(jobs), notes


def _described(jobs: Iterable[Job]) -> list[Job]:
    """``jobs`` with their data hash and parameters filled in where missing (each file is
    hashed once, each detector resolved once per seed)."""
    hashes: dict[str, str] = {}
    params: dict[tuple[str, int], str] = {}
    out = []
    for job in jobs:
        if not job.sha256:
            job = replace(job, sha256=hashes.get(job.path) or file_sha256(job.path))
            hashes[job.path] = job.sha256
        if not job.params:
            spec = (job.detector, job.seed)
            params[spec] = params.get(spec) or detector_params(*spec)
            job = replace(job, params=params[spec])
        out.append(job)
    return out


@dataclass(frozen=True)
class Resumed:
    """What a results file already holds of a run (from :func:`resume`)."""

    #: The rows to keep: those of other jobs, and the reused ones.
    kept: pd.DataFrame
    #: The jobs left to run.
    todo: list[Job]
    #: Jobs of the run whose finished row is reused.
    reused: int
    #: Why finished rows are run again (data changed, parameters changed, no hash).
    notes: list[str]


def resume(old: pd.DataFrame, jobs: Sequence[Job]) -> Resumed:
    """Which of ``jobs`` the results ``old`` (from :func:`read_results`) already hold.

    A finished row is reused when its data hash and detector parameters are those of the
    job now; else it is dropped and the job runs again: its dataset file changed, its
    detector's parameters did (a new version's defaults), or the row has no hash (a file
    written before hashes were recorded, whose data cannot be checked). Rows of jobs not in
    ``jobs`` are kept as they are.
    """
    jobs = _described(jobs)
    if old.empty:
        return Resumed(old, jobs, 0, [])
    now = pd.DataFrame([j.row() for j in jobs], columns=[*KEY, "data_sha256", "params"])
    both = old[[*KEY, "data_sha256", "params"]].merge(
        now.drop_duplicates(KEY), on=KEY, how="left", suffixes=("", "_now"), indicator=True
    )
    planned = (both["_merge"] == "both").to_numpy()
    no_hash = planned & (both.data_sha256 == "").to_numpy()
    changed = planned & ~no_hash & (both.data_sha256 != both.data_sha256_now).to_numpy()
    moved = planned & ~no_hash & ~changed & (both.params != both.params_now).to_numpy()
    kept = old[~(no_hash | changed | moved)]
    done = set(keys(kept))
    reasons = {
        "their data file changed": changed,
        "their detector's parameters changed": moved,
        "the results file records no data hash for them (written by an older anomalia)": no_hash,
    }
    notes = [
        f"running {int(hit.sum())} finished jobs again: {why}"
        for why, hit in reasons.items()
        if hit.any()
    ]
    todo = [job for job in jobs if job.key() not in done]
    return Resumed(kept, todo, len({j.key() for j in jobs} & done), notes)


def run(
    jobs: Iterable[Job],
    out: str | os.PathLike[str],
    *,
    n_jobs: int = -1,
    timeout: float | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    flush_seconds: float = 2.0,
) -> pd.DataFrame:
    """Run the jobs not yet in ``out``; write every finished row there; return all rows.

    Parameters
    ----------
    jobs : iterable of Job
        From :func:`plan`.
    out : path
        Results file (``.csv`` or ``.parquet``). Rows already there for the same data and
        detector parameters are kept and their jobs skipped, so a run that was interrupted
        resumes; rows whose data or parameters changed run again (see :func:`resume`).
    n_jobs : int, default=-1
        Jobs run at once (``-1``: :func:`available_cores`).
    timeout : float or None, default=None
        Seconds a job may take (data loading included); a job over it is killed and recorded
        with status ``"timeout"``, and so are the other seeds of that detector on that
        dataset and protocol, without running.
    progress : callable, optional
        Called with each finished row (e.g. to advance a progress bar).
    flush_seconds : float, default=2.0
        Finished rows are written to ``out`` at most this often, and at the end.
    """
    from joblib import Parallel, delayed

    out = Path(out)
    if out.suffix not in (".csv", ".parquet"):
        raise AnomaliaError(f"results file must end in .csv or .parquet, got {out.name}")
    resumed = resume(read_results(out), list(jobs))
    old, todo = resumed.kept, resumed.todo
    rows: list[dict[str, Any]] = []
    last = time.monotonic()
    # after one seed runs out of time, the other seeds of that detector on that dataset would
    # too: they are recorded as timed out without spending the time limit again
    slow = {k[:3] for k, status in zip(keys(old), old.status, strict=True) if status == "timeout"}

    stop = threading.Event()

    def attempt(job: Job) -> dict[str, Any] | None:
        if stop.is_set():
            return None
        if job.key()[:3] in slow:
            return job.row(status="timeout", error="skipped: another seed went over the time limit")
        row = execute(job, timeout)
        if row["status"] == "timeout":
            slow.add(job.key()[:3])
        return row

    def flush() -> pd.DataFrame:
        if not rows:
            return old
        new = _tidy(pd.DataFrame(rows, columns=COLUMNS))
        df = new if old.empty else pd.concat([old, new], ignore_index=True)
        _write(df, out)
        return df

    def interrupt(signum: int, frame: Any) -> None:
        # Ctrl-C or SIGTERM: run nothing more, kill what runs, keep what finished, then stop
        stop.set()
        for proc in list(_LIVE):
            proc.kill()

    handlers = {}
    if threading.current_thread() is threading.main_thread():  # the only one that may
        handlers = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    n_jobs = available_cores() if n_jobs == -1 else max(1, n_jobs)
    try:
        results = Parallel(n_jobs=n_jobs, backend="threading", return_as="generator_unordered")(
            delayed(attempt)(job) for job in todo
        )
        for row in results:
            if row is None or stop.is_set():  # a killed job is not a result: it runs again
                continue
            rows.append(row)
            if progress is not None:
                progress(row)
            if time.monotonic() - last >= flush_seconds:
                flush()
                last = time.monotonic()
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        df = flush()
    if stop.is_set():
        raise KeyboardInterrupt
    return df


# -- summary ----------------------------------------------------------------------------------
def per_dataset(df: pd.DataFrame, metric: str = "roc_auc") -> dict[str, pd.DataFrame]:
    """Per protocol: a dataset x detector table of ``metric`` averaged over seeds (ok jobs)."""
    ok = df[df.status == "ok"]
    return {
        p: g.groupby(["dataset", "detector"])[metric].mean().unstack("detector")
        for p, g in ok.groupby("protocol")
    }


def _source(spec: str) -> str:
    return parse_spec(spec)[0]


def published_reference(reference_dir: str | os.PathLike[str] | None) -> dict[str, Any]:
    """Best published mean ROC-AUC per protocol from ``reference_dir`` (when present)."""
    out: dict[str, Any] = {}
    if reference_dir is None:
        return out
    ref = Path(reference_dir)
    files = {"unsup": ("adbench_unsup_published.csv", "aucroc", 1.0),
             "clean": ("clean_protocol_published.csv", "aucroc_pct", 100.0)}  # fmt: skip
    for protocol, (name, col, unit) in files.items():
        if (ref / name).is_file():
            pub = pd.read_csv(ref / name)
            pub["dataset"] = pub["dataset"].str.lower()
            means = pub.groupby("method")[col].mean() / unit
            out[protocol] = {
                "best_method": str(means.idxmax()),
                "best_mean_auc": float(means.max()),
                "per_dataset": pub.assign(auc=pub[col] / unit),
            }
    return out


def summarize(
    df: pd.DataFrame, *, reference_dir: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """Per protocol and detector: mean / median ROC-AUC, mean AP, average rank, wins.

    Seeds are averaged first, per dataset. Ranks (1 = best) and wins are counted over the
    datasets where the detector has a result. ``vs_best_peer`` compares ``default`` (or the
    first anomalia detector) with the best scikit-learn / PyOD detector of the same run on
    their common datasets; ``published`` quotes the best published mean.
    """
    auc, ap = per_dataset(df, "roc_auc"), per_dataset(df, "average_precision")
    published = published_reference(reference_dir)
    summary: dict[str, Any] = {}
    for protocol in [p for p in PROTOCOLS if p in set(df.protocol)]:
        sub = df[df.protocol == protocol]
        table = auc.get(protocol, pd.DataFrame())
        ranks = table.rank(axis=1, ascending=False, method="average")
        best = table.max(axis=1)
        rows = []
        for det in dict.fromkeys(sub.detector):
            jobs = sub[sub.detector == det]
            col = table[det].dropna() if det in table else pd.Series(dtype=float)
            rows.append({
                "detector": det,
                "datasets": int(col.size),
                "mean_auc": float(col.mean()) if col.size else math.nan,
                "median_auc": float(col.median()) if col.size else math.nan,
                "mean_ap": float(ap[protocol][det].mean()) if col.size else math.nan,
                "avg_rank": float(ranks[det].mean()) if col.size else math.nan,
                "wins": int((col >= best[col.index] - 1e-12).sum()),
                "timeouts": int((jobs.status == "timeout").sum()),
                "errors": int((jobs.status == "error").sum()),
                "fit_seconds": float(jobs.fit_seconds.fillna(0).sum()),
            })  # fmt: skip
        rows.sort(key=lambda r: -r["mean_auc"] if r["mean_auc"] == r["mean_auc"] else math.inf)
        entry: dict[str, Any] = {"detectors": rows, "n_datasets": len(table)}
        ours = [r["detector"] for r in rows if _source(r["detector"]) == "anomalia"]
        peers = [r for r in rows if _source(r["detector"]) != "anomalia" and r["datasets"]]
        main = "default" if "default" in ours else (ours[0] if ours else None)
        if main is not None and peers and main in table:
            peer = peers[0]["detector"]
            both = table[[main, peer]].dropna()
            entry["vs_best_peer"] = {
                "detector": main,
                "peer": peer,
                "datasets": len(both),
                "margin": float(both[main].mean() - both[peer].mean()),
                "wins": int((both[main] > both[peer]).sum()),
                "losses": int((both[main] < both[peer]).sum()),
            }
        if protocol in published and main is not None and main in table:
            pub = published[protocol]["per_dataset"]
            pub = pub[pub.dataset.isin(table.index)]
            means = pub.groupby("method")["auc"].mean()
            if len(means):
                common = sorted(set(pub.dataset))
                entry["published"] = {
                    "method": str(means.idxmax()),
                    "mean_auc": float(means.max()),
                    "datasets": len(common),
                    "ours": float(table.loc[common, main].mean()),
                    "margin": float(table.loc[common, main].mean() - means.max()),
                }
        summary[protocol] = entry
    return summary


def summary_markdown(summary: dict[str, Any]) -> str:
    """The summary as markdown tables, one per protocol."""
    out = []
    for protocol, entry in summary.items():
        out.append(f"### Protocol `{protocol}` ({entry['n_datasets']} datasets)\n")
        out.append("| detector | datasets | mean ROC-AUC | median | mean AP | avg rank | wins "
                   "| timeouts | errors | fit s |")  # fmt: skip
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in entry["detectors"]:
            out.append(
                f"| {r['detector']} | {r['datasets']} | {r['mean_auc']:.3f} | "
                f"{r['median_auc']:.3f} | {r['mean_ap']:.3f} | {r['avg_rank']:.2f} | "
                f"{r['wins']} | {r['timeouts']} | {r['errors']} | {r['fit_seconds']:.0f} |"
            )
        vs = entry.get("vs_best_peer")
        if vs:
            out.append(
                f"\n`{vs['detector']}` vs the best peer `{vs['peer']}`: "
                f"{vs['margin']:+.3f} mean ROC-AUC over {vs['datasets']} common datasets; "
                f"wins {vs['wins']}, losses {vs['losses']}."
            )
        pub = entry.get("published")
        if pub:
            out.append(
                f"Best published mean over the {pub['datasets']} datasets with published "
                f"figures: {pub['method']} {pub['mean_auc']:.3f}; "
                f"`{vs['detector'] if vs else 'ours'}` {pub['ours']:.3f} ({pub['margin']:+.3f})."
            )
        out.append("")
    return "\n".join(out)


def plot_results(df: pd.DataFrame, stem: str | os.PathLike[str]) -> list[Path]:
    """Per protocol: ROC-AUC per detector (box plots, or dots with values for one or two
    datasets) and a dataset x detector heatmap with the value in each cell.

    Files are ``<stem>_<protocol>_auc.png`` and ``<stem>_<protocol>_heatmap.png``. ROC-AUC is
    averaged over seeds (ok jobs only); a heatmap cell without a result says why (timeout,
    error, not run). Detector specs longer than 30 characters are shown by their name and
    a number, [1], [2], ..., spelt out under the figure.
    """
    from .plots import save_figure

    written = []
    for protocol, table in per_dataset(df).items():
        if table.empty:
            continue
        sub = df[df.protocol == protocol]
        table = table.reindex(columns=list(dict.fromkeys(sub.detector)))  # failed ones too
        order = table.mean().sort_values(na_position="first").index  # best last: at the top
        figures = {
            "auc": _auc_figure(table[order], protocol),
            "heatmap": _heatmap_figure(table[order[::-1]], sub, protocol),
        }
        for kind, fig in figures.items():
            written.append(save_figure(fig, Path(f"{stem}_{protocol}_{kind}.png")))
    return written


def _short_names(specs: Any, limit: int = 30) -> tuple[list[str], list[str]]:
    """Display names of detector specs, and the key lines "[k] spec" of the shortened ones."""
    names, key = [], []
    for spec in specs:
        if len(spec) <= limit:
            names.append(spec)
            continue
        head = spec.partition("(")[0]
        head = head if len(head) <= limit - 5 else head[: limit - 6] + "…"
        key.append(f"[{len(key) + 1}] {spec}")
        names.append(f"{head} [{len(key)}]")
    return names, key


def _with_key(fig: Any, lines: list[str], width_in: float) -> None:
    """Write ``lines`` (the spec key and notes) under the figure, wrapped to its width."""
    import textwrap

    if lines:
        wrapped = [textwrap.fill(line, width=int(width_in * 14)) for line in lines]
        fig.supxlabel("\n".join(wrapped), fontsize=7, ha="left", x=0.01, linespacing=1.4)


def _key_height(lines: list[str], width_in: float) -> float:
    return sum(math.ceil(len(line) / int(width_in * 14)) for line in lines) * 0.15


def _auc_figure(table: pd.DataFrame, protocol: str) -> Any:
    """ROC-AUC per detector over the datasets; ``table`` columns ordered worst to best."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    n_sets = len(table)
    names, key = _short_names(table.columns)
    counts = table.notna().sum()
    names = [
        n if counts[c] == n_sets else f"{n} ({counts[c]} of {n_sets})"
        for n, c in zip(names, table.columns, strict=True)
    ]
    width = 8.5
    fig = Figure(
        figsize=(width, 0.42 * len(names) + 2.0 + _key_height(key, width)), layout="constrained"
    )
    ax = fig.add_subplot()
    ax.grid(True, axis="x", alpha=0.3, linewidth=0.6)
    pos = np.arange(1, len(names) + 1)
    if n_sets <= 2:  # a box of one or two values says nothing: the values themselves
        # the first dataset's values above its dots, the second's below: they never collide
        for (dataset, row), marker, color, dy in zip(
            table.iterrows(), "os", ("C0", "C1"), (6, -6), strict=False
        ):
            v = row.to_numpy(dtype=float)
            ax.scatter(v, pos, marker=marker, s=36, color=color, zorder=3, label=str(dataset))
            for p, value in zip(pos[np.isfinite(v)], v[np.isfinite(v)], strict=True):
                ax.annotate(
                    f"{value:.3f}", (value, p), xytext=(0, dy), textcoords="offset points",
                    ha="center", va="bottom" if dy > 0 else "top", fontsize=7, color=color,
                )  # fmt: skip
        ax.set_ylim(0.3, len(names) + 0.7)
        fig.legend(title="dataset", loc="outside right upper", fontsize="small", frameon=False)
    else:
        boxes = [table[c].dropna() for c in table.columns]
        ax.boxplot(boxes, orientation="horizontal", medianprops={"color": "C1"})
        ax.scatter(table.mean(), pos, marker="D", color="C3", zorder=3)
        handles = [
            Line2D([], [], marker="D", color="C3", linestyle="none", label="mean"),
            Line2D([], [], color="C1", label="median"),
            Line2D([], [], color="black", label="box: quartiles\nwhiskers: 1.5 IQR\no: beyond"),
        ]
        fig.legend(handles=handles, loc="outside right upper", fontsize="small", frameon=False)
    ax.set_yticks(pos, names)
    ax.set_xlabel("ROC-AUC per dataset (mean over seeds)")
    ax.set_title(f"protocol {protocol}: {n_sets} dataset{'s' * (n_sets != 1)}")
    _with_key(fig, key, width)
    return fig


def _heatmap_figure(table: pd.DataFrame, jobs: pd.DataFrame, protocol: str) -> Any:
    """Dataset x detector ROC-AUC, the value in each cell; ``table`` columns best first."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    names, key = _short_names(table.columns)
    values = table.to_numpy(dtype=float)
    missing = ~np.isfinite(values)
    statuses = jobs.groupby(["dataset", "detector"]).status.agg(set)

    notes = {
        "timeout": "timeout: every seed ran past the time limit",
        "error": "error: every seed failed (see the error column of the results)",
        "not run": "not run: no job for this pair",
    }
    reasons = {}
    for i, j in zip(*np.nonzero(missing), strict=True):
        seen = statuses.get((table.index[i], table.columns[j]), set())
        reasons[i, j] = next((k for k in ("timeout", "error") if k in seen), "not run")
    lines = [*key]
    if reasons:
        kinds = sorted(set(reasons.values()))
        lines.append("grey cells have no ROC-AUC. " + "; ".join(notes[k] for k in kinds) + ".")
    width = max(5.0, 2.2 + 0.6 * len(names))
    fig = Figure(
        figsize=(width, 0.3 * len(table) + 2.6 + _key_height(lines, width)), layout="constrained"
    )
    ax = fig.add_subplot()
    cmap = colormaps["viridis"].with_extremes(bad="0.85")
    im = ax.imshow(np.ma.masked_invalid(values), aspect="auto", cmap=cmap, vmin=0.4, vmax=1)
    for (i, j), v in np.ndenumerate(values):
        if missing[i, j]:
            ax.text(j, i, reasons[i, j], ha="center", va="center", fontsize=5.5, color="0.3")
        else:
            r, g, b, _ = cmap(im.norm(v))
            ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6.5, color=ink)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(table)), table.index, fontsize=8)
    fig.colorbar(im, ax=ax, label="ROC-AUC", extend="min", fraction=0.05)  # ▼: below 0.4
    ax.set_title(f"protocol {protocol}: ROC-AUC, mean over seeds")
    _with_key(fig, lines, width)
    return fig


def summary_json(summary: dict[str, Any]) -> str:
    """The summary as JSON (NaN as null)."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(summary), indent=1)


def frame_dataset(X: Any, y: Any, folder: str | os.PathLike[str], name: str) -> Path:
    """Write a labelled user table as an ADBench-format ``.npz`` in ``folder`` (for jobs).

    The same ``X`` and ``y`` give the same bytes (not so with ``np.savez``, whose archive
    members carry the time of writing), so the file's hash tells a resumed run whether a
    user's data changed.
    """
    path = Path(folder) / f"{name}.npz"
    arrays = {"X": np.asarray(X, dtype=np.float64), "y": np.asarray(y, dtype=np.int64)}
    with zipfile.ZipFile(path, "w") as archive:
        for key, arr in arrays.items():  # ZipInfo's date is fixed (1980-01-01)
            with archive.open(zipfile.ZipInfo(f"{key}.npy"), "w", force_zip64=True) as f:
                np.lib.format.write_array(f, arr, allow_pickle=False)
    load_npz(path)  # the same checks as the suite's files
    return path


def temp_folder() -> str:
    """A folder for user datasets converted to ``.npz`` during a run."""
    return tempfile.mkdtemp(prefix="anomalia-bench-")


__all__ = [
    "PROTOCOLS",
    "Job",
    "Resumed",
    "adbench_datasets",
    "available_cores",
    "default_data_dir",
    "default_reference_dir",
    "detector_params",
    "execute",
    "file_sha256",
    "keys",
    "load_npz",
    "make_scorer",
    "plan",
    "plot_results",
    "read_results",
    "resume",
    "run",
    "run_job",
    "split",
    "summarize",
    "summary_markdown",
]
