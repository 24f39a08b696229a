"""The Table II classifier: a small transformer encoder with (quantum) attention.

Table II of Pamuk et al. (2025): 64-dim embeddings, 4 heads, feed-forward 128, 2 layers,
dropout 0.1, a 4-qubit depth-2 circuit. The paper gives no more; our choices are the fixed
sinusoidal position encoding of the original Transformer (``positional="learned"`` switches to
a learned table; with it, the order-dependent task of experiment 1 was learned markedly
slower at Table II's learning rate), post-norm encoder layers (as the original Transformer and
``nn.TransformerEncoderLayer``'s default), ReLU in the feed-forward block, and mean pooling
over non-padding tokens into a linear head.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .attention import QuantumAttention
from .checks import check_choice, check_int

ATTENTIONS = ("quantum", "classical")
POSITIONALS = ("sinusoidal", "learned")


def sinusoidal_positions(max_len: int, d_model: int) -> torch.Tensor:
    """The fixed sine/cosine position encoding of Vaswani et al. (2017), (max_len, d_model)."""
    pos = torch.arange(max_len, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(max_len, d_model)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)
    return table


class SinusoidalPositions(nn.Module):
    """``forward(positions)`` looks the positions up in :func:`sinusoidal_positions`'s table.

    A module (not a lambda) so that the model pickles, ``torch.save(model)`` works, and
    ``copy.deepcopy`` gives the copy its own table. The table is a non-persistent buffer:
    it follows ``.to(device)`` but stays out of the state dict (it is a fixed function).
    """

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.register_buffer("table", sinusoidal_positions(max_len, d_model), persistent=False)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return self.table[positions]


class EncoderLayer(nn.Module):
    """Post-norm transformer encoder layer around :class:`QuantumAttention`."""

    def __init__(self, d_model, n_heads, d_ff, dropout, quantum, **circuit):
        super().__init__()
        self.attn = QuantumAttention(d_model, n_heads, dropout=dropout, quantum=quantum, **circuit)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Dropout(dropout),
                                nn.Linear(d_ff, d_model))
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, key_padding_mask=None):
        x = self.norm1(x + self.drop(self.attn(x, key_padding_mask)))
        return self.norm2(x + self.drop(self.ff(x)))


class TransformerClassifier(nn.Module):
    """Table II's classifier. ``forward(tokens)`` maps (batch, seq) int64 ids to logits.

    ``attention="classical"`` switches the circuit term off (same parameters otherwise,
    the circuit angles then receive no gradient), so the two variants start from the same
    weights at the same seed.
    """

    def __init__(self, vocab_size: int, n_classes: int = 2, max_len: int = 64, d_model: int = 64,
                 n_heads: int = 4, d_ff: int = 128, n_layers: int = 2, dropout: float = 0.1,
                 attention: str = "quantum", n_qubits: int = 4, depth: int = 2,
                 readout: str = "amplitude", circuit_input: str = "raw", pad_id: int = 0,
                 positional: str = "sinusoidal", shots: int | None = None):
        super().__init__()
        check_choice("attention", attention, ATTENTIONS)
        check_choice("positional", positional, POSITIONALS)
        for name, value in (("vocab_size", vocab_size), ("n_classes", n_classes), ("max_len", max_len),
                            ("d_model", d_model), ("n_heads", n_heads), ("d_ff", d_ff), ("n_layers", n_layers)):
            check_int(name, value)
        if not isinstance(pad_id, int) or not 0 <= pad_id < vocab_size:
            raise ValueError(f"pad_id must be an integer in 0..{vocab_size - 1} (a token id), got {pad_id!r}")
        self.pad_id, self.max_len = pad_id, max_len
        self.embed = nn.Embedding(vocab_size, d_model)
        if positional == "learned":
            self.pos = nn.Embedding(max_len, d_model)
        else:
            self.pos = SinusoidalPositions(max_len, d_model)
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, n_heads, d_ff, dropout, attention == "quantum", n_qubits=n_qubits,
                         depth=depth, readout=readout, circuit_input=circuit_input, shots=shots)
            for _ in range(n_layers)
        )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(d_model, n_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 2:
            raise ValueError(f"tokens must have shape (batch, seq), got {tuple(tokens.shape)}")
        if tokens.shape[1] > self.max_len:
            raise ValueError(f"sequence length {tokens.shape[1]} exceeds max_len={self.max_len}")
        pad = tokens == self.pad_id
        empty = pad.all(dim=1)
        if empty.any():
            rows = empty.nonzero().flatten().tolist()
            raise ValueError(f"token row(s) {rows} are all padding (pad_id={self.pad_id}): "
                             "a sequence needs at least one real token to attend to and to pool")
        pos = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.drop(self.embed(tokens) + self.pos(pos))
        for layer in self.layers:
            x = layer(x, pad)
        keep = (~pad).unsqueeze(-1).to(x.dtype)
        pooled = (x * keep).sum(1) / keep.sum(1).clamp_min(1.0)
        return self.head(pooled)


def llama_parameter_shapes(hidden: int = 576, intermediate: int = 1536, layers: int = 30, vocab: int = 49152,
                           heads: int = 9, kv_heads: int = 3, tied: bool = True) -> list[tuple[int, ...]]:
    """Parameter shapes of a Llama-architecture decoder, in ``named_parameters()`` order.

    The defaults are SmolLM2-135M's (134.5M parameters, tied embeddings); Llama-3.2-1B is
    ``hidden=2048, intermediate=8192, layers=16, vocab=128256, heads=32, kv_heads=8``.
    Used to count what Eq. (2) touches without loading weights, and by the benchmarks.
    """
    head_dim = hidden // heads
    shapes = [(vocab, hidden)]
    for _ in range(layers):
        shapes += [(hidden, hidden), (kv_heads * head_dim, hidden), (kv_heads * head_dim, hidden),
                   (hidden, hidden), (intermediate, hidden), (intermediate, hidden), (hidden, intermediate),
                   (hidden,), (hidden,)]
    shapes.append((hidden,))
    if not tied:
        shapes.append((vocab, hidden))
    return shapes
