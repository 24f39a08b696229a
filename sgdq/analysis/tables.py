"""The tables and verdict functions the chapters show, each computed here (and tested), never in
a notebook.

* :func:`comparisons` — every arm of experiment 1 against a reference, paired by seed (chapter 05);
* :func:`comparison_sentences` — those comparisons in plain words (chapter 09);
* :func:`null_table` — where the paper's single-run gaps fall among Adam-against-Adam gaps (chapter 05);
* :func:`effects` — ablation variants as paired differences from the Adam baseline (chapter 07);
* :func:`significant_variants` — which of those differ from Adam at 95 % (chapter 07);
* :func:`toy_summary` / :func:`toy_sentences` — the shallow-minima toy (chapter 01);
* :func:`final_loss_table` — the regression sweeps (chapter 03);
* :func:`mean_loss_table` — Table I beside ours (chapter 06), with :func:`magnitude_table`,
  :func:`order_table`, :func:`arm_differences`, :func:`difference_curves`,
  :func:`heldout_table`, :func:`loss_definition_table` and :func:`schedule_facts`;
* :func:`targets` — the performance targets judged from a benchmark file (chapter 08).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as _st

from . import stats


def rounded(table: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """``table`` rounded for display, without the "-0.0" that rounding a tiny negative gives."""
    return _no_negative_zero(table.round(digits))


def _no_negative_zero(table: pd.DataFrame) -> pd.DataFrame:
    """Adding 0.0 turns a rounded -0.0 (a sign of rounding, not of an effect) into 0.0."""
    floats = table.select_dtypes("float").columns
    table[floats] = table[floats] + 0.0
    return table


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """:func:`stats.summary` for display: two decimals, and the perturbation's relative size in
    scientific notation (rounding would show 1e-4 as 0.0); "–" where an arm has none."""
    summary = stats.summary(runs)
    shown = _no_negative_zero(summary.round(2))
    col = "‖λQ‖ / ‖Adam step‖ (median)"
    shown[col] = summary[col].map(lambda v: "–" if pd.isna(v) else f"{v:.1e}")
    return shown


def config_table(cfg) -> pd.DataFrame:
    """A configuration (a dataclass) as a two-column table a reader can scan, tuples and lists
    joined with commas, instead of one long ``Config(...)`` line."""
    from dataclasses import fields

    def show(v):
        return ", ".join(map(str, v)) if isinstance(v, (tuple, list)) else str(v)

    return pd.DataFrame({"setting": [f.name for f in fields(cfg)],
                         "value": [show(getattr(cfg, f.name)) for f in fields(cfg)]}).set_index("setting")


def comparisons(runs: pd.DataFrame, reference: str = "Adam", arms=None) -> pd.DataFrame:
    """Experiment 1, every arm (or ``arms``) against ``reference``, paired by seed, with the
    rules of ``data/claims.yaml``: the final-accuracy difference (pp, Student-t 95 % CI), and
    epochs to 90 %, time per epoch and time to 90 % as ratios of means (%, paired bootstrap
    95 % CI, censored runs kept), with the log-rank p-value for epochs to 90 %."""
    rows = []
    for arm in arms or [a for a in runs.optimizer.unique() if a != reference]:
        pair = runs[runs.optimizer.isin([arm, reference])]
        acc = stats.paired(pair, "final_accuracy", reference=reference).loc[arm]
        row = {"arm": arm, "reference": reference, "seeds": int(acc.n_seeds),
               "Δ final accuracy (pp)": 100 * acc["mean"], "Δ acc. CI low": 100 * acc.ci_low,
               "Δ acc. CI high": 100 * acc.ci_high}
        for label, column in (("epochs to 90 %", "epochs_to_target"), ("time per epoch", "epoch_seconds"),
                              ("time to 90 %", "seconds_to_target")):
            m, lo, hi, _ = stats.ratio_of_means(pair, column, arm, reference)
            row |= {f"{label} (%)": 100 * m, f"{label} CI low": 100 * lo, f"{label} CI high": 100 * hi}
        row["log-rank p (epochs to 90 %)"] = stats.logrank(pair, "epochs_to_target", arm, reference)
        rows.append(row)
    return _no_negative_zero(pd.DataFrame(rows).set_index("arm"))


def _direction(lo: float, hi: float, lower: str, higher: str) -> str:
    """How a 95 % interval reads: entirely below zero, entirely above, or across it."""
    if hi < 0:
        return lower
    if lo > 0:
        return higher
    return "no difference detectable at 95 %"


def comparison_sentences(table: pd.DataFrame) -> list[str]:
    """One plain sentence per row of a :func:`comparisons` table: the final-accuracy difference and
    the change in epochs to 90 %, each with its 95 % CI and what the interval says."""
    out = []
    for arm, r in table.iterrows():
        acc = _direction(r["Δ acc. CI low"], r["Δ acc. CI high"], "lower", "higher")
        ep_lo, ep_hi = r["epochs to 90 % CI low"], r["epochs to 90 % CI high"]
        if math.isfinite(ep_lo) and math.isfinite(ep_hi):
            epochs = (f"epochs to 90 % {r['epochs to 90 % (%)']:+.1f} % ({ep_lo:+.1f} to {ep_hi:+.1f} %: "
                      f"{_direction(ep_lo, ep_hi, 'fewer', 'more')})")
        else:
            epochs = "epochs to 90 % not estimable (too few runs reach it)"
        out.append(f"{arm} against {r['reference']} ({r['seeds']} seeds): final accuracy "
                   f"{r['Δ final accuracy (pp)']:+.2f} pp (95 % CI {r['Δ acc. CI low']:+.2f} to "
                   f"{r['Δ acc. CI high']:+.2f}: {acc}); {epochs}.")
    return out


# (label, per-run column, as a ratio, the paper's single-run value in the table's unit, scale)
NULL_QUANTITIES = [
    ("final accuracy gap (pp)", "final_accuracy", False, 2.3, 100),
    ("epochs to 90 % (%)", "epochs_to_target_censored", True, -37.8, 100),
]


def null_table(runs: pd.DataFrame, optimizer: str = "Adam") -> pd.DataFrame:
    """What noise alone does to a one-run-each comparison like the paper's: the gaps between two
    runs of ``optimizer`` with different seeds (every ordered pair, unpaired), their central 95 %
    range, and the share of them at least as large as the paper's gap in its direction."""
    rows = []
    for label, column, ratio, paper, scale in NULL_QUANTITIES:
        gaps = scale * stats.null_gaps(runs, column, optimizer, ratio).gap
        rows.append({"quantity": label, "pairs": len(gaps), "null 2.5 %": float(np.percentile(gaps, 2.5)),
                     "null 97.5 %": float(np.percentile(gaps, 97.5)), "paper's gap": paper,
                     "share of null gaps as large": stats.share_beyond(gaps, paper)})
    return _no_negative_zero(pd.DataFrame(rows).set_index("quantity"))


