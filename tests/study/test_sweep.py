"""The synthetic sweep (chapter 09): points as data variants, resume, identity, gates, the report."""
import json

import pandas as pd
import pytest
import torch

from emm_lib import config, study
from emm_lib.study.shared import execution
from emm_lib.study.sweep import grid as sweep, sweep_report
from emm_lib.study.shared.runs import Run, SettingsChanged

# A micro grid with every axis (seconds on a shared 2-core CPU).
MICRO = {
    **config.SYNTHETIC_SWEEP,
    "seeds": (0,),
    "models": ("tm1", "tm2", "mmoe", "emm", "emm:soft"),
    "relatedness": dict(dataset="synthetic", n_tasks=2, n_rows=1_000, epochs=1, correlation=(0.0, 1.0)),
    "task_count": dict(dataset="synthetic", n_tasks=(2, 3), n_rows=1_000, epochs=1, correlation=1.0),
    "data_size": dict(dataset="synthetic-ali", n_train=(1_000,), epochs={1_000: 1},
                      overrides=dict(n_val=2_000, n_test=2_000, pilot_rows=1 << 14)),
    "shapes": {**config.SYNTHETIC_SWEEP["shapes"], "n_rows": 1_000, "epochs": 1, "correlation": (1.0,)},
}


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setitem(config.SYNTHETIC_SWEEPS, "micro", MICRO)
    mp.setitem(config.PROFILES, "micro", dict(config.PROFILES["tiny"]))
    st = study.settings("synthetic", "micro", results_dir=str(tmp_path_factory.mktemp("sweep")))
    log: list[str] = []
    tables = sweep.run_sweep(st, log=log.append)
    yield st, tables, log
    mp.undo()


def _settings(df):
    return [json.loads(s) for s in df.settings]


def test_points_have_their_own_dataset_keys(micro):
    st, _, _ = micro
    runs = sweep.plan(st)
    keys = {(r.data, r.n_tasks): execution.run_key(r, st) for r in runs}
    assert len(set(keys.values())) == len(keys)  # one key per point
    assert keys[("synthetic/corr=0/rows=1000", 2)] == "synthetic/corr=0/rows=1000"
    assert keys[("synthetic/corr=1/rows=1000", 3)] == "synthetic/3-tasks/corr=1/rows=1000"
    assert keys[("synthetic-ali/rows=1000", 2)] == "synthetic-ali/rows=1000"
    # a run without a point keeps the Census-era key
    assert execution.run_key(Run("synthetic_tasks", "mmoe", 0, 2, "paper"), st) == "synthetic"
    assert len(runs) == len(set(runs))  # shared points (corr=1 at 2 tasks) are planned once


def test_sweep_runs_every_point_end_to_end(micro):
    st, tables, log = micro
    runs = tables["runs"]
    assert len(log) == len(sweep.plan(st))  # each planned run trained once
    have = runs.groupby("dataset").model.apply(set).to_dict()
    assert have["synthetic/corr=0/rows=1000"] >= {"mmoe", "emm", "tm1:t1", "tm2:t2"}
    assert "emm:soft" not in have["synthetic/corr=0/rows=1000"]  # the gates are one function at 2 tasks
    assert have["synthetic/3-tasks/corr=1/rows=1000"] >= {"emm", "emm:soft", "tm1:t3"}
    assert have["synthetic-ali/rows=1000"] >= {"mmoe", "emm", "tm1:click", "tm2:conversion"}
    assert have["synthetic/corr=1/rows=1000/shape=depth_width"] == {"emm", "tm1:t1", "tm2:t1", "tm1:t2", "tm2:t2"}
    # the data really differ between points (correlation reaches the generator)
    ds0 = study.load_dataset(st, n_tasks=2, seed=0, data="synthetic/corr=0/rows=1000")
    ds1 = study.load_dataset(st, n_tasks=2, seed=0, data="synthetic/corr=1/rows=1000")
    assert ds0.info["correlation"] == 0.0 and ds1.info["correlation"] == 1.0
    assert abs(ds1.info["weight_cosine"][0][1] - 1.0) < 1e-6 and abs(ds0.info["weight_cosine"][0][1]) < 1e-6
    ali = study.load_dataset(st, n_tasks=2, seed=0, data="synthetic-ali/rows=1000")
    assert (len(ali.train), len(ali.test), ali.spec.n_sparse, ali.spec.n_dense) == (1000, 2000, 16, 63)


