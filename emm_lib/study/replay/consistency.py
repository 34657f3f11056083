"""Chapter 08's question: is each of the paper's single runs consistent with one run of a rung?

The paper reports one run per model. Whether a rung of the replay ladder (:mod:`emm_lib.study.replay.authors`)
reproduces a paper number is therefore a question about *one new run* of that rung, not about a
difference of means: the rule, written before the numbers, is
``config.REPLAY_CONSISTENCY["rule"]``. Per rung, task and quantity (TM-1, TM-2, EMM, MMoE, PLE
and EMM's gain over the mean of TM-1 and TM-2, the paper's gain column) this module gives the
95% prediction interval of one run, its half-width and the verdict, and turns the table into
the chapter's answer and the landing page's sentence. A paper number inside a wide interval is
"consistent" but says little; the contrast between rungs is the informative part.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as _st

from emm_lib.study.shared.glossary import named
from emm_lib.study.replay import authors
from emm_lib import config
from emm_lib.study.shared import stats

__all__ = ["QUANTITIES", "paper_value", "prediction_interval", "table", "of", "pretty", "answer", "headline"]

#: Display name -> model id in the replay's results (``{task}`` filled in; "gain": EMM − TM mean).
QUANTITIES: dict[str, str] = {"TM-1": "tm1:{task}", "TM-2": "tm2:{task}", "EMM": "emm", "MMoE": "mmoe",
                              "PLE": "ple", "gain": "emm - tm_mean"}


def paper_value(name: str, task: str) -> float:
    """The paper's single-run number for a quantity of :data:`QUANTITIES` (Table I, Census)."""
    t1 = config.PAPER_TABLES["table1_census"]
    if name == "gain":
        return t1["EMM"][task] - (t1["TM-1"][task] + t1["TM-2"][task]) / 2
    return t1[name][task]


