"""Figures for the book (matplotlib/seaborn), readable at book width. Notebooks call these."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from emm_lib.study.shared.plot_axes import bound_auc, integer_ticks, plain_ticks as _plain_ticks, png_bytes
from emm_lib.utils import repo_root

__all__ = ["style", "learning_curves", "task_panels", "task_count_lines", "forest", "paper_vs_ours", "heatmap",
           "task_gate_heatmaps", "task_gate_spread", "partner_heatmaps", "mtm_heatmap", "row_path", "save",
           "book_figure"]


def style() -> None:
    import matplotlib as mpl
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    mpl.rcParams.update({"figure.dpi": 110, "savefig.dpi": 110, "figure.figsize": (7.5, 4.0),
                         "axes.titleweight": "bold"})
    from emm_lib.study.shared.plot_axes import install_png_formatter

    install_png_formatter()  # inline figures record their AUC axes (tests/browser_check.py reads them)


def learning_curves(histories: dict[str, pd.DataFrame], title: str = "Validation AUC per epoch"):
    """One line per run: mean validation AUC against epoch (from ``FitResult.history``)."""
    import matplotlib.pyplot as plt

    from emm_lib.study.shared import present

    fig, ax = plt.subplots()
    styles = ["-", "--", ":", "-."]
    suffixes = list(dict.fromkeys(n.split(":", 1)[-1] for n in histories))
    for name, h in histories.items():
        ls = styles[suffixes.index(name.split(":", 1)[-1]) % len(styles)] if ":" in name else "-"
        ax.plot(h.epoch, h.val_auc_mean, marker="o", ms=3, ls=ls, color=present.colour(name),
                label=present.display_name(name))
    ax.set(xlabel="epoch", ylabel="validation AUC (multi-task: mean over tasks)", title=title)
    integer_ticks(ax.xaxis)
    bound_auc(ax, "y")
    ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    return fig


def _ci(summary: pd.DataFrame) -> pd.DataFrame:
    from emm_lib.study.shared.present import with_ci

    return with_ci(summary) if "ci_low" not in summary else summary


def _asym(mean: float, lo: float, hi: float) -> list[list[float]]:
    """Error-bar lengths below and above ``mean`` (AUC intervals are asymmetric near 1); 0 when missing."""
    return [[mean - lo if pd.notna(lo) else 0.0], [hi - mean if pd.notna(hi) else 0.0]]


def _panels(n: int, width: float = 3.6, height: float = 3.2, sharey: bool = True, ncols: int = 2):
    """A grid of ``n`` panels, at most ``ncols`` per row (unused cells hidden)."""
    import matplotlib.pyplot as plt

    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(7.5, width * ncols), height * nrows), squeeze=False,
                             sharey=sharey)
    axes = list(axes.flat)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def task_panels(summary: pd.DataFrame, order: Sequence[str] | None = None, title: str = "Test AUC per task"):
    """Mean test AUC with its 95% CI over seeds, one panel per task with its own AUC axis.

    ``summary``: columns model, task, mean, std, n (:func:`emm_lib.study.summarize`). Models run
    down the shared vertical axis in the book's order and colours; a model without a score for
    a task is simply absent from that panel.
    """
    from emm_lib.study.shared import present

    s = _ci(summary)
    models = [m for m in (order or present.sort_models(s.model)) if m in set(s.model)]
    tasks = list(dict.fromkeys(s.task))
    fig, axes = _panels(len(tasks), height=0.9 + 0.38 * len(models))
    y = {m: i for i, m in enumerate(models)}
    for ax, t in zip(axes, tasks):
        d = s[(s.task == t) & s.model.isin(models)]
        for r in d.itertuples():
            ax.errorbar(r.mean, y[r.model], xerr=_asym(r.mean, r.ci_low, r.ci_high), fmt="o",
                        color=present.colour(r.model), capsize=3, ms=6)
        ax.set_title(present.task_name(t))
        ax.set_xlabel("test AUC")
        _plain_ticks(ax.xaxis, 3)
        bound_auc(ax, "x")
    for ax in axes[::2]:
        ax.set_yticks(range(len(models)), [present.display_name(m) for m in models])
    axes[0].set_ylim(len(models) - 0.5, -0.5)
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


def task_count_lines(summary: pd.DataFrame, order: Sequence[str] | None = None,
                     title: str = "Test AUC over the number of tasks"):
    """Figure 3 as lines: mean test AUC (95% CI over seeds) against the number of tasks, one panel per task.

    ``summary``: columns dataset (``census``, ``census/3-tasks``, ...), model, task, mean, std, n.
    """
    from emm_lib.study.shared import present

    s = _ci(summary).copy()
    s["k"] = s.dataset.map(present.task_count)
    models = [m for m in (order or present.sort_models(s.model)) if m in set(s.model)]
    tasks = list(dict.fromkeys(s.task))
    counts = sorted(int(k) for k in s.k.unique())
    fig, axes = _panels(len(tasks), width=4.6, height=3.3, sharey=False)
    for ax, t in zip(axes, tasks):
        for j, m in enumerate(models):
            d = s[(s.task == t) & (s.model == m)].sort_values("k")
            if d.empty:
                continue
            x = d.k + (j - (len(models) - 1) / 2) * 0.04  # a small dodge so CIs do not overlap
            err = np.nan_to_num(np.vstack([d["mean"] - d.ci_low, d.ci_high - d["mean"]]).astype(float))
            ax.errorbar(x, d["mean"], yerr=err, marker="o", ms=4, capsize=2, lw=1.4,
                        color=present.colour(m), label=present.display_name(m))
        ax.set_xticks(counts, [str(k) for k in counts])
        ax.set_xlim(counts[0] - 0.3, counts[-1] + 0.3)
        ax.set(title=present.task_name(t), xlabel="number of tasks")
        _plain_ticks(ax.yaxis)
        bound_auc(ax, "y")
    axes[0].set_ylabel("test AUC (mean, 95% CI)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize="small",
               bbox_to_anchor=(0.5, -0.02), frameon=False)
    fig.suptitle(title, fontweight="bold")
    nrows = -(-len(tasks) // 2)
    fig.tight_layout(rect=(0, (0.05 + 0.035 * ((len(labels) - 1) // 4)) / nrows, 1, 1))
    return fig


def _row_label(experiment: str, dataset: str, model: str, several_models: bool) -> str:
    from emm_lib.study.shared import present

    lab = f"{present.experiment_name(experiment)}, {present.task_count(dataset)} tasks"
    return f"{lab}: {present.display_name(model)}" if several_models else lab


def forest(cmp: pd.DataFrame, title: str = "EMM \u2212 best baseline (test AUC)", ncols: int = 2):
    """The study's main figure: each model's difference to its comparator with 95% CIs.

    ``cmp`` has the columns of :func:`emm_lib.study.shared.stats.compare` (one row per experiment, dataset,
    task, model). One panel per task with its own axis; one row per experiment (and model), the
    comparator named above its marker. A thick bar is the seed-level CI, a thin bar the CI that
    adds test-set sampling error (when recorded). Filled markers: a detectable difference under
    the study's verdict rule; hollow: none.
    """
    import matplotlib.pyplot as plt

    from emm_lib.study.shared import present

    c = cmp.copy()
    several = c.model.nunique() > 1
    c["row"] = [_row_label(e, d, m, several) for e, d, m in zip(c.experiment, c.dataset, c.model)]
    rows = list(dict.fromkeys(c.row))
    tasks = list(dict.fromkeys(c.task))
    ncols = min(ncols, len(tasks))
    nrows = -(-len(tasks) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(10.5, nrows * (1.2 + 0.55 * len(rows))), squeeze=False,
                             sharey=True)
    axes = list(axes.flat)
    for ax in axes[len(tasks):]:
        ax.set_visible(False)
    for ax, t in zip(axes, tasks):
        ax.axvline(0, color="0.3", lw=1, ls="--")
        for r in c[c.task == t].itertuples():
            y, col = rows.index(r.row), present.colour(r.comparator)
            if pd.notna(r.ci_low_test):
                ax.plot([r.ci_low_test, r.ci_high_test], [y, y], color=col, lw=1.2)
            if pd.notna(r.ci_low):
                ax.plot([r.ci_low, r.ci_high], [y, y], color=col, lw=3.5, solid_capstyle="butt")
            detect = r.verdict in ("better", "worse")
            ax.plot(r.mean_diff, y, "o", ms=7, color=col, mfc=col if detect else "white", mew=1.8, zorder=3)
            ax.annotate(f"vs {present.display_name(r.comparator)}", (r.mean_diff, y), xytext=(0, 7),
                        textcoords="offset points", ha="center", va="bottom", fontsize=8, color="0.25")
        ax.set_title(present.task_name(t))
        ax.set_xlabel("difference in test AUC")
        _plain_ticks(ax.xaxis)
    for ax in axes[::ncols]:
        ax.set_yticks(range(len(rows)), rows)
    axes[0].set_ylim(len(rows) - 0.4, -0.75)
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


def paper_vs_ours(summary: pd.DataFrame, paper_table: str = "table1_census",
                  title: str = "The paper's single runs beside our mean and 95% CI"):
    """Per task: the paper's value (diamond) beside our mean with its 95% CI over seeds (dot).

    ``paper_table`` names a table of ``config.PAPER_TABLES``; its rows map to our models through
    :data:`emm_lib.study.shared.present.PAPER_MODEL_IDS` (TM-1 on task t is our ``tm1:t``).
    """
    from emm_lib import config
    from emm_lib.study.shared import present

    s = _ci(summary)
    table = config.PAPER_TABLES[paper_table]
    tasks = list(dict.fromkeys(t for v in table.values() for t in v))
    names = list(table)
    fig, axes = _panels(len(tasks), width=3.6, height=1.0 + 0.42 * len(names))
    for ax, t in zip(axes, tasks):
        for y, name in enumerate(names):
            mid = present.PAPER_MODEL_IDS.get(name, name)
            model = f"{mid}:{t}" if mid in ("tm1", "tm2") else mid
            col = present.colour(model)
            if t in table[name]:
                ax.plot(table[name][t], y, "D", ms=6, mfc="white", mec=col, mew=1.6,
                        label="paper (single run)" if y == 0 else None)
            r = s[(s.model == model) & (s.task == t)]
            if len(r):
                r = r.iloc[0]
                ax.errorbar(r["mean"], y, xerr=_asym(r["mean"], r.ci_low, r.ci_high), fmt="o", color=col,
                            capsize=3, ms=6,
                            label="ours (mean, 95% CI)" if y == 0 else None)
        ax.set(title=present.task_name(t), xlabel="test AUC")
        _plain_ticks(ax.xaxis, 3)
        bound_auc(ax, "x")
    axes[0].set_yticks(range(len(names)), [_paper_row_label(n) for n in names])
    axes[0].set_ylim(len(names) - 0.5, -0.5)
    from matplotlib.lines import Line2D

    fig.legend([Line2D([], [], marker="D", ls="", mfc="white", mec="0.3"),
                Line2D([], [], marker="o", ls="", color="0.3")],
               ["paper (single run)", "ours (mean, 95% CI over seeds)"], loc="lower center", ncol=2,
               fontsize="small", frameon=False)
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def _paper_row_label(name: str) -> str:
    """A paper row in the book's names ("baseline+MTM" -> "EMM +MTM"); TM-1/TM-2 stay per task."""
    from emm_lib.study.shared import present

    mid = present.PAPER_MODEL_IDS.get(name, name)
    return name if mid in ("tm1", "tm2") else present.display_name(mid)