def test_identity_records_the_point_and_its_models(micro):
    st, tables, _ = micro
    r = tables["runs"]
    s = {(x["data"], row.model): x for x, row in zip(_settings(r), r.itertuples())}
    emm = s[("synthetic/corr=0/rows=1000", "emm")]
    assert (emm["correlation"], emm["n_rows"], emm["generator"], emm["dataset"]) == (0.0, 1000, "synthetic", "synthetic")
    assert emm["adapters"] is False and emm["shape"] == "widths"
    assert emm["sizes"]["component_shapes"] == [[8, 8], [16, 8]]  # Census sizes for `synthetic`
    ali = s[("synthetic-ali/rows=1000", "mmoe")]
    assert ali["batch_size"] == 32768 and ali["weight_decay"] == 1e-5 and ali["sizes"]["expert"] == [128, 64]
    assert ali["sizes"]["embedding_dim"] == 5 and ali["overrides"]["n_test"] == 2000
    dw = "synthetic/corr=1/rows=1000/shape=depth_width"
    assert s[(dw, "emm")]["adapters"] is True
    assert s[(dw, "tm1:t1")]["sizes"]["n_blocks"] == 2 and s[(dw, "tm2:t1")]["sizes"]["n_blocks"] == 4
    # efficiency on the same runs
    assert emm["params_trainable"] < emm["params_total"] and emm["inference_rows_per_s"] > 0
    # the runner's identity is what was recorded
    run = Run(sweep.EXPERIMENT, "emm", 0, 2, "paper", "synthetic/corr=0/rows=1000")
    assert not runs_mismatch(emm, execution.identity(run, st))


def runs_mismatch(recorded, identity):
    from emm_lib.study.shared.runs import identity_mismatch

    return identity_mismatch(recorded, identity)


def test_identical_models_differ_only_by_seed(micro):
    st, _, _ = micro
    from emm_lib import checkpoint

    key = "synthetic/corr=1/rows=1000/shape=identical"
    a, b = (checkpoint.load(study.checkpoint_path_of(st, sweep.TM_EXPERIMENT, key, 0, f"{s}:t1")) for s in ("tm1", "tm2"))
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    assert pa.keys() == pb.keys() and all(pa[k].shape == pb[k].shape for k in pa)
    assert not all(torch.equal(pa[k], pb[k]) for k in pa)


def test_gate_table_has_each_emm_run_once(micro):
    st, tables, _ = micro
    g = pd.read_csv(st.out_dir / sweep.GATES)
    emm_runs = tables["runs"][tables["runs"].model.isin(["emm", "emm:soft"])].drop_duplicates(["dataset", "model", "seed"])
    assert set(zip(g.dataset, g.model, g.seed)) == set(zip(emm_runs.dataset, emm_runs.model, emm_runs.seed))
    assert not g.duplicated(["dataset", "model", "seed", "level", "task", "kind", "index"]).any()
    one = g[(g.dataset == "synthetic/corr=0/rows=1000") & (g.model == "emm")]
    assert len(one) == 3 * 2 * (2 + 2 + 2 + 2)  # levels x tasks x (task gate, partner, scores, mtm) x 2
    sums = one.groupby(["level", "task", "kind"]).weight.sum()
    assert ((sums - 1).abs() < 1e-5).all()  # every gate is a distribution
    partner = one[(one.kind == "partner") & (one.task == "t1")].set_index(["level", "name"]).weight
    assert (partner.xs("t2", level="name") == 1).all()  # with two tasks the partner is the other task


def test_resume_skips_done_points_and_only_those(micro, monkeypatch):
    st, tables, _ = micro
    before = pd.read_csv(st.out_dir / "synthetic.csv")
    log: list[str] = []
    sweep.run_sweep(st, log=log.append)
    assert log == []  # everything done
    wider = {**MICRO, "relatedness": {**MICRO["relatedness"], "correlation": (0.0, 0.5, 1.0)}}
    monkeypatch.setitem(config.SYNTHETIC_SWEEPS, "micro", wider)
    sweep.run_sweep(st, ["relatedness"], log=log.append)
    assert log and all("corr=0.5/" in m for m in log)
    assert len(log) == 4 + 2  # the new point's trained models, mmoe and emm
    after = pd.read_csv(st.out_dir / "synthetic.csv")
    assert after.iloc[:len(before)].equals(before)  # done points untouched
    assert pd.read_csv(st.out_dir / sweep.GATES).groupby(["dataset", "model", "seed"]).ngroups == \
        before[before.model.str.startswith("emm")].groupby(["dataset", "model", "seed"]).ngroups + 1


