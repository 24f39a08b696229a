"""The paper's quantitative claims (``data/claims.yaml``) set against our results, with verdicts.

Every verdict comes from our 95 % interval, never from a point estimate alone (see
:func:`verdict` for the cases, and the book's Methodology page):

* ``within`` (an absolute value ± a tolerance justified per claim): the whole interval inside
  the tolerance, outside it, or straddling a bound;
* ``direction_significant`` (a relative effect): the interval against zero *and* against the
  paper's value — reproduced, smaller than claimed, not reproduced, contradicted, inconclusive.

A value our own task design was calibrated to give (``calibrated``) and an absolute value
only the paper's own model can give (``requires_model``) are *not testable here*, with the
reason on the scorecard. The rules were fixed before the results they judge; the scorecard
names the commit (:func:`rules_commit`).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import yaml

from ..experiments.provenance import repo_root
from . import stats


def paper_values(experiment: str | None = None) -> dict[str, float]:
    """Claim id → the paper's number, for prose that quotes the paper without typing it."""
    return {c["id"]: c["value"] for c in load_claims(experiment=experiment)}


def load_claims(path: Path | None = None, experiment: str | None = None) -> list[dict]:
    path = Path(path) if path else repo_root() / "data" / "claims.yaml"
    claims = yaml.safe_load(path.read_text())
    return [c for c in claims if experiment is None or c["experiment"] == experiment]


def llm_runs(metrics: pd.DataFrame) -> pd.DataFrame:
    """Experiment 2, one row per (optimizer, seed): the run's mean training loss (Table I's
    statistic) over its logged steps."""
    return metrics.groupby(["optimizer", "seed"], sort=False).loss.mean().rename("mean_loss").reset_index()


def noise_floor(metrics: pd.DataFrame, reference: str = "AdamW") -> float:
    """The data-order noise floor in %: the standard deviation of ``reference``'s mean loss
    across data orders, relative to its mean (NaN with fewer than two orders)."""
    runs = llm_runs(metrics)
    x = runs[runs.optimizer == reference].mean_loss
    return 100 * float(x.std(ddof=1) / x.mean()) if len(x) > 1 else math.nan


def paired_relative(metrics: pd.DataFrame, optimizer: str, reference: str = "AdamW") -> pd.Series:
    """Per data order: 100·(optimizer's mean loss / reference's − 1), paired by seed."""
    wide = llm_runs(metrics).pivot(index="seed", columns="optimizer", values="mean_loss")
    both = wide[[optimizer, reference]].dropna()
    return 100 * (both[optimizer] / both[reference] - 1)


def _estimate_llm(claim: dict, metrics: pd.DataFrame) -> tuple[float, float, float, int]:
    """Experiment 2: (estimate, ci_low, ci_high, n_data_orders); t-intervals over data orders."""
    if claim["metric"] == "mean_loss":
        runs = llm_runs(metrics)
        mine = runs[runs.optimizer == claim["optimizer"]].mean_loss
        m, lo, hi = stats.mean_ci(mine)
        return m, lo, hi, len(mine)
    diff = paired_relative(metrics, claim["optimizer"], claim["reference"])
    m, lo, hi = stats.mean_ci(diff)
    return m, lo, hi, len(diff)


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
        m, lo, hi = stats.mean_interval(runs, "epochs_to_target", opt)
        return m, lo, hi, len(mine)
    if metric == "final_accuracy_difference":
        row = stats.paired(runs[runs.optimizer.isin([opt, ref])], "final_accuracy", reference=ref).loc[opt]
        return 100 * row["mean"], 100 * row.ci_low, 100 * row.ci_high, int(row.n_seeds)
    m, lo, hi, n = stats.ratio_of_means(runs, RATIO_COLUMNS[metric], opt, ref)
    return 100 * m, 100 * lo, 100 * hi, n


VERDICTS = ("reproduced", "smaller than claimed", "not reproduced", "contradicted", "inconclusive",
            "not testable here")


def rule(claim: dict) -> str:
    """The rule that decides this claim, in words (shown on the scorecard)."""
    unit = "" if claim["unit"] == "loss" else f" {claim['unit']}"
    if claim.get("reading"):
        return f"{_rule(claim, unit)}; reading: {claim['reading']}"
    return _rule(claim, unit)


