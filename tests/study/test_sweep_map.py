"""The synthetic map's second pass (chapter 09): worlds, caps, learnability, one family, the reader's words.

The report functions run on hand-made frames (no training); the last test reads the committed map."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emm_lib import config
from emm_lib.study.shared import stats
from emm_lib.study.sweep import grid as sweep, sweep_map, sweep_report

REPO = Path(__file__).resolve().parents[2]
TASKS = ("t1", "t2")


def _rows(dataset, model, seed, tasks, test, val=None, epochs_run=20, cap=100, best=None):
    p = sweep.parse(dataset)
    settings = json.dumps({"epochs_run": epochs_run, "epochs": cap})
    out = []
    for t, v in zip(tasks, test):
        for metric, value in (("test_auc", v), ("val_auc", v if val is None else val)):
            out.append({"dataset": dataset, "profile": "paper", "model": model, "task": t, "seed": seed,
                        "metric": metric, "value": value, "best_epoch": best or epochs_run - 5, "train_seconds": 1.0,
                        "settings": settings, "generator": p["generator"], "correlation": p["correlation"],
                        "n_rows": p["n_rows"], "n_tasks": 2, "shape": "widths"})
    return out


_PATTERN = (1.0, -1.0, 1.0, -1.0, 0.0)  # per world: a spread of known sd (``noise``), mean 0


def _point(dataset, emm_minus, worlds=5, tm=0.9, noise=0.001):
    """A point: TMs at ``tm``, MMoE at 0.9 (best on validation), EMM at 0.9 + emm_minus[task] + noise x
    the world's pattern (the seed spread of each difference is ``noise``)."""
    rows = []
    for w in range(worlds):
        for t in TASKS:
            rows += _rows(dataset, f"tm1:{t}", w, [t], [tm], val=0.5)
            rows += _rows(dataset, f"tm2:{t}", w, [t], [tm], val=0.5)
        rows += _rows(dataset, "mmoe", w, TASKS, [0.9, 0.9], val=0.95)
        rows += _rows(dataset, "emm", w, TASKS, [0.9 + d + noise * _PATTERN[w] for d in emm_minus], val=0.9)
    return rows


def _frame(spec):
    return pd.DataFrame([r for ds, kw in spec.items() for r in _point(ds, **kw)])


def test_cap_shares_count_runs_that_early_stopping_never_ended():
    rows = []
    for w in range(10):  # MMoE stops at the cap in 2 of 10 runs, EMM never; TMs per shape over tasks
        rows += _rows("synthetic/corr=0/rows=1000", "mmoe", w, TASKS, [.9, .9], epochs_run=100 if w < 2 else 30)
        rows += _rows("synthetic/corr=0/rows=1000", "emm", w, TASKS, [.9, .9], epochs_run=99)
        for t in TASKS:
            rows += _rows("synthetic/corr=0/rows=1000", f"tm1:{t}", w, [t], [.9], epochs_run=100 if t == "t2" else 9)
    runs = pd.DataFrame(rows)
    per = sweep_map.cap_shares(runs, by=("model_kind",)).set_index("model_kind")
    assert per.loc["mmoe", "cap_share"] == pytest.approx(0.2) and per.loc["emm", "cap_share"] == 0
    assert per.loc["tm1:all tasks", "runs"] == 20 and per.loc["tm1:all tasks", "cap_share"] == pytest.approx(0.5)
    bad = sweep_map.cap_excess(runs, limit=0.1)
    assert set(bad.model_kind) == {"mmoe", "tm1:all tasks"}
    from emm_lib.study.shared.present import display_name

    assert display_name("tm1:all tasks") == "TM-1 (all tasks)"
    assert sweep_map.cap_excess(runs, datasets=["elsewhere"]).empty  # only the named (complete) points count