def null_gap_frame(runs: pd.DataFrame, optimizer: str = "Adam") -> pd.DataFrame:
    """The null gaps of :data:`NULL_QUANTITIES` in long form (``quantity``, ``gap``), for a figure."""
    return pd.concat([pd.DataFrame({"quantity": label, "gap": scale * stats.null_gaps(runs, column, optimizer,
                                                                                        ratio).gap})
                      for label, column, ratio, _, scale in NULL_QUANTITIES], ignore_index=True)


def differences_by_epoch(metrics: pd.DataFrame, reference: str = "Adam") -> pd.DataFrame:
    """Per arm, seed and epoch: test accuracy minus ``reference``'s at the same seed and epoch (pp),
    so that curves which coincide are drawn as what they are, differences near zero."""
    wide = metrics.pivot_table(index=["seed", "epoch"], columns="optimizer", values="test_accuracy")
    diff = wide.sub(wide[reference], axis=0).drop(columns=reference) * 100
    return diff.reset_index().melt(id_vars=["seed", "epoch"], var_name="optimizer", value_name="Δ accuracy (pp)")


BASELINE = "identical to the baseline (not tested)"


def effects(metrics: pd.DataFrame, baseline: pd.DataFrame, target: float = 0.9) -> pd.DataFrame:
    """Per variant of one study (one family of tests): final accuracy and its paired difference
    from the Adam baseline (pp, Student-t 95 % CI, paired t-test p-value, Holm-adjusted within
    the family), and epochs to ``target`` as a ratio of restricted means against the baseline
    (%, paired bootstrap 95 % CI; censored runs stay in, see :func:`stats.ratio_of_means`).

    A variant whose test accuracies equal the baseline's at every seed and epoch is shown, marked in
    ``note``, and left out of the tests, so no run is compared with itself or counted twice."""
    rows = []
    base_runs = stats.per_run(baseline.assign(optimizer="baseline"), target)
    base = base_runs.set_index("seed")
    for variant, g in metrics.groupby("variant", sort=False):
        runs = stats.per_run(g.assign(optimizer=variant), target)
        indexed = runs.set_index("seed")
        seeds = indexed.index.intersection(base.index)
        diff = 100 * (indexed.loc[seeds, "final_accuracy"] - base.loc[seeds, "final_accuracy"])
        same = bool((diff == 0).all()) and np.array_equal(
            g.sort_values(["seed", "epoch"]).test_accuracy.to_numpy(),
            baseline[baseline.seed.isin(seeds)].sort_values(["seed", "epoch"]).test_accuracy.to_numpy())
        acc = stats.mean_ci(diff)
        both = pd.concat([runs[runs.seed.isin(seeds)], base_runs[base_runs.seed.isin(seeds)]])
        ep = stats.ratio_of_means(both, "epochs_to_target", variant, "baseline")
        p = math.nan if same or len(seeds) < 2 or diff.std() == 0 else float(_st.ttest_1samp(diff, 0.0).pvalue)
        rows.append({"variant": variant, "final accuracy (%)": 100 * indexed.final_accuracy.mean(),
                     "Δ accuracy vs Adam (pp)": acc[0], "Δ acc. CI low": acc[1], "Δ acc. CI high": acc[2],
                     "p": p, "epochs to 90 % vs Adam (%)": 100 * ep[0], "epochs CI low": 100 * ep[1],
                     "epochs CI high": 100 * ep[2], "seeds": len(seeds), "note": BASELINE if same else ""})
    table = pd.DataFrame(rows).set_index("variant")
    tested = table.p.notna()
    table["p (Holm)"] = math.nan
    table.loc[tested, "p (Holm)"] = stats.holm(table.loc[tested, "p"].to_numpy())
    return _no_negative_zero(table)


