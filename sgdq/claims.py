"""The paper's quantitative claims (``data/claims.yaml``) set against our results, with verdicts.

Verdict rules (one per ``criterion`` in the claims file):

* ``within``: *reproduced* if our estimate lies within ``tolerance`` of the paper's value,
  else *not reproduced*;
* ``direction_significant``: *reproduced* if the paired 95 % CI over seeds lies entirely on
  the claimed side of zero; *not reproduced* if the paper's own value lies outside our CI
  (the claimed effect is excluded); otherwise *inconclusive*.

Too few runs for an interval (fewer than 2 seeds) give *inconclusive*.

Used in: ``notebooks/05_text_classification``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import yaml

from . import runtime, stats


def load_claims(path: Path | None = None, experiment: str | None = None) -> list[dict]:
    path = Path(path) if path else runtime.repo_root() / "data" / "claims.yaml"
    claims = yaml.safe_load(path.read_text())
    return [c for c in claims if experiment is None or c["experiment"] == experiment]


def _estimate(claim: dict, runs: pd.DataFrame) -> tuple[float, float, float, int]:
    """(estimate, ci_low, ci_high, n_seeds) in the claim's unit."""
    opt, ref, metric = claim["optimizer"], claim.get("reference"), claim["metric"]
    mine = runs[runs.optimizer == opt]
    if metric == "final_accuracy":
        m, lo, hi = stats.mean_ci(100 * mine.final_accuracy)
        return m, lo, hi, len(mine)
    if metric == "epochs_to_target":
        m, lo, hi = stats.mean_ci(mine.epochs_to_target_censored)
        return m, lo, hi, len(mine)
    column, ratio = {
        "final_accuracy_difference": ("final_accuracy", False),
        "epochs_to_target_ratio": ("epochs_to_target_censored", True),
        "epoch_seconds_ratio": ("epoch_seconds", True),
        "seconds_to_target_ratio": ("seconds_to_target", True),
    }[metric]
    row = stats.paired(runs, column, reference=ref, ratio=ratio).loc[opt]
    return 100 * row["mean"], 100 * row.ci_low, 100 * row.ci_high, int(row.n_seeds)


def verdict(claim: dict, estimate: float, lo: float, hi: float) -> str:
    if not math.isfinite(estimate):
        return "inconclusive"
    if claim["criterion"] == "within":
        return "reproduced" if abs(estimate - claim["value"]) <= claim["tolerance"] else "not reproduced"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "inconclusive"
    positive = claim["direction"] == "positive"
    if (lo > 0) if positive else (hi < 0):
        return "reproduced"
    if not lo <= claim["value"] <= hi:
        return "not reproduced"
    return "inconclusive"


def evaluate(runs: pd.DataFrame, experiment: str, profile: str, claims: list[dict] | None = None) -> pd.DataFrame:
    """One row per claim of ``experiment``: the paper's value, ours with its CI, the verdict."""
    rows = []
    for c in claims or load_claims(experiment=experiment):
        est, lo, hi, n = _estimate(c, runs)
        rows.append(dict(claim_id=c["id"], claim=c["claim"], unit=c["unit"], paper_value=c["value"],
                         reproduced_value=est, ci_low=lo, ci_high=hi, n_seeds=n, profile=profile,
                         verdict=verdict(c, est, lo, hi)))
    return pd.DataFrame(rows)


def sentence(row) -> str:
    """A plain-words line for one evaluated claim."""
    ci = (f" (95 % CI {row.ci_low:.1f} to {row.ci_high:.1f})"
          if math.isfinite(row.ci_low) and math.isfinite(row.ci_high) else "")
    return (f"{row.verdict.upper()}: {row.claim}. Paper: {row.paper_value:g} {row.unit}; "
            f"ours: {row.reproduced_value:.1f} {row.unit}{ci}, {row.n_seeds} seeds, {row.profile} profile.")
