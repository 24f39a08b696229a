"""Summary statistics for the experiments: final accuracy, epochs and time to a target,
paired comparisons by seed with 95 % confidence intervals.

Conventions (the rules in ``data/claims.yaml``; see the book's methodology):

* "final" means the last epoch of each run;
* a run that never reaches the target is *right-censored* at its last epoch (or its total
  training time): epochs and seconds to the target are Kaplan–Meier restricted means
  (:func:`restricted_mean`), with a percentile bootstrap over seeds for the interval, and no
  seed is dropped. (The older ``epochs_to_target_censored`` column, epochs + 1 for a run that
  never got there, is kept for single-run comparisons.)
* paired comparisons take, for each seed, an optimizer's value and the reference's (Adam's),
  trained from the same initial weights on the same batches: a difference of means has a
  Student-t 95 % interval over seeds (:func:`paired`); a ratio of means a paired bootstrap
  interval (:func:`ratio_of_means`).
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


def t_band(x, level: float = 0.95) -> tuple[float, float]:
    """The Student-t interval of :func:`mean_ci` as (low, high): seaborn's ``errorbar=`` for
    figure bands computed as the text's intervals are."""
    return mean_ci(x, level)[1:]


def per_run(metrics: pd.DataFrame, target: float = 0.9) -> pd.DataFrame:
    """One row per (optimizer, seed): final accuracy, epochs and seconds to ``target`` (and the
    censoring times ``epochs_observed``/``seconds_observed`` with ``reached``), mean epoch time,
    and the median ‖λQ‖/‖Adam step‖ where it was logged."""
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
            epochs_observed=epoch if reached else int(g.epoch.max()),
            seconds_observed=float(g.epoch_seconds[g.epoch <= epoch].sum() if reached else g.epoch_seconds.sum()),
            epoch_seconds=float(g.epoch_seconds.mean()), step_seconds=float(g.step_seconds.mean()),
            perturbation_ratio=float(g.perturbation_ratio.median()) if "perturbation_ratio" in g else math.nan,
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


def restricted_mean(times, reached, horizon: float | None = None) -> float:
    """Kaplan–Meier restricted mean time to an event, ∫₀^τ S(t) dt with τ = ``horizon``
    (default: the longest time in ``times``); ``reached[i]`` False marks ``times[i]`` as
    right-censored. With nothing censored and τ ≥ every time it is the plain mean.
    The survival curve is scipy's (:func:`scipy.stats.ecdf` on :class:`scipy.stats.CensoredData`)."""
    times = np.asarray(times, dtype=float)
    reached = np.asarray(reached, dtype=bool)
    tau = float(times.max()) if horizon is None else float(horizon)
    if tau < times.max():
        raise ValueError(f"horizon {tau} is shorter than the longest time {times.max()}")
    if reached.all():
        return float(times.mean())
    if not reached.any():  # no event at all: the curve stays at 1 up to τ
        return tau
    curve = _st.ecdf(_st.CensoredData(uncensored=times[reached], right=times[~reached])).sf
    grid = np.unique(np.concatenate([[0.0], times, [tau]]))
    return float(np.sum(np.diff(grid) * curve.evaluate(grid[:-1])))


EVENTS = {  # a time-to-target column -> (its censoring time, the event flag)
    "epochs_to_target": ("epochs_observed", "reached"),
    "seconds_to_target": ("seconds_observed", "reached"),
}


def _columns(runs: pd.DataFrame, column: str, optimizer: str) -> tuple[np.ndarray, np.ndarray, pd.Index]:
    """(values, event flags, seeds) of one optimizer for ``column`` (censoring-aware for EVENTS)."""
    g = runs[runs.optimizer == optimizer].set_index("seed").sort_index()
    if column in EVENTS:
        time, flag = EVENTS[column]
        return g[time].to_numpy(float), g[flag].to_numpy(bool), g.index
    values = g[column].to_numpy(float)
    return values, np.isfinite(values), g.index


