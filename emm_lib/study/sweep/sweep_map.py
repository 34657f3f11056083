"""The synthetic map's second pass as tables and words (chapter 09; no training here).

The map (:data:`emm_lib.config.SYNTHETIC_MAPS`, experiment ``synthetic_map``) runs every point in
several *worlds* (a world = one generated dataset, data seed = the world; every model of a world
sees the same rows), so each comparison is paired within a world. This module reads its runs:

* :func:`coverage`: per point, the worlds done and planned, the init seeds per world, complete or not.
* :func:`cap_shares` / :func:`cap_excess`: how often a model's run stopped at the epoch cap
  (early stopping never acted), per model and point; the models over the grid's limit.
* :func:`learnability`: a task is learnable when its trained single-task models reach the grid's
  ``auc_floor`` (mean test AUC over worlds and both shapes); a point with an unlearnable task is
  "no signal": it gets no verdict.
* :func:`family`: EMM against its validation-chosen comparator at every complete point with signal,
  Holm once over the whole map (:func:`emm_lib.study.shared.verdicts.apply_family`).
* :func:`point_verdicts`, :func:`shares`, :func:`largest_gain` (a family-wise interval, bounded
  to a difference's range by :func:`emm_lib.study.shared.stats.bounded_ci`), :func:`gate_relation` (the gates'
  slope on the known correlation with a bootstrap interval over worlds), and :func:`summary` /
  :func:`abstract`: the reader's words, computed from those tables.
"""
from __future__ import annotations

import json
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as _st

from emm_lib import config
from emm_lib.study.shared import stats, verdicts
from emm_lib.study.sweep.grid import point_key, points, worlds

__all__ = ["run_table", "coverage", "cap_shares", "cap_excess", "learnability", "no_signal", "family",
           "point_verdicts", "shares", "largest_gain", "gate_relation", "summary", "abstract"]

_REGIMES = ("worse", "mixed", "no detectable difference", "better")


def _kind(model: str) -> str:
    """A run's model as the cap rule counts it: ``tm1:t3`` -> ``tm1:all tasks`` (one model, every task;
    the reader's name is "TM-1 (all tasks)")."""
    head = str(model).split(":")[0]
    return f"{head}:all tasks" if head in config.TM_SHAPES else str(model)


