"""The scale of a feature that is constant in the training rows."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

#: A feature constant in training is standardised by this share of its value (of at least
#: 1; the scale is at most 1): a row that differs by 1 from a constant 0 is 1,000 units away.
UNSEEN_SCALE = 1e-3


def constant_features(mean: NDArray[np.float64], std: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Which features are constant, from their training mean and (population) standard
    deviation: ``std <= 1e-12 * max(1, |mean|)`` (float rounding of one value counts)."""
    return std <= 1e-12 * np.maximum(1.0, np.abs(mean))


def constant_feature_scale(value: NDArray[np.float64]) -> NDArray[np.float64]:
    """Scale for features constant in the training rows, from their constant ``value``.

    Such a feature has no spread to standardise by. Scale 1 (scikit-learn's choice) makes a
    value it never took in training count like one standard deviation on one feature, and
    that drowns among many features: a test row with several values the normal rows never
    showed can look normal. This scale makes such a value far: ``UNSEEN_SCALE * max(1,
    |value|)``, at most 1, so a row that differs by 1 from a constant 0 is 1,000 units away.
    Relative to the value, so that float32 rounding of a large constant (a timestamp) stays
    small; at most 1, so that no constant is treated as less unusual than scale 1 would.
    Training rows are unaffected (their difference there is 0). PyOD's auto-encoders get a
    similar effect from dividing by ``std + 1e-8``, with no bound on the result.

    Parameters
    ----------
    value : ndarray of shape (n_features,)
        The feature's value in the training rows (its mean), in the data's units.

    Returns
    -------
    ndarray of shape (n_features,)
        Scales in (0, 1], in the data's units.
    """
    return np.minimum(1.0, UNSEEN_SCALE * np.maximum(1.0, np.abs(value)))
