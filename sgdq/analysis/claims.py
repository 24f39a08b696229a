"""The paper's quantitative claims (``data/claims.yaml``) set against our results, with verdicts.

Verdict rules (one per ``criterion`` in the claims file):

* ``within``: *reproduced* if our estimate lies within ``tolerance`` of the paper's value,
  else *not reproduced*;
* ``direction_significant``: *reproduced* if the paired 95 % CI over seeds lies entirely on
  the claimed side of zero; *not reproduced* if the paper's own value lies outside our CI
  (the claimed effect is excluded); otherwise *inconclusive*.

Too few runs for an interval (fewer than 2 seeds) give *inconclusive*; a claim about an
absolute value that only the paper's own model can reproduce (``requires_model``) is *not
testable here* with any other model.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import yaml

from ..experiments.provenance import repo_root
from . import stats


def load_claims(path: Path | None = None, experiment: str | None = None) -> list[dict]:
    path = Path(path) if path else repo_root() / "data" / "claims.yaml"
    claims = yaml.safe_load(path.read_text())
    return [c for c in claims if experiment is None or c["experiment"] == experiment]


def _estimate_llm(claim: dict, metrics: pd.DataFrame) -> tuple[float, float, float, int]:
    """Experiment 2: (estimate, ci_low, ci_high, n_steps); intervals over steps, paired by step."""
    wide = metrics.pivot(index="step", columns="optimizer", values="loss")
    mine = wide[claim["optimizer"]].dropna()
    if claim["metric"] == "mean_loss":
        m, lo, hi = stats.mean_ci(mine)
        return m, lo, hi, len(mine)
    both = wide[[claim["optimizer"], claim["reference"]]].dropna()
    ref_mean = both[claim["reference"]].mean()
    m, lo, hi = stats.mean_ci(both[claim["optimizer"]] - both[claim["reference"]])
    return 100 * m / ref_mean, 100 * lo / ref_mean, 100 * hi / ref_mean, len(both)


def _estimate(claim: dict, runs: pd.DataFrame) -> tuple[float, float, float, int]:
    """(estimate, ci_low, ci_high, n_seeds) in the claim's unit."""
    if claim["experiment"] == "llm_finetuning":
        return _estimate_llm(claim, runs)
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


def evaluate(runs: pd.DataFrame, experiment: str, profile: str, claims: list[dict] | None = None,
             model: str | None = None) -> pd.DataFrame:
    """One row per claim of ``experiment``: the paper's value, ours with its CI, the verdict.

    ``runs`` is :func:`sgdq.analysis.stats.per_run` output for experiment 1 and the per-step
    ``metrics.csv`` for experiment 2 (``model`` names the model that was fine-tuned).
    ``n_seeds`` counts seeds for experiment 1 and paired training steps for experiment 2.
    """
    rows = []
    for c in claims or load_claims(experiment=experiment):
        est, lo, hi, n = _estimate(c, runs)
        needed = c.get("requires_model")
        v = verdict(c, est, lo, hi)
        reason = ""
        if needed and model != needed:
            v, reason = "not testable here", f"an absolute value of {needed}; this run used {model}"
        rows.append(dict(claim_id=c["id"], claim=c["claim"], unit=c["unit"], paper_value=c["value"],
                         reproduced_value=est, ci_low=lo, ci_high=hi, n_seeds=n, profile=profile, verdict=v,
                         reason=reason))
    return pd.DataFrame(rows)


def sentence(row) -> str:
    """A plain-words line for one evaluated claim."""
    fmt = ".4f" if row.unit == "loss" else (".3g" if row.claim_id.startswith("exp2") else ".1f")
    ci = (f" (95 % CI {row.ci_low:{fmt}} to {row.ci_high:{fmt}})"
          if math.isfinite(row.ci_low) and math.isfinite(row.ci_high) else "")
    count = "steps" if row.claim_id.startswith("exp2") else "seeds"
    why = f" [{row.reason}]" if getattr(row, "reason", "") else ""
    return (f"{row.verdict.upper()}: {row.claim}. Paper: {row.paper_value:g} {row.unit}; "
            f"ours: {row.reproduced_value:{fmt}} {row.unit}{ci}, {row.n_seeds} {count}, {row.profile} profile."
            f"{why}")
