"""Summary statistics for the experiments: final accuracy, epochs and time to a target,
paired comparisons by seed with 95 % confidence intervals.

Conventions (see the book's methodology):

* "final" means the last epoch of each run;
* a run that never reaches the target is *censored*: it counts in "reached k of n", and in
  the censored mean its epochs-to-target is taken as (epochs + 1), a lower bound, so never
  reaching cannot look better than reaching late;
* paired comparisons take, for each seed, the difference between an optimizer and the
  reference (Adam) trained from the same initial weights on the same batches, and report
  the mean difference with a Student-t 95 % interval over seeds.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as _st


def mean_ci(x, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval of the finite values in ``x``."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return (math.nan, math.nan, math.nan)
    m = float(x.mean())
    if len(x) < 2:
        return (m, math.nan, math.nan)
    sem = float(_st.sem(x))
    if sem == 0.0:  # every value alike: a zero-width interval (scipy would give NaN)
        return (m, m, m)
    lo, hi = _st.t.interval(level, len(x) - 1, loc=m, scale=sem)
    return (m, float(lo), float(hi))


def per_run(metrics: pd.DataFrame, target: float = 0.9) -> pd.DataFrame:
    """One row per (optimizer, seed): final accuracy, epochs and seconds to ``target``, mean epoch time."""
    rows = []
    for (opt, seed), g in metrics.groupby(["optimizer", "seed"], sort=False):
        g = g.sort_values("epoch")
        hit = g[g.test_accuracy >= target]
        reached = len(hit) > 0
        epoch = int(hit.epoch.iloc[0]) if reached else math.nan
        rows.append(dict(
            optimizer=opt, seed=int(seed), final_accuracy=float(g.test_accuracy.iloc[-1]),
            epochs=int(g.epoch.max()), reached=reached, epochs_to_target=epoch,
            epochs_to_target_censored=epoch if reached else int(g.epoch.max()) + 1,
            seconds_to_target=float(g.epoch_seconds[g.epoch <= epoch].sum()) if reached else math.nan,
            epoch_seconds=float(g.epoch_seconds.mean()), step_seconds=float(g.step_seconds.mean()),
        ))
    return pd.DataFrame(rows)


def paired_values(runs: pd.DataFrame, column: str, optimizer: str, reference: str = "Adam",
                  ratio: bool = False) -> pd.Series:
    """Per seed: ``optimizer``'s value − ``reference``'s (or value / reference − 1 when ``ratio``),
    over the seeds where both are finite."""
    wide = runs.pivot(index="seed", columns="optimizer", values=column)
    both = wide[[optimizer, reference]].dropna()
    return both[optimizer] / both[reference] - 1 if ratio else both[optimizer] - both[reference]


def paired(runs: pd.DataFrame, column: str, reference: str = "Adam", ratio: bool = False) -> pd.DataFrame:
    """Per optimizer: mean over seeds of (value − reference's value), or of value / reference − 1
    when ``ratio``, with its 95 % CI; only seeds where both values are finite count."""
    out = []
    for opt in [c for c in runs.optimizer.unique() if c != reference]:
        diff = paired_values(runs, column, opt, reference, ratio)
        m, lo, hi = mean_ci(diff)
        out.append(dict(optimizer=opt, mean=m, ci_low=lo, ci_high=hi, n_seeds=len(diff)))
    return pd.DataFrame(out).set_index("optimizer")


def paired_t_power(effect: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t-test at level ``alpha`` with ``n`` pairs to detect a mean
    difference ``effect`` when the per-pair differences have standard deviation ``sd``
    (the noncentral t distribution, noncentrality effect·√n / sd)."""
    if n < 2 or not (sd > 0) or not math.isfinite(effect):
        return math.nan
    df = n - 1
    nc = effect * math.sqrt(n) / sd
    crit = _st.t.ppf(1 - alpha / 2, df)
    return float(_st.nct.sf(crit, df, nc) + _st.nct.cdf(-crit, df, nc))


def seeds_for_power(effect: float, sd: float, power: float = 0.9, alpha: float = 0.05, max_n: int = 100_000) -> int:
    """The fewest pairs (seeds) for which :func:`paired_t_power` reaches ``power``."""
    if not (sd > 0) or not math.isfinite(effect) or effect == 0:
        raise ValueError(f"needs a non-zero effect and a positive sd, got effect={effect!r}, sd={sd!r}")
    lo, hi = 2, 2
    while paired_t_power(effect, sd, hi, alpha) < power:
        lo, hi = hi, hi * 2
        if hi > max_n:
            raise ValueError(f"more than {max_n} seeds would be needed")
    while lo < hi:  # the power grows with n: bisect for the first n that reaches it
        mid = (lo + hi) // 2
        if paired_t_power(effect, sd, mid, alpha) >= power:
            hi = mid
        else:
            lo = mid + 1
    return hi


def summary(runs: pd.DataFrame, reference: str = "Adam") -> pd.DataFrame:
    """The headline numbers per optimizer (percentages where the paper gives percentages)."""
    ref_epoch = runs[runs.optimizer == reference].epoch_seconds.mean()
    rows = {}
    for opt, g in runs.groupby("optimizer", sort=False):
        rows[opt] = {
            "final accuracy (%)": 100 * g.final_accuracy.mean(),
            "final accuracy sd (pp)": 100 * g.final_accuracy.std(ddof=1) if len(g) > 1 else math.nan,
            "reached 90 % (runs)": f"{int(g.reached.sum())}/{len(g)}",
            "epochs to 90 % (runs that reached it)": g.epochs_to_target.mean(),
            "epochs to 90 % (censored mean)": g.epochs_to_target_censored.mean(),
            "time per epoch vs Adam (%)": 100 * (g.epoch_seconds.mean() / ref_epoch - 1),
            "optimizer.step share of epoch (%)": 100 * g.step_seconds.mean() / g.epoch_seconds.mean(),
            "seconds to 90 % (runs that reached it)": g.seconds_to_target.mean(),
        }
    table = pd.DataFrame(rows).T
    numeric = [c for c in table.columns if not c.startswith("reached")]
    table[numeric] = table[numeric].astype(float)
    return table


def distribution_check(committed: pd.DataFrame, rerun: pd.DataFrame, column: str, by: str = "optimizer",
                       z_max: float = 4.0) -> pd.DataFrame:
    """Does a reduced rerun land inside the committed results' distribution?

    Per group (``by``): z = (rerun mean − committed mean) / √(s²/n_rerun + s²/n_committed), with
    s the committed seeds' standard deviation (a Welch-like statistic that needs only a few
    rerun seeds). A group passes when |z| ≤ ``z_max``: per-seed numbers differ across CPUs and
    code versions, so the check asks for agreement in distribution, not bit for bit.
    """
    rows = []
    for name, ref in committed.groupby(by, sort=False):
        new = rerun[rerun[by] == name][column].to_numpy(dtype=float)
        old = ref[column].to_numpy(dtype=float)
        if len(new) == 0:
            continue
        sd = float(old.std(ddof=1)) if len(old) > 1 else math.nan
        se = math.sqrt(sd**2 / len(new) + sd**2 / len(old)) if sd > 0 else math.nan
        z = (new.mean() - old.mean()) / se if se > 0 else math.nan
        rows.append({by: name, "committed_mean": float(old.mean()), "committed_sd": sd, "n_committed": len(old),
                     "rerun_mean": float(new.mean()), "n_rerun": len(new), "z": z,
                     "passes": bool(math.isfinite(z) and abs(z) <= z_max)})
    return pd.DataFrame(rows)