def _rule(claim: dict, unit: str) -> str:
    if claim.get("calibrated"):
        return "none (a calibrated value)"
    if claim.get("requires_model"):
        return f"only {claim['requires_model']} can give this absolute value"
    if claim["criterion"] == "within":
        return f"95 % CI inside {claim['value']:g} ± {claim['tolerance']:g}{unit}"
    return f"95 % CI against 0 and against {claim['value']:g}{unit}"


def verdict(claim: dict, estimate: float, lo: float, hi: float) -> tuple[str, str]:
    """(verdict, reason) from our 95 % CI [lo, hi], never from the estimate alone.

    * ``within`` (an absolute value, ± ``tolerance``): *reproduced* when the whole CI lies
      inside value ± tolerance; *not reproduced* when the whole CI lies outside it;
      *inconclusive* when the CI straddles a bound.
    * ``direction_significant`` (a relative effect v ≠ 0): *reproduced* when the CI excludes 0
      on v's side and contains v (or lies beyond it: a larger effect); *smaller than claimed*
      when the CI excludes both 0 and v, lying between them (a real but smaller effect);
      *contradicted* when the CI excludes 0 on the other side; *not reproduced* when the CI
      contains 0 but excludes v (no effect shown, and the claimed one ruled out);
      *inconclusive* when it contains both 0 and v (too few runs to tell; the power
      calculation says how many would).
    """
    if not (math.isfinite(lo) and math.isfinite(hi) and math.isfinite(estimate)):
        return "inconclusive", "too few runs for an interval"
    v = claim["value"]
    if claim["criterion"] == "within":
        low, high = v - claim["tolerance"], v + claim["tolerance"]
        if low <= lo and hi <= high:
            return "reproduced", "our whole interval lies within the tolerance"
        if hi < low or lo > high:
            return "not reproduced", "our whole interval lies outside the tolerance"
        return "inconclusive", "our interval straddles a tolerance bound"
    sign = 1.0 if v > 0 else -1.0
    a, b = sorted((sign * lo, sign * hi))  # the CI with the claimed direction made positive
    target = sign * v
    if a > 0:
        if b < target:
            return "smaller than claimed", "a real effect in the claimed direction, but smaller than claimed"
        return "reproduced", "an effect in the claimed direction" + (", larger than claimed" if a > target else "")
    if b < 0:
        return "contradicted", "a real effect in the opposite direction"
    if b < target:
        return "not reproduced", "no effect shown, and the claimed size is ruled out"
    return "inconclusive", "the interval holds both no effect and the claimed one"


