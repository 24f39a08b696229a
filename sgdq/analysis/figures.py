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
