"""Any PyOD detector behind the anomalia contract: ``make_detector("pyod:ECOD")``.

PyOD is optional (the ``bench`` extra). The wrapper fits the PyOD model on the validated
rows and takes its training scores (``decision_scores_``) and its ``decision_function``
(both higher = more anomalous) as the anomaly scores; ``threshold_``, ``calibrate``,
``predict`` (+1 / -1) and the CLI are anomalia's. PyOD's own ``contamination``,
``threshold_`` and ``labels_`` inside the wrapped model are not used.

A model file keeps the fitted PyOD model through skops, without pickle. skops trusts
scikit-learn's and numpy's types but not PyOD's, so the wrapper names the PyOD classes it
lets skops rebuild: :data:`SAVABLE`, those whose fitted state is numpy arrays and
scikit-learn parts that score by numpy and BLAS alone. The others are refused when saving,
with the reason: those holding a scikit-learn search tree (KNN, LOF, KDE, ABOD) or the trees
of an isolation forest (IForest), or compiled code following stored indices (HBOS, SOD,
QMCD and ROD run numba; OCSVM's libsvm, CBLOF's k-means), and PyOD's torch models, which
skops cannot store at all. anomalia's own ``knn``, ``lof``, ``iforest``, ``ocsvm`` and
``ae`` save.
"""

from __future__ import annotations

import importlib.util
import inspect
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..base import BaseDetector
from ..errors import AnomaliaError, ModelFileError

#: The PyOD detectors a model file may hold (module in ``pyod.models``, class): their fitted
#: state is numpy arrays and scikit-learn parts that score by numpy and BLAS alone.
SAVABLE: tuple[tuple[str, str], ...] = (
    ("ecod", "ECOD"),
    ("copod", "COPOD"),
    ("pca", "PCA"),
    ("mcd", "MCD"),
    ("loda", "LODA"),
    ("gmm", "GMM"),
    ("inne", "INNE"),
    ("mad", "MAD"),
    ("kpca", "KPCA"),
)
_SAVABLE_TYPES = frozenset(f"pyod.models.{m}.{c}" for m, c in SAVABLE)

#: What a run without PyOD is told.
NOT_INSTALLED = "PyOD is not installed (pip install 'anomalia[bench]')"
#: Parameters of the wrapper itself; every other keyword of ``pyod:NAME`` is PyOD's.
OWN_PARAMETERS = ("contamination", "random_state")


#: PyOD class -> module, for the usual names (others are searched in pyod.models).
PYOD_MODULES = {
    "IForest": "iforest",
    "ECOD": "ecod",
    "COPOD": "copod",
    "KNN": "knn",
    "LOF": "lof",
    "HBOS": "hbos",
    "OCSVM": "ocsvm",
    "PCA": "pca",
    "CBLOF": "cblof",
    "LODA": "loda",
    "MCD": "mcd",
    "AutoEncoder": "auto_encoder",
    "VAE": "vae",
    "DeepSVDD": "deep_svdd",
}


def pyod_available() -> bool:
    """Whether PyOD can be imported (it is an optional ``bench`` dependency)."""
    return importlib.util.find_spec("pyod") is not None


def with_seed(cls: type, params: dict[str, Any], seed: int, quiet: bool = False) -> dict:
    """``params`` with ``random_state=seed`` when ``cls`` takes one and ``params`` sets none
    (and, with ``quiet``, ``verbose=0``): how anomalia, scikit-learn and PyOD models are
    seeded alike."""
    takes = inspect.signature(cls.__init__).parameters
    extra: dict[str, Any] = {}
    if "random_state" in takes and "random_state" not in params:
        extra["random_state"] = seed
    if quiet and "verbose" in takes and "verbose" not in params:
        extra["verbose"] = 0  # PyOD's deep models print every epoch otherwise
    return {**extra, **params}


def pyod_class(name: str) -> type:
    """The PyOD detector class ``name`` (``"ECOD"``), or :class:`AnomaliaError` saying why not."""
    import importlib

    if not pyod_available():
        raise AnomaliaError(NOT_INSTALLED)
    module = PYOD_MODULES.get(name, name.lower())
    try:
        return getattr(importlib.import_module(f"pyod.models.{module}"), name)
    except (ImportError, AttributeError):
        raise AnomaliaError(
            f"pyod has no detector {name!r} in pyod.models.{module}"
            f" (known: {', '.join(PYOD_MODULES)})"
        ) from None


def pyod_detector(model: str, params: dict[str, Any]) -> PyODDetector:
    """``make_detector("pyod:MODEL", **params)``: the wrapper's own parameters go to it, the
    rest to the PyOD class, whose constructor must take them."""
    takes = [p for p in inspect.signature(pyod_class(model).__init__).parameters if p != "self"]
    valid = sorted({*takes, *OWN_PARAMETERS} - {"kwargs"})
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise AnomaliaError(
            f"unknown parameter(s) {', '.join(unknown)} for detector 'pyod:{model}'; "
            f"valid: {', '.join(valid)}"
        )
    own = {k: params[k] for k in OWN_PARAMETERS if k in params}
    rest = {k: v for k, v in params.items() if k not in OWN_PARAMETERS}
    return PyODDetector(model=model, params=rest or None, **own)


