"""Texts: reading them, splitting them into words, and binary trees over sentences.

- :mod:`anomalia.text.corpus` -- texts from files, words, a vocabulary;
- :mod:`anomalia.text.trees` -- trees from syntactic distances, brackets, bracketing F1,
  baselines (right-, left-branching, random) and :func:`plot_trees`;
- :mod:`anomalia.text.grammar` -- a small probabilistic grammar with gold trees;
- :mod:`anomalia.text.summaries` -- ROUGE of generated summaries and the lead-k baseline.
"""

from anomalia.text.corpus import build_vocabulary, encode, read_texts, tokenize
from anomalia.text.grammar import Sentence, generate
from anomalia.text.trees import (
    bracket_f1,
    bracketed,
    left_branching,
    mean_bracket_f1,
    plot_trees,
    random_tree,
    right_branching,
    spans,
    tree_from_distances,
)

__all__ = [
    "Sentence",
    "bracket_f1",
    "bracketed",
    "build_vocabulary",
    "encode",
    "generate",
    "left_branching",
    "mean_bracket_f1",
    "plot_trees",
    "random_tree",
    "read_texts",
    "right_branching",
    "spans",
    "tokenize",
    "tree_from_distances",
]
