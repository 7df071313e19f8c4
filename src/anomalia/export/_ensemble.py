"""Ensembles as ONNX subgraphs: each member's score subgraph, normalised and averaged."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._graph import Graph


def ensemble_score(
    g: Graph, det: Any, x: str, member_score: Callable[[Graph, Any, str], str]
) -> str:
    """The weighted mean of the members' normalised scores of a fitted ``EnsembleDetector``.

    ``zscore`` and ``robust``: ``(score - center_) / scale_`` per member. ``rank``: the share
    of the member's sorted training scores ``<=`` the score (``searchsorted(side="right") /
    n``), counted by one comparison against all of them, so memory grows as batch size times
    training rows. ``member_score`` builds each member's own score subgraph.
    """
    weights = np.ones(len(det.detectors_)) if det.weights is None else np.asarray(det.weights)
    weights = weights.astype(np.float64) / float(np.sum(weights))
    total = None
    for i, member in enumerate(det.detectors_):
        s = member_score(g, member, x)
        if det.normalization == "rank":
            train = np.asarray(det.train_scores_[i], dtype=np.float64)
            su = g.op("Unsqueeze", s, g.ints([1], "axis1"), hint=f"member{i}_col")
            below = g.op(
                "LessOrEqual",
                g.const(train[None, :], f"member{i}_train_scores"),
                su,
                hint=f"member{i}_below",
            )
            count = g.op(
                "ReduceSum",
                g.cast(below, g.elem, f"member{i}_below_f"),
                g.ints([1], "axis1"),
                hint=f"member{i}_rank_count",
                keepdims=0,
            )
            z = g.op(
                "Div",
                count,
                g.const(np.array(float(len(train))), f"member{i}_n_train"),
                hint=f"member{i}_rank",
            )
        else:
            c = g.const(np.array(float(det.center_[i])), f"member{i}_center")
            z = g.op(
                "Div",
                g.op("Sub", s, c, hint=f"member{i}_centred"),
                g.const(np.array(float(det.scale_[i])), f"member{i}_scale"),
                hint=f"member{i}_normalised",
            )
        part = g.op(
            "Mul", z, g.const(np.array(weights[i]), f"member{i}_weight"), hint=f"member{i}_weighted"
        )
        total = part if total is None else g.op("Add", total, part, hint="ensemble_sum")
    assert total is not None  # an ensemble has at least one member
    return total
