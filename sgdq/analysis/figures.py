"""Figures the chapters draw from the analysis tables (matplotlib)."""

from __future__ import annotations

import pandas as pd

EFFECT_PANELS = [
    ("Δ accuracy vs Adam (pp)", "Δ acc. CI low", "Δ acc. CI high", "final accuracy − Adam (pp)"),
    ("epochs to 90 % vs Adam (%)", "epochs CI low", "epochs CI high", "epochs to 90 % vs Adam (%)"),
]


def effects_figure(eff: pd.DataFrame, title: str):
    """Paired differences from Adam with 95 % intervals, one row per variant (an :func:`effects` table)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 0.6 * len(eff) + 1.6), sharey=True)
    y = range(len(eff))
    for ax, (col, lo, hi, label) in zip(axes, EFFECT_PANELS):
        ax.errorbar(eff[col], y, xerr=[eff[col] - eff[lo], eff[hi] - eff[col]], fmt="o", capsize=4)
        ax.axvline(0, color="gray", lw=1)
        ax.set(xlabel=label)
    axes[0].set(yticks=list(y), yticklabels=eff.index, title=title)
    axes[0].invert_yaxis()
    fig.tight_layout()
    return fig


def null_figure(gaps: pd.DataFrame, table: pd.DataFrame):
    """Histograms of the null gaps (:func:`sgdq.analysis.tables.null_gap_frame`), one panel per
    quantity, with the paper's gap marked (:func:`sgdq.analysis.tables.null_table`)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    quantities = list(table.index)
    fig, axes = plt.subplots(1, len(quantities), figsize=(10, 3.6))
    for ax, q in zip(axes, quantities):
        sns.histplot(gaps[gaps.quantity == q].gap, bins=30, ax=ax, color="tab:gray")
        paper = table.loc[q, "paper's gap"]
        ax.axvline(paper, color="tab:red", lw=2, label=f"paper: {paper:+g}")
        ax.set(xlabel=f"Adam − Adam, two seeds: {q}", ylabel="pairs of runs")
        ax.legend(loc="upper left", fontsize=9)
    fig.tight_layout()
    return fig


def perturbation_size_figure(metrics: pd.DataFrame):
    """‖λQ‖ / ‖Adam step‖ per epoch (median over the logged steps, then mean over seeds with
    Student-t bands), log scale, for every arm that logs it."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from . import stats

    logged = metrics.dropna(subset=["perturbation_ratio"])
    fig, ax = plt.subplots(figsize=(8, 3.8))
    sns.lineplot(logged, x="epoch", y="perturbation_ratio", hue="optimizer", errorbar=stats.t_band, ax=ax)
    ax.set(yscale="log", ylabel="‖λ·Q‖ / ‖m̂/(√v̂+ε)‖", title="Size of Eq. (2)'s term against Adam's step")
    fig.tight_layout()
    return fig
