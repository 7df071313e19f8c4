"""Judging generated summaries: ROUGE against references, and the lead-k-words baseline.

ROUGE is computed by Google's ``rouge-score`` package (``pip install 'anomalia[text]'``):
F-measures of unigram (ROUGE-1), bigram (ROUGE-2) and longest-common-subsequence (ROUGE-L)
overlap, averaged over the pairs, with its own tokeniser (lower-cased letters and digits)
and no stemming.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import AnomaliaError, DataError

__all__ = ["ROUGE_TYPES", "lead_words", "rouge_scores"]

#: The ROUGE variants :func:`rouge_scores` reports.
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def rouge_scores(candidates: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1, ROUGE-2 and ROUGE-L F-measures of candidate summaries.

    Parameters
    ----------
    candidates : sequence of str
        Generated summaries (an empty one scores 0).
    references : sequence of str
        The human-written summary of each candidate's text, same length.

    Returns
    -------
    dict
        ``{"rouge1": f, "rouge2": f, "rougeL": f}``, each a mean F-measure in [0, 1].

    Examples
    --------
    >>> rouge_scores(["the cat sat"], ["the cat sat down"])["rouge1"]  # doctest: +ELLIPSIS
    0.857...
    """
    try:
        from rouge_score import rouge_scorer
    except ImportError:  # pragma: no cover - the text extra
        raise AnomaliaError(
            "ROUGE needs the rouge-score package: pip install 'anomalia[text]'"
        ) from None
    if len(candidates) != len(references):
        raise DataError(f"{len(candidates)} summaries for {len(references)} references")
    if not len(candidates):
        raise DataError("no summaries to score")
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=False)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for cand, ref in zip(candidates, references, strict=True):
        scores = scorer.score(str(ref), str(cand))  # (target, prediction)
        for name in ROUGE_TYPES:
            totals[name] += scores[name].fmeasure
    return {name: totals[name] / len(candidates) for name in ROUGE_TYPES}


def lead_words(texts: Sequence[str], k: int) -> list[str]:
    """The first ``k`` words (whitespace-separated, as written) of each text.

    The baseline of summarisation by extraction: ROUGE of a model's summaries means little
    unless it beats the text's own opening.

    >>> lead_words(["A fast JSON parser, written in C.", "tiny"], 3)
    ['A fast JSON', 'tiny']
    """
    if k < 1:
        raise DataError(f"k must be at least 1, got {k}")
    return [" ".join(str(t).split()[:k]) for t in texts]
