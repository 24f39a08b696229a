"""Timing helpers: every speed figure is a ratio of two things timed in the same run.

Used in: ``benchmarks/bench_core.py``, ``notebooks/03_optimizer``, ``notebooks/04_quantum_attention``.
"""

from __future__ import annotations

import time

import numpy as np
import torch


def timeit(fn, repeat: int, warmup: int = 1) -> float:
    """Median seconds per call of ``fn`` over ``repeat`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def optimizer_step_seconds(make_optimizer, shapes, repeat: int = 20, device="cpu", seed: int = 0) -> float:
    """Median time of one ``optimizer.step()`` on fresh fp32 tensors of the given shapes.

    ``make_optimizer(params)`` builds the optimizer. Gradients are random and fixed, so only
    the step itself is timed.
    """
    g = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(s, generator=g).to(device)) for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=g).to(device) * 1e-3
    opt = make_optimizer(params)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)

    def step():
        opt.step()
        sync()

    return timeit(step, repeat, warmup=2)


def attention_seconds(batch: int, seq: int, d_model: int = 64, n_heads: int = 4, repeat: int = 20,
                      device="cpu") -> dict[str, float]:
    """Forward+backward seconds of QuantumAttention (quantum on and off) and torch's MHA."""
    from .attention import QuantumAttention

    x = torch.randn(batch, seq, d_model, device=device)
    qa = QuantumAttention(d_model, n_heads).to(device)
    ca = QuantumAttention(d_model, n_heads, quantum=False).to(device)
    mha = torch.nn.MultiheadAttention(d_model, n_heads, batch_first=True).to(device)
    return {
        "quantum": timeit(lambda: qa(x).sum().backward(), repeat),
        "classical (same module, Φ off)": timeit(lambda: ca(x).sum().backward(), repeat),
        "torch MultiheadAttention": timeit(lambda: mha(x, x, x, need_weights=False)[0].sum().backward(), repeat),
    }
