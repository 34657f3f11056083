"""The method chapter's picture of EMM: trained models cut into components (Algorithm 1), AKF levels
(Eqs. 2-6) and one tower per task. Every label is a name of the code (the classes of
:mod:`emm_lib.akf`, :func:`emm_lib.deconstruct.deconstruct`, ``EMM.levels`` and ``EMM.towers``), so the
figure and the library cannot drift apart silently."""
from __future__ import annotations

from typing import Sequence

__all__ = ["code_names", "architecture"]


def code_names() -> dict[str, str]:
    """The names the figure shows, read from the code."""
    from emm_lib import akf, emm
    from emm_lib.deconstruct import deconstruct

    return {"deconstruct": deconstruct.__name__, "level": akf.AKF.__name__, "task_gate": akf.TaskGate.__name__,
            "fusion_gate": akf.FusionGate.__name__, "mtm": akf.MultiTaskMerge.__name__, "model": emm.EMM.__name__,
            "levels": "levels", "towers": "towers"}


def _box(ax, x, y, w, h, text, face, edge="0.25", size=10, weight="normal", ls="-"):
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.01,rounding_size=0.08", fc=face, ec=edge,
                                lw=1, ls=ls))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size, weight=weight)


def _arrow(ax, x0, y0, x1, y1, colour="0.35", ls="-"):
    ax.annotate("", (x1, y1), (x0, y0), arrowprops=dict(arrowstyle="-|>", color=colour, lw=1, ls=ls,
                                                        shrinkA=1, shrinkB=1))


def architecture(tasks: Sequence[str] = ("income", "marital"), models: Sequence[str] = ("TM-1", "TM-2"),
                 n_levels: int = 3):
    """Left: each task's trained models, cut by ``deconstruct`` into ``n_levels`` components
    (frozen). Right: ``EMM.levels``, one ``AKF`` per level whose ``TaskGate`` mixes a task's own
    components (Eq. 2), ``FusionGate`` picks a partner task (Eq. 3) and ``MultiTaskMerge`` merges the
    two (Eqs. 4-6); ``EMM.towers`` on top, one per task."""
    import matplotlib.pyplot as plt

    from emm_lib.study.shared.present import task_name

    n = code_names()
    tasks = [task_name(t) for t in tasks]
    pairs = [(t, m) for t in tasks for m in models]
    fig, ax = plt.subplots(figsize=(10.5, 2.2 + 1.6 * n_levels))
    comp_w, gap = 0.62, 0.12
    left_w = len(pairs) * (comp_w + gap)
    x_emm = left_w + 0.9
    task_w = 2.35
    y0, lh = 0.55, 1.5
    blues = ["#dbe9f6", "#c6dbef", "#9ecae1", "#6baed6"]
    for j, (t, m) in enumerate(pairs):  # trained models, cut into components
        x = j * (comp_w + gap)
        ax.text(x + comp_w / 2, y0 - 0.28, f"{m}\n({t})".replace(" ", "\n"), ha="center", va="top", fontsize=9.5)
        for lvl in range(n_levels):
            _box(ax, x, y0 + lvl * lh + 0.1, comp_w, lh - 0.2, f"comp.\n{lvl + 1}", blues[lvl % len(blues)], size=9)
            if lvl:
                ax.plot([x - 0.04, x + comp_w + 0.04], [y0 + lvl * lh] * 2, color="#d55e00", lw=1.2, ls="--")
    ax.text(left_w / 2 - gap / 2, y0 + n_levels * lh + 0.1,
            f"trained single-task models, cut by {n['deconstruct']}()\n(Algorithm 1; dashed: the cut points; frozen)",
            ha="center", va="bottom", fontsize=10, color="0.15")
    for lvl in range(n_levels):  # the AKF levels
        y = y0 + lvl * lh
        _box(ax, x_emm - 0.15, y + 0.02, len(tasks) * (task_w + 0.2) + 0.1, lh - 0.04, "", "#f4f4f4", ls=":")
        ax.text(x_emm - 0.1, y + lh - 0.14, f"level {lvl + 1} ({n['model']}.{n['levels']}[{lvl}]): {n['level']}", fontsize=9,
                color="0.3", va="center")
        for k, t in enumerate(tasks):
            xt = x_emm + k * (task_w + 0.2)
            _box(ax, xt, y + 0.2, task_w, lh - 0.55,
                 f"{t}: {n['task_gate']} (Eq. 2)\n\u2192 {n['fusion_gate']} (Eq. 3)\n\u2192 {n['mtm']} (Eqs. 4\u20136)",
                 "#fde8d0", size=9)
        _arrow(ax, left_w - gap + 0.05, y + lh / 2, x_emm - 0.18, y + lh / 2, colour="#0173b2")
        if len(tasks) > 1:  # the fusion gate's partner: another task's representation at this level
            ax.annotate("", (x_emm + task_w + 0.2, y + lh / 2 - 0.05), (x_emm + task_w, y + lh / 2 - 0.05),
                        arrowprops=dict(arrowstyle="<|-|>", color="#d55e00", lw=1.2, shrinkA=0, shrinkB=0))
    yt = y0 + n_levels * lh + 0.15
    for k, t in enumerate(tasks):  # towers
        xt = x_emm + k * (task_w + 0.2)
        _box(ax, xt + 0.1, yt, task_w - 0.2, 0.5, f"{n['model']}.{n['towers']}[{k}] \u2192 \u0177 ({t})", "#d9f0d3",
             size=9.5)
        for lvl in range(n_levels - 1):
            _arrow(ax, xt + task_w / 2, y0 + (lvl + 1) * lh - 0.33, xt + task_w / 2, y0 + (lvl + 1) * lh + 0.2)
        _arrow(ax, xt + task_w / 2, y0 + n_levels * lh - 0.33, xt + task_w / 2, yt)
    ax.text(x_emm + len(tasks) * (task_w + 0.2) / 2 - 0.1, y0 - 0.28,
            "component l of every trained model feeds level l (blue); the tasks exchange partners (orange)", ha="center", va="top", fontsize=9,
            color="0.3")
    ax.set_xlim(-0.1, x_emm + len(tasks) * (task_w + 0.2) + 0.1)
    ax.set_ylim(-0.2, yt + 0.7)
    ax.axis("off")
    fig.tight_layout()
    return fig
