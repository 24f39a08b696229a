"""The benchmark runs and prints its ratios (no absolute timing is asserted)."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_benchmark_prints_ratios(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_core.py"), "--quick",
                          "--csv", str(tmp_path / "b.csv")], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    ratios = re.findall(r"^ratio\s+(.+?)\s+([0-9.]+)$", out.stdout, flags=re.M)
    assert len(ratios) == 4, out.stdout
    assert all(float(v) > 0 for _, v in ratios)
    rows = (tmp_path / "b.csv").read_text().splitlines()
    assert rows[0] == "kind,name,value" and sum(r.startswith("ratio,") for r in rows) == 4
