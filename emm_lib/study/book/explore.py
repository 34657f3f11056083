"""Teaching callbacks for notebook 06's interactive mode: watch the AKF gates respond to relatedness.

Pick a task, an AKF level and a seed, slide the synthetic data's task ``correlation``, and see the
task gate (Eq. 2: the weight on each trained component of the task) and the fusion gate (Eq. 3:
the weight on each partner task) of an EMM fused from freshly trained single-task models. The
widgets (ipywidgets) call these plain functions; :func:`batch_run` tells the notebook to draw
static figures instead when it is executed by papermill (the book stays static).
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Sequence

import pandas as pd

__all__ = ["TEACHING", "batch_run", "synthetic_trained", "fresh_emm", "fit_synthetic_emm", "gate_view", "gate_figure", "widget", "task_gate_sentence",
           "correlation_sentence"]

# Small on purpose: one fit of 2 x n_tasks single-task models and one EMM takes seconds on a CPU.
TEACHING = dict(n_tasks=3, n_rows=6000, epochs=3, batch_size=512)
COMPONENTS = ("TM-1", "TM-2")


def batch_run() -> bool:
    """True when the kernel runs under papermill (no widget frontend): draw static figures then.

    ``emm_lib.study.book.papermill_run`` sets ``EMM_NOTEBOOK_BATCH=1`` for its kernels; with plain papermill
    the kernel's parent process (Linux ``/proc``) names papermill.
    """
    if os.environ.get("EMM_NOTEBOOK_BATCH", "").strip() not in ("", "0"):
        return True
    try:
        parent = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    except OSError:
        return False
    return b"papermill" in parent


@functools.lru_cache(maxsize=16)
def synthetic_trained(correlation: float, seed: int, n_tasks: int = TEACHING["n_tasks"],
                      n_rows: int = TEACHING["n_rows"], epochs: int = TEACHING["epochs"], device: str = "auto"):
    """Synthetic data at ``correlation`` and TM-1/TM-2 trained per task (cached). Returns (trained, dataset)."""
    import torch

    from emm_lib import config
    from emm_lib.data import load
    from emm_lib.models import SingleTaskMLP
    from emm_lib.train import fit

    ds = load("synthetic", n_tasks=n_tasks, n_rows=n_rows, correlation=float(correlation), seed=seed)
    kw = dict(epochs=epochs, batch_size=TEACHING["batch_size"], seed=seed, device=device, patience=None)
    trained = {}
    for task in ds.tasks:
        trained[task] = []
        for shape in ("tm1", "tm2"):
            torch.manual_seed(seed)
            m = SingleTaskMLP(ds.spec, task, **config.model_settings("synthetic", shape))
            fit(m, ds, **kw)
            trained[task].append(m)
    return trained, ds


def fresh_emm(trained: dict, seed: int = 0):
    """An untrained EMM fused from ``trained`` (Algorithm 2) with the synthetic profile's sizes."""
    import torch

    from emm_lib import config
    from emm_lib.emm import EMM

    sizes = config.model_settings("synthetic", "emm")
    for k in ("embedding_dim", "component_shapes"):  # both come from the trained models
        sizes.pop(k, None)
    torch.manual_seed(seed)
    return EMM.from_trained(trained, **sizes)


@functools.lru_cache(maxsize=16)
def fit_synthetic_emm(correlation: float, seed: int, n_tasks: int = TEACHING["n_tasks"],
                      n_rows: int = TEACHING["n_rows"], epochs: int = TEACHING["epochs"], device: str = "auto"):
    """Synthetic data at ``correlation``, TM-1/TM-2 per task trained, fused into an EMM and trained
    (Algorithm 2); cached per arguments so moving a widget back is instant. Returns (emm, dataset)."""
    from emm_lib.train import fit

    trained, ds = synthetic_trained(correlation, seed, n_tasks, n_rows, epochs, device)
    emm = fresh_emm(trained, seed)
    fit(emm, ds, epochs=epochs, batch_size=TEACHING["batch_size"], seed=seed, device=device, patience=None)
    return emm.eval(), ds


def gate_view(correlation: float, seed: int = 0, task: str | None = None, level: int = 1,
              rows: int = 2048, **fit_kw) -> dict[str, pd.Series]:
    """Mean task-gate weights over components and fusion-gate weights over partners for one task
    and AKF level (1-based) on ``rows`` test rows: ``{"task_gate": Series, "fusion_gate": Series}``."""
    import torch

    emm, ds = fit_synthetic_emm(round(float(correlation), 4), int(seed), **fit_kw)
    task = task or ds.tasks[0]
    if task not in ds.tasks:
        raise ValueError(f"Unknown task {task!r}; this EMM has tasks {list(ds.tasks)}.")
    with torch.no_grad():
        details = emm.explain(next(ds.test.batches(rows)))
    levels = details["levels"]
    if not 1 <= level <= len(levels):
        raise ValueError(f"level must be between 1 and {len(levels)}, got {level}.")
    lv = levels[level - 1]
    g = lv["task_gate"][task].mean(0).numpy()
    names = list(COMPONENTS)[: len(g)] + [f"#{i + 1}" for i in range(len(COMPONENTS), len(g))]
    out = {"task_gate": pd.Series(g, index=names, name="weight")}
    if "partner_weights" in lv:
        out["fusion_gate"] = pd.Series(lv["partner_weights"][task].mean(0).numpy(), index=list(ds.tasks),
                                       name="weight")
    return out


