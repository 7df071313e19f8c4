"""A detector's exported graph run by onnxruntime, behind the detector's scoring interface.

``anomalia score --engine onnx`` and ``anomalia serve --engine onnx`` use it: the model file
is loaded and checked as always, exported in memory (:func:`~anomalia.export.to_onnx`), and
onnxruntime scores the rows. No ONNX file is ever read from disk: onnxruntime only sees the
graph anomalia built from a validated model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import DataError

#: Rows per onnxruntime call: bounds the memory of graphs whose intermediates grow with
#: rows x reference rows (a knn graph's distance matrix: 2,048 x 10,000 float64 = 164 MB).
RUN_ROWS = 2048


class OnnxScorer:
    """Score with onnxruntime what ``detector`` scores, as ``detector`` would.

    Parameters
    ----------
    detector : BaseDetector
        A fitted, exportable detector (see :mod:`anomalia.export`).
    dtype : {"float64", "float32"}, default="float64"
        Float type of the graph (see :func:`~anomalia.export.to_onnx`): float64 keeps the
        classical detectors' scores exact; networks compute in float32 either way.
    threads : int or None, default=None
        onnxruntime's intra-op threads (None: its default, every core).
    sha256 : str, optional
        The model file's SHA-256, kept in the graph's metadata.

    Attributes
    ----------
    threshold_ : float
        The detector's threshold: ``is_anomaly = anomaly_score > threshold_``.
    n_features_in_ : int
        Features per row.
    session : onnxruntime.InferenceSession
        The session scoring the rows.
    """

    def __init__(
        self,
        detector: Any,
        *,
        dtype: str = "float64",
        threads: int | None = None,
        sha256: str | None = None,
    ) -> None:
        from ._convert import _require, to_onnx

        _require("onnxruntime")
        import onnxruntime as ort

        model = to_onnx(detector, dtype=dtype, sha256=sha256)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # warnings about unused initializers are not the user's
        self.session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        self.detector = detector
        self.dtype = np.dtype(dtype)
        self.threshold_ = float(detector.threshold_)
        self.n_features_in_ = int(detector.n_features_in_)

    def anomaly_score(self, X: ArrayLike) -> NDArray[np.float64]:
        """Anomaly score of each row, float64, as ``detector.anomaly_score`` (to rounding).

        Raises
        ------
        DataError
            ``X`` is not a table of ``n_features_in_`` columns, holds NaN or infinity, or a
            row's score is not finite (named as the detector names it).
        """
        arr = np.asarray(X, dtype=self.dtype)
        if arr.ndim > 2:  # images: the graph takes each one flattened
            arr = arr.reshape(len(arr), -1)
        if arr.ndim != 2 or arr.shape[1] != self.n_features_in_:
            raise DataError(
                f"expected a table of {self.n_features_in_} feature columns, got shape {arr.shape}"
            )
        if not np.isfinite(arr).all():
            row = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
            raise DataError(f"row {row} holds NaN or infinity; the model needs numbers")
        arr = np.ascontiguousarray(arr)
        parts = [
            self.session.run(["anomaly_score"], {"X": arr[i : i + RUN_ROWS]})[0]
            for i in range(0, len(arr), RUN_ROWS)
        ]
        scores = np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)
        self.detector._check_scores(arr, scores)  # the detector's message for overflow
        return scores
