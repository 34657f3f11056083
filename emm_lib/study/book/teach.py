"""Notebook 06's teaching path: see EMM being built.

1. **Where Algorithm 1 cuts.** :func:`cut_figure` draws two (or more) trained models layer by layer
   and the cut points :func:`emm_lib.deconstruct.deconstruct` chose; :func:`cut_widget` lets a
   student pick the models and the number of levels (ipywidgets).
2. **The gates while EMM trains.** :func:`gate_trace` trains a fresh EMM one epoch at a time and
   records after each epoch the mean task-gate weight on each trained model (Eq. 2) and the Multi-Task
   Merge's attention on the partner (Eqs. 4-6), calling ``on_epoch`` with the trace so far;
   :func:`gate_trace_figure` draws it; :func:`live_gates` redraws it after every epoch (a live plot
   in JupyterLab). Under papermill the notebook draws the same figures once, statically.

The callbacks are plain functions of data (tests/study/test_teach.py runs them without a browser).
"""
from __future__ import annotations

from typing import Callable, Sequence

import pandas as pd

from emm_lib.study.shared.present import task_name

__all__ = ["cut_table", "cut_figure", "cut_widget", "gate_snapshot", "gate_trace", "gate_trace_figure", "live_gates"]


def cut_table(decomposition) -> pd.DataFrame:
    """One row per (model, layer): the layer's short name and the level (component) it falls in."""
    from emm_lib.deconstruct.decomposition import short_name

    rows = []
    for i, comps in enumerate(decomposition.components):
        pos = 0
        for lvl, comp in enumerate(comps):
            for m in comp:
                rows.append({"model": decomposition.names[i], "position": pos, "level": lvl + 1, "layer": short_name(m)})
                pos += 1
    return pd.DataFrame(rows)


