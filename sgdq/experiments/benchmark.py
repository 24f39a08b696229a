"""Timing: every speed figure is a ratio of two things timed in the same run.

:func:`timeit` is the one timing helper (torch's ``torch.utils.benchmark.Timer`` underneath);
the ``*_rows`` functions are the suite that ``benchmarks/run.py`` runs, and
:func:`optimizer_step_table` / :func:`attention_seconds` what chapters 03 and 04 time.
"""

from __future__ import annotations

import statistics

import numpy as np
import torch
from torch.utils import benchmark as torch_benchmark

from ..method.attention import QuantumAttention
from .config import synchronize
from .spec import OptimizerSpec


def timeit(fn, repeat: int, warmup: int = 1, device="cpu") -> float:
    """Median seconds per call of ``fn`` over ``repeat`` calls, after ``warmup`` calls.

    Each call is timed by ``torch.utils.benchmark.Timer`` with torch's current thread count;
    the Timer synchronises CUDA, so on a GPU the time covers the kernels, not only their launch.
    """
    return interleaved_seconds({"fn": fn}, repeat, warmup, device)["fn"]


def _tensors_with_grads(shapes, device="cpu", seed: int = 0, grad_scale: float = 1e-3):
    """Fresh fp32 parameters of the given shapes with fixed random gradients."""
    g = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(s, generator=g).to(device)) for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=g).to(device) * grad_scale
    return params


def optimizer_step_seconds(spec: OptimizerSpec, shapes, repeat: int = 20, device="cpu", seed: int = 0) -> float:
    """Median time of one ``optimizer.step()`` of ``spec`` on fresh fp32 tensors of the given
    shapes. Gradients are random and fixed, so only the step itself is timed."""
    return interleaved_step_seconds({"only": spec}, shapes, repeat, device, seed)["only"]


def interleaved_step_seconds(specs: dict, shapes, repeat: int = 20, device="cpu", seed: int = 0,
                             compiled: bool = False) -> dict[str, float]:
    """Median seconds of one ``optimizer.step()`` per spec, the specs timed in turn within each
    repeat (so a slow spell of the machine hits all of them alike and their ratios stay put).

    ``compiled=True`` times ``torch.compile(optimizer.step)`` instead; the compilation happens
    in the warm-up calls and is not timed."""
    steps = {}
    for name, spec in specs.items():
        opt = spec.build(_tensors_with_grads(shapes, device, seed))
        steps[name] = torch.compile(opt.step) if compiled else opt.step
    return interleaved_seconds(steps, repeat, warmup=2, device=device)


def interleaved_seconds(fns: dict, repeat: int, warmup: int = 1, device="cpu") -> dict[str, float]:
    """Median seconds per call of each function, the functions timed in turn within each repeat
    (``torch.utils.benchmark.Timer``), so a slow spell of the machine hits all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    synchronize(device)
    timers = {name: torch_benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
              for name, fn in fns.items()}
    samples = {name: [] for name in fns}
    for _ in range(repeat):
        for name, timer in timers.items():
            samples[name].append(timer.timeit(1).median)
    return {name: float(statistics.median(v)) for name, v in samples.items()}


def optimizer_step_table(shapes_by_model: dict, specs: dict[str, OptimizerSpec], repeat: int = 20,
                         device="cpu"):
    """Milliseconds per ``optimizer.step()`` of every spec on every model's shapes, and the ratio
    to the first spec (the baseline), timed in the same run."""
    import pandas as pd

    rows = []
    for model, shapes in shapes_by_model.items():
        times = interleaved_step_seconds(specs, shapes, repeat, device)
        base = next(iter(times.values()))
        rows += [dict(model=model, optimizer=name, ms=round(1e3 * t, 3), ratio_to_baseline=round(t / base, 2))
                 for name, t in times.items()]
    return pd.DataFrame(rows)


def attention_seconds(batch: int, seq: int, d_model: int = 64, n_heads: int = 4, repeat: int = 20,
                      device="cpu") -> dict[str, float]:
    """Forward+backward seconds of QuantumAttention (on SDPA, and its op-by-op reference; quantum
    on and off) and torch's MHA."""
    x = torch.randn(batch, seq, d_model, device=device)
    qa = QuantumAttention(d_model, n_heads).to(device)
    ca = QuantumAttention(d_model, n_heads, quantum=False).to(device)
    mha = torch.nn.MultiheadAttention(d_model, n_heads, batch_first=True).to(device)
    return interleaved_seconds({
        "quantum": lambda: qa(x).sum().backward(),
        "quantum, op-by-op reference": lambda: qa.reference_forward(x).sum().backward(),
        "classical (same module, Φ off)": lambda: ca(x).sum().backward(),
        "torch MultiheadAttention": lambda: mha(x, x, x, need_weights=False)[0].sum().backward(),
    }, repeat, device=device)


