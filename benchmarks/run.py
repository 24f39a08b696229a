"""The benchmark suite: throughputs and ratios, each ratio timed in the same run as its baseline.

    python benchmarks/run.py            # full sizes, a few minutes on 2 CPU cores
    python benchmarks/run.py --quick    # reduced sizes (CI): checks that it runs and prints ratios
    python benchmarks/run.py --device cuda   # the torch rows on a GPU (Qiskit stays on the CPU)

Writes ``data/results/benchmarks/<device>.csv`` and ``<device>.provenance.json`` (``--out`` to
choose another folder). Rows: Φ (Fourier path, gate-by-gate torch path, qiskit-aer batched,
qiskit Statevector per circuit), attention (against torch's MultiheadAttention), the optimizer
step and its state memory at two sizes (against torch's fused AdamW), and an experiment-1
epoch with SGD against one with Adam. Absolute times depend on the machine; read the ratios.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sgdq.experiments import benchmark as bm  # noqa: E402
from sgdq.experiments.config import DEVICES, resolve_device  # noqa: E402
from sgdq.experiments.provenance import CODE, device_name, now, record  # noqa: E402
from sgdq.experiments.store import atomic_write, slug  # noqa: E402


def device_slug(device: torch.device) -> str:
    """The results file's name for a device: "cpu (x86_64, 2 threads)" → "cpu-x86-64-2-threads"."""
    return slug(device_name(device)).lower().replace("_", "-")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="reduced sizes and repeats (CI)")
    ap.add_argument("--out", default=str(ROOT / "data" / "results" / "benchmarks"))
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--device", default="cpu", choices=list(DEVICES),
                    help="where the torch rows run (the Qiskit baselines always run on the CPU); default cpu")
    ap.add_argument("--only", nargs="*", choices=["phi", "attention", "optimizer", "epoch"], default=None)
    args = ap.parse_args(argv)
    device = resolve_device(args.device)  # refuses cuda without a GPU before any work
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    repeat = 3 if args.quick else 20
    started = now()
    t0 = time.perf_counter()
    parts = {"phi": lambda: bm.phi_rows(args.quick, repeat, device),
             "attention": lambda: bm.attention_rows(args.quick, repeat, device),
             "optimizer": lambda: bm.optimizer_rows(args.quick, repeat, device),
             "epoch": lambda: bm.epoch_rows(args.quick, device)}
    rows = [r for name in (args.only or parts) for r in parts[name]()]
    table = pd.DataFrame(rows)
    table["throughput_per_s"] = table["items"] / table["seconds"]
    print(f"sgdq benchmark suite ({'quick' if args.quick else 'full'}) on {device_name(device)}, "
          f"torch {torch.__version__}")
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(table[["group", "name", "seconds", "throughput_per_s"]].to_string(index=False, float_format="%.4g"))
    print()
    for r in table.dropna(subset=["ratio"]).itertuples():
        print(f"ratio  {r.name}  /  {r.baseline or '-'}:  {r.ratio:.3g}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = device_slug(device) + ("-quick" if args.quick else "")
    extra = {}
    if args.only and (out / f"{name}.csv").exists():
        # a partial rerun replaces only its own groups; the other rows (and their provenance) stay
        kept = pd.read_csv(out / f"{name}.csv")
        kept = kept[~kept["group"].isin(set(table["group"]))]
        table = pd.concat([kept, table], ignore_index=True)
        old = out / f"{name}.provenance.json"
        extra = {"parts_rerun": args.only, "earlier_parts": json.loads(old.read_text()) if old.exists() else None}
    atomic_write(out / f"{name}.csv", table.to_csv(index=False, float_format="%.6g"))
    atomic_write(out / f"{name}.provenance.json", json.dumps(record(
        device, code=CODE["benchmark"], quick=args.quick, repeat=repeat, started_at=started,
        wall_time_s=round(time.perf_counter() - t0, 1),
        threads=torch.get_num_threads(), **extra), indent=2) + "\n")
    print(f"\nwrote {out / (name + '.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