def test_a_changed_point_setting_is_named(micro, monkeypatch):
    st, _, _ = micro
    more = {**MICRO, "relatedness": {**MICRO["relatedness"], "epochs": 2},
            "task_count": {**MICRO["task_count"], "epochs": 2}}
    monkeypatch.setitem(config.SYNTHETIC_SWEEPS, "micro", more)
    with pytest.raises(SettingsChanged, match="epochs: recorded 1, now 2"):
        sweep.run_sweep(st, ["relatedness"])
    # replaced, not appended: results and gates keep each run once
    again = study.settings("synthetic", "micro", results_dir=str(st.out_dir.parent), on_change="rerun")
    sweep.run_sweep(again, ["relatedness"])
    g = pd.read_csv(st.out_dir / sweep.GATES)
    assert not g.duplicated(["dataset", "model", "seed", "level", "task", "kind", "index"]).any()
    r = pd.read_csv(st.out_dir / "synthetic.csv")
    assert not r.duplicated(["dataset", "model", "task", "seed", "metric"]).any()
    assert {json.loads(x)["epochs"] for x in r[r.dataset == "synthetic/corr=0/rows=1000"].settings} == {2}


def test_report_tables_and_recommendation(micro):
    st, tables, _ = micro
    runs = tables["runs"]
    cmp = sweep_report.comparisons(runs, sweep_report.pair_variances(st.out_dir, runs))
    rel = sweep_report.axis_view(cmp, MICRO, "relatedness")
    assert set(rel.x) == {0.0, 1.0} and set(rel.task) == {"t1", "t2"}
    chosen = cmp.set_index(["dataset", "model", "task"]).comparator
    val = runs[(runs.metric == "val_auc") & (runs.dataset == "synthetic/corr=0/rows=1000") & (runs.task == "t1")
               & ~runs.model.str.startswith("emm")].groupby("model").value.mean()
    assert chosen[("synthetic/corr=0/rows=1000", "emm", "t1")] == val.idxmax()  # chosen on validation
    emm = runs[(runs.metric == "test_auc") & (runs.dataset == "synthetic/corr=0/rows=1000") & (runs.task == "t1")]
    diff = emm.set_index("model").value
    got = rel[(rel.x == 0.0) & (rel.task == "t1") & (rel.model == "emm")].mean_diff.iloc[0]
    assert got == pytest.approx(diff["emm"] - diff[val.idxmax()])
    eff = sweep_report.efficiency(runs)
    e = eff[(eff.model == "emm") & (eff.generator == "synthetic") & (eff.n_tasks == 2) & (eff["shape"] == "widths")]
    assert (e.seconds_with_single_task > e.seconds_model).all()  # the trained models' time counted
    rec = sweep_report.gate_recovery(tables["gates"])
    assert {"mtm_partner", "task_gate_model0", "partner_max"} <= set(rec.columns)
    text = sweep_report.recommendation({"relatedness": rel}, eff, rec)
    assert "1 seed" in text and "task correlation" in text and "inference rows/s" in text
    # One short axis beside a complete one: the caveat names that axis only, and it gets no verdict.
    text = sweep_report.recommendation({"relatedness": rel.assign(n_seeds=3), "data_size": rel}, eff, rec)
    assert "no confidence interval, so no regime" not in text
    short = [line for line in text.split("\n\n") if line.startswith("Along training rows")]
    assert len(short) == 1 and "1 seed per point so far" in short[0] and "no verdict yet" in short[0]
    assert "Along task correlation: EMM (paper's arg-max gate) is" in text  # the reader's name, not the id
    assert [sweep_report._num(x) for x in (1_000_000, 1e7, 0.25, 6, "widths")] == \
        ["1,000,000", "10,000,000", "0.25", "6", "widths"]  # row counts in words, not 1e+06


def test_bad_grids_and_points_are_named(monkeypatch):
    with pytest.raises(ValueError, match="SYNTHETIC_SWEEPS"):
        sweep.grid("huge")
    with pytest.raises(ValueError, match="Unknown sweep axis 'colour'"):
        sweep.points(MICRO, ["colour"])
    with pytest.raises(ValueError, match="Not a sweep point"):
        sweep.parse("census/corr=1")
    with pytest.raises(ValueError, match="Unknown sweep point field 'depth'"):
        sweep.parse("synthetic/depth=3")
    assert sweep.parse(sweep.point_data("synthetic", 1000, 0.25, "identical")) == \
        {"generator": "synthetic", "correlation": 0.25, "n_rows": 1000, "shape": "identical"}
    monkeypatch.setitem(config.SYNTHETIC_SWEEPS, "micro", {**MICRO, "task_count": {**MICRO["task_count"], "epochs": 3}})
    monkeypatch.setitem(config.PROFILES, "micro", dict(config.PROFILES["tiny"]))
    st = study.settings("synthetic", "micro")
    with pytest.raises(ValueError, match="same epochs"):
        sweep.point_settings(Run(sweep.EXPERIMENT, "emm", 0, 2, "paper", "synthetic/corr=1/rows=1000"), st)


