"""The scale of a feature that is constant in the training rows."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

#: A feature constant in training is standardised by this share of its value (at least of
#: 1): a row that differs there by 1 is 1,000 units away, as if 1,000 standard deviations.
UNSEEN_SCALE = 1e-3


def constant_feature_scale(value: NDArray[np.float64]) -> NDArray[np.float64]:
    """Scale for features constant in the training rows, from their constant ``value``.

    Such a feature has no spread to standardise by. Scale 1 (scikit-learn's choice) makes a
    value it never took in training count like one standard deviation on one feature, and
    that drowns among many features: a test row with several values the normal rows never
    showed can look normal. This scale makes any such value far: ``UNSEEN_SCALE * max(1,
    |value|)``, so a row that differs there by 1 is 1,000 units away. Training rows are
    unaffected (their difference there is 0). PyOD's auto-encoders get the same effect from
    dividing by ``std + 1e-8``, without a bound on how large the result can be.

    Parameters
    ----------
    value : ndarray of shape (n_features,)
        The feature's value in the training rows (its mean), in the data's units.

    Returns
    -------
    ndarray of shape (n_features,)
        Positive scales, in the data's units.
    """
    return UNSEEN_SCALE * np.maximum(1.0, np.abs(value))
