"""The replay's ladder (chapter 08): per rung, the trained models, EMM, its gain and its rank.

Per rung of :mod:`emm_lib.study.replay.authors`, on the first task (Census: income): TM-1 and TM-2 test AUC,
EMM's test AUC, EMM's gain over the mean of TM-1 and TM-2 (the paper's gain column), EMM − best
baseline and EMM − best trained model, each comparator chosen on validation. Differences follow the study's verdict
rule (:func:`emm_lib.study.shared.stats.compare`: seeds paired, the paired DeLong test-set variance added,
Holm across tasks); an AUC's own 95% CI is ``mean ± t_{n-1} sqrt(s^2/n + v/2)`` with ``v`` its
DeLong variance on a half (the same rule: ``config.TEST_SET_TERM``), built on the logit scale so that it stays inside
[0, 1] (:func:`emm_lib.study.shared.stats.bounded_ci`). :func:`picture` names what a rung shows, and
:func:`answer` turns the table into plain words.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as _st

from emm_lib.study.shared.glossary import named
from emm_lib.study.replay import authors, protocol
from emm_lib import config
from emm_lib.study.shared import stats
from emm_lib.study.shared.present import display_name, fmt_diff

__all__ = ["PAPER", "of", "table", "picture", "answer", "headline", "gain_summary", "pretty", "published_code",
           "agreement"]

_T1 = config.PAPER_TABLES["table1_census"]
#: The paper's Census Table I values the ladder is measured against (income AUC).
PAPER: dict[str, float] = {
    "tm1": _T1["TM-1"]["income"], "tm2": _T1["TM-2"]["income"], "emm": _T1["EMM"]["income"],
    "tm_mean": (_T1["TM-1"]["income"] + _T1["TM-2"]["income"]) / 2,
    "gain": _T1["EMM"]["income"] - (_T1["TM-1"]["income"] + _T1["TM-2"]["income"]) / 2,
    "vs_best": _T1["EMM"]["income"] - max(_T1[m]["income"] for m in ("MMoE", "PLE")),
}


def _level(v: pd.DataFrame, pv: pd.DataFrame, dataset: str, model: str, task: str) -> tuple[float, float, float, int]:
    d = v[(v.dataset == dataset) & (v.model == model) & (v.task == task) & (v.metric == "test_auc")]
    d = d.drop_duplicates("seed", keep="last")
    n = len(d)
    if not n:
        return (np.nan, np.nan, np.nan, 0)
    mean = float(d.value.mean())
    if n < 2:
        return (mean, np.nan, np.nan, n)
    var = pv[(pv.dataset == dataset) & (pv.task == task) & (pv.model_a == model) & (pv.model_b == "")
             & pv.seed.isin(d.seed)]
    tv = float(var.var_diff.astype(float).mean()) if len(var) == n else 0.0
    se = np.sqrt(d.value.var(ddof=1) / n + config.TEST_SET_TERM["factor"] * tv)  # the file-level term
    lo, hi = stats.bounded_ci(mean, se, _st.t.ppf(0.975, n - 1))
    return (mean, float(lo), float(hi), n)


def _ci(row: pd.Series) -> tuple[float, float]:
    if np.isfinite(row.get("ci_low_test", np.nan)):
        return float(row.ci_low_test), float(row.ci_high_test)
    return float(row.get("ci_low", np.nan)), float(row.get("ci_high", np.nan))


def of(st, rungs: Sequence[str] | None = None) -> pd.DataFrame:
    """:func:`table` of the replay's results at ``st`` (its dataset and profile; every rung that has
    run, or ``rungs``); an empty table when nothing has run yet."""
    df = authors.read(st)
    if df.empty:
        return pd.DataFrame()
    rungs = authors.rungs_for(st.profile, rungs) if rungs is not None else protocol.RUNG_NAMES
    return table(df, st.dataset, rungs, authors.read_pair_variances(st))


def table(df: pd.DataFrame, dataset: str, rungs: Sequence[str], pair_var: pd.DataFrame | None = None,
          task: str | None = None) -> pd.DataFrame:
    """One row per rung (in ladder order) with the AUCs, the gain and EMM − best baseline, each with
    its 95% CI, the verdicts and :func:`picture`. ``df``: the replay's results table."""
    pv = pair_var if pair_var is not None else pd.DataFrame(columns=["dataset", "seed", "task", "model_a",
                                                                      "model_b", "var_diff"])
    v = authors.view(df, dataset, rungs)
    if v.empty or not (v.model == "emm").any():  # nothing, or a ladder in progress before its first EMM
        return pd.DataFrame()
    task = task or _first_task(v)
    has_emm = set(v[v.model == "emm"].dataset)
    keys = [k for k in (authors._key(dataset, r) for r in rungs) if k in has_emm]
    gain = stats.compare(v, "emm", ["tm_mean"], datasets=keys, pair_var=pv)
    best = stats.compare(v, "emm", list(config.AUTHORS_PROTOCOL["baselines"]), datasets=keys, pair_var=pv)
    trained = [m for m in dict.fromkeys(v.model) if m.split(":")[0] in config.TM_SHAPES and ":" in m]
    own = stats.compare(v, "emm", trained, datasets=keys, pair_var=pv)  # EMM vs its best trained model
    rows, prev = [], None
    for rung in rungs:
        key = authors._key(dataset, rung)
        if key not in keys:
            continue
        flags = set(protocol.apply(rung, dataset.split("/")[0]).flags)
        row = {"rung": rung, "flags": sorted(flags),
               "off": sorted(prev - flags) if prev is not None else [], "on": sorted(flags - prev) if prev is not None else []}
        prev = flags
        for m, name in ((f"tm1:{task}", "tm1"), (f"tm2:{task}", "tm2"), ("tm_mean", "tm_mean"), ("emm", "emm")):
            row[name], row[f"{name}_lo"], row[f"{name}_hi"], n = _level(v, pv, key, m, task)
            if name == "emm":  # the rung's verdicts rest on EMM's seeds (its trained models may be ahead)
                row["n_seeds"] = n
        for name, cmp in (("gain", gain), ("vs_best", best), ("vs_tm", own)):
            c = cmp[(cmp.dataset == key) & (cmp.task == task)] if len(cmp) else cmp
            if len(c):
                c = c.iloc[0]
                row[name], (row[f"{name}_lo"], row[f"{name}_hi"]) = float(c.mean_diff), _ci(c)
                row[f"{name}_verdict"] = c.verdict
                if name in ("vs_best", "vs_tm"):
                    row["comparator" if name == "vs_best" else "tm_comparator"] = c.comparator
        rows.append(row)
    out = pd.DataFrame(rows)
    out["task"] = task
    return picture(out, dataset)


