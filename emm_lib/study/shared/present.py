"""The book's presentation layer for tables: display names, one colour per model, number formats.

Every table and figure of the book names models through :func:`display_name` and colours them
through :func:`colour`, so "EMM (soft gate, ours)" is the same words and the same colour
everywhere. Tables are pandas Stylers with no index column, an en dash where a model has no score
(the caption says so), a precision fitted to the spread over seeds and p-values as ``0.048`` or
``< 0.001``. :func:`markdown_table` renders the same table as MyST so that a ``{table}`` directive
can number and caption it.
"""
from __future__ import annotations

import html
import math
import re
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from emm_lib.study.shared import glossary

__all__ = ["DISPLAY_NAMES", "MODEL_ORDER", "MISSING", "display_name", "colour", "palette", "task_name",
           "experiment_name", "experiment_label", "task_count", "decimals_for", "fmt_mean_spread", "fmt_p", "fmt_diff",
           "with_ci", "auc_table", "comparison_table", "paper_table", "markdown_table", "PAPER_MODEL_IDS",
           "sort_models", "cost_table", "table", "cell", "Tables", "dropdown", "MAX_COLUMNS"]

MISSING = "\u2013"  # en dash: "no score for this model and task"

DISPLAY_NAMES: dict[str, str] = glossary.MODELS  # one glossary (emm_lib.study.shared.glossary)
# The order models appear in tables and legends; unknown models follow, in their own order.
MODEL_ORDER: tuple[str, ...] = (
    "tm1", "tm2", "shared_bottom", "mmoe", "ple", "aitm", "aitm:calibrated", "adatt",
    "emm:baseline", "emm:+mtm", "emm:+p", "emm", "emm:hard-gate", "emm:soft", "emm:reused-embeddings",
)
# The paper's row names (config.PAPER_TABLES) -> our model ids; TM-1/TM-2 are per task.
PAPER_MODEL_IDS: dict[str, str] = {
    "TM-1": "tm1", "TM-2": "tm2", "PLE": "ple", "MMoE": "mmoe", "AITM": "aitm", "AdaTT": "adatt",
    "EMM": "emm", "baseline": "emm:baseline", "baseline+MTM": "emm:+mtm", "baseline+p": "emm:+p",
}
TASK_NAMES = glossary.TASKS
EXPERIMENT_NAMES = glossary.EXPERIMENTS


def _base(model: str) -> str:
    """``tm1:income`` -> ``tm1``; other ids unchanged."""
    return model.split(":")[0] if re.match(r"^tm\d+:", model) else model


def _without_task(model: str) -> str:
    """A model's name where a column already names the task: ``tm2:income`` -> "TM-2"."""
    m = re.match(r"^tm(\d+):", model)
    return f"TM-{m.group(1)}" if m else display_name(model)


def display_name(model: str) -> str:
    """The reader's name for a model id (``tm1:income`` -> "TM-1 (income)")."""
    m = re.match(r"^tm(\d+):(.+)$", model)
    if m:
        return f"TM-{m.group(1)} ({task_name(m.group(2))})"
    return DISPLAY_NAMES.get(model, model)


def task_name(task: str) -> str:
    """A task as a reader names it: Census's from its table, a synthetic ``t3`` as "task 3"."""
    m = re.fullmatch(r"t(\d+)", str(task))
    return f"task {m.group(1)}" if m else TASK_NAMES.get(task, task)


def experiment_name(experiment: str) -> str:
    return EXPERIMENT_NAMES.get(experiment, experiment)


def task_count(dataset: str) -> int:
    """Number of tasks a dataset key stands for (``emm_lib.study.dataset_key_of``): ``census`` and
    ``census/leak-free`` -> 2, ``census/fixed-features/3-tasks`` -> 3."""
    m = re.search(r"/(\d+)-tasks$", dataset)
    return int(m.group(1)) if m else 2


def _order_key(model: str) -> tuple[int, str]:
    base = _base(model)
    return (MODEL_ORDER.index(base) if base in MODEL_ORDER else len(MODEL_ORDER), model)


def sort_models(models: Iterable[str]) -> list[str]:
    """Models in the book's order (MODEL_ORDER), unknown ones last."""
    return sorted(dict.fromkeys(models), key=_order_key)


