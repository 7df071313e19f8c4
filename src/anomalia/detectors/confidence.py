"""Classifier confidence for open-set recognition: the ``confidence`` detector.

When the normal data carries class labels, a classifier trained on them is unsure about an
input that belongs to no known class; that uncertainty is the anomaly score. The networks
live in :mod:`anomalia.models.classifier` and are trained by :func:`anomalia.training.train`;
any scikit-learn classifier with ``predict_proba`` can be used instead.
"""

from __future__ import annotations

import math
from typing import Any, Self

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize_scalar
from sklearn.base import clone
from sklearn.covariance import LedoitWolf
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
)

from .._utils.validation import check_fraction, check_int, check_option
from ..models.classifier import CNNClassifierNet, MLPClassifierNet, PackedLabels, logit_scores
from ..models.outlier_gan import (
    LATENT_DIM,
    BoundaryGAN,
    ConvGenerator,
    MLPGenerator,
    conv_discriminator,
    mlp_discriminator,
)
from ..outlier_training import train_boundary_gan
from ..training import TrainConfig, stopped_epoch, train
from ._torch import SCORE_BATCH, TorchDetector, auto_batch_size, module_from_state, seed_from

#: The values of ``score_method``.
SCORES = ("msp", "entropy", "energy", "mahalanobis")
#: Scores that need the built-in networks (logits or penultimate features).
NETWORK_SCORES = ("energy", "mahalanobis")
#: The values of ``outliers``: None (no generated outliers) or "generate" (a boundary GAN).
OUTLIER_SOURCES = (None, "generate")
#: Search range of ``temperature="auto"``.
TEMPERATURE_BOUNDS = (0.05, 20.0)
#: Attributes that only one kind of classifier sets; a refit clears them first.
_FITTED_PARTS = (
    "module_",
    "classifier_",
    "history_",
    "n_epochs_",
    "stopped_epoch_",
    "batch_size_",
    "input_shift_",
    "input_scale_",
    "class_means_",
    "precision_",
    "generator_",
    "gan_history_",
)


