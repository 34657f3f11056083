"""The presentation layer: names, colours, number formats, tables and the book's figures."""
from __future__ import annotations

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
from scipy import stats

matplotlib.use("Agg")

from emm_lib.study.shared import plots, present, verdicts  # noqa: E402


def _summary() -> pd.DataFrame:
    rows = []
    for ds, k in (("census", 2), ("census/3-tasks", 3)):
        for m, base in (("mmoe", 0.950), ("emm", 0.948), ("tm1:income", 0.949)):
            for t, off in (("income", 0.0), ("marital", 0.045), ("education", -0.06)):
                if (t == "education" and k == 2) or (m.startswith("tm1") and t != "income"):
                    continue
                rows.append(dict(dataset=ds, model=m, task=t, mean=base + off - 0.002 * k, std=0.0004, n=3))
    return pd.DataFrame(rows)


def _cmp() -> pd.DataFrame:
    rows = []
    for exp, ds in (("table1", "census"), ("figure3", "census/3-tasks")):
        for t, comp, md in (("income", "ple", -0.003), ("marital", "mmoe", 0.0002)):
            rows.append(dict(experiment=exp, dataset=ds, task=t, model="emm", comparator=comp, n_seeds=5,
                             mean_diff=md, ci_low=md - 0.001, ci_high=md + 0.001, ci_low_test=md - 0.002,
                             ci_high_test=md + 0.002, p_value=0.0004, p_holm=0.0008,
                             verdict="worse" if md < 0 else "better"))
    rows[-1].update(ci_low_test=float("nan"), ci_high_test=float("nan"), p_holm=0.3,
                    verdict="no detectable difference")
    return pd.DataFrame(rows)


def test_display_names_and_colours():
    assert present.display_name("tm1:income") == "TM-1 (income)"
    assert present.display_name("shared_bottom") == "SharedBottom"
    assert present.display_name("emm:+p") == "EMM +p"
    assert present.display_name("emm") == "EMM (paper's arg-max gate)"
    assert present.display_name("emm:soft") == "EMM (soft gate, ours)"
    assert present.display_name("aitm:calibrated") == "AITM (calibrated)"
    assert present.display_name("something-new") == "something-new"
    # one colour per model; TM-1 keeps its colour across tasks; distinct models differ
    assert present.colour("tm1:income") == present.colour("tm1:marital")
    cols = [present.colour(m) for m in ("shared_bottom", "mmoe", "ple", "aitm", "adatt", "emm", "emm:soft")]
    assert len(set(cols)) == len(cols)
    import matplotlib.colors as mc

    def reddish(c):
        import colorsys

        h, _, sat = colorsys.rgb_to_hls(*mc.to_rgb(c))
        return (h < 0.09 or h > 0.95) and sat > 0.2

    reds = [m for m in ("shared_bottom", "mmoe", "ple", "aitm", "adatt", "emm", "emm:soft") if reddish(present.colour(m))]
    assert len(reds) <= 2, reds  # Figure 3's models are told apart by hue, not shades of one red


def test_every_auc_has_four_decimals():
    assert present.fmt_mean_spread(0.95031, 0.0012, 3) == "0.9503 ± 0.0012"
    assert present.fmt_mean_spread(0.994697, 0.000095, 3) == "0.9947 ± 0.0001"
    assert present.fmt_mean_spread(0.994697, 0.000025, 3) == "0.9947 ± 0.00003"
    assert present.fmt_mean_spread(0.95, float("nan"), 1) == "0.9500"
    assert present.fmt_mean_spread(float("nan"), 0.1, 3) == present.MISSING
    assert present.decimals_for(0.05) == 3 and present.decimals_for(1e-9) == 6


def test_p_values():
    assert present.fmt_p(0.0481) == "0.048"
    assert present.fmt_p(0.0013857) == "0.001"
    assert present.fmt_p(0.0004) == "< 0.001"
    assert present.fmt_p(float("nan")) == present.MISSING
    assert present.fmt_diff(-0.0029) == "\u22120.0029"
    assert present.fmt_diff(-0.00003) == "\u22120.00003" and present.fmt_diff(0.000004) == "+0.000004"
    assert present.fmt_diff(-1e-9) == "0.0000"


