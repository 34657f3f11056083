"""Chapter 08's out-of-sample test: does the rung that explains Table I predict the rest?

The rung ``config.REPLAY_OUT_OF_SAMPLE["rung"]`` was chosen to explain the paper's Table I. Its
predictions for the paper's Table II rows and Figure 3 were written before their runs
(``config.REPLAY_OUT_OF_SAMPLE``); this module judges each Table II number with the chapter's rule
(:mod:`emm_lib.study.replay.consistency`, one run's 95% prediction interval with the test-set term), checks
Figure 3's ranking where its runs exist, asks whether any replayed rung makes MMoE's numbers
consistent, and says in one computed paragraph which of the paper's numbers the explanation covers.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from emm_lib.study.shared.glossary import named
from emm_lib.study.replay import authors, consistency
from emm_lib import config

__all__ = ["table2", "pretty_table2", "pretty_figure3", "figure3", "mmoe", "summary", "abstract"]

_TABLE2_EMM = "EMM"
_SHORT = {"leads": "EMM leads", "within the seed spread": "within spread"}


def _cfg() -> dict:
    return config.REPLAY_OUT_OF_SAMPLE


def table2(st, v: pd.DataFrame | None = None, pv: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per Table II row and task: the rung's n, mean, 95% prediction interval of one run, the paper's
    number, the verdict, the prediction written before the runs and whether it held. Table II's EMM
    row is Table I's EMM (fitted, ``predicted`` "fitted")."""
    rung, cfg = _cfg()["rung"], config.REPLAY_CONSISTENCY
    if v is None:
        df = authors.read(st)
        v = authors.view(df, st.dataset, [rung]) if len(df) else df
    pv = authors.read_pair_variances(st) if pv is None else pv
    key = authors._key(st.dataset, rung)
    rows = []
    for name, model in {**_cfg()["rows"], _TABLE2_EMM: "emm"}.items():
        for task in cfg["tasks"]:
            x = consistency._values(v, key, model, task) if len(v) else pd.Series(dtype=float)
            paper = config.PAPER_TABLES["table2_census"][name][task]
            predicted = _cfg()["predictions"].get((name, task), "fitted")
            if len(x) < 2:  # one seed has no spread: no interval, no verdict
                rows.append(dict(row=name, task=task, n=len(x), seeds=tuple(int(s) for s in x.index),
                                 mean=float(x.mean()) if len(x) else np.nan,
                                 lo=np.nan, hi=np.nan, half_width=np.nan, paper=paper,
                                 verdict="not judged (1 seed)" if len(x) else "not run", predicted=predicted,
                                 held=None))
                continue
            tv = consistency._test_var(pv, key, task, model, "", list(x.index))
            lo, hi = consistency.prediction_interval(x.to_numpy(), tv, cfg["level"], bounded=True)
            verdict = "consistent" if lo <= paper <= hi else "inconsistent"
            rows.append(dict(row=name, task=task, n=len(x), seeds=tuple(int(s) for s in x.index),
                             mean=float(x.mean()), lo=lo, hi=hi,
                             half_width=(hi - lo) / 2, paper=paper, verdict=verdict, predicted=predicted,
                             held=None if predicted == "fitted" else predicted == verdict))
    return pd.DataFrame(rows)


def pretty_figure3(f3: pd.DataFrame) -> pd.DataFrame:
    """:func:`figure3` for the page: per task count and task, EMM's mean and the better baseline's, with
    their seeds, the paired difference over seeds, and the prediction written before the runs with whether
    it held (labels, not internal names)."""
    from emm_lib.study.shared.present import display_name, fmt_diff

    return pd.DataFrame({
        "tasks": f3.n_tasks, "task": f3.task,
        "EMM (seeds)": [f"{m:.4f} ({n})" for m, n in zip(f3.emm, f3.seeds_emm)],
        "better baseline (seeds)": [f"{display_name(b)} {m:.4f} ({n})"
                                    for b, m, n in zip(f3.best_baseline, f3.baseline, f3.seeds_baseline)],
        "EMM − better (95% over seeds)": [f"{fmt_diff(d)} ± {h:.4f}" if np.isfinite(h) else fmt_diff(d)
                                         for d, h in zip(f3["diff"], f3.half)],
        f"prediction (written for {' and '.join(map(str, _cfg()['figure3']['prediction_task_counts']))} tasks; "
        "others by its rule)": [
            f"{_SHORT.get(p, p)}: {'held' if h else 'missed' if h is not None else 'not judged'}"
            for p, h in zip(f3.predicted, f3.held)],
    }).set_index(["tasks", "task"])


