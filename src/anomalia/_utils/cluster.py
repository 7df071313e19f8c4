"""What Dask and Spark scoring share: the model file as the transport, loaded once per process.

The driver turns a model (a file, or a fitted detector serialised with
:func:`anomalia.persistence.to_bytes`) into the file's bytes and their SHA-256, and loads it
once itself so that a bad file fails before any task runs. Each worker process receives the
bytes once (the engine's broadcast), checks their SHA-256, writes them to a temporary file and
loads it with :func:`anomalia.persistence.load_model`, with every check of loading; the
detector is then cached in the process under that digest, so later partitions reuse it. Rows
are read with :func:`anomalia.io.dataset_from_frame` and the model's table spec, exactly as
``anomalia score`` reads a file. No model is ever pickled.
"""

from __future__ import annotations

import hashlib
import numbers
import os
import shutil
import tempfile
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ..errors import AnomaliaError, DataError, ModelFileError
from ..io import TableSpec, dataset_from_frame

#: The two columns scoring adds, with their dtypes.
SCORE_COLUMNS: dict[str, str] = {"anomaly_score": "float64", "is_anomaly": "bool"}

_CACHE_SIZE = 4  # models kept per process, most recently used first
_cache: OrderedDict[str, Any] = OrderedDict()
_lock = threading.RLock()  # one load per process, even with several threads
#: How many times this process loaded each model (by digest): once, then the cache serves it.
loads: Counter[str] = Counter()


def digest_of(blob: bytes) -> str:
    """The SHA-256 of a model file's bytes, in hex."""
    return hashlib.sha256(blob).hexdigest()


def _load_blob(blob: bytes, digest: str, *, key: bytes | None = None, label: str) -> Any:
    """Load a model from its bytes via a temporary file, with all the checks of loading."""
    from ..persistence import load_model

    if digest_of(blob) != digest:
        raise ModelFileError(f"{label}: the model's bytes changed in transit (SHA-256 mismatch)")
    folder = tempfile.mkdtemp(prefix="anomalia-model-")
    path = Path(folder) / f"{digest[:16]}.anomalia"
    try:
        path.write_bytes(blob)
        try:
            return load_model(path, key=key)
        except ModelFileError as exc:
            raise ModelFileError(str(exc).replace(str(path), label)) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _remember(digest: str, loaded: Any) -> None:
    with _lock:
        _cache[digest] = loaded
        _cache.move_to_end(digest, last=False)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem()


def worker_model(digest: str, blob: bytes | Callable[[], bytes]) -> Any:
    """The detector whose model file has SHA-256 ``digest``, loaded once per process.

    Parameters
    ----------
    digest : str
        SHA-256 (hex) of the model file, computed on the driver.
    blob : bytes or callable returning bytes
        The model file's bytes, or a function fetching them (read only on a cache miss,
        e.g. a Spark broadcast's ``value``).
    """
    with _lock:
        if digest in _cache:
            _cache.move_to_end(digest, last=False)
            return _cache[digest][0]
        data = blob() if callable(blob) else blob
        loaded = _load_blob(bytes(data), digest, label=f"model {digest[:12]}")
        loads[digest] += 1
        _remember(digest, loaded)
    return loaded[0]


def prepare(
    model: Any, *, spec: TableSpec | None = None, key: bytes | None = None
) -> tuple[bytes, str, Any, TableSpec]:
    """On the driver: the bytes to ship, their SHA-256, the loaded detector and the table spec.

    Parameters
    ----------
    model : str, path-like or fitted detector
        A model file, or a fitted anomalia detector (serialised with ``to_bytes``).
    spec : TableSpec, optional
        How to read rows. Default: the spec saved in the model file
        (``manifest["metadata"]["table"]``); for a detector, its training column names.
    key : bytes, optional
        Signing key: a model file must carry a valid signature made with it.
    """
    if isinstance(model, str | os.PathLike):
        from ..persistence import MAX_BYTES_ENV, MAX_MANIFEST_BYTES, _max_bytes

        path = Path(model)
        try:
            if path.is_file() and path.stat().st_size > _max_bytes(None) + MAX_MANIFEST_BYTES:
                raise ModelFileError(
                    f"{path} holds {path.stat().st_size} bytes, above the ceiling on a model "
                    f"(raise ${MAX_BYTES_ENV} for a model this large)"
                )
            blob = path.read_bytes()
        except FileNotFoundError:
            raise ModelFileError(f"model file not found: {path}") from None
        except IsADirectoryError:
            raise ModelFileError(f"{path} is a folder, not a model file") from None
        except OSError as exc:
            raise ModelFileError(f"cannot read model file {path}: {exc.strerror or exc}") from None
        label = str(path)
    elif hasattr(model, "anomaly_score"):
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted

        from ..persistence import to_bytes

        try:
            check_is_fitted(model)
        except NotFittedError:
            raise AnomaliaError(f"the {type(model).__name__} is not fitted") from None
        if spec is None:
            names = getattr(model, "feature_names_in_", None)
            if names is None:
                raise AnomaliaError(
                    "the detector was fitted without column names: pass spec=TableSpec(...) "
                    "saying which columns are its features"
                )
            spec = TableSpec(feature_names=[str(c) for c in names])
        blob = to_bytes(model, metadata={"table": spec.to_dict()})
        label = f"in-memory {type(model).__name__}"
    else:
        raise AnomaliaError(
            f"model must be a model file path or a fitted detector, got {type(model).__name__}"
        )
    digest = digest_of(blob)
    with _lock:
        loaded = _cache.get(digest) if key is None else None  # a key: check the signature
        if loaded is None:
            loaded = _load_blob(blob, digest, key=key, label=label)
        _remember(digest, loaded)
    detector, manifest = loaded
    if spec is None:
        spec = TableSpec.from_manifest(manifest, label)
    return blob, digest, detector, spec


