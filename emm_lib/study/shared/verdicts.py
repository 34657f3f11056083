"""The book's verdict policy: one declared headline family, Holm over all of it.

:data:`emm_lib.config.HEADLINE_FAMILY` declares the family: for each EMM variant, experiment and
task, EMM against each kind of comparator (the best multi-task baseline, the best trained
single-task model), each chosen on mean *validation* AUC, all tested with the same paired rule
(:func:`emm_lib.study.shared.stats.compare`). A comparison that repeats an earlier one (the same comparator
and the same per-seed AUCs: ``emm`` and ``emm:soft`` with two tasks compute one function) is
dropped before counting. Holm runs once over the remaining family, and the verdicts are read
from those p-values; the landing page's counts are this table's.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd

from emm_lib import config
from emm_lib.study.shared import stats
from emm_lib.study.shared.present import decimals_for, display_name, experiment_label, experiment_name, fmt_diff, task_count, task_name

__all__ = ["comparators", "duplicates", "same_function", "apply_family", "headline", "direction", "summary", "abstract", "own_models",
           "verdict_summary"]


def comparators(runs: pd.DataFrame, kind: str, family: dict | None = None) -> list[str]:
    """The candidate labels of one comparator kind present in ``runs`` (trained models: every
    ``tmK:<task>`` of the declared shapes)."""
    fam = family or config.HEADLINE_FAMILY
    cands = fam["comparators"][kind]
    models = list(dict.fromkeys(runs.model))
    if kind == "trained model":
        return [m for m in models if m.split(":")[0] in cands and ":" in m]
    return [m for m in cands if m in models]


def same_function(runs: pd.DataFrame, a: str, b: str, dataset: str, task: str, tol: float | None = None) -> bool:
    """Models ``a`` and ``b`` give the same per-seed validation and test AUCs (within ``tol``) on
    ``dataset``/``task``: one function twice (for example the two fusion gates with 2 tasks)."""
    tol = config.HEADLINE_FAMILY["duplicate_tol"] if tol is None else tol
    for metric in ("val_auc", "test_auc"):
        d = stats.seed_differences(runs, a, b, dataset, task, metric=metric)
        if d.empty or float(d.abs().max()) > tol:
            return False
    return True


def duplicates(cmp: pd.DataFrame, runs: pd.DataFrame, tol: float | None = None) -> pd.Series:
    """True for each row of ``cmp`` that repeats an earlier row: same dataset, task and comparator,
    and a model whose per-seed validation and test AUCs equal the earlier model's within ``tol``."""
    tol = config.HEADLINE_FAMILY["duplicate_tol"] if tol is None else tol
    dup = pd.Series(False, index=cmp.index)
    kept: list = []
    for i, r in cmp.iterrows():
        dup[i] = any(k.dataset == r.dataset and k.task == r.task and k.comparator == r.comparator
                     and k.model != r.model and same_function(runs, k.model, r.model, r.dataset, r.task, tol)
                     for k in kept)
        if not dup[i]:
            kept.append(r)
    return dup


def apply_family(cmp: pd.DataFrame, runs: pd.DataFrame, alpha: float = stats.ALPHA) -> pd.DataFrame:
    """``cmp`` without duplicates, with ``p_holm`` and ``verdict`` recomputed by Holm over all its
    rows at once, ``family_size`` (the number of comparisons Holm ran over) and
    ``duplicates_dropped``."""
    if cmp.empty:
        return cmp
    dup = duplicates(cmp, runs)
    fam = cmp[~dup].reset_index(drop=True)
    fam["p_holm"] = stats.holm(fam.p_value.to_numpy(dtype=float))
    fam["verdict"] = [stats._verdict(m, p, alpha, n) for m, p, n in zip(fam.mean_diff, fam.p_holm, fam.n_seeds)]
    fam["family_size"] = int(np.isfinite(fam.p_value.to_numpy(dtype=float)).sum())
    fam["duplicates_dropped"] = int(dup.sum())
    return fam


