"""The detector contract every anomalia detector follows.

Orientation follows scikit-learn:

* :meth:`BaseDetector.anomaly_score` -- higher means more anomalous (reconstruction error,
  negative log-density, ...). This is the quantity metrics, thresholds and plots use.
* :meth:`BaseDetector.score_samples` -- ``-anomaly_score``: higher means more normal.
* :meth:`BaseDetector.decision_function` -- ``threshold_ - anomaly_score``: negative means anomaly.
* :meth:`BaseDetector.predict` -- ``+1`` normal, ``-1`` anomaly.

For users of PyOD, fitting also keeps ``decision_scores_`` (the training scores, PyOD's
orientation: higher = more anomalous) and gives ``labels_`` (0/1 under ``threshold_``),
:meth:`BaseDetector.predict_proba` and :meth:`BaseDetector.predict_confidence` as PyOD
defines them; ``decision_function`` and ``predict`` keep scikit-learn's orientation.

Thresholding lives in one place, ``threshold_`` (in anomaly-score units):

* ``contamination=None`` (default): ``threshold_`` is the 99th percentile of the training
  anomaly scores, a rule for clean (normal-only) training data that flags about 1 % of
  normal traffic. Calibrate it on a labelled dev set with :meth:`BaseDetector.calibrate`.
* ``contamination=c`` in (0, 0.5]: ``threshold_`` is the ``1 - c`` quantile of the training
  scores, so about a share ``c`` of the training rows is flagged (polluted training data).
* ``contamination="auto"``: the share is estimated from the training scores by
  :func:`anomalia.thresholds.estimate_contamination` (a robust tail rule, median + 5
  robust standard deviations), kept as ``contamination_``; ``threshold_`` is the
  ``1 - contamination_`` quantile (polluted training data of unknown pollution).

Detectors that keep learning (:class:`IncrementalMixin`) add ``partial_fit(X)``: the first
call on an unfitted detector is ``fit(X)``; later calls update the model with the new rows
and set ``threshold_`` again by the same rule, on the training scores of the rows the model
now represents (each detector's docstring says which: its running sample, or the latest
batch). A threshold set by :meth:`BaseDetector.calibrate` is replaced: calibrate again.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from . import thresholds
from ._utils.validation import check_option, input_errors_as_data_errors
from .errors import AnomaliaError, DataError

#: Share of clean training data flagged when ``contamination`` is None.
DEFAULT_FALSE_ALARM_RATE = 0.01
#: What ``calibrate`` records of its threshold on the dev set (``calibration_["dev"]``).
DEV_METRICS = (
    "false_alarm_rate", "recall", "precision", "f1", "expected_cost", "n_samples", "n_anomalies",
)  # fmt: skip


class BaseDetector(OutlierMixin, BaseEstimator):
    """Base class: validation, thresholding, calibration and persistence for all detectors.

    Subclasses implement ``_fit(X)`` and ``_anomaly_score(X)`` on validated arrays and list
    their own parameter checks in ``_check_params``. They never override the public methods.

    Every fitted detector has these attributes (and its own, in its docstring):

    Attributes
    ----------
    threshold_ : float
        Anomaly-score threshold: a row scoring above it is an anomaly.
    calibration_ : dict
        How ``threshold_`` was set: ``{"strategy": "default" | "contamination" | "auto",
        "rate": r}`` by ``fit``, the strategy and its options by :meth:`calibrate`.
    contamination_ : float or None
        Share of anomalies in the training rows the threshold assumes: the estimate of
        :func:`~anomalia.thresholds.estimate_contamination` under ``contamination="auto"``,
        the given share under ``contamination=c``, None under None (clean training data).
        Kept by :meth:`calibrate`, which moves only ``threshold_``.
    decision_scores_ : ndarray of shape (n_rows,), float64
        Anomaly scores of the rows the threshold was set on (PyOD's name): the training rows
        (nearest-neighbour detectors score each leaving itself out); after
        :meth:`IncrementalMixin.partial_fit` the rows it set the threshold on. Kept in the
        model file: 8 bytes per row.
    labels_ : ndarray of shape (n_rows,), int64
        1 where ``decision_scores_ > threshold_``, else 0 (PyOD's name; computed, not kept).
    """

    #: Registry name (``make_detector(name)``); set by each concrete detector.
    name: ClassVar[str] = ""
    #: skops type names, beyond skops' own trusted defaults, that a fitted part saved through
    #: skops may hold (a fixed allow-list: :mod:`anomalia.persistence` saves and loads
    #: nothing else), and what to tell a user whose part holds other types.
    skops_trusted: ClassVar[frozenset[str]] = frozenset()
    skops_refusal: ClassVar[str] = ""

    # -- to implement ------------------------------------------------------------------
    def _fit(self, X: NDArray[np.float64]) -> NDArray[np.float64] | None:
        """Fit on validated ``X``; return the training rows' scores if fitting made them."""
        raise NotImplementedError

    def _anomaly_score(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        raise NotImplementedError

    def _check_params(self) -> None:
        """Raise ValueError naming any invalid parameter (called at the start of fit)."""

    def _check_all_params(self) -> None:
        """The shared parameters' checks, then the detector's own (fit, and loading a file)."""
        thresholds.check_contamination(self.contamination)
        self._check_params()

    def _training_scores(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        """Scores of the training rows themselves (the threshold is their quantile).

        Detectors that memorise their training rows (nearest neighbours) override this to
        leave each row out of its own score; the others score the rows as new data.
        """
        return self._anomaly_score(X)

    def _partial_fit(self, X: NDArray[np.float64]) -> NDArray[np.float64] | None:
        """Update the fitted model with validated rows ``X``; return the rows whose training
        scores set the threshold (a running sample the model was refitted on), or None for
        ``X`` itself."""
        raise NotImplementedError

    def _check_can_update(self) -> None:
        """Raise :class:`AnomaliaError` unless ``partial_fit`` can update this fitted model."""
        raise AnomaliaError(
            f"{type(self).__name__} ({self.name}) cannot learn incrementally (no partial_fit): "
            "fit it again on all the rows"
        )

    def _check_restored(self) -> None:
        """Check fitted state the probe score does not use (called when a file is loaded).

        Raise :class:`~anomalia.errors.ModelFileError` naming what is wrong. Detectors that
        keep learning check the state ``partial_fit`` continues from here.
        """

    def _restore_module(self, attribute: str, state: dict[str, Any]) -> Any:
        """Rebuild the torch module saved as ``attribute`` from its state dict (deep detectors)."""
        raise TypeError(f"{type(self).__name__} has no torch module {attribute!r} to restore")

    @input_errors_as_data_errors()  # sklearn's and numpy's ValueErrors are DataErrors
    def _validate(self, X: ArrayLike, *, reset: bool) -> NDArray[np.float64]:
        """Validate input; subclasses for images override this to accept more dimensions."""
        if not reset and (ready := self._ready_table(X, (np.float64,))) is not None:
            return ready
        if isinstance(X, str | os.PathLike):
            raise DataError(
                f"{type(self).__name__} takes a table (rows x features), not a path ({str(X)!r}):"
                " read the file first, e.g. anomalia.io.read_table(path).X"
            )
        shape = getattr(X, "shape", ())
        if len(shape) > 2:  # before validate_data, which would first warn about feature names
            raise DataError(
                f"{type(self).__name__} takes a table (rows x features); got an array of "
                f"shape {tuple(shape)}"
            )
        return validate_data(
            self, X, reset=reset, dtype=np.float64, ensure_min_samples=2 if reset else 1
        )

    def _ready_table(
        self, X: Any, dtypes: tuple[type[np.floating[Any]], ...]
    ) -> NDArray[np.floating[Any]] | None:
        """``X`` as the array ``validate_data`` would return for a fitted detector, when it
        needs no conversion and no check can fail; else None, for ``validate_data``.

        Scoring calls this first: on small batches (one row served over HTTP, a stream's
        chunk) ``validate_data`` costs milliseconds where the scoring costs microseconds.
        Ready means a 2-D array of one of ``dtypes`` (the detector fitted without column
        names), or a DataFrame whose columns are exactly the training ones, in order, all
        of one of ``dtypes``; the training width, at least one row, every value finite.
        Anything else, and any row to refuse, takes ``validate_data``, its messages and its
        warnings.
        """
        names = getattr(self, "feature_names_in_", None)
        if type(X) is np.ndarray:
            if names is not None:
                return None  # validate_data warns that the names are missing
            arr = X
        elif hasattr(X, "columns") and hasattr(X, "dtypes") and type(X).__name__ == "DataFrame":
            if names is None or len(X.columns) != len(names) or list(X.columns) != list(names):
                return None
            kinds = set(X.dtypes)
            if len(kinds) != 1 or kinds.pop() not in dtypes:
                return None
            arr = np.asarray(X)  # what check_array does: a view of the frame's one block
        else:
            return None
        if (
            arr.dtype not in dtypes
            or arr.ndim != 2
            or arr.shape[0] == 0
            or arr.shape[1] != self.n_features_in_
            or not np.isfinite(arr).all()
        ):
            return None
        return arr

    def _feature_label(self, j: int, shape: tuple[int, ...]) -> str:
        """How messages name feature ``j`` of rows shaped ``shape``: column name or index."""
        names = getattr(self, "feature_names_in_", None)
        if names is not None and len(names) > j:
            return f"column {str(names[j])!r}"
        if len(shape) > 1:
            return f"pixel {tuple(int(i) for i in np.unravel_index(j, shape))}"
        return f"column {j}"

    def _check_spread(self, X: NDArray[np.floating[Any]]) -> None:
        """Refuse training features whose mean or variance overflows the float type."""
        flat = X.reshape(len(X), -1)
        with np.errstate(over="ignore", invalid="ignore"):
            spread = flat.std(axis=0)
        bad = np.flatnonzero(~np.isfinite(spread))
        if bad.size:
            j = int(bad[0])
            more = f" (and {bad.size - 1} more)" if bad.size > 1 else ""
            raise DataError(
                f"{self._feature_label(j, X.shape[1:])}{more} holds values too large to "
                f"compute with (up to {np.abs(flat[:, j]).max():.3g}; its variance overflows "
                f"{flat.dtype}): scale the data down, e.g. divide by a power of ten"
            )

    def _check_scores(self, X: NDArray[np.floating[Any]], scores: NDArray[np.float64]) -> None:
        """Refuse rows whose anomaly score overflowed to infinity or NaN, naming the first."""
        bad = np.flatnonzero(~np.isfinite(scores))
        if bad.size:
            i = int(bad[0])
            row = X[i].reshape(-1)
            j = int(np.argmax(np.abs(row)))
            raise DataError(
                f"{bad.size} of {len(scores)} rows get no finite anomaly score (first: row {i}, "
                f"whose largest value is {row[j]:.3g} in {self._feature_label(j, X.shape[1:])}):"
                " values too large for the model; scale the data as the training data"
            )

    # -- the contract ------------------------------------------------------------------
    def fit(self, X: ArrayLike, y: Any = None) -> Self:
        """Fit the detector on training data, mostly or only normal.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data. Rows with NaN or infinity are rejected, and so are features
            whose variance overflows the float type (values near 1e154 and beyond).
        y : None
            Ignored; present for scikit-learn API consistency.

        Returns
        -------
        self : object
            The fitted detector.
        """
        self._fit_scored(X)
        return self

    def fit_predict(self, X: ArrayLike, y: Any = None) -> NDArray[np.int64]:
        """Fit on ``X`` and label its rows ``+1`` (normal) or ``-1`` (anomaly).

        The labels come from the training scores the threshold was set on (for nearest
        neighbours, each row scored without itself), so with ``contamination=c`` a share
        ``c`` of the rows is flagged.
        """
        scores = self._fit_scored(X)
        return np.where(scores > self.threshold_, -1, 1)

    def _fit_scored(self, X: ArrayLike) -> NDArray[np.float64]:
        """Validate, fit and set ``threshold_``; return the training rows' anomaly scores."""
        self._check_all_params()
        X = self._validate(X, reset=True)
        self._check_spread(X)
        train_scores = self._fit(X)  # a detector that already has them may return them
        if train_scores is None:
            with np.errstate(over="ignore", invalid="ignore"):
                train_scores = self._training_scores(X)
        return self._set_threshold(X, train_scores)

    def _set_threshold(self, X: NDArray[Any], train_scores: ArrayLike) -> NDArray[np.float64]:
        """Set ``threshold_`` from the training scores (fit and partial_fit alike)."""
        train_scores = np.asarray(train_scores, dtype=np.float64).reshape(-1)
        self._check_scores(X, train_scores)
        if self.contamination is None:
            strategy, rate, self.contamination_ = "default", DEFAULT_FALSE_ALARM_RATE, None
        elif isinstance(self.contamination, str):  # "auto", checked by _check_all_params
            strategy, rate = "auto", thresholds.estimate_contamination(train_scores)
            self.contamination_ = rate
        else:
            strategy, rate = "contamination", float(self.contamination)
            self.contamination_ = rate
        self.threshold_ = float(np.quantile(train_scores, 1.0 - rate))
        self.decision_scores_ = train_scores
        self.calibration_: dict[str, Any] = {"strategy": strategy, "rate": rate}
        return train_scores

    def _check_restored_contamination(self) -> None:
        """Refuse a loaded ``contamination_`` that its training scores do not give.

        Under ``contamination="auto"`` the estimate is recomputed from ``decision_scores_``
        (the tail rule is exact arithmetic), and while ``fit`` set the threshold
        (``calibration_["strategy"] == "auto"``) the rate and ``threshold_`` must follow it.
        Raises :class:`~anomalia.errors.ModelFileError` naming what disagrees.
        """
        from .errors import ModelFileError

        given = getattr(self, "contamination_", None)
        if self.contamination != "auto":
            if given is not None and given != self.contamination:
                raise ModelFileError(
                    f"contamination_ {given!r} is not the model's contamination "
                    f"{self.contamination!r} (edited or corrupted file)"
                )
            return
        scores = getattr(self, "decision_scores_", None)
        if given is None or scores is None:
            raise ModelFileError(
                "a model fitted with contamination='auto' lacks contamination_ or "
                "decision_scores_ (edited or corrupted file)"
            )
        expected = thresholds.estimate_contamination(scores)
        if not np.isclose(given, expected, rtol=1e-9, atol=0.0):
            raise ModelFileError(
                f"contamination_ {given!r} is not the estimate {expected!r} its training "
                "scores give (edited or corrupted file)"
            )
        if self.calibration_.get("strategy") == "auto" and not (
            np.isclose(self.calibration_.get("rate", -1.0), expected, rtol=1e-9, atol=0.0)
            and np.isclose(self.threshold_, np.quantile(scores, 1.0 - expected), rtol=1e-9)
        ):
            raise ModelFileError(
                "calibration_ or threshold_ does not follow contamination_ (edited or "
                "corrupted file)"
            )

    def _partial_fit_scored(self, X: ArrayLike) -> NDArray[np.float64]:
        """``fit`` when unfitted, else validate, update and set ``threshold_``; return the
        training scores the threshold was set on."""
        if not hasattr(self, "threshold_"):
            return self._fit_scored(X)
        self._check_all_params()
        self._check_can_update()
        X = self._validate(X, reset=False)
        self._check_spread(X)
        rows = self._partial_fit(X)
        rows = X if rows is None else rows
        with np.errstate(over="ignore", invalid="ignore"):
            train_scores = self._training_scores(rows)
        return self._set_threshold(rows, train_scores)

    def anomaly_score(self, X: ArrayLike) -> NDArray[np.float64]:
        """Anomaly score of each row: higher means more anomalous.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score, with the training columns in the training order.

        Returns
        -------
        ndarray of shape (n_samples,), float64

        Raises
        ------
        DataError
            If a row's score overflows to infinity or NaN (values far too large for the
            model); the message names the first such row and its largest value.
        """
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is refused just below
            scores = np.asarray(self._anomaly_score(X), dtype=np.float64).reshape(-1)
        self._check_scores(X, scores)
        return scores

    def score_samples(self, X: ArrayLike) -> NDArray[np.float64]:
        """Normality score (``-anomaly_score``): higher means more normal."""
        return -self.anomaly_score(X)

    def decision_function(self, X: ArrayLike) -> NDArray[np.float64]:
        """``threshold_ - anomaly_score``: negative for anomalies, positive for normal rows."""
        scores = self.anomaly_score(X)  # checks fitted state first
        return self.threshold_ - scores

    def predict(self, X: ArrayLike) -> NDArray[np.int64]:
        """Label each row ``+1`` (normal) or ``-1`` (anomaly)."""
        return np.where(self.decision_function(X) < 0, -1, 1)

    @property
    def offset_(self) -> float:
        """scikit-learn's offset: ``decision_function = score_samples - offset_``."""
        return -self.threshold_

    # -- PyOD's names ------------------------------------------------------------------
    @property
    def labels_(self) -> NDArray[np.int64]:
        """PyOD's training labels: 1 where ``decision_scores_`` is above ``threshold_``, else 0.

        Computed from the current ``threshold_``, so it follows :meth:`calibrate`.
        """
        return (self._kept_training_scores() > self.threshold_).astype(np.int64)

    def _kept_training_scores(self) -> NDArray[np.float64]:
        check_is_fitted(self)
        scores = getattr(self, "decision_scores_", None)
        if scores is None:
            raise AnomaliaError(
                f"this {type(self).__name__} keeps no training scores (decision_scores_): it "
                "was saved by an older anomalia; fit it again"
            )
        return scores

    def predict_proba(self, X: ArrayLike, method: str = "linear") -> NDArray[np.float64]:
        """Probability of each row being normal and anomalous, as PyOD defines it.

        Not a calibrated probability: a monotone map of :meth:`anomaly_score` onto [0, 1] by
        the training scores ``decision_scores_``, independent of ``threshold_`` (a row can
        get more than 0.5 and still be predicted normal).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score, with the training columns in the training order.
        method : {"linear", "unify"}, default="linear"
            ``"linear"``: min-max scaling by the lowest and highest training score, clipped to
            [0, 1]. ``"unify"``: the Gaussian unification of Kriegel et al. (2011),
            ``erf((score - mean) / (std * sqrt(2)))`` with the mean and standard deviation of
            the training scores, clipped to [0, 1] (a row below the training mean gets 0).

        Returns
        -------
        ndarray of shape (n_samples, 2), float64
            Column 0: probability of normal; column 1: of anomaly. Rows sum to 1.
        """
        from scipy.special import erf

        check_option("method", method, ("linear", "unify"))
        scores = self.anomaly_score(X)  # checks fitted state first
        train = self._kept_training_scores()
        if method == "linear":  # scikit-learn's MinMaxScaler, which PyOD uses
            low, span = train.min(), train.max() - train.min()
            p = (scores - low) / (span if span >= 10 * np.finfo(np.float64).eps else 1.0)
        else:  # constant training scores: 0 at their value, 1 above it
            with np.errstate(divide="ignore", invalid="ignore"):
                z = (scores - train.mean()) / (train.std() * np.sqrt(2.0))
            p = erf(np.where(np.isnan(z), 0.0, z))
        p = np.clip(p, 0.0, 1.0)
        return np.column_stack([1.0 - p, p])

    def predict_confidence(self, X: ArrayLike) -> NDArray[np.float64]:
        """Confidence in each row's prediction under other training sets, as PyOD's ExCeeD.

        Perini et al. (2020): with ``n`` training scores, of which ``k`` lie at or below the
        row's score, the posterior probability of the row ranking as an anomaly is
        ``p = (1 + k) / (2 + n)``, and the confidence that it is flagged is
        ``1 - BinomCDF(n - m; n, p)``, ``m`` the number of training rows the threshold is
        meant to flag: ``int(n * contamination_)`` when ``threshold_`` comes from
        ``contamination`` (as in PyOD; also under ``"auto"``, its estimate), else the
        training rows above the current
        ``threshold_``. For a row predicted normal the confidence is one minus that. Costs a
        sort of ``decision_scores_`` per call.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score, with the training columns in the training order.

        Returns
        -------
        ndarray of shape (n_samples,), float64
            Confidence in [0, 1] in the prediction :meth:`predict` makes.
        """
        from scipy.stats import binom

        scores = self.anomaly_score(X)
        train = np.sort(self._kept_training_scores())
        n = len(train)
        posterior = (1.0 + np.searchsorted(train, scores, side="right")) / (2.0 + n)
        if self.calibration_.get("strategy") in ("contamination", "auto") and getattr(
            self, "contamination_", None
        ):
            m = int(n * self.contamination_)
        else:
            m = int(np.count_nonzero(train > self.threshold_))
        confidence = 1.0 - binom.cdf(n - m, n, posterior)
        return np.where(scores > self.threshold_, confidence, 1.0 - confidence)

    def calibrate(
        self,
        X_dev: ArrayLike,
        y_dev: ArrayLike,
        strategy: str = "f1",
        **kwargs: Any,
    ) -> Self:
        """Set ``threshold_`` from a labelled dev set.

        Parameters
        ----------
        X_dev : array-like of shape (n_samples, n_features)
            Dev data, disjoint from training and test data.
        y_dev : array-like of shape (n_samples,)
            1 for anomalies, 0 for normal rows; both must be present.
        strategy : {"f1", "fpr", "recall", "cost"}, default="f1"
            See :func:`anomalia.thresholds.choose_threshold`.
        **kwargs
            ``target`` (a rate in [0, 1]) for ``fpr`` and ``recall`` (default 0.01 and
            0.95); ``cost_miss`` and ``cost_false_alarm`` for ``cost`` (default 50 and 1).
            An option the strategy does not use is refused.

        Returns
        -------
        self : object
            With ``threshold_`` and ``calibration_``: the strategy, its options and what the
            threshold reached on the dev set (``calibration_["dev"]``: false-alarm rate,
            recall, precision, F1, rows and anomalies; expected cost per row for ``cost``).
        """
        from .metrics import evaluate

        options = thresholds.check_strategy(strategy, **kwargs)  # before the scoring
        scores = self.anomaly_score(X_dev)
        self.threshold_ = thresholds.choose_threshold(scores, y_dev, strategy, **options)
        reached = evaluate(y_dev, scores, self.threshold_, **options if strategy == "cost" else {})
        self.calibration_ = {
            **thresholds.describe_strategy(strategy, **options),
            "dev": {k: reached[k] for k in DEV_METRICS if k in reached},
        }
        return self

    def save(
        self,
        path: str | os.PathLike[str],
        *,
        metadata: dict[str, Any] | None = None,
        key: bytes | None = None,
    ) -> None:
        """Save the fitted detector to one file, without pickle (see :func:`anomalia.load`).

        Parameters
        ----------
        path : str or path-like
            Destination file; written atomically (temporary file, then rename).
        metadata : dict, optional
            JSON-able extra information kept in the manifest (e.g. how to read data).
        key : bytes, optional
            Signing key (at least 16 bytes): the file gets an HMAC-SHA256 signature that
            ``anomalia.load(path, key=key)`` verifies (see :mod:`anomalia.persistence`).
        """
        from .persistence._write import save

        save(self, path, metadata=metadata, key=key)


class IncrementalMixin:
    """Adds ``partial_fit`` to a detector that implements ``_partial_fit`` (keeps learning).

    Put it before :class:`BaseDetector` among the bases; scikit-learn, like anomalia's CLI,
    tells an incremental estimator by its having ``partial_fit``.
    """

    def partial_fit(self, X: ArrayLike, y: Any = None) -> Self:
        """Update the detector with more training rows, mostly or only normal.

        The first call on an unfitted detector is ``fit(X)``. Later calls keep what the
        model learnt and add ``X`` (how depends on the detector: see its docstring), then
        set ``threshold_`` again by the rule of ``fit`` (``contamination``, its estimate
        under ``"auto"``, or the default false-alarm rate) on the training scores of the
        rows the model now represents. A threshold from :meth:`BaseDetector.calibrate` is
        replaced.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            New training rows, with the columns of the first fit in the same order.
        y : None
            Ignored; present for scikit-learn API consistency.

        Returns
        -------
        self : object
            The updated detector.

        Raises
        ------
        DataError
            If ``X`` does not match the fitted model (its number of features or columns)
            or holds NaN, infinity or values too large to compute with.
        """
        self._partial_fit_scored(X)  # type: ignore[attr-defined]
        return self

    def _check_can_update(self) -> None:
        """Raise :class:`AnomaliaError` if the fitted state lacks what an update needs."""