def significant_variants(eff: pd.DataFrame, alpha: float = 0.05) -> str:
    """The variants whose final accuracy differs from the baseline after Holm's correction within
    the family (adjusted p < ``alpha``), as a phrase."""
    sig = eff[eff["p (Holm)"] < alpha]
    return ", ".join(f"{v} ({r['Δ accuracy vs Adam (pp)']:+.2f} pp)" for v, r in sig.iterrows()) or "none"


def toy_summary(results: dict, reference: str = "Adam", tol: float = 1e-6) -> pd.DataFrame:
    """Per optimizer of the shallow-minima toy (``name -> StartsResult``): the share of starts that
    reached the global basin, the mean final loss, and the share that ended lower or higher than
    ``reference`` from the same start."""
    ref = results[reference].loss
    return pd.DataFrame({
        name: {
            "reached the global basin (%)": round(100 * r.global_fraction, 2),
            "mean final loss": round(float(r.loss.mean()), 4),
            "lower final loss than Adam (% of starts)": round(100 * float((r.loss < ref - tol).mean()), 2),
            "higher final loss than Adam (% of starts)": round(100 * float((r.loss > ref + tol).mean()), 2),
        }
        for name, r in results.items()
    }).T


def toy_sentences(results: dict, summary: pd.DataFrame, reference: str = "Adam") -> list[str]:
    """One plain sentence per optimizer other than ``reference`` (see :func:`toy_summary`)."""
    out = []
    for name, r in results.items():
        if name == reference:
            continue
        same = (100 - summary.loc[name, "lower final loss than Adam (% of starts)"]
                - summary.loc[name, "higher final loss than Adam (% of starts)"])
        out.append(f"{name}: reached the global basin from {100 * r.global_fraction:.1f}% of starts "
                   f"({reference}: {100 * results[reference].global_fraction:.1f}%); ended at the same loss as "
                   f"{reference} from {same:.1f}% of starts.")
    return out