def test_ci_matches_scipy_on_the_logit_scale_and_stays_below_one():
    s = present.with_ci(pd.DataFrame({"mean": [0.9, 0.99], "std": [0.01, 0.05], "n": [5, 3]}))
    se = 0.01 / math.sqrt(5) / (0.9 * 0.1)  # delta method on logit(0.9)
    lo, hi = stats.t.interval(0.95, 4, loc=math.log(9), scale=se)
    expit = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    assert s.ci_low[0] == pytest.approx(expit(lo)) and s.ci_high[0] == pytest.approx(expit(hi))
    assert s.ci_low[0] < 0.9 < s.ci_high[0] and s.ci_high[1] < 1.0
    one = present.with_ci(pd.DataFrame({"mean": [0.9], "std": [np.nan], "n": [1]}))
    assert np.isnan(one.ci_low[0])


def test_auc_table_has_no_index_no_nan_and_display_names():
    s = _summary()
    html = present.auc_table(s[s.dataset == "census/3-tasks"], caption="x").to_html()
    md = present.markdown_table(present.auc_table(s[s.dataset == "census/3-tasks"]))
    for text in (html, md):
        assert "nan" not in text.lower() and "e-0" not in text
        assert "TM-1 (income)" in text and "tm1:income" not in text
    assert present.MISSING in md  # tm1:income has no marital score
    assert md.splitlines()[0].startswith("| Model |")
    assert "row_heading" not in html  # the index column is hidden


def test_comparison_table_formats_p_and_falls_back_to_seed_ci():
    md = present.markdown_table(present.comparison_table(_cmp()))
    assert "< 0.001" in md and "0.300" in md
    assert "nan" not in md.lower()
    last = md.splitlines()[-1]
    assert "[+0.0002" not in last and "\u22120.0008" in last  # seed-level CI used when no test CI


def test_markdown_table_escapes_pipes():
    md = present.markdown_table(pd.DataFrame({"a|b": ["x|y"]}))
    assert md.splitlines()[0] == "| a\\|b |" and md.splitlines()[2] == "| x\\|y |"


def test_task_count():
    assert present.task_count("census") == 2
    assert present.task_count("census/4-tasks") == 4
    assert present.task_count("census/leak-free") == 2
    assert present.task_count("census/fixed-features/3-tasks") == 3


def test_figures_have_one_panel_per_task_with_own_axis():
    s = _summary()
    fig = plots.task_panels(s[s.dataset == "census"])
    axes = [a for a in fig.axes if a.get_visible()]
    assert [a.get_title() for a in axes] == ["income", "marital status"]
    assert axes[0].get_xlim() != axes[1].get_xlim()
    fig = plots.task_count_lines(s)
    axes = [a for a in fig.axes if a.get_visible()]
    assert [a.get_title() for a in axes] == ["income", "marital status", "education"]
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["2", "3"]
    assert axes[0].get_ylim() != axes[1].get_ylim()
    legend = fig.legends[0]
    assert {t.get_text() for t in legend.get_texts()} >= {"MMoE", "EMM (paper's arg-max gate)"}


def test_forest_and_paper_vs_ours():
    fig = plots.forest(_cmp())
    axes = [a for a in fig.axes if a.get_visible()]
    assert [a.get_title() for a in axes] == ["income", "marital status"]
    labels = [t.get_text() for t in axes[0].get_yticklabels()]
    assert labels == ["Table I, 2 tasks", "Figure 3, 3 tasks"]
    notes = {t.get_text() for a in axes for t in a.texts}
    assert notes == {"vs PLE", "vs MMoE"}
    s = _summary()
    fig = plots.paper_vs_ours(s[s.dataset == "census"].assign(n=3))
    axes = [a for a in fig.axes if a.get_visible()]
    assert [t.get_text() for t in axes[0].get_yticklabels()][:2] == ["TM-1", "TM-2"]


def test_verdict_summary_counts_and_names_the_detected_differences():
    text = verdicts.verdict_summary(_cmp(), "Census-Income, test")
    assert "Against the best multi-task baseline, EMM (paper's arg-max gate): better in 1 of 4 task comparisons, worse in 2" in text
    assert "not detectably different in 1" in text
    assert "worse on income (Table I, 2 tasks) vs PLE: \u22120.0030" in text
    assert "5 seeds" in text
    assert verdicts.verdict_summary(_cmp().iloc[:0], "x").startswith("x: no comparison")


