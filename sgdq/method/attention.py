"""Quantum attention, Eq. (3)–(4).

Pamuk et al. (2025), Sec. III-B, add the circuit's readout to the attention logits:

    Attention(Q, K, V) = softmax( QKᵀ/√d_k + Φ(Q, K, C) ) V                     (Eq. 3)
    Φ_{ijh} = Σ_{k=1}^{n_qubits} ψ_k( C((QKᵀ)_{ijh}) )                           (Eq. 4)

Our choices, where the paper is silent:

* **Which score the circuit reads** (``circuit_input``). Eq. (4) writes the raw product
  (QKᵀ)_{ijh}, so ``"raw"`` is the default; ``"scaled"`` feeds QKᵀ/√d_k instead.
* **How the score enters the circuit**: as an angle offset of every R_y (see
  :mod:`sgdq.method.circuit`). Φ is then an exact trigonometric polynomial in the score, which is
  what makes it cheap to evaluate for every (i, j, h).
* **Which parameters are trainable**: each attention layer owns one (θ, φ) pair of shape
  (depth, n_qubits), shared by its heads, initialised uniformly in [0, 2π).
* **Finite shots** (``shots``, beyond the paper): with the ``"expval_z"`` readout, the value
  of Φ can be the estimate a device would return from ``shots`` measurements per score
  (:func:`sgdq.method.circuit.sample_expval_z`), in training and in evaluation alike. The gradient
  stays that of the exact expectation, which is what an unbiased parameter-shift estimate
  has on average; only the forward value carries the shot noise.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_choice, check_int
from .circuit import READOUTS, check_circuit_size, readout, sample_expval_z

CIRCUIT_INPUTS = ("raw", "scaled")


def check_shots(shots, readout: str) -> None:
    """Refuse a ``shots`` setting that is not None or a positive integer, or that comes
    without the ``"expval_z"`` readout (the only readout a device can estimate)."""
    if shots is None:
        return
    if not isinstance(shots, int) or isinstance(shots, bool) or shots < 1:
        raise ValueError(f"shots must be None (exact) or an integer >= 1, got {shots!r}")
    if readout != "expval_z":
        raise ValueError(f"shots needs readout='expval_z' (the only readout a device can estimate), "
                         f"got readout={readout!r}")


class QuantumAttention(nn.Module):
    """Multi-head self-attention with the circuit term Φ of Eq. (3)–(4).

    ``forward(x, key_padding_mask=None)`` takes x of shape (batch, seq, d_model) and returns
    the same shape. ``key_padding_mask`` (batch, seq) is True where a key is padding, as in
    :class:`torch.nn.MultiheadAttention`; a row whose keys are all padding is refused (its
    softmax would be 0/0). With ``quantum=False`` it is standard scaled-dot-product attention
    with the same projections.

    The forward pass is torch's ``F.scaled_dot_product_attention`` with Φ (and −∞ on padded
    keys) as its additive ``attn_mask``: softmax(QKᵀ/√d_k + Φ)·V is exactly Eq. (3).
    :meth:`reference_forward` writes the same thing out op by op; the tests hold the two equal.
    """

    def __init__(self, d_model: int, n_heads: int, n_qubits: int = 4, depth: int = 2,
                 readout: str = "amplitude", dropout: float = 0.0, *, circuit_input: str = "raw",
                 quantum: bool = True, shots: int | None = None):
        super().__init__()
        check_int("d_model", d_model)
        check_int("n_heads", n_heads)
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        check_circuit_size(n_qubits, depth)
        check_choice("readout", readout, READOUTS)
        check_choice("circuit_input", circuit_input, CIRCUIT_INPUTS)
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        check_shots(shots, readout)
        self.shots = shots
        self.d_model, self.n_heads, self.d_k = d_model, n_heads, d_model // n_heads
        self.readout_kind, self.circuit_input, self.quantum = readout, circuit_input, quantum
        self.dropout = dropout
        self.in_proj = nn.Linear(d_model, 3 * d_model)  # [W_q; W_k; W_v], as nn.MultiheadAttention
        self.out_proj = nn.Linear(d_model, d_model)
        self.theta = nn.Parameter(torch.rand(depth, n_qubits) * 2 * math.pi)
        self.phi = nn.Parameter(torch.rand(depth, n_qubits) * 2 * math.pi)

    def _check_inputs(self, x, key_padding_mask):
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must have shape (batch, seq, {self.d_model}), got {tuple(x.shape)}")
        if key_padding_mask is None:
            return
        if key_padding_mask.dtype != torch.bool or tuple(key_padding_mask.shape) != tuple(x.shape[:2]):
            raise ValueError(f"key_padding_mask must be a bool tensor of shape {tuple(x.shape[:2])} (True = padding), "
                             f"got {key_padding_mask.dtype} {tuple(key_padding_mask.shape)}")
        empty = key_padding_mask.all(dim=-1)
        if empty.any():
            rows = empty.nonzero().flatten().tolist()
            raise ValueError(f"key_padding_mask marks every key of batch row(s) {rows} as padding: attention over "
                             "no keys is undefined (a sequence needs at least one real token)")

    def _heads(self, x):
        b, s, _ = x.shape
        return self.in_proj(x).view(b, s, 3, self.n_heads, self.d_k).permute(2, 0, 3, 1, 4)

    def _mask(self, q, k, key_padding_mask):
        """Eq. (3)'s additive term: Φ (quantum) and −∞ on padded keys; None when there is neither."""
        mask = None
        if self.quantum:
            scores = q @ k.transpose(-2, -1)
            mask = self.circuit_term(self._circuit_input(scores))
        if key_padding_mask is not None:
            pad = key_padding_mask[:, None, None, :]
            mask = ~pad if mask is None else mask.masked_fill(pad, float("-inf"))
        return mask

    def _logits(self, q, k, key_padding_mask):
        """QKᵀ/√d_k + Φ (+ −∞ on padded keys), written out: shape (batch, heads, seq, seq)."""
        scores = q @ k.transpose(-2, -1)
        logits = scores * (1.0 / math.sqrt(self.d_k))
        if self.quantum:
            logits = logits + self.circuit_term(self._circuit_input(scores))
        if key_padding_mask is not None:
            logits = logits.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        return logits

    def _circuit_input(self, scores):
        """What the circuit reads (``circuit_input``): QKᵀ itself, or QKᵀ/√d_k."""
        return scores if self.circuit_input == "raw" else scores * (1.0 / math.sqrt(self.d_k))

    def circuit_term(self, scores: torch.Tensor) -> torch.Tensor:
        """Φ of Eq. (4) for every score (any shape); with ``shots``, its finite-shot estimate."""
        exact = readout(scores, self.theta, self.phi, self.readout_kind)
        if self.shots is None:
            return exact
        noise = sample_expval_z(scores, self.theta, self.phi, self.shots) - exact.detach()
        return exact + noise  # the estimate's value, the exact expectation's gradient

    def attention_weights(self, x, key_padding_mask=None):
        """The softmax weights, (batch, heads, seq, seq); for plots."""
        self._check_inputs(x, key_padding_mask)
        q, k, _ = self._heads(x)
        return torch.softmax(self._logits(q, k, key_padding_mask), dim=-1)

    def reference_forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Eq. (3) op by op: softmax(QKᵀ/√d_k + Φ)·V, then the output projection."""
        self._check_inputs(x, key_padding_mask)
        q, k, v = self._heads(x)
        attn = torch.softmax(self._logits(q, k, key_padding_mask), dim=-1)
        attn = F.dropout(attn, self.dropout, self.training)
        return self.out_proj((attn @ v).transpose(1, 2).reshape(x.shape))

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        self._check_inputs(x, key_padding_mask)
        q, k, v = self._heads(x)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=self._mask(q, k, key_padding_mask),
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.out_proj(out.transpose(1, 2).reshape(x.shape))
