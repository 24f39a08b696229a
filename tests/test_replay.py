"""Replaying stored seeds of experiment 1 (sgdq.experiments.replay): identical numbers revalidate
the results for today's code; one differing number does not."""

import json

import pandas as pd
import pytest

from sgdq.experiments import provenance, replay
from sgdq.experiments import text_classification as tc


@pytest.fixture
def stored(tmp_path, monkeypatch):
    monkeypatch.setattr(replay, "git_commit", lambda: "abc1234")
    cfg = tc.config_for("smoke", seeds=2, epochs=2, optimizers=("Adam", "SGD λ=0.5"), workers=1)
    tc.run_experiment(cfg, tmp_path, progress=False)
    return tmp_path


def test_an_identical_replay_revalidates_the_results(stored):
    out = replay.replay(stored, seeds=[1])
    assert out["identical"] and out["differences"].empty
    prov = json.loads((stored / "provenance.json").read_text())
    (entry,) = prov["revalidated"]
    assert entry["seeds"] == [1] and entry["commit"] == "abc1234" and entry["rows"] == 4
    assert entry["code_fingerprint"] == provenance.code_fingerprint(code=provenance.CODE["text_classification"])


def test_one_changed_number_is_caught_and_nothing_is_written(stored):
    path = stored / "metrics.csv"
    metrics = pd.read_csv(path)
    row = metrics.index[(metrics.optimizer == "SGD λ=0.5") & (metrics.seed == 0) & (metrics.epoch == 2)][0]
    metrics.loc[row, "train_loss"] += 1e-6
    metrics.to_csv(path, index=False)
    before = (stored / "provenance.json").read_text()
    out = replay.replay(stored, seeds=[0])
    assert not out["identical"]
    diff = out["differences"]
    assert list(diff[["optimizer", "seed", "epoch", "column"]].itertuples(index=False, name=None)) == [
        ("SGD λ=0.5", 0, 2, "train_loss")]
    assert (stored / "provenance.json").read_text() == before


def test_stale_results_accept_a_replayed_fingerprint(tmp_path):
    code = ["sgdq/method"]
    (tmp_path / "sgdq" / "method").mkdir(parents=True)
    (tmp_path / "sgdq" / "method" / "a.py").write_text("x = 1\n")
    now_print = provenance.code_fingerprint(tmp_path, tuple(code))
    folder = tmp_path / "data" / "results" / "exp"
    folder.mkdir(parents=True)
    prov = dict(code_fingerprint="old", fingerprinted_code=code, git_commit="1234567")
    (folder / "provenance.json").write_text(json.dumps(prov))
    assert [r["status"] for r in provenance.stale_results(tmp_path)] == ["code changed since"]
    prov["revalidated"] = [dict(code_fingerprint=now_print)]
    (folder / "provenance.json").write_text(json.dumps(prov))
    assert provenance.stale_results(tmp_path) == []
    assert provenance.results_index(tmp_path)[0]["code"] == "as now (replayed)"
