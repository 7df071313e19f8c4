"""Text as the code: a seq2seq auto-encoder whose bottleneck is a short word sequence.

After Wang and Lee (EMNLP 2018): a generator reads a text and writes ``code_length`` words,
each copied from the text by a pointer (attention over the text's positions, made discrete
by Gumbel-softmax with the straight-through estimator); a reconstructor reads only those
words and rebuilds the text with teacher forcing. A separate critic (:class:`TokenCritic`),
trained on real human-written summaries, can push the words to read like a summary rather
than a code only the reconstructor understands.

Token ids follow one layout: 0 padding, 1 unknown word, 2 start of text, 3 end of text
(:data:`PAD`, :data:`UNK`, :data:`BOS`, :data:`EOS`); a text's ids end with :data:`EOS`, and
the pointer can copy that :data:`EOS` to end the summary early. Tensors only: this module
imports neither numpy nor scikit-learn.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

__all__ = ["BOS", "EOS", "MIN_WORDS", "PAD", "SPECIAL_TOKENS", "UNK", "TextAE", "TokenCritic"]

#: Token id of padding (after a text's end).
PAD = 0
#: Token id of a word outside the vocabulary.
UNK = 1
#: Token id that starts every decoded sequence.
BOS = 2
#: Token id of the end of a text; a code that copies it is over.
EOS = 3
#: Fewest words a code holds before it may end (fewer only when the text has fewer).
MIN_WORDS = 3
#: The tokens of ids 0-3, first in every vocabulary.
SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>")


def gumbel_straight_through(
    logits: torch.Tensor, temperature: float, generator: torch.Generator | None
) -> torch.Tensor:
    """One-hot samples of ``softmax(logits)`` along the last axis, differentiable through the
    relaxed sample (straight-through); with ``generator=None``, the argmax (no noise)."""
    if generator is None:
        soft = torch.softmax(logits, dim=-1)
    else:
        u = torch.rand(logits.shape, generator=generator, device=logits.device)
        noise = -torch.log(-torch.log(u.clamp(1e-10, 1.0 - 1e-7)))
        soft = torch.softmax((logits + noise) / temperature, dim=-1)
    hard = F.one_hot(soft.argmax(dim=-1), logits.shape[-1]).to(soft.dtype)
    return hard - soft.detach() + soft


def _encode(
    gru: nn.GRU, x: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """A bidirectional GRU over padded sequences: states (B, T, 2H), final (B, 2H)."""
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    out, h = gru(packed)
    states, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return states, torch.cat([h[0], h[1]], dim=-1)


class TextAE(nn.Module):
    """Pointer generator -> ``code_length`` words -> attentive GRU reconstructor.

    Parameters
    ----------
    vocab_size : int
        Number of token ids, the four special tokens included.
    embedding_dim : int, default=64
        Size of the word embeddings (shared by the generator and the reconstructor).
    hidden_size : int, default=128
        Size of every GRU state (each direction of the bidirectional encoders).
    code_length : int, default=8
        Words in the bottleneck.
    temperature : float, default=1.0
        Gumbel-softmax temperature of the pointer in training.
    """

    def __init__(
        self,
        vocab_size: int,
        *,
        embedding_dim: int = 64,
        hidden_size: int = 128,
        code_length: int = 8,
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        e, h = embedding_dim, hidden_size
        self.vocab_size, self.code_length, self.temperature = vocab_size, code_length, temperature
        self.embed = nn.Embedding(vocab_size, e, padding_idx=PAD)
        # generator: reads the text, points at code_length of its positions
        self.encoder = nn.GRU(e, h, batch_first=True, bidirectional=True)
        self.keys = nn.Linear(2 * h, h)
        self.gen_init = nn.Linear(2 * h, h)
        self.generator = nn.GRUCell(e, h)
        self.query = nn.Linear(h, h)
        # reconstructor: reads the code words, rebuilds the text
        self.code_encoder = nn.GRU(e, h, batch_first=True, bidirectional=True)
        self.code_keys = nn.Linear(2 * h, h)
        self.dec_init = nn.Linear(2 * h, h)
        self.decoder = nn.GRU(e, h, batch_first=True)
        self.out = nn.Linear(2 * h, vocab_size)

    def point(self, ids: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The code as one-hot positions of ``ids`` (B, T): shape (B, code_length, T).

        Each word position is copied at most once; the end of text is not copied before
        :data:`MIN_WORDS` words (or all of a shorter text's); once it is copied, every
        later pick copies it again (the code is over). ``generator``: sample the pointer
        with Gumbel noise from it (training); None: argmax.
        """
        mask = ids != PAD
        x = self.embed(ids)
        states, final = _encode(self.encoder, x, mask.sum(1))
        keys = self.keys(states)
        s = torch.tanh(self.gen_init(final))
        prev = self.embed.weight[BOS].expand(len(ids), -1)
        end = ids == EOS  # the end-of-text position of each text
        blocked = ~mask  # positions no pick may take: padding, words already copied
        done = torch.zeros_like(mask[:, :1])  # the end was copied: only the end follows
        words = (mask & ~end).sum(1, keepdim=True)
        picks = []
        for step in range(self.code_length):
            s = self.generator(prev, s)
            logits = torch.bmm(keys, self.query(s).unsqueeze(-1)).squeeze(-1)
            early = end & (words > step) & (step < MIN_WORDS)  # no end before MIN_WORDS words
            logits = logits.masked_fill(blocked | (done & ~end) | early, float("-inf"))
            p = gumbel_straight_through(logits, self.temperature, generator)
            hard = p.detach() > 0.5
            blocked = blocked | (hard & ~end)
            done = done | (hard & end).any(1, keepdim=True)
            prev = torch.bmm(p.unsqueeze(1), x).squeeze(1)
            picks.append(p)
        return torch.stack(picks, dim=1)

    def token_distributions(self, ids: torch.Tensor, picks: torch.Tensor) -> torch.Tensor:
        """The code words as distributions over the vocabulary, (B, code_length, V)."""
        b, k, t = picks.shape
        dist = picks.new_zeros(b, k, self.vocab_size)
        return dist.scatter_add(2, ids.unsqueeze(1).expand(b, k, t), picks)

    def reconstruction_nll(self, ids: torch.Tensor, picks: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood per token (nats) of each text given its code, (B,)."""
        mask = ids != PAD
        code = torch.bmm(picks, self.embed(ids))  # (B, k, E): the picked words' embeddings
        states, h = self.code_encoder(code)  # fixed length: no padding to pack
        final = torch.cat([h[0], h[1]], dim=-1)
        keys = self.code_keys(states)
        bos = torch.full_like(ids[:, :1], BOS)
        dec_in = self.embed(torch.cat([bos, ids[:, :-1]], dim=1))
        out, _ = self.decoder(dec_in, torch.tanh(self.dec_init(final)).unsqueeze(0))
        attn = torch.softmax(torch.bmm(out, keys.transpose(1, 2)), dim=-1)
        logits = self.out(torch.cat([out, torch.bmm(attn, keys)], dim=-1))
        nll = F.cross_entropy(logits.flatten(0, 1), ids.flatten(), reduction="none")
        nll = nll.view_as(ids)
        return (nll * mask).sum(1) / mask.sum(1).clamp(min=1)

    def forward(
        self, ids: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(picks, nll)``: the code's one-hot positions (B, code_length, T) and each text's
        mean token negative log-likelihood given it (B,)."""
        picks = self.point(ids, generator)
        return picks, self.reconstruction_nll(ids, picks)

    def loss(self, ids: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean reconstruction loss of a batch (scalar), the code sampled from ``generator``."""
        return self(ids, generator)[1].mean()

    def per_sample_loss(self, ids: torch.Tensor) -> torch.Tensor:
        """Each text's mean token negative log-likelihood given its argmax code, (B,)."""
        return self(ids)[1]

    def score(self, ids: torch.Tensor) -> torch.Tensor:
        """Anomaly score, higher is more anomalous: :meth:`per_sample_loss`."""
        return self.per_sample_loss(ids)


class TokenCritic(nn.Module):
    """A small CNN telling real word sequences from generated ones.

    Reads sequences as distributions over the vocabulary (B, L, V), one-hot for real texts,
    so the straight-through gradient reaches the generator; returns one logit per sequence
    (B,), higher meaning "human-written".

    Parameters
    ----------
    vocab_size : int
        Number of token ids.
    embedding_dim : int, default=64
        Size of its own word embeddings.
    channels : int, default=128
        Filters of its one convolution (width 3 words), max-pooled over the sequence.
    """

    def __init__(self, vocab_size: int, *, embedding_dim: int = 64, channels: int = 128) -> None:
        super().__init__()
        self.embed = nn.Linear(vocab_size, embedding_dim, bias=False)
        self.conv = nn.Conv1d(embedding_dim, channels, kernel_size=3, padding=1)
        self.out = nn.Linear(channels, 1)

    def forward(self, dist: torch.Tensor) -> torch.Tensor:
        """One logit per sequence (B,) of word distributions ``dist`` (B, L, V)."""
        h = torch.relu(self.conv(self.embed(dist).transpose(1, 2)))
        return self.out(h.amax(dim=2)).squeeze(-1)