def output_columns(columns: Sequence[str], keep: str | Sequence[str] | None) -> list[str]:
    """The input columns kept in the output: ``keep`` checked against ``columns``."""
    columns = [str(c) for c in columns]
    if isinstance(keep, str):
        keep = [keep]
    kept = columns if keep is None else [str(c) for c in keep]
    missing = [c for c in kept if c not in columns]
    if missing:
        raise DataError(f"keep names column(s) {missing} that the data does not have")
    clash = [c for c in kept if c in SCORE_COLUMNS]
    if clash:
        raise DataError(
            f"the data already has column(s) {clash}; drop or rename them, or leave them "
            "out of keep"
        )
    return kept


def score_rows(
    frame: pd.DataFrame, detector: Any, spec: TableSpec, source: str
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """``anomaly_score`` and ``is_anomaly`` of a raw table, read exactly as ``anomalia score``."""
    if len(frame) == 0:
        return np.empty(0, dtype=np.float64), np.empty(0, dtype=bool)
    ds = dataset_from_frame(frame, spec, name=source)
    scores = np.asarray(detector.anomaly_score(ds.X), dtype=np.float64)
    return scores, scores > detector.threshold_


def score_frame(
    frame: pd.DataFrame,
    digest: str,
    blob: bytes | Callable[[], bytes],
    spec: dict[str, Any],
    kept: list[str],
    source: str,
) -> pd.DataFrame:
    """One partition with its kept columns and the two score columns (index unchanged)."""
    detector = worker_model(digest, blob)
    scores, flags = score_rows(frame, detector, TableSpec.from_dict(spec), source)
    out = frame.loc[:, kept].copy()
    out["anomaly_score"] = scores
    out["is_anomaly"] = flags
    return out


# -- writing a folder of part files ----------------------------------------------------------
def check_job(
    model_path: str | os.PathLike[str],
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    key: bytes | None = None,
) -> tuple[Path, Path]:
    """What ``score_files`` of either engine checks before it starts a cluster: the output
    folder is new, the data exists, and the model file loads (verified with ``key``).
    Returns ``(out, data)`` as paths."""
    out = check_output_folder(out)
    data = Path(data)
    if not data.exists():
        raise AnomaliaError(f"data not found: {data}")
    prepare(model_path, key=key)  # a bad model fails before any cluster starts
    return out, data


def check_output_folder(out: str | os.PathLike[str]) -> Path:
    """``out`` must not exist yet (nothing is ever overwritten) and its parent be writable."""
    out = Path(out)
    if out.exists():
        raise AnomaliaError(f"output {out} already exists; remove it or give a new folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AnomaliaError(f"cannot write {out}: {exc.strerror or exc}") from None
    return out


def atomic_folder(out: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary folder beside ``out``, then rename it to ``out``.

    On any error the temporary folder is removed and ``out`` is left absent.
    """
    try:
        scratch = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    except OSError as exc:
        raise AnomaliaError(f"cannot write {out}: {exc.strerror or exc}") from None
    tmp = scratch / "parts"  # the engines create the folder they write themselves
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        os.rename(tmp, out)
    except OSError as exc:
        raise AnomaliaError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def check_rows(n: Any) -> int:
    """A sample size: a whole number of rows, at least 0."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise AnomaliaError(f"n must be a whole number of rows >= 0, got {n!r}")
    return int(n)


def parquet_rows(folder: Path) -> int:
    """The number of rows in a folder of Parquet part files (read from their footers)."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in sorted(folder.glob("*.parquet")))