def _first_task(v: pd.DataFrame) -> str:
    tasks = [t for t in dict.fromkeys(v[v.model == "emm"].task)]
    return "income" if "income" in tasks else tasks[0]


def picture(t: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Add ``weak_tm`` and ``picture`` per rung. Weak trained models: on Census, a TM mean at most
    ``weak_tm_fraction`` of the way from our protocol's (rung ``ours``) down to the paper's (undefined,
    NaN, when ours is not above the paper's, as at tiny budgets); elsewhere (no paper values), a TM
    mean below ours by at least ``weak_tm_drop``."""
    t = t.copy()
    cfg = config.AUTHORS_PROTOCOL
    t["weak_tm"] = np.nan
    if not t.empty and "ours" in set(t.rung):
        ours = float(t.loc[t.rung == "ours", "tm_mean"].iloc[0])
        drop = (cfg["weak_tm_fraction"] * (ours - PAPER["tm_mean"]) if dataset.startswith("census")
                else cfg["weak_tm_drop"])
        if drop > 0:
            t["weak_tm"] = (t.tm_mean <= ours - drop).astype(object)
    gains = t.get("gain_verdict", pd.Series("no detectable difference", index=t.index)).fillna("not measured")
    words = []
    for weak, g in zip(t.weak_tm, gains):
        tm = {True: "weak trained models", False: "strong trained models"}.get(weak, "trained models not judged")
        em = {"better": "EMM gains on them", "worse": "EMM falls below them"}.get(
            g, "EMM's gain not tested" if str(g).startswith("not") else "no detectable gain")
        words.append(f"{tm}, {em}")
    t["picture"] = words
    t["paper_picture"] = [w is True and g == "better" for w, g in zip(t.weak_tm, gains)]
    return t


def _verdict(v) -> str:
    """A verdict for a parenthesis: "not tested (fewer than 2 seeds)" -> "not tested: fewer than 2 seeds"."""
    return "n/a" if not isinstance(v, str) else v.replace(" (", ": ").rstrip(")") if v.startswith("not") else v


def _flags(names: Sequence[str]) -> str:
    names = list(names)
    return ", ".join(f"{named(n)}" for n in names) if names else "no flag"


def _progress(t: pd.DataFrame, planned: Sequence[str] | None) -> tuple[int, list[str], str, bool]:
    """(most seeds of a rung, planned rungs without results, "k seeds per rung" / "k to m ...",
    complete: every planned rung measured with two or more seeds) -- shared by answer and headline."""
    n, hi = int(t.n_seeds.min()), int(t.n_seeds.max())
    missing = [r for r in (planned or []) if r not in set(t.rung)]
    seeds = f"{n if n == hi else f'{n} to {hi}'} seed{'s' if hi != 1 else ''} per rung"
    return hi, missing, seeds, not missing and n >= 2


def answer(t: pd.DataFrame, dataset: str = "census", planned: Sequence[str] | None = None) -> str:
    """Plain words, generated from :func:`table`: which deviation, if any, produces the paper's picture
    (weak trained models, EMM gaining on them); if none does, what remains unexplained. ``planned``:
    the rungs meant to run (a ladder in progress says which are still missing)."""
    if t.empty:
        return "No rung has results yet, so the question cannot be answered from data."
    hi, missing, seeds, complete = _progress(t, planned)
    lines = [f"Measured on {dataset} ({seeds}"
             + ("; one seed gives no confidence interval, so no difference can be called real" if hi < 2 else "")
             + ")."]
    if missing:
        lines.append(f"**The ladder is in progress**: {_flags(missing)} have no EMM results yet, so what follows "
                     f"covers only {_flags(t.rung)}.")
    hits = t[t.paper_picture]
    untested = list(t.rung[t.n_seeds < 2])
    if untested and len(untested) < len(t):
        lines.append(f"{_flags(untested)} {'has' if len(untested) == 1 else 'have'} one seed so far: point "
                     "estimates only, no verdict there.")
    if hi < 2:  # estimates only: neither "reproduces" nor "remains unexplained" can be said
        lines.append("**No verdict yet**: whether a rung reproduces the paper's picture (weak trained models and "
                     "EMM gaining on them) needs at least two seeds per rung. The point estimates so far:")
    elif hits.empty:
        lines.append(("**No rung reproduces" if complete else "**No rung tested so far reproduces")
                     + " the paper's picture** (weak trained models and EMM gaining on them).")
        weak = t[t.weak_tm == True]  # noqa: E712
        gains = t[t.get("gain_verdict", pd.Series(dtype=str)) == "better"]
        if len(weak):
            lines.append(f"Weak trained models appear at {_flags(weak.rung)}, but EMM's gain on them is not "
                         "detectable there: the deviations explain the weak trained models, not EMM's gain.")
        if len(gains):
            lines.append(f"EMM gains on its trained models at {_flags(gains.rung)}, but these are not weak.")
        if t.weak_tm.isna().all():
            lines.append("Whether the trained models are weak cannot be judged here: at this budget our "
                         "protocol's trained models are not above the paper's, or rung ‘ours’ is missing.")
        elif not len(weak) and not len(gains):
            lines.append("No deviation replayed here makes the trained models weak (by the rule above) or gives "
                         "EMM a detectable gain on them.")
        if dataset.startswith("census") and complete:
            lines.append("What remains unexplained: " + (
                "EMM's gain on its trained models is" if len(weak) else
                "both the paper's weak trained models (0.930 and 0.907) and EMM's gain are")
                + " not produced by any replayed behaviour of the published code; what is left is what "
                  "the ladder does not replay (the paper's unknown split and stopping epoch, the spread of "
                  "its single runs, or a setting it does not report).")
    else:
        lines.append(f"The paper's picture appears at {_flags(hits.rung)}.")
        for i in range(1, len(t)):
            a, b = t.iloc[i - 1], t.iloc[i]
            if a.paper_picture and not b.paper_picture:
                lines.append(f"Between {named(a.rung)} and {named(b.rung)} it disappears: turning off {_flags(b.off)}"
                             + (f" and on {_flags(b.on)}" if b.on else "") + " removes it.")
            elif b.paper_picture and not a.paper_picture:
                lines.append(f"Between {named(a.rung)} and {named(b.rung)} it appears: turning off {_flags(b.off)}"
                             + (f" and on {_flags(b.on)}" if b.on else "") + " produces it.")
    for r in t.itertuples():
        vb = getattr(r, "vs_best", np.nan)
        lines.append(f"- {named(r.rung)}: TM mean {r.tm_mean:.4f}, EMM {r.emm:.4f}, gain {fmt_diff(getattr(r, 'gain', np.nan))} "
                     f"({_verdict(getattr(r, 'gain_verdict', None))}), EMM − {display_name(str(getattr(r, 'comparator', 'best baseline')))} "
                     f"{fmt_diff(vb)} ({_verdict(getattr(r, 'vs_best_verdict', None))}): {r.picture}.")
    return "\n".join(lines)


def headline(t: pd.DataFrame, planned: Sequence[str] | None = None) -> str:
    """:func:`answer` in one plain-text paragraph for the landing page (no Markdown: it is quoted
    with ``{glue:text}``): how far the ladder is, then the verdict or, before one, the estimates."""
    if t.empty:
        return "No answer yet: the full replay ladder (paper profile) has not been run."
    hi, missing, seeds, complete = _progress(t, planned)
    out = [f"All {len(t)} rungs measured ({seeds})." if complete
           else f"In progress ({len(t)} of {len(t) + len(missing)} rungs, {seeds})."]
    hits = list(t.rung[t.paper_picture])
    if hi < 2:
        ends = t[t.rung.isin(["paper", "published", "ours"])] if t.rung.isin(["paper", "ours"]).any() else t
        out.append("No verdict yet; point estimates: " + "; ".join(
            f"at '{r.rung}' the trained models' mean {r.tm_mean:.3f} and EMM {r.emm:.3f} ({fmt_diff(r.gain, 3)})"
            for r in ends.itertuples() if np.isfinite(getattr(r, "gain", np.nan))) + ".")
    elif hits:
        out.append("The paper's picture (weak trained models, EMM gaining on them) appears at "
                   + ", ".join(f"'{h}'" for h in hits) + "; the rest of the ladder shows where it goes (chapter 08).")
    else:
        out.append(("No rung" if complete else "No rung tested so far")
                   + " reproduces the paper's picture (weak trained models, EMM gaining on them).")
    return " ".join(out)


def gain_summary(t: pd.DataFrame) -> str:
    """The chapter's first question in one sentence (its conclusion): at which rungs EMM gains
    detectably on the mean of its trained models, with the gain and its 95% CI, and how far the gain
    runs at the other rungs."""
    from emm_lib.study.shared.present import fmt_diff

    if t.empty or t.n_seeds.max() < 2:
        return "Whether EMM gains on its trained models needs two seeds per rung; the ladder has fewer so far."
    better = t[t.gain_verdict == "better"]
    rest = t[t.gain_verdict != "better"]
    text = "EMM gains detectably on the mean of its trained models " + (
        "at " + ", ".join(f"{named(r.rung)} ({fmt_diff(r.gain)} [{fmt_diff(r.gain_lo)}, {fmt_diff(r.gain_hi)}], the "
                          f"trained models' mean {r.tm_mean:.4f})" for r in better.itertuples())
        if len(better) else "at no rung")
    if len(rest):
        worse = int((rest.gain_verdict == "worse").sum())
        where = "the other" if len(better) else "all"
        text += (f"; at {where} {len(rest)} rung{'s' if len(rest) > 1 else ''} its gain runs from "
                 f"{fmt_diff(rest.gain.min())} to {fmt_diff(rest.gain.max())}, "
                 + (f"detectably below zero at {worse}" if worse else "none of it detectable"))
    return text + f" ({_progress(t, None)[2]})."


def published_code(path: str | Path) -> pd.DataFrame | None:
    """The published code's own runs (``results/paper/published_code.csv``, scripts/published_code):
    per model (TM-1, TM-2, EMM) and task, mean, min and max test AUC over seeds; None when absent."""
    path = Path(path)
    if not path.exists():
        return None
    d = pd.read_csv(path, dtype={"commit": str})  # a hash can look like a number
    need = {"commit", "seed", "model", "task", "test_auc"}
    if not need <= set(d.columns):
        raise ValueError(f"{path} lacks columns {sorted(need - set(d.columns))}; it is written by "
                         "scripts/published_code/run.sh.")
    g = d.groupby(["model", "task"]).test_auc
    return g.agg(mean="mean", min="min", max="max", n="count").reset_index().assign(
        commit=", ".join(sorted(d.commit.astype(str).str[:7].unique())))


def agreement(t: pd.DataFrame, pub: pd.DataFrame | None, rung: str = "published") -> str:
    """Whether rung ``rung`` agrees with the published code's own runs (income): for each model, the
    published code's mean within our 95% CI, or our mean within the published code's [min, max]."""
    if pub is None:
        return ("The published code's own runs (`results/paper/published_code.csv`) have not been run yet, "
                "so the replay of rung ‘published’ is not yet checked against the real thing.")
    r = t[t.rung == rung]
    if r.empty:
        return f"Rung {named(rung)} has no results yet; nothing to check against the published code."
    r = r.iloc[0]
    task = r.task
    out = []
    for model, ours in (("TM-1", "tm1"), ("TM-2", "tm2"), ("EMM", "emm")):
        p = pub[(pub.model == model) & (pub.task == task)]
        if p.empty:
            out.append(f"{model}: no published-code run.")
            continue
        p = p.iloc[0]
        head = (f"{model} {task}: ours {r[ours]:.4f} vs published code {p['mean']:.4f} "
                f"[{p['min']:.4f}, {p['max']:.4f}] over {int(p['n'])} seed(s): ")
        if not np.isfinite(r.get(f"{ours}_lo", np.nan)) and p["n"] < 2:
            out.append(head + f"one seed on each side, no spread to judge a difference of {fmt_diff(r[ours] - p['mean'])} "
                       "by yet.")
            continue
        inside = (r[f"{ours}_lo"] <= p["mean"] <= r[f"{ours}_hi"]) or (p["min"] <= r[ours] <= p["max"])
        out.append(head + ("agrees within the spread." if inside else "**differs** beyond the spread."))
    return " ".join(out)


def pretty(t: pd.DataFrame) -> pd.DataFrame:
    """The ladder as a readable table: "mean [low, high]" cells, the verdicts and the picture per rung."""
    def cell(r, c, sign=""):
        m, lo, hi = r.get(c, np.nan), r.get(f"{c}_lo", np.nan), r.get(f"{c}_hi", np.nan)
        if not np.isfinite(m):
            return "–"
        ci = f" [{lo:{sign}.4f}, {hi:{sign}.4f}]" if np.isfinite(lo) else ""
        return f"{m:{sign}.4f}{ci}".replace("-", "\u2212")  # a real minus sign, as everywhere in the book

    rows = []
    for _, r in t.iterrows():
        rows.append({"rung": r.rung, "turns off": ", ".join(r.off) or "–", "seeds": int(r.n_seeds),
                     "TM-1": cell(r, "tm1"), "TM-2": cell(r, "tm2"), "EMM": cell(r, "emm"),
                     "gain over TM mean": cell(r, "gain", "+") + f" ({_verdict(r.get('gain_verdict'))})",
                     "EMM − best baseline": cell(r, "vs_best", "+")
                     + f" vs {display_name(str(r.get('comparator', '?')))} ({_verdict(r.get('vs_best_verdict'))})",
                     "EMM − best trained model": cell(r, "vs_tm", "+")
                     + f" vs {display_name(str(r.get('tm_comparator', '?')))} ({_verdict(r.get('vs_tm_verdict'))})",
                     "picture": r.picture})
    return pd.DataFrame(rows).set_index("rung")
