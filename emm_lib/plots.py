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


# ---------------------------------------------------------------- inside AKF (EMM.explain output)

def task_gate_heatmaps(details: dict, component_names: Sequence[str] = ("TM-1", "TM-2")):
    """Mean task-gate weight (Eq. 2) per task, level and component."""
    import matplotlib.pyplot as plt
    import numpy as np

    tasks, levels = list(details["tasks"]), details["levels"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 0.9 + 0.6 * len(levels)), squeeze=False)
    for ax, t in zip(axes[0], tasks):
        g = np.stack([lv["task_gate"][t].mean(0).numpy() for lv in levels])
        names = list(component_names)[: g.shape[1]] + [f"#{i + 1}" for i in range(len(component_names), g.shape[1])]
        heatmap(g, names, [f"level {lv['level']}" for lv in levels], title=f"task gate: {t}",
                xlabel="component", ylabel="", ax=ax)
    fig.tight_layout()
    return fig


def task_gate_spread(details: dict, component: int = 0, name: str = "TM-1"):
    """Histogram over rows of the task-gate weight on one component, per task and level."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    for t in details["tasks"]:
        for lv in details["levels"]:
            ax.hist(lv["task_gate"][t][:, component].numpy(), bins=40, range=(0, 1), histtype="step", lw=1.5,
                    label=f"{t}, level {lv['level']}")
    ax.set(xlabel=f"weight on {name} (per row)", ylabel="rows", title="Task-gate weights across rows")
    ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    return fig


def partner_heatmaps(details: dict):
    """Mean fusion-gate partner weights (Eq. 3) per level: rows the task, columns its partner."""
    import matplotlib.pyplot as plt
    import numpy as np

    tasks, levels = list(details["tasks"]), details["levels"]
    fig, axes = plt.subplots(1, len(levels), figsize=(1.2 + 2.6 * len(levels), 0.9 + 0.6 * len(tasks)), squeeze=False)
    for ax, lv in zip(axes[0], levels):
        w = np.stack([lv["partner_weights"][t].mean(0).numpy() for t in tasks])
        heatmap(w, tasks, tasks, title=f"level {lv['level']}", xlabel="partner", ylabel="task", ax=ax)
    fig.tight_layout()
    return fig


def mtm_heatmap(details: dict):
    """Mean MTM attention (Eqs. 4-6) on the task's own representation, per task and level."""
    import numpy as np

    tasks, levels = list(details["tasks"]), details["levels"]
    own = np.array([[lv["mtm"][t][:, 0].mean().item() for lv in levels] for t in tasks])
    return heatmap(own, [f"level {lv['level']}" for lv in levels], tasks,
                   title="MTM attention on the task's own representation", xlabel="", ylabel="task")


def row_path(details: dict, row: int, component_names: Sequence[str] = ("TM-1", "TM-2")) -> pd.DataFrame:
    """One example's way through the levels: gate weights, partner and attention."""
    tasks, out = list(details["tasks"]), []
    for lv in details["levels"]:
        for t in tasks:
            r = {"level": lv["level"], "task": t}
            for i, w in enumerate(lv["task_gate"][t][row].tolist()):
                r[f"gate {component_names[i] if i < len(component_names) else i}"] = round(w, 4)
            if "mtm" in lv:
                r["partner"] = tasks[int(lv["partner"][t][row])]
                r["attention on own"] = round(float(lv["mtm"][t][row, 0]), 4)
            out.append(r)
    return pd.DataFrame(out)
