"""Every results block of the book says where its numbers come from; chapters end with a computed conclusion."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from emm_lib.study.shared import present, provenance, results


def _runs(seeds=(0, 1, 2)) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for seed in seeds:
        for model, base in (("emm", 0.940), ("ple", 0.945), ("mmoe", 0.930)):
            for task, off in (("income", 0.0), ("marital", 0.05)):
                for metric, shift in (("test_auc", 0.0), ("val_auc", 0.001)):
                    rows.append(dict(dataset="census", profile="paper", model=model, task=task, seed=seed,
                                     metric=metric, value=base + off + shift + rng.normal(0, 1e-4),
                                     git_commit="abc123", device="cpu"))
    return pd.DataFrame(rows)


def test_seeds_text():
    assert provenance.seeds_text([0, 1, 2, 3, 4]) == "seeds 0\u20134"
    assert provenance.seeds_text([2]) == "seed 2"
    assert provenance.seeds_text([0, 2]) == "seeds 0, 2"


def test_label_says_committed_or_short_run_with_seeds_and_commit():
    runs = _runs()
    committed = provenance.label(runs, "paper", committed=True, where="results/paper/")
    assert "committed `paper`-profile runs" in committed and "seeds 0\u20132" in committed and "`abc123`" in committed
    short = provenance.label(runs[runs.seed == 0], "tiny", committed=False)
    assert "short run" in short and "not the study's numbers" in short and "seed 0" in short
    assert "No committed runs" in provenance.label(runs.iloc[:0], "paper", committed=True)


def test_conclusion_is_computed_from_the_runs():
    text = provenance.conclusion(_runs(), "emm", ["ple", "mmoe"], "table1", what="EMM against its best baseline")
    assert text.startswith("**In the committed runs, EMM against its best baseline:**")
    assert "income: EMM (paper's arg-max gate) \u2212 PLE \u22120.0050" in text and "worse" in text
    assert "Holm over these 2 comparisons" in text and "(Holm p " in text
    # A comparison of the book's headline family takes the family's verdict (Holm over the whole family).
    from emm_lib.study.shared import stats

    cmp = stats.compare(_runs(), "emm", ["ple", "mmoe"], experiment="table1")
    family = cmp.assign(verdict="no detectable difference", p_holm=0.5, family_size=40)
    text = provenance.conclusion(_runs(), "emm", ["ple", "mmoe"], "table1", what="EMM", family=family)
    assert "no detectable difference" in text and "worse" not in text and "headline family of 40 comparisons" in text
    other = family.assign(comparator="aitm")  # not in the family: the sentence's own Holm, said so
    assert "worse" in provenance.conclusion(_runs(), "emm", ["ple", "mmoe"], "table1", what="EMM", family=other)
    # A model the family dropped as a duplicate (the same per-seed AUCs as one it kept) takes the kept
    # model's verdict: one comparison, one verdict on every page.
    twin = pd.concat([_runs(), _runs().query("model == 'emm'").assign(model="emm:soft")], ignore_index=True)
    text = provenance.conclusion(twin, "emm:soft", ["ple", "mmoe"], "table1", what="EMM", family=family)
    assert "no detectable difference" in text and "worse" not in text and "headline family of 40 comparisons" in text
    shifted = twin.assign(value=np.where(twin.model == "emm:soft", twin.value - 0.01, twin.value))
    text = provenance.conclusion(shifted, "emm:soft", ["ple", "mmoe"], "table1", what="EMM", family=family)
    assert "Holm over these" in text  # another function: not the family's comparison


def test_dropdown_collapses_tables():
    t = present.dropdown("Every point (3 rows)", present.table(pd.DataFrame({"n_tasks": [2, 3, 4]})))
    html = t._repr_html_()
    assert html.startswith('<details class="emm-dropdown"><summary>Every point (3 rows)</summary>')
    assert html.count("<table") == 1 and "open" not in html.split(">")[0]


def test_facts_name_runs_seeds_commit_and_device():
    assert provenance.facts(_runs()) == "9 runs, seeds 0\u20132, code commit `abc123`, device cpu"
    assert provenance.facts(_runs().iloc[:0]) == "no runs yet"


def test_glue_figure_glues_the_figure_and_its_facts(monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import myst_nb

    glued = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: glued.update({name: value}))
    provenance.glue_figure("fig_x", _runs(), lambda r: plt.figure())
    assert set(glued) == {"fig_x", "fig_x_facts"} and "seeds 0\u20132" in glued["fig_x_facts"].data
    provenance.glue_figure("fig_y", _runs().iloc[:0], lambda r: 1 / 0)  # no runs: a note, never drawn
    assert glued["fig_y_facts"].data == "no runs yet"


def test_data_chapter_conclusion_is_computed_from_rates_and_single_feature_aucs():
    from emm_lib.data import leakage

    summary = pd.DataFrame({"split": ["train", "train", "test"], "task": ["income", "marital", "income"],
                            "rows": [10, 10, 5], "positive_rate": [0.062, 0.43, 0.9]})
    leaks = {"income": pd.DataFrame({"feature": ["capital_gains", "age"], "auc": [0.81, 0.78]}),
             "marital": pd.DataFrame({"feature": ["household_role", "tax_filer", "household_kind"],
                                      "auc": [0.978, 0.9, 0.946]})}
    text = leakage.finding(summary, leaks, removed=("household_role", "household_kind"))
    assert "of the training rows, 6.2% are positive for income and 43.0% for marital status; income is the rarer" in text
    assert "The best single feature for income (capital gains) reaches validation AUC 0.810." in text
    assert ("The two columns that the leak-free rows remove (household role, household kind) alone predict marital "
            "status at validation AUC 0.946\u20130.978") in text


def test_ladder_gain_summary_names_the_rungs_where_emm_gains():
    from emm_lib.study.replay import ladder

    t = pd.DataFrame({"rung": ["paper", "published", "ours"], "n_seeds": [5, 5, 5], "tm_mean": [0.931, 0.945, 0.948],
                      "gain": [0.0115, -0.0013, 0.0017], "gain_lo": [0.0007, -0.0037, -0.001],
                      "gain_hi": [0.0224, 0.0011, 0.004],
                      "gain_verdict": ["better", "no detectable difference", "no detectable difference"]})
    text = ladder.gain_summary(t)
    assert text.startswith("EMM gains detectably on the mean of its trained models at \u2018paper\u2019 (+0.0115 [+0.0007, +0.0224]")
    assert "at the other 2 rungs its gain runs from \u22120.0013 to +0.0017, none of it detectable (5 seeds per rung)." in text
    assert "at no rung; at all 2 rungs its gain runs from" in ladder.gain_summary(t.iloc[1:])
    assert "two seeds" in ladder.gain_summary(t.assign(n_seeds=1))


def test_many_comparisons_are_a_list_after_the_rule():
    from emm_lib.study.shared import stats

    cmp = stats.compare(_runs(), "emm", ["ple", "mmoe"], experiment="table1")
    many = pd.concat([cmp] * 2, ignore_index=True)
    text = provenance._sentence("the committed runs", "EMM", many, " (Holm over these 4 comparisons)")
    assert text.startswith("**In the committed runs, EMM** (Holm over these 4 comparisons):\n\n- income")
    assert text.count("\n- ") == 4


def test_a_run_is_labelled_dirty_for_changed_code_not_for_its_own_result_tables(tmp_path, monkeypatch):
    """``git_commit`` marks ``-dirty`` only when tracked files outside ``results/`` changed: the study's
    tables are tracked and grow while it runs, which says nothing about the code that made them."""
    if shutil.which("git") is None:
        pytest.skip("needs git")

    def git(*args):
        subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "runs.csv").write_text("a\n1\n")
    (tmp_path / "model.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "start")
    monkeypatch.setattr(results, "repo_root", lambda: tmp_path)

    def label():
        results.git_commit.cache_clear()
        return results.git_commit()

    try:
        clean = label()
        assert len(clean) == 12 and not clean.endswith("-dirty")
        (tmp_path / "results" / "runs.csv").write_text("a\n1\n2\n")
        assert label() == clean
        (tmp_path / "model.py").write_text("x = 2\n")
        assert label() == clean + "-dirty"
    finally:  # later tests in this process label their rows with this checkout's commit again
        results.git_commit.cache_clear()
