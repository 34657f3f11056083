"""Where a page's numbers come from, in one sentence: the committed full runs or this build's short run.

Chapters that show results label every table and figure block with :func:`label`, so a reader
always knows which profile, seeds and code commit a number belongs to, and that a short run of
the build is a demonstration (the study's numbers are the committed ``results/paper`` runs,
chapter 07).
"""
from __future__ import annotations

import pandas as pd

__all__ = ["label", "facts", "seeds_text", "committed_runs", "runs_of", "glue_figure", "differences", "conclusion"]


def seeds_text(seeds) -> str:
    """``[0, 1, 2, 3, 4]`` -> "seeds 0–4"; ``[0]`` -> "seed 0"; ``[0, 2]`` -> "seeds 0, 2"."""
    s = sorted({int(x) for x in seeds})
    if not s:
        return "no seeds"
    if len(s) == 1:
        return f"seed {s[0]}"
    if s == list(range(s[0], s[-1] + 1)) and len(s) > 2:
        return f"seeds {s[0]}\u2013{s[-1]}"
    return "seeds " + ", ".join(map(str, s))


def label(runs: pd.DataFrame, profile: str, committed: bool, where: str | None = None) -> str:
    """One sentence (Markdown) that says what ``runs`` are: committed study runs of ``profile``, or
    this build's short run, with their seeds, commits, device and the number of runs."""
    if not len(runs):
        return (f"**No {'committed' if committed else ''} runs of profile `{profile}`"
                f"{f' in `{where}`' if where else ''} yet.**")
    if committed:
        return (f"**The study's numbers**: the committed `{profile}`-profile runs"
                f"{f' in `{where}`' if where else ''} ({facts(runs)}).")
    return (f"**This build's own short run** (profile `{profile}`; {facts(runs)}): a demonstration that the "
            "code runs end to end at this budget, not the study's numbers (those are above and in "
            "chapter 07).")


def facts(runs: pd.DataFrame) -> str:
    """What ``runs`` are, in a few words: "64 runs, seeds 0–4, code commit `abc1234`, device cpu"."""
    n = len(runs.drop_duplicates(["dataset", "model", "seed"])) if len(runs) else 0
    if not n:
        return "no runs yet"
    commits = ", ".join(f"`{c}`" for c in dict.fromkeys(runs.git_commit.astype(str)))
    devices = ", ".join(dict.fromkeys(runs.device.astype(str)))
    return f"{n} runs, {seeds_text(runs.seed)}, code commit {commits}, device {devices}"


def glue_figure(key: str, runs: pd.DataFrame, draw) -> None:
    """Glue the figure ``draw(runs)`` under ``key`` for a page's ``{glue:figure}``, and :func:`facts` of
    ``runs`` as Markdown under ``key + "_facts"`` for its caption (``{glue:md}``: the committed runs'
    seeds and commit, like the tables' :func:`label`). Without runs, the figure is a one-line note."""
    import matplotlib.pyplot as plt
    from IPython.display import Markdown
    from myst_nb import glue

    if len(runs):
        fig = draw(runs)
    else:
        fig, ax = plt.subplots(figsize=(6, 0.6))
        ax.axis("off")
        ax.text(0.5, 0.5, "No committed runs yet.", ha="center", va="center")
    glue(key, fig, display=False)
    plt.close(fig)
    glue(f"{key}_facts", Markdown(facts(runs)), display=False)


def runs_of(runs: pd.DataFrame, experiment: str, dataset: str = "census") -> pd.DataFrame:
    """The rows of one experiment (its data-set keys, :data:`emm_lib.config.EXPERIMENTS`) and the
    trained single-task models on the same data; ``table2`` also takes EMM from Table I (same data)."""
    from emm_lib import config
    from emm_lib.study.shared.run_settings import dataset_key_of

    cfg = config.EXPERIMENTS[experiment]
    keys = {dataset_key_of(dataset, cfg["features"], k) for k in cfg["task_counts"]}
    return runs[runs.dataset.isin(keys)]


def family_runs_of(runs: pd.DataFrame, experiment: str, dataset: str = "census") -> pd.DataFrame:
    """:func:`runs_of` as the headline family reads an experiment: Figure 3 also takes the runs made
    before it moved to fixed features (``census/3-tasks``, ``census/4-tasks``)."""
    from emm_lib import config
    from emm_lib.study.shared.run_settings import dataset_key_of

    if experiment != "figure3":
        return runs_of(runs, experiment, dataset)
    old = {dataset_key_of(dataset, "paper", k) for k in config.EXPERIMENTS[experiment]["task_counts"] if k > 2}
    return runs[runs.index.isin(runs_of(runs, experiment, dataset).index) | runs.dataset.isin(old)]


def headline_family(dataset: str = "census", profile: str = "paper", results_dir=None) -> pd.DataFrame:
    """The book's headline family (:func:`emm_lib.study.shared.verdicts.headline`) over the committed runs: the
    verdicts chapter 07 shows, for the chapters that state some of them (empty when none is committed)."""
    from emm_lib.study.shared import analysis, verdicts
    from emm_lib import config

    runs, st = committed_runs(config.HEADLINE_FAMILY["experiments"], dataset, profile, results_dir)
    if runs.empty:
        return pd.DataFrame()
    pv = analysis.read_pair_variances(st.out_dir, runs)
    return verdicts.headline(lambda e: family_runs_of(runs, e, dataset), runs,
                             pv if pv is not None and len(pv) else None)