# --------------------------------------------------------------------------------------
# The suite (benchmarks/run.py): every row is timed in the same run as its baseline
# --------------------------------------------------------------------------------------
def phi_rows(quick: bool, repeat: int, device="cpu") -> list[dict]:
    """Φ on one attention layer's scores: the Fourier path, the gate-by-gate torch path,
    qiskit-aer (many binds in one run, forward only) and qiskit's Statevector per circuit.

    The torch paths run on ``device``; the Qiskit baselines always run on the CPU."""
    import math

    from qiskit.quantum_info import Statevector

    from ..method.circuit import (
        aer_statevectors,
        bind_circuit,
        build_circuit,
        fourier_series,
        readout,
        readout_from_state,
    )

    shape = (8, 4, 16, 16) if quick else (32, 4, 32, 32)
    n = int(np.prod(shape))
    g = torch.Generator().manual_seed(0)
    theta = torch.rand(2, 4, generator=g) * 2 * math.pi
    phi = torch.rand(2, 4, generator=g) * 2 * math.pi
    x = torch.randn(shape, generator=g) * 3
    theta_d, phi_d, x_d = theta.to(device), phi.to(device), x.to(device)
    th, ph = theta_d.clone().requires_grad_(), phi_d.clone().requires_grad_()

    def fwd_bwd(method):
        xg = x_d.clone().requires_grad_()
        return lambda: readout(xg, th, ph, method=method).sum().backward()

    def fast_fwd():
        with torch.no_grad():
            readout(x_d, theta_d, phi_d)

    def coef_fwd_bwd():
        series = fourier_series(th, ph)
        series.coef.sum().backward()

    t_fb = timeit(fwd_bwd("fourier"), repeat, device=device)
    t_coef = timeit(coef_fwd_bwd, repeat, device=device)
    t_f = timeit(fast_fwd, repeat, device=device)
    t_ref = timeit(fwd_bwd("statevector"), max(1, repeat // 5), device=device)
    n_aer = 256 if quick else 2048
    xs = x.reshape(-1)[:n_aer].double()
    t_aer = timeit(lambda: readout_from_state(aer_statevectors(xs, theta, phi)), 2) * n / n_aer
    qc = build_circuit(4, 2)
    n_sv = 20 if quick else 200
    t_sv = timeit(lambda: [Statevector(bind_circuit(qc, float(v), theta, phi)) for v in xs[:n_sv]], 1) * n / n_sv
    base = dict(group="phi", items=n, unit="scores")
    return [
        dict(base, name="Fourier path, forward+backward", seconds=t_fb, baseline="qiskit-aer, forward",
             ratio=t_aer / t_fb),
        dict(base, name="Fourier path, forward", seconds=t_f, baseline="qiskit-aer, forward", ratio=t_aer / t_f),
        dict(group="phi (fixed cost)", items=1, unit="steps", name="Fourier coefficients only, forward+backward",
             seconds=t_coef,
             baseline="Fourier path, forward+backward", ratio=t_coef / t_fb),
        dict(base, name="torch statevector, forward+backward", seconds=t_ref,
             baseline="Fourier path, forward+backward", ratio=t_ref / t_fb),
        dict(base, name="qiskit-aer, forward", seconds=t_aer, baseline="", ratio=math.nan),
        dict(base, name="qiskit Statevector per circuit, forward", seconds=t_sv, baseline="qiskit-aer, forward",
             ratio=t_sv / t_aer),
    ]


def attention_rows(quick: bool, repeat: int, device="cpu") -> list[dict]:
    b, s = (8, 16) if quick else (32, 32)
    t = attention_seconds(b, s, repeat=repeat * 3, device=device)
    base = t["torch MultiheadAttention"]
    return [dict(group="attention", name=f"{k}, forward+backward", items=b, unit="sequences", seconds=v,
                 baseline="" if k == "torch MultiheadAttention" else "torch MultiheadAttention, forward+backward",
                 ratio=float("nan") if k == "torch MultiheadAttention" else v / base) for k, v in t.items()]


def optimizer_rows(quick: bool, repeat: int, device="cpu") -> list[dict]:
    """optimizer.step() and optimizer-state memory against torch's fused AdamW, at three sizes
    (the Table II classifier, 200 small 64×64 tensors, SmolLM2's shapes), each spec timed in turn
    with its baseline; outside ``quick``, also both compiled (``torch.compile(opt.step)``)."""
    import math

    from ..method.models import TransformerClassifier, llama_parameter_shapes

    sizes = {"Table II classifier": [tuple(p.shape) for p in TransformerClassifier(vocab_size=1000).parameters()],
             "200 tensors of 64×64": [(64, 64)] * 200}
    if not quick:
        sizes["SmolLM2-135M shapes"] = llama_parameter_shapes()
    makers = {
        "AdamW (fused)": OptimizerSpec("AdamW", fused=True),
        "SuperpositionalAdam (default, fused)": OptimizerSpec("SGD"),
        "SuperpositionalAdam (foreach)": OptimizerSpec("SGD", foreach=True),
        "SuperpositionalAdam (reference loop)": OptimizerSpec("SGD", foreach=False, fused=False),
    }
    compiled = {"AdamW (fused)": makers["AdamW (fused)"],
                "SuperpositionalAdam (default, fused)": makers["SuperpositionalAdam (default, fused)"]}
    rows = []
    for size, shapes in sizes.items():
        n = sum(math.prod(s) for s in shapes)
        reps = repeat if n < 10**7 else max(5, repeat // 3)
        runs = [("", interleaved_step_seconds(makers, shapes, reps, device))]
        if not quick:
            runs.append((" compiled", interleaved_step_seconds(compiled, shapes, reps, device, compiled=True)))
        for tag, times in runs:
            base = times["AdamW (fused)"]
            for k, v in times.items():
                first = k == "AdamW (fused)"
                rows.append(dict(group="optimizer", name=f"{k},{tag} step, {size}", items=n, unit="parameters",
                                 seconds=v, baseline="" if first else f"AdamW (fused),{tag} step, {size}",
                                 ratio=float("nan") if first else v / base))
        mem = {k: state_bytes_per_parameter(f, shapes[:4]) for k, f in list(makers.items())[:2]}
        rows.append(dict(group="optimizer", name=f"state bytes per parameter, SuperpositionalAdam, {size}",
                         items=n, unit="parameters", seconds=math.nan, baseline="AdamW (fused)",
                         ratio=mem["SuperpositionalAdam (default, fused)"] / mem["AdamW (fused)"],
                         value=mem["SuperpositionalAdam (default, fused)"]))
    return rows


def state_bytes_per_parameter(spec: OptimizerSpec, shapes) -> float:
    """Bytes of optimizer state per parameter after one step (tensors other than scalars)."""
    params = _tensors_with_grads(shapes, grad_scale=1.0)
    opt = spec.build(params)
    opt.step()
    total = sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values()
                if torch.is_tensor(t) and t.dim() > 0)
    return total / sum(p.numel() for p in params)


def epoch_rows(quick: bool, device="cpu") -> list[dict]:
    """Experiment 1: an epoch with SGD λ = 0.5 against an epoch with Adam, same model, data, device.

    The two optimizers alternate over several rounds (2 quick, 8 full) of 3 epochs each, so
    drifts in the machine's speed hit both alike; the first epoch of every run is a warm-up
    and is dropped. Also reported: the time inside ``optimizer.step()`` per epoch, the only
    place where the two runs differ.
    """
    from . import text_classification as tc

    cfg = tc.config_for("smoke" if quick else "cpu", seeds=1, epochs=3, n_train=256 if quick else 1000,
                        device=torch.device(device).type)
    data = tc.make_data(cfg)
    epochs, steps = {}, {}
    for _ in range(2 if quick else 8):
        for opt in ("Adam", "SGD λ=0.5"):
            rows = tc.train_one(cfg, opt, seed=0, data=data)[1:]  # first epoch: warm-up
            epochs.setdefault(opt, []).extend(r["epoch_seconds"] for r in rows)
            steps.setdefault(opt, []).extend(r["step_seconds"] for r in rows)
    adam, sgd = float(np.median(epochs["Adam"])), float(np.median(epochs["SGD λ=0.5"]))
    s_adam, s_sgd = float(np.median(steps["Adam"])), float(np.median(steps["SGD λ=0.5"]))
    base = dict(group="experiment 1", items=cfg.n_train, unit="sentences")
    return [dict(base, name="epoch, Adam", seconds=adam, baseline="", ratio=float("nan")),
            dict(base, name="epoch, SGD λ=0.5", seconds=sgd, baseline="epoch, Adam", ratio=sgd / adam),
            dict(base, name="optimizer steps in an epoch, Adam", seconds=s_adam, baseline="epoch, Adam",
                 ratio=s_adam / adam),
            dict(base, name="optimizer steps in an epoch, SGD λ=0.5", seconds=s_sgd,
                 baseline="optimizer steps in an epoch, Adam", ratio=s_sgd / s_adam)]


def load_suite(quick: bool = False, folder=None) -> tuple[dict, dict]:
    """The stored suite results, full or quick (``name -> table``), and their provenance."""
    import json

    import pandas as pd

    from .provenance import repo_root

    folder = folder or repo_root() / "data" / "results" / "benchmarks"
    suffix = "-quick" if quick else ""
    files = sorted(p for p in folder.glob(f"*{suffix}.csv") if p.stem.endswith("quick") == quick)
    return ({p.stem: pd.read_csv(p) for p in files},
            {p.stem: json.loads(p.with_suffix(".provenance.json").read_text()) for p in files})
