"""Figures of the protocol replay (issue 17, chapter 08): the ladder, one row per rung.

Three panels share the rungs as rows (top: the paper's protocol, bottom: ours): the income AUC of
TM-1, TM-2 and EMM; EMM's gain over the TM mean; EMM − best baseline. Every point carries its
95% CI (:mod:`emm_lib.study.replay.ladder`); the paper's values (dashed) and the published code's own runs
(dotted, when they exist) are reference lines.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from emm_lib.study.shared.glossary import value_label
from emm_lib.study.shared.present import task_name
from emm_lib.study.shared.plot_axes import auc_error, bound_auc

__all__ = ["ladder"]

_LEVELS = (("tm1", "TM-1", "o"), ("tm2", "TM-2", "s"), ("emm", "EMM", "D"))


def _err(t: pd.DataFrame, col: str) -> np.ndarray:
    lo, hi = t.get(f"{col}_lo"), t.get(f"{col}_hi")
    if lo is None or hi is None:
        return np.zeros((2, len(t)))
    e = np.vstack([t[col] - lo, hi - t[col]]).astype(float)
    return np.nan_to_num(e, nan=0.0)


def ladder(t: pd.DataFrame, paper: dict | None = None, published: pd.DataFrame | None = None,
           title: str = "The replay ladder"):
    """The ladder figure from :func:`emm_lib.study.replay.ladder.table`; ``paper``: :data:`emm_lib.study.replay.ladder.PAPER`
    (Census only); ``published``: :func:`emm_lib.study.replay.ladder.published_code` (or None)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    colours = sns.color_palette("colorblind", 3)
    y = np.arange(len(t))[::-1]
    fig, axes = plt.subplots(1, 3, figsize=(11, 1.2 + 0.45 * max(len(t), 3)), sharey=True,
                             gridspec_kw={"width_ratios": [1.4, 1, 1]})
    ax = axes[0]
    for k, (col, name, marker) in enumerate(_LEVELS):
        if col not in t:
            continue
        lo_hi = (t.get(f"{col}_lo"), t.get(f"{col}_hi"))
        err = auc_error(t[col], *lo_hi) if lo_hi[0] is not None and lo_hi[1] is not None else _err(t, col)
        ax.errorbar(t[col], y + (1 - k) * 0.18, xerr=err, fmt=marker, color=colours[k], label=name, ms=5,
                    capsize=2)
        if paper and col in paper:
            ax.axvline(paper[col], color=colours[k], ls="--", lw=1)
        if published is not None:
            p = published[(published.model == name) & (published.task == t.task.iloc[0])]
            if len(p):
                ax.axvline(float(p["mean"].iloc[0]), color=colours[k], ls=":", lw=1.5)
    ax.set(xlabel=f"test AUC ({task_name(t.task.iloc[0])})", title="Trained models and EMM")
    bound_auc(ax, "x")
    for ax, col, name in ((axes[1], "gain", "EMM − mean(TM-1, TM-2)"), (axes[2], "vs_best", "EMM − best baseline")):
        if col in t:
            ax.errorbar(t[col], y, xerr=_err(t, col), fmt="D", color=colours[2], ms=5, capsize=2)
        ax.axvline(0, color="grey", lw=1)
        if paper and col in paper:
            ax.axvline(paper[col], color="black", ls="--", lw=1, label="paper")
        ax.set(xlabel="difference in test AUC", title=name)
    axes[0].set_yticks(y, [value_label(r) for r in t.rung])  # rung names in words, as the tables show them
    marks = (["dashed: the paper"] if paper else []) + (["dotted: the published code's own runs"]
                                                         if published is not None else [])
    fig.suptitle(f"{title}  ({'; '.join(marks + ['bars: 95% CI'])})", fontsize="medium")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize="small", frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig
