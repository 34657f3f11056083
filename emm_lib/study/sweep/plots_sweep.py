"""Figures of the synthetic sweep (chapter 09): the map of EMM − best baseline, the gates."""
from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from emm_lib.study.shared.plot_axes import count_label, robust_limits

__all__ = ["difference_map", "gate_recovery"]

_TITLES = {"relatedness": ("Task relatedness", "correlation"), "task_count": ("Task count", "tasks"),
           "data_size": ("Data size (AliExpress-shaped)", "training rows"),
           "shapes": ("Trained-model shapes", "shapes of the fused models")}


def _panel(ax, view: pd.DataFrame, axis: str) -> None:
    """One axis of the map: each task's difference (a point with its CI, one colour per model), the
    mean over tasks (a line in the model's colour), and per position one note for the points off scale."""
    from emm_lib.study.shared import present
    from emm_lib.study.shared.glossary import value_label

    title, xlabel = _TITLES[axis]
    cats = sorted(view.x.unique(), key=lambda v: (isinstance(v, str), v))
    pos = {c: i for i, c in enumerate(cats)}
    groups = list(view.groupby(["model", "task"], sort=True))
    width = 0.6 / max(len(groups), 1)
    (lo, hi), off = robust_limits(view.mean_diff, (view.lo, view.hi))
    off = pd.Series(off, index=view.index)
    shown: set[str] = set()
    outside: dict[tuple, list[float]] = {}
    for j, ((model, task), v) in enumerate(groups):
        xs = np.array([pos[c] for c in v.x]) + (j - (len(groups) - 1) / 2) * width
        err = np.vstack([v.mean_diff - v.lo, v.hi - v.mean_diff])
        err = np.where(np.isfinite(err), err, 0.0)
        inside = ~off[v.index].to_numpy()
        colour = present.colour(model)
        ax.errorbar(xs[inside], v.mean_diff[inside], yerr=err[:, inside], fmt="o" if model == "emm" else "s",
                    ms=3.5, capsize=2, lw=1, color=colour, alpha=0.75,
                    label=None if model in shown else f"{present.display_name(model)}: each task")
        shown.add(model)
        for x, c, d in zip(xs[~inside], v.x[~inside], v.mean_diff[~inside]):  # a marker at the edge
            ax.plot(x, lo if d < lo else hi, "v" if d < lo else "^", ms=6, color=colour, clip_on=False)
            outside.setdefault((pos[c], d < lo), []).append(d)
    for (x, below), ds in outside.items():  # one note per position and edge, not one per point
        worst = min(ds) if below else max(ds)
        ax.annotate(f"{len(ds)} off scale, to {present.fmt_diff(worst, 3)}", (x, lo if below else hi),
                    xytext=(0, 8 if below else -14), textcoords="offset points", ha="center", fontsize=7)
    mean = view.groupby(["model", "x"]).mean_diff.mean().reset_index()
    for model, v in mean.groupby("model"):
        ax.plot([pos[c] for c in v.x], v.mean_diff, "-", lw=1.6, color=present.colour(model),
                label=f"{present.display_name(model)}: mean over tasks")
    ax.axhline(0, color="k", lw=0.8, ls=":")
    ax.set_ylim(lo, hi)
    ax.set_xticks(range(len(cats)), [value_label(count_label(c)) for c in cats])
    ax.set_xlim(-0.5, len(cats) - 0.5)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test AUC: EMM − best baseline")


def difference_map(views: Mapping[str, pd.DataFrame]):
    """One panel per sweep axis, one below the other (readable at the book's width): per task, EMM −
    its validation-chosen comparator with 95% CIs (points), and the mean over tasks (line); 0 = no
    difference."""
    views = {a: v for a, v in views.items() if len(v)}
    n = max(len(views), 1)
    fig, axes = plt.subplots(n, 1, figsize=(7.5, 3.9 * n), squeeze=False)
    for ax, (axis, view) in zip(axes.flat, views.items()):
        _panel(ax, view, axis)
        ax.legend(fontsize=8, ncols=2, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    fig.tight_layout()
    return fig


def gate_recovery(rec: pd.DataFrame):
    """Left: per level, the MTM attention on the partner task and the task gate's weight on the
    first trained model, against the known correlation (2 tasks, EMM). Right: the fusion gate's
    largest mean partner weight against the task count, with 1/(T−1) (no preference)."""
    from emm_lib.study.shared import present

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.6))
    rel = rec[(rec.n_tasks == 2) & (rec["shape"] == "widths") & (rec.generator == "synthetic") & (rec.model == "emm")]
    for level, v in rel.groupby("level"):
        m = v.groupby("correlation")[["mtm_partner", "task_gate_model0"]].agg(["mean", "std"])
        x = m.index.to_numpy(float)
        a.errorbar(x, m["mtm_partner"]["mean"], yerr=m["mtm_partner"]["std"].fillna(0), marker="o", capsize=2,
                   label=f"MTM on partner, level {level}")
        a.errorbar(x, m["task_gate_model0"]["mean"], yerr=m["task_gate_model0"]["std"].fillna(0), marker="s",
                   ls="--", capsize=2, label=f"task gate on TM-1, level {level}")
    a.axhline(0.5, color="k", lw=0.8, ls=":")
    a.set_xlabel("known task correlation")
    a.set_ylabel("mean gate weight (validation)")
    a.set_title("2 tasks: do the gates follow relatedness?")
    a.set_ylim(0, 1)
    a.legend(fontsize=7, ncols=2, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    many = rec[(rec.generator == "synthetic") & (rec["shape"] == "widths")]
    for model, v in many.groupby("model"):
        m = v.groupby("n_tasks").partner_max.mean()
        b.plot(m.index, m.values, "o-", label=present.display_name(model))
    ks = np.array(sorted(many.n_tasks.unique())) if len(many) else np.array([2])
    b.plot(ks, 1 / np.maximum(ks - 1, 1), "k:", label="1/(T−1): no preference")
    b.set_xlabel("number of tasks")
    b.set_xticks(ks, [str(int(k)) for k in ks])  # only the counts that were run: no tick at 5
    b.set_ylim(0, 1.05)
    b.set_ylabel("largest mean partner weight")
    b.set_title("Fusion gate: partner choice")
    b.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    fig.tight_layout()
    return fig
