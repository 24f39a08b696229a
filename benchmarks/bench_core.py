"""Benchmarks of the sgdq core: the circuit readout Φ and quantum attention.

Every figure is a ratio between two things measured in the same run on the same machine;
absolute times are printed for context only.

    python benchmarks/bench_core.py            # full sizes (about a minute on 2 CPU cores)
    python benchmarks/bench_core.py --quick    # reduced sizes, for CI
    python benchmarks/bench_core.py --csv out.csv

Rows:
* Φ on 131,072 scores (one attention layer at batch 32, 4 heads, 32 tokens): the Fourier
  fast path (forward; forward+backward), the reference statevector path (forward+backward),
  and qiskit-aer's statevector simulator with many parameter binds in one ``run()``
  (forward only, on a subset of the scores, reported as throughput);
* ``QuantumAttention(64, 4)`` against ``torch.nn.MultiheadAttention(64, 4,
  batch_first=True)``, forward+backward on x of shape (32, 32, 64).
"""

from __future__ import annotations

import argparse
import csv
import platform
import sys

import numpy as np
import torch

from sgdq.attention import QuantumAttention
from sgdq.benchmark import timeit
from sgdq.circuit import aer_statevectors, readout, readout_from_state


def aer_seconds_per_score(n_binds: int, theta, phi, seed=0) -> float:
    """qiskit-aer statevector simulation of Eq. (5), ``n_binds`` scores in one ``run()``."""
    xs = torch.from_numpy(np.random.default_rng(seed).normal(0.0, 3.0, n_binds))
    return timeit(lambda: readout_from_state(aer_statevectors(xs, theta, phi), "amplitude"), repeat=2) / n_binds


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="reduced sizes and repeats (CI)")
    ap.add_argument("--csv", help="also write the rows to this CSV file")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    quick = args.quick
    shape = (8, 4, 16, 16) if quick else (32, 4, 32, 32)  # (batch, heads, seq, seq)
    rep = 3 if quick else 20
    n_scores = int(np.prod(shape))
    theta = torch.rand(2, 4) * 2 * np.pi
    phi = torch.rand(2, 4) * 2 * np.pi
    th, ph = theta.clone().requires_grad_(), phi.clone().requires_grad_()
    x = torch.randn(shape) * 3

    def fast_fwd():
        with torch.no_grad():
            readout(x, theta, phi)

    def fwd_bwd(method):
        xg = x.clone().requires_grad_()
        return lambda: readout(xg, th, ph, method=method).sum().backward()

    rows = []

    def row(name, seconds, per, baseline=None):
        rows.append(dict(benchmark=name, seconds=seconds, items=per, throughput=per / seconds, baseline=baseline))

    t_fast_f = timeit(fast_fwd, rep)
    t_fast_fb = timeit(fwd_bwd("fourier"), rep)
    t_ref_fb = timeit(fwd_bwd("statevector"), max(1, rep // 5))
    t_aer = aer_seconds_per_score(256 if quick else 2048, theta, phi) * n_scores
    row("phi_fourier_fwd", t_fast_f, n_scores)
    row("phi_fourier_fwd_bwd", t_fast_fb, n_scores)
    row("phi_statevector_fwd_bwd", t_ref_fb, n_scores)
    row("phi_qiskit_aer_fwd (extrapolated)", t_aer, n_scores)

    b, s = (8, 16) if quick else (32, 32)
    xa = torch.randn(b, s, 64)
    qa = QuantumAttention(64, 4)
    mha = torch.nn.MultiheadAttention(64, 4, batch_first=True)
    t_qa = timeit(lambda: qa(xa).sum().backward(), rep * 3)
    t_mha = timeit(lambda: mha(xa, xa, xa, need_weights=False)[0].sum().backward(), rep * 3)
    row("attention_quantum_fwd_bwd", t_qa, b)
    row("attention_torch_mha_fwd_bwd", t_mha, b)

    ratios = {
        "Φ fwd+bwd: Fourier vs qiskit-aer (fwd only), throughput ×": t_aer / t_fast_fb,
        "Φ fwd+bwd: Fourier vs reference statevector, throughput ×": t_ref_fb / t_fast_fb,
        "Φ fwd: Fourier vs qiskit-aer, throughput ×": t_aer / t_fast_f,
        "QuantumAttention / nn.MultiheadAttention, time ×": t_qa / t_mha,
    }
    print(f"sgdq core benchmark  ({'quick' if quick else 'full'}; {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; Φ on {n_scores:,} scores)")
    print(f"{'benchmark':40s} {'ms/call':>10s} {'items/s':>14s}")
    for r in rows:
        print(f"{r['benchmark']:40s} {r['seconds'] * 1e3:10.3f} {r['throughput']:14.4g}")
    print()
    for name, value in ratios.items():
        print(f"ratio  {name:62s} {value:10.1f}")
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["kind", "name", "value"])
            for r in rows:
                w.writerow(["seconds", r["benchmark"], f"{r['seconds']:.6g}"])
            for name, value in ratios.items():
                w.writerow(["ratio", name, f"{value:.6g}"])
    return ratios


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
