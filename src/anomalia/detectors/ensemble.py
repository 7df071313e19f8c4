"""Several detectors as one: each member's score normalised on its training scores, averaged."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._utils.validation import check_fraction, check_option
from ..base import BaseDetector, IncrementalMixin
from ..errors import AnomaliaError

#: How member scores are put on one scale (fitted on the training scores only).
NORMALIZATIONS = ("zscore", "robust", "rank")


def _member_spec(spec: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(spec, str):
        return spec, {}
    if (
        isinstance(spec, Sequence)
        and len(spec) == 2
        and isinstance(spec[0], str)
        and isinstance(spec[1], dict)
    ):
        return spec[0], dict(spec[1])
    raise AnomaliaError(
        f"an ensemble member is a detector name or a (name, params) pair, got {spec!r}"
    )


class EnsembleDetector(IncrementalMixin, BaseDetector):
    """Average of several detectors' normalised anomaly scores.

    Detectors fail differently: a nearest-neighbour distance misses anomalies hidden among
    dense normal data, a forest misses those inside the range of every feature, an
    auto-encoder misses what it learned to reconstruct. Averaging their scores keeps what
    each sees. Scores in different units are first normalised with statistics of each
    member's scores on the training rows (never on the data being scored), so the ensemble
    scores one row at a time, like any detector.

    Parameters
    ----------
    detectors : sequence of str or (str, dict), default=("knn", "iforest", "ae")
        Members: registered detector names (see :func:`anomalia.available_detectors`),
        each optionally with its parameters, e.g. ``("knn", {"n_neighbors": 10})``.
        Members that take a ``random_state`` get this ensemble's unless given their own.
    normalization : {"zscore", "robust", "rank"}, default="zscore"
        ``"zscore"``: subtract the mean and divide by the standard deviation of the
        member's training scores. ``"robust"``: median and inter-quartile range instead.
        ``"rank"``: the share of training scores below (in [0, 1]; saturates at 1 beyond
        the largest training score).
    weights : sequence of float or None, default=None
        Weight of each member in the average (``None``: equal weights).
    trim : float in [0, 0.5), default=0.0
        Two-stage fit for training data that may hold anomalies: fit the members, leave out
        this share of the training rows with the highest ensemble score, and fit the members
        again on the rest (normalisation included). ``0``: one stage.
    contamination : float in (0, 0.5], "auto" or None, default=None
        See :class:`anomalia.base.BaseDetector`.
    random_state : int or None, default=None
        Seed handed to the members.

    Notes
    -----
    :meth:`partial_fit` needs every member to keep learning (have ``partial_fit``; a
    member that cannot is named in an :class:`~anomalia.errors.AnomaliaError` before any
    member changes). With ``trim``, the share ``trim`` of the new rows with the highest
    ensemble score (before the update) is left out; every member then learns the rest by
    its own ``partial_fit``, and each member's normalisation is fitted again on the training
    scores that member's threshold was set on (its running sample, or the latest batch;
    ``rank`` resamples them to a common length by their quantiles when the lengths differ).
    ``threshold_`` is then set on the ensemble scores of the latest batch (all its rows).

    Attributes
    ----------
    detectors_ : list of detectors
        The fitted members, in the order of ``detectors``.
    center_, scale_ : ndarray of shape (n_members,)
        Normalisation of each member's score (``zscore``, ``robust``).
    train_scores_ : ndarray of shape (n_members, n_train)
        Sorted training scores of each member (``rank`` only; empty otherwise).
    threshold_ : float
        Anomaly-score threshold.
    n_features_in_ : int
        Number of features seen during fit.

    Examples
    --------
    >>> import numpy as np
    >>> from anomalia.detectors.ensemble import EnsembleDetector
    >>> X = np.random.default_rng(0).normal(size=(200, 3))
    >>> det = EnsembleDetector(detectors=("knn", "gaussian"), random_state=0).fit(X)
    >>> det.predict([[0.0, 0.0, 0.0], [6.0, 6.0, 6.0]])
    array([ 1, -1])
    """

    name = "ensemble"

    def __init__(
        self,
        *,
        detectors: Sequence[str | tuple[str, dict[str, Any]]] = ("knn", "iforest", "ae"),
        normalization: str = "zscore",
        weights: Sequence[float] | None = None,
        trim: float = 0.0,
        contamination: float | str | None = None,
        random_state: int | None = None,
    ) -> None:
        self.detectors = detectors
        self.normalization = normalization
        self.weights = weights
        self.trim = trim
        self.contamination = contamination
        self.random_state = random_state

    def _members(self) -> list[Any]:
        from ..registry import detector_class, make_detector

        specs = [_member_spec(s) for s in self.detectors]
        members = []
        for name, params in specs:
            if name in ("ensemble", "default"):
                raise AnomaliaError("an ensemble cannot contain another ensemble")
            takes = inspect.signature(detector_class(name).__init__).parameters
            if "random_state" in takes and "random_state" not in params:
                params["random_state"] = self.random_state
            members.append(make_detector(name, **params))
        return members

    def _check_params(self) -> None:
        check_option("normalization", self.normalization, NORMALIZATIONS)
        check_fraction("trim", self.trim, low=0.0, high=0.5, low_inclusive=True,
                       high_inclusive=False)  # fmt: skip
        if isinstance(self.detectors, str) or len(self.detectors) == 0:
            raise ValueError("detectors must be a non-empty sequence of detector names")
        if self.weights is not None:
            w = np.asarray(self.weights, dtype=float)
            if w.shape != (len(self.detectors),) or not np.all(w >= 0) or w.sum() <= 0:
                raise ValueError(
                    f"weights must be {len(self.detectors)} non-negative numbers, not all 0; "
                    f"got {self.weights!r}"
                )

    def _fit(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        self.detectors_ = self._members()
        scores = np.stack([m._fit_scored(X) for m in self.detectors_])
        self._fit_normalization(scores)
        n_out = min(int(self.trim * len(X)), len(X) - 2)
        if n_out > 0:  # second stage: refit without the most anomalous training rows
            out = np.zeros(len(X), dtype=bool)
            out[np.argsort(self._combine(scores), kind="stable")[-n_out:]] = True
            self.detectors_ = self._members()
            scores = np.empty_like(scores)
            scores[:, ~out] = np.stack([m._fit_scored(X[~out]) for m in self.detectors_])
            self._fit_normalization(scores[:, ~out])
            scores[:, out] = np.stack([m.anomaly_score(X[out]) for m in self.detectors_])
        self._drop_member_scores()
        return self._combine(scores)  # the training scores the threshold is set on

    def _drop_member_scores(self) -> None:
        """Members keep no ``decision_scores_``: the ensemble's own are the ones users read,
        and each copy would cost 8 bytes per training row in the model file."""
        for member in self.detectors_:
            member.__dict__.pop("decision_scores_", None)

    def _check_can_update(self) -> None:
        """Name the first member that cannot ``partial_fit``, before any member changes."""
        for i, member in enumerate(self.detectors_):
            if not hasattr(member, "partial_fit"):
                raise AnomaliaError(
                    f"ensemble member {i + 1} ({member.name}) cannot learn incrementally (it "
                    "has no partial_fit), so this ensemble cannot: use members that can "
                    "(gaussian, iforest, knn, ae, dae, vae, vqvae) or fit it again"
                )
            member._check_can_update()

    def _partial_fit(self, X: NDArray[np.float64]) -> None:
        n_out = min(int(self.trim * len(X)), len(X) - 2)
        if n_out > 0:  # leave out the most anomalous new rows, as the second stage of fit
            keep = np.ones(len(X), dtype=bool)
            keep[np.argsort(self._anomaly_score(X), kind="stable")[-n_out:]] = False
            X = X[keep]
        self._fit_normalization([m._partial_fit_scored(X) for m in self.detectors_])
        self._drop_member_scores()

    def _fit_normalization(self, scores: Sequence[NDArray[np.float64]]) -> None:
        """Each member's normalisation from its training scores (one row per member)."""
        n_rows = {len(s) for s in scores}
        if self.normalization == "rank":
            if len(n_rows) > 1:  # members scored different rows: compare their quantiles
                q = np.linspace(0.0, 1.0, min(n_rows))
                scores = [np.quantile(s, q) for s in scores]
            self.train_scores_ = np.sort(np.stack(scores), axis=1)
            self.center_ = np.zeros(len(scores))
            self.scale_ = np.ones(len(scores))
        else:
            if self.normalization == "zscore":
                center = np.array([np.mean(s) for s in scores])
                scale = np.array([np.std(s) for s in scores])
            else:
                q1, center, q3 = np.array([np.quantile(s, [0.25, 0.5, 0.75]) for s in scores]).T
                scale = q3 - q1
            self.center_ = center
            self.scale_ = np.where(scale > 0, scale, 1.0)
            self.train_scores_ = np.empty((len(scores), 0))

    def _combine(self, scores: NDArray[np.float64]) -> NDArray[np.float64]:
        if self.normalization == "rank":
            n = self.train_scores_.shape[1]
            z = np.stack(
                [
                    np.searchsorted(t, s, side="right") / n
                    for t, s in zip(self.train_scores_, scores, strict=True)
                ]
            )
        else:
            z = (scores - self.center_[:, None]) / self.scale_[:, None]
        w = np.ones(len(z)) if self.weights is None else np.asarray(self.weights, dtype=float)
        return (w @ z) / w.sum()

    def _anomaly_score(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        return self._combine(np.stack([m.anomaly_score(X) for m in self.detectors_]))
