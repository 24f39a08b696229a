"""The claims scorecard: every claim of ``data/claims.yaml`` against the stored results.

``python -m sgdq.analysis.scorecard`` (run by the book build) writes ``data/results/scorecard.csv`` and
the table the book's front page includes, ``book/_scorecard.md``. For each experiment it uses
the largest profile whose results are stored (paper, then cpu, then smoke), so a GPU run
replaces the CPU numbers as soon as it is committed.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd

from ..experiments import llm_finetuning as lf
from ..experiments import text_classification as tc
from ..experiments.provenance import repo_root
from ..experiments.store import ResultsStore, atomic_write
from . import claims, stats, tables

COLUMNS = ["claim_id", "paper_value", "reproduced_value", "ci_low", "ci_high", "n_seeds", "profile", "verdict",
           "reason", "rule"]
CHAPTERS = {"text_classification": "chapters/05_text_classification", "llm_finetuning": "chapters/06_llm_finetuning"}
# the section of the chapter that judges a claim (a MyST label set in the notebook), by metric
SECTIONS = {"epoch_seconds_ratio": "exp1-time", "seconds_to_target_ratio": "exp1-time"}
EXPERIMENT_SECTIONS = {"text_classification": "exp1-verdicts", "llm_finetuning": "exp2-verdicts"}
MODEL_NAMES = {lf.EMBEDDED: "SmolLM2-135M-Instruct (the embedded model)"}
PREFERENCE = ("paper", "cpu", "smoke")


def _profile_with_results(results_dir) -> str | None:
    for profile in PREFERENCE:
        if (results_dir(profile) / "metrics.csv").exists():
            return profile
    return None


def build() -> pd.DataFrame:
    """Evaluate every claim; claims without stored results are 'not testable here'."""
    frames = []
    profile = _profile_with_results(tc.results_dir)
    if profile:
        runs = stats.per_run(tc.load_metrics(tc.results_dir(profile)), target=0.9)
        frames.append(claims.evaluate(runs, "text_classification", profile))
    profile = _profile_with_results(lf.results_dir)
    if profile:
        store = ResultsStore(lf.results_dir(profile))
        metrics, model = store.load("metrics"), store.provenance()["config"]["model"]
        skipped = lf.config_for(profile).skipped(store.load("magnitudes"))
        frames.append(claims.evaluate(metrics, "llm_finetuning", profile, model=MODEL_NAMES.get(model, model),
                                      absent_reasons=skipped))
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    missing = [c for c in claims.load_claims() if c["id"] not in set(table.claim_id)]
    if missing:
        absent = pd.DataFrame([dict(claim_id=c["id"], paper_value=c["value"], verdict="not testable here",
                                    reason="no stored results for this experiment", rule=claims.rule(c))
                               for c in missing])
        table = pd.concat([table, absent], ignore_index=True)
    return table[COLUMNS]


def to_csv(table: pd.DataFrame) -> str:
    return table.to_csv(index=False, float_format="%.6g")


def _paper(c: dict, unit: str) -> str:
    """The paper's value, with its own uncertainty where it gives one."""
    return f"{c['value']:g}" + (f" ± {c['spread']:g}" if "spread" in c else "") + unit


def summary_sentence(table: pd.DataFrame, by_id: dict) -> str:
    """A short plain summary of the verdicts, per experiment."""
    parts = []
    for experiment, name in (("text_classification", "experiment 1 (text classification)"),
                             ("llm_finetuning", "experiment 2 (LLM fine-tuning)")):
        rows = table[[by_id[c]["experiment"] == experiment for c in table.claim_id]]
        if not len(rows):
            continue
        counts = rows.verdict.value_counts()
        parts.append(f"for {name}, " + ", ".join(f"{counts[v]} {v}" for v in claims.VERDICTS if v in counts))
    return ("In short: " + "; ".join(parts) + ". A relative claim counts as reproduced only when our 95 % interval "
            "excludes zero on the claimed side; values our own task was calibrated to give, and absolute numbers "
            "of a model we cannot run here, are not testable.")


