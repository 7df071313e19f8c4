"""A small probabilistic context-free grammar of English-like sentences, with gold trees.

:func:`generate` samples sentences and their binary constituency trees from a fixed grammar
whose structures branch both ways: determiners and adjectives nest to the right
(``(the (big dog))``), prepositional phrases and adverbs attach to the left
(``((saw (a cat)) (in (the park)))``), relative and complement clauses embed whole phrases.
So right-branching trees, the strong baseline on English, are far from perfect on it, and a
method that induces trees can be measured where the truth is known.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .trees import Tree

__all__ = ["GRAMMAR", "LEXICON", "Sentence", "generate"]

#: Nonterminal -> ((right-hand side, probability), ...). Every rule is unary or binary, so the
#: gold trees are binary (a unary rule adds no constituent).
GRAMMAR: dict[str, tuple[tuple[tuple[str, ...], float], ...]] = {
    "S": ((("NP", "VP"), 1.0),),
    "NP": ((("Det", "Nom"), 0.6), (("NP", "PP"), 0.13), (("NP", "RC"), 0.09), (("Name",), 0.18)),
    "Nom": ((("Adj", "Nom"), 0.35), (("N",), 0.65)),
    "VP": (
        (("Vt", "NP"), 0.4),
        (("Vi",), 0.2),
        (("VP", "PP"), 0.18),
        (("VP", "Adv"), 0.1),
        (("Vs", "CP"), 0.12),
    ),
    "PP": ((("P", "NP"), 1.0),),
    "RC": ((("Rel", "VP"), 1.0),),
    "CP": ((("Comp", "S"), 1.0),),
}

#: Preterminal -> its words (drawn uniformly).
LEXICON: dict[str, tuple[str, ...]] = {
    "Det": ("the", "a", "every", "some", "this", "my"),
    "N": (
        "dog", "cat", "man", "woman", "child", "bird", "park", "house", "telescope", "garden",
        "teacher", "river", "book", "car", "friend", "city", "table", "song", "horse", "box",
    ),
    "Adj": ("big", "small", "old", "young", "red", "happy", "quiet", "strange", "tall", "green"),
    "Name": ("alice", "bob", "carol", "dave", "eve", "frank"),
    "Vt": ("saw", "liked", "chased", "found", "held", "watched", "visited", "painted"),
    "Vi": ("slept", "laughed", "ran", "waited", "sang", "fell"),
    "Vs": ("thinks", "said", "knew", "hoped"),
    "P": ("in", "on", "near", "with", "under", "behind"),
    "Adv": ("quickly", "today", "again", "slowly", "there"),
    "Rel": ("who", "which"),
    "Comp": ("that",),
}  # fmt: skip


@dataclass(frozen=True)
class Sentence:
    """One generated sentence.

    Attributes
    ----------
    words : tuple of str
        The words, in order.
    tree : nested 2-tuples of int
        The gold binary tree over word positions: a leaf is a word's index, an inner node
        a pair (left, right), e.g. ``((0, 1), (2, (3, 4)))``.
    """

    words: tuple[str, ...]
    tree: Tree

    @property
    def text(self) -> str:
        """The words joined by single spaces."""
        return " ".join(self.words)


def _expand(symbol: str, rng: np.random.Generator, words: list[str], depth: int) -> Tree:
    if symbol in LEXICON:
        choices = LEXICON[symbol]
        words.append(choices[int(rng.integers(len(choices)))])
        return len(words) - 1
    if depth > 12:
        raise RecursionError  # too deep: the caller draws another sentence
    rules = GRAMMAR[symbol]
    p = np.array([w for _, w in rules])
    rhs = rules[int(rng.choice(len(rules), p=p / p.sum()))][0]
    kids = [_expand(s, rng, words, depth + 1) for s in rhs]
    return kids[0] if len(kids) == 1 else (kids[0], kids[1])


def generate(
    n_sentences: int, *, min_words: int = 3, max_words: int = 16, random_state: int = 0
) -> list[Sentence]:
    """Sample sentences and their gold trees from :data:`GRAMMAR`.

    Parameters
    ----------
    n_sentences : int
        How many sentences.
    min_words, max_words : int, default=3, 16
        Sentences outside this length range (in words) are drawn again.
    random_state : int, default=0
        Seed: the same seed gives the same sentences and trees.

    Returns
    -------
    list of Sentence

    Examples
    --------
    >>> s = generate(1, random_state=0)[0]
    >>> len(s.words) >= 3
    True
    """
    if n_sentences < 0 or min_words < 1 or max_words < min_words:
        raise ValueError(
            f"need n_sentences >= 0 and 1 <= min_words <= max_words; got {n_sentences}, "
            f"{min_words}, {max_words}"
        )
    rng = np.random.default_rng(random_state)
    out: list[Sentence] = []
    while len(out) < n_sentences:
        words: list[str] = []
        try:
            tree = _expand("S", rng, words, 0)
        except RecursionError:
            continue
        if min_words <= len(words) <= max_words:
            out.append(Sentence(tuple(words), tree))
    return out
