"""Detector names -> classes, imported lazily so ``import anomalia`` stays light (no torch)."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from .errors import AnomaliaError

# name -> ("module:Class", one-line description for users)
_REGISTRY: dict[str, tuple[str, str]] = {
    "gaussian": (
        "anomalia.detectors.classical:GaussianDetector",
        "multivariate Gaussian (max. likelihood); score = negative log-density. Few, "
        "roughly elliptical features; fast and explainable.",
    ),
    "ocsvm": (
        "anomalia.detectors.classical:OCSVMDetector",
        "one-class SVM with an RBF kernel on standardised features. Small/medium tables with "
        "curved normal regions.",
    ),
    "iforest": (
        "anomalia.detectors.classical:IForestDetector",
        "isolation forest. Large tables, mixed scales, irrelevant features; a strong first choice.",
    ),
}


def register(name: str, target: str, description: str) -> None:
    """Register a detector class under ``name`` (``target`` is ``"module:Class"``)."""
    _REGISTRY[name] = (target, description)


def available_detectors() -> dict[str, str]:
    """Names of all detectors, each with a one-line description of when to use it."""
    return {name: desc for name, (_, desc) in _REGISTRY.items()}


def detector_class(name: str) -> type:
    """The class registered under ``name``; :class:`AnomaliaError` for an unknown name."""
    try:
        target, _ = _REGISTRY[name]
    except KeyError:
        raise AnomaliaError(
            f"unknown detector {name!r}; available: {', '.join(_REGISTRY)}"
        ) from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def make_detector(name: str, **params: Any) -> Any:
    """Create the detector registered under ``name`` with the given parameters.

    Parameters
    ----------
    name : str
        A name from :func:`available_detectors`, e.g. ``"gaussian"``, ``"iforest"``.
    **params
        Constructor parameters of that detector; an unknown one raises
        :class:`~anomalia.errors.AnomaliaError` listing the valid ones.

    Examples
    --------
    >>> from anomalia import make_detector
    >>> make_detector("iforest", n_estimators=50, random_state=0)
    IForestDetector(n_estimators=50, random_state=0)
    """
    cls = detector_class(name)
    valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise AnomaliaError(
            f"unknown parameter(s) {', '.join(unknown)} for detector {name!r}; "
            f"valid: {', '.join(valid)}"
        )
    return cls(**params)
