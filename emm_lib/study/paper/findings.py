"""The results chapter's discussion, computed from the result rows (never typed by hand).

Each function returns one Markdown sentence or bullet built from the numbers; notebooks display
them and glue the headline. A hypothesis is labelled as one and points to the chapter that tests it.
"""
from __future__ import annotations

import pandas as pd

from emm_lib import config
from emm_lib.study.shared import results, stats
from emm_lib.study.shared.present import display_name, fmt_diff, fmt_p, task_name

__all__ = ["code_versions", "emm_vs_own_models", "ablation_baseline", "paper_gaps_vs_spread", "trained_models_vs_paper",
           "leakage", "training_cost", "discussion"]


def _test(runs: pd.DataFrame, dataset: str) -> pd.DataFrame:
    d = runs[(runs.metric == "test_auc") & (runs.dataset == dataset)]
    return results.one_row_per_run(d, "findings")


def code_versions(runs: pd.DataFrame, check: pd.DataFrame | None = None) -> str:
    """Which code commits made the runs and, when ``check`` (rows rerun at a later commit: ``model,
    metric, difference``) is given, how far the commits' numbers are apart on the same seed. The
    finding comes first in words; the commit hashes close the paragraph, for the record."""
    per = runs.drop_duplicates(["dataset", "model", "seed"]).groupby("git_commit").size()
    if len(per) < 2:
        return ""
    commits = "Commits: " + ", ".join(f"`{c}` ({n} runs)" for c, n in per.items())
    text = f"**{len(per)} code versions.** The runs were made by {len(per)} versions of the code."
    if check is None or check.empty:
        return f"{text} No run was repeated with both. {commits}."
    t = check[check.metric == "test_auc"]
    single = t.model.str.startswith("tm")
    same = bool((t[single].difference == 0).all()) if single.any() else None
    multi = t[~single]
    text += f" Rerunning seed {', '.join(map(str, sorted(t.seed.unique())))} with the later code: "
    if same is not None:
        text += "the single-task models are bit-identical; " if same else "the single-task models differ; "
    if len(multi):
        text += (f"the multi-task models ({', '.join(display_name(m) for m in multi.model.unique())}) differ by up to "
                 f"{multi.difference.abs().max():.4f} test AUC. Their fused layers compute the same function "
                 "to 1e-6 in another order of float sums, and over many epochs training follows another "
                 "path, as a new seed would.")
        sd = _test(runs, t.dataset.iloc[0]).merge(multi[["model", "task"]].drop_duplicates())
        sd = sd.groupby(["model", "task"]).value.std().dropna()
        if len(sd):
            text += (f" For comparison, the same models' standard deviation over seeds is "
                     f"{sd.min():.4f}–{sd.max():.4f}.")
    return (f"{text} {commits}; the rerun used `{t.git_commit_new.iloc[0]}`, whose tiny-profile numbers equal "
            "those of the latest of them, bit for bit on one machine (`make refactor-guard`).")


def emm_vs_own_models(runs: pd.DataFrame, dataset: str = "census", family: pd.DataFrame | None = None,
                      pair_var: pd.DataFrame | None = None, model: str = "emm") -> str:
    """EMM against its best trained single-task model (chosen on validation AUC), tested with the
    study's paired rule: the rows of the headline ``family`` (:func:`emm_lib.study.shared.verdicts.headline`) for
    ``dataset``, else a comparison of their own (Holm over its tasks)."""
    from emm_lib.study.shared import verdicts

    if family is not None and len(family):
        c = family[(family.against == "trained model") & (family.dataset == dataset) & (family.model == model)]
        holm = "Holm over the headline family"
    else:
        d = runs[runs.dataset == dataset]
        c = verdicts.own_models(d, [model], "", pair_var) if len(d) else pd.DataFrame()
        holm = "Holm over its tasks"
    if c.empty:
        return f"{display_name(model)} and its trained models are not all in the runs yet."
    below, total = verdicts.direction(c, runs)
    parts = [f"{task_name(r.task)} {fmt_diff(r.mean_diff)} vs {display_name(r.comparator)} [{fmt_diff(r.ci_low_test)}, "
             f"{fmt_diff(r.ci_high_test)}] ({r.verdict}, Holm p {fmt_p(r.p_holm)})" if pd.notna(r.ci_low_test) else
             f"{task_name(r.task)} {fmt_diff(r.mean_diff)} vs {display_name(r.comparator)} ({r.verdict})"
             for r in c.itertuples()]
    excludes = any(pd.notna(r.ci_low_test) and (r.ci_low_test > 0 or r.ci_high_test < 0)
                   and r.verdict == "no detectable difference" for r in c.itertuples())
    why = (" Each interval is that comparison's own 95% interval, unadjusted; the verdict is after Holm over "
           "the whole family, so an interval can exclude 0 where the verdict finds no detectable difference."
           if excludes else "")
    return (f"**{display_name(model)} against its own trained models.** Against the trained single-task model "
            f"with the best validation AUC, tested like the baselines ({holm}): " + "; ".join(parts)
            + f". It is below that model in {below} of {total} seed-level comparisons"
            + (": the direction, which the test cannot confirm at this number of seeds." if
               (c.verdict == "no detectable difference").all() else ".") + why)