def pretty_table2(t: pd.DataFrame) -> pd.DataFrame:
    """:func:`table2` for the page: one row per Table II row and task."""
    def cell(r):
        if not np.isfinite(r["mean"]):
            return "not run"
        if not np.isfinite(r.lo):
            return f"{r['mean']:.4f}, {r.verdict}"
        side = "" if r.verdict == "consistent" else (" (paper above)" if r.paper > r.hi else " (paper below)")
        return f"{r['mean']:.4f} [{r.lo:.4f}, {r.hi:.4f}], {r.verdict}{side}"

    out = pd.DataFrame({"Table II row": t.row, "task": t.task, "seeds": t.n, "paper": t.paper.map("{:.5f}".format),
                        "rung: mean [95% interval of one run], verdict": t.apply(cell, axis=1),
                        "predicted before the runs": t.predicted,
                        "prediction held": t.held.map({True: "yes", False: "no", None: "–"})})
    return out.set_index(["Table II row", "task"])


def figure3(st, task_counts: Sequence[int] | None = None) -> pd.DataFrame:
    """Figure 3's ranking at the rung, per task count and task, where its runs exist: EMM's mean test AUC,
    the better of MMoE's and PLE's means, the seeds each has, and whether EMM is at least as high."""
    from emm_lib.study.shared.run_settings import dataset_key_of

    seeds = _cfg()["figure3"].get("seeds", {})
    rows = []
    for k in task_counts or _cfg()["figure3"]["task_counts"]:
        df = authors.read(st, seeds=seeds.get(int(k)))  # a point's own seeds (config: why they differ)
        key = dataset_key_of(st.dataset, n_tasks=int(k), rung=_cfg()["rung"])
        d = df[(df.dataset == key) & (df.metric == "test_auc")] if len(df) else df
        for task in dict.fromkeys(d.task if len(d) else []):
            means = d[d.task == task].drop_duplicates(["model", "seed"], keep="last").groupby("model").value.agg(
                ["mean", "size"])
            base = means.loc[[m for m in config.AUTHORS_PROTOCOL["baselines"] if m in means.index]]
            if "emm" not in means.index or base.empty:
                continue
            best = base["mean"].idxmax()
            row = dict(n_tasks=int(k), task=task, emm=means.loc["emm", "mean"],
                       seeds_emm=int(means.loc["emm", "size"]), best_baseline=best,
                       baseline=base.loc[best, "mean"], seeds_baseline=int(base["size"].min()),
                       emm_leads=bool(means.loc["emm", "mean"] >= base.loc[best, "mean"]))
            rows.append({**row, **_judged(d[d.task == task], best, task, row["emm_leads"])})
    return pd.DataFrame(rows, columns=["n_tasks", "task", "emm", "seeds_emm", "best_baseline", "baseline",
                                       "seeds_baseline", "emm_leads", "diff", "half", "predicted", "held"])


