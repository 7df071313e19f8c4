"""scikit-learn parts of a model, stored as plain arrays and rebuilt under validation.

skops rebuilds scikit-learn objects without pickle, but compiled structures (a forest's
``Tree``, a ``KDTree``) hold integer arrays that compiled code follows without bounds
checks: a crafted file could point them anywhere. So the parts anomalia's own detectors use
are stored here as arrays and JSON, and rebuilt only after every invariant compiled code
relies on has been checked:

* ``StandardScaler``: mean, scale and variance, finite, one per feature.
* ``NearestNeighbors``: the indexed rows only; the search tree is rebuilt from them by
  ``fit`` (milliseconds), so no index array is ever read from a file.
* ``LocalOutlierFactor``: likewise the rows only; ``fit`` rebuilds the tree and recomputes
  every neighbourhood and density from them.
* ``OneClassSVM``: support vectors, dual coefficients and intercept; every array libsvm
  reads is rebuilt from them with consistent shapes.
* ``IsolationForest``: the node arrays of each tree, checked (children after their parent
  and inside the tree, or both the leaf marker; features inside the tree's features;
  finite thresholds and values) before ``Tree.__setstate__`` sees them.

Any other scikit-learn estimator (a user's classifier in ``confidence``) goes through skops
with its default trusted types only: what skops does not trust is refused when saving.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import LocalOutlierFactor, NearestNeighbors
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM
from sklearn.tree import ExtraTreeRegressor
from sklearn.tree._tree import NODE_DTYPE, Tree

from ..errors import AnomaliaError, ModelFileError

Arrays = dict[str, NDArray[Any]]

_NODE_FIELDS = NODE_DTYPE.names
_LEAF = -1  # sklearn.tree._tree.TREE_LEAF
_UNDEFINED = -2  # sklearn.tree._tree.TREE_UNDEFINED


def _array(arrays: Arrays, key: str, dtype: Any, shape: tuple[int | None, ...]) -> NDArray[Any]:
    """``arrays[key]`` checked for dtype, shape (None: any length) and finiteness."""
    if key not in arrays:
        raise ModelFileError(f"array {key} is missing")
    arr = arrays[key]
    if arr.dtype != np.dtype(dtype) or arr.ndim != len(shape):
        raise ModelFileError(f"array {key} has dtype {arr.dtype} and {arr.ndim} dimensions")
    if any(s is not None and s != n for s, n in zip(shape, arr.shape, strict=True)):
        raise ModelFileError(f"array {key} has shape {arr.shape}, expected {shape}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ModelFileError(f"array {key} holds NaN or infinity")
    return np.ascontiguousarray(arr)


def _int(spec: dict[str, Any], key: str, low: int = 0, high: int = 2**62) -> int:
    value = spec.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ModelFileError(f"{key} must be an integer in [{low}, {high}], got {value!r}")
    return value


def _float(spec: dict[str, Any], key: str) -> float:
    value = spec.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool) or not np.isfinite(value):
        raise ModelFileError(f"{key} must be a finite number, got {value!r}")
    return float(value)


def _built(cls: type[BaseEstimator], params: Any) -> Any:
    """``cls(**params)`` with scikit-learn's own parameter validation."""
    if not isinstance(params, dict):
        raise ModelFileError(f"parameters of {cls.__name__} must be an object")
    try:
        est = cls(**params)
        est._validate_params()
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"invalid {cls.__name__} parameters: {exc}") from None
    return est


def _params(est: BaseEstimator) -> dict[str, Any]:
    return est.get_params(deep=False)


# -- StandardScaler --------------------------------------------------------------------------
def _dump_scaler(s: StandardScaler) -> tuple[dict[str, Any], Arrays]:
    if s.mean_ is None or s.scale_ is None:
        raise AnomaliaError("only StandardScaler with mean and scale can be saved")
    return {"params": _params(s), "n_samples_seen": int(np.max(s.n_samples_seen_))}, {
        "mean": s.mean_,
        "scale": s.scale_,
        "var": s.var_,
    }