def run_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run (dataset, model, seed): its point, best epoch, epochs run, the epoch cap and
    ``at_cap`` (it ran every epoch of the cap: early stopping never ended it)."""
    r = runs.drop_duplicates(["dataset", "model", "seed"], keep="last").copy()
    s = r.settings.map(json.loads)
    r["epochs_run"] = s.map(lambda d: d.get("epochs_run")).astype(float)
    r["epochs_cap"] = s.map(lambda d: d.get("epochs")).astype(float)
    r["at_cap"] = r.epochs_run >= r.epochs_cap
    r["model_kind"] = r.model.map(_kind)
    keep = ["dataset", "generator", "n_rows", "n_tasks", "correlation", "model", "model_kind", "seed", "best_epoch",
            "epochs_run", "epochs_cap", "at_cap", "train_seconds"]
    return r[[c for c in keep if c in r]].reset_index(drop=True)


def coverage(runs: pd.DataFrame, g: dict, axes: Sequence[str] | None = None) -> pd.DataFrame:
    """Per point of the grid: axis, point key, worlds planned, worlds done (every planned model, trained
    models included, has rows in that world), init seeds per world, and ``complete``."""
    from emm_lib.study.shared.run_settings import experiment_tasks
    from emm_lib.study.sweep.grid import parse

    have = runs.groupby(["dataset", "seed"]).model.apply(set) if len(runs) else pd.Series(dtype=object)
    rows = []
    for axis, data, k, labels in points(g, axes):
        key, planned = point_key(data, k), worlds(g, axis, data)
        tasks = experiment_tasks(parse(data)["generator"], k)
        need = set(labels) | {f"{s}:{t}" for s in config.TM_SHAPES for t in tasks}
        done = [w for w in planned if (key, w) in have.index and need <= have[(key, w)]]
        rows.append({"axis": axis, "dataset": key, "worlds_planned": len(planned), "worlds_done": len(done),
                     "init_seeds_per_world": 1, "complete": len(done) >= len(planned)})
    return pd.DataFrame(rows)


def cap_shares(runs: pd.DataFrame, by: Sequence[str] = ("dataset", "model_kind")) -> pd.DataFrame:
    """Per ``by`` group: runs, runs that stopped at the cap, their share, the median epochs run and
    the largest best epoch (the appendix's table; ``by=("model_kind",)``: per model)."""
    t = run_table(runs)
    if t.empty:
        return pd.DataFrame(columns=[*by, "runs", "at_cap_runs", "cap_share", "epochs_run_median",
                                     "best_epoch_max", "epochs_cap"])
    return (t.groupby(list(by), sort=True)
            .agg(runs=("seed", "count"), at_cap_runs=("at_cap", "sum"), cap_share=("at_cap", "mean"),
                 epochs_run_median=("epochs_run", "median"), best_epoch_max=("best_epoch", "max"),
                 epochs_cap=("epochs_cap", "max")).reset_index())


def cap_excess(runs: pd.DataFrame, datasets: Iterable[str] | None = None, limit: float | None = None) -> pd.DataFrame:
    """The models (trained models counted per shape) whose runs at ``datasets`` (default: all) stopped at
    the cap more often than ``limit`` (default: the map's ``cap_share_max``); empty when none did."""
    limit = config.SYNTHETIC_MAP["cap_share_max"] if limit is None else limit
    r = runs if datasets is None else runs[runs.dataset.isin(set(datasets))]
    per = cap_shares(r, by=("model_kind",))
    return per[per.cap_share > limit].reset_index(drop=True)


def learnability(runs: pd.DataFrame, floor: float | None = None) -> pd.DataFrame:
    """Per point and task: the trained single-task models' mean test AUC (over worlds and both shapes),
    the worlds it is averaged over, and ``learnable`` (at least ``floor``, default the map's)."""
    floor = config.SYNTHETIC_MAP["auc_floor"] if floor is None else floor
    t = runs[(runs.metric == "test_auc") & runs.model.map(lambda m: str(m).split(":")[0] in config.TM_SHAPES)]
    out = (t.groupby(["dataset", "task"], sort=True)
           .agg(tm_test_auc=("value", "mean"), worlds=("seed", "nunique")).reset_index())
    out["learnable"] = out.tm_test_auc >= floor
    return out


def no_signal(learn: pd.DataFrame) -> list[str]:
    """The points (dataset keys) with a task that no trained model learned: "no signal", no verdict."""
    return sorted(set(learn.loc[~learn.learnable, "dataset"]))


def family(cmp: pd.DataFrame, runs: pd.DataFrame, cov: pd.DataFrame, learn: pd.DataFrame) -> pd.DataFrame:
    """The map's one family: the comparisons (:func:`emm_lib.study.sweep.sweep_report.comparisons`) at every complete
    point with signal, Holm once over all of them (:func:`emm_lib.study.shared.verdicts.apply_family`: duplicates of
    one function dropped, ``family_size`` added)."""
    if cmp.empty:
        return cmp
    done = set(cov.loc[cov.complete, "dataset"]) - set(no_signal(learn))
    sub = cmp[cmp.dataset.isin(done)]
    return verdicts.apply_family(sub.reset_index(drop=True), runs) if len(sub) else sub.iloc[:0]


def point_verdicts(fam: pd.DataFrame, model: str = "emm") -> pd.DataFrame:
    """Per point: ``model``'s regime over its tasks (better: some task better, none worse; worse: the
    reverse; mixed; no detectable difference) and its mean difference over tasks."""
    v = fam[fam.model == model]
    rows = []
    for key, g in v.groupby("dataset", sort=True):
        b, w = (g.verdict == "better").any(), (g.verdict == "worse").any()
        rows.append({"dataset": key, "regime": "mixed" if b and w else "better" if b else "worse" if w
                     else "no detectable difference", "mean_diff": float(g.mean_diff.mean()), "tasks": len(g)})
    return pd.DataFrame(rows, columns=["dataset", "regime", "mean_diff", "tasks"])


def shares(pv: pd.DataFrame) -> dict[str, float]:
    """Share of points per regime (worse / mixed / no detectable difference / better) and ``points``."""
    n = len(pv)
    out = {k: (float((pv.regime == k).sum()) / n if n else float("nan")) for k in _REGIMES}
    out["points"] = n
    return out


def largest_gain(fam: pd.DataFrame, alpha: float = stats.ALPHA) -> dict | None:
    """The family's largest difference (EMM minus its comparator) with a family-wise interval: the
    verdict rule's standard error (seed spread plus the file-level test-set term) at the Bonferroni
    quantile t(1 - alpha / 2m, n - 1) over the family's m comparisons (a maximum picked from m needs
    one), built on the difference's range [-1, 1] (:func:`emm_lib.study.shared.stats.bounded_ci`)."""
    f = fam[np.isfinite(fam.mean_diff.to_numpy(dtype=float)) & (fam.n_seeds >= 2)]
    if f.empty:
        return None
    r = f.loc[f.mean_diff.idxmax()]
    n, m = int(r.n_seeds), int(fam.family_size.iloc[0]) if "family_size" in fam else len(fam)
    term = config.TEST_SET_TERM["factor"] * r.test_var if np.isfinite(r.test_var) else 0.0
    se = float(np.sqrt(r.sd_diff ** 2 / n + term))
    q = float(_st.t.ppf(1 - alpha / (2 * max(m, 1)), n - 1))
    lo, hi = stats.bounded_ci(r.mean_diff, se, q, lo=-1.0, hi=1.0)
    return {"dataset": r.dataset, "model": r.model, "task": r.task, "comparator": r.comparator,
            "mean_diff": float(r.mean_diff), "lo": float(lo), "hi": float(hi), "n_seeds": n, "family_size": m,
            "verdict": r.verdict}


def gate_relation(rec: pd.DataFrame, model: str = "emm", n_boot: int = 2000, seed: int = 0) -> dict | None:
    """How the Multi-Task Merge's attention on the partner moves with the known task correlation (2 tasks,
    the synthetic generator): the least-squares slope over runs (attention per unit of correlation)
    with a 95% percentile bootstrap interval that resamples whole worlds, and Spearman's rho."""
    r = rec[(rec.model == model) & (rec.n_tasks == 2) & (rec.generator == "synthetic")] if len(rec) else rec
    if r.empty or r.correlation.nunique() < 3:
        return None
    per = r.groupby(["dataset", "seed", "correlation"]).mtm_partner.mean().reset_index()
    x, y, w = per.correlation.to_numpy(float), per.mtm_partner.to_numpy(float), per.seed.to_numpy()
    slope = float(np.polyfit(x, y, 1)[0])
    rng, ws = np.random.default_rng(seed), np.unique(w)
    boot = []
    for _ in range(n_boot):
        idx = np.concatenate([np.flatnonzero(w == k) for k in rng.choice(ws, len(ws))])
        if np.ptp(x[idx]) > 0:
            boot.append(np.polyfit(x[idx], y[idx], 1)[0])
    lo, hi = (np.percentile(boot, [2.5, 97.5]) if len(ws) > 1 and boot else (np.nan, np.nan))
    rho = float(_st.spearmanr(x, y)[0])
    return {"slope": slope, "lo": float(lo), "hi": float(hi), "spearman": rho, "runs": len(per), "worlds": len(ws)}


def _coverage_words(cov: pd.DataFrame) -> str:
    done = int(cov.complete.sum())
    per_axis = []
    for axis, c in cov.groupby("axis", sort=False):
        planned = sorted(set(c.worlds_planned))
        per_axis.append(f"{axis.replace('_', ' ')}: {int(c.complete.sum())} of {len(c)} points complete, "
                        f"{'/'.join(str(p) for p in planned)} worlds planned per point")
    from emm_lib.study.shared.glossary import dataset_label

    distinct = cov[cov.complete].dataset.nunique()
    twice = cov[cov.complete & cov.dataset.duplicated(keep=False)].dataset.unique()
    shared = (f" A setting on two axes ({'; '.join(dataset_label(d) for d in twice)}) counts once in the "
              f"verdicts: {distinct} distinct settings are complete." if distinct < done else "")
    return (f"The map so far: {done} of {len(cov)} points complete ({'; '.join(per_axis)}).{shared} A world is one "
            "generated dataset; every model of a world trains on its rows, with one init seed per world, and "
            "each comparison is paired within a world.")


def _verdict_words(fam: pd.DataFrame, pv: pd.DataFrame, model: str) -> list[str]:
    from emm_lib.study.shared.present import display_name

    s, n = shares(pv), len(pv)
    c = {k: int(round(s[k] * n)) for k in _REGIMES}
    mixed = f", better on some tasks and worse on others at {c['mixed']}" if c["mixed"] else ""
    out = [f"Over the whole map, {display_name(model)} against its best baseline (chosen on validation AUC; "
           f"Holm once over all {int(fam.family_size.iloc[0])} comparisons of the complete points with signal): "
           f"worse at {c['worse']} of {n} points ({s['worse']:.0%}), not detectably different at "
           f"{c['no detectable difference']} ({s['no detectable difference']:.0%}), better at {c['better']} "
           f"({s['better']:.0%}){mixed}."]
    if c["better"] == 0 and c["mixed"] == 0:
        out.append(f"{display_name(model)} was not detectably better than its best baseline anywhere on the map.")
    out.append(_direction_words(fam, pv, model))
    out.append("\"Not detectably different\" means these worlds cannot tell, not that there is no effect.")
    return out


def _direction_words(fam: pd.DataFrame, pv: pd.DataFrame, model: str) -> str:
    """The direction of ``model``'s differences over the map, counted (not a test: the verdicts above are)."""
    from emm_lib.study.shared.present import fmt_diff

    d = fam[fam.model == model].mean_diff.astype(float)
    below, above, m = int((d < 0).sum()), int((d > 0).sum()), len(d)
    low = pv[pv.mean_diff < 0].mean_diff
    span = f", by {fmt_diff(low.max())} to {fmt_diff(low.min())} on average over tasks" if len(low) else ""
    return (f"The direction, counted (not a test): the mean difference is below zero in {below} of {m} "
            f"comparisons and above it in {above}; averaged over a point's tasks, it is below zero at "
            f"{len(low)} of {len(pv)} points{span}.")


def _gain_words(gain: dict | None) -> str:
    from emm_lib.study.shared.glossary import dataset_label
    from emm_lib.study.shared.present import display_name, fmt_diff, task_name

    if gain is None:
        return ""
    where = (f"{display_name(gain['model'])} against {display_name(gain['comparator'])} on {task_name(gain['task'])} at "
             f"{dataset_label(gain['dataset'])}, {gain['n_seeds']} worlds")
    ci = (f"{fmt_diff(gain['mean_diff'])} test AUC, family-wise 95% interval [{fmt_diff(gain['lo'])}, "
          f"{fmt_diff(gain['hi'])}] over the {gain['family_size']} comparisons")
    if gain["mean_diff"] <= 0:
        return f"Even EMM's best difference anywhere is not a gain: {ci} ({where})."
    return f"The largest gain anywhere: {ci} ({where})."


def _gate_words(gates: dict | None) -> str:
    from emm_lib.study.shared.present import fmt_diff

    if gates is None:
        return ""
    lo, hi = gates["lo"], gates["hi"]
    said = ("rises" if lo > 0 else "falls" if hi < 0 else "has no detectable slope") if np.isfinite(lo) else "moves"
    return (f"Gates: the Multi-Task Merge attention on the partner task {said} with the known correlation: slope "
            f"{fmt_diff(gates['slope'], 3)} per unit of correlation, 95% bootstrap interval over worlds "
            f"[{fmt_diff(lo, 3)}, {fmt_diff(hi, 3)}] (Spearman {fmt_diff(gates['spearman'], 2)}; {gates['runs']} "
            f"runs, {gates['worlds']} worlds).")


def summary(cov: pd.DataFrame, fam: pd.DataFrame, learn: pd.DataFrame, caps: pd.DataFrame,
            gates: dict | None = None, model: str = "emm") -> str:
    """The chapter's finding in words, computed from the tables: coverage, the whole-map verdicts as shares
    of points, the largest gain with its family-wise interval, the points without signal, the epoch caps
    and the gates."""
    from emm_lib.study.shared.glossary import dataset_label
    from emm_lib.study.shared.present import display_name

    lines = [_coverage_words(cov)]
    pv = point_verdicts(fam, model) if len(fam) else pd.DataFrame()
    if len(pv):
        lines += _verdict_words(fam, pv, model)
        lines.append(_gain_words(largest_gain(fam)))
    elif not cov.complete.any():
        lines.append("No point is complete yet: no verdict.")
    else:
        lines.append("No complete point has signal (every one has a task no trained model learned): no verdict.")
    quiet = no_signal(learn)
    if quiet:
        lines.append("No signal (a task's trained models below a mean test AUC of "
                     f"{config.SYNTHETIC_MAP['auc_floor']:.2f}; no verdict there): "
                     + "; ".join(dataset_label(k) for k in quiet) + ".")
    if len(caps):
        top = caps.loc[caps.cap_share.idxmax()] if len(caps) else None
        most = (f"the most: {display_name(top.model_kind)}, {top.cap_share:.0%}" if top is not None
                and top.cap_share > 0 else "none reached it")
        lines.append(f"Fair training: no model reached its epoch cap in more than "
                     f"{config.SYNTHETIC_MAP['cap_share_max']:.0%} of its runs ({most}); early stopping ended the rest."
                     if caps.empty or not (caps.cap_share > config.SYNTHETIC_MAP["cap_share_max"]).any() else
                     "At the epoch cap in more than the allowed share of runs: "
                     + ", ".join(f"{display_name(m)} ({s:.0%})" for m, s in zip(caps.model_kind, caps.cap_share)
                                 if s > config.SYNTHETIC_MAP["cap_share_max"]) + ": those runs may be under-trained.")
    lines.append(_gate_words(gates))
    return "\n\n".join(x for x in lines if x)


def abstract(cov: pd.DataFrame, fam: pd.DataFrame, model: str = "emm") -> str:
    """The landing page's one line: at how many complete points of the map EMM was worse, not detectably
    different or better than its best baseline (Holm over the whole map), and its largest gain."""
    from emm_lib.study.shared.present import fmt_diff

    pv = point_verdicts(fam, model) if len(fam) else pd.DataFrame()
    if pv.empty:
        return (f"Not answered yet: {int(cov.complete.sum()) if len(cov) else 0} of {len(cov)} settings of the "
                "synthetic map are complete.")
    c = {k: int((pv.regime == k).sum()) for k in _REGIMES}
    g = largest_gain(fam)
    best = (f"; its largest gain, {fmt_diff(g['mean_diff'])} AUC [{fmt_diff(g['lo'])}, {fmt_diff(g['hi'])}]"
            if g and g["mean_diff"] > 0 else "; it never came out ahead on average")
    return (f"On synthetic data, over {len(pv)} complete settings tested as one family, EMM was worse than the "
            f"best baseline at {c['worse']} of them, not detectably different at {c['no detectable difference']}, "
            f"and better at {c['better'] + c['mixed'] or 'none'}{best}.")
