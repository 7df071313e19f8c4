"""Fitted detectors as ONNX models, to score without Python or anomalia.

:func:`to_onnx` turns a fitted detector into one ONNX graph (``anomalia export MODEL --out
model.onnx`` from the shell) that onnxruntime, or any ONNX runtime, runs:

* input ``X``: the raw feature matrix, shape ``(batch, n_features)`` with any batch size,
  float32 (default) or float64 (``dtype="float64"``). The columns are the model's features in
  training order (the ``feature_names`` metadata), after any one-hot encoding ``anomalia fit``
  did; image models take each image flattened, ``C x H x W`` values per row
  (the ``image_shape`` metadata).
* outputs ``anomaly_score`` (``batch``, the input's float type; higher is more anomalous,
  as :meth:`~anomalia.base.BaseDetector.anomaly_score`) and ``is_anomaly`` (``batch``,
  bool: ``anomaly_score > threshold_``).

Every step the detector applies is in the graph: the standardisation of the features or the
scaling of the pixels, the model itself, an ensemble's normalisation and weights, and the
threshold. The model's metadata (``metadata_props``) holds ``feature_names`` (a JSON list),
``threshold`` (the float64 threshold, as text), ``anomalia_version``, ``detector`` (its
name), ``model_sha256`` (of the model file, when given: the CLI gives it), ``dtype`` and
``image_shape`` (JSON, ``null`` for tables).

Which detectors export, and how:

* ``gaussian`` (density or distance): a subtraction and one matrix product with the
  precomputed ``diag(1 / scale) L^-T`` (``L`` the Cholesky factor).
* ``knn`` (largest, mean or median; duplicates counted or ignored): the training rows are an
  initializer; candidate neighbours come from squared distances by one matrix product, their
  exact distances from the differences themselves, then ``TopK``.
* ``ocsvm``: the kernel (rbf, linear, poly, sigmoid) against the support vectors in ONNX
  operators, computed in float64 whatever the input (its weighted sum cancels heavily);
  ``anomaly_score = -decision_function`` of the standardised rows.
* ``iforest``: every tree in one ``ai.onnx.ml`` ``TreeEnsembleRegressor`` whose leaves hold
  scikit-learn's path lengths; ``anomaly_score = 2 ** -(mean path length / c(max_samples))``,
  which is ``-score_samples``.
* ``ae``, ``dae``, ``conv-ae``, ``disentangle`` (reconstruction error), ``vae`` with
  ``score_method="elbo"`` (negative ELBO at the posterior mean) and ``vqvae`` (with or
  without code rarity): the network and its input scaling, exported by
  ``torch.onnx.export``'s dynamo exporter (torch 2.13's default; it uses onnxscript and
  works offline).
* ``ensemble`` and ``default``: the members' subgraphs, each member normalised as fitted
  (zscore, robust or rank) and weighted.

Anything else raises :class:`~anomalia.errors.AnomaliaError` saying why, never a model
that scores differently: a ``vae`` with ``score_method="mc"`` draws random numbers; a
``confidence`` detector (a classifier) is not supported.

Precision. onnxruntime computes in the graph's float type, anomalia in float64 (its networks
in float32), so scores agree to rounding, and a row whose score lies within that rounding of
``threshold_`` may be flagged differently. Measured with onnxruntime on breast cancer
(trained on the benign rows, all 569 rows scored) and sklearn's digits for image models, as
``max |onnx - anomalia| / (|score| + mean |score|)`` (relative, with a floor at the scores'
scale: a score crossing 0, as a log-density or an SVM decision does, has no relative error of
its own): float32 stays within 4e-7 for every detector (gaussian 3.5e-7, knn 1e-7, ocsvm
1.7e-7, iforest 1.7e-7, default 1.7e-7, the networks 1.3e-7 to 2.6e-7), no row flagged
differently; float64 makes the classical detectors exact (1e-15; 1e-8 where scikit-learn's
own brute-force neighbour search rounds). The float32 limit is the rounding of the input
itself: a feature whose values are large next to its spread (a timestamp of 1.7e9 varying
by 1e3) loses its digits when cast to float32, and scores move by 1e-2 to 1e-1; use
``dtype="float64"`` for such data. The networks compute in float32 either way, as in
anomalia (float64 input is cast first), and so do isolation forests' trees, as in
scikit-learn (each float64 split value is rounded down to float32, so that every float32
value takes scikit-learn's branch). ``knn`` with ``duplicates="ignore"`` recognises a row's
own copy in training by the detector's rule (nearest distance ``<= 1e-6 * sqrt(n_features)``),
which in float32 holds while the raw values are within about 8 standard deviations of 0
(``|x| / scale``). An ensemble with ``normalization="rank"`` is a step function of its members'
scores: a member score within rounding of one of that member's training scores (the
training rows themselves score exactly there) can move the ensemble score by one step,
``weight / sum(weights) / n_train``. Rows whose score anomalia refuses (non-finite: values
far beyond the training range) come out as ``inf`` or ``nan``, and ``nan`` is not flagged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import AnomaliaError

__all__ = ["DTYPES", "OnnxScorer", "metadata", "to_onnx"]

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
    from .. import __version__

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


from ._runtime import OnnxScorer  # noqa: E402  (it calls to_onnx, defined above)