def test_coverage_counts_worlds_with_every_planned_model():
    g = sweep.grid("tiny", sweep.MAP_EXPERIMENT)
    pts = sweep.points(g)
    axis, data, k, labels = pts[0]
    key = sweep.point_key(data, k)
    rows = []
    for w in g["seeds"]:
        for m in labels:
            rows += _rows(key, m, w, TASKS, [.9, .9])
        for t in TASKS:
            for s in config.TM_SHAPES:
                if not (w == 1 and s == "tm2" and t == "t2"):  # world 1 lacks one trained model
                    rows += _rows(key, f"{s}:{t}", w, [t], [.9])
    cov = sweep_map.coverage(pd.DataFrame(rows), g).set_index("dataset")
    assert cov.loc[key, "worlds_planned"] == len(g["seeds"]) and cov.loc[key, "worlds_done"] == 1
    assert not cov.loc[key, "complete"] and cov.init_seeds_per_world.eq(1).all()
    ds = cov[cov.axis == "data_size"]
    assert len(ds) == 1 and ds.worlds_planned.iloc[0] == g["data_size"]["worlds"][2_000]


def test_a_point_without_signal_gets_no_verdict():
    runs = _frame({"synthetic/corr=0/rows=1000": dict(emm_minus=(-0.02, -0.02)),
                   "synthetic/corr=1/rows=1000": dict(emm_minus=(0.05, 0.05), tm=0.6)})
    learn = sweep_map.learnability(runs, floor=0.65)
    assert sweep_map.no_signal(learn) == ["synthetic/corr=1/rows=1000"]
    cmp = sweep_report.comparisons(runs, models=["emm"])
    cov = pd.DataFrame({"dataset": runs.dataset.unique(), "complete": True, "axis": "relatedness"})
    fam = sweep_map.family(cmp, runs, cov, learn)
    assert set(fam.dataset) == {"synthetic/corr=0/rows=1000"}  # the large "gain" without signal is not tested
    text = sweep_map.summary(cov.assign(worlds_planned=5, worlds_done=5), fam, learn, pd.DataFrame())
    assert "No signal" in text and "synthetic, correlation 1, 1,000 rows" in text
    none = cov.assign(complete=False, worlds_planned=5, worlds_done=4)
    assert "No point is complete yet: no verdict." in sweep_map.summary(none, fam.iloc[:0], learn, pd.DataFrame())
    only_quiet = sweep_map.family(cmp, runs, cov.assign(complete=cov.dataset.str.contains("corr=1")), learn)
    assert only_quiet.empty and "No complete point has signal" in sweep_map.summary(
        cov.assign(complete=True, worlds_planned=5, worlds_done=5), only_quiet, learn, pd.DataFrame())


def test_one_family_over_the_whole_map():
    """Three points each with a small gain on both tasks: Holm over the six comparisons, not per point."""
    spec = {f"synthetic/corr={c}/rows=1000": dict(emm_minus=(0.0012, 0.0012), noise=0.001) for c in (0, 0.5, 1)}
    runs = _frame(spec)
    cmp = sweep_report.comparisons(runs, models=["emm"])
    cov = pd.DataFrame({"dataset": list(spec), "complete": [True, True, False], "axis": "relatedness"})
    fam = sweep_map.family(cmp, runs, cov, sweep_map.learnability(runs))
    assert len(fam) == 4 and int(fam.family_size.iloc[0]) == 4  # the incomplete point is left out
    np.testing.assert_allclose(fam.p_holm, stats.holm(fam.p_value))
    per_point = cmp[cmp.dataset.isin(fam.dataset)].p_holm.to_numpy()
    assert (fam.p_holm.to_numpy() >= per_point - 1e-12).all()  # the whole map corrects at least as much


