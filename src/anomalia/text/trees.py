"""Binary trees over sentences: built from syntactic distances, written as brackets, scored
against gold trees by unlabeled bracketing F1, and drawn.

A tree over ``n`` words is a leaf index (``0 .. n-1``) or a pair ``(left, right)`` of trees
over adjacent word ranges, e.g. ``((0, 1), (2, (3, 4)))``.

The F1 is the one of the unsupervised parsing literature (Htut et al. 2018, Kim et al.
2019): the constituents of length at least 2, the whole sentence excluded, compared as sets
of (start, end) spans, F1 per sentence, averaged over sentences. Sentences of fewer than 3
words have no such constituent and are left out of the average.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from ..errors import DataError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "Tree",
    "bracket_f1",
    "bracketed",
    "left_branching",
    "mean_bracket_f1",
    "plot_trees",
    "random_tree",
    "right_branching",
    "spans",
    "tree_from_distances",
]

#: A binary tree over word positions: a leaf's index, or a pair (left, right) of trees.
Tree = int | tuple["Tree", "Tree"]


def tree_from_distances(distances: ArrayLike) -> Tree:
    """The tree that splits each span top-down at its largest syntactic distance.

    Parameters
    ----------
    distances : array-like of shape (n_words - 1,)
        ``distances[g]``: the distance of the gap between words ``g`` and ``g + 1`` (Shen et
        al. 2018); larger means the two words part higher in the tree. Ties split at the
        leftmost gap.

    Returns
    -------
    Tree
        Over ``n_words`` leaves (a single leaf ``0`` for one word).

    Examples
    --------
    >>> tree_from_distances([0.1, 2.0, 0.5])
    ((0, 1), (2, 3))
    """
    d = np.asarray(distances, dtype=np.float64).reshape(-1)
    if not np.isfinite(d).all():
        raise DataError("syntactic distances must be finite numbers")

    def build(i: int, j: int) -> Tree:  # words i .. j-1
        if j - i == 1:
            return i
        g = i + int(np.argmax(d[i : j - 1]))
        return (build(i, g + 1), build(g + 1, j))

    return build(0, len(d) + 1)


def right_branching(n_words: int) -> Tree:
    """``(0, (1, (2, ...)))``: each word attached to the tree of the words after it."""
    tree: Tree = n_words - 1
    for i in range(n_words - 2, -1, -1):
        tree = (i, tree)
    return tree


def left_branching(n_words: int) -> Tree:
    """``(((0, 1), 2), ...)``: each word attached to the tree of the words before it."""
    tree: Tree = 0
    for i in range(1, n_words):
        tree = (tree, i)
    return tree


def random_tree(n_words: int, rng: np.random.Generator) -> Tree:
    """A random binary tree: the top-down split of random distances (uniform, independent)."""
    return tree_from_distances(rng.random(max(n_words - 1, 0)))


def _walk(tree: Tree) -> tuple[int, int, list[tuple[int, int]]]:
    """(first leaf, end, every span of an inner node) of ``tree``."""
    if isinstance(tree, int | np.integer):
        return int(tree), int(tree) + 1, []
    (a, m, left), (m2, b, right) = _walk(tree[0]), _walk(tree[1])
    if m != m2:
        raise DataError(f"not a tree over adjacent words: a gap or overlap at word {m}")
    return a, b, [*left, *right, (a, b)]


def spans(tree: Tree) -> set[tuple[int, int]]:
    """The constituents compared by :func:`bracket_f1`: ``(start, end)`` (end exclusive) of
    every inner node but the root (so of length >= 2, the whole sentence excluded)."""
    a, b, inner = _walk(tree)
    return {s for s in inner if s != (a, b)}


def bracket_f1(predicted: Tree, gold: Tree) -> float:
    """Unlabeled bracketing F1 of one sentence (see the module docstring).

    Returns NaN when the sentence has no constituent to compare (fewer than 3 words).

    Examples
    --------
    >>> bracket_f1(((0, 1), (2, 3)), right_branching(4))
    0.5
    """
    p, g = spans(predicted), spans(gold)
    if _walk(predicted)[:2] != _walk(gold)[:2]:
        raise DataError("the two trees cover different numbers of words")
    if not g:
        return float("nan")
    hit = len(p & g)
    return 2.0 * hit / (len(p) + len(g))


def mean_bracket_f1(predicted: Sequence[Tree], gold: Sequence[Tree]) -> float:
    """Sentence-level unlabeled F1 averaged over sentences with at least 3 words, in [0, 1]."""
    if len(predicted) != len(gold):
        raise DataError(f"{len(predicted)} predicted trees for {len(gold)} gold trees")
    f1 = np.array([bracket_f1(p, g) for p, g in zip(predicted, gold, strict=True)])
    if not np.isfinite(f1).any():
        raise DataError("no sentence has 3 words or more: nothing to compare")
    return float(np.nanmean(f1))


def bracketed(tree: Tree, words: Sequence[str]) -> str:
    """The tree written with brackets, e.g. ``((the cat) (sat (on (the mat))))``.

    Brackets inside words are replaced by ``-LRB-`` and ``-RRB-`` (the Penn Treebank's
    escapes), so the string parses back unambiguously.
    """
    if _walk(tree)[:2] != (0, len(words)):
        raise DataError(f"the tree does not cover the {len(words)} words")

    def write(t: Tree) -> str:
        if isinstance(t, int | np.integer):
            return str(words[int(t)]).replace("(", "-LRB-").replace(")", "-RRB-")
        return f"({write(t[0])} {write(t[1])})"

    return write(tree)


def _draw(ax: Any, t: Tree) -> tuple[float, int]:
    """Draw the subtree ``t`` on ``ax``; return its node's (x, height)."""
    if isinstance(t, int | np.integer):
        return float(t), 0
    (xl, hl), (xr, hr) = _draw(ax, t[0]), _draw(ax, t[1])
    x, h = (xl + xr) / 2, max(hl, hr) + 1
    ax.plot([xl, x, xr], [hl, h, hr], color="#0072B2", lw=1.2)
    return x, h