def headline(runs_of: Callable[[str], pd.DataFrame], runs: pd.DataFrame, pair_var: pd.DataFrame | None = None,
             family: dict | None = None) -> pd.DataFrame:
    """The headline family as one table (:func:`stats.compare` columns plus ``against``, the
    comparator kind, and ``family_size``). ``runs_of(experiment)``: that experiment's runs."""
    fam = family or config.HEADLINE_FAMILY
    parts = []
    for kind in fam["comparators"]:
        for e in fam["experiments"]:
            r = runs_of(e)
            for m in fam["models"]:
                if len(r) and m in set(r.model):
                    c = stats.compare(r, m, comparators(r, kind, fam), experiment=e, pair_var=pair_var)
                    parts.append(c.assign(against=kind))
    parts = [p for p in parts if len(p)]
    return apply_family(pd.concat(parts, ignore_index=True), runs) if parts else pd.DataFrame()


def direction(fam: pd.DataFrame, runs: pd.DataFrame) -> tuple[int, int]:
    """(seed-level differences below zero, all seed-level differences) over the rows of ``fam``."""
    below = total = 0
    for r in fam.itertuples():
        d = stats.seed_differences(runs, r.model, r.comparator, r.dataset, r.task)
        below, total = below + int((d < 0).sum()), total + len(d)
    return below, total


def _counts(g: pd.DataFrame) -> str:
    n = len(g)
    c = {v: int((g.verdict == v).sum()) for v in ("better", "worse", "no detectable difference")}
    untested = n - sum(c.values())
    return (f"better in {c['better']} of {n}, worse in {c['worse']}, no detectable difference in "
            f"{c['no detectable difference']}" + (f", not tested in {untested}" if untested else ""))


def summary(fam: pd.DataFrame, runs: pd.DataFrame, setting: str) -> str:
    """The landing page's sentences: per comparator kind, the family's verdict counts, the range of
    the differences and the direction over seeds; the family and its Holm correction named."""
    if fam.empty:
        return f"{setting}: no comparison could be computed (no runs with both models)."
    size, n_dup = int(fam.family_size.iloc[0]), int(fam.duplicates_dropped.iloc[0])
    models = " and ".join(display_name(m) for m in dict.fromkeys(fam.model))
    d = decimals_for(float(fam.mean_diff.abs().median()))
    out = []
    for kind, g in fam.groupby("against", sort=False):
        below, total = direction(g, runs)
        out.append(f"Against the best {kind} (chosen on validation AUC), {models}: {_counts(g)}; "
                   f"differences {fmt_diff(g.mean_diff.min(), d)} to {fmt_diff(g.mean_diff.max(), d)} test AUC; "
                   f"EMM is below it in {below} of {total} seed-level comparisons.")
    seeds = sorted(set(int(s) for s in fam.n_seeds))
    out.append(f"({setting}; {seeds[0] if len(seeds) == 1 else f'{seeds[0]}–{seeds[-1]}'} seeds; Holm over "
               f"the {size} comparisons of the headline family, experiments × tasks × comparators, after dropping "
               f"{n_dup} that repeat another (the same function); α = 0.05. The variance includes the test file's own "
               "error: half the paired DeLong variance of the test half, the share measured by redrawing the "
               "halves with the models fixed.)")
    out.append("The seed-level counts give the direction, not a test (seeds share one test file); "
               "\"no detectable difference\" means the data cannot tell, not that there is none.")
    return " ".join(out)


def abstract(fam: pd.DataFrame) -> str:
    """The landing page's first finding, one short sentence in plain words: whether EMM beats its own
    trained models and the best multi-task baseline on Census, and by how much on average."""
    if fam.empty:
        return "No comparison could be computed yet."
    d = decimals_for(float(fam.mean_diff.abs().median()))
    better, worse = int((fam.verdict == "better").sum()), int((fam.verdict == "worse").sum())
    parts = []
    for kind, g in fam.groupby("against", sort=False):
        lo, hi = g.mean_diff.min(), g.mean_diff.max()
        parts.append(f"{fmt_diff(-hi, d).lstrip('+')}–{fmt_diff(-lo, d).lstrip('+')} AUC below the best {kind}"
                     if hi < 0 else f"{fmt_diff(lo, d)} to {fmt_diff(hi, d)} AUC against the best {kind}")
    lead = ("EMM does not beat its own trained models or the multi-task baselines" if better == 0 else
            f"EMM beats its comparator in {better} of {len(fam)} comparisons")
    seeds = max(int(s) for s in fam.n_seeds)
    tail = (f"none of the {len(fam)} differences detectable after Holm ({seeds} seeds)"
            if better == worse == 0 else
            f"{better + worse} of {len(fam)} differences detectable with {seeds} seeds")
    return f"{lead}: on average it is {' and '.join(parts)}, {tail}."