def test_data_size_points_take_their_own_batch_for_equal_steps():
    """The paper grid's data-size points get about equal Adam steps (rows x epochs / batch) by a batch per
    point; a grid without one (tiny) keeps the generator's batch; other axes keep theirs."""
    st = study.settings("synthetic", "paper")
    g = config.SYNTHETIC_SWEEPS["paper"]["data_size"]
    steps = []
    for n in g["n_train"]:
        ps = sweep.point_settings(Run(sweep.EXPERIMENT, "emm", 0, 2, "paper", f"synthetic-ali/rows={n}"), st)
        steps.append(n * g["epochs"][n] / ps.batch_size)
    assert ps.batch_size == config.TRAINING["synthetic-ali"]["batch_size"] == 32_768  # the paper's at 1e7
    assert max(steps) / min(steps) < 1.3 and min(steps) > 200
    tiny = study.settings("synthetic", "tiny")
    ps = sweep.point_settings(Run(sweep.EXPERIMENT, "emm", 0, 2, "paper", "synthetic-ali/rows=2000"), tiny)
    assert ps.batch_size == 32_768
    rel = sweep.point_settings(Run(sweep.EXPERIMENT, "emm", 0, 2, "paper", "synthetic/corr=1/rows=100000"), st)
    assert rel.batch_size == config.TRAINING["synthetic"]["batch_size"]


def test_coverage_counts_points_with_every_planned_model():
    from emm_lib.study.sweep import grid as sweep, sweep_report

    g = sweep.grid("tiny")
    pts = sweep.points(g, ["relatedness"])
    rows = []
    for _, data, k, labels in pts[:1]:  # only the first point has runs, every model, 1 seed
        gen, _, rest = data.partition("/")
        rows += [{"dataset": f"{gen}/{rest}", "model": m, "seed": 0} for m in labels]
    rows.append({"dataset": "synthetic/other", "model": "emm", "seed": 1})
    cov = sweep_report.coverage(pd.DataFrame(rows), g, ["relatedness", "task_count"]).set_index("axis")
    assert cov.loc["relatedness"].tolist() == [len(pts), 1, 1, len(g["seeds"])]
    assert cov.loc["task_count", "points_run"] == 0 and cov.loc["task_count", "seeds"] == 0


def test_headroom_reports_the_auc_range_per_generator():
    from emm_lib.study.sweep import sweep_report

    runs = pd.DataFrame({"generator": ["synthetic"] * 3, "dataset": ["a", "a", "b"], "model": ["emm", "mmoe", "emm"],
                         "task": "t1", "metric": "test_auc", "value": [0.95, 0.99, 0.97]})
    assert "lies between 0.950 and 0.990 on synthetic data (median 0.970)." in sweep_report.headroom(runs)
    assert sweep_report.headroom(runs.iloc[:0]) == ""


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU"))])
def test_gate_weights_read_the_rows_where_the_model_is(device, monkeypatch):
    """After fit on a GPU the model is on CUDA and the split on the CPU: the gate table is still made."""
    from helpers import make_tiny_dataset, train_tiny_models

    from emm_lib.emm import EMM

    ds = make_tiny_dataset()
    emm = EMM.from_trained(train_tiny_models(ds))
    ref = sweep.gate_weights(emm, ds.val)
    moved_to = []
    real_to = type(ds.val).to
    monkeypatch.setattr(type(ds.val), "to", lambda self, d: moved_to.append(torch.device(d)) or real_to(self, d))
    got = sweep.gate_weights(emm.to(device), ds.val)
    assert next(emm.parameters()).device.type == device
    assert moved_to and moved_to[-1].type == device  # the rows were sent to the model's device (a CPU check too)
    pd.testing.assert_frame_equal(got, ref, atol=1e-5, rtol=0)


def test_rows_restrict_the_plan_to_those_points(micro, capsys):
    st, _, _ = micro
    runs = sweep.plan(st, ["data_size", "relatedness"], rows=[1_000])
    assert runs and {r.data for r in runs} == {"synthetic-ali/rows=1000", "synthetic/corr=0/rows=1000",
                                               "synthetic/corr=1/rows=1000"}
    assert sweep.plan(st, ["data_size"], rows=[1_000]) == sweep.plan(st, ["data_size"])
    with pytest.raises(ValueError, match=r"No sweep point with \[10000000\] training rows.*have \[1000\]"):
        sweep.plan(st, ["data_size"], rows=[10_000_000])
    with pytest.raises(SystemExit):
        study.main(["table1", "--profile", "tiny", "--rows", "1000"])
    assert "--rows applies to the 'synthetic' and 'synthetic_map' experiments only" in capsys.readouterr().err


