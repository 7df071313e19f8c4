"""The classical detectors as ONNX subgraphs: gaussian, knn, ocsvm, iforest.

Each ``*_score(g, det, x)`` appends to the :class:`~anomalia.export._graph.Graph` ``g`` the
nodes that turn the raw rows ``x`` (a ``(batch, n_features)`` tensor in the graph's dtype)
into the detector's anomaly score, a ``(batch,)`` tensor in the graph's dtype, and returns
the score's name.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx
from scipy.linalg import solve_triangular

from ..errors import AnomaliaError
from ._graph import ML_OPSET, Graph


def standardise(g: Graph, scaler: Any, x: str, hint: str) -> str:
    """``(x - mean_) / scale_`` of a fitted StandardScaler (``x`` itself when None)."""
    if scaler is None:
        return x
    mean = getattr(scaler, "mean_", None)
    scale = getattr(scaler, "scale_", None)
    if mean is not None:
        x = g.op("Sub", x, g.const(mean, f"{hint}_mean"), hint=f"{hint}_centred")
    if scale is not None:
        x = g.op("Div", x, g.const(scale, f"{hint}_scale"), hint=f"{hint}_scaled")
    return x


def row_sum_squares(g: Graph, x: str, hint: str, *, axis: int = 1, keepdims: int = 0) -> str:
    """``sum(x ** 2)`` along ``axis``."""
    sq = g.op("Mul", x, x, hint=f"{hint}_sq")
    return g.op("ReduceSum", sq, g.ints([axis], "axis"), hint=hint, keepdims=keepdims)


def gaussian_score(g: Graph, det: Any, x: str) -> str:
    """Negative log-density or Mahalanobis distance of a fitted ``GaussianDetector``.

    With ``Z = (x - mean) / scale`` and the lower Cholesky factor ``L`` of the standardised
    covariance, ``W = L^-1 Z^T``, so ``W^T = (x - mean) A`` with the precomputed matrix
    ``A = diag(1 / scale) L^-T``: one subtraction and one matrix product.
    """
    chol = np.asarray(det.cholesky_, dtype=np.float64)
    d = chol.shape[0]
    inv = solve_triangular(chol, np.eye(d), lower=True)  # L^-1
    A = inv.T / det.scaler_.scale_[:, None]
    centred = g.op("Sub", x, g.const(det.scaler_.mean_, "gaussian_mean"), hint="gaussian_centred")
    w = g.op("MatMul", centred, g.const(A, "gaussian_whitening"), hint="gaussian_whitened")
    m2 = row_sum_squares(g, w, "gaussian_mahalanobis_sq")
    if det.score_method == "distance":
        return g.op("Sqrt", m2, hint="gaussian_distance")
    half = g.op("Mul", m2, g.const(np.array(0.5), "half"), hint="gaussian_half_m2")
    c = 0.5 * (d * math.log(2.0 * math.pi) + det.log_det_)
    return g.op("Add", half, g.const(np.array(c), "gaussian_log_norm"), hint="gaussian_nll")


def knn_score(g: Graph, det: Any, x: str) -> str:
    """k-th / mean / median distance to the training rows of a fitted ``KNNDetector``.

    Rows and reference rows are centred on the reference mean (as the detector's search
    does). Squared distances to every reference row come from one matrix product,
    ``|z|^2 - 2 z.r + |r|^2`` clipped at 0. In float32 that sum loses digits for near
    neighbours (the terms are much larger than their difference), so it only picks
    candidates: the ``candidate_count`` (``k + KNN_EXTRA_CANDIDATES``, at least ``2k``) smallest,
    whose distances are then recomputed from the differences ``z - r`` themselves, and the
    ``k`` smallest of those are the neighbours.
    """
    from ..detectors.classical import _SAME_ROW, candidate_count

    ref = np.asarray(det.estimator_._fit_X, dtype=np.float64)
    n_ref, n_feat = ref.shape
    k = int(det.n_neighbors_)
    need = k + 1 if det.duplicates == "ignore" else k
    n_cand = candidate_count(n_ref, need)
    # centred on the reference mean, as the detector searches (distances do not change,
    # and float32 keeps the digits of rows far from 0)
    centre = ref.mean(axis=0)
    z = standardise(g, det.scaler_, x, "knn")
    z = g.op("Sub", z, g.const(centre[None, :], "knn_centre"), hint="knn_z_centred")
    ref = ref - centre
    R = g.const(ref, "knn_reference")
    zz = row_sum_squares(g, z, "knn_zz", keepdims=1)  # (n, 1)
    zr = g.op("Gemm", z, R, hint="knn_zr", transB=1)  # (n, m): z @ R^T
    rr = g.const((ref**2).sum(axis=1)[None, :], "knn_rr")  # (1, m)
    two_zr = g.op("Mul", zr, g.const(np.array(2.0), "two"), hint="knn_2zr")
    approx = g.op("Add", g.op("Sub", zz, two_zr, hint="knn_d2_part"), rr, hint="knn_d2_approx")
    approx = g.op("Max", approx, g.const(np.array(0.0), "zero"), hint="knn_d2_clipped")
    _, cand = g.op(
        "TopK",
        approx,
        g.ints([n_cand], "knn_n_cand"),
        hint="knn_cand",
        outputs=2,
        axis=1,
        largest=0,
        sorted=1,
    )
    rows = g.op("Gather", R, cand, hint="knn_cand_rows", axis=0)  # (n, c, f)
    zu = g.op("Unsqueeze", z, g.ints([1], "axis1"), hint="knn_z3")  # (n, 1, f)
    diff = g.op("Sub", zu, rows, hint="knn_diff")
    exact = row_sum_squares(g, diff, "knn_d2_exact", axis=2)  # (n, c)
    d2, _ = g.op(
        "TopK",
        exact,
        g.ints([need], "knn_need"),
        hint="knn_nearest_d2",
        outputs=2,
        axis=1,
        largest=0,
        sorted=1,
    )
    dist = g.op("Sqrt", d2, hint="knn_dist")  # (n, need), ascending
    if det.duplicates == "ignore":
        # a row whose nearest neighbour is its own copy skips it (the detector's rule)
        first = _columns(g, dist, 0, 1, "knn_first")
        limit = g.const(np.array(_SAME_ROW * np.sqrt(n_feat)), "knn_same_row")
        copy = g.op("LessOrEqual", first, limit, hint="knn_is_copy")  # (n, 1)
        dist = g.op(
            "Where",
            copy,
            _columns(g, dist, 1, k + 1, "knn_after_copy"),
            _columns(g, dist, 0, k, "knn_first_k"),
            hint="knn_dist_k",
        )
    if det.method == "largest":
        return _column(g, dist, k - 1, "knn_kth")
    if det.method == "mean":
        return g.op("ReduceMean", dist, g.ints([1], "axis"), hint="knn_mean", keepdims=0)
    if k % 2:
        return _column(g, dist, (k - 1) // 2, "knn_median")
    lo, hi = _column(g, dist, k // 2 - 1, "knn_mid_lo"), _column(g, dist, k // 2, "knn_mid_hi")
    total = g.op("Add", lo, hi, hint="knn_mid_sum")
    return g.op("Mul", total, g.const(np.array(0.5), "half"), hint="knn_median")


def _columns(g: Graph, x: str, start: int, stop: int, hint: str) -> str:
    """``x[:, start:stop]``."""
    return g.op(
        "Slice",
        x,
        g.ints([start], "start"),
        g.ints([stop], "stop"),
        g.ints([1], "axis1"),
        hint=hint,
    )


def _column(g: Graph, x: str, j: int, hint: str) -> str:
    """``x[:, j]``."""
    return g.op("Gather", x, g.ints(j, "index"), hint=hint, axis=1)


def ocsvm_score(g: Graph, det: Any, x: str) -> str:
    """Negated decision function of a fitted ``OCSVMDetector`` on standardised rows.

    ``decision = K(z, support vectors) @ dual_coef + intercept``, the kernel written with
    ONNX operators (onnxruntime's SVM operator has no float64 kernel). The weighted sum over
    the support vectors cancels heavily (decision values are much smaller than its terms:
    in float32 a polynomial kernel's score moved by 2e-5 relative), so the whole subgraph
    computes in float64 whatever the graph's dtype: float32 input is cast first, and only
    its own rounding remains. The linear kernel folds into one weight vector
    ``dual_coef @ support_vectors``; the RBF kernel's squared distances are
    ``|z|^2 - 2 z.s + |s|^2``, clipped at 0.
    """
    est = det.estimator_
    f64 = np.float64

    def const(value: Any, hint: str) -> str:
        return g.const(np.asarray(value, dtype=f64), hint, dtype=f64)

    sv = np.asarray(est.support_vectors_, dtype=f64)
    dual = np.asarray(est.dual_coef_, dtype=f64).reshape(-1, 1)
    x64 = x if g.dtype == f64 else g.cast(x, onnx.TensorProto.DOUBLE, "ocsvm_x64")
    z = x64
    if det.scaler_ is not None:
        z = g.op("Sub", z, const(det.scaler_.mean_, "ocsvm_mean"), hint="ocsvm_centred")
        z = g.op("Div", z, const(det.scaler_.scale_, "ocsvm_scale"), hint="ocsvm_scaled")
    if est.kernel == "linear":
        dec = g.op("MatMul", z, const(sv.T @ dual, "ocsvm_weights"), hint="ocsvm_linear")
    else:
        gamma = float(est._gamma)
        dot = g.op("MatMul", z, const(sv.T, "ocsvm_support_t"), hint="ocsvm_dot")  # (n, s)
        if est.kernel == "rbf":
            zz = row_sum_squares(g, z, "ocsvm_zz", keepdims=1)
            ss = const((sv**2).sum(axis=1)[None, :], "ocsvm_ss")
            two = g.op("Mul", dot, const(2.0, "two64"), hint="ocsvm_2dot")
            d2 = g.op("Add", g.op("Sub", zz, two, hint="ocsvm_d2_part"), ss, hint="ocsvm_d2")
            d2 = g.op("Max", d2, const(0.0, "zero64"), hint="ocsvm_d2_clipped")
            arg = g.op("Mul", d2, const(-gamma, "ocsvm_neg_gamma"), hint="ocsvm_exponent")
            K = g.op("Exp", arg, hint="ocsvm_kernel")
        elif est.kernel in ("poly", "sigmoid"):
            scaled = g.op("Mul", dot, const(gamma, "ocsvm_gamma"), hint="ocsvm_gamma_dot")
            lin = g.op("Add", scaled, const(float(est.coef0), "ocsvm_coef0"), hint="ocsvm_affine")
            if est.kernel == "poly":
                power = const(float(est.degree), "ocsvm_degree")
                K = g.op("Pow", lin, power, hint="ocsvm_kernel")
            else:
                K = g.op("Tanh", lin, hint="ocsvm_kernel")
        else:
            raise AnomaliaError(f"cannot export a one-class SVM with kernel {est.kernel!r}")
        dec = g.op("MatMul", K, const(dual, "ocsvm_dual_coef"), hint="ocsvm_dual")  # (n, 1)
    intercept = const(np.asarray(est.intercept_).reshape(1), "ocsvm_intercept")
    dec = g.op("Add", dec, intercept, hint="ocsvm_decision")
    neg = g.op("Neg", dec, hint="ocsvm_neg")  # (n, 1) float64
    if g.dtype != f64:
        neg = g.cast(neg, g.elem, "ocsvm_neg_cast")
    return g.op("Reshape", neg, g.ints([-1], "flat"), hint="ocsvm_score")


def _floor32(values: np.ndarray) -> np.ndarray:
    """The largest float32 ``<=`` each float64 value: for a float32 ``x``,
    ``x <= t`` exactly when ``x <= _floor32(t)``."""
    t32 = values.astype(np.float32)
    up = t32.astype(np.float64) > values
    t32[up] = np.nextafter(t32[up], np.float32(-np.inf))
    return t32


def iforest_score(g: Graph, det: Any, x: str) -> str:
    """``-score_samples`` of a fitted ``IForestDetector``: one tree-ensemble operator.

    Every tree is one tree of an ``ai.onnx.ml`` ``TreeEnsembleRegressor`` summing its leaves'
    values; a leaf's value is scikit-learn's path length to it (its depth plus the average
    path length of the training rows it holds, less 1) over ``n_trees * c(max_samples)``, so
    the sum is the exponent of ``score = 2 ** -(mean path length / c(max_samples))``, which is
    the anomaly score. Trees grown on a subset of the features (``max_features < 1``) read
    their own columns. scikit-learn casts rows to float32 before the descent and compares
    them with float64 thresholds; here the rows are cast alike and each threshold is
    rounded down to float32, which gives the same branch for every float32 value.

    skl2onnx's IsolationForest converter is not used: it emits several nodes per tree
    (15 s to convert and a large graph for 100 trees) and refuses ``max_features < 1``.
    """
    from sklearn.ensemble._iforest import _average_path_length

    est = det.estimator_
    n_trees = len(est.estimators_)
    denominator = n_trees * float(_average_path_length([est._max_samples])[0])
    subsample = est._max_features != int(det.n_features_in_)
    attrs: dict[str, list[Any]] = {
        k: []
        for k in (
            "nodes_treeids",
            "nodes_nodeids",
            "nodes_featureids",
            "nodes_values",
            "nodes_modes",
            "nodes_truenodeids",
            "nodes_falsenodeids",
            "target_treeids",
            "target_nodeids",
            "target_weights",
        )
    }
    values: list[np.ndarray] = []
    for t, (tree, features) in enumerate(
        zip(est.estimators_, est.estimators_features_, strict=True)
    ):
        tr = tree.tree_
        n = int(tr.node_count)
        leaf = tr.children_left == -1
        columns = np.asarray(features if subsample else np.arange(det.n_features_in_))
        feature = np.where(leaf, 0, columns[np.where(leaf, 0, tr.feature)])
        attrs["nodes_treeids"] += [t] * n
        attrs["nodes_nodeids"] += list(range(n))
        attrs["nodes_featureids"] += [int(f) for f in feature]
        values.append(np.where(leaf, 0.0, _floor32(tr.threshold)).astype(np.float32))
        attrs["nodes_modes"] += ["LEAF" if lf else "BRANCH_LEQ" for lf in leaf]
        attrs["nodes_truenodeids"] += [int(c) if c >= 0 else 0 for c in tr.children_left]
        attrs["nodes_falsenodeids"] += [int(c) if c >= 0 else 0 for c in tr.children_right]
        path = est._decision_path_lengths[t] + est._average_path_length_per_tree[t] - 1.0
        leaves = np.flatnonzero(leaf)
        # one row per tree: scikit-learn sets the exponent to 1 (score 0.5)
        weight = path[leaves] / denominator if denominator else np.full(len(leaves), 1 / n_trees)
        attrs["target_treeids"] += [t] * len(leaves)
        attrs["target_nodeids"] += [int(i) for i in leaves]
        attrs["target_weights"] += [float(w) for w in weight]
    attrs["nodes_values"] = [float(v) for v in np.concatenate(values)]
    attrs["target_ids"] = [0] * len(attrs["target_nodeids"])
    g.opsets["ai.onnx.ml"] = ML_OPSET
    x32 = x if g.dtype == np.float32 else g.cast(x, onnx.TensorProto.FLOAT, "iforest_x32")
    exponent = g.op(
        "TreeEnsembleRegressor",
        x32,
        hint="iforest_exponent",
        domain="ai.onnx.ml",
        n_targets=1,
        aggregate_function="SUM",
        post_transform="NONE",
        **attrs,
    )  # (n, 1) float32: mean path length / c(max_samples)
    if g.dtype != np.float32:
        exponent = g.cast(exponent, g.elem, "iforest_exponent_cast")
    neg = g.op(
        "Neg",
        g.op("Reshape", exponent, g.ints([-1], "flat"), hint="iforest_flat"),
        hint="iforest_neg_exponent",
    )
    return g.op("Pow", g.const(np.array(2.0), "two"), neg, hint="iforest_score")