def _load_scaler(spec: dict[str, Any], arrays: Arrays, n_features: int) -> StandardScaler:
    s = _built(StandardScaler, spec.get("params"))
    s.mean_ = _array(arrays, "mean", np.float64, (n_features,))
    s.scale_ = _array(arrays, "scale", np.float64, (n_features,))
    s.var_ = _array(arrays, "var", np.float64, (n_features,))
    if (s.scale_ <= 0).any():
        raise ModelFileError("scaler scales must be positive")
    s.n_samples_seen_ = _int(spec, "n_samples_seen", 1)
    s.n_features_in_ = n_features
    return s


# -- NearestNeighbors ------------------------------------------------------------------------
def _dump_neighbors(nn: NearestNeighbors | LocalOutlierFactor) -> tuple[dict[str, Any], Arrays]:
    return {"params": _params(nn)}, {"rows": nn._fit_X}


def _load_neighbors(spec: dict[str, Any], arrays: Arrays, n_features: int) -> NearestNeighbors:
    nn = _built(NearestNeighbors, spec.get("params"))
    if not isinstance(nn.metric, str) or nn.metric_params is not None:
        raise ModelFileError("a saved neighbour index must use a named metric")
    rows = _array(arrays, "rows", np.float64, (None, n_features))
    if len(rows) < 1:
        raise ModelFileError("a neighbour index needs at least one row")
    return nn.fit(rows)  # the search tree is rebuilt, never read


# -- LocalOutlierFactor ----------------------------------------------------------------------
def _load_lof(spec: dict[str, Any], arrays: Arrays, n_features: int) -> LocalOutlierFactor:
    lof = _built(LocalOutlierFactor, spec.get("params"))
    if (
        lof.novelty is not True
        or not isinstance(lof.metric, str)
        or lof.metric == "precomputed"
        or lof.metric_params is not None
    ):
        raise ModelFileError("a saved local outlier factor must be a novelty one, named metric")
    rows = _array(arrays, "rows", np.float64, (None, n_features))
    if not 1 <= lof.n_neighbors < len(rows):
        raise ModelFileError(f"{lof.n_neighbors} neighbours for {len(rows)} rows")
    return lof.fit(rows)  # neighbourhoods and densities recomputed, never read


# -- OneClassSVM -----------------------------------------------------------------------------
def _dump_svm(svm: OneClassSVM) -> tuple[dict[str, Any], Arrays]:
    if svm._sparse or svm.kernel not in ("linear", "poly", "rbf", "sigmoid"):
        raise AnomaliaError("only a dense OneClassSVM with a named kernel can be saved")
    spec = {
        "params": _params(svm),
        "gamma": float(svm._gamma),
        "n_train": int(svm.shape_fit_[0]),
        "n_iter": int(svm.n_iter_),
        "fit_status": int(svm.fit_status_),
    }
    return spec, {
        "support": svm.support_.astype(np.int64),
        "support_vectors": svm.support_vectors_,
        "dual_coef": svm._dual_coef_,
        "intercept": svm._intercept_,
    }


def _load_svm(spec: dict[str, Any], arrays: Arrays, n_features: int) -> OneClassSVM:
    svm = _built(OneClassSVM, spec.get("params"))
    if not isinstance(svm.kernel, str) or svm.kernel == "precomputed":
        raise ModelFileError("a saved one-class SVM must use a named kernel")
    n_train = _int(spec, "n_train", 1, 2**31 - 1)
    sv = _array(arrays, "support_vectors", np.float64, (None, n_features))
    n_sv = len(sv)
    if not 1 <= n_sv <= n_train:
        raise ModelFileError(f"{n_sv} support vectors for {n_train} training rows")
    support = _array(arrays, "support", np.int64, (n_sv,))
    if ((support < 0) | (support >= n_train)).any():
        raise ModelFileError("support indices are outside the training rows")
    dual = _array(arrays, "dual_coef", np.float64, (1, n_sv))
    intercept = _array(arrays, "intercept", np.float64, (1,))
    gamma = _float(spec, "gamma")
    if gamma <= 0:
        raise ModelFileError("gamma must be positive")
    svm._sparse, svm._gamma = False, np.float64(gamma)
    svm.support_ = support.astype(np.int32)
    svm.support_vectors_ = sv
    svm._n_support = np.array([n_sv, n_sv], dtype=np.int32)
    svm._dual_coef_, svm.dual_coef_ = dual, dual
    svm._intercept_, svm.intercept_, svm.offset_ = intercept, intercept, -intercept
    svm._probA = svm._probB = np.empty(0, dtype=np.float64)
    svm._effective_probability = False
    svm.shape_fit_ = (n_train, n_features)
    svm.n_features_in_ = n_features
    svm.fit_status_ = _int(spec, "fit_status", 0, 1)
    svm.n_iter_ = _int(spec, "n_iter", 0)
    svm._num_iter = np.array([svm.n_iter_], dtype=np.int32)
    return svm


