"""The one user-error type of anomalia.

Anything a user can get wrong (a bad file, a bad option, data that does not match a
model) raises :class:`AnomaliaError` with a one-line message that names the problem.
It subclasses :class:`ValueError`, so scikit-learn style ``except ValueError`` still works.
The CLI turns it into one line on stderr and exit code 2.
"""

from __future__ import annotations


class AnomaliaError(ValueError):
    """A problem with the user's input, options or files, explained in one line."""


class DataError(AnomaliaError):
    """Input data is missing, malformed, non-numeric, non-finite or does not match a model."""


class ModelFileError(AnomaliaError):
    """A model file is not an anomalia model, is truncated, tampered with or of another version."""


class TrainingError(AnomaliaError, FloatingPointError):
    """Training diverged: the loss became NaN or infinite (too large a learning rate or values).

    It is also a :class:`FloatingPointError`, the type training raised before.
    """
