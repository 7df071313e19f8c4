"""The ``text-ae`` detector: texts encoded as a short word sequence, and rebuilt from it.

A seq2seq auto-encoder over texts (:class:`anomalia.models.text.TextAE`) whose bottleneck is
``code_length`` words copied from the text; trained on texts alone it learns a code only its
decoder reads, and with ``summaries`` (human-written summaries of *other* texts) a critic
pushes that code to read like a summary (Wang and Lee, 2018). Its anomaly score is the
reconstruction loss: the mean token negative log-likelihood of a text given its own code.
:meth:`TextAEDetector.summarize` gives the code as text.

Tokenisation and the vocabulary live here, in one place: lower-cased words (letters and
digits, with inner ``.``, ``+``, ``'`` or ``-``: ``python3.11``, ``c++``, ``x86-64``),
punctuation dropped; the vocabulary is built at fit time and stored in the model file as
JSON (``TextAEDetector.vocabulary_``), checked when the file is loaded.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from sklearn.utils.validation import check_is_fitted

from .._utils.validation import check_fraction, check_int
from ..base import BaseDetector
from ..errors import DataError, ModelFileError
from ..models.text import EOS, PAD, SPECIAL_TOKENS, UNK, TextAE, TokenCritic
from ._torch import module_from_state, seed_from

__all__ = ["TextAEDetector", "build_vocabulary", "check_vocabulary", "tokenize"]

logger = logging.getLogger(__name__)

_WORD = re.compile(r"[a-z0-9]+(?:[.+'\-]+[a-z0-9]+)*\+*")
#: Largest vocabulary a model file may hold.
MAX_VOCABULARY = 200_000
#: Texts per inference batch.
SCORE_BATCH = 512


def tokenize(text: str) -> list[str]:
    """The lower-cased words of ``text``, punctuation dropped.

    >>> tokenize("Python 3 bindings for libfoo (C++ library), x86-64.")
    ['python', '3', 'bindings', 'for', 'libfoo', 'c++', 'library', 'x86-64']
    """
    return _WORD.findall(text.lower())


def build_vocabulary(
    token_lists: Sequence[Sequence[str]], *, max_size: int, min_count: int = 1
) -> list[str]:
    """The special tokens, then the words seen at least ``min_count`` times, most frequent
    first (ties alphabetically), ``max_size`` entries at most (special tokens included)."""
    counts = Counter(w for tokens in token_lists for w in tokens)
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return [*SPECIAL_TOKENS, *words[: max(max_size - len(SPECIAL_TOKENS), 0)]]


def check_vocabulary(vocabulary: Any) -> list[str]:
    """``vocabulary`` if it is one a fit could have built, else :class:`ModelFileError`:
    the special tokens first, then distinct words as :func:`tokenize` writes them."""
    if not isinstance(vocabulary, list) or not all(isinstance(w, str) for w in vocabulary):
        raise ModelFileError("the vocabulary must be a list of words (edited file?)")
    if len(vocabulary) > MAX_VOCABULARY:
        raise ModelFileError(
            f"the vocabulary holds {len(vocabulary)} words, above {MAX_VOCABULARY}"
        )
    if tuple(vocabulary[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
        raise ModelFileError(f"the vocabulary must start with {', '.join(SPECIAL_TOKENS)}")
    words = vocabulary[len(SPECIAL_TOKENS) :]
    if len(set(words)) != len(words):
        raise ModelFileError("the vocabulary repeats a word (edited file?)")
    bad = next((w for w in words if not _WORD.fullmatch(w)), None)
    if bad is not None:
        raise ModelFileError(f"the vocabulary holds {bad[:40]!r}, which is no word (edited file?)")
    return vocabulary


def _texts(X: Any, what: str = "X", *, allow_wordless: bool = False) -> NDArray[np.object_]:
    """``X`` as a 1-D object array of strings: a sequence or 1-D array of strings, or a
    one-column table of them. Anything else is a one-line :class:`DataError`."""
    if isinstance(X, str):
        raise DataError(f"{what} must be a sequence of texts, not one string")
    if hasattr(X, "iloc") and getattr(X, "ndim", 1) == 2:  # a DataFrame
        if X.shape[1] != 1:
            raise DataError(
                f"{what} must be one column of texts; got {X.shape[1]} columns "
                f"({', '.join(map(str, list(X.columns)[:5]))})"
            )
        X = X.iloc[:, 0]
    arr = np.asarray(X, dtype=object)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataError(f"{what} must be a 1-D sequence of texts; got shape {arr.shape}")
    if len(arr) == 0:
        raise DataError(f"{what} holds no texts")
    bad = [i for i, v in enumerate(arr) if not isinstance(v, str)]
    if bad:
        v = arr[bad[0]]
        raise DataError(
            f"{what} must hold texts; row {bad[0]} is {type(v).__name__} {v!r:.40}"
            f" ({len(bad)} such rows): pass a column of text"
        )
    if not allow_wordless:
        empty = [i for i, v in enumerate(arr) if not _WORD.search(v.lower())]
        if empty:
            raise DataError(
                f"{what}: row {empty[0]} holds no words ({len(empty)} such rows); "
                "drop empty texts first"
            )
    return arr


class TextAEDetector(BaseDetector):
    """Auto-encoder whose code is a short word sequence; anomaly score = reconstruction loss.

    The generator (a bidirectional GRU and a pointer) copies ``code_length`` words from each
    text, discrete through Gumbel-softmax with the straight-through estimator; the
    reconstructor (a bidirectional GRU over those words and an attentive GRU decoder, teacher
    forcing) rebuilds the text. Given ``summaries`` in :meth:`fit`, a CNN critic learns to
    tell them from the generated codes, and the generator also learns to fool it
    (``adversarial_weight``), so the code reads like a human summary. Inputs are a 1-D
    sequence of strings or a one-column table of them.

    Parameters
    ----------
    code_length : int, default=8
        Words in the code (the bottleneck); a code may end early by copying the end of text.
    max_length : int, default=32
        Words kept of each text (the rest is cut off), for training and scoring alike.
    max_vocabulary : int, default=5000
        Largest vocabulary (the four special tokens included); rarer words become unknown.
        The output layer grows with it: the main cost of a training step.
    min_count : int, default=1
        Fewest occurrences in the training texts for a word to enter the vocabulary. With
        every training word known, a word never seen in training is an unknown token the
        decoder has never had to predict, and costs a text the most: the default, better
        for detection (one section of Debian descriptions against the rest, mean ROC-AUC
        0.51 with ``min_count=2`` and 2,000 words, see benchmarks/text_ae.py).
    embedding_dim : int, default=48
        Size of the word embeddings.
    hidden_size : int, default=64
        Size of the GRU states.
    adversarial_weight : float, default=1.0
        Weight of the critic's loss in the generator's objective (the reconstruction loss
        has weight 1); ``0`` trains no critic even when ``summaries`` are given.
    temperature : float, default=1.0
        Gumbel-softmax temperature of the pointer in training.
    lr : float, default=2e-3
        Adam learning rate of the auto-encoder and the critic.
    epochs : int, default=10
        Passes over the training texts.
    batch_size : int, default=64
        Texts per optimisation step.
    contamination : float, optional
        Expected share of anomalies in the training texts; see
        :class:`~anomalia.base.BaseDetector`.
    random_state : int, optional
        Seed of the initialisation, shuffling and Gumbel noise: repeatable results on CPU.
    verbose : bool, default=False
        Log each epoch's losses (INFO).

    Attributes
    ----------
    module_ : TextAE
        The trained auto-encoder (eval mode); the critic is not kept.
    vocabulary_ : list of str
        Token of each id: the special tokens, then the words by training frequency.
    history_ : list of dict
        Per epoch: ``reconstruction`` (mean token NLL, nats), and with a critic
        ``adversarial`` (the generator's critic loss) and ``critic`` (the critic's own).
    n_features_in_ : int
        1 (one text per row).
    threshold_, calibration_, decision_scores_
        See :class:`~anomalia.base.BaseDetector`.

    References
    ----------
    Wang and Lee, "Learning to Encode Text as Human-Readable Summaries using Generative
    Adversarial Networks", EMNLP 2018.

    Examples
    --------
    >>> from anomalia.detectors.text import TextAEDetector
    >>> texts = ["a small tool to convert images", "a library to parse json files"] * 8
    >>> det = TextAEDetector(code_length=3, hidden_size=16, epochs=2, random_state=0).fit(texts)
    >>> det.anomaly_score(["a tool to parse images"]).shape
    (1,)
    >>> len(det.summarize(["a small library to convert json files"]))
    1
    """

    name = "text-ae"

    def __init__(
        self,
        *,
        code_length: int = 8,
        max_length: int = 32,
        max_vocabulary: int = 5000,
        min_count: int = 1,
        embedding_dim: int = 48,
        hidden_size: int = 64,
        adversarial_weight: float = 1.0,
        temperature: float = 1.0,
        lr: float = 2e-3,
        epochs: int = 10,
        batch_size: int = 64,
        contamination: float | None = None,
        random_state: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.code_length = code_length
        self.max_length = max_length
        self.max_vocabulary = max_vocabulary
        self.min_count = min_count
        self.embedding_dim = embedding_dim
        self.hidden_size = hidden_size
        self.adversarial_weight = adversarial_weight
        self.temperature = temperature
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.contamination = contamination
        self.random_state = random_state
        self.verbose = verbose

    # -- the contract's hooks ------------------------------------------------------------
    def _check_params(self) -> None:
        check_int("code_length", self.code_length)
        check_int("max_length", self.max_length)
        check_int("max_vocabulary", self.max_vocabulary, minimum=len(SPECIAL_TOKENS) + 1)
        check_int("min_count", self.min_count)
        check_int("embedding_dim", self.embedding_dim)
        check_int("hidden_size", self.hidden_size)
        check_fraction(
            "adversarial_weight", self.adversarial_weight, high=np.inf, low_inclusive=True
        )
        check_fraction("temperature", self.temperature, high=np.inf)
        check_fraction("lr", self.lr, high=np.inf)
        check_int("epochs", self.epochs)
        check_int("batch_size", self.batch_size, minimum=2)

    def _validate(self, X: ArrayLike, *, reset: bool) -> NDArray[np.object_]:
        texts = _texts(X)
        if reset:
            if len(texts) < 2:
                raise DataError("text-ae needs at least 2 training texts")
            self.n_features_in_ = 1
        return texts

    def _check_spread(self, X: Any) -> None:
        """Texts have no numeric spread to check."""

    def _check_scores(self, X: Any, scores: NDArray[np.float64]) -> None:
        bad = np.flatnonzero(~np.isfinite(scores))
        if bad.size:
            raise DataError(f"{bad.size} texts get no finite score (first: row {int(bad[0])})")

    def _probe_input(self) -> NDArray[np.object_]:
        """What a loaded model file is checked on: one short text."""
        return np.array(["probe text"], dtype=object)

    def _restore_module(self, attribute: str, state: dict[str, Any]) -> Any:
        if attribute != "module_":
            return super()._restore_module(attribute, state)
        vocabulary = check_vocabulary(getattr(self, "vocabulary_", None))
        self._index_ = {w: i for i, w in enumerate(vocabulary)}
        return module_from_state(lambda: self._build(len(vocabulary)), state)

    def _check_restored(self) -> None:
        check_vocabulary(getattr(self, "vocabulary_", None))

    # -- fitting ---------------------------------------------------------------------------
    def fit(
        self,
        X: ArrayLike,
        y: Any = None,
        *,
        summaries: ArrayLike | None = None,
        summaries_of_X: bool = False,
    ) -> Self:
        """Train on texts, mostly or only normal; with ``summaries``, adversarially.

        Parameters
        ----------
        X : sequence of str, or a one-column table of them
            Training texts; each must hold at least one word.
        y : None
            Ignored; present for scikit-learn API consistency.
        summaries : sequence of str, optional
            Human-written summaries the critic learns as "real": not paired with ``X`` (at
            each step it draws a batch of them at random). Give summaries of other texts
            than ``X``, or set ``summaries_of_X``. None: no critic (a plain text code).
        summaries_of_X : bool, default=False
            ``summaries[i]`` is the summary of ``X[i]``: each step then draws the critic's
            batch from the rows outside that step's batch of texts, so the critic never sees
            the summary of a text the generator is encoding at that moment.

        Returns
        -------
        self : object
            The fitted detector.
        """
        self._summaries = None
        if summaries is not None:
            self._summaries = _texts(summaries, "summaries", allow_wordless=True)
            if summaries_of_X and len(self._summaries) != len(_texts(X)):
                raise DataError(
                    f"summaries_of_X: {len(self._summaries)} summaries for {len(_texts(X))} texts"
                )
        self._summaries_of_X = summaries_of_X
        try:
            self._fit_scored(X)
        finally:
            del self._summaries, self._summaries_of_X
        return self

    def _build(self, vocab_size: int) -> TextAE:
        return TextAE(
            vocab_size,
            embedding_dim=self.embedding_dim,
            hidden_size=self.hidden_size,
            code_length=self.code_length,
            temperature=self.temperature,
        )

    def _ids(self, token_lists: Sequence[Sequence[str]], width: int, fill: int) -> torch.Tensor:
        """Token ids (n, width): each list cut to ``width - 1`` words, then EOS, then
        ``fill``."""
        get, unk = self._index_.get, UNK
        ids = np.full((len(token_lists), width), fill, dtype=np.int64)
        for i, tokens in enumerate(token_lists):
            row = [get(w, unk) for w in tokens[: width - 1]]
            ids[i, : len(row)] = row
            ids[i, len(row)] = EOS
        return torch.from_numpy(ids)

    def _fit(self, X: NDArray[np.object_]) -> None:
        tokens = [tokenize(t) for t in X]
        self.vocabulary_ = build_vocabulary(
            tokens, max_size=self.max_vocabulary, min_count=self.min_count
        )
        self._index_ = {w: i for i, w in enumerate(self.vocabulary_)}
        ids = self._ids(tokens, self.max_length + 1, PAD)
        lengths = (ids != PAD).sum(1)
        real = None
        given = getattr(self, "_summaries", None)  # fit_predict(X) passes none
        if given is not None and self.adversarial_weight > 0:
            summary_tokens = [tokenize(s) for s in given]
            real = self._ids(summary_tokens, self.code_length + 1, EOS)[:, : self.code_length]
        seed = seed_from(self.random_state)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = self._build(len(self.vocabulary_))
            critic = None
            if real is not None:
                critic = TokenCritic(
                    len(self.vocabulary_),
                    embedding_dim=self.embedding_dim,
                    channels=2 * self.hidden_size,
                )
        gen = torch.Generator().manual_seed(seed)
        self.history_ = self._train(module, critic, ids, lengths, real, gen)
        self.module_ = module.eval()

    def _train(
        self,
        module: TextAE,
        critic: TokenCritic | None,
        ids: torch.Tensor,
        lengths: torch.Tensor,
        real: torch.Tensor | None,
        gen: torch.Generator,
    ) -> list[dict[str, float]]:
        """Adam on the reconstruction loss (plus the critic's, with a critic), alternating
        one critic step and one auto-encoder step per batch. Its own loop, not
        :func:`anomalia.training.train`: two networks and two optimisers take turns."""
        from torch.nn.functional import binary_cross_entropy_with_logits as bce
        from torch.nn.functional import one_hot

        opt = torch.optim.Adam(module.parameters(), lr=self.lr)
        opt_c = None if critic is None else torch.optim.Adam(critic.parameters(), lr=self.lr)
        n, bs, v = len(ids), self.batch_size, len(self.vocabulary_)
        history = []
        module.train()
        for epoch in range(self.epochs):
            perm = torch.randperm(n, generator=gen)
            sums = {"reconstruction": 0.0, "adversarial": 0.0, "critic": 0.0}
            steps = 0
            for start in range(0, n, bs):
                idx = perm[start : start + bs]
                batch = ids[idx, : int(lengths[idx].max())]
                picks, nll = module(batch, gen)
                loss = nll.mean()
                sums["reconstruction"] += float(loss.detach())
                if critic is not None and opt_c is not None and real is not None:
                    fake = module.token_distributions(batch, picks)
                    pick = self._real_rows(perm, start, len(idx), len(real), gen)
                    true = one_hot(real[pick], v).float()
                    d_real, d_fake = critic(true), critic(fake.detach())
                    loss_c = bce(d_real, torch.ones_like(d_real)) + bce(
                        d_fake, torch.zeros_like(d_fake)
                    )
                    opt_c.zero_grad()
                    loss_c.backward()
                    opt_c.step()
                    d_gen = critic(fake)
                    adv = bce(d_gen, torch.ones_like(d_gen))
                    loss = loss + self.adversarial_weight * adv
                    sums["adversarial"] += float(adv.detach())
                    sums["critic"] += float(loss_c.detach())
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(module.parameters(), 5.0)
                opt.step()
                steps += 1
            row = {"reconstruction": sums["reconstruction"] / steps}
            if critic is not None:
                row |= {
                    "adversarial": sums["adversarial"] / steps,
                    "critic": sums["critic"] / steps,
                }
            history.append(row)
            if self.verbose:
                logger.info("epoch %d: %s", epoch + 1, row)
        return history

    def _real_rows(
        self, perm: torch.Tensor, start: int, size: int, m: int, gen: torch.Generator
    ) -> torch.Tensor:
        """Rows of the summaries for the critic's batch: at random, and when they are the
        texts' own summaries, from the rows outside this step's batch."""
        if not getattr(self, "_summaries_of_X", False):
            return torch.randint(0, m, (size,), generator=gen)
        n = len(perm)
        if n == size:  # one batch holds every text: no other rows to draw from
            return torch.randint(0, m, (size,), generator=gen)
        others = perm[(start + size + torch.arange(n - size)) % n]
        return others[torch.randint(0, n - size, (size,), generator=gen)]

    # -- inference -------------------------------------------------------------------------
    def _encoded(self, texts: NDArray[np.object_]) -> tuple[list[list[str]], torch.Tensor]:
        tokens = [tokenize(t) for t in texts]
        return tokens, self._ids(tokens, self.max_length + 1, PAD)

    def _batches(self, ids: torch.Tensor) -> Any:
        lengths = (ids != PAD).sum(1)
        for start in range(0, len(ids), SCORE_BATCH):
            part = slice(start, start + SCORE_BATCH)
            yield ids[part, : int(lengths[part].max())]

    def _anomaly_score(self, X: NDArray[np.object_]) -> NDArray[np.float64]:
        _, ids = self._encoded(X)
        with torch.inference_mode():
            out = [self.module_.per_sample_loss(b) for b in self._batches(ids)]
        return torch.cat(out).double().numpy()

    def summarize(self, texts: ArrayLike) -> list[str]:
        """The code of each text, as text: its words up to the first end of text.

        Words are those of the text itself (the pointer copies positions), so words outside
        the vocabulary come out as written, lower-cased.

        Parameters
        ----------
        texts : sequence of str, or a one-column table of them
            Texts to summarise; each must hold at least one word.

        Returns
        -------
        list of str
            One summary per text, words joined by single spaces (possibly empty).
        """
        check_is_fitted(self)
        texts = _texts(texts, "texts")
        tokens, ids = self._encoded(texts)
        with torch.inference_mode():
            positions = torch.cat([self.module_.point(b).argmax(-1) for b in self._batches(ids)])
        out = []
        for words, row in zip(tokens, positions.tolist(), strict=True):
            kept = words[: self.max_length]
            picked = []
            for p in row:
                if p >= len(kept):  # the end of text
                    break
                picked.append(kept[p])
            out.append(" ".join(picked))
        return out