def test_shares_and_plain_words_when_emm_never_helps():
    spec = {"synthetic/corr=0/rows=1000": dict(emm_minus=(-0.05, -0.04)),
            "synthetic/corr=0.5/rows=1000": dict(emm_minus=(-0.0004, -0.0004), noise=0.001),
            "synthetic/corr=1/rows=1000": dict(emm_minus=(-0.03, -0.0004), noise=0.001)}
    runs = _frame(spec)
    cmp = sweep_report.comparisons(runs, models=["emm"])
    cov = pd.DataFrame({"dataset": list(spec), "complete": True, "axis": "relatedness", "worlds_planned": 5,
                        "worlds_done": 5})
    fam = sweep_map.family(cmp, runs, cov, sweep_map.learnability(runs))
    pv = sweep_map.point_verdicts(fam).set_index("dataset")
    assert pv.loc["synthetic/corr=0/rows=1000", "regime"] == "worse"
    assert pv.loc["synthetic/corr=0.5/rows=1000", "regime"] == "no detectable difference"
    s = sweep_map.shares(pv.reset_index())
    assert s["points"] == 3 and s["better"] == 0 and s["worse"] == pytest.approx(2 / 3)
    text = sweep_map.summary(cov, fam, sweep_map.learnability(runs), sweep_map.cap_shares(runs, by=("model_kind",)))
    assert "not detectably better than its best baseline anywhere on the map" in text
    assert "worse at 2 of 3 points (67%)" in text and "not that there is no effect" in text
    assert "Even EMM's best difference anywhere is not a gain" in text
    assert "below zero in 6 of 6 comparisons and above it in 0" in text  # the direction, counted
    assert "below zero at 3 of 3 points, by −0.0004 to −0.0450 on average over tasks" in text
    assert "no model reached its epoch cap in more than 10% of its runs (" in text
    assert sweep_map.abstract(cov, fam).endswith("it never came out ahead on average.")
    assert sweep_map.abstract(cov.assign(complete=False), fam.iloc[:0]).startswith("Not answered yet: 0 of 3")


def test_largest_gain_has_a_family_wise_bounded_interval():
    spec = {"synthetic/corr=0/rows=1000": dict(emm_minus=(0.02, 0.001), noise=0.004),
            "synthetic/corr=1/rows=1000": dict(emm_minus=(0.0, 0.0), noise=0.004)}
    runs = _frame(spec)
    cmp = sweep_report.comparisons(runs, models=["emm"])
    cov = pd.DataFrame({"dataset": list(spec), "complete": True, "axis": "relatedness"})
    fam = sweep_map.family(cmp, runs, cov, sweep_map.learnability(runs))
    g = sweep_map.largest_gain(fam)
    row = fam.loc[fam.mean_diff.idxmax()]
    assert (g["dataset"], g["task"]) == ("synthetic/corr=0/rows=1000", "t1") and g["family_size"] == 4
    assert g["lo"] < g["mean_diff"] < g["hi"]
    assert g["hi"] - g["lo"] > row.ci_high - row.ci_low  # wider than one comparison's 95% interval
    near = fam.assign(mean_diff=fam.mean_diff.where(fam.mean_diff < fam.mean_diff.max(), 0.999), sd_diff=0.5)
    g = sweep_map.largest_gain(near)
    assert -1 <= g["lo"] < 0.999 < g["hi"] <= 1  # bounded by a difference's range, asymmetric near it


def test_gate_relation_slope_with_an_interval_over_worlds():
    rng = np.random.default_rng(0)
    rows = [{"dataset": f"synthetic/corr={c}/rows=1000", "model": "emm", "seed": w, "generator": "synthetic",
             "n_tasks": 2, "correlation": c, "level": lv, "mtm_partner": 0.2 + 0.4 * c + 0.05 * rng.standard_normal()}
            for w in range(5) for c in (0.0, 0.25, 0.5, 0.75, 1.0) for lv in (1, 2)]
    rec = pd.DataFrame(rows)
    g = sweep_map.gate_relation(rec, n_boot=500)
    assert g["runs"] == 25 and g["worlds"] == 5 and g["lo"] < 0.4 < g["hi"] and g["lo"] > 0
    flat = rec.assign(mtm_partner=0.3 + 0.05 * rng.standard_normal(len(rec)))
    f = sweep_map.gate_relation(flat, n_boot=500)
    assert f["lo"] < 0 < f["hi"]
    assert "has no detectable slope" in sweep_map._gate_words(f) and "rises" in sweep_map._gate_words(g)
    assert sweep_map.gate_relation(rec[rec.correlation < 0.3]) is None  # two correlations: no slope