def ablation_baseline(runs: pd.DataFrame, dataset: str = "census", pair_var: pd.DataFrame | None = None) -> str:
    """Full EMM against the same structure trained from scratch (Table II's "baseline")."""
    cmp = stats.compare(runs[runs.dataset == dataset], "emm", ["emm:baseline"], experiment="table2",
                        pair_var=pair_var)
    if cmp.empty:
        return "Table II's baseline (the EMM structure trained from scratch) is not in the runs yet."
    parts = [f"{r.task} {fmt_diff(r.mean_diff)} ({r.verdict}; {r.n_seeds} seed{'s' if r.n_seeds != 1 else ''})"
             for r in cmp.itertuples()]
    return ("**Trained components against none.** Full EMM minus the same structure trained from scratch "
            "(Table II's \"baseline\"): " + "; ".join(parts) + ".")


def paper_gaps_vs_spread(runs: pd.DataFrame, dataset: str = "census", task: str = "income") -> str:
    """The paper's gaps between EMM and each Table I model, against our seed spread per model."""
    paper = config.PAPER_TABLES["table1_census"]
    gaps = [abs(paper["EMM"][task] - v[task]) for k, v in paper.items() if k != "EMM"]
    sd = _test(runs, dataset)
    sd = sd[sd.task == task].groupby("model").value.std().dropna()
    if sd.empty:
        return "Our seed spread needs at least two seeds per model."
    return (f"**The paper's differences and our spread ({task}).** The paper's Table I puts EMM "
            f"{min(gaps):.4f}–{max(gaps):.4f} test AUC away from the other models (single runs); our "
            f"standard deviation over seeds is {sd.min():.4f}–{sd.max():.4f} per model. "
            + ("The paper's gaps are larger than our spread: if they were real, several seeds would show them."
               if min(gaps) > sd.max() else
               "Some of the paper's gaps are within our spread: those cannot be ranked by single runs."))


def trained_models_vs_paper(runs: pd.DataFrame, dataset: str = "census", task: str = "income") -> str:
    """Our trained models against the paper's (Table I)."""
    paper = config.PAPER_TABLES["table1_census"]
    t = _test(runs, dataset)
    t = t[t.task == task].groupby("model").value.mean()
    cells = [f"TM-{k} {t.get(f'tm{k}:{task}', float('nan')):.4f} (paper {paper[f'TM-{k}'][task]:.4f})"
             for k in (1, 2)]
    return (f"**Our trained models against the paper's ({task}).** " + ", ".join(cells) + ". "
            "*Hypothesis:* the paper's weak trained models come from its protocol (final-epoch weights, "
            "or a defect of the published code); chapter 08, *Why the paper's numbers differ from ours*, tests it "
            "rung by rung. "
            "Note that the published code's untrained level-3 component affects its EMM, not its "
            "single-task models, which never run that block.")


def leakage(runs: pd.DataFrame, task: str = "marital") -> str:
    """Marital AUC with and without the leaking household-role columns."""
    t = runs[(runs.metric == "test_auc") & (runs.task == task)]
    a = t[t.dataset == "census"].groupby("model").value.mean()
    b = t[t.dataset == "census/leak-free"].groupby("model").value.mean()
    common = sorted(set(a.index) & set(b.index))
    if not common:
        return "The leak-free runs are not in the results yet."
    drop = (a[common] - b[common])
    return (f"**Marital status leaks.** With the two household-role columns in the features every model "
            f"reaches {a[common].min():.4f}–{a[common].max():.4f} {task} AUC; without them "
            f"{b[common].min():.4f}–{b[common].max():.4f} (a drop of {drop.min():.4f}–{drop.max():.4f}). "
            "The leak-free rows are the fairer test of this task.")


def training_cost(cost: pd.DataFrame, dataset: str = "census") -> str:
    """EMM's training time per run against the multi-task baselines' on ``dataset`` (from
    :func:`emm_lib.study.shared.tables.compute_cost`); the trained models EMM starts from are not counted."""
    from emm_lib.study.shared.present import task_count

    two = cost[cost.dataset.str.split("/").str[0].eq(dataset) & cost.dataset.map(task_count).eq(2)]
    per = two.groupby("model")[["seconds_total", "runs"]].sum()
    c = per.seconds_total / per.runs  # as the cost table's 2-task column: every 2-task feature set
    base = c[[m for m in config.BASELINES if m in c.index]]
    emm = [m for m in ("emm", "emm:soft") if m in c.index]
    if base.empty or not emm:
        return "The training times of EMM and the baselines are not both in the results yet."
    e = float(c[emm[0]])
    slower = int((base < e).sum())
    return (f"**Training cost.** One EMM run with 2 tasks took {e:.0f} s on average, its trained models not "
            f"counted (the cost table's 2-task column), against "
            f"{base.min():.0f}–{base.max():.0f} s for the multi-task baselines ({display_name(base.idxmin())} to "
            f"{display_name(base.idxmax())}): {slower} of {len(base)} baselines trained faster. The paper's “efficient” is about "
            "building a multi-task model (reusing trained models without designing one by hand, Sec. I), not a "
            "cheaper training run; this study measures only the training run.")


def discussion(runs: pd.DataFrame, pair_var: pd.DataFrame | None = None, dataset: str = "census",
               family: pd.DataFrame | None = None) -> str:
    """The chapter's discussion: one computed bullet per finding, the main one first; ``family``: the
    headline family (:func:`emm_lib.study.shared.verdicts.headline`), whose verdicts it quotes."""
    items = [emm_vs_own_models(runs, dataset, family, pair_var), ablation_baseline(runs, dataset, pair_var),
             trained_models_vs_paper(runs, dataset), paper_gaps_vs_spread(runs, dataset), leakage(runs)]
    return "\n".join(f"- {s}" for s in items)