def evaluate(runs: pd.DataFrame, experiment: str, profile: str, claims: list[dict] | None = None,
             model: str | None = None, absent_reasons: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per claim of ``experiment``: the paper's value, ours with its CI, the verdict.

    ``runs`` is :func:`sgdq.analysis.stats.per_run` output for experiment 1 and the per-step
    ``metrics.csv`` for experiment 2 (``model`` names the model that was fine-tuned).
    ``n_seeds`` counts seeds for experiment 1 and data orders for experiment 2, whose relative
    claims also face the data-order noise floor (:func:`noise_floor`). ``absent_reasons``
    (arm → why it was not trained) explains an arm without stored runs.
    """
    rows = []
    floor = noise_floor(runs) if experiment == "llm_finetuning" and len(runs) else math.nan
    for c in claims or load_claims(experiment=experiment):
        arms = [a for a in (c.get("optimizer"), c.get("reference")) if a]
        absent = [a for a in arms if a not in set(runs.optimizer)]
        if absent:
            why = "; ".join((absent_reasons or {}).get(a, f"no stored runs of {a} at this profile") for a in absent)
            rows.append(dict(claim_id=c["id"], claim=c["claim"], unit=c["unit"], paper_value=c["value"],
                             reproduced_value=math.nan, ci_low=math.nan, ci_high=math.nan, n_seeds=0,
                             profile=profile, verdict="not testable here", reason=why, rule=rule(c)))
            continue
        est, lo, hi, n = _estimate(c, runs)
        v, reason = verdict(c, est, lo, hi)
        if c["experiment"] == "llm_finetuning" and c["metric"] == "mean_loss_ratio" \
                and v in ("reproduced", "smaller than claimed") and not abs(est) > floor:
            v, reason = "not reproduced", f"within the data-order noise floor (±{floor:.2g} %)"
        needed = c.get("requires_model")
        if c.get("calibrated"):
            v, reason = "not testable here", f"calibrated: {c['calibrated']}"
        elif needed and model != needed:
            v, reason = "not testable here", f"an absolute value of {needed}; this run fine-tuned {model}"
        rows.append(dict(claim_id=c["id"], claim=c["claim"], unit=c["unit"], paper_value=c["value"],
                         reproduced_value=est, ci_low=lo, ci_high=hi, n_seeds=n, profile=profile, verdict=v,
                         reason=reason, rule=rule(c)))
    return pd.DataFrame(rows)


RATIO_COLUMNS = {  # a ratio metric -> the per-run column whose means it compares
    "epochs_to_target_ratio": "epochs_to_target",
    "epoch_seconds_ratio": "epoch_seconds",
    "seconds_to_target_ratio": "seconds_to_target",
}
# For planning only (the power calculation): the per-seed column and whether it is a ratio.
# Censored runs enter at their censoring time, which understates their time to the target.
RELATIVE_COLUMNS = {
    "final_accuracy_difference": ("final_accuracy", False),
    "epochs_to_target_ratio": ("epochs_observed", True),
    "epoch_seconds_ratio": ("epoch_seconds", True),
    "seconds_to_target_ratio": ("seconds_observed", True),
}


def power_table(runs: pd.DataFrame, power: float = 0.9, experiment: str = "text_classification") -> pd.DataFrame:
    """For each relative claim: the pilot spread of the paired per-seed differences (in the
    claim's unit), the power the stored seeds have to detect the paper's effect, and the seeds
    needed for ``power`` (paired two-sided t-test at 5 %)."""
    rows = []
    for c in load_claims(experiment=experiment):
        if c["criterion"] != "direction_significant" or not {c["optimizer"], c["reference"]} <= set(runs.optimizer):
            continue
        column, ratio = RELATIVE_COLUMNS[c["metric"]]
        diff = 100 * stats.paired_values(runs, column, c["optimizer"], c["reference"], ratio)
        sd = float(diff.std(ddof=1)) if len(diff) > 1 else math.nan
        rows.append(dict(claim_id=c["id"], paper_effect=c["value"], unit=c["unit"], pilot_seeds=len(diff),
                         pilot_sd=sd, power_now=stats.paired_t_power(c["value"], sd, len(diff)),
                         seeds_for_power=stats.seeds_for_power(c["value"], sd, power) if sd > 0 else math.nan))
    return pd.DataFrame(rows).set_index("claim_id")


def rules_commit(root: Path | None = None) -> str:
    """The commit that last changed the decision rules (``data/claims.yaml`` and this module)."""
    import subprocess

    root = Path(root or repo_root())
    try:
        out = subprocess.run(["git", "log", "-n", "1", "--format=%h %cs", "--", "data/claims.yaml",
                              "sgdq/analysis/claims.py"], cwd=root, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "uncommitted"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def sentence(row) -> str:
    """A plain-words line for one evaluated claim."""
    fmt = ".4f" if row.unit == "loss" else (".3g" if row.claim_id.startswith("exp2") else ".1f")
    ci = (f" (95 % CI {row.ci_low:{fmt}} to {row.ci_high:{fmt}})"
          if math.isfinite(row.ci_low) and math.isfinite(row.ci_high) else "")
    count = "data orders" if row.claim_id.startswith("exp2") else "seeds"
    why = f" [{row.reason}]" if getattr(row, "reason", "") else ""
    return (f"{row.verdict.upper()}: {row.claim}. Paper: {row.paper_value:g} {row.unit}; "
            f"ours: {row.reproduced_value:{fmt}} {row.unit}{ci}, {row.n_seeds} {count}, {row.profile} profile."
            f"{why}")