def test_map_plan_runs_each_point_in_its_worlds_with_one_batch_and_aitm_on_the_funnel():
    from emm_lib import study
    from emm_lib.study.shared.runs import Run

    st = study.settings("synthetic", "paper")
    runs = sweep.plan(st, experiment=sweep.MAP_EXPERIMENT)
    g = config.SYNTHETIC_MAP
    assert {r.experiment for r in runs} == {"synthetic_map", "synthetic_map_single_task"}
    by_point = pd.DataFrame([(r.data, r.n_tasks, r.seed) for r in runs], columns=["data", "k", "seed"])
    worlds = by_point.groupby(["data", "k"]).seed.nunique()
    assert worlds[("synthetic-ali/rows=10000000", 2)] == 3 and worlds[("synthetic/corr=0.5/rows=100000", 6)] == 5
    assert (worlds >= 3).all() and worlds.drop(index="synthetic-ali/rows=10000000", level=0).ge(5).all()
    ali = [r for r in runs if r.data.startswith("synthetic-ali")]
    assert "aitm:calibrated" in {r.label for r in ali} and "aitm:calibrated" not in {r.label for r in runs
                                                                                    if r.data.startswith("synthetic/")}
    batches = {sweep.point_settings(Run(sweep.MAP_EXPERIMENT, "emm", 0, 2, "paper", f"synthetic-ali/rows={n}"),
                                    st).batch_size for n in g["data_size"]["n_train"]}
    caps = {sweep.point_settings(r, st).epochs for r in runs[:50] + ali[:5]}
    assert batches == {4_096} and caps == {g["relatedness"]["epochs"]} and st.patience == 5
    assert sweep.plan(st, ["data_size"], seeds=[4], experiment=sweep.MAP_EXPERIMENT)  # world 4: 1e5 and 1e6
    assert not any("10000000" in r.data for r in sweep.plan(st, ["data_size"], seeds=[4],
                                                             experiment=sweep.MAP_EXPERIMENT))


def test_the_committed_map_stops_early_in_at_least_90_percent_of_every_models_runs():
    """The results file of the map (when it holds rows): at its complete points, no model reached its
    epoch cap in more than config.SYNTHETIC_MAP["cap_share_max"] of its runs."""
    out = REPO / "results" / "paper"
    tables = sweep.read(out, sweep.MAP_EXPERIMENT)
    runs = tables["runs"]
    cov = sweep_map.coverage(runs, sweep.grid("paper", sweep.MAP_EXPERIMENT))
    complete = list(cov.loc[cov.complete, "dataset"])
    assert set(complete) <= set(runs.dataset) if len(runs) else not complete
    bad = sweep_map.cap_excess(runs, complete)
    assert bad.empty, f"models at their epoch cap too often at complete points:\n{bad}"


def test_the_map_plans_each_world_as_trained_models_then_emm_then_the_baselines():
    from emm_lib import study

    st = study.settings("synthetic", "paper")
    world = [r.label for r in sweep.plan(st, ["data_size"], seeds=[0], rows=[10_000_000],
                                         experiment=sweep.MAP_EXPERIMENT)]
    assert world[:5] == ["tm1:click", "tm2:click", "tm1:conversion", "tm2:conversion", "emm"]
    assert set(world[5:]) == {"shared_bottom", "mmoe", "ple", "aitm:calibrated"}
