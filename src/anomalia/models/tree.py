"""Sentence auto-encoders whose code is a binary tree (:class:`TreeAE`) or one vector
(:class:`FlatTextAE`), on padded rows of token ids.

Rows are token ids ``(n, max_words)`` as floating values (the training loop's dtype), ``0``
padding the end of each row; ids :data:`PAD`, :data:`UNK`, :data:`EOS` are reserved. Both
models share the decoder: a GRU started from the code that regenerates the words and an
end marker, teacher-forced; ``per_sample_loss`` is the mean negative log-likelihood per
predicted token (the words and the end marker), in nats.

:class:`TreeAE` (after Shen et al. 2018's syntactic distances): a bidirectional GRU over the
words gives one distance per gap between adjacent words; the tree splits every span at its
largest distance, top down. The code is composed bottom-up over that tree from the words'
own embeddings (no context), with a gated composition of the two children. In training the
split of every span is soft, a softmax over its gaps' distances, so the composition is a
chart over all spans (``O(n^3)`` compositions per sentence, vectorised per span length) and
the distances learn from the reconstruction loss; in eval mode the split is the argmax,
which is exactly the greedy top-down tree.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anomalia.models.autoencoder import weighted_mean
from anomalia.models.mlp import check_positive_int

__all__ = ["EOS", "NO_GAP", "PAD", "UNK", "FlatTextAE", "TreeAE"]

#: Token id of padding (after the end of a row).
PAD = 0
#: Token id of a word outside the vocabulary (and of the decoder's hidden input words).
UNK = 1
#: Token id of the end of a sentence (also the decoder's first input).
EOS = 2
#: The distance of the gaps past a row's end (finite, so a softmax over them stays exact).
NO_GAP = -1e9


class _TextAE(nn.Module):
    """Embeddings, the BiGRU encoder and the GRU decoder shared by both auto-encoders."""

    def __init__(
        self, vocab_size: int, *, embed_dim: int, hidden: int, code_dim: int, word_dropout: float
    ) -> None:
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("embed_dim", embed_dim),
                            ("hidden", hidden), ("code_dim", code_dim)):  # fmt: skip
            check_positive_int(name, value)
        if vocab_size <= EOS:
            raise ValueError(f"vocab_size must count the {EOS + 1} reserved ids, got {vocab_size}")
        if not 0.0 <= word_dropout < 1.0:
            raise ValueError(f"word_dropout must be in [0, 1), got {word_dropout}")
        self.vocab_size, self.word_dropout = vocab_size, word_dropout
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.encoder = nn.GRU(embed_dim, hidden, batch_first=True, bidirectional=True)
        self.start = nn.Linear(code_dim, hidden)
        self.decoder = nn.GRU(embed_dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab_size)

    # -- pieces ----------------------------------------------------------------------------
    @staticmethod
    def _ids(x: Tensor) -> tuple[Tensor, Tensor]:
        """Token ids cut to the longest row of the batch, and each row's number of words."""
        ids = x.long()
        lengths = (ids != PAD).sum(1)
        width = max(int(lengths.max()) if len(ids) else 1, 1)
        return ids[:, :width], lengths.clamp_min(1)

    def _encode_states(self, ids: Tensor, lengths: Tensor) -> Tensor:
        packed = nn.utils.rnn.pack_padded_sequence(
            self.embed(ids), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, _ = self.encoder(packed)
        states, _ = nn.utils.rnn.pad_packed_sequence(
            out, batch_first=True, total_length=ids.shape[1]
        )
        return states  # (n, width, 2 * hidden)

    def _decode(
        self, code: Tensor, ids: Tensor, lengths: Tensor, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Teacher-forced logits ``(n, width + 1, vocab)``, targets and their mask."""
        n, width = ids.shape
        target = torch.cat([ids, ids.new_zeros(n, 1)], 1)
        target[torch.arange(n, device=ids.device), lengths] = EOS
        inputs = torch.cat([ids.new_full((n, 1), EOS), ids], 1)  # width + 1 steps
        if self.training and self.word_dropout > 0:
            drop = torch.rand(inputs.shape, generator=generator, device=ids.device)
            inputs = torch.where((drop < self.word_dropout) & (inputs > EOS), UNK, inputs)
        h0 = torch.tanh(self.start(code)).unsqueeze(0)
        out, _ = self.decoder(self.embed(inputs), h0)
        mask = torch.arange(width + 1, device=ids.device)[None] <= lengths[:, None]
        return self.out(out), target, mask

    def _token_nll(
        self, code: Tensor, ids: Tensor, lengths: Tensor, generator: torch.Generator | None
    ) -> Tensor:
        """Mean NLL per predicted token of each row (words, then the end marker)."""
        logits, target, mask = self._decode(code, ids, lengths, generator)
        nll = F.cross_entropy(logits.transpose(1, 2), target, reduction="none")
        return (nll * mask).sum(1) / mask.sum(1)

    def token_accuracy(self, x: Tensor) -> Tensor:
        """Share of each row's tokens (words and end marker) that the decoder, fed the true
        previous words, predicts right (argmax), shape (n,)."""
        ids, lengths = self._ids(x)
        logits, target, mask = self._decode(self._code(ids, lengths, None), ids, lengths, None)
        hits = (logits.argmax(-1) == target) & mask
        return hits.sum(1).to(logits.dtype) / mask.sum(1)

    def code(self, x: Tensor) -> Tensor:
        """The code of each row, shape (n, code_dim)."""
        raise NotImplementedError

    def _code(self, ids: Tensor, lengths: Tensor, generator) -> Tensor:
        raise NotImplementedError

    # -- the models' contract --------------------------------------------------------------
    def per_sample_loss(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Mean negative log-likelihood per predicted token of each row, shape (n,), nats."""
        ids, lengths = self._ids(x)
        return self._token_nll(self._code(ids, lengths, generator), ids, lengths, generator)

    def loss(
        self,
        x: Tensor,
        target: Tensor | None = None,
        weight: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """The (weighted) mean of :meth:`per_sample_loss`; ``target`` must be ``x`` or None."""
        if target is not None and target is not x and not torch.equal(target, x):
            raise ValueError("a text auto-encoder regenerates its input: target must be x")
        return weighted_mean(self.per_sample_loss(x, generator), weight)

    def score(self, x: Tensor) -> Tensor:
        """Anomaly score: :meth:`per_sample_loss` (higher is more anomalous)."""
        return self.per_sample_loss(x)

    def forward(self, x: Tensor) -> Tensor:
        """The code of each row (an auto-encoder of text has no reconstruction tensor)."""
        return self.code(x)


class TreeAE(_TextAE):
    """A sentence auto-encoder whose code is composed over an induced binary tree.

    Parameters
    ----------
    vocab_size : int
        Number of token ids, the reserved ones included.
    embed_dim : int, default=64
        Size of the word embeddings.
    hidden : int, default=128
        Size of each direction of the encoder GRU and of the decoder GRU.
    code_dim : int, default=128
        Size of the vectors composed over the tree (the root's is the code).
    word_dropout : float, default=0.25
        Share of the decoder's input words replaced by the unknown id in training, which
        makes the decoder rely on the code rather than on the previous word.
    temperature : float, default=1.0
        Temperature of the softmax over a span's gap distances in training (lower: closer
        to the hard split).
    """

    def __init__(
        self,
        vocab_size: int,
        *,
        embed_dim: int = 64,
        hidden: int = 128,
        code_dim: int = 128,
        word_dropout: float = 0.25,
        temperature: float = 1.0,
    ) -> None:
        super().__init__(
            vocab_size,
            embed_dim=embed_dim,
            hidden=hidden,
            code_dim=code_dim,
            word_dropout=word_dropout,
        )
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.distance = nn.Sequential(
            nn.Linear(4 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1)
        )
        self.leaf = nn.Linear(embed_dim, code_dim)
        self.gates = nn.Linear(2 * code_dim, 3 * code_dim)
        self.candidate = nn.Linear(2 * code_dim, code_dim)

    def distances(self, x: Tensor) -> Tensor:
        """Syntactic distance of every gap, shape (n, width - 1); gaps past a row's end
        hold :data:`NO_GAP` (they never split)."""
        ids, lengths = self._ids(x)
        return self._distances(ids, lengths)

    def _distances(self, ids: Tensor, lengths: Tensor) -> Tensor:
        states = self._encode_states(ids, lengths)
        pairs = torch.cat([states[:, :-1], states[:, 1:]], -1)
        d = self.distance(pairs).squeeze(-1)
        gap = torch.arange(d.shape[1], device=d.device)[None]
        return d.masked_fill(gap >= (lengths[:, None] - 1), NO_GAP)

    def _compose(self, left: Tensor, right: Tensor) -> Tensor:
        both = torch.cat([left, right], -1)
        g = self.gates(both).unflatten(-1, (3, -1)).softmax(-2)
        return (
            g[..., 0, :] * left
            + g[..., 1, :] * right
            + g[..., 2, :] * torch.tanh(self.candidate(both))
        )

    def _inside(self, ids: Tensor, lengths: Tensor) -> tuple[list, list]:
        """The chart of every span's vector (``chart[k]``: spans of ``k`` words, shape
        ``(n, width - k + 1, code_dim)``) and the split weights of every span (``splits[k]``:
        ``(n, k - 1, width - k + 1)``, over the left part's size)."""
        d = self._distances(ids, lengths)
        width = ids.shape[1]
        chart: list = [None, torch.tanh(self.leaf(self.embed(ids)))]
        splits: list = [None, None]
        for k in range(2, width + 1):
            m = width - k + 1  # spans of k words start at 0 .. m-1
            left = torch.stack([chart[a][:, :m] for a in range(1, k)], 1)
            right = torch.stack([chart[k - a][:, a : a + m] for a in range(1, k)], 1)
            scores = torch.stack([d[:, a - 1 : a - 1 + m] for a in range(1, k)], 1)
            if self.training:
                w = torch.softmax(scores / self.temperature, 1)
            else:
                w = F.one_hot(scores.argmax(1), k - 1).movedim(-1, 1).to(left.dtype)
            chart.append((w.unsqueeze(-1) * self._compose(left, right)).sum(1))
            splits.append(w)
        return chart, splits

    def _root(self, chart: list, lengths: Tensor) -> Tensor:
        firsts = torch.stack([c[:, 0] for c in chart[1:]])  # (width, n, code_dim)
        return firsts[lengths - 1, torch.arange(len(lengths), device=lengths.device)]

    def _code(self, ids: Tensor, lengths: Tensor, generator) -> Tensor:
        return self._root(self._inside(ids, lengths)[0], lengths)

    def code(self, x: Tensor) -> Tensor:
        """The root vector of each row's tree, shape (n, code_dim)."""
        ids, lengths = self._ids(x)
        return self._code(ids, lengths, None)


class FlatTextAE(_TextAE):
    """The flat baseline of :class:`TreeAE`: the same encoder, its states mean-pooled and
    projected to one code vector, and the same decoder.

    Parameters
    ----------
    vocab_size, embed_dim, hidden, code_dim, word_dropout
        As in :class:`TreeAE`.
    """

    def __init__(
        self,
        vocab_size: int,
        *,
        embed_dim: int = 64,
        hidden: int = 128,
        code_dim: int = 128,
        word_dropout: float = 0.25,
    ) -> None:
        super().__init__(
            vocab_size,
            embed_dim=embed_dim,
            hidden=hidden,
            code_dim=code_dim,
            word_dropout=word_dropout,
        )
        self.project = nn.Linear(2 * hidden, code_dim)

    def _code(self, ids: Tensor, lengths: Tensor, generator) -> Tensor:
        states = self._encode_states(ids, lengths)
        mask = (ids != PAD).unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return torch.tanh(self.project(pooled))

    def code(self, x: Tensor) -> Tensor:
        """The pooled code of each row, shape (n, code_dim)."""
        ids, lengths = self._ids(x)
        return self._code(ids, lengths, None)
