"""Fitted detectors as ONNX models, to score without Python or anomalia.

:func:`to_onnx` turns a fitted detector into one ONNX graph (``anomalia export MODEL --out
model.onnx`` from the shell) that onnxruntime, or any ONNX runtime, runs:

* input ``X``: the raw feature matrix, shape ``(batch, n_features)`` with any batch size,
  float32 (default) or float64 (``dtype="float64"``). The columns are the model's features in
  training order (the ``feature_names`` metadata), after any one-hot encoding ``anomalia fit``
  did; image models take each image flattened, ``C x H x W`` values per row
  (the ``image_shape`` metadata).
* outputs ``anomaly_score`` (``batch``, the input's float type; higher is more anomalous,
  as :meth:`~anomalia.base.BaseDetector.anomaly_score`) and ``is_anomaly`` (``batch``,
  bool: ``anomaly_score > threshold_``).

Every step the detector applies is in the graph: the standardisation of the features or the
scaling of the pixels, the model itself, an ensemble's normalisation and weights, and the
threshold. The model's metadata (``metadata_props``) holds ``feature_names`` (a JSON list),
``threshold`` (the float64 threshold, as text), ``anomalia_version``, ``detector`` (its
name), ``model_sha256`` (of the model file, when given: the CLI gives it), ``dtype`` and
``image_shape`` (JSON, ``null`` for tables).

Which detectors export, and how:

* ``gaussian`` (density or distance): a subtraction and one matrix product with the
  precomputed ``diag(1 / scale) L^-T`` (``L`` the Cholesky factor).
* ``knn`` (largest, mean or median; duplicates counted or ignored): the training rows are an
  initializer; candidate neighbours come from squared distances by one matrix product, their
  exact distances from the differences themselves, then ``TopK``.
* ``ocsvm``: the kernel (rbf, linear, poly, sigmoid) against the support vectors in ONNX
  operators, computed in float64 whatever the input (its weighted sum cancels heavily);
  ``anomaly_score = -decision_function`` of the standardised rows.
* ``iforest``: every tree in one ``ai.onnx.ml`` ``TreeEnsembleRegressor`` whose leaves hold
  scikit-learn's path lengths; ``anomaly_score = 2 ** -(mean path length / c(max_samples))``,
  which is ``-score_samples``.
* ``ae``, ``dae``, ``conv-ae``, ``disentangle`` (reconstruction error), ``vae`` with
  ``score_method="elbo"`` (negative ELBO at the posterior mean) and ``vqvae`` (with or
  without code rarity): the network and its input scaling, exported by
  ``torch.onnx.export``'s dynamo exporter (torch 2.13's default; it uses onnxscript and
  works offline).
* ``ensemble`` and ``default``: the members' subgraphs, each member normalised as fitted
  (zscore, robust or rank) and weighted.

Anything else raises :class:`~anomalia.errors.AnomaliaError` saying why, never a model
that scores differently: a ``vae`` with ``score_method="mc"`` draws random numbers; a
``confidence`` detector (a classifier), ``lof`` and PyOD's detectors (``pyod:NAME``) are
not supported.

Precision. onnxruntime computes in the graph's float type, anomalia in float64 (its networks
in float32), so scores agree to rounding, and a row whose score lies within that rounding of
``threshold_`` may be flagged differently. Measured with onnxruntime on breast cancer
(trained on the benign rows, all 569 rows scored) and sklearn's digits for image models, as
``max |onnx - anomalia| / (|score| + mean |score|)`` (relative, with a floor at the scores'
scale: a score crossing 0, as a log-density or an SVM decision does, has no relative error of
its own): float32 stays within 4e-7 for every detector (gaussian 3.5e-7, knn 1e-7, ocsvm
1.7e-7, iforest 1.7e-7, default 1.7e-7, the networks 1.3e-7 to 2.6e-7), no row flagged
differently; float64 makes the classical detectors exact (1e-15; 1e-8 where scikit-learn's
own brute-force neighbour search rounds). The float32 limit is the rounding of the input
itself: a feature whose values are large next to its spread (a timestamp of 1.7e9 varying
by 1e3) loses its digits when cast to float32, and scores move by 1e-2 to 1e-1; use
``dtype="float64"`` for such data. The networks compute in float32 either way, as in
anomalia (float64 input is cast first), and so do isolation forests' trees, as in
scikit-learn (each float64 split value is rounded down to float32, so that every float32
value takes scikit-learn's branch). ``knn`` with ``duplicates="ignore"`` recognises a row's
own copy in training by the detector's rule (nearest distance ``<= 1e-6 * sqrt(n_features)``),
which in float32 holds while the raw values are within about 8 standard deviations of 0
(``|x| / scale``). An ensemble with ``normalization="rank"`` is a step function of its members'
scores: a member score within rounding of one of that member's training scores (the
training rows themselves score exactly there) can move the ensemble score by one step,
``weight / sum(weights) / n_train``. Rows whose score anomalia refuses (non-finite: values
far beyond the training range) come out as ``inf`` or ``nan``, and ``nan`` is not flagged.
"""

from ._convert import DTYPES, metadata, to_onnx
from ._runtime import OnnxScorer

__all__ = ["DTYPES", "OnnxScorer", "metadata", "to_onnx"]