def prediction_interval(values: Sequence[float], test_var: float, level: float, bounded: bool) -> tuple[float, float]:
    """The ``level`` prediction interval of one new run: ``mean ± t_{n-1} sqrt(s^2 (1 + 1/n) + v)``,
    on the logit scale for an AUC (``bounded``), clipped to [−1, 1] for a difference."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n < 2:
        return float("nan"), float("nan")
    q = _st.t.ppf(0.5 + level / 2, n - 1)
    se = float(np.sqrt(x.var(ddof=1) * (1 + 1 / n) + (test_var if np.isfinite(test_var) else 0.0)))
    if bounded:
        lo, hi = stats.bounded_ci(x.mean(), se, q)
        return float(lo), float(hi)
    return max(x.mean() - q * se, -1.0), min(x.mean() + q * se, 1.0)


def _test_var(pv: pd.DataFrame, key: str, task: str, a: str, b: str, seeds) -> float:
    """Mean over ``seeds`` of the recorded DeLong variance: of one AUC (``b`` "") or of a paired difference."""
    p = pv[(pv.dataset == key) & (pv.task == task) & pv.seed.isin(seeds)]
    got = p[((p.model_a == a) & (p.model_b == b)) | ((p.model_a == b) & (p.model_b == a))].drop_duplicates("seed")
    return float(got.var_diff.astype(float).mean()) if len(got) == len(seeds) else float("nan")


def _values(v: pd.DataFrame, key: str, model: str, task: str) -> pd.Series:
    if " - " in model:
        a, b = model.split(" - ")
        return stats.seed_differences(v[v.dataset == key], a, b, key, task)
    d = v[(v.dataset == key) & (v.model == model) & (v.task == task) & (v.metric == "test_auc")]
    return d.drop_duplicates("seed", keep="last").set_index("seed").value


def table(v: pd.DataFrame, dataset: str, rungs: Sequence[str], pv: pd.DataFrame,
          tasks: Sequence[str] | None = None) -> pd.DataFrame:
    """Long table: rung, task, quantity, n, mean, sd, lo, hi, half_width, test_var, paper, verdict.
    ``v``: :func:`emm_lib.study.replay.authors.view` of the replay; ``pv``: its recorded variances."""
    cfg = config.REPLAY_CONSISTENCY
    rows = []
    for rung in rungs:
        key = authors._key(dataset, rung)
        for task in tasks or cfg["tasks"]:
            for name, model in QUANTITIES.items():
                m = model.format(task=task)
                x = _values(v, key, m, task)
                if x.empty:
                    continue
                a, _, b = m.partition(" - ")
                tv = _test_var(pv, key, task, a, b, list(x.index))
                lo, hi = prediction_interval(x.to_numpy(), tv, cfg["level"], bounded=not b)
                paper = paper_value(name, task)
                verdict = ("not judged (fewer than 2 seeds)" if not np.isfinite(lo)
                           else "consistent" if lo <= paper <= hi else "inconsistent")
                rows.append(dict(rung=rung, task=task, quantity=name, n=len(x), mean=float(x.mean()),
                                 sd=float(x.std(ddof=1)) if len(x) > 1 else np.nan, lo=lo, hi=hi,
                                 half_width=(hi - lo) / 2, test_var=tv, paper=paper, verdict=verdict))
    return pd.DataFrame(rows)


def of(st, rungs: Sequence[str] | None = None) -> pd.DataFrame:
    """:func:`table` of the replay at ``st`` (Census only: the paper's numbers are Census'); empty
    when nothing has run or the dataset has no paper values."""
    df = authors.read(st)
    if df.empty or not st.dataset.startswith("census"):
        return pd.DataFrame()
    from emm_lib.study.replay import protocol

    rungs = authors.rungs_for(st.profile, rungs) if rungs is not None else protocol.RUNG_NAMES
    v = authors.view(df, st.dataset, rungs)
    return table(v, st.dataset, [r for r in rungs if (v.dataset == authors._key(st.dataset, r)).any()],
                 authors.read_pair_variances(st))


_MARK = {"consistent": "✓", "inconsistent": "✗"}


def _label(q: str) -> str:
    return "gain over mean(TM-1, TM-2)" if q == "gain" else q


def _names(qs: Sequence[str]) -> str:
    qs = [_label(q) for q in qs]
    return qs[0] if len(qs) == 1 else ", ".join(qs[:-1]) + " and " + qs[-1] if qs else "none"


def _fmt(q: str, x: float) -> str:
    return f"{x:+.4f}".replace("-", "−") if q == "gain" else f"{x:.4f}"


def pretty(t: pd.DataFrame, task: str) -> pd.DataFrame:
    """One task as a table: a row per rung (the paper's single runs on top), a column per quantity,
    cells "mean ±half-width of the prediction interval ✓/✗" (✓: the paper's number is inside)."""
    g = t[t.task == task]
    cols = [q for q in QUANTITIES if q in set(g.quantity)]
    rows = [{"rung": "paper's single run", **{_label(q): _fmt(q, paper_value(q, task)) for q in cols}}]
    for rung, r in g.groupby("rung", sort=False):
        r = r.set_index("quantity")
        cells = {_label(q): f"{_fmt(q, r.loc[q, 'mean'])} ±{r.loc[q, 'half_width']:.4f} "
                            f"{_MARK.get(r.loc[q, 'verdict'], '–')}" for q in cols if q in r.index}
        rows.append({"rung": rung, **cells})
    return pd.DataFrame(rows).set_index("rung")


def _story(g: pd.DataFrame) -> dict:
    """Per rung of one task: the picture's quantities outside, the others outside, and which rungs fit."""
    pic = config.REPLAY_CONSISTENCY["picture"]
    out = {}
    for rung, r in g.groupby("rung", sort=False):
        judged = r.verdict.isin(list(_MARK))
        bad = r[r.verdict == "inconsistent"]
        out[rung] = dict(rows=r.set_index("quantity"), judged=bool(judged.all()),
                         bad_pic=[q for q in pic if q in set(bad.quantity)],
                         bad_other=[q for q in bad.quantity if q not in pic],
                         widths=r[r.quantity.isin(pic)].half_width)
    return out


def _outside(rows: pd.DataFrame, qs: Sequence[str]) -> str:
    parts = [f"{_label(q)} ({_fmt(q, rows.loc[q, 'paper'])}, not in [{_fmt(q, rows.loc[q, 'lo'])}, "
             f"{_fmt(q, rows.loc[q, 'hi'])}])" for q in qs]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _rung_note(rung: str, rungs: Sequence[str]) -> str:
    """`paper` -> "the published code with `final_epoch_weights` on; " (its flags against `published`)."""
    from emm_lib.study.replay import protocol

    if rung == "published" or "published" not in rungs:
        return ""
    on = sorted(set(protocol.rung_flags(rung)) - set(protocol.rung_flags("published")))
    off = sorted(set(protocol.rung_flags("published")) - set(protocol.rung_flags(rung)))
    if off or not on:
        return ""
    return "the published code with " + ", ".join(f"{named(f)}" for f in on) + " on; "


def _width(s: dict) -> str:
    w = s["widths"]
    return f"±{w.min():.4f} to ±{w.max():.4f}" if len(w) > 1 else f"±{w.iloc[0]:.4f}"


def _task_lines(g: pd.DataFrame, task: str, short: bool = False) -> list[str]:
    from emm_lib.study.shared.present import task_name

    pic = config.REPLAY_CONSISTENCY["picture"]
    st = _story(g)
    head = f"**{task_name(task)[0].upper() + task_name(task)[1:]}.**"
    if not all(s["judged"] for s in st.values()):
        return [f"{head} Fewer than two seeds at some rung: no prediction interval, no verdict there."]
    fits = [r for r, s in st.items() if not s["bad_pic"]]
    best = min(st, key=lambda r: len(st[r]["bad_pic"]))
    lines = []
    if fits:
        lines.append(f"{head} The paper's {_names(pic)} are all consistent with one run at "
                     + ", ".join(f"{named(r)} ({_rung_note(r, list(st))}interval half-widths {_width(st[r])})"
                                 for r in fits) + ".")
        for r in fits:
            bad = st[r]["bad_other"]
            if bad:
                what = _names(bad) if short else _outside(st[r]["rows"], bad)
                lines.append(f"Not consistent there: the paper's {what}.")
    else:
        lines.append(f"{head} No rung is consistent with all of the paper's {_names(pic)}. Closest: {named(best)} "
                     f"(half-widths {_width(st[best])}), which excludes the paper's "
                     f"{_names(st[best]['bad_pic']) if short else _outside(st[best]['rows'], st[best]['bad_pic'])}.")
    rest = [r for r in st if r not in fits]
    if "published" in rest and (fits or best != "published"):
        bad = st["published"]["bad_pic"]
        lines.append(f"The published code as it runs (‘published’, half-widths {_width(st['published'])}) excludes "
                     f"the paper's {_names(bad) if short else _outside(st['published']['rows'], bad)}.")
        for r in fits:
            w, wp = st[r]["widths"], st["published"]["widths"]
            widest = st[r]["rows"].loc[list(pic)].half_width.idxmax()
            lines.append(f"The widest interval at {named(r)} ({_label(widest)}, ±{w.max():.4f}) is "
                         f"{w.max() / wp.max():.1f} times the widest at ‘published’: consistency there excludes "
                         "little, while the narrow intervals of ‘published’ do exclude the paper.")
    others = [r for r in rest if r != "published" and (fits or r != best)]
    if others:
        common = [q for q in pic if all(q in st[r]["bad_pic"] for r in others)]
        lines.append(("Every other rung" if short else
                      f"Every other rung ({', '.join(f'{named(r)}' for r in others)})") + " excludes at least one of them"
                     + (f"; all exclude the paper's {_names(common)}." if common else "."))
    return lines


def answer(t: pd.DataFrame, rule: bool = True) -> str:
    """The chapter's answer in Markdown, per task, computed from :func:`table`; the rule comes first
    (``rule=False``: where the page has stated it already)."""
    if t.empty:
        return "No rung has results yet, so the question cannot be answered from data."
    lines = [f"**The rule** (`config.REPLAY_CONSISTENCY`, fixed before the numbers): "
             f"{config.REPLAY_CONSISTENCY['rule']}"] if rule else []
    for task in dict.fromkeys(t.task):
        lines.append(" ".join(_task_lines(t[t.task == task], task)))
    return "\n\n".join(lines)


def headline(t: pd.DataFrame) -> str:
    """:func:`answer` as one short plain-text paragraph for the landing page (``{glue:text}``)."""
    if t.empty:
        return "No answer yet: the full replay ladder (paper profile) has not been run."
    text = " ".join(" ".join(_task_lines(t[t.task == task], task, short=True)) for task in dict.fromkeys(t.task))
    return (f"Is each of the paper's single runs consistent with one run of a replay rung (95% prediction "
            f"interval with the test-set term, {int(t.n.min())} seeds per rung)? "
            + text.replace("**", "").replace("`", "'"))