def test_abstract_counts_the_settings_in_plain_words():
    from emm_lib.study.sweep import sweep_report

    v = pd.DataFrame({"model": ["emm"] * 3, "x": [0.0, 0.5, 1.0], "verdict": ["better", "no detectable difference",
                                                                         "worse"], "n_seeds": [3, 3, 3]})
    text = sweep_report.abstract({"relatedness": v, "task_count": v.iloc[:1]})
    assert "task relatedness and number of tasks" in text and "at 2 of 4 settings and lost at 1" in text
    assert sweep_report.abstract({"relatedness": v.assign(n_seeds=1)}).startswith("Not answered yet")


MICRO_MAP = {
    **config.SYNTHETIC_MAP,
    "seeds": (0, 1),
    "models": ("tm1", "tm2", "emm"),
    "relatedness": dict(dataset="synthetic", n_tasks=2, n_rows=1_000, epochs=2, correlation=(1.0,)),
    "task_count": dict(dataset="synthetic", n_tasks=(2,), n_rows=1_000, epochs=2, correlation=1.0),
    "data_size": dict(dataset="synthetic-ali", n_train=(1_000,), epochs=2, batch_size=256, worlds={1_000: 1},
                      models=("tm1", "tm2", "aitm:calibrated", "emm"),
                      overrides=dict(n_sines=3, base_rates=(0.05, 0.01), n_val=2_000, n_test=2_000,
                                     pilot_rows=1 << 14)),
}


def test_the_map_is_a_pass_of_its_own_beside_the_first(micro, monkeypatch):
    """The second pass writes its own files in the same results folder: the first pass's rows and resume
    checks are untouched, a point runs its own worlds, AITM runs on the funnel at the map's one batch."""
    st, _, _ = micro
    monkeypatch.setitem(config.SYNTHETIC_MAPS, "micro", MICRO_MAP)
    before = pd.read_csv(st.out_dir / "synthetic.csv")
    log: list[str] = []
    tables = sweep.run_sweep(st, log=log.append, experiment=sweep.MAP_EXPERIMENT)
    assert pd.read_csv(st.out_dir / "synthetic.csv").equals(before)  # the first pass is untouched
    runs = tables["runs"]
    assert set(runs.groupby("dataset").seed.nunique().items()) == {("synthetic/corr=1/rows=1000", 2),
                                                                   ("synthetic-ali/rows=1000", 1)}
    ali = runs[runs.dataset == "synthetic-ali/rows=1000"]
    assert {"aitm:calibrated", "emm", "tm1:conversion"} <= set(ali.model)
    s = json.loads(ali[ali.model == "aitm:calibrated"].settings.iloc[0])
    assert s["batch_size"] == 256 and s["epochs"] == 2 and s["overrides"]["n_sines"] == 3
    assert (st.out_dir / "analysis" / "synthetic_map_gates.csv").exists()
    assert set(tables["gates"].dataset) == {"synthetic/corr=1/rows=1000", "synthetic-ali/rows=1000"}
    # the same point and seed in the two passes: other data settings, no clash, separate checkpoints
    first = study.checkpoint_path_of(st, sweep.TM_EXPERIMENT, "synthetic/corr=1/rows=1000", 0, "tm1:t1")
    second = study.checkpoint_path_of(st, "synthetic_map_single_task", "synthetic/corr=1/rows=1000", 0, "tm1:t1")
    from emm_lib import checkpoint

    assert first != second and all(checkpoint.load_or_none(p) is not None for p in (first, second))
    log.clear()
    sweep.run_sweep(st, log=log.append, experiment=sweep.MAP_EXPERIMENT)
    assert log == []  # resumed: everything done
    from emm_lib.study.sweep import sweep_map

    cov = sweep_map.coverage(runs, MICRO_MAP)
    assert cov.complete.all() and set(cov.worlds_done) == {1, 2}
    from emm_lib.study.shared import analysis

    # the study-wide table leaves the map out (its funnel key repeats the first pass's, on other rows)
    everything = analysis.pair_variances(st.out_dir)
    own = sweep_report.pair_variances(st.out_dir, runs, experiment=sweep.MAP_EXPERIMENT)
    assert "aitm:calibrated" not in set(everything.model_a) | set(everything.model_b)
    assert "aitm:calibrated" in set(own.model_a) | set(own.model_b)
    assert (st.out_dir / "analysis" / "synthetic_map_pair_variances.csv").exists()
