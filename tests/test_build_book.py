"""scripts/build_book.py: nothing good is replaced by a failed run."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _nb(tag):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["tag"] = tag
    return nbformat.writes(nb)


def _tag(path):
    return json.loads(path.read_text())["metadata"]["tag"]


def _module():
    spec = importlib.util.spec_from_file_location("build_book", ROOT / "scripts" / "build_book.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_refused_before_any_chapter_is_touched(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_book.py"), "--device", "cuda",
                          "--out", str(tmp_path), "--no-book"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "no CUDA GPU" in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_failed_notebook_keeps_the_previous_executed_copy(tmp_path, monkeypatch):
    import papermill

    bb = _module()
    monkeypatch.setattr(bb, "STAGING", tmp_path / "staging")
    out_dir = tmp_path / "chapters"
    out_dir.mkdir()
    good = out_dir / "01_math.ipynb"
    good.write_text(_nb("good"))

    def failing(src, dst, **kw):
        Path(dst).write_text(_nb("failed"))
        raise RuntimeError("boom in cell 3")
    monkeypatch.setattr(papermill, "execute_notebook", failing)
    status = bb.execute("01_math", "smoke", "cpu", out_dir)
    assert not status["success"] and "boom in cell 3" in status["error"] and status["kept_previous"]
    assert _tag(good) == "good"
    assert (tmp_path / "staging" / "chapters-01_math.ipynb").exists()

    def passing(src, dst, **kw):
        Path(dst).write_text(_nb("new"))
    monkeypatch.setattr(papermill, "execute_notebook", passing)
    assert bb.execute("01_math", "smoke", "cpu", out_dir)["success"]
    assert _tag(good) == "new"