class PyODDetector(BaseDetector):
    """A PyOD detector in the anomalia contract (``make_detector("pyod:ECOD")``).

    The anomaly score is the PyOD model's ``decision_function`` (training rows: its
    ``decision_scores_``), unchanged; ``threshold_`` is set on the training scores by
    anomalia's rule (``contamination``, or the 99th percentile when None). No scaling is
    added: PyOD models scale as they do in PyOD. Saving works for the classes in
    :data:`SAVABLE` and is refused with the reason for the others (see the module docstring).

    PyOD's ECOD and COPOD score a batch together with the training rows (their
    ``decision_function`` re-estimates the empirical distributions on both), so a row's score
    depends on the rows scored with it, here as in PyOD. Measured on breast cancer (200
    benign training rows, 30 features): scoring all 569 rows at once rather than one by one
    moved the scores by 17 % (median; up to 48 %) and changed 114 flags. Score batches much
    smaller than the training set with them (``anomalia score`` reads files in batches of
    tens of thousands of rows), or use a detector whose scores do not depend on the batch.

    Parameters
    ----------
    model : str, default="ECOD"
        The PyOD class, as named in ``pyod.models`` (``"ECOD"``, ``"COPOD"``, ``"KNN"``, ...).
    params : dict or None, default=None
        Keyword arguments of the PyOD class, e.g. ``{"n_neighbors": 10}``; not
        ``contamination`` (the wrapper's own) nor ``random_state``.
    contamination : float in (0, 0.5], "auto" or None, default=None
        anomalia's: sets ``threshold_`` (see :class:`anomalia.base.BaseDetector`).
    random_state : int or None, default=None
        Passed to the PyOD class when it takes one (its seed).

    Attributes
    ----------
    estimator_ : pyod.models.base.BaseDetector
        The fitted PyOD model.
    threshold_ : float
        Anomaly-score threshold.
    n_features_in_ : int
        Number of features seen during fit.

    Examples
    --------
    >>> import numpy as np
    >>> from anomalia import make_detector
    >>> X = np.random.default_rng(0).normal(size=(200, 3))
    >>> det = make_detector("pyod:ECOD").fit(X)  # doctest: +SKIP
    >>> det.predict([[0.0, 0.0, 0.0], [6.0, 6.0, 6.0]])  # doctest: +SKIP
    array([ 1, -1])
    """

    name = "pyod"
    # the types skops does not trust by default: those classes and KPCA's own KernelPCA
    skops_trusted = _SAVABLE_TYPES | {"pyod.models.kpca.PyODKernelPCA"}
    skops_refusal = (
        f"PyOD's {', '.join(c for _, c in SAVABLE[:-1])} and {SAVABLE[-1][1]} save, and so "
        "do anomalia's knn, lof, iforest, ocsvm and ae"
    )

    def __init__(
        self,
        *,
        model: str = "ECOD",
        params: dict[str, Any] | None = None,
        contamination: float | str | None = None,
        random_state: int | None = None,
    ) -> None:
        self.model = model
        self.params = params
        self.contamination = contamination
        self.random_state = random_state

    def _check_params(self) -> None:
        if not isinstance(self.model, str) or not self.model.isidentifier():
            raise ValueError(f"model must be a PyOD class name such as 'ECOD', got {self.model!r}")
        if self.params is not None and not isinstance(self.params, dict):
            raise ValueError(f"params must be a dict of PyOD parameters, got {self.params!r}")
        clash = sorted(set(self.params or {}) & set(OWN_PARAMETERS))
        if clash:
            raise ValueError(
                f"params must not set {', '.join(clash)}: it is the wrapper's own parameter"
            )
        if not pyod_available():
            raise AnomaliaError(NOT_INSTALLED)

    def _check_restored(self) -> None:
        kind = f"{type(self.estimator_).__module__}.{type(self.estimator_).__name__}"
        if kind not in _SAVABLE_TYPES or not kind.endswith(f".{self.model}"):
            raise ModelFileError(f"the model file holds a {kind} where a PyOD {self.model} belongs")

    def _fit(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        cls = pyod_class(self.model)
        params = with_seed(cls, dict(self.params or {}), self.random_state, quiet=True)
        try:
            model = cls(**params)
        except TypeError as exc:  # the PyOD constructor refusing a parameter
            raise AnomaliaError(f"detector 'pyod:{self.model}': {exc}") from None
        self.estimator_ = model.fit(X)
        return np.asarray(self.estimator_.decision_scores_, dtype=np.float64)

    def _anomaly_score(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(self.estimator_.decision_function(X), dtype=np.float64)

    def check_savable(self) -> None:
        """Refuse, before any training, a PyOD class a model file cannot hold.

        Raises
        ------
        AnomaliaError
            When ``model`` is not one of :data:`SAVABLE`; saving would refuse it.
        """
        cls = pyod_class(self.model)
        if f"{cls.__module__}.{cls.__name__}" not in _SAVABLE_TYPES:
            raise AnomaliaError(
                f"pyod:{self.model} cannot be saved in a model file (its fitted state holds "
                f"compiled structures or code a file cannot carry safely); {self.skops_refusal}"
            )