def cut_figure(decomposition, title: str = "Where Algorithm 1 cuts the trained models"):
    """Each model a column of its layers, bottom to top, shaded by the component (level) they fall in;
    a dashed line at each cut point."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    t = cut_table(decomposition)
    names = list(dict.fromkeys(t.model))
    depth = int(t.groupby("model").size().max())
    fig, ax = plt.subplots(figsize=(max(7.5, 3.0 * len(names)), 0.9 + 0.36 * depth))
    shades = ["#dbe9f6", "#fde8d0", "#d9f0d3", "#f2d9ef", "#eeeeee"]
    for j, name in enumerate(names):
        rows = t[t.model == name].reset_index(drop=True)
        for r in rows.itertuples():
            ax.add_patch(Rectangle((j * 3.0, r.position), 2.2, 0.9, fc=shades[(r.level - 1) % len(shades)], ec="0.4"))
            ax.text(j * 3.0 + 1.1, r.position + 0.45, r.layer, ha="center", va="center", fontsize=7)
        for cut in rows.index[rows.level.diff().fillna(0) > 0]:
            ax.plot([j * 3.0 - 0.1, j * 3.0 + 2.3], [cut - 0.05] * 2, color="#d55e00", ls="--", lw=1.5)
            ax.text(j * 3.0 + 2.32, cut - 0.05, f"cut {int(rows.level[cut]) - 1}|{int(rows.level[cut])}",
                    fontsize=6.5, color="#d55e00", va="center")
        ax.text(j * 3.0 + 1.1, -0.35, name, ha="center", va="top", fontsize=8.5, weight="bold")
    ax.set_xlim(-0.2, 3.0 * len(names) + 0.4)
    ax.set_ylim(-1.0, depth + 0.2)
    ax.axis("off")
    ax.set_title(f"{title}\n({decomposition.n_levels} levels; shading: the component of each layer)", fontsize=10)
    fig.tight_layout()
    return fig


def cut_widget(bodies: dict, max_levels: int = 4):
    """Pick two trained bodies (``{name: nn.Module}``) and a number of levels; see the cuts."""
    import ipywidgets as w
    import matplotlib.pyplot as plt

    from emm_lib.deconstruct import deconstruct

    names = list(bodies)

    def show(first: str, second: str, n_levels: int) -> None:
        try:
            d = deconstruct([bodies[first], bodies[second]], n_levels=n_levels, names=[first, second])
        except ValueError as e:  # no common structure at this many levels: say so
            print(f"Algorithm 1 finds no {n_levels}-level cut common to both: {e}")
            return
        cut_figure(d)
        plt.show()

    return w.interactive(show, first=w.Dropdown(options=names, value=names[0]),
                         second=w.Dropdown(options=names, value=names[min(1, len(names) - 1)]),
                         n_levels=w.IntSlider(value=min(3, max_levels), min=1, max=max_levels))


def gate_snapshot(emm, batch, epoch: int) -> pd.DataFrame:
    """The gates' mean weights on ``batch`` (eval mode): the task gate's weight on each trained model
    per task and level, and the MTM attention on the partner."""
    import torch

    was = emm.training
    emm.eval()
    with torch.no_grad():
        details = emm.explain(batch)
    emm.train(was)
    rows = []
    for lv in details["levels"]:
        for t in details["tasks"]:
            for k, wgt in enumerate(lv["task_gate"][t].mean(0).tolist()):
                rows.append({"epoch": epoch, "level": lv["level"], "task": t, "gate": f"task gate on TM-{k + 1}",
                             "weight": wgt})
            if "mtm" in lv:
                rows.append({"epoch": epoch, "level": lv["level"], "task": t, "gate": "MTM on partner",
                             "weight": float(lv["mtm"][t][:, 1].mean())})
    return pd.DataFrame(rows)


def gate_trace(emm, dataset, epochs: int = 5, on_epoch: Callable[[pd.DataFrame], None] | None = None,
               rows: int = 2048, **fit_kw) -> pd.DataFrame:
    """Train ``emm`` one epoch at a time (each epoch a call of :func:`emm_lib.train.fit`, so Adam
    restarts every epoch: a teaching view, not the study's training) and record :func:`gate_snapshot`
    before training (epoch 0) and after every epoch; ``on_epoch(trace)`` after each record."""
    from emm_lib.train import fit

    batch = next(dataset.val.batches(rows))
    trace = gate_snapshot(emm, batch, 0)
    if on_epoch:
        on_epoch(trace)
    for e in range(1, epochs + 1):
        fit(emm, dataset, epochs=1, patience=None, restore_best=False, **fit_kw)
        trace = pd.concat([trace, gate_snapshot(emm, batch, e)], ignore_index=True)
        if on_epoch:
            on_epoch(trace)
    return trace


def gate_trace_figure(trace: pd.DataFrame, component: str = "task gate on TM-1"):
    """One panel per level: per task, the task gate's weight on TM-1 (solid) and the MTM attention on
    the partner (dashed) against the epoch; 0.5 = an even mix."""
    import matplotlib.pyplot as plt

    from emm_lib.study.shared.plot_axes import integer_ticks

    levels = sorted(trace.level.unique())
    fig, axes = plt.subplots(1, len(levels), figsize=(max(7.5, 3.0 * len(levels)), 3.3), sharey=True, squeeze=False)
    for ax, lvl in zip(axes[0], levels):
        d = trace[trace.level == lvl]
        for i, (t, g) in enumerate(d.groupby("task", sort=False)):
            colour = f"C{i}"
            for gate, ls in ((component, "-"), ("MTM on partner", "--")):
                s = g[g.gate == gate]
                if len(s):
                    ax.plot(s.epoch, s.weight, ls=ls, marker="o", ms=3, color=colour, label=f"{task_name(t)}: {gate}")
        ax.axhline(0.5, color="0.5", lw=0.8, ls=":")
        ax.set(title=f"level {lvl}", xlabel="epoch", ylim=(0, 1))
        integer_ticks(ax.xaxis)
    axes[0][0].set_ylabel("mean weight (validation rows)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize="small", frameon=False)
    fig.suptitle("The gates while EMM trains", fontweight="bold")
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return fig


def live_gates(emm, dataset, epochs: int = 5, **fit_kw):
    """Train with :func:`gate_trace` and redraw :func:`gate_trace_figure` after every epoch in an
    ipywidgets Output (a live plot in JupyterLab). Returns the widget; training starts at once."""
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display

    out = w.Output()
    display(out)

    def redraw(trace: pd.DataFrame) -> None:
        with out:
            out.clear_output(wait=True)
            gate_trace_figure(trace)
            plt.show()

    gate_trace(emm, dataset, epochs, on_epoch=redraw, **fit_kw)
    return out
