"""The study's results as tables over seeds: mean ± std per model and task, the paper's gain
column, "mean ± std" strings, the paper's own numbers, a paired t-test and training cost.
(The verdict rule with test-set error is :mod:`emm_lib.study.shared.stats`; display formats :mod:`emm_lib.study.shared.present`.)
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from emm_lib import config
from emm_lib.study.shared import results
from emm_lib.study.shared.present import fmt_diff

__all__ = ["study_tables", "summarize", "table_with_gain", "pretty", "paper_table", "paired_test", "compute_cost"]


def study_tables(out_dir: str | Path) -> dict[str, pd.DataFrame]:
    """The Census study's results tables in ``out_dir`` (``single_task`` and ``config.EXPERIMENTS``),
    by name. The synthetic sweep and the protocol replay write their own tables (chapters 8 and 9),
    and ``published_code.csv`` is not a results table, so none of them is read here."""
    names = ("single_task", *config.EXPERIMENTS)
    return {n: results.read(Path(out_dir) / f"{n}.csv") for n in names if (Path(out_dir) / f"{n}.csv").exists()}


def summarize(df: pd.DataFrame, metric: str = "test_auc") -> pd.DataFrame:
    """Mean, std and count over seeds per (dataset, model, task); a row repeated exactly counts once, and
    rows of one run that disagree, or of several run profiles, raise (:func:`results.one_row_per_run`)."""
    d = results.one_row_per_run(df[df.metric == metric], f"summarize({metric!r})")
    g = d.groupby(["dataset", "model", "task"], sort=False).value
    return g.agg(mean="mean", std="std", n="count").reset_index()


def table_with_gain(df: pd.DataFrame, metric: str = "test_auc") -> pd.DataFrame:
    """Model x task mean AUC with the paper's gain column: difference to the mean of TM-1 and TM-2."""
    s = summarize(df, metric)
    tm = s[s.model.str.match(r"tm[12]:")].copy()
    tm["shape"] = tm.model.str.split(":").str[0]
    tm_mean = tm.groupby("task")["mean"].mean()
    s["gain"] = s["mean"] - s.task.map(tm_mean)
    return s


def pretty(summary: pd.DataFrame, order: Sequence[str] | None = None, gain: bool = False) -> pd.DataFrame:
    """Model x task table of "mean ± std" strings (AUC to 4 decimals; the gain when asked)."""
    s = summary.copy()
    one = s["n"] <= 1
    s["cell"] = [f"{m:.4f}" if o or pd.isna(sd) else f"{m:.4f} ± {sd:.4f}"
                 for m, sd, o in zip(s["mean"], s["std"], one)]
    if gain:
        s["cell"] = s["cell"] + [f" ({fmt_diff(g)})" for g in s["gain"]]
    t = s.pivot_table(index="model", columns="task", values="cell", aggfunc="first", sort=False)
    t["seeds"] = s.groupby("model", sort=False)["n"].min()
    if order is not None:
        t = t.reindex([m for m in order if m in t.index])
    t.columns.name = None
    return t


def paper_table(name: str) -> pd.DataFrame:
    """The paper's reported numbers (single runs) as a model x task table, labelled as such."""
    if name not in config.PAPER_TABLES:
        raise ValueError(f"Unknown paper table {name!r}; known: {sorted(config.PAPER_TABLES)}.")
    t = pd.DataFrame(config.PAPER_TABLES[name]).T
    t.index.name = "model (paper, single run)"
    return t


def paired_test(df: pd.DataFrame, model_a: str, model_b: str, metric: str = "test_auc") -> pd.DataFrame:
    """Per task: mean difference a - b over the seeds both have, and a paired t-test p-value."""
    from scipy import stats

    d = results.one_row_per_run(df[df.metric == metric], f"paired_test({model_a!r}, {model_b!r})")
    rows = []
    for (dataset, task), g in d.groupby(["dataset", "task"], sort=False):
        a = g[g.model == model_a].set_index("seed").value
        b = g[g.model == model_b].set_index("seed").value
        seeds = sorted(set(a.index) & set(b.index))
        if not seeds:
            continue
        diff = a.loc[seeds] - b.loc[seeds]
        p = float(stats.ttest_rel(a.loc[seeds], b.loc[seeds]).pvalue) if len(seeds) > 1 and diff.std() > 0 else float("nan")
        rows.append({"dataset": dataset, "task": task, "a": model_a, "b": model_b, "n_seeds": len(seeds),
                     "mean_diff": float(diff.mean()), "std_diff": float(diff.std()) if len(seeds) > 1 else float("nan"),
                     "p_value": p})
    return pd.DataFrame(rows)


def compute_cost(df: pd.DataFrame) -> pd.DataFrame:
    """Training seconds per model (summed over seeds and tasks counted once per run)."""
    runs = df.drop_duplicates(["dataset", "model", "seed"])
    return (runs.groupby(["dataset", "model"], sort=False)
            .agg(runs=("seed", "count"), seconds_total=("train_seconds", "sum"),
                 seconds_per_run=("train_seconds", "mean"), epochs_mean=("best_epoch", "mean"))
            .reset_index())
