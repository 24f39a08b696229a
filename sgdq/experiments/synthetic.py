"""The synthetic text-classification task of experiment 1 (our design; the paper gives none).

Sec. IV-B of Pamuk et al. (2025) reports results on "synthetic text classification" without
describing the data. We generate sentiment sentences with negation:

* a sentence is 6–16 filler words with one sentiment word, positive or negative (with
  ``p_single < 1``, a share of sentences carries three, which makes the task harder);
* with probability ``p_negator`` a negator ("not", "never") stands somewhere in the sentence;
  it flips every sentiment word that comes *after* it (its scope runs to the end of the
  sentence) and does nothing to the words before it;
* the label is the sign of the sum of the (possibly flipped) polarities;
* a fraction ``noise`` of labels is flipped at random, in train and test alike, so the best
  achievable test accuracy is about 1 − noise (95 % at the default 0.05).

A bag of tokens cannot solve it: the same words give opposite labels depending on whether
the negator comes before or after the sentiment word, an order relation between two
positions that attention can pick up. (We calibrated this design so that Adam reaches 90 %
test accuracy within the 5–15 epochs the paper's numbers imply; a first design, with
negation only of the adjacent word, was not learned in 12 epochs at Table II's settings.)
The data depend only on ``data_seed``; train and test are two fixed, disjoint draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

PAD = 0
NEGATORS = ("not", "never")
POSITIVE = ("good", "great", "fine", "nice", "superb", "lovely", "happy", "excellent")
NEGATIVE = ("bad", "awful", "poor", "sad", "terrible", "boring", "ugly", "dreadful")
N_FILLER = 40


def vocabulary() -> list[str]:
    """Index → word: padding, negators, positive, negative, then filler words w0 … w39."""
    return ["<pad>", *NEGATORS, *POSITIVE, *NEGATIVE, *(f"w{i}" for i in range(N_FILLER))]


_NEG0 = 1
_POS0 = _NEG0 + len(NEGATORS)
_BAD0 = _POS0 + len(POSITIVE)
_FILL0 = _BAD0 + len(NEGATIVE)
VOCAB_SIZE = _FILL0 + N_FILLER


@dataclass
class Split:
    tokens: torch.Tensor  # (n, max_len) int64, PAD-padded
    labels: torch.Tensor  # (n,) int64, after label noise
    clean_labels: torch.Tensor  # (n,) int64, before label noise

    def __len__(self):
        return len(self.labels)


def _sentence(g: torch.Generator, min_len: int, max_len: int, p_negator: float, p_single: float):
    def rand(n):
        return int(torch.randint(n, (1,), generator=g))

    def coin(p):
        return float(torch.rand(1, generator=g)) < p

    length = min_len + rand(max_len - min_len + 1)
    words = [_FILL0 + rand(N_FILLER) for _ in range(length)]
    n_sent = 1 if coin(p_single) else 3
    slots = torch.randperm(length, generator=g).tolist()
    sentiment, negator = sorted(slots[:n_sent]), (slots[n_sent] if coin(p_negator) else None)
    if negator is not None:
        words[negator] = _NEG0 + rand(len(NEGATORS))
    total = 0
    for pos in sentiment:
        positive = coin(0.5)
        words[pos] = (_POS0 + rand(len(POSITIVE))) if positive else (_BAD0 + rand(len(NEGATIVE)))
        flipped = negator is not None and negator < pos  # the negator's scope runs to the end
        total += (1 if positive else -1) * (-1 if flipped else 1)
    return words, int(total > 0)


def make_split(n: int, data_seed: int, min_len: int = 6, max_len: int = 16, noise: float = 0.05,
               p_negator: float = 0.6, p_single: float = 1.0) -> Split:
    """``n`` sentences drawn from ``data_seed`` (see the module docstring)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0.0 <= p_negator <= 1.0 or not 0.0 <= p_single <= 1.0:
        raise ValueError(f"p_negator and p_single must be in [0, 1], got {p_negator}, {p_single}")
    if not 0.0 <= noise < 0.5:
        raise ValueError(f"noise must be in [0, 0.5), got {noise}")
    if not 4 <= min_len <= max_len:
        raise ValueError(f"need 4 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}")
    g = torch.Generator().manual_seed(data_seed)
    tokens = torch.full((n, max_len), PAD, dtype=torch.long)
    clean = torch.empty(n, dtype=torch.long)
    for i in range(n):
        words, label = _sentence(g, min_len, max_len, p_negator, p_single)
        tokens[i, : len(words)] = torch.tensor(words)
        clean[i] = label
    flip = torch.rand(n, generator=g) < noise
    return Split(tokens, torch.where(flip, 1 - clean, clean), clean)


def make_dataset(n_train: int, n_test: int, data_seed: int = 2025, **kwargs) -> tuple[Split, Split]:
    """The fixed train and test splits: two disjoint draws from one seed."""
    return make_split(n_train, data_seed, **kwargs), make_split(n_test, data_seed + 1_000_003, **kwargs)


def decode(tokens: torch.Tensor) -> str:
    """Token ids → a readable sentence (padding dropped)."""
    vocab = vocabulary()
    return " ".join(vocab[int(t)] for t in tokens if int(t) != PAD)
