"""anomalia: anomaly detection with auto-encoders and their classical rivals.

Every detector is a scikit-learn outlier detector with one extra method, ``anomaly_score``
(higher = more anomalous), a threshold you can calibrate on a labelled dev set, and a safe
file format.

Examples
--------
>>> import anomalia
>>> from anomalia.datasets import load
>>> X, y = load("breast-cancer")
>>> det = anomalia.make_detector("gaussian").fit(X[y == 0][:150])
>>> bool(det.anomaly_score(X[y == 1]).mean() > det.anomaly_score(X[y == 0]).mean())
True
"""

from __future__ import annotations

from ._version import __version__
from .errors import AnomaliaError, DataError, ModelFileError, TrainingError
from .persistence import load
from .registry import available_detectors, make_detector

__all__ = [
    "AnomaliaError",
    "DataError",
    "ModelFileError",
    "TrainingError",
    "__version__",
    "available_detectors",
    "load",
    "make_detector",
]
