"""Figures for the book (matplotlib/seaborn), readable at book width. Notebooks call these."""
from __future__ import annotations

from typing import Sequence

import pandas as pd

__all__ = ["learning_curves", "auc_bars", "heatmap", "style"]


def style() -> None:
    import matplotlib as mpl
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    mpl.rcParams.update({"figure.dpi": 110, "savefig.dpi": 110, "figure.figsize": (7.5, 4.0),
                         "axes.titleweight": "bold"})


def learning_curves(histories: dict[str, pd.DataFrame], title: str = "Validation AUC per epoch"):
    """One line per run: mean validation AUC against epoch (from ``FitResult.history``)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    for name, h in histories.items():
        ax.plot(h.epoch, h.val_auc_mean, marker="o", ms=3, label=name)
    ax.set(xlabel="epoch", ylabel="validation AUC (mean over tasks)", title=title)
    ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    return fig


def auc_bars(summary: pd.DataFrame, order: Sequence[str] | None = None, title: str = "Test AUC per task",
             col: str | None = None):
    """Bars of mean test AUC per model and task, with the std over seeds as error bars.

    ``summary`` has columns model, task, mean, std (see :func:`emm_lib.study.summarize`);
    ``col`` facets by another column (e.g. the number of tasks).
    """
    import matplotlib.pyplot as plt
    import numpy as np

    facets = [None] if col is None else list(dict.fromkeys(summary[col]))
    fig, axes = plt.subplots(1, len(facets), figsize=(max(7.5, 4.2 * len(facets)), 4.2), squeeze=False)
    for ax, f in zip(axes[0], facets):
        d = summary if f is None else summary[summary[col] == f]
        models = [m for m in (order or dict.fromkeys(d.model)) if m in set(d.model)]
        tasks = list(dict.fromkeys(d.task))
        w = 0.8 / max(len(models), 1)
        x = np.arange(len(tasks))
        for i, m in enumerate(models):
            r = d[d.model == m].set_index("task").reindex(tasks)
            ax.bar(x + i * w - 0.4 + w / 2, r["mean"], w, yerr=r["std"].fillna(0), label=m, capsize=2)
        lo = np.nanmin(d["mean"] - d["std"].fillna(0))
        ax.set_ylim(max(0.0, lo - 0.02), min(1.0, np.nanmax(d["mean"] + d["std"].fillna(0)) + 0.01))
        ax.set_xticks(x, tasks)
        ax.set(xlabel="task", ylabel="test AUC (mean ± std over seeds)",
               title=title if f is None else f"{title}: {f}")
    axes[0][-1].legend(fontsize="small", bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    return fig


def heatmap(matrix, xlabels: Sequence[str], ylabels: Sequence[str], title: str, xlabel: str, ylabel: str,
            fmt: str = ".2f", ax=None):
    """An annotated heatmap (gate weights, attention weights, partner choices)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    if ax is None:
        _, ax = plt.subplots(figsize=(1.2 + 0.9 * len(xlabels), 0.9 + 0.55 * len(ylabels)))
    sns.heatmap(matrix, annot=True, fmt=fmt, xticklabels=list(xlabels), yticklabels=list(ylabels),
                cmap="viridis", vmin=0, vmax=1, ax=ax, cbar=False)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return ax