def own_models(runs: pd.DataFrame, models: Sequence[str], experiment: str,
               pair_var: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each of ``models`` against its best trained single-task model (chosen on validation), the
    study's paired rule, Holm over the tasks and models of this table (Table II's ablation)."""
    parts = [stats.compare(runs, m, comparators(runs, "trained model"), experiment=experiment, pair_var=pair_var)
             for m in models if m in set(runs.model)]
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts, ignore_index=True).assign(against="trained model")
    return apply_family(out, runs)


def verdict_summary(cmp: pd.DataFrame, setting: str) -> str:
    """A few short sentences that state what ``cmp`` (``emm_lib.study.shared.stats.compare`` rows) found.

    ``setting`` says where the numbers come from (e.g. "Census-Income, the paper's settings").
    Every number is computed from ``cmp``; nothing is typed by hand.
    """
    if cmp.empty:
        return f"{setting}: no comparison could be computed (no runs with both models)."
    n = len(cmp)
    seeds = sorted(set(int(s) for s in cmp.n_seeds))
    seeds_txt = (f"{seeds[0]} seed{'s' if seeds[0] != 1 else ''}" if len(seeds) == 1
                 else f"{seeds[0]}–{seeds[-1]} seeds")
    models = " and ".join(display_name(m) for m in dict.fromkeys(cmp.model))
    d = decimals_for(float(cmp.mean_diff.abs().median()))
    lo, hi = cmp.mean_diff.min(), cmp.mean_diff.max()
    counts = {v: int((cmp.verdict == v).sum()) for v in ("better", "worse", "no detectable difference")}
    untested = n - sum(counts.values())
    text = (f"Against the best multi-task baseline, {models}: better in {counts['better']} of {n} task "
            f"comparisons, worse in {counts['worse']}, not detectably different in "
            f"{counts['no detectable difference']}"
            + (f", not tested in {untested} (fewer than 2 seeds so far)" if untested else "")
            + f". The differences range from {fmt_diff(lo, d)} to "
            f"{fmt_diff(hi, d)} test AUC ({setting}; {seeds_txt}; baseline chosen on validation AUC; "
            f"Holm-corrected, α = 0.05).")
    detected = cmp[cmp.verdict.isin(["better", "worse"])]
    several = cmp.model.nunique() > 1
    if 0 < len(detected) <= MAX_LISTED:
        parts = [(f"{display_name(r.model)} " if several else "") + f"{r.verdict} on {task_name(r.task)} "
                 f"({experiment_label(r.experiment, r.dataset)}) vs {display_name(r.comparator)}: "
                 f"{fmt_diff(r.mean_diff, d)}" for r in detected.itertuples()]
        text += " Detected: " + "; ".join(parts) + "."
    elif len(detected):
        text += " Detected, per experiment: " + "; ".join(_detected_per_experiment(cmp, d)) + "."
    return text


#: Up to this many detected differences are listed one by one; more are counted per experiment.
MAX_LISTED = 4


def _detected_per_experiment(cmp: pd.DataFrame, d: int) -> list[str]:
    """``"Figure 3: worse in 14 of 18 (−0.0052 to −0.0002)"`` for each experiment with a detection."""
    parts = []
    for exp, g in cmp.groupby("experiment", sort=False):
        det = g[g.verdict.isin(["better", "worse"])]
        if det.empty:
            continue
        kinds = " and ".join(f"{v} in {int((det.verdict == v).sum())}" for v in ("better", "worse")
                             if (det.verdict == v).any())
        counts = sorted({task_count(ds) for ds in g.dataset})
        tasks = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
        parts.append(f"{experiment_name(exp)} ({tasks} tasks): {kinds} of {len(g)} "
                     f"({fmt_diff(det.mean_diff.min(), d)} to {fmt_diff(det.mean_diff.max(), d)})")
    return parts
