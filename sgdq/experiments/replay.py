"""Replaying stored runs of experiment 1 to show that today's code still gives them.

When the code an experiment's results depend on changes (its fingerprint, see
:mod:`sgdq.experiments.provenance`), the stored results are flagged as made by other code.
Often the change cannot touch them: an option added to the optimizer with its default kept.
:func:`replay` retrains some stored seeds with today's code, on a clean checkout, and compares
every deterministic column (loss, accuracy, perturbation size; not the wall-clock timings)
with the stored rows *as written to the CSV file*. Only if every value is identical does it
add an entry to the results' provenance under ``revalidated`` (the commit, today's
fingerprint, the seeds replayed); :func:`~sgdq.experiments.provenance.stale_results` then
treats those results as current for that fingerprint. A single differing value leaves the
provenance untouched and reports where the replay differs: the results must be regenerated.

Per-seed numbers differ between CPUs, so a replay only means something on the kind of machine
that made the results; the device is recorded beside it.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import fields
from pathlib import Path

import pandas as pd

from . import text_classification as tc
from .provenance import CODE, code_fingerprint, device_name, git_commit, now
from .store import ResultsStore, atomic_write

DETERMINISTIC = ["optimizer", "seed", "epoch", "train_loss", "test_accuracy", "perturbation_ratio"]


def _config(prov: dict, seeds: list[int]) -> tc.Config:
    known = {f.name for f in fields(tc.Config)}
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in prov["config"].items() if k in known}
    first = min(seeds)
    if sorted(seeds) != list(range(first, first + len(seeds))):
        raise ValueError(f"seeds must be consecutive, got {seeds}")
    return tc.Config(**(cfg | dict(seeds=len(seeds), first_seed=first, workers=1)))


def replay(results_dir: Path, seeds=(0,), experiment: str = "text_classification", progress: bool = False) -> dict:
    """Retrain ``seeds`` of the stored results in ``results_dir`` and compare. Returns
    ``{"identical": bool, "differences": DataFrame, "entry": dict}``; the entry is appended to
    the stored provenance when identical (and the checkout is clean)."""
    store = ResultsStore(results_dir)
    prov = store.provenance()
    if prov is None:
        raise FileNotFoundError(f"{results_dir} holds no provenance.json: nothing to replay")
    cfg = _config(prov, list(seeds))
    commit, fingerprint = git_commit(), code_fingerprint(code=CODE[experiment])  # the code that replays
    stored = tc.load_metrics(store.dir)
    stored = stored[stored.seed.isin(seeds)]
    with tempfile.TemporaryDirectory() as tmp:
        tc.run_experiment(cfg, Path(tmp), progress=progress)
        again = tc.load_metrics(Path(tmp))
    key = ["optimizer", "seed", "epoch"]
    merged = stored[DETERMINISTIC].merge(again[DETERMINISTIC], on=key, how="outer", suffixes=("_stored", "_replay"),
                                         indicator=True)
    diffs = []
    for col in DETERMINISTIC[3:]:
        a, b = merged[f"{col}_stored"], merged[f"{col}_replay"]
        differ = ~((a == b) | (a.isna() & b.isna())) | (merged["_merge"] != "both")
        if differ.any():
            diffs.append(merged.loc[differ, key].assign(column=col, stored=a[differ], replay=b[differ]))
    differences = pd.concat(diffs, ignore_index=True) if diffs else pd.DataFrame()
    entry = dict(commit=commit, code_fingerprint=fingerprint, seeds=list(seeds),
                 arms=sorted(set(again.optimizer)), columns=DETERMINISTIC[3:], rows=len(again),
                 device=device_name(cfg.torch_device()), at=now())
    identical = differences.empty and len(again) == len(stored) > 0
    if identical and "dirty" not in commit:
        prov.setdefault("revalidated", []).append(entry)
        atomic_write(store.dir / "provenance.json", json.dumps(prov, indent=2, default=str) + "\n")
    return dict(identical=identical, differences=differences, entry=entry)


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Replay stored seeds of experiment 1 with today's code")
    ap.add_argument("results_dir")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = ap.parse_args(argv)
    out = replay(Path(args.results_dir), args.seeds, progress=True)
    print("identical" if out["identical"] else f"DIFFERENT:\n{out['differences'].head(20)}")
    return 0 if out["identical"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
