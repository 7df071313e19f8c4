"""Building a detector's ONNX graph (:func:`to_onnx`) and its metadata; see
:mod:`anomalia.export` for what is exported and how."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import AnomaliaError

#: The input and computation float types an exported graph can have.
DTYPES = ("float32", "float64")


def _require(*modules: str) -> None:
    """Refuse clearly when an optional package of the ``export`` extra is missing."""
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            raise AnomaliaError(
                f"exporting to ONNX needs the optional package {module}: "
                "pip install 'anomalia[export]'"
            ) from None


def _score(g: Any, det: Any, x: str) -> str:
    """Append the anomaly score of ``det`` on the rows ``x`` to the graph ``g``."""
    from ..detectors.classical import (
        GaussianDetector,
        IForestDetector,
        KNNDetector,
        OCSVMDetector,
    )
    from ..detectors.ensemble import EnsembleDetector
    from . import _classical

    if isinstance(det, GaussianDetector):
        return _classical.gaussian_score(g, det, x)
    if isinstance(det, KNNDetector):
        return _classical.knn_score(g, det, x)
    if isinstance(det, OCSVMDetector):
        return _classical.ocsvm_score(g, det, x)
    if isinstance(det, IForestDetector):
        return _classical.iforest_score(g, det, x)
    if isinstance(det, EnsembleDetector):
        from ._ensemble import ensemble_score

        return ensemble_score(g, det, x, _score)
    if _is_network(det):
        from ._torch import torch_score

        return torch_score(g, det, x)
    raise AnomaliaError(
        f"cannot export {type(det).__name__} ({det.name or 'unregistered'}) to ONNX: "
        "exportable detectors are gaussian, knn, ocsvm, iforest, ae, dae, conv-ae, vae, vqvae, "
        "disentangle, ensemble and default"
    )


def _is_network(det: Any) -> bool:
    """Whether ``det`` is one of the auto-encoder detectors (imports torch only if it may be)."""
    import sys

    if "anomalia.detectors.autoencoder" not in sys.modules:
        return False  # no auto-encoder detector can exist without its module imported
    from ..detectors.autoencoder import _AutoEncoderBase

    return isinstance(det, _AutoEncoderBase)


def _check_exportable(det: Any) -> None:
    """Refuse, before any graph is built, what cannot be exported (members included)."""
    from sklearn.utils.validation import check_is_fitted

    from ..base import BaseDetector

    if not isinstance(det, BaseDetector):
        raise AnomaliaError(f"to_onnx needs an anomalia detector, got {type(det).__name__}")
    try:
        check_is_fitted(det)
    except Exception:  # NotFittedError
        raise AnomaliaError(
            f"cannot export an unfitted {type(det).__name__}: fit it first"
        ) from None
    if _is_network(det):
        from ._torch import torch_kind

        torch_kind(det)
        _require("onnxscript")  # torch's dynamo exporter translates through it
    for member in getattr(det, "detectors_", None) or ():
        _check_exportable(member)


def metadata(
    det: Any,
    *,
    sha256: str | None = None,
    feature_names: Sequence[str] | None = None,
    dtype: str = "float32",
    detector_name: str | None = None,
) -> dict[str, str]:
    """The ``metadata_props`` :func:`to_onnx` writes, as a dict of strings.

    Parameters are those of :func:`to_onnx`.
    """
    from .._version import __version__

    n = int(det.n_features_in_)
    if feature_names is None:
        names = getattr(det, "feature_names_in_", None)
        feature_names = [f"x{j}" for j in range(n)] if names is None else list(names)
    feature_names = [str(f) for f in feature_names]
    if len(feature_names) != n:
        raise AnomaliaError(
            f"feature_names holds {len(feature_names)} names; the model has {n} features"
        )
    shape = getattr(det, "image_shape_", None)
    props = {
        "feature_names": json.dumps(feature_names),
        "threshold": repr(float(det.threshold_)),
        "anomalia_version": __version__,
        "detector": detector_name or det.name or type(det).__name__,
        "dtype": dtype,
        "image_shape": json.dumps(None if shape is None else [int(s) for s in shape]),
    }
    if sha256 is not None:
        sha = str(sha256).lower()
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise AnomaliaError(f"sha256 must be 64 hexadecimal digits, got {sha256!r}")
        props["model_sha256"] = sha
    return props


def to_onnx(
    detector: Any,
    *,
    sha256: str | None = None,
    feature_names: Sequence[str] | None = None,
    dtype: str = "float32",
    detector_name: str | None = None,
) -> Any:
    """Export a fitted detector as one ONNX graph: raw rows in, anomaly score and flag out.

    Parameters
    ----------
    detector : BaseDetector
        A fitted anomalia detector (see the module docstring for which ones export).
    sha256 : str, optional
        SHA-256 (hex) of the model file the detector was loaded from, kept in the metadata
        as ``model_sha256`` (``anomalia export`` passes it).
    feature_names : sequence of str, optional
        Names of the input columns, kept in the metadata as a JSON list. Default: the
        detector's ``feature_names_in_`` (fitted on a DataFrame), else ``x0``, ``x1``, ...
    dtype : {"float32", "float64"}, default="float32"
        Float type of the input ``X``, of the computation and of ``anomaly_score``.
        ``"float64"`` is needed where rounding the input to float32 moves the score:
        features whose values are large next to their spread (timestamps, ids). The
        classical detectors are then exact; networks and trees compute in float32 in both,
        as in anomalia and scikit-learn.
    detector_name : str, optional
        The detector's name in the metadata (default: its registry name, e.g. ``ensemble``;
        ``anomalia export`` gives the name it was fitted under, e.g. ``default``).

    Returns
    -------
    onnx.ModelProto
        A model that passes ``onnx.checker.check_model``: input ``X`` of shape
        ``(batch, n_features)``; outputs ``anomaly_score`` ``(batch,)`` and
        ``is_anomaly`` ``(batch,)`` bool (``anomaly_score > threshold_``).

    Raises
    ------
    AnomaliaError
        The detector is unfitted or cannot be exported (the message says why), a
        parameter is invalid, or onnx / skl2onnx are not installed.

    Examples
    --------
    >>> import numpy as np
    >>> import pytest
    >>> _ = pytest.importorskip("onnx")
    >>> from anomalia import make_detector
    >>> from anomalia.export import to_onnx
    >>> det = make_detector("gaussian").fit(np.random.default_rng(0).normal(size=(100, 3)))
    >>> model = to_onnx(det, feature_names=["a", "b", "c"])
    >>> [o.name for o in model.graph.output]
    ['anomaly_score', 'is_anomaly']
    """
    _require("onnx")
    import onnx

    from ._graph import Graph

    if dtype not in DTYPES:
        raise AnomaliaError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    _check_exportable(detector)
    props = metadata(
        detector,
        sha256=sha256,
        feature_names=feature_names,
        dtype=dtype,
        detector_name=detector_name,
    )
    g = Graph(np.dtype(dtype))
    for reserved in ("X", "anomaly_score", "is_anomaly"):
        g.name(reserved)
    score = _score(g, detector, "X")
    g.nodes.append(onnx.helper.make_node("Identity", [score], ["anomaly_score"], name="score"))
    threshold = g.const(np.array(float(detector.threshold_)), "threshold")
    g.nodes.append(
        onnx.helper.make_node("Greater", ["anomaly_score", threshold], ["is_anomaly"], name="flag")
    )
    model = g.model(
        "X",
        int(detector.n_features_in_),
        [("anomaly_score", g.elem, ["batch"]), ("is_anomaly", onnx.TensorProto.BOOL, ["batch"])],
        doc=f"anomalia {props['detector']} detector: anomaly_score (higher is more anomalous) "
        f"and is_anomaly (anomaly_score > {props['threshold']}) of the raw rows X",
    )
    onnx.helper.set_model_props(model, props)
    onnx.checker.check_model(model, full_check=True)
    return model
