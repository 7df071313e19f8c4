"""Public detector classes (scikit-learn outlier detectors)."""

from .classical import GaussianDetector, IForestDetector, OCSVMDetector

__all__ = ["GaussianDetector", "IForestDetector", "OCSVMDetector"]