def final_loss_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Final loss per config (mean, sd over seeds) and the mean per-seed change against the first
    config, in %; ``runs`` has ``config, seed, step, loss``."""
    last = runs[runs.step == runs.step.max()]
    ref = last[last.config == last.config.iloc[0]].set_index("seed").loss
    table = last.groupby("config", sort=False).loss.agg(["mean", "std"])
    table["change vs first row (%)"] = [100 * float(np.mean(g.set_index("seed").loss / ref - 1))
                                        for _, g in last.groupby("config", sort=False)]
    return _no_negative_zero(table.round({"mean": 5, "std": 5, "change vs first row (%)": 2}))


def mean_loss_table(metrics: pd.DataFrame, paper: dict[str, float], reference: str = "AdamW") -> pd.DataFrame:
    """Table I (``paper``: optimizer → mean loss) beside ours: each arm's mean training loss,
    averaged over data orders, and relative to ``reference`` in % (paired by order)."""
    from . import claims

    runs = claims.llm_runs(metrics)
    ours = runs.groupby("optimizer", sort=False).mean_loss.mean()
    table = pd.DataFrame({"paper: mean loss": pd.Series(paper), "ours: mean loss": ours})
    table["paper: vs AdamW (%)"] = 100 * (table["paper: mean loss"] / table.loc[reference, "paper: mean loss"] - 1)
    table["ours: vs AdamW (%)"] = pd.Series({arm: 0.0 if arm == reference else
                                             claims.paired_relative(metrics, arm, reference).mean()
                                             for arm in ours.index})
    return table


def magnitude_table(sizes: pd.DataFrame, lambdas, min_ratio: float, n_parameters: int) -> pd.DataFrame:
    """Experiment 2's magnitude check, one row per reading: entries perturbed (and their share
    of the model), the median of ‖λ·Q‖/‖Adam step‖ over the check's steps at each λ, and
    whether the rule (≥ ``min_ratio`` at the largest λ) trains it."""
    med = sizes.groupby("reading", sort=False).agg(entries=("perturbed_entries", "first"),
                                                    ratio=("ratio_per_lambda", "median"))
    table = pd.DataFrame({"entries perturbed": med.entries.astype(int),
                          "share of weights (%)": 100 * med.entries / n_parameters})
    for lam in lambdas:
        table[f"‖λQ‖ / ‖Adam step‖ at λ = {lam:g}"] = med.ratio * lam
    table["trained"] = np.where(med.ratio * max(lambdas) >= min_ratio, "yes", "no (too small)")
    return table.rename_axis("reading")


def order_table(metrics: pd.DataFrame, reference: str = "AdamW") -> pd.DataFrame:
    """Each arm's mean training loss per data order (rows: orders; columns: arms)."""
    from . import claims

    return claims.llm_runs(metrics).pivot(index="seed", columns="optimizer", values="mean_loss").rename_axis(
        "data order")[list(dict.fromkeys(metrics.optimizer))]


def arm_differences(metrics: pd.DataFrame, reference: str = "AdamW", arms=None) -> pd.DataFrame:
    """Per arm: the mean over data orders of (arm's mean loss / AdamW's − 1) in %, its Student-t
    95 % CI over orders, the per-order values, and the noise floor beside it."""
    from . import claims

    floor = claims.noise_floor(metrics, reference)
    rows = {}
    for arm in arms or [a for a in dict.fromkeys(metrics.optimizer) if a != reference]:
        diff = claims.paired_relative(metrics, arm, reference)
        m, lo, hi = stats.mean_ci(diff)
        rows[arm] = {"vs AdamW (%)": m, "CI low": lo, "CI high": hi, "data orders": len(diff),
                     "per order (%)": ", ".join(f"{x:+.3g}" for x in diff), "noise floor (± %)": floor}
    return pd.DataFrame(rows).T.rename_axis("arm")


def difference_curves(metrics: pd.DataFrame, reference: str = "AdamW") -> pd.DataFrame:
    """Long frame (optimizer, seed, step, difference): each arm's training loss minus AdamW's
    at the same step of the same data order."""
    wide = metrics.pivot_table(index=["seed", "step"], columns="optimizer", values="loss")
    diff = wide.drop(columns=reference).sub(wide[reference], axis=0)
    return diff.reset_index().melt(id_vars=["seed", "step"], var_name="optimizer", value_name="difference")


def heldout_table(heldout: pd.DataFrame, reference: str = "AdamW", base: str = "(base model)") -> pd.DataFrame:
    """The held-out answer-token loss: the base model's, each arm's after fine-tuning (mean over
    problems and data orders), and each arm minus AdamW paired by problem (averaged over orders
    first) with a Student-t 95 % CI over problems."""
    after = heldout[heldout.optimizer != base]
    per_problem = after.groupby(["optimizer", "problem"]).loss.mean().unstack("optimizer")
    rows = {base: {"mean loss": heldout[heldout.optimizer == base].loss.mean()}}
    for arm in dict.fromkeys(after.optimizer):
        row = {"mean loss": per_problem[arm].mean(), "problems": int(per_problem[arm].notna().sum()),
               "data orders": int(after[after.optimizer == arm].seed.nunique())}
        if arm != reference:
            m, lo, hi = stats.mean_ci(per_problem[arm] - per_problem[reference])
            row |= {"minus AdamW": m, "CI low": lo, "CI high": hi}
        rows[arm] = row
    return pd.DataFrame(rows).T.rename_axis("model")