def gate_figure(correlation: float | Sequence[float], seed: int = 0, task: str | None = None, level: int = 1,
                **fit_kw):
    """Per correlation, two bar panels: the task gate over the trained components and the fusion
    gate over partner tasks (one row per correlation when given several)."""
    import matplotlib.pyplot as plt

    from emm_lib.study.shared.present import task_name

    corrs = [correlation] if isinstance(correlation, (int, float)) else list(correlation)
    views = [gate_view(c, seed, task, level, **fit_kw) for c in corrs]
    ncols = max(len(v) for v in views)
    fig, axes = plt.subplots(len(corrs), ncols, figsize=(7.5, 0.4 + 2.4 * len(corrs)), squeeze=False)
    colours = ["#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc"]
    for row, (c, view) in enumerate(zip(corrs, views)):
        for ax, (name, s) in zip(axes[row], view.items()):
            ax.bar([task_name(str(i)) for i in s.index], s.values, color=colours[: len(s)])
            ax.set_ylim(0, 1.15)
            gate = "task gate (Eq. 2)" if name == "task_gate" else "fusion gate (Eq. 3)"
            ax.set(ylabel="mean weight", title=gate if len(corrs) == 1 else f"{gate}, correlation {c:.2f}")
            for x, v in enumerate(s.values):
                ax.annotate(f"{v:.2f}", (x, v), ha="center", va="bottom", fontsize=9)
    head = f"correlation {corrs[0]:.2f}, " if len(corrs) == 1 else ""
    fig.suptitle(f"{head}{task_name(task) if task else 'first task'}, AKF level {level}, seed {seed}",
                 fontweight="bold")
    fig.tight_layout()
    return fig


def widget(tasks: list[str] | None = None, levels: int = 3, seeds: tuple[int, ...] = (0, 1, 2), **fit_kw):
    """The interactive view (ipywidgets): task, level and seed pickers and a correlation slider."""
    import ipywidgets as w
    import matplotlib.pyplot as plt

    tasks = tasks or list(fit_synthetic_emm(0.5, seeds[0], **fit_kw)[1].tasks)

    def show(correlation: float, task: str, level: int, seed: int) -> None:
        fig = gate_figure(correlation, seed, task, level, **fit_kw)
        plt.show()

    return w.interactive(show, {"manual": False},
                         correlation=w.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.25, continuous_update=False),
                         task=w.Dropdown(options=tasks), level=w.IntSlider(value=1, min=1, max=levels),
                         seed=w.Dropdown(options=list(seeds)))


def _spread_words(lo: float, hi: float) -> str:
    if hi - lo < 0.1 and lo > 0.4 and hi < 0.6:
        return "about an even mix of the two trained models"
    return "a clear preference for one trained model" if max(abs(lo - 0.5), abs(hi - 0.5)) > 0.25 else "a mild preference"


def task_gate_sentence(details: dict, component: str = "TM-1") -> str:
    """What :meth:`emm_lib.emm.EMM.explain` output's task gates (Eq. 2) do, in one computed sentence:
    the range over levels of each task's mean weight on its first trained model."""
    parts, lo_all, hi_all, sharp = [], 1.0, 0.0, []
    for t in details["tasks"]:
        w = [float(lv["task_gate"][t][:, 0].mean()) for lv in details["levels"]]
        lo_all, hi_all = min(lo_all, *w), max(hi_all, *w)
        parts.append(f"{t} {min(w):.2f}\u2013{max(w):.2f}")
        sharp += [float(((g < 0.1) | (g > 0.9)).float().mean()) for g in
                  (lv["task_gate"][t][:, 0] for lv in details["levels"])]
    share = sum(sharp) / len(sharp)
    rows = (f" Per row the gate is far from its mean: {share:.0%} of the rows' weights are below 0.1 or above 0.9, "
            "so most rows lean almost wholly on one trained model and the mean averages those choices."
            if share >= 0.5 else f" Per row, {share:.0%} of the weights are below 0.1 or above 0.9.")
    return (f"Mean task-gate weight on {component} over the levels: {'; '.join(parts)}, "
            f"{_spread_words(lo_all, hi_all)} on average.{rows}")


def correlation_sentence(correlations: Sequence[float], seed: int = 0, task: str | None = None, level: int = 1,
                         **fit_kw) -> str:
    """What :func:`gate_figure` shows, in one computed sentence: how far the task gate's weight on
    TM-1 moves across ``correlations`` (cached fits: no retraining after the figure)."""
    w = [float(gate_view(c, seed, task, level, **fit_kw)["task_gate"].iloc[0]) for c in correlations]
    moved = max(w) - min(w)
    verdict = ("the gate barely responds to relatedness here" if moved < 0.1
               else "the gate moves with relatedness here")
    return (f"Task gate on TM-1 at correlations {', '.join(f'{c:g}' for c in correlations)}: "
            f"{', '.join(f'{x:.2f}' for x in w)} (level {level}, seed {seed}): it moves by {moved:.2f}; {verdict}.")
