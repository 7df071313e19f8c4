"""The models a service holds: loaded once, read-only, scored exactly as ``anomalia score``."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import AnomaliaError, DataError
from ..io import Dataset, TableSpec, dataset_from_frame, read_bytes
from ..persistence import _decode, load_model, to_bytes


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


#: What can score a served model's requests.
ENGINES = ("python", "onnx")


@dataclass(frozen=True)
class ServedModel:
    """One model file, loaded at start-up.

    Parameters
    ----------
    name : str
        The name requests use (``/v1/models/{name}``).
    path : Path
        The file it was loaded from (never shown to clients).
    detector : fitted detector
        Never changed after loading: calibration works on a copy.
    manifest : dict
        The file's manifest.
    spec : TableSpec
        The data options saved with the model: how request tables are read.
    sha256 : str
        SHA-256 of the file's bytes.
    load_seconds : float
        Time the load took, in seconds.
    scorer : object, optional
        What scores requests: the detector itself (default), or an
        :class:`~anomalia.export.OnnxScorer` of it (``--engine onnx``). Explanations and
        calibration always use the detector.
    """

    name: str
    path: Path
    detector: Any
    manifest: dict[str, Any]
    spec: TableSpec
    sha256: str
    load_seconds: float
    scorer: Any = None

    @classmethod
    def load(
        cls,
        path: str | Path,
        name: str | None = None,
        key: bytes | None = None,
        engine: str = "python",
    ) -> ServedModel:
        """Load ``path`` (verifying its signature when ``key`` is given); ``engine``:
        ``"python"`` scores with the detector, ``"onnx"`` with its graph in onnxruntime."""
        if engine not in ENGINES:
            raise AnomaliaError(f"--engine must be one of {', '.join(ENGINES)}; got {engine!r}")
        path = Path(path)
        start = time.perf_counter()
        detector, manifest = load_model(path, key=key)
        spec = TableSpec.from_manifest(manifest, str(path))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        name = name or path.name.split(".")[0]
        scorer = detector
        if engine == "onnx":
            from ..export import OnnxScorer

            scorer = OnnxScorer(detector, sha256=digest, threads=1)
        seconds = time.perf_counter() - start
        return cls(name, path, detector, manifest, spec, digest, seconds, scorer)

    @property
    def engine(self) -> str:
        """``"onnx"`` or ``"python"``: what scores requests."""
        return "python" if self.scorer is None or self.scorer is self.detector else "onnx"

    def anomaly_score(self, X: Any) -> Any:
        """The scores of ``X`` by the engine the model is served with."""
        return (self.scorer or self.detector).anomaly_score(X)

    def card(self) -> dict[str, Any]:
        """What a client may know about the model: no path, no arrays."""
        det, meta = self.detector, self.manifest["metadata"]
        features = self.spec.feature_names
        if features is None and hasattr(det, "feature_names_in_"):
            features = [str(c) for c in det.feature_names_in_]
        return {
            "name": self.name,
            "detector": meta.get("detector", self.manifest["detector"]),
            "parameters": _jsonable(_decode(self.manifest["params"])),
            "feature_names": features,
            "n_features": int(det.n_features_in_),
            "id_column": self.spec.id_column,
            "label_column": self.spec.label_column,
            "threshold": float(det.threshold_),
            "calibration": _jsonable(getattr(det, "calibration_", {})),
            "train_rows": meta.get("train_rows"),
            "versions": self.manifest["versions"],
            "sha256": self.sha256,
            "can_explain": hasattr(det, "feature_errors"),
            "engine": self.engine,
        }

    # -- reading request tables ------------------------------------------------------------
    def read(self, body: bytes, fmt: str, *, labels: str | None = None) -> Dataset:
        """A request body (``".json"``, ``".csv"`` or ``".parquet"``) as a dataset.

        ``labels``: the label column of a dev set (default: the model's saved one); without
        a dev set a present label column is ignored, as ``anomalia score`` does.
        """
        spec = self.spec if labels is None else dataclasses.replace(self.spec, label_column=labels)
        if fmt == ".json":
            doc = parse_json(body)
            fast = self._plain_rows(doc) if labels is None else None
            if fast is not None:
                return fast
            return dataset_from_frame(frame_from_json(doc, self.spec), spec, name="request body")
        return read_bytes(body, fmt, spec)

    def _plain_rows(self, doc: Any) -> Dataset | None:
        """``{"columns", "data"}`` naming exactly the model's numeric features, all finite:
        straight to a float64 array (the same values ``dataset_from_frame`` would make, in
        the same memory layout). Anything else returns None and takes the full path, whose
        error messages name each problem."""
        spec = self.spec
        if (
            not isinstance(doc, dict)
            or set(doc) != {"columns", "data"}
            or spec.categories
            or spec.id_column is not None
            or doc["columns"] != spec.feature_names
        ):
            return None
        try:
            arr = np.asarray(doc["data"])
        except (ValueError, TypeError):
            return None
        if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] != len(spec.feature_names):
            return None
        if arr.dtype.kind not in "iuf" or not np.isfinite(arr).all():
            return None
        X = pd.DataFrame(np.asfortranarray(arr, dtype=np.float64), columns=spec.feature_names)
        return Dataset(X=X, y=None, ids=None, name="request body", spec=spec)

    def score(self, ds: Dataset, explain: int = 0) -> dict[str, Any]:
        """The response of ``/score``: the same numbers as ``anomalia score`` writes."""
        det = self.detector
        scores = self.anomaly_score(ds.X)
        out: dict[str, Any] = {
            "model": self.name,
            "threshold": float(det.threshold_),
            "anomaly_score": scores.tolist(),
            "is_anomaly": (scores > det.threshold_).tolist(),
        }
        if ds.ids is not None:
            out["ids"] = {"column": str(ds.ids.name), "values": _jsonable(ds.ids.tolist())}
        if explain:
            from ..explain import explain as explain_rows

            rows = explain_rows(det, ds.X, top=explain, flagged_only=False, max_rows=None)
            by_row = {
                r["row"]: [{"feature": f, "error": e} for f, e in r["features"]] for r in rows
            }
            out["explanation"] = [by_row[i] for i in range(len(scores))]
        return out

    def calibrated(
        self, ds: Dataset, strategy: str, options: dict[str, Any], key: bytes | None
    ) -> bytes:
        """A copy of the model calibrated on ``ds`` (what ``anomalia calibrate`` writes).

        ``strategy="manual"`` keeps ``options["threshold"]`` as chosen on the page.
        """
        from ..thresholds import describe_strategy

        if ds.y is None:
            raise DataError("the dev set needs labels: name its label column")
        det = copy.deepcopy(self.detector)
        if strategy == "manual":
            threshold = options.get("threshold")
            if not isinstance(threshold, float | int) or not np.isfinite(threshold):
                raise DataError("strategy 'manual' needs a finite threshold")
            det.threshold_ = float(threshold)
            det.calibration_ = {**describe_strategy("manual"), "dev_rows": len(ds.y)}
        else:
            det.calibrate(ds.X, ds.y, strategy, **options)
        return to_bytes(det, metadata=self.manifest["metadata"], key=key)


def parse_json(body: bytes) -> Any:
    """The request body as JSON (orjson: standard JSON only, no NaN literals)."""
    import orjson

    try:
        return orjson.loads(body)
    except (orjson.JSONDecodeError, RecursionError):
        raise BadRequest("the body is not valid JSON") from None


def frame_from_json(doc: Any, spec: TableSpec) -> pd.DataFrame:
    """``{"rows": [{col: value}, ...]}`` or ``{"columns": [...], "data": [[...], ...]}``."""
    if not isinstance(doc, dict) or not ({"rows"} == set(doc) or {"columns", "data"} == set(doc)):
        raise DataError(
            'the JSON body must be {"rows": [...]} or {"columns": [...], "data": [...]}'
        )
    if "rows" in doc:
        rows = doc["rows"]
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise DataError('"rows" must be a list of objects, one per row')
        columns = list(rows[0]) if rows else []
        for i, r in enumerate(rows, 1):
            if list(r) != columns and set(r) != set(columns):
                missing, extra = sorted(set(columns) - set(r)), sorted(set(r) - set(columns))
                raise DataError(
                    f"row {i} has other fields than row 1 (missing {missing}, extra {extra})"
                )
        data = [[r[c] for c in columns] for r in rows]
    else:
        columns, data = doc["columns"], doc["data"]
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise DataError('"columns" must be a list of column names')
        if not isinstance(data, list) or not all(isinstance(r, list) for r in data):
            raise DataError('"data" must be a list of rows (lists of values)')
        for i, r in enumerate(data, 1):
            if len(r) != len(columns):
                raise DataError(f"row {i} has {len(r)} values for {len(columns)} columns")
    for i, r in enumerate(data, 1):
        for v in r:
            if v is not None and not isinstance(v, str | int | float | bool):
                raise DataError(f"row {i} holds a nested value; values must be numbers or text")
    if len(set(columns)) != len(columns):
        raise DataError("a column name appears twice")
    frame = pd.DataFrame(data, columns=columns)
    for c in spec.categories or {}:  # categories are text, as when a CSV is read
        if c in frame:
            frame[c] = frame[c].map(lambda v: v if v is None or isinstance(v, str) else str(v))
    return frame


class BadRequest(AnomaliaError):
    """The request itself is malformed (HTTP 400), as opposed to data the model refuses (422)."""