# -- IsolationForest -------------------------------------------------------------------------
def _dump_forest(forest: IsolationForest) -> tuple[dict[str, Any], Arrays]:
    trees = forest.estimators_
    states = [t.tree_.__getstate__() for t in trees]
    nodes = np.concatenate([s["nodes"] for s in states])
    arrays: Arrays = {f"node/{f}": np.ascontiguousarray(nodes[f]) for f in _NODE_FIELDS}
    arrays["value"] = np.concatenate([s["values"].reshape(-1) for s in states])
    arrays["path_length"] = np.concatenate(forest._decision_path_lengths).astype(np.int64)
    arrays["average_path"] = np.concatenate(forest._average_path_length_per_tree)
    arrays["features"] = np.concatenate(forest.estimators_features_).astype(np.int64)
    spec = {
        "params": _params(forest),
        "tree_params": [_params(t) for t in trees],
        "node_count": [int(s["node_count"]) for s in states],
        "max_depth": [int(s["max_depth"]) for s in states],
        "n_tree_features": int(forest._max_features),
        "max_samples": int(forest._max_samples),
        "n_samples": int(forest._n_samples),
        "offset": float(forest.offset_),
    }
    return spec, arrays


def _check_nodes(nodes: dict[str, NDArray[Any]], start: NDArray[np.int64], n_features: int) -> None:
    """The invariants ``Tree.apply`` relies on, for all trees at once (node-local indices)."""
    counts = np.diff(np.append(start, len(nodes["left_child"])))
    local = np.arange(len(nodes["left_child"])) - np.repeat(start, counts)
    size = np.repeat(counts, counts)
    left, right, feature = nodes["left_child"], nodes["right_child"], nodes["feature"]
    leaf = left == _LEAF
    inner = ~leaf
    # children come after their parent, inside the tree: every path ends, at a real node
    if not (right[leaf] == _LEAF).all() or not (feature[leaf] == _UNDEFINED).all():
        raise ModelFileError("a tree leaf has a child or a split feature")
    for child in (left[inner], right[inner]):
        if ((child <= local[inner]) | (child >= size[inner])).any():
            raise ModelFileError("a tree node points outside its tree or back up the tree")
    if ((feature[inner] < 0) | (feature[inner] >= n_features)).any():
        raise ModelFileError("a tree split uses a feature outside the model's features")
    for key in ("threshold", "impurity", "weighted_n_node_samples"):
        if not np.isfinite(nodes[key]).all():
            raise ModelFileError(f"tree {key} holds NaN or infinity")
    if (nodes["n_node_samples"] < 0).any() or not np.isin(
        nodes["missing_go_to_left"], (0, 1)
    ).all():
        raise ModelFileError("tree node counts or missing-value directions are invalid")


