"""The benchmark suite runs (reduced) and prints its ratios; no absolute timing is asserted."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def test_quick_suite_prints_ratios_and_writes_its_files(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-3000:]
    ratios = re.findall(r"^ratio  (.+?)  /  (.+?):  ([0-9.e+-]+)$", out.stdout, flags=re.M)
    names = {name for name, _, _ in ratios}
    for expected in ("Fourier path, forward+backward", "torch statevector, forward+backward",
                     "quantum, forward+backward", "quantum, op-by-op reference, forward+backward",
                     "SuperpositionalAdam (default, fused), step, Table II classifier",
                     "SuperpositionalAdam (default, fused), step, 200 tensors of 64×64",
                     "state bytes per parameter, SuperpositionalAdam, Table II classifier", "epoch, SGD λ=0.5"):
        assert expected in names, out.stdout
    assert all(float(v) > 0 for _, _, v in ratios)
    csv = next(tmp_path.glob("*-quick.csv"))
    table = pd.read_csv(csv)
    assert {"group", "name", "seconds", "items", "baseline", "ratio", "throughput_per_s"} <= set(table.columns)
    assert set(table.group) == {"phi", "phi (fixed cost)", "attention", "optimizer", "experiment 1"}
    # the optimizer keeps exactly AdamW's state (memory ratio is a count, not a timing)
    mem = table[table.name.str.startswith("state bytes")]
    assert (mem.ratio == 1.0).all() and (mem.value == 8.0).all()
    assert csv.with_suffix(".provenance.json").exists()


def test_targets_are_judged_from_the_ratios():
    from sgdq.analysis.tables import TARGETS, targets

    ratio = {"Fourier path, forward+backward": 2e4, "torch statevector, forward+backward": 299.0,
             "quantum, forward+backward": 2.0,
             "SuperpositionalAdam (default, fused), step, SmolLM2-135M shapes": 1.05,
             "SuperpositionalAdam (default, fused), compiled step, SmolLM2-135M shapes": 1.2,
             "SuperpositionalAdam (default, fused), step, 200 tensors of 64×64": 1.25,
             "SuperpositionalAdam (default, fused), step, Table II classifier": 1.6,
             "state bytes per parameter, SuperpositionalAdam, Table II classifier": 1.0, "epoch, SGD λ=0.5": 1.06}
    assert {t[1] for t in TARGETS} == set(ratio)
    out = targets(pd.DataFrame({"name": list(ratio), "ratio": list(ratio.values())}))
    assert out["met"].tolist() == [True, False, True, False, True, False, True, False, True, False]
    assert out["target"].tolist() == [t[0] for t in TARGETS]
    assert targets(pd.DataFrame({"name": list(ratio)[:2], "ratio": [1.0, 1.0]}))["target"].tolist() == \
        [t[0] for t in TARGETS[:2]]


def test_cuda_without_a_gpu_is_refused_before_any_work(tmp_path):
    import torch

    if torch.cuda.is_available():
        import pytest

        pytest.skip("this machine has a GPU")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--device", "cuda",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode != 0
    assert "device='cuda'" in out.stderr and "no CUDA GPU" in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_quick_suite_runs_on_cuda(tmp_path):
    import pytest
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--device", "cuda",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=900,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ratio  Fourier path, forward+backward" in out.stdout
    assert next(tmp_path.glob("cuda-*-quick.csv")).exists()


def test_a_partial_rerun_keeps_the_other_groups(tmp_path):
    """``--only attention`` replaces the attention rows and keeps every other row of the file."""
    import json

    from benchmarks.run import device_slug
    from sgdq.experiments.config import resolve_device

    name = device_slug(resolve_device("cpu")) + "-quick"
    old = pd.DataFrame({"group": ["optimizer", "attention"], "name": ["kept row", "old attention row"],
                        "seconds": [1.0, 2.0], "items": [1, 1], "baseline": ["", ""], "ratio": [1.0, 1.0]})
    old.to_csv(tmp_path / f"{name}.csv", index=False)
    (tmp_path / f"{name}.provenance.json").write_text(json.dumps({"git_commit": "earlier"}))
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--only", "attention",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-3000:]
    table = pd.read_csv(tmp_path / f"{name}.csv")
    assert "kept row" in set(table.name) and "old attention row" not in set(table.name)
    assert "quantum, forward+backward" in set(table.name)
    prov = json.loads((tmp_path / f"{name}.provenance.json").read_text())
    assert prov["parts_rerun"] == ["attention"] and prov["earlier_parts"]["git_commit"] == "earlier"