def heatmap(matrix, xlabels: Sequence[str], ylabels: Sequence[str], title: str, xlabel: str, ylabel: str,
            fmt: str = ".2f", ax=None):
    """An annotated heatmap (gate weights, attention weights, partner choices)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    if ax is None:
        _, ax = plt.subplots(figsize=(1.2 + 0.9 * len(xlabels), 0.9 + 0.55 * len(ylabels)))
    xlabels = [str(x).replace(" ", "\n") for x in xlabels]  # "marital status" on two lines: no collision
    sns.heatmap(matrix, annot=True, fmt=fmt, xticklabels=xlabels, yticklabels=list(ylabels),
                cmap="viridis", vmin=0, vmax=1, ax=ax, cbar=False)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.tick_params(axis="x", labelrotation=0)  # horizontal labels never run into each other
    ax.tick_params(axis="y", labelrotation=0)
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
        heatmap(g, names, [f"level {lv['level']}" for lv in levels], title=f"task gate: {_task(t)}",
                xlabel="component", ylabel="", ax=ax)
    fig.tight_layout()
    return fig


def _task(t: str) -> str:
    from emm_lib.study.shared.present import task_name

    return task_name(t)


def task_gate_spread(details: dict, component: int = 0, name: str = "TM-1"):
    """Histogram over rows of the task-gate weight on one component: one panel per level, one
    outline per task (small multiples, not every histogram on one axis)."""
    import matplotlib.pyplot as plt

    from emm_lib.study.shared import present

    levels = details["levels"]
    fig, axes = plt.subplots(1, len(levels), figsize=(max(7.5, 3.0 * len(levels)), 3.2), sharey=True,
                             squeeze=False)
    for ax, lv in zip(axes[0], levels):
        for t in details["tasks"]:
            ax.hist(lv["task_gate"][t][:, component].numpy(), bins=40, range=(0, 1), histtype="step", lw=1.5,
                    label=present.task_name(t))
        ax.set(title=f"level {lv['level']}", xlabel=f"weight on {name}", xlim=(0, 1))
        integer_ticks(ax.yaxis)  # rows are counted
    axes[0][0].set_ylabel("rows")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize="small", frameon=False)
    fig.suptitle("Task-gate weights across rows", fontweight="bold")
    fig.tight_layout(rect=(0, 0.08, 1, 1))  # the legend below the panels, not over a histogram
    return fig


def partner_heatmaps(details: dict):
    """Mean fusion-gate partner weights (Eq. 3) per level: rows the task, columns its partner."""
    import matplotlib.pyplot as plt
    import numpy as np

    tasks, levels = list(details["tasks"]), details["levels"]
    fig, axes = plt.subplots(1, len(levels), figsize=(1.2 + 2.6 * len(levels), 0.9 + 0.6 * len(tasks)), squeeze=False)
    for ax, lv in zip(axes[0], levels):
        w = np.stack([lv["partner_weights"][t].mean(0).numpy() for t in tasks])
        names = [_task(t) for t in tasks]
        heatmap(w, names, names, title=f"level {lv['level']}", xlabel="partner", ylabel="task", ax=ax)
    fig.tight_layout()
    return fig


def mtm_heatmap(details: dict):
    """Mean MTM attention (Eqs. 4-6) on the task's own representation, per task and level."""
    import numpy as np

    tasks, levels = list(details["tasks"]), details["levels"]
    own = np.array([[lv["mtm"][t][:, 0].mean().item() for lv in levels] for t in tasks])
    return heatmap(own, [f"level {lv['level']}" for lv in levels], [_task(t) for t in tasks],
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


def book_figure(name: str) -> Path:
    """Where the book's pages read a figure a notebook makes: ``book/notebooks/figures/<name>`` in
    the repository, whatever the notebook's working directory (``notebooks/`` under papermill,
    ``book/notebooks/`` when the executed copy is re-run by the notebook tests)."""
    return repo_root() / "book" / "notebooks" / "figures" / name


def save(fig, path: str | Path) -> Path:
    """Write ``fig`` as PNG atomically (a temporary file renamed into place); returns the path."""
    import os
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".png.tmp")
    os.close(fd)
    try:
        with open(tmp, "wb") as f:
            f.write(png_bytes(fig))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