def loss_definition_table(study: pd.DataFrame, metrics: pd.DataFrame, padded_arm: str,
                          padded: str = "padded to the context, pads in the labels") -> pd.DataFrame:
    """The loss-definition study: the base model's mean loss under each definition (and context
    length), and the padded-labels control's mean training loss (whole run and last fifth)."""
    own = "the problem's own length"
    study = study.assign(context=np.where(study.definition == padded, study.context.astype(str) + " tokens", own))
    table = study.groupby(["definition", "context"], sort=False).loss.mean().reset_index().assign(model="base model")
    control = metrics[metrics.optimizer == padded_arm].sort_values("step")
    if len(control):
        ctx = f"{int(study[study.definition == padded].context.str.split().str[0].astype(int).min())} tokens"
        tail = control.loss.iloc[-max(1, len(control) // 5):]
        table.loc[len(table)] = dict(definition=padded, context=ctx, loss=control.loss.mean(),
                                     model=f"fine-tuned on these labels with AdamW: mean training loss "
                                           f"over {len(control)} steps")
        table.loc[len(table)] = dict(definition=padded, context=ctx, loss=tail.mean(),
                                     model=f"the same run, its last {len(tail)} steps")
    return table.set_index(["definition", "context", "model"])


def schedule_facts(metrics: pd.DataFrame, reference: str = "AdamW") -> dict:
    """What the learning-rate schedule of a stored run did: steps, warm-up steps (lr rising),
    the peak, and how many steps ran above 90 % of the peak."""
    run = metrics[(metrics.optimizer == reference) & (metrics.seed == metrics.seed.min())].sort_values("step")
    lr = run.learning_rate.to_numpy()
    peak = float(lr.max())
    return dict(steps=len(lr), warmup=int(np.argmax(lr)), peak=peak, above_90=int((lr > 0.9 * peak).sum()),
                share_above_90=float((lr > 0.9 * peak).mean()))


def benchmark_group(table: pd.DataFrame, group: str, include: str | None = None) -> pd.DataFrame:
    """One group of a benchmark suite table (``benchmarks/run.py``'s file): each measurement's time
    and its ratio to the baseline timed in the same run, so that every chapter quoting a timing
    reads the same file (one source for each number)."""
    rows = table[table.group == group]
    if include is not None:
        rows = rows[rows.name.str.contains(include, regex=False)]
    out = pd.DataFrame({"measurement": rows.name, "time (ms)": 1e3 * rows.seconds,
                        "× the baseline": rows.ratio.where(rows.baseline.notna(), 1.0),
                        "baseline": rows.baseline.fillna("(the baseline)")})
    return out.set_index("measurement")


# The performance targets of the project's benchmark issue: (label, row name, bound, "min"/"max").
TARGETS = [
    ("P1: Φ fwd+bwd vs qiskit-aer (throughput ×)", "Fourier path, forward+backward", 1e4, "min"),
    ("P1: gate-by-gate torch path vs Φ fast path (time ×)", "torch statevector, forward+backward", 300, "min"),
    ("P2: QuantumAttention vs nn.MultiheadAttention (time ×)", "quantum, forward+backward", 2.5, "max"),
    ("P2 aim: QuantumAttention vs nn.MultiheadAttention (time ×)", "quantum, forward+backward", 1.5, "max"),
    ("P3: optimizer step vs fused AdamW, SmolLM2 shapes (time ×)",
     "SuperpositionalAdam (default, fused), step, SmolLM2-135M shapes", 1.1, "max"),
    ("P3: compiled step vs compiled fused AdamW, SmolLM2 shapes (time ×)",
     "SuperpositionalAdam (default, fused), compiled step, SmolLM2-135M shapes", 1.1, "max"),
    ("P3 aim: optimizer step vs fused AdamW, 200 tensors of 64×64 (time ×)",
     "SuperpositionalAdam (default, fused), step, 200 tensors of 64×64", 1.3, "max"),
    ("P3: optimizer step vs fused AdamW, Table II classifier (time ×)",
     "SuperpositionalAdam (default, fused), step, Table II classifier", 1.5, "max"),
    ("P3: optimizer state memory vs AdamW (bytes ×)",
     "state bytes per parameter, SuperpositionalAdam, Table II classifier", 1.0, "max"),
    ("P4: experiment-1 epoch, SGD λ=0.5 vs Adam (time ×)", "epoch, SGD λ=0.5", 1.05, "max"),
]


def targets(table):
    """One row per performance target: the measured ratio from a suite results table, the
    bound, and whether it is met. Targets whose row the table lacks (e.g. SmolLM2 shapes in
    a quick run) are left out.
    """
    rows = []
    for label, name, bound, kind in TARGETS:
        hit = table[table["name"] == name]
        if hit.empty:
            continue
        ratio = float(hit["ratio"].iloc[0])
        rows.append(dict(target=label, measured=ratio, bound=("≥ " if kind == "min" else "≤ ") + f"{bound:g}",
                         met=bool(ratio >= bound if kind == "min" else ratio <= bound)))
    return pd.DataFrame(rows)


def epoch_overhead(table: pd.DataFrame) -> str:
    """The epoch-time arithmetic of a benchmark suite table, in words: how much longer an epoch with
    SGD λ = 0.5 takes than one with Adam, and how much of that the optimizer step explains."""
    r = table.set_index("name")["ratio"]
    epoch = r["epoch, SGD λ=0.5"]
    share = r["optimizer steps in an epoch, Adam"]
    step = r["optimizer steps in an epoch, SGD λ=0.5"]
    return (f"an epoch with SGD λ = 0.5 takes {epoch:.3f} × the time of an epoch with Adam "
            f"({100 * (epoch - 1):+.1f} %).\n  Adam's optimizer steps take {100 * share:.1f} % of its epoch; "
            f"SGD's steps take {step:.2f} × Adam's, which adds about {100 * share * (step - 1):.1f} % to an epoch.")


def _duration(prov: dict) -> float:
    from datetime import datetime

    try:
        end, start = datetime.fromisoformat(prov["finished_at"]), datetime.fromisoformat(prov["started_at"])
        return (end - start).total_seconds()
    except (KeyError, TypeError, ValueError):
        return math.nan


def profiles_table(root=None) -> pd.DataFrame:
    """What each profile runs, and how long it took here: the chapters' execution time with
    results stored (from the build's ``status.json``, per profile) and the wall time of the
    stored training runs (from their provenance), both on this project's 2-core CPU machine."""
    import json
    from pathlib import Path

    from ..experiments import ablations as ab
    from ..experiments import llm_finetuning as lf
    from ..experiments import text_classification as tc
    from ..experiments.config import PROFILES
    from ..experiments.provenance import repo_root

    root = Path(root or repo_root())
    built = {}
    for status in (root / "book" / "chapters" / "status.json", root / "tests" / "notebooks" / "status.json"):
        if status.exists():
            for nb in json.loads(status.read_text())["notebooks"]:
                built.setdefault(nb["profile"], {})[nb["notebook"]] = nb["seconds"]
    rows = {}
    for p in PROFILES:
        e1, abl = tc.Config(profile=p, **tc.Config.PROFILES[p]), ab.config_for(p)
        e2 = lf.LLMConfig.PROFILES[p]
        train = 0.0
        for folder in (tc.results_dir(p), lf.results_dir(p), root / "data" / "results" / "ablations" / p):
            for prov in sorted(Path(folder).rglob("provenance.json")) if Path(folder).exists() else []:
                seconds = _duration(json.loads(prov.read_text()))
                train += seconds if math.isfinite(seconds) else 0.0
        rows[p] = {
            "experiment 1": f"{len(e1.optimizers)} arms × {e1.seeds} seeds × {e1.epochs} epochs; "
                            f"{e1.n_train} train / {e1.n_test} test sentences",
            "ablations": f"{sum(len(v) for v in ab.STUDIES.values()) - len(ab.SAME_AS)} trained variants × "
                         f"{abl.seeds} seeds × {abl.epochs} epochs",
            "experiment 2": f"AdamW and SGD at λ = 0.1, 0.5 under each kept reading × {e2['seeds']} data orders × "
                            f"{e2['n_train'] or 'all 7,473'} problems, {e2['max_length']} tokens; "
                            f"{e2['n_heldout']} held-out problems",
            "chapters, results stored (min, 2 CPU cores)": round(sum(built[p].values()) / 60, 1) if p in built
            else "not measured",
            "training: stored runs' wall time, summed (min)": round(train / 60) if train > 0 else "not measured",
            "on one GPU": "not measured (no GPU was lent to this project yet)",
        }
    return pd.DataFrame(rows).T.rename_axis("profile")
