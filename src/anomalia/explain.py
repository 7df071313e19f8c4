"""Why is a row anomalous? The features an auto-encoder reconstructs worst."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._utils.validation import check_int
from .errors import AnomaliaError


def explain(
    detector: Any,
    X: ArrayLike,
    *,
    top: int = 5,
    flagged_only: bool = True,
    max_rows: int | None = 20,
    feature_names: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """The ``top`` features with the largest reconstruction error of the most anomalous rows.

    Parameters
    ----------
    detector : fitted detector with ``feature_errors``
        An auto-encoder detector (``ae``, ``dae``, ``vae``, ``vqvae``, ``conv-ae``).
    X : array-like
        Rows to explain.
    top : int, default=5
        Features listed per row (at least 1).
    flagged_only : bool, default=True
        Only rows above the detector's threshold.
    max_rows : int or None, default=20
        At most this many rows (at least 1), the most anomalous first (None: all).
    feature_names : sequence of str, optional
        Names of the features; default the detector's ``feature_names_in_`` or ``x0, x1, ...``
        (``pixel(c,h,w)`` for images).

    Returns
    -------
    list of dict
        Per row, most anomalous first: ``row`` (position in ``X``), ``anomaly_score``,
        ``flagged`` and ``features``, a list of ``(name, squared error in scaled units)``.
    """
    check_int("top", top)
    if max_rows is not None:
        check_int("max_rows", max_rows)
    if not hasattr(detector, "feature_errors"):
        raise AnomaliaError(
            f"{type(detector).__name__} cannot explain rows: use an auto-encoder detector "
            "(ae, dae, vae, vqvae, conv-ae), whose reconstruction error splits into features"
        )
    scores = detector.anomaly_score(X)
    order = np.argsort(-scores, kind="stable")
    if flagged_only:
        order = order[scores[order] > detector.threshold_]
    order = order[:max_rows]
    errors = detector.feature_errors(
        np.asarray(X)[order] if not hasattr(X, "iloc") else X.iloc[order]
    )
    errors = errors.reshape(len(order), -1)
    names = _names(detector, errors.shape[1], feature_names)
    k = min(top, errors.shape[1])
    best = np.argsort(-errors, axis=1, kind="stable")[:, :k]
    return [
        {
            "row": int(i),
            "anomaly_score": float(scores[i]),
            "flagged": bool(scores[i] > detector.threshold_),
            "features": [(names[j], float(errors[r, j])) for j in best[r]],
        }
        for r, i in enumerate(order)
    ]


def _names(detector: Any, n: int, given: Sequence[str] | None) -> list[str]:
    if given is not None:
        return list(given)
    if hasattr(detector, "feature_names_in_"):
        return [str(c) for c in detector.feature_names_in_]
    shape = getattr(detector, "image_shape_", None)
    if shape is not None:
        return [f"pixel{tuple(int(v) for v in ix)}" for ix in np.ndindex(*shape)]
    return [f"x{j}" for j in range(n)]
