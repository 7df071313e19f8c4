"""The ``tree-ae`` detector: a sentence auto-encoder whose code is an induced binary tree.

Fit on texts (strings), it learns a vocabulary and a :class:`~anomalia.models.tree.TreeAE`:
syntactic distances per gap between adjacent words, the tree that splits every span at its
largest distance, and a decoder that regenerates the sentence from a vector composed over
that tree. The anomaly score is the reconstruction's negative log-likelihood per token;
:meth:`TreeAEDetector.parse` writes the induced trees with brackets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from sklearn.utils.validation import check_is_fitted

from .._utils.validation import check_fraction, check_int
from ..base import BaseDetector
from ..errors import DataError, ModelFileError
from ..models.tree import EOS, FlatTextAE, TreeAE
from ..text.corpus import build_vocabulary, encode, tokenize
from ..text.trees import Tree, bracketed, tree_from_distances
from ..training import TrainConfig, make_optimizer, stopped_epoch, train
from ._torch import module_from_state, seed_from

__all__ = ["TreeAEDetector"]

#: Rows per inference batch: the chart holds about width**3 / 6 compositions per row.
_BATCH = 64
#: The first word id (0, 1, 2 are padding, unknown word and end of sentence).
_OFFSET = EOS + 1


class TreeAEDetector(BaseDetector):
    """Tree auto-encoder of sentences; anomaly score = reconstruction NLL per token (nats).

    Input: texts, as a sequence of strings (a list, a 1-D array, a pandas Series, or a
    one-column table); values that are not strings (numbers) are read as their text.
    Texts are lower-cased and split into words and punctuation marks
    (:func:`anomalia.text.corpus.tokenize`); words past ``max_words`` are cut off, in
    scoring and parsing alike. A text with no word is refused.

    The network (:class:`~anomalia.models.tree.TreeAE`): a bidirectional GRU predicts a
    syntactic distance per gap; the tree splits every span at its largest distance, top
    down (Shen et al. 2018); the code is composed bottom-up over the tree from the words'
    embeddings and a GRU decoder regenerates the words from it. Trained with the split of
    every span relaxed to a softmax over its distances; scored and parsed with the hard
    tree. ``flat=True`` gives the baseline of the same size whose code is the encoder's
    mean-pooled states (no tree; :meth:`parse` is then unavailable).

    Parameters
    ----------
    embed_dim : int, default=64
        Size of the word embeddings.
    hidden : int, default=128
        Size of each direction of the encoder GRU, and of the decoder GRU.
    code_dim : int, default=128
        Size of the composed vectors; the root's is the sentence's code.
    max_words : int, default=24
        Words per text kept (the rest is cut off). The chart costs ``max_words**3 / 6``
        compositions per text in training.
    max_vocab : int, default=5000
        Most words in the vocabulary (the most frequent); others are the unknown word.
    min_count : int, default=2
        Fewest training occurrences of a word in the vocabulary.
    word_dropout : float, default=0.25
        Share of the decoder's input words hidden in training, in [0, 1).
    temperature : float, default=1.0
        Temperature of the soft split in training (> 0).
    flat : bool, default=False
        Train the flat baseline (:class:`~anomalia.models.tree.FlatTextAE`) instead.
    lr : float, default=2e-3
        AdamW learning rate.
    weight_decay : float, default=0.0
        AdamW weight decay.
    epochs : int, default=10
        Most passes over the training texts.
    batch_size : int, default=64
        Texts per optimisation step.
    validation_fraction : float, default=0.1
        Share of texts held out for early stopping, in [0, 1).
    patience : int or None, default=3
        Epochs without a lower validation loss before training stops (best weights kept).
    contamination : float or None, default=None
        Expected share of anomalies in the training texts (see :mod:`anomalia.base`).
    random_state : int or None, default=None
        Seed of the initial weights, shuffling and word dropout; the same seed gives the
        same model on CPU.
    verbose : bool, default=False
        Show a progress bar.

    Attributes
    ----------
    vocabulary_ : list of str
        The words, word id ``k + 3`` for ``vocabulary_[k]``.
    module_ : TreeAE or FlatTextAE
        The trained network (eval mode).
    history_ : dict of list of float
        Per-epoch ``train_loss``, ``val_loss`` (nats per token) and ``epoch_seconds``.
    n_epochs_ : int
        Epochs run.
    stopped_epoch_ : int or None
        Epoch where early stopping ended training, or None.
    seed_ : int
        The seed derived from ``random_state``.
    n_features_in_ : int
        1 (one text per row).
    threshold_, calibration_, decision_scores_
        As for every detector (:class:`~anomalia.base.BaseDetector`).

    References
    ----------
    Shen, Lin, Jacob, Sordoni, Courville and Bengio, "Straight to the Tree: Constituency
    Parsing with Neural Syntactic Distance", ACL 2018.

    Examples
    --------
    >>> from anomalia.text.grammar import generate
    >>> texts = [s.text for s in generate(64, random_state=0)]
    >>> det = TreeAEDetector(hidden=16, code_dim=16, embed_dim=8, epochs=1, random_state=0)
    >>> det = det.fit(texts)
    >>> det.anomaly_score(texts[:2]).shape
    (2,)
    >>> det.parse(["the dog saw a cat"])[0].count("(")
    4
    """

    name = "tree-ae"

    def __init__(
        self,
        *,
        embed_dim: int = 64,
        hidden: int = 128,
        code_dim: int = 128,
        max_words: int = 24,
        max_vocab: int = 5000,
        min_count: int = 2,
        word_dropout: float = 0.25,
        temperature: float = 1.0,
        flat: bool = False,
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        epochs: int = 10,
        batch_size: int = 64,
        validation_fraction: float = 0.1,
        patience: int | None = 3,
        contamination: float | None = None,
        random_state: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.embed_dim = embed_dim
        self.hidden = hidden
        self.code_dim = code_dim
        self.max_words = max_words
        self.max_vocab = max_vocab
        self.min_count = min_count
        self.word_dropout = word_dropout
        self.temperature = temperature
        self.flat = flat
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.contamination = contamination
        self.random_state = random_state
        self.verbose = verbose

    # -- parameters and input ----------------------------------------------------------------
    def _check_params(self) -> None:
        for name in ("embed_dim", "hidden", "code_dim", "max_words", "max_vocab", "epochs"):
            check_int(name, getattr(self, name))
        check_int("min_count", self.min_count)
        check_int("batch_size", self.batch_size, minimum=2)
        if self.patience is not None:
            check_int("patience", self.patience)
        check_fraction("word_dropout", self.word_dropout, low=0.0, high=1.0,
                       low_inclusive=True, high_inclusive=False)  # fmt: skip
        check_fraction("validation_fraction", self.validation_fraction, low=0.0, high=1.0,
                       low_inclusive=True, high_inclusive=False)  # fmt: skip
        check_fraction("temperature", self.temperature, low=0.0, high=np.inf)
        check_fraction("lr", self.lr, low=0.0, high=np.inf)
        check_fraction("weight_decay", self.weight_decay, low=0.0, high=np.inf,
                       low_inclusive=True)  # fmt: skip
        if not isinstance(self.flat, bool | np.bool_):
            raise ValueError(f"flat must be True or False, got {self.flat!r}")

    def _words(self, X: Any) -> list[list[str]]:
        """Each text's words; refuses a lone string, missing values and empty texts."""
        if isinstance(X, str | bytes):
            raise DataError(f"{type(self).__name__} takes a sequence of texts, not one string")
        if hasattr(X, "columns"):  # a one-column DataFrame
            if X.shape[1] != 1:
                raise DataError(f"texts come in one column; got a table of {X.shape[1]} columns")
            X = X.iloc[:, 0]
        values = np.asarray(X, dtype=object)
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.ndim != 1:
            raise DataError(f"texts come as one text per row; got shape {values.shape}")
        words = []
        for i, v in enumerate(values.tolist()):
            if v is None or (isinstance(v, float) and not np.isfinite(v)):
                raise DataError(f"row {i} holds no text ({v!r})")
            w = tokenize(v if isinstance(v, str) else str(v))
            if not w:
                raise DataError(f"row {i} holds no word: {str(v)[:40]!r}")
            words.append(w)
        return words

    def _validate(self, X: ArrayLike, *, reset: bool) -> NDArray[np.float32]:
        """Word ids ``(n, max_words)`` of the texts; with ``reset``, learn the vocabulary."""
        words = self._words(X)
        if reset:
            if len(words) < 2:
                raise DataError(f"fitting needs at least 2 texts, got {len(words)}")
            self.vocabulary_ = build_vocabulary(
                words, max_size=self.max_vocab, min_count=self.min_count
            )
            self.n_features_in_ = 1
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        elif not words:
            raise DataError("no text to score")
        return encode(words, self.vocabulary_, width=self.max_words, offset=_OFFSET)

    # -- fit and score -----------------------------------------------------------------------
    def _build_module(self) -> TreeAE | FlatTextAE:
        sizes = {
            "embed_dim": self.embed_dim,
            "hidden": self.hidden,
            "code_dim": self.code_dim,
            "word_dropout": self.word_dropout,
        }
        vocab = len(self.vocabulary_) + _OFFSET
        if self.flat:
            return FlatTextAE(vocab, **sizes)
        return TreeAE(vocab, temperature=self.temperature, **sizes)

    def _fit(self, X: NDArray[np.float32]) -> None:
        self.seed_ = seed_from(self.random_state)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed_)
            self.module_ = self._build_module()
        config = TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            validation_fraction=self.validation_fraction,
            patience=self.patience,
            seed=self.seed_,
            verbose=bool(self.verbose),
        )
        optimizer = make_optimizer(self.module_, config)
        history = train(self.module_, torch.from_numpy(X), config, optimizer=optimizer)
        self.module_.eval()
        self.history_ = history
        self.n_epochs_ = len(history["train_loss"])
        self.stopped_epoch_ = stopped_epoch(history, config)

    def _batched(self, X: NDArray[np.float32], fn: Any) -> list[torch.Tensor]:
        x = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
        with torch.inference_mode():
            return [fn(x[i : i + _BATCH]) for i in range(0, len(x), _BATCH)]

    def _anomaly_score(self, X: NDArray[np.float32]) -> NDArray[np.float64]:
        parts = self._batched(X, self.module_.per_sample_loss)
        return torch.cat(parts).double().numpy()

    def token_accuracy(self, texts: Sequence[str] | ArrayLike) -> NDArray[np.float64]:
        """Share of each text's tokens (words cut to ``max_words``, and the end marker) the
        decoder predicts right from the code and the true previous words, shape (n,)."""
        check_is_fitted(self)
        X = self._validate(texts, reset=False)
        return torch.cat(self._batched(X, self.module_.token_accuracy)).double().numpy()

    # -- trees -------------------------------------------------------------------------------
    def trees(self, texts: Sequence[str] | ArrayLike) -> list[tuple[Tree, list[str]]]:
        """The induced tree of each text and the words it spans (cut to ``max_words``).

        Parameters
        ----------
        texts : sequence of str
            Texts, as for :meth:`fit`.

        Returns
        -------
        list of (Tree, list of str)
            A tree over word positions (:mod:`anomalia.text.trees`) and its words.
        """
        check_is_fitted(self)
        if self.flat:
            raise DataError("a flat tree-ae (flat=True) has no tree: fit it with flat=False")
        words = [w[: self.max_words] for w in self._words(texts)]
        ids = encode(words, self.vocabulary_, width=self.max_words, offset=_OFFSET)
        out: list[tuple[Tree, list[str]]] = []
        for d in self._batched(ids, self.module_.distances):
            d = d.double().numpy()
            for row in d:
                ws = words[len(out)]
                out.append((tree_from_distances(row[: len(ws) - 1]), ws))
        return out

    def parse(self, texts: Sequence[str] | ArrayLike) -> list[str]:
        """Each text's induced tree in brackets, e.g. ``((the cat) (sat (on (the mat))))``.

        Parameters
        ----------
        texts : sequence of str
            Texts, as for :meth:`fit`.

        Returns
        -------
        list of str
            One bracketed tree per text over its words (lower-cased, cut to ``max_words``).
        """
        return [bracketed(tree, words) for tree, words in self.trees(texts)]

    # -- model files -------------------------------------------------------------------------
    def _restore_module(self, attribute: str, state: dict[str, Any]) -> torch.nn.Module:
        vocab = getattr(self, "vocabulary_", None)
        if (
            not isinstance(vocab, list)
            or not all(isinstance(w, str) and w and w == w.strip() for w in vocab)
            or len(set(vocab)) != len(vocab)
            or len(vocab) > self.max_vocab
        ):
            raise ModelFileError(
                f"vocabulary_ must be a list of at most max_vocab ({self.max_vocab}) distinct words"
            )
        if attribute != "module_":
            raise ModelFileError(f"no network is stored as {attribute!r}")
        return module_from_state(self._build_module, state)