class ConfidenceDetector(TorchDetector):
    """Open-set recognition: a classifier of the known classes; low confidence = anomaly.

    ``fit(X, y)`` trains a classifier on labelled normal data; an input that belongs to no
    known class gets an uncertain prediction and a high anomaly score. The scores:

    - ``"msp"``: 1 - the maximum softmax probability (Hendrycks & Gimpel 2017).
    - ``"entropy"``: the entropy of the predicted class distribution.
    - ``"energy"``: ``-T * logsumexp(logits / T)``, low for inputs the network maps to large
      logits (Liu et al. 2020); built-in networks only.
    - ``"mahalanobis"``: the Mahalanobis distance of the penultimate features to the nearest
      class mean, with one covariance shared by the classes, both fitted on the training
      data (Lee et al. 2018); built-in networks only.

    msp, entropy and energy only see what separates the known classes: an input far from
    all training data can still get a confident prediction (ReLU networks extrapolate
    linearly), so it may score low. Mahalanobis, which measures the distance to the
    training classes, or outlier exposure cover that case.

    Outlier exposure (Hendrycks et al. 2019): ``fit(X, y, X_outliers=...)`` adds
    ``oe_weight`` times the cross-entropy between the predicted distribution on the known
    anomalies and the uniform distribution, so the network learns to be unsure on them
    rather than keying on whatever feature separates the known classes.

    Generated outliers (Lee et al. 2018), for when real anomalies are scarce:
    ``outliers="generate"`` first trains a GAN jointly with a classifier, the generator's loss
    being the GAN loss plus ``oe_weight`` times KL(uniform || classifier(G(z))), so that its
    samples look almost like the training data but lie where the classifier is unsure (see
    :func:`anomalia.outlier_training.train_boundary_gan`); then the detector's classifier is
    trained with as many generated samples as training rows as its ``X_outliers``.
    :meth:`sample_outliers` draws more of them; the generator is saved with the model (the
    discriminator and the classifier of the joint training are not).

    Parameters
    ----------
    classifier : scikit-learn classifier or None, default=None
        None: a built-in PyTorch network, a multi-layer perceptron for tables and a small
        CNN for images ((n, H, W) or (n, C, H, W) arrays). Otherwise any classifier with
        ``predict_proba``, cloned and fitted on the rows (images flattened, no scaling).
    score_method : {"msp", "entropy", "energy", "mahalanobis"}, default="msp"
        Anomaly score (higher = more anomalous), see above. (Not ``score``: that name is
        scikit-learn's ``score(X, y)`` method.) It is read when scoring, so
        ``set_params(score_method=...)`` on a fitted detector compares the scores of one
        classifier (the threshold stays that of the fitted score: calibrate again).
    temperature : "auto", float or None, default=None
        Softmax temperature T for msp, entropy, energy and ``predict_proba``. None means 1.
        ``"auto"`` holds out a stratified ``validation_fraction`` of the training rows, fits
        the classifier on the rest and picks T in [0.05, 20] minimising the negative
        log-likelihood of the held-out labels (temperature scaling, Guo et al. 2017).
    oe_weight : float, default=0.5
        Weight of the outlier-exposure term (used with ``X_outliers`` or generated outliers);
        also the weight ``beta`` of the KL term in the generator's loss.
    outliers : {None, "generate"}, default=None
        None: outlier exposure only with the ``X_outliers`` given to :meth:`fit`.
        ``"generate"``: outliers from a generator trained jointly with a classifier (see
        above; built-in networks only, not together with ``X_outliers``).
    gan_epochs : int, default=20
        Passes over the training rows of the joint GAN training (``outliers="generate"``).
    hidden : tuple of int, default=(64, 64)
        Dense hidden layers of the built-in network (after the convolutions for images); the
        last one gives the penultimate features.
    channels : tuple of int, default=(32, 64)
        Channels of the CNN's stride-2 conv blocks (images only).
    activation : str, default="relu"
        Hidden activation: relu, leaky_relu, elu, gelu, tanh, sigmoid or silu.
    dropout : float in [0, 1), default=0.0
        Dropout after each dense hidden layer.
    lr : float, default=1e-3
        AdamW learning rate.
    weight_decay : float, default=1e-4
        AdamW weight decay.
    epochs : int, default=100
        Maximum training epochs (early stopping usually ends sooner).
    batch_size : int or "auto", default="auto"
        Rows per training step; ``"auto"``: 32, growing for large data as in
        :class:`~anomalia.detectors.autoencoder.AEDetector`.
    validation_fraction : float in [0, 1), default=0.1
        Share of training rows held out for early stopping on the validation loss (0
        disables it); also the held-out share of ``temperature="auto"``.
    patience : int or None, default=10
        Epochs without a better validation loss before stopping; best weights are restored.
    standardize : bool, default=True
        Standardise table features (images: by the mean and std of all training pixels)
        for the built-in networks, with statistics saved with the model.
    contamination : float in (0, 0.5], "auto" or None, default=None
        See :class:`anomalia.base.BaseDetector`.
    random_state : int or None, default=None
        Seed for weights, shuffling and the held-out splits; results repeat on CPU.
    verbose : bool, default=False
        Show training progress.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The known classes, sorted.
    module_ : MLPClassifierNet or CNNClassifierNet
        The trained network (built-in classifier only), in float64 for scoring.
    classifier_ : estimator
        The fitted clone of ``classifier`` (user classifier only).
    temperature_ : float
        The softmax temperature used (1.0 when ``temperature`` is None).
    class_means_ : ndarray of shape (n_classes, n_features_out)
        Mean penultimate features of each class (built-in networks only).
    precision_ : ndarray of shape (n_features_out, n_features_out)
        Inverse of the shared (Ledoit-Wolf shrunk) covariance of the penultimate features
        around their class means (built-in networks only).
    history_ : dict of str to list of float
        Training history of the network (see :func:`anomalia.training.train`).
    n_epochs_ : int
        Epochs run.
    stopped_epoch_ : int or None
        The epoch (from 1) at which early stopping ended training, or None (all ``epochs``
        ran); see :func:`anomalia.training.stop_message`.
    input_shift_, input_scale_ : ndarray
        Scaling of the inputs of the built-in networks.
    generator_ : MLPGenerator or ConvGenerator
        The generator of outliers (``outliers="generate"`` only), on scaled inputs; use
        :meth:`sample_outliers`.
    gan_history_ : dict of str to list of float
        History of the joint GAN training (``outliers="generate"`` only; see
        :func:`anomalia.outlier_training.train_boundary_gan`).
    image_shape_ : tuple of int or None
        (C, H, W) when trained on images, else None.
    seed_ : int
        Seed derived from ``random_state``.
    batch_size_ : int
        Resolved batch size.
    threshold_ : float
        Anomaly-score threshold (see :class:`anomalia.base.BaseDetector`).
    n_features_in_ : int
        Number of features (values per image) seen during fit.

    See Also
    --------
    anomalia.detectors.autoencoder.AEDetector : Unsupervised, when there are no labels.

    References
    ----------
    D. Hendrycks and K. Gimpel, "A baseline for detecting misclassified and
    out-of-distribution examples in neural networks", ICLR 2017.
    D. Hendrycks, M. Mazeika and T. Dietterich, "Deep anomaly detection with outlier
    exposure", ICLR 2019.
    K. Lee, K. Lee, H. Lee and J. Shin, "A simple unified framework for detecting
    out-of-distribution samples and adversarial attacks", NeurIPS 2018.
    W. Liu, X. Wang, J. Owens and Y. Li, "Energy-based out-of-distribution detection",
    NeurIPS 2020.
    C. Guo, G. Pleiss, Y. Sun and K. Weinberger, "On calibration of modern neural
    networks", ICML 2017.
    K. Lee, H. Lee, K. Lee and J. Shin, "Training confidence-calibrated classifiers for
    detecting out-of-distribution samples", ICLR 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from anomalia.detectors.confidence import ConfidenceDetector
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(-3, 1, (100, 2)), rng.normal(3, 1, (100, 2))]
    >>> y = np.r_[np.zeros(100), np.ones(100)]
    >>> det = ConfidenceDetector(hidden=(8,), epochs=20, random_state=0).fit(X, y)
    >>> det.predict_class([[-3.0, -3.0], [3.0, 3.0]])
    array([0., 1.])
    """

    _scale_constant_features = False  # a classifier: inputs stay in its training range

    name = "confidence"

    def __init__(
        self,
        *,
        classifier: Any = None,
        score_method: str = "msp",
        temperature: float | str | None = None,
        oe_weight: float = 0.5,
        outliers: str | None = None,
        gan_epochs: int = 20,
        hidden: tuple[int, ...] = (64, 64),
        channels: tuple[int, ...] = (32, 64),
        activation: str = "relu",
        dropout: float = 0.0,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        epochs: int = 100,
        batch_size: int | str = "auto",
        validation_fraction: float = 0.1,
        patience: int | None = 10,
        standardize: bool = True,
        contamination: float | str | None = None,
        random_state: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.classifier = classifier
        self.score_method = score_method
        self.temperature = temperature
        self.oe_weight = oe_weight
        self.outliers = outliers
        self.gan_epochs = gan_epochs
        self.hidden = hidden
        self.channels = channels
        self.activation = activation
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.standardize = standardize
        self.contamination = contamination
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self) -> Any:
        """scikit-learn tags: ``fit`` requires ``y`` (the known classes)."""
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags

    # -- fit -------------------------------------------------------------------------------
    def fit(
        self, X: ArrayLike, y: ArrayLike | None = None, X_outliers: ArrayLike | None = None
    ) -> Self:
        """Fit the classifier on labelled normal data and set the threshold.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n, H, W) or (n, C, H, W)
            Training rows or images of the known classes.
        y : array-like of shape (n_samples,)
            The known class of each row (any labels, at least 2 distinct). Required.
        X_outliers : array-like, optional
            Known anomalies, shaped like ``X``, for outlier exposure (built-in networks only).

        Returns
        -------
        self : object
            The fitted detector.
        """
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None: "
                "fit(X, y) needs the known class of every training row"
            )
        self._fit_targets = (y, X_outliers)
        try:
            return super().fit(X)
        finally:
            del self._fit_targets

    def fit_predict(self, X: ArrayLike, y: ArrayLike | None = None, **kwargs: Any) -> Any:
        """Fit on ``(X, y)`` and return ``predict(X)`` (+1 normal, -1 anomaly)."""
        return self.fit(X, y, **kwargs).predict(X)

    def _check_params(self) -> None:
        check_option("score_method", self.score_method, SCORES)
        check_option("outliers", self.outliers, OUTLIER_SOURCES)
        check_int("gan_epochs", self.gan_epochs)
        if self.classifier is not None and self.outliers is not None:
            raise ValueError(
                f"outliers={self.outliers!r} needs the built-in network (classifier=None)"
            )
        if self.classifier is not None:
            if not hasattr(self.classifier, "fit") or not hasattr(self.classifier, "predict_proba"):
                raise ValueError(
                    f"classifier must be a scikit-learn classifier with predict_proba; "
                    f"{type(self.classifier).__name__} has no predict_proba"
                )
            if self.score_method in NETWORK_SCORES:
                raise ValueError(
                    f"score_method={self.score_method!r} needs the built-in network "
                    "(classifier=None); a scikit-learn classifier supports 'msp' and 'entropy'"
                )
        if self.temperature is not None and self.temperature != "auto":
            check_fraction(
                "temperature", self.temperature, low=0.0, high=np.inf, high_inclusive=False
            )
        check_fraction("oe_weight", self.oe_weight, low=0.0, high=np.inf, low_inclusive=True)
        check_fraction(
            "dropout", self.dropout, low=0.0, high=1.0, low_inclusive=True, high_inclusive=False
        )
        check_fraction("lr", self.lr, low=0.0, high=np.inf)
        check_fraction("weight_decay", self.weight_decay, low=0.0, high=np.inf, low_inclusive=True)
        check_int("epochs", self.epochs)
        if self.batch_size != "auto":
            check_int("batch_size", self.batch_size, minimum=2)
        check_fraction(
            "validation_fraction",
            self.validation_fraction,
            low=0.0,
            high=1.0,
            low_inclusive=True,
            high_inclusive=False,
        )
        if self.temperature == "auto" and self.validation_fraction == 0:
            raise ValueError("temperature='auto' needs validation_fraction > 0 (held-out rows)")

    def _labels(self, n_rows: int) -> NDArray[np.int64]:
        y = self._fit_targets[0]
        y = column_or_1d(y, warn=True)
        check_consistent_length(np.empty(n_rows), y)
        check_classification_targets(y)
        self.classes_, y_enc = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 known classes; y has only "
                f"{self.classes_.tolist()!r}"
            )
        return y_enc.astype(np.int64)

    def _fit(self, X: NDArray[np.float64]) -> None:
        for stale in _FITTED_PARTS:  # from an earlier fit with the other kind of classifier
            self.__dict__.pop(stale, None)
        y = self._labels(len(X))
        X_out = self._fit_targets[1]
        if X_out is not None:
            if self.classifier is not None:
                raise ValueError(
                    "X_outliers (outlier exposure) needs the built-in network (classifier=None)"
                )
            if self.outliers is not None:
                raise ValueError(
                    f"outliers={self.outliers!r} generates the outliers: pass no X_outliers "
                    "(or use outliers=None)"
                )
            X_out = self._validate(X_out, reset=False)
        self.seed_ = seed_from(self.random_state)
        fit_rows, held_out = self._temperature_split(y)
        if self.outliers == "generate":
            X_out = self._fit_generator(X[fit_rows], y[fit_rows])
        if self.classifier is None:
            self._fit_network(X, y, X_out, fit_rows)
        else:
            self.classifier_ = clone(self.classifier).fit(self._flat(X[fit_rows]), y[fit_rows])
        if self.temperature == "auto":
            self.temperature_ = self._fit_temperature(X[held_out], y[held_out])
        else:
            self.temperature_ = 1.0 if self.temperature is None else float(self.temperature)
        if self.classifier is None:
            self._fit_class_gaussians(X, y)

    def _temperature_split(
        self, y: NDArray[np.int64]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Rows to fit the classifier on, and rows held out for ``temperature="auto"``."""
        everything = np.arange(len(y))
        if self.temperature != "auto":
            return everything, everything[:0]
        rng = np.random.default_rng(self.seed_)
        held = []
        for k in range(len(self.classes_)):
            rows = rng.permutation(everything[y == k])
            # stratified, and every class keeps at least one row to learn from
            held.append(rows[: min(len(rows) - 1, round(len(rows) * self.validation_fraction))])
        held_out = np.sort(np.concatenate(held))
        if len(held_out) == 0:
            raise ValueError(
                "temperature='auto' holds out no row: use more training rows or a larger "
                "validation_fraction"
            )
        return np.setdiff1d(everything, held_out), held_out

    def _fit_network(
        self,
        X: NDArray[np.float64],
        y: NDArray[np.int64],
        X_out: NDArray[np.float64] | None,
        rows: NDArray[np.int64],
    ) -> None:
        self.batch_size_ = (
            auto_batch_size(len(rows)) if self.batch_size == "auto" else int(self.batch_size)
        )
        self._fit_scaling(X[rows])
        inputs, labels = X[rows], y[rows]
        if X_out is not None:
            inputs = np.concatenate([inputs, X_out])
            labels = np.concatenate([labels, np.full(len(X_out), -1, dtype=np.int64)])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed_)
            net = self._build_module()
        packed = PackedLabels.pack(self._tensor(inputs, torch.float32), torch.from_numpy(labels))
        config = self._train_config(self.epochs)
        self.history_ = train(PackedLabels(net, inputs.shape[1:]), packed, config)
        self.n_epochs_ = len(self.history_["train_loss"])
        self.stopped_epoch_ = stopped_epoch(self.history_, config)
        # scores in float64: batch composition then cannot change them (float32 drifts ~1e-7)
        self.module_ = net.double().eval()

    def _train_config(self, epochs: int) -> TrainConfig:
        return TrainConfig(
            epochs=epochs,
            batch_size=self.batch_size_,
            lr=self.lr,
            weight_decay=self.weight_decay,
            validation_fraction=self.validation_fraction,
            patience=self.patience,
            seed=self.seed_,
            verbose=self.verbose,
        )

    def _fit_generator(self, X: NDArray[np.float64], y: NDArray[np.int64]) -> NDArray[np.float64]:
        """Train the boundary GAN with a classifier of its own; return ``len(X)`` generated
        outliers in the input's units and shape."""
        self.batch_size_ = (
            auto_batch_size(len(X)) if self.batch_size == "auto" else int(self.batch_size)
        )
        self._fit_scaling(X)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed_ + 1)  # not the final classifier's initial weights
            net = self._build_module()
            gan = self._build_gan(with_discriminator=True)
        self.gan_history_ = train_boundary_gan(
            net,
            gan,
            self._tensor(X, torch.float32),
            torch.from_numpy(y),
            self._train_config(self.gan_epochs),
        )
        self.generator_ = gan.generator.eval()
        return self.sample_outliers(len(X), random_state=self.seed_)

    def _build_gan(self, *, with_discriminator: bool) -> BoundaryGAN:
        hidden = (self.hidden,) if isinstance(self.hidden, int) else tuple(self.hidden)
        if self.image_shape_ is not None:
            c, h, w = self.image_shape_
            generator: MLPGenerator | ConvGenerator = ConvGenerator(
                LATENT_DIM, c, h, w, channels=self.channels, activation=self.activation
            )
            disc = (
                conv_discriminator(c, h, w, channels=self.channels) if with_discriminator else None
            )
        else:
            generator = MLPGenerator(
                LATENT_DIM, self.n_features_in_, hidden=hidden[::-1], activation=self.activation
            )
            disc = (
                mlp_discriminator(self.n_features_in_, hidden=hidden)
                if with_discriminator
                else None
            )
        return BoundaryGAN(generator, disc if disc is not None else torch.nn.Identity())

    def sample_outliers(self, n: int, random_state: int | None = None) -> NDArray[np.float64]:
        """Draw ``n`` generated outliers (``outliers="generate"`` only).

        Parameters
        ----------
        n : int
            Number of samples (>= 1).
        random_state : int or None, default=None
            Seed of the generator's noise; None draws fresh noise.

        Returns
        -------
        ndarray of shape (n, n_features) or (n, C, H, W)
            Samples in the units of the training data (the scaling undone).
        """
        check_is_fitted(self)
        if getattr(self, "generator_", None) is None:
            raise ValueError(
                "this model has no generator of outliers: fit it with outliers='generate'"
            )
        n = check_int("n", n)
        rng = torch.Generator().manual_seed(seed_from(random_state))
        gan = BoundaryGAN(self.generator_, torch.nn.Identity())
        with torch.inference_mode():
            fake = gan.sample(n, rng).double().numpy()
        return fake * self.input_scale_ + self.input_shift_

    def _fit_temperature(self, X: NDArray[np.float64], y: NDArray[np.int64]) -> float:
        logits = self._logits(X)
        labels = torch.from_numpy(y)

        def nll(log_t: float) -> float:
            return float(torch.nn.functional.cross_entropy(logits / math.exp(log_t), labels))

        lo, hi = (math.log(b) for b in TEMPERATURE_BOUNDS)
        result = minimize_scalar(nll, bounds=(lo, hi), method="bounded")
        return float(math.exp(result.x))

    def _fit_class_gaussians(self, X: NDArray[np.float64], y: NDArray[np.int64]) -> None:
        feats = self._batched(X, self.module_.features).numpy()
        self.class_means_ = np.stack(
            [feats[y == k].mean(axis=0) for k in range(len(self.classes_))]
        )
        centred = feats - self.class_means_[y]
        self.precision_ = LedoitWolf(assume_centered=True).fit(centred).precision_

    # -- networks and inputs ---------------------------------------------------------------
    def _build_module(self) -> torch.nn.Module:
        n_classes = len(self.classes_)
        if self.image_shape_ is not None:
            c, h, w = self.image_shape_
            return CNNClassifierNet(
                c,
                h,
                w,
                n_classes,
                channels=self.channels,
                hidden=self.hidden,
                activation=self.activation,
                dropout=self.dropout,
                oe_weight=self.oe_weight,
            )
        return MLPClassifierNet(
            self.n_features_in_,
            n_classes,
            hidden=self.hidden,
            activation=self.activation,
            dropout=self.dropout,
            oe_weight=self.oe_weight,
        )

    def _restore_module(self, attribute: str, state: dict[str, Any]) -> torch.nn.Module:
        if attribute == "generator_":
            return module_from_state(
                lambda: self._build_gan(with_discriminator=False).generator, state
            )
        return module_from_state(lambda: self._build_module().double(), state)

    @staticmethod
    def _flat(X: NDArray[np.float64]) -> NDArray[np.float64]:
        return X.reshape(len(X), -1)

    def _tensor(self, X: NDArray[np.float64], dtype: torch.dtype) -> torch.Tensor:
        Z = (X - self.input_shift_) / self.input_scale_
        return torch.from_numpy(np.ascontiguousarray(Z)).to(dtype)

    def _batched(self, X: NDArray[np.float64], fn: Any) -> torch.Tensor:
        with torch.inference_mode():
            t = self._tensor(X, torch.float64)
            return torch.cat([fn(chunk) for chunk in t.split(SCORE_BATCH)])

    def _logits(self, X: NDArray[np.float64]) -> torch.Tensor:
        """Logits in float64; for a scikit-learn classifier, the log-probabilities."""
        if self.classifier is None:
            return self._batched(X, self.module_)
        proba = self.classifier_.predict_proba(self._flat(X))
        return torch.from_numpy(np.log(np.clip(proba, np.finfo(np.float64).tiny, None)))

    # -- scores ----------------------------------------------------------------------------
    def _anomaly_score(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        check_option("score_method", self.score_method, SCORES)
        if self.score_method in NETWORK_SCORES and self.classifier is not None:
            raise ValueError(
                f"score_method={self.score_method!r} needs the built-in network (classifier=None)"
            )
        if self.score_method == "mahalanobis":
            feats = self._batched(X, self.module_.features).numpy()
            diff = feats[:, None, :] - self.class_means_[None]  # (n, k, d)
            d2 = np.einsum("nkd,de,nke->nk", diff, self.precision_, diff, optimize=True)
            return np.sqrt(np.clip(d2.min(axis=1), 0.0, None))
        scores = logit_scores(self._logits(X), self.score_method, self.temperature_)
        return scores.numpy()

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Probability of each known class (softmax at ``temperature_``).

        Parameters
        ----------
        X : array-like
            Rows or images shaped like the training data.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``.
        """
        check_is_fitted(self)
        logits = self._logits(self._validate(X, reset=False))
        return torch.softmax(logits / self.temperature_, dim=1).numpy()

    def predict_class(self, X: ArrayLike) -> NDArray[Any]:
        """The most probable known class, or ``-1`` where :meth:`predict` flags an anomaly.

        Parameters
        ----------
        X : array-like
            Rows or images shaped like the training data.

        Returns
        -------
        ndarray of shape (n_samples,)
            Numeric classes keep their dtype; other labels give an object array.
        """
        known = self.classes_[self.predict_proba(X).argmax(axis=1)]
        if known.dtype.kind not in "biuf":
            known = known.astype(object)
        return np.where(self.predict(X) == -1, -1, known)