def plot_trees(
    trees: Sequence[Tree], words: Sequence[Sequence[str]], *, titles: Sequence[str] | None = None
) -> Figure:
    """Draw binary trees over their sentences, one panel each, words along the bottom.

    Parameters
    ----------
    trees : sequence of Tree
        Trees over word positions (:func:`tree_from_distances`, a gold tree, ...).
    words : sequence of sequences of str
        Each tree's words.
    titles : sequence of str, optional
        A title per panel (e.g. "induced" / "gold").

    Returns
    -------
    matplotlib.figure.Figure
        About 0.75 inch per word wide and 1.6 inch per tree high.
    """
    from matplotlib.figure import Figure

    if len(trees) != len(words) or not trees:
        raise DataError(
            f"plot_trees needs one word list per tree; got {len(trees)} trees "
            f"and {len(words)} word lists"
        )
    if titles is not None and len(titles) != len(trees):
        raise DataError(f"{len(titles)} titles for {len(trees)} trees")
    width = max(3.0, 0.75 * max(len(w) for w in words) + 0.4)
    fig = Figure(figsize=(width, 1.6 * len(trees) + 0.2), dpi=120, layout="constrained")
    axes = fig.subplots(len(trees), 1, squeeze=False)[:, 0]
    for k, (ax, tree, ws) in enumerate(zip(axes, trees, words, strict=True)):
        if _walk(tree)[:2] != (0, len(ws)):
            raise DataError(f"tree {k} does not cover its {len(ws)} words")

        _, height = _draw(ax, tree)
        for i, w in enumerate(ws):
            ax.text(i, -0.25, w, ha="center", va="top", fontsize="small", rotation=30)
        ax.set_xlim(-0.7, max(len(ws) - 0.3, 1.0))
        ax.set_ylim(-1.6, max(height, 1) + 0.3)
        ax.set_axis_off()
        if titles is not None:
            ax.set_title(titles[k], fontsize="small", loc="left")
    return fig