def markdown(table: pd.DataFrame) -> str:
    """The front page's table: claim (linked to the section that judges it), paper, ours (95 % CI),
    runs, verdict, and why, with the rule that decided it."""
    by_id = {c["id"]: c for c in claims.load_claims()}
    counts = table.verdict.value_counts()
    lines = [summary_sentence(table, by_id), "",
             "Of the paper's " + str(len(table)) + " quantitative claims (each reading counted): "
             + "; ".join(f"{counts[v]} {v}" for v in claims.VERDICTS if v in counts) + ".", "",
             "| claim | paper | ours (95 % CI) | runs | verdict | why, and the rule that decided it |",
             "|---|---:|---:|---:|---|---|"]
    for row in table.itertuples():
        c = by_id[row.claim_id]
        fmt = ".4f" if c["unit"] == "loss" else (".3g" if c["experiment"] == "llm_finetuning" else ".1f")
        ours = "–" if not isinstance(row.reproduced_value, float) or math.isnan(row.reproduced_value) else \
            f"{row.reproduced_value:{fmt}}"
        if isinstance(row.ci_low, float) and math.isfinite(row.ci_low):
            ours += f" ({row.ci_low:{fmt}} to {row.ci_high:{fmt}})"
        unit = "" if c["unit"] in ("loss",) else f" {c['unit']}"
        runs = f"{int(row.n_seeds)} {'data orders' if c['experiment'] == 'llm_finetuning' else 'seeds'}" \
            if isinstance(row.n_seeds, (int, float)) and math.isfinite(row.n_seeds) and row.n_seeds > 0 else "–"
        reason = row.reason if isinstance(row.reason, str) else ""
        section = SECTIONS.get(c["metric"], EXPERIMENT_SECTIONS[c["experiment"]])
        reading = f" ({c['reading']})" if c.get("reading") else ""
        link = f"{{ref}}`{c['claim']}{reading} <{section}>` ({c['where']})"
        ours_unit = unit if ours != "–" else ""
        lines.append(f"| {link} | {_paper(c, unit)} | {ours}{ours_unit} | {runs} | **{row.verdict}** | "
                     f"{reason}. Rule: {row.rule}. |")
    profiles = ", ".join(sorted(set(p for p in table.profile if isinstance(p, str))))
    lines += fallback_notes(table, by_id)
    lines += ["", f"Generated by `python -m sgdq.analysis.scorecard` from `data/claims.yaml` and the stored results "
                  f"(profile: {profiles}); see `data/results/scorecard.csv`. The decision rules were last changed "
                  f"at commit `{claims.rules_commit()}`; see the {{doc}}`methodology` page."]
    return "\n".join(lines) + "\n"


def fallback_notes(table: pd.DataFrame, by_id: dict) -> list[str]:
    """A plain warning for every experiment whose verdicts come from the smoke profile: those
    results are a seconds-long check of the code, not a test of the paper."""
    notes = []
    for experiment in CHAPTERS:
        ids = [c for c, v in by_id.items() if v["experiment"] == experiment]
        used = set(table[table.claim_id.isin(ids)].profile.dropna())
        if "smoke" in used:
            notes += ["", f"**Warning:** no `cpu` or `paper` results of {experiment.replace('_', ' ')} are stored, so "
                          "its rows above use the `smoke` profile: a seconds-long check of the code, too small to "
                          "test the paper. Rerun that chapter at `profile=cpu` for real verdicts."]
    return notes


def rules_markdown() -> str:
    """The decision rule of every claim, with its justification, for the Methodology page."""
    lines = ["| claim | rule | why |", "|---|---|---|"]
    for c in claims.load_claims():
        why = c.get("calibrated") or c.get("why_tolerance") or (
            "a relative claim: judged against no effect and against the paper's value"
            if c["criterion"] == "direction_significant" else "")
        if c.get("requires_model"):
            why = (why + "; " if why else "") + "an absolute value of the paper's own model"
        lines.append(f"| {c['claim']} ({c['where']}) | {claims.rule(c)} | {why} |")
    lines += ["", f"These rules were last changed at commit `{claims.rules_commit()}` "
                  "(`data/claims.yaml` and `sgdq/analysis/claims.py`)."]
    return "\n".join(lines) + "\n"


def write(root: Path | None = None) -> pd.DataFrame:
    root = Path(root) if root else repo_root()
    table = build()
    atomic_write(root / "data" / "results" / "scorecard.csv", to_csv(table))
    atomic_write(root / "book" / "_scorecard.md", markdown(table))
    atomic_write(root / "book" / "_rules.md", rules_markdown())
    atomic_write(root / "book" / "_profiles.md", tables.profiles_table(root).to_markdown() + "\n")
    return table


if __name__ == "__main__":
    t = write()
    print(t[["claim_id", "profile", "verdict"]].to_string(index=False))
    sys.exit(0)