def _load_forest(spec: dict[str, Any], arrays: Arrays, n_features: int) -> IsolationForest:
    forest = _built(IsolationForest, spec.get("params"))
    counts, depths, tree_params = (spec.get(k) for k in ("node_count", "max_depth", "tree_params"))
    n_trees = forest.n_estimators
    for key, value in (("node_count", counts), ("max_depth", depths), ("tree_params", tree_params)):
        if not isinstance(value, list) or len(value) != n_trees:
            raise ModelFileError(f"{key} must list one entry per tree ({n_trees})")
    counts = [_int({"n": c}, "n", 1, 2**40) for c in counts]
    total = sum(counts)
    width = _int(spec, "n_tree_features", 1, n_features)
    nodes = {f: _array(arrays, f"node/{f}", NODE_DTYPE[f], (total,)) for f in _NODE_FIELDS}
    start = np.cumsum([0, *counts[:-1]]).astype(np.int64)
    _check_nodes(nodes, start, width)
    values = _array(arrays, "value", np.float64, (total,))
    path_length = _array(arrays, "path_length", np.int64, (total,))
    average_path = _array(arrays, "average_path", np.float64, (total,))
    features = _array(arrays, "features", np.int64, (n_trees * width,))
    if ((features < 0) | (features >= n_features)).any():
        raise ModelFileError("a tree's feature subset is outside the model's features")
    packed = np.empty(total, dtype=NODE_DTYPE)
    for f in _NODE_FIELDS:
        packed[f] = nodes[f]
    trees, paths, averages = [], [], []
    for i, (s, n) in enumerate(zip(start, counts, strict=True)):
        depth = _int({"d": depths[i]}, "d", 0, n)
        tree = _built(ExtraTreeRegressor, tree_params[i])
        tree.tree_ = Tree(width, np.ones(1, dtype=np.intp), 1)
        tree.tree_.__setstate__(
            {
                "max_depth": depth,
                "node_count": n,
                "nodes": packed[s : s + n].copy(),
                "values": values[s : s + n].reshape(n, 1, 1).copy(),
            }
        )
        tree.n_features_in_, tree.n_outputs_, tree.max_features_ = width, 1, width
        trees.append(tree)
        paths.append(path_length[s : s + n])
        averages.append(average_path[s : s + n])
    forest.estimators_ = trees
    forest.estimator_ = _built(ExtraTreeRegressor, {**tree_params[0], "random_state": None})
    forest.estimators_features_ = list(features.reshape(n_trees, width))
    forest._decision_path_lengths, forest._average_path_length_per_tree = paths, averages
    forest._max_features = width
    forest._max_samples = forest.max_samples_ = _int(spec, "max_samples", 1)
    forest._n_samples = _int(spec, "n_samples", 1)
    forest._sample_weight, forest._seeds = None, None
    forest.offset_ = _float(spec, "offset")
    forest.n_features_in_ = n_features
    return forest


#: class name -> (its class, dump, load): the scikit-learn parts stored as plain arrays.
CODECS: dict[str, tuple[type[Any], Any, Any]] = {
    "StandardScaler": (StandardScaler, _dump_scaler, _load_scaler),
    "NearestNeighbors": (NearestNeighbors, _dump_neighbors, _load_neighbors),
    "LocalOutlierFactor": (LocalOutlierFactor, _dump_neighbors, _load_lof),
    "OneClassSVM": (OneClassSVM, _dump_svm, _load_svm),
    "IsolationForest": (IsolationForest, _dump_forest, _load_forest),
}


def can_encode(est: Any) -> bool:
    """Whether ``est`` is one of the parts :func:`encode` stores as plain arrays."""
    entry = CODECS.get(type(est).__name__)
    return entry is not None and type(est) is entry[0]


def encode(est: Any) -> tuple[dict[str, Any], Arrays]:
    """The JSON spec (with ``"class"``) and arrays of a fitted part."""
    name = type(est).__name__
    spec, arrays = CODECS[name][1](est)
    arrays = {k: np.ascontiguousarray(a) for k, a in arrays.items()}
    return {"class": name, "n_features": int(est.n_features_in_), **spec}, arrays


def decode(spec: Any, arrays: Arrays) -> Any:
    """Rebuild a part from :func:`encode`'s output, refusing anything inconsistent."""
    if not isinstance(spec, dict) or spec.get("class") not in CODECS:
        raise ModelFileError(f"unknown scikit-learn part {spec!r:.60}")
    n_features = _int(spec, "n_features", 1, 2**31 - 1)
    return CODECS[spec["class"]][2](spec, arrays, n_features)