def committed_runs(experiments, dataset: str = "census", profile: str = "paper",
                   results_dir=None) -> tuple[pd.DataFrame, object]:
    """The committed runs of ``experiments`` (``results/<profile>/<experiment>.csv``) plus the
    single-task runs, as one frame (empty when none is committed), and their settings."""
    from emm_lib.study.shared import results
    from emm_lib import study

    st = study.settings(dataset, profile, results_dir=results_dir)
    frames = [results.read(st.out_dir / f"{e}.csv") for e in (*experiments, "single_task")
              if (st.out_dir / f"{e}.csv").exists()]
    frames = [f for f in frames if len(f)]
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["dataset", "model", "seed"])), st


def differences(cmp: pd.DataFrame) -> str:
    """Each row of :func:`emm_lib.study.shared.stats.compare` as words: "income: EMM … − PLE +0.0012 [−0.0003,
    +0.0027] (5 seeds), no detectable difference (Holm p 0.41)"; more than three rows as a list."""
    from emm_lib.study.shared.present import display_name, fmt_diff, fmt_p, task_count, task_name

    parts = []
    for r in cmp.itertuples():
        lo, hi = (r.ci_low_test, r.ci_high_test) if pd.notna(r.ci_low_test) else (r.ci_low, r.ci_high)
        ci = f" [{fmt_diff(lo)}, {fmt_diff(hi)}]" if pd.notna(lo) else ""
        k = task_count(r.dataset)
        p = getattr(r, "p_holm", None)
        holm = f" (Holm p {fmt_p(p)})" if p is not None and pd.notna(p) else ""
        parts.append(f"{task_name(r.task)} ({k} tasks): " if len(cmp) > 1 and k != 2 else f"{task_name(r.task)}: ")
        parts[-1] += (f"{display_name(r.model)} − {display_name(r.comparator)} {fmt_diff(r.mean_diff)}{ci} "
                      f"({r.n_seeds} seeds), {r.verdict}{holm}")
    if len(parts) > 3:
        return "\n\n" + "\n".join(f"- {x}" for x in parts) + "\n\n"
    return "; ".join(parts)


def _family_key(fam: pd.DataFrame, runs: pd.DataFrame, key: tuple) -> tuple | None:
    """``key`` (dataset, task, model, comparator) as the family holds it: itself, or the family's row
    for the same comparison by a model that computes the same function there (the family keeps one
    of two duplicates, e.g. the soft and arg-max gates with 2 tasks); None when the family lacks it."""
    from emm_lib.study.shared import verdicts

    if key in fam.index:
        return key
    dataset, task, model, comparator = key
    for k in fam.index:
        if (k[0], k[1], k[3]) == (dataset, task, comparator) and verdicts.same_function(runs, k[2], model, dataset, task):
            return k
    return None


def conclusion(runs: pd.DataFrame, model: str, candidates, experiment: str, out_dir=None,
               what: str = "against its validation-chosen comparator", source: str = "the committed runs",
               family: pd.DataFrame | None = None) -> str:
    """A chapter's closing sentence, computed: ``model`` {what} in ``runs`` under the study's verdict
    rule (paired test-set variance when ``out_dir`` has it). A comparison of the book's headline
    ``family`` (:func:`headline_family`) takes the family's verdict, Holm over the whole family, as
    chapter 07 shows it; otherwise Holm runs over this sentence's comparisons, and the sentence says so."""
    from emm_lib.study.shared import analysis, stats

    pv = analysis.read_pair_variances(out_dir, runs) if out_dir is not None else None
    cmp = stats.compare(runs, model, list(candidates), experiment=experiment,
                        pair_var=pv if pv is not None and len(pv) else None)
    if cmp.empty:
        return f"No runs of {model!r} with a comparator yet: nothing to conclude."
    keys = ["dataset", "task", "model", "comparator"]
    if family is not None and len(family) and set(keys) <= set(family.columns):
        fam = family.drop_duplicates(keys).set_index(keys)
        at = [_family_key(fam, runs, k) for k in cmp[keys].itertuples(index=False, name=None)]
        if all(k is not None for k in at):
            got = fam.loc[at]
            cmp = cmp.assign(verdict=got.verdict.to_numpy(), p_holm=got.p_holm.to_numpy())
            how = (f" (verdicts after Holm over the book's headline family of {int(family.family_size.iloc[0])} "
                   "comparisons, as chapter 07 reports them; each interval is that comparison's own 95% interval, "
                   "unadjusted, so it can exclude 0 where the verdict finds no detectable difference)")
            return _sentence(source, what, cmp, how)
    return _sentence(source, what, cmp, f" (Holm over these {len(cmp)} comparisons, not the book's headline family)")


def _sentence(source: str, what: str, cmp: pd.DataFrame, how: str) -> str:
    """The conclusion: one sentence, or (more than three comparisons) a lead-in and a list."""
    text = differences(cmp)
    if text.startswith("\n"):
        return f"**In {source}, {what}**{how}:" + text.rstrip()
    return f"**In {source}, {what}:** " + text + how + "."