def mean_interval(runs: pd.DataFrame, column: str, optimizer: str, n_resamples: int = 4999,
                  seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): for a time to the target, the restricted mean with a percentile
    bootstrap 95 % interval over seeds; for any other column, :func:`mean_ci`."""
    values, flags, _ = _columns(runs, column, optimizer)
    if column not in EVENTS:
        return mean_ci(values)
    est = restricted_mean(values, flags)
    if len(values) < 2:
        return (est, math.nan, math.nan)
    res = _st.bootstrap((values, flags), restricted_mean, paired=True, vectorized=False, n_resamples=n_resamples,
                        method="percentile", rng=np.random.default_rng(seed))
    return (est, float(res.confidence_interval.low), float(res.confidence_interval.high))


def ratio_of_means(runs: pd.DataFrame, column: str, optimizer: str, reference: str = "Adam",
                   n_resamples: int = 4999, seed: int = 0) -> tuple[float, float, float, int]:
    """(mean(optimizer) / mean(reference) − 1, low, high, n_seeds), the ratio the paper's own
    arithmetic takes, over the seeds both have, with a paired percentile bootstrap 95 %
    interval. Times to the target use restricted means (:func:`restricted_mean`) up to the
    longest time either optimizer has in the resample, so censored runs stay in."""
    a, fa, ia = _columns(runs, column, optimizer)
    b, fb, ib = _columns(runs, column, reference)
    seeds = ia.intersection(ib)
    a, fa = a[ia.get_indexer(seeds)], fa[ia.get_indexer(seeds)]
    b, fb = b[ib.get_indexer(seeds)], fb[ib.get_indexer(seeds)]
    if column not in EVENTS:  # a plain column: only seeds with both values finite
        keep = fa & fb
        a, fa, b, fb = a[keep], fa[keep], b[keep], fb[keep]

    def ratio(a, fa, b, fb):
        horizon = max(a.max(), b.max())
        return restricted_mean(a, fa, horizon) / restricted_mean(b, fb, horizon) - 1

    if len(a) == 0:
        return (math.nan, math.nan, math.nan, 0)
    est = float(ratio(a, fa, b, fb))
    if len(a) < 2 or np.ptp(a / b) == 0:
        return (est, est if len(a) > 1 else math.nan, est if len(a) > 1 else math.nan, len(a))
    res = _st.bootstrap((a, fa, b, fb), ratio, paired=True, vectorized=False, n_resamples=n_resamples,
                        method="percentile", rng=np.random.default_rng(seed))
    return (est, float(res.confidence_interval.low), float(res.confidence_interval.high), len(a))


def logrank(runs: pd.DataFrame, column: str, optimizer: str, reference: str = "Adam") -> float:
    """Two-sided p-value of the log-rank test (scipy's) that ``optimizer`` and ``reference``
    reach the target equally fast, censored runs included."""
    a, fa, _ = _columns(runs, column, optimizer)
    b, fb, _ = _columns(runs, column, reference)
    x = _st.CensoredData(uncensored=a[fa], right=a[~fa])
    y = _st.CensoredData(uncensored=b[fb], right=b[~fb])
    return float(_st.logrank(x, y).pvalue)


def null_gaps(runs: pd.DataFrame, column: str, optimizer: str = "Adam", ratio: bool = False) -> pd.DataFrame:
    """What noise alone does to a single-run comparison: for every ordered pair of different
    seeds (a, b) of ``optimizer``, run a's value − run b's (or a / b − 1 when ``ratio``),
    unpaired, as one run against another like the paper's tables are."""
    g = runs[runs.optimizer == optimizer].set_index("seed")[column].astype(float)
    a, b = np.meshgrid(g.to_numpy(), g.to_numpy(), indexing="ij")
    sa, sb = np.meshgrid(g.index.to_numpy(), g.index.to_numpy(), indexing="ij")
    off = sa != sb
    gap = a / b - 1 if ratio else a - b
    return pd.DataFrame({"seed_a": sa[off], "seed_b": sb[off], "gap": gap[off]})


def share_beyond(gaps, value: float) -> float:
    """The share of null gaps at least as far as ``value`` in ``value``'s direction."""
    gaps = np.asarray(gaps, dtype=float)
    return float(np.mean(gaps >= value) if value >= 0 else np.mean(gaps <= value))


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control): sort ascending,
    multiply the i-th smallest by (m − i), take the running maximum, cap at 1."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


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


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """The headline numbers per arm: final accuracy, how many runs reached 90 %, epochs and
    seconds to 90 % (Kaplan–Meier restricted means, censored runs kept), time per epoch, the
    optimizer step's share of it, and the median ‖λQ‖/‖Adam step‖ where it was logged."""
    rows = {}
    for opt, g in runs.groupby("optimizer", sort=False):
        rows[opt] = {
            "final accuracy (%)": 100 * g.final_accuracy.mean(),
            "final accuracy sd (pp)": 100 * g.final_accuracy.std(ddof=1) if len(g) > 1 else math.nan,
            "reached 90 % (runs)": f"{int(g.reached.sum())}/{len(g)}",
            "epochs to 90 %": restricted_mean(g.epochs_observed, g.reached),
            "seconds to 90 %": restricted_mean(g.seconds_observed, g.reached),
            "seconds per epoch": g.epoch_seconds.mean(),
            "optimizer.step share of epoch (%)": 100 * g.step_seconds.mean() / g.epoch_seconds.mean(),
            "‖λQ‖ / ‖Adam step‖ (median)": g.perturbation_ratio.median(),
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