def palette() -> dict[str, str]:
    """One colour per model family (seaborn's colour-blind palette, fixed order)."""
    import seaborn as sns

    cols = sns.color_palette("colorblind", 10).as_hex() + sns.color_palette("dark", 10).as_hex()
    pal = {m: cols[i % len(cols)] for i, m in enumerate(MODEL_ORDER)}
    # The models that share Figure 3 with MMoE and AITM get hues of their own (not four reds).
    pal.update({"emm": "#222222", "emm:soft": "#7b3294", "emm:reused-embeddings": "#8c6d31"})
    return pal


def colour(model: str) -> str:
    """The model's colour in every figure (TM-1 models share one colour across tasks)."""
    pal = palette()
    base = _base(model)
    if base in pal:
        return pal[base]
    return "#555555"


# ------------------------------------------------------------------ numbers

def decimals_for(spread: float, lo: int = 3, hi: int = 6) -> int:
    """Decimals that show two significant digits of ``spread`` (clamped to [lo, hi])."""
    if spread is None or not math.isfinite(spread) or spread <= 0:
        return 4
    return int(min(hi, max(lo, 1 - math.floor(math.log10(spread)))))


def fmt_mean_spread(mean: float, spread: float | None, n: int | None = None) -> str:
    """"0.9503 ± 0.0012": four decimals, as every AUC in the book (a spread below 0.00005 gets the
    decimals that show its first digit, 0.9947 ± 0.00003); a single run shows no ±."""
    if mean is None or not math.isfinite(mean):
        return MISSING
    if spread is None or not math.isfinite(spread) or (n is not None and n <= 1):
        return f"{mean:.4f}"
    d = 4 if spread >= 0.00005 or spread <= 0 else min(8, math.ceil(-math.log10(spread) + 1e-12))
    return f"{mean:.4f} ± {spread:.{d}f}"


def fmt_diff(x: float, d: int = 4) -> str:
    """A signed difference with a real minus sign. One that rounds to zero at ``d`` decimals gets the
    decimals that show its first digit (an interval's end at −0.00003 is not written −0.0000); below
    1e-7 it is 0."""
    if x is None or not math.isfinite(x):
        return MISSING
    if abs(x) < 0.5 * 10 ** -d:
        if abs(x) < 5e-8:
            return f"{0:.{d}f}"
        d = math.ceil(-math.log10(abs(x)) + 1e-12)
    return f"{x:+.{d}f}".replace("-", "\u2212")