def test_verdict_summary_counts_per_experiment_when_many_are_detected():
    c = pd.concat([_cmp()] * 3, ignore_index=True)
    c["verdict"] = "worse"
    text = verdicts.verdict_summary(c, "Census-Income, test")
    assert "Detected, per experiment:" in text and "vs PLE" not in text
    for name, g in c.groupby("experiment", sort=False):
        assert f"{present.experiment_name(name)} (" in text
        assert f"worse in {len(g)} of {len(g)}" in text


def test_comparison_table_names_the_task_count():
    md = present.markdown_table(present.comparison_table(_cmp()))
    assert "| Figure 3, 3 tasks |" in md and "| Table I, 2 tasks |" in md
    assert "| Model |" not in md  # one model compared: named in the caption, not in every row


def test_cost_table_one_row_per_model_dash_where_not_run():
    cost = pd.DataFrame({"dataset": ["census", "census/3-tasks", "census"], "model": ["mmoe", "mmoe", "tm1:income"],
                         "runs": [3, 3, 3], "seconds_total": [90.0, 120.0, 30.0], "seconds_per_run": [30.0, 40.0, 10.0],
                         "epochs_mean": [5.0, 6.0, 4.0]})
    md = present.markdown_table(present.cost_table(cost))
    lines = md.splitlines()
    assert lines[0] == "| Model | s/run, 2 tasks | s/run, 3 tasks | Runs | Total (min) |"
    assert lines[2] == "| TM-1 (income) | 10 | \u2013 | 3 | 0.5 |"
    assert lines[3] == "| MMoE | 30 | 40 | 6 | 3.5 |"


def test_comparison_table_can_name_the_model():
    md = present.markdown_table(present.comparison_table(_cmp().assign(model="emm:soft"), show_model=True))
    assert md.splitlines()[0].startswith("| Experiment | Task | Model | Comparator |")
    assert "EMM (soft gate, ours)" in md


def test_comparison_table_folds_the_comparator_kind_into_the_comparator():
    """The headline family (two comparator kinds) fits the page: no "Against" column; the kind follows
    the comparator, and a trained model drops its task (the Task column says it)."""
    own = _cmp().assign(comparator=["tm2:income", "tm1:marital"] * 2, against="trained model")
    fam = pd.concat([_cmp().assign(against="multi-task baseline"), own], ignore_index=True)
    lines = present.markdown_table(present.comparison_table(fam)).splitlines()
    assert lines[0].startswith("| Experiment | Task | Comparator | Seeds |") and "Against" not in lines[0]
    assert "| PLE (multi-task baseline) |" in lines[2] and "| TM-2 (trained model) |" in lines[6], lines


# ------------------------------------------------------------------ present.table and the glossary

def test_table_uses_the_glossary_fixed_decimals_and_no_index():
    from emm_lib.study.shared import glossary

    df = pd.DataFrame({"model": ["emm:soft", "tm1:t1"], "positive_rate": [0.062134, 0.5],
                       "mean_diff": [-0.00001, 0.01234], "p_holm": [0.0004, 0.31], "params_trainable": [12345, 7],
                       "dataset": ["synthetic/corr=0/rows=100000/shape=depth_width", "census/3-tasks"]})
    shown = present.table(df).data
    assert list(shown.columns) == [glossary.column_label(c) for c in df.columns]
    assert shown.iloc[:, 0].tolist() == ["EMM (soft gate, ours)", "TM-1 (task 1)"]
    assert shown["Positive rate"].tolist() == ["0.062", "0.500"]
    assert shown["Difference"].tolist() == ["0.0000", "+0.0123"]  # no "−0.0000"
    assert shown["p (Holm)"].tolist() == ["< 0.001", "0.310"]
    assert shown["Trainable parameters"].tolist() == ["12,345", "7"]
    assert shown["Data"].tolist() == ["synthetic, correlation 0, 100,000 rows, different depth and width",
                                      "Census-Income, 3 tasks"]
    html = present.table(df).to_html()
    assert "row_heading" not in html  # the index is hidden
    for name in glossary.internal_names():
        assert f">{name}<" not in html


def test_table_keeps_a_named_index_and_splits_wide_tables():
    df = pd.DataFrame({f"c{i}": [1.23456] for i in range(12)}, index=pd.Index(["a"], name="rung"))
    t = present.table(df, max_columns=5)
    assert isinstance(t, present.Tables) and len(t.parts) == 3
    assert all(p.data.columns[0] == "Rung" for p in t.parts)  # each part repeats the key column
    assert sorted(len(p.data.columns) for p in t.parts) == [5, 5, 5]  # balanced, no stub
    assert t._repr_html_().count("<table") == 3
    assert present.table(df.iloc[:, :3]).data.iloc[0, 1] == "1.235"  # unknown floats: 3 decimals