def _judged(d: pd.DataFrame, best: str, task: str, leads: bool) -> dict:
    """The paired difference EMM − ``best`` over the seeds both ran (mean and 95% t half-width), and the
    prediction written before the runs for ``task`` (config ``prediction_by_task``) with whether it held."""
    from scipy import stats as st

    from emm_lib.study.shared.stats import seed_differences

    diff = seed_differences(d, "emm", best, d.dataset.iloc[0], task)
    n = len(diff)
    half = float(st.t.ppf(0.975, n - 1) * diff.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    rule = _cfg()["figure3"]["prediction_by_task"]
    predicted = rule.get(task, rule["*"])
    held = leads if predicted == "leads" else (bool(abs(diff.mean()) <= half) if n > 1 else None)
    return dict(diff=float(diff.mean()) if n else float("nan"), half=half, predicted=predicted, held=held)


def mmoe(t: pd.DataFrame) -> dict[str, list[str]]:
    """Per task, the rungs (of :func:`emm_lib.study.replay.consistency.table` ``t``) at which the paper's MMoE number is
    consistent with one run."""
    if t.empty:
        return {}
    m = t[t.quantity == "MMoE"]
    return {task: list(g[g.verdict == "consistent"].rung) for task, g in m.groupby("task", sort=False)}


def _nums(t: pd.DataFrame) -> str:
    from emm_lib.study.shared.present import task_name

    parts = [f"{r.row} {task_name(r.task)} ({r.paper:.5f})" for r in t.itertuples()]
    return ", ".join(parts) if parts else "none"


def _between(t1: pd.DataFrame, task: str) -> str:
    """Where the paper's MMoE number falls between the rungs' intervals (below one, above another)."""
    m = t1[(t1.quantity == "MMoE") & (t1.task == task)]
    paper = consistency.paper_value("MMoE", task)
    above, below = m[m.hi < paper], m[m.lo > paper]
    if above.empty or below.empty:
        return ""
    from emm_lib.study.replay.protocol import rung_flags

    a, b = above.loc[above.hi.idxmax()], below.loc[below.lo.idxmin()]
    final = "final_epoch_weights"
    why = (": between keeping the final epoch's weights and restoring the best epoch's"
           if final in rung_flags(a.rung) and final not in rung_flags(b.rung) else "")
    return f" (it lies above {named(a.rung)}'s interval, up to {a.hi:.4f}, and below {named(b.rung)}'s, from {b.lo:.4f}{why})"


def _count(n: int, noun: str) -> str:
    """"1 seed", "3 seeds"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _seed_list(seeds) -> str:
    seeds = sorted(seeds)
    return ", ".join(map(str, seeds[:-1])) + f" and {seeds[-1]}" if len(seeds) > 1 else str(seeds[0])


def seeds_note(t2: pd.DataFrame) -> str:
    """Why Table II's rows ran at other seeds than Table I's (empty when they ran at the same)."""
    if "seeds" not in t2 or t2.empty:
        return ""
    fitted = set().union(*t2[t2.predicted == "fitted"].seeds)
    rows = set().union(*t2[t2.predicted != "fitted"].seeds)
    extra, missing = sorted(rows - fitted), sorted(fitted - rows)
    if not extra:
        return ""
    c = _cfg()["rebuild_check"]
    return (f"Table II's rows ran at seeds {_seed_list(rows)}; Table I's at {_seed_list(fitted)}. A row is built "
            "from its seed's trained models, whose saved weights are not kept in the repository, so they are "
            "trained again first and must give the recorded results. "
            + (f"On a second machine they did not: seed {c['seed']}'s {c['model']} ({c['task']}) reached "
               f"{c['retrained']:.4f} against the recorded {c['recorded']:.4f} (its processor rounds differently, "
               "and 100 epochs without early stopping grow that into another model). So "
               if missing else "So ")
            + f"these rows ran at new seeds {_seed_list(extra)}, each with its own trained models.")


def summary(t2: pd.DataFrame, t1: pd.DataFrame, f3: pd.DataFrame) -> str:
    """The computed paragraph: which of the paper's numbers the explanation covers and which it does not."""
    from emm_lib.study.shared.present import task_name

    rung = _cfg()["rung"]
    out = t2[t2.predicted != "fitted"]
    ran = out[out.verdict.isin(["consistent", "inconsistent"])]
    seeds = sorted({int(n) for n in ran.n})
    head = f"**Table II, out of sample** (rung {named(rung)}"
    lines = [f"{head}, {'–'.join(map(str, dict.fromkeys([seeds[0], seeds[-1]])))} seeds): "
             f"{int(ran.held.sum())} of {len(ran)} predictions written before the runs held." if len(ran) else
             f"{head}): no row has two seeds yet, so no prediction is judged."]
    if len(ran):
        cov, not_cov = ran[ran.verdict == "consistent"], ran[ran.verdict == "inconsistent"]
        lines.append(f"Consistent with one run of the rung: {_nums(cov)}. Not consistent: {_nums(not_cov)}. "
                     f"The intervals' half-widths run from ±{ran.half_width.min():.4f} to "
                     f"±{ran.half_width.max():.4f} AUC: a wide interval excludes little, so \"consistent\" there "
                     "is weak support.")
    if seeds_note(t2):
        lines.append(seeds_note(t2))
    for task, g in ran.groupby("task", sort=False):
        if len(g) > 1:
            ours = " > ".join(g.sort_values("mean", ascending=False).row)
            theirs = " > ".join(g.sort_values("paper", ascending=False).row)
            lines.append(f"Order of the rows on {task_name(task)}: the rung's means {ours}"
                         + (" — the paper's order." if ours == theirs else f"; the paper's {theirs}."))
    for what in ("not judged (1 seed)", "not run"):
        if (out.verdict == what).any():
            lines.append(f"{what.capitalize()}: {_nums(out[out.verdict == what])}.")
    at = t1[t1.rung == rung] if len(t1) else t1
    if len(at):
        bad = at[at.verdict == "inconsistent"]
        lines.append(f"**Table I at the same rung** (fitted): {len(at) - len(bad)} of {len(at)} numbers consistent; "
                     "not consistent: " + (", ".join(f"{q} {task_name(k)}" for q, k in zip(bad.quantity, bad.task))
                                            or "none")
                     + ".")
    for task, rungs in mmoe(t1).items():
        lines.append(f"**MMoE, {task_name(task)}** (paper {consistency.paper_value('MMoE', task):.5f}): "
                     + (f"consistent at {', '.join(f'{named(r)}' for r in rungs)}" if rungs else
                        "consistent at no replayed rung, the published code's own settings (‘published’) and "
                        "every stopping rule replayed included: it stays unexplained" + _between(t1, task))
                     + (f"; not at {named(rung)}" if rungs and rung not in rungs else "") + ".")
    mm = mmoe(t1)
    if mm:
        both = set.intersection(*(set(r) for r in mm.values()))
        lines.append("No replayed rung makes all of MMoE's numbers consistent at once." if not both else
                     f"MMoE's numbers are all consistent at {', '.join(f'{named(r)}' for r in sorted(both))}.")
    if f3.empty:
        lines.append("**Figure 3**: not run at this rung, so its ranking is untested (the paper gives no numbers).")
    else:
        done = ", ".join(f"{k} tasks ({_count(int(g.seeds_emm.min()), 'seed')})" for k, g in f3.groupby("n_tasks"))
        lead = f3[f3.emm_leads]
        lines.append(f"**Figure 3** (ranking only; run: {done}): EMM's mean is at least the better of MMoE's and "
                     f"PLE's on {len(lead)} of {len(f3)} tasks"
                     + (f" ({', '.join(f'{task_name(r.task)} at {r.n_tasks}' for r in lead.itertuples())})."
                        if len(lead) else ".") + " " + _figure3_prediction(f3))
    return "\n\n".join(lines)


def _figure3_prediction(f3: pd.DataFrame) -> str:
    """Figure 3's prediction, written before the runs, judged per task (:func:`_judged`): at the task counts
    it was written for, then at the others by the same rule."""
    cfg = _cfg()["figure3"]
    judged = f3[f3.held.notna()]
    if judged.empty:
        return "The prediction written before the runs is not judged yet (one seed)."
    written = judged[judged.n_tasks.isin(cfg["prediction_task_counts"])]
    other = judged[~judged.n_tasks.isin(cfg["prediction_task_counts"])]
    counts = " and ".join(str(k) for k in cfg["prediction_task_counts"])
    lines = [f"The prediction written before the runs for {counts} tasks (“{cfg['prediction']}”; the spread: a 95% "
             f"t interval over seeds of the paired difference EMM − the better baseline) "
             + _held_words(written)] if len(written) else []
    if len(other):
        lines.append(f"At {' and '.join(str(k) for k in sorted(set(other.n_tasks)))} tasks, by the same rule (not "
                     f"written for them), it {_held_words(other)}")
    return " ".join(lines) + (f" The paper's claim, EMM best or leading on every task, holds at this rung on "
                              f"{int(f3.emm_leads.sum())} of {len(f3)} tasks.")


def _held_words(judged: pd.DataFrame) -> str:
    from emm_lib.study.shared.present import display_name, fmt_diff, task_name

    def say(r) -> str:
        return (f"{task_name(r.task)} at {r.n_tasks} tasks ({fmt_diff(r.diff)} ± {r.half:.4f} against "
                f"{display_name(r.best_baseline)})")
    missed = judged[~judged.held.astype(bool)]
    ahead, behind = missed[missed["diff"] > 0], missed[missed["diff"] <= 0]
    parts = ([f"EMM is ahead by more than the spread on {', '.join(say(r) for r in ahead.itertuples())}"]
             if len(ahead) else []) + ([f"EMM is behind on {', '.join(say(r) for r in behind.itertuples())}"]
                                       if len(behind) else [])
    return (f"held on {len(judged) - len(missed)} of {len(judged)} tasks"
            + (f"; it missed where {'; and where '.join(parts)}" if parts else "") + ".")


def abstract(t2: pd.DataFrame, t1: pd.DataFrame, f3: pd.DataFrame | None = None) -> str:
    """The landing page's second finding, in plain words (no internal names): what explains the paper's
    numbers and how many of them it matches, in sample (Table I) and out of sample (Table II, and Figure
    3's ranking where ``f3`` has it)."""
    at = t1[t1.rung == _cfg()["rung"]] if len(t1) else t1
    if at.empty:
        return "Not answered yet: the replay of the authors' protocol has not been run."
    ok = int((at.verdict == "consistent").sum())
    out = t2[(t2.predicted != "fitted") & t2.verdict.isin(["consistent", "inconsistent"])] if len(t2) else t2
    t2_part = (f" and, out of sample, {int((out.verdict == 'consistent').sum())} of {len(out)} Table II numbers "
               f"({int(out.held.sum())} of {len(out)} predictions held)" if len(out) else "; Table II is still being run")
    unexplained = [task for task, rungs in mmoe(t1).items() if not rungs]
    mm = f"; MMoE's {' and '.join(unexplained)} stays unexplained" if unexplained else ""
    fig3 = (f" and Figure 3's ranking on {int(f3.emm_leads.sum())} of {len(f3)} tasks"
            if f3 is not None and len(f3) and len(out) else "")
    return ("The paper's numbers match the authors' code run to its last epoch without early stopping: weak "
            f"trained models, with EMM gaining on them; {ok} of {len(at)} Table I numbers match{t2_part}{fig3}{mm}.")