def fmt_p(p: float) -> str:
    """p-values as ``0.048``, ``< 0.001``; missing as an en dash."""
    if p is None or not math.isfinite(p):
        return MISSING
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def with_ci(summary: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Add ``ci_low``/``ci_high``: a t-based CI of the mean AUC over seeds (columns mean, std, n), on the
    logit scale so that it stays inside [0, 1] (:func:`emm_lib.study.shared.stats.bounded_ci`)."""
    from scipy import stats

    from emm_lib.study.shared.stats import bounded_ci

    s = summary.copy()
    n = s["n"].astype(float)
    q = stats.t.ppf(0.5 + level / 2, (n - 1).where(n > 1))
    s["ci_low"], s["ci_high"] = bounded_ci(s["mean"], s["std"] / n.pow(0.5), q)
    return s


# ------------------------------------------------------------------ tables

def _styler(df: pd.DataFrame, caption: str | None):
    st = df.style.hide(axis="index")
    if caption:
        st = st.set_caption(caption)
    return st.set_table_styles([{"selector": "caption", "props": "caption-side: bottom; text-align: left;"},
                                {"selector": "th, td", "props": "padding: 0.25em 0.9em; text-align: left;"},
                                {"selector": "thead th", "props": "border-bottom: 1px solid #999;"}])


def auc_table(summary: pd.DataFrame, order: Sequence[str] | None = None, tasks: Sequence[str] | None = None,
              gain: bool = False, caption: str | None = None):
    """Model x task table of test AUC "mean ± std over seeds" (a Styler, no index column).

    ``summary``: columns model, task, mean, std, n (and gain when ``gain``), as from
    :func:`emm_lib.study.summarize` / ``table_with_gain``. A model without a score for a task
    shows an en dash. ``order`` picks and orders models (missing ones are left out).
    """
    s = summary
    models = [m for m in (order or sort_models(s.model)) if m in set(s.model)]
    tasks = list(tasks or dict.fromkeys(s.task))
    rows = []
    for m in models:
        d = s[s.model == m].set_index("task")
        row = {"Model": display_name(m)}
        for t in tasks:
            if t not in d.index:
                row[task_name(t)] = MISSING
                continue
            r = d.loc[t]
            text = fmt_mean_spread(r["mean"], r["std"], r["n"])  # may wrap at "±": a wide table still fits the page
            if gain and "gain" in d.columns and math.isfinite(r["gain"]):
                text += f" ({cell(r['gain'], 'diff')})"
            row[task_name(t)] = text
        row["Seeds"] = int(d["n"].min()) if len(d) else 0
        rows.append(row)
    return _styler(pd.DataFrame(rows), caption)


def experiment_label(experiment: str, dataset: str) -> str:
    """An experiment with its task count: "Table I, 2 tasks"."""
    return f"{experiment_name(experiment)}, {task_count(dataset)} tasks"


def comparison_table(cmp: pd.DataFrame, test_ci: bool = True, caption: str | None = None,
                     show_model: bool | None = None, show_comparator: bool = True):
    """Model − comparator per experiment and task (the schema of ``emm_lib.study.shared.stats.compare``).

    One row per experiment (with its task count) and task; the model column appears when
    ``show_model`` (default: when ``cmp`` compares several models); when ``cmp`` has several
    comparator kinds (``against``, :mod:`emm_lib.study.shared.verdicts`) the comparator says its kind ("TM-2
    (trained model)": the task is in its own column). The CI includes test-set error where recorded
    (``ci_*_test``), else it is the seed-level CI. ``show_comparator=False`` drops the comparator
    column (for one comparator the caption names, where the column would not fit the page).
    """
    several = cmp.model.nunique() > 1 if show_model is None else show_model
    kinds = "against" in cmp and cmp.against.nunique() > 1  # the headline family: two comparator kinds
    rows = []
    for r in cmp.itertuples():
        lo_v, hi_v = r.ci_low, r.ci_high
        if test_ci and "ci_low_test" in cmp and math.isfinite(r.ci_low_test):
            lo_v, hi_v = r.ci_low_test, r.ci_high_test
        d = 4  # AUC differences: four decimals in every table (fmt_diff shows a tiny end's first digit)
        ci = f" [{fmt_diff(lo_v, d)}, {fmt_diff(hi_v, d)}]" if math.isfinite(lo_v) else ""
        row = {"Experiment": experiment_label(r.experiment, r.dataset), "Task": task_name(r.task)}
        if several:
            row["Model"] = display_name(r.model)
        comparator = f"{_without_task(r.comparator)} ({r.against})" if kinds else display_name(r.comparator)
        row.update({"Comparator": comparator} if show_comparator else {})
        row.update({"Seeds": int(r.n_seeds),
                    "Difference [95% CI]": fmt_diff(r.mean_diff, d) + ci,
                    "p (Holm)": fmt_p(r.p_holm if "p_holm" in cmp else r.p_value), "Verdict": r.verdict})
        rows.append(row)
    return _styler(pd.DataFrame(rows), caption)


def paper_table(name: str, caption: str | None = None):
    """The paper's single-run numbers (``config.PAPER_TABLES[name]``) with our display names."""
    from emm_lib import config

    if name not in config.PAPER_TABLES:
        raise ValueError(f"Unknown paper table {name!r}; known: {sorted(config.PAPER_TABLES)}.")
    rows = []
    for model, by_task in config.PAPER_TABLES[name].items():
        row = {"Model (paper, single run)": model}
        row.update({task_name(t): f"{v:.5f}" for t, v in by_task.items()})
        rows.append(row)
    return _styler(pd.DataFrame(rows), caption)


def cost_table(cost: pd.DataFrame, caption: str | None = None):
    """Training time (``emm_lib.study.compute_cost``): one row per model, mean seconds per run for
    each task count (over all feature sets; an en dash where the model was not run), runs and
    total minutes."""
    c = cost.assign(k=cost.dataset.map(task_count))
    counts = sorted(int(k) for k in c.k.dropna().unique())
    rows = []
    for m in sort_models(c.model):
        d = c[c.model == m]
        row = {"Model": display_name(m)}
        for k in counts:
            got = d[d.k == k]
            row[f"s/run, {k} tasks"] = f"{got.seconds_total.sum() / got.runs.sum():.0f}" if len(got) else MISSING
        row["Runs"] = int(d.runs.sum())
        row["Total (min)"] = f"{d.seconds_total.sum() / 60:.1f}"
        rows.append(row)
    return _styler(pd.DataFrame(rows), caption)


#: The most columns one table shows; a wider table is split into parts that repeat its key columns.
MAX_COLUMNS = 8
_FIT = [{"selector": "", "props": "font-size: 0.85em; max-width: 100%; margin-bottom: 0.8em;"},
        {"selector": "th", "props": "white-space: normal; overflow-wrap: normal;"},
        {"selector": "td", "props": "white-space: normal; overflow-wrap: break-word;"}]


def cell(value, kind: str) -> str:
    """One value as the book writes it (``kind`` from :data:`emm_lib.study.shared.glossary.KINDS`)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or value is pd.NA:
        return MISSING
    if isinstance(value, (tuple, list)):  # a shape: (135,) -> "135", (8, 16) -> "8 × 16"
        return " \u00d7 ".join(str(x) for x in value)
    spec = glossary.KINDS.get(kind, "text")
    if spec == "yes/no" or isinstance(value, (bool, np.bool_)):
        return "yes" if bool(value) else "no"
    if spec == "model":
        return display_name(str(value))
    if spec == "task":
        return task_name(str(value))
    if spec == "dataset":
        return glossary.dataset_label(str(value))
    if spec == "text" or not isinstance(value, (int, float)):
        return str(glossary.value_label(value if isinstance(value, str) else str(value)))
    if spec == "p":
        return fmt_p(float(value))
    if spec == "diff":
        return "0.0000" if round(float(value), 4) == 0 else fmt_diff(float(value))
    text = spec.format(value)
    return text.lstrip("-") if float(re.sub(r"[^0-9.]", "", text) or 0) == 0 else text.replace("-", "\u2212")


class Tables:
    """Several Stylers shown one below the other (the parts of a table too wide for the page); with a
    ``summary``, inside a collapsed section that opens on a click (``<details>``)."""

    def __init__(self, parts: list, summary: str | None = None):
        self.parts = parts
        self.summary = summary

    def _repr_html_(self) -> str:
        body = "\n".join(p.to_html() if hasattr(p, "to_html") else p._repr_html_() for p in self.parts)
        if self.summary is None:
            return body
        return (f'<details class="emm-dropdown"><summary>{html.escape(self.summary)}</summary>\n'
                f"{body}\n</details>")


def dropdown(summary: str, *tables) -> Tables:
    """Tables (Stylers or :class:`Tables`) in one collapsed section titled ``summary``: per-point
    detail a reader opens when wanted, so that a chapter's finding stays near its top."""
    parts = [p for t in tables for p in (t.parts if isinstance(t, Tables) else [t])]
    return Tables(parts, summary)


def table(df: pd.DataFrame, caption: str | None = None, keys: Sequence[str] | None = None,
          kinds: dict[str, str] | None = None, max_columns: int = MAX_COLUMNS):
    """Any DataFrame as the book shows a table: headers and values in words (:mod:`emm_lib.study.shared.glossary`),
    a fixed number of decimals per kind of number, no index, a width that fits the page.

    A named index becomes columns. ``kinds`` overrides a column's kind. A table with more than
    ``max_columns`` columns is split into parts that each repeat ``keys`` (default: the first
    column); then a :class:`Tables` is returned, else one Styler.
    """
    named = any(n is not None for n in df.index.names)
    d = df.reset_index() if named else df.reset_index(drop=True)
    if isinstance(d.columns, pd.MultiIndex):
        d.columns = [" ".join(str(x) for x in c if str(x)) for c in d.columns]
    kinds = kinds or {}
    shown = pd.DataFrame({glossary.column_label(c): [cell(v, kinds.get(c) or glossary.column_kind(c, d[c].dtype))
                                                    for v in d[c]] for c in d.columns}, index=d.index)
    labels = list(shown.columns)
    key_labels = [glossary.column_label(k) for k in (keys or list(d.columns[:1]))]
    rest = [c for c in labels if c not in key_labels]
    n_parts = max(-(-len(rest) // max(max_columns - len(key_labels), 1)), 1)
    bounds = [round(i * len(rest) / n_parts) for i in range(n_parts + 1)]  # balanced: 7 -> 3, 2, 2
    parts = [key_labels + rest[a:b] for a, b in zip(bounds, bounds[1:])] or [key_labels]
    stylers = [_styler(shown[cols], caption if i == len(parts) - 1 else None).set_table_styles(_FIT, overwrite=False)
               for i, cols in enumerate(parts)]
    return stylers[0] if len(stylers) == 1 else Tables(stylers)


def markdown_table(table) -> str:
    """A Styler or DataFrame as a MyST pipe table (header + rows, index hidden, cells as shown)."""
    if hasattr(table, "data"):  # a Styler: take the displayed strings
        df = table.data.copy()
        df = df.astype(str)
    else:
        df = table.astype(str)

    def esc(x: str) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(esc(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(esc(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])