def test_glossary_flags_cover_the_protocol_flags():
    from emm_lib import config
    from emm_lib.study.shared import glossary

    assert set(glossary.FLAGS) == set(config.PROTOCOL_FLAGS)
    assert "hard_gate" in glossary.internal_names() and "emm:soft" in glossary.internal_names()
    assert "model" not in glossary.internal_names()  # plain words are not internal names


def test_notebooks_show_tables_only_through_the_presentation_layer():
    """No chapter styles a DataFrame by hand (``df.style...``): every table goes through
    present.table / auc_table / comparison_table, so headers and numbers follow the glossary."""
    import json
    from pathlib import Path

    offenders = []
    for nb in sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("[0-9][0-9]-*.ipynb")):
        for i, c in enumerate(json.loads(nb.read_text())["cells"]):
            src = "".join(c["source"])
            if c["cell_type"] == "code" and (".style." in src or ".style\n" in src):
                offenders.append(f"{nb.name} cell {i}")
    assert not offenders, offenders


def test_notebooks_are_valid_and_fold_their_code():
    """Every chapter notebook validates as nbformat 4.5 (cell ids included) and folds every code
    input in the book (hide-input or a removal tag), as chapter 07 does."""
    from pathlib import Path

    import nbformat

    folded = {"hide-input", "remove-input", "remove-cell", "hide-cell"}
    for path in sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("[0-9][0-9]-*.ipynb")):
        import json

        assert all("id" in c for c in json.loads(path.read_text())["cells"]), f"{path.name}: a cell has no id"
        nb = nbformat.read(str(path), as_version=4)
        nbformat.validate(nb)
        shown = [i for i, c in enumerate(nb.cells)
                 if c.cell_type == "code" and not folded & set(c.metadata.get("tags", []))]
        assert not shown, f"{path.name}: code cells {shown} show their input in the book"


def test_task_count_lines_and_paper_vs_ours_keep_auc_within_one():
    s = pd.DataFrame([dict(dataset=ds, model=m, task="marital", mean=0.996, std=0.02, n=2)
                      for ds in ("census", "census/3-tasks") for m in ("mmoe", "emm")])
    for fig in (plots.task_count_lines(s), plots.paper_vs_ours(s.assign(task="marital"))):
        for ax in fig.axes:
            for lim, label in ((ax.get_xlim(), ax.get_xlabel()), (ax.get_ylim(), ax.get_ylabel())):
                if "AUC" in label:
                    assert 0 <= min(lim) and max(lim) <= 1, (label, lim)
        matplotlib.pyplot.close(fig)


def test_table_gains_carry_a_real_minus_sign():
    from emm_lib.study.shared import tables

    summary = pd.DataFrame({"model": ["emm", "ple"], "task": ["income", "income"], "mean": [0.94, 0.95],
                            "std": [0.001, 0.002], "n": [5, 5], "gain": [-0.0031, 0.0012]})
    t = tables.pretty(summary, gain=True)
    cells = " ".join(map(str, t.to_numpy().ravel()))
    assert "(\u22120.0031)" in cells and "(+0.0012)" in cells and "(-0" not in cells


def test_tick_labels_share_one_number_of_decimals_per_axis():
    from emm_lib.study.shared.plot_axes import SameDecimals

    f = SameDecimals()
    assert f.format_ticks([0.78, 0.84, 0.9, 0.96]) == ["0.78", "0.84", "0.90", "0.96"]
    assert f.format_ticks([0.25, 0.5, 0.75, 1.0]) == ["0.25", "0.50", "0.75", "1.00"]
    assert f.format_ticks([-0.002, 0.0, 0.002]) == ["\u22120.002", "0.000", "0.002"]
    assert f.format_ticks([2, 3, 4]) == ["2", "3", "4"]
    s = _summary()
    fig = plots.task_count_lines(s)
    fig.canvas.draw()
    for ax in (a for a in fig.axes if a.get_visible()):
        labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
        assert len({len(t.split(".")[-1]) for t in labels}) == 1, labels


def test_synthetic_tasks_read_as_task_numbers():
    assert present.task_name("t3") == "task 3" and present.task_name("marital") == "marital status"
    assert present.task_name("click") == "click"
