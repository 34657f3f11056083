"""The protocol replay experiment (chapter 08): plan, shared runs, rows, resume, the ladder."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emm_lib.study.shared.glossary import named

from emm_lib.study.replay import authors, ladder, protocol
from emm_lib import config, study
from emm_lib.study.shared.execution import identity
from emm_lib.study.shared.runs import Run, SettingsChanged

RUNGS3 = ("paper", "published", "ours")
TMS = {f"{s}:{t}" for t in ("income", "marital") for s in config.TM_SHAPES}


@pytest.fixture
def st(tmp_path):
    return study.settings("synthetic", "tiny", results_dir=str(tmp_path), seeds=[0, 1], epochs=1,
                          max_train_rows=2000)


def _census(profile="paper", seeds=(0,)):
    return study.settings("census", profile, seeds=list(seeds))


def test_plan_covers_every_rung_with_the_right_models():
    st = _census()
    runs = authors.plan(st)
    rungs = authors.rungs_for("paper")
    assert rungs == protocol.RUNG_NAMES  # the paper profile runs the whole ladder
    for rung in rungs:  # every rung finds all its models among the planned runs
        for label in sorted(TMS) + ["mmoe", "ple", "emm"]:
            part = "trained_model" if label in TMS else ("emm" if label == "emm" else "baseline")
            assert Run(authors.EXPERIMENT, label, 0, rung=authors.owner(rung, part)) in runs, (rung, label)
    # each EMM is its own rung's (Census: every rung has other flags); no run is planned twice
    assert sorted(r.rung for r in runs if r.label == "emm") == sorted(rungs)
    assert len(runs) == len(set(runs))
    # trained models come before the EMM that uses them
    pos = {r: i for i, r in enumerate(runs)}
    for r in runs:
        if r.label == "emm":
            assert all(pos[authors.tm_run(r, s, t, "census")] < pos[r] for t in ("income", "marital")
                       for s in config.TM_SHAPES)


def test_shared_runs_follow_the_flags_that_touch_them():
    """Trained models are shared exactly between rungs of equal trained_model_key, baselines between
    rungs of equal baseline_key; hand-checked against the ladder's order."""
    runs = authors.plan(_census())
    tm_rungs = sorted({r.rung for r in runs if r.label == "tm1:income"})
    base_rungs = sorted({r.rung for r in runs if r.label == "mmoe"})
    assert tm_rungs == sorted(["paper", "published", "no_tm_block3_skipped", "no_published_embedding_init",
                               "no_published_training_loop", "ours"])
    assert base_rungs == sorted(["paper", "published", "no_published_embedding_init",
                                 "no_published_training_loop", "ours"])
    for rung in protocol.RUNG_NAMES:
        ps, tm_owner = protocol.apply(rung), protocol.apply(authors.owner(rung, "trained_model"))
        assert ps.trained_model_key == tm_owner.trained_model_key
        assert ps.baseline_key == protocol.apply(authors.owner(rung, "baseline")).baseline_key
    assert len(runs) == 6 * 4 + 5 * 2 + 9  # per seed: 24 TMs, 10 baselines, 9 EMMs (not 9 x 7 = 63)


def test_tiny_and_unknown_rungs():
    assert authors.rungs_for("tiny") == config.AUTHORS_PROTOCOL["rungs"]["tiny"]
    assert authors.rungs_for("paper", ["ours", "paper"]) == ("paper", "ours")  # ladder order
    with pytest.raises(ValueError, match="Rungs, in order"):
        authors.rungs_for("paper", ["nope"])


def test_synthetic_drops_census_flags_and_shares_rungs_that_become_equal():
    st = study.settings("synthetic", "paper", seeds=[0])
    runs = authors.plan(st)
    emm_rungs = [r.rung for r in runs if r.label == "emm"]
    # frozen_sex_embedding and published_preprocessing are Census-only: two rungs collapse into earlier ones
    assert "no_frozen_sex_embedding" not in emm_rungs and "ours" not in emm_rungs
    assert authors.owner("ours", "emm", "synthetic") == "no_published_training_loop"
    assert len(emm_rungs) == len(protocol.RUNG_NAMES) - 2


def test_synthetic_replay_at_the_paper_profile_replays_the_published_budget_on_census_like_rows():
    """At the paper profile the synthetic section trains the published loop's 100 epochs on 100,000 rows
    (not TRAINING["synthetic"]'s 20 epochs on the generator's 20,000); other profiles and Census keep theirs."""
    syn = authors.settings("synthetic", "paper", seeds=[0])
    assert syn.epochs == config.PUBLISHED_CODE["epochs"] == 100 != config.TRAINING["synthetic"]["epochs"]
    assert authors.settings("synthetic", "paper", epochs=3).epochs == 3  # an explicit budget wins
    assert authors.settings("synthetic", "tiny").epochs == study.settings("synthetic", "tiny").epochs
    assert authors.settings("census", "paper") == study.settings("census", "paper")
    assert authors.data_options("census", "paper") == {}
    assert authors.data_options("synthetic", "tiny") == {"correlation": 0.8}
    opts = authors.data_options("synthetic", "paper")
    assert opts == {"correlation": 0.8, "n_rows": 100_000}
    ds = study.load_dataset(syn, seed=0, rung="published")
    assert len(ds.train) + len(ds.val) + len(ds.test) == 100_000
    assert len(study.load_dataset(study.settings("synthetic", "paper"), seed=0).train) < 20_000  # not a replay
    run = Run(authors.EXPERIMENT, "tm1:t1", 0, rung="published")
    ident = identity(run, syn)
    assert ident["epochs"] == 100 and ident["synthetic_data"] == opts and ident["patience"] == syn.patience
    assert "synthetic_data" not in identity(Run(authors.EXPERIMENT, "tm1:income", 0, rung="published"), _census())


def test_identity_records_the_rung_and_keeps_other_runs_unchanged():
    st = _census()
    main = Run("table1", "emm", 0)
    assert "rung" not in identity(main, st) and main.rung == "ours"
    assert study.dataset_key_of("census") == "census"  # existing keys unchanged
    r = Run(authors.EXPERIMENT, "emm", 0, rung="published")
    ident = identity(r, st)
    assert ident["rung"] == "published" and ident["flags"] == list(protocol.rung_flags("published"))
    assert ident["options"]["fusion"] == "hard" and ident["options"]["bn_drift"] is True
    assert ident["protocol_fit"] == {"patience": config.PUBLISHED_CODE["patience"], "restore_best": True}
    ours = identity(Run(authors.EXPERIMENT, "emm", 0, rung="ours"), st)
    assert ours["flags"] == [] and ours["options"] == {"fusion": "soft"}
    assert identity(Run(authors.EXPERIMENT, "tm1:income", 0, rung="published"), st)["options"] == {
        "block3_skipped": True}


def test_tiny_replay_runs_end_to_end_shares_runs_and_resumes(st):
    calls = []
    df = authors.run(st, RUNGS3, log=calls.append)
    n_runs = len(authors.plan(st, RUNGS3))
    assert len(calls) == n_runs == 2 * 3 * 7  # 2 seeds x 3 distinct rungs (synthetic) x 7 models
    # every row names its rung and flags
    s = df.settings.map(json.loads)
    assert all(d["rung"] in protocol.RUNG_NAMES and "flags" in d for d in s)
    assert set(df.dataset) == {f"synthetic/rung-{r}" for r in ("paper", "published", "no_published_training_loop")}
    pub = df[df.dataset == "synthetic/rung-published"].settings.map(json.loads)
    census_only = ["frozen_sex_embedding", "published_preprocessing"]
    assert all(d["flags"] == [f for f in protocol.rung_flags("published") if f not in census_only]
               and d["dropped_flags"] == census_only for d in pub)
    # resume: nothing is trained again
    again = authors.run(st, RUNGS3, log=calls.append)
    assert len(calls) == n_runs and len(again) == len(df)
    # the view gives every rung all of its models, shared ones included
    v = authors.view(df, "synthetic", RUNGS3)
    for rung in RUNGS3:
        models = set(v[v.rung == rung].model)
        assert models == {"tm1:t1", "tm2:t1", "tm1:t2", "tm2:t2", "mmoe", "ple", "emm", "tm_mean"}, rung
    ours = v[(v.rung == "ours") & (v.metric == "test_auc") & (v.model != "tm_mean")]
    shared = df[(df.dataset == "synthetic/rung-no_published_training_loop") & (df.metric == "test_auc")]
    pd.testing.assert_series_equal(ours.sort_values(["model", "task", "seed"]).value.reset_index(drop=True),
                                   shared.sort_values(["model", "task", "seed"]).value.reset_index(drop=True))
    # tm_mean is the mean of TM-1 and TM-2 per seed (hand computation)
    t = v[(v.rung == "paper") & (v.metric == "test_auc") & (v.task == "t1") & (v.seed == 0)].set_index("model").value
    assert t["tm_mean"] == pytest.approx((t["tm1:t1"] + t["tm2:t1"]) / 2)

    # DeLong variances: one per model and pair, and EMM against the TM mean
    authors.write_pair_variances(st, RUNGS3)
    pv = authors.read_pair_variances(st)
    one = pv[(pv.dataset == "synthetic/rung-paper") & (pv.seed == 0) & (pv.task == "t1")]
    assert set(one[one.model_b == ""].model_a) == {"tm1:t1", "tm2:t1", "mmoe", "ple", "emm"}
    assert (one.var_diff.astype(float) >= 0).all()
    assert len(one[(one.model_a == "emm") & (one.model_b == "tm_mean")]) == 1

    # the ladder table: one row per rung, CIs around the means, a picture per rung and an answer
    tab = ladder.table(df, "synthetic", RUNGS3, pv)
    assert list(tab.rung) == list(RUNGS3)
    assert (tab.n_seeds == 2).all()
    ok = tab.dropna(subset=["emm_lo"])
    assert ((ok.emm_lo <= ok.emm) & (ok.emm <= ok.emm_hi)).all() and len(ok) == len(tab)
    assert set(tab.comparator) <= {"mmoe", "ple"}
    g = tab.set_index("rung").gain
    e = v[(v.metric == "test_auc") & (v.task == "t1")].pivot_table(index=["rung", "seed"], columns="model",
                                                                    values="value")
    assert g["paper"] == pytest.approx((e.loc["paper"].emm - e.loc["paper"].tm_mean).mean())
    text = ladder.answer(tab, "synthetic")
    assert "paper's picture" in text and all(named(r) in text for r in tab.rung)
    # a ladder in progress: before its first EMM there is no table; later the answer names what is missing
    assert ladder.table(df[df.model != "emm"], "synthetic", RUNGS3, pv).empty
    part = ladder.table(df[(df.model != "emm") | (df.dataset == "synthetic/rung-paper")], "synthetic", RUNGS3, pv)
    assert list(part.rung) == ["paper"]
    text = ladder.answer(part, "synthetic", planned=RUNGS3)
    assert "in progress" in text and "\u2018published\u2019, \u2018ours\u2019 have no EMM results yet" in text
    assert "in progress" not in ladder.answer(tab, "synthetic", planned=RUNGS3)
    one = ladder.table(df[df.seed == 0], "synthetic", RUNGS3, pv)  # one seed: estimates, no verdict
    text = ladder.answer(one, "synthetic", planned=RUNGS3)
    assert "No verdict yet" in text and "No rung reproduces" not in text and "no detectable gain" not in text
    mixed = ladder.table(df[(df.seed == 0) | (df.dataset == "synthetic/rung-paper")], "synthetic", RUNGS3, pv)
    text = ladder.answer(mixed, "synthetic", planned=RUNGS3)  # paper at 2 seeds, the others at 1
    assert "1 to 2 seeds per rung" in text and "\u2018published\u2019, \u2018ours\u2019 have one seed so far" in text
    assert "No verdict yet" not in text
    line = ladder.headline(one, planned=RUNGS3)  # the landing page's plain-text version
    assert line.startswith("In progress (3 of 3 rungs, 1 seed per rung)") and "No verdict yet" in line
    assert "`" not in line and "**" not in line and "\n" not in line
    assert "reproduces the paper's picture" in ladder.headline(tab, planned=RUNGS3) or "appears at" in \
        ladder.headline(tab, planned=RUNGS3)
    assert ladder.headline(pd.DataFrame()).startswith("No answer yet")


def test_changed_rung_settings_stop_the_resume(st):
    st1 = study.settings("synthetic", "tiny", results_dir=st.results_dir, seeds=[0], epochs=1, max_train_rows=2000)
    authors.run(st1, rungs=["ours"])
    st2 = study.settings("synthetic", "tiny", results_dir=st.results_dir, seeds=[0], epochs=1, max_train_rows=1000)
    with pytest.raises(SettingsChanged, match="max_train_rows"):
        authors.run(st2, rungs=["ours"])


def test_picture_and_answer_on_a_hand_made_ladder():
    """The verdict logic on numbers made by hand: weak TMs + a 'better' gain at 'paper' only."""
    t = pd.DataFrame({"rung": ["paper", "published", "ours"], "off": [[], ["final_epoch_weights"], ["x"]],
                      "on": [[], [], []], "n_seeds": [5, 5, 5], "tm_mean": [0.92, 0.945, 0.95],
                      "emm": [0.94, 0.944, 0.949], "gain": [0.02, -0.001, -0.001],
                      "gain_verdict": ["better", "no detectable difference", "no detectable difference"],
                      "vs_best": [0.0, -0.002, -0.001], "comparator": ["mmoe"] * 3,
                      "vs_best_verdict": ["no detectable difference"] * 3, "task": ["income"] * 3})
    p = ladder.picture(t, "census")
    assert list(p.weak_tm) == [True, False, False]  # 0.92 <= 0.95 - 0.5 * (0.95 - 0.9187)
    assert list(p.paper_picture) == [True, False, False]
    text = ladder.answer(p, "census")
    assert "appears at \u2018paper\u2019" in text and "\u2018last epoch's weights\u2019" in text and "removes it" in text
    assert ladder.headline(p, planned=["paper", "published", "ours"]) == (
        "All 3 rungs measured (5 seeds per rung). The paper's picture (weak trained models, EMM gaining on them) "
        "appears at 'paper'; the rest of the ladder shows where it goes (chapter 08).")
    none = ladder.answer(ladder.picture(t.assign(gain_verdict="no detectable difference"), "census"), "census")
    assert "No rung reproduces" in none and "not EMM's gain" in none


def test_published_code_csv_is_read_or_reported_missing(tmp_path):
    assert ladder.published_code(tmp_path / "none.csv") is None
    assert "not been run yet" in ladder.agreement(pd.DataFrame(), None)
    f = tmp_path / "pc.csv"
    pd.DataFrame({"commit": ["abcdef123"] * 2, "seed": [0, 1], "model": ["TM-1"] * 2, "task": ["income"] * 2,
                  "test_auc": [0.94, 0.95]}).to_csv(f, index=False)
    pub = ladder.published_code(f)
    assert pub.iloc[0]["mean"] == pytest.approx(0.945) and pub.iloc[0]["n"] == 2
    t = pd.DataFrame({"rung": ["published"], "task": ["income"], "tm1": [0.944], "tm1_lo": [0.94],
                      "tm1_hi": [0.948]})
    assert "agrees within the spread" in ladder.agreement(t, pub)
    assert "differs" in ladder.agreement(t.assign(tm1=0.93, tm1_lo=0.925, tm1_hi=0.935), pub)
    one = ladder.published_code(f).assign(n=1, min=0.94, max=0.94, mean=0.94)  # one seed each: no verdict
    text = ladder.agreement(t.assign(tm1_lo=np.nan, tm1_hi=np.nan), one)
    assert "no spread to judge a difference of +0.0040" in text and "differs" not in text
    pd.DataFrame({"seed": [0]}).to_csv(f, index=False)
    with pytest.raises(ValueError, match="lacks columns"):
        ladder.published_code(f)


def test_the_limitations_chapter_names_every_flag():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "book" / "limitations.md").read_text()
    from emm_lib.study.shared.glossary import FLAGS

    for flag in config.PROTOCOL_FLAGS:  # a table row per flag, in words, with the rungs where it is on
        on = [i + 1 for i, (_, flags) in enumerate(config.RUNGS) if flag in flags]
        row = next(line for line in text.splitlines() if line.startswith(f"| {FLAGS[flag]} (`{flag}`) |"))
        assert row.endswith(f"| {on[0]}–{on[-1]} |" if len(on) > 1 else f"| {on[0]} |"), row
    for i, (rung, _) in enumerate(config.RUNGS):
        assert f"{i + 1}. `{rung}`:" in text, rung


def test_weak_trained_models_are_not_judged_when_ours_is_below_the_paper():
    t = pd.DataFrame({"rung": ["published", "ours"], "off": [[], ["x"]], "on": [[], []], "n_seeds": [2, 2],
                      "tm_mean": [0.6, 0.5], "emm": [0.6, 0.5], "gain_verdict": ["no detectable difference"] * 2,
                      "task": ["income"] * 2})
    p = ladder.picture(t, "census")  # tiny budgets: ours (0.5) is below the paper's TM mean (0.919)
    assert p.weak_tm.isna().all() and not p.paper_picture.any()
    assert "cannot be judged" in ladder.answer(p, "census")
    syn = ladder.picture(t.assign(tm_mean=[0.48, 0.5]), "synthetic")  # 0.48 <= 0.5 - weak_tm_drop
    assert list(syn.weak_tm) == [True, False]


def test_synthetic_section_uses_the_generators_correlation():
    import inspect

    from emm_lib.data.synthetic import make_synthetic

    default = inspect.signature(make_synthetic).parameters["correlation"].default
    assert config.AUTHORS_PROTOCOL["synthetic"]["correlation"] == default  # study.load_dataset uses the default


def test_ray_executor_gives_the_local_replay_rows_bit_for_bit(tmp_path):
    pytest.importorskip("ray")
    kw = dict(seeds=[0], epochs=1, max_train_rows=2000)
    local = study.settings("synthetic", "tiny", results_dir=str(tmp_path / "local"), **kw)
    on_ray = study.settings("synthetic", "tiny", results_dir=str(tmp_path / "ray"), **kw)
    a = authors.run(local, ["published"])
    b = authors.run(on_ray, ["published"], executor="ray")
    key = ["dataset", "model", "task", "seed", "metric"]
    a, b = a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True)
    assert a[key].equals(b[key]) and (a.value.to_numpy() == b.value.to_numpy()).all()
    assert len(authors.run(on_ray, ["published"], executor="ray")) == len(b)  # resumed: nothing retrained


def test_cli_runs_the_replay_and_writes_its_variances(tmp_path, capsys):
    study.main(["authors", "--dataset", "synthetic", "--profile", "tiny", "--seeds", "0", "--rungs", "ours",
                "--results-dir", str(tmp_path)])
    out = tmp_path / "tiny"
    df = study.results.read(out / "authors_protocol.csv")
    assert set(df.dataset) == {"synthetic/rung-no_published_training_loop"}  # ours on synthetic = that rung
    assert (out / authors.PAIR_VARIANCES).exists() and str(out / authors.PAIR_VARIANCES) in capsys.readouterr().out
    with pytest.raises(SystemExit):  # the replay's models are TM-1, TM-2, MMoE, PLE and EMM
        study.main(["authors", "--models", "aitm", "--profile", "tiny", "--results-dir", str(tmp_path)])


def test_progress_logs_name_the_rung():
    assert str(Run(authors.EXPERIMENT, "emm", 3, rung="published")) == \
        "authors_protocol: emm (2 tasks, paper, rung published) seed 3"
    assert "rung" not in str(Run("table1", "emm", 0))


def test_ladder_figure_names_only_the_reference_marks_it_draws():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from emm_lib.study.replay import plots_protocol

    t = pd.DataFrame({"rung": ["published", "ours"], "task": ["t1", "t1"]})
    for col, v in (("tm1", 0.9), ("tm2", 0.91), ("emm", 0.905), ("gain", 0.0), ("vs_best", -0.01)):
        t[col], t[f"{col}_lo"], t[f"{col}_hi"] = v, v - 0.01, v + 0.01
    fig = plots_protocol.ladder(t, None, None, title="Synthetic")
    assert fig._suptitle.get_text() == "Synthetic  (bars: 95% CI)"  # no paper on synthetic data: no "dashed"
    assert not [ln for ax in fig.axes for ln in ax.lines if ln.get_linestyle() == "--"]
    plt.close(fig)
    fig = plots_protocol.ladder(t, dict(ladder.PAPER), None, title="Census")
    assert "dashed: the paper" in fig._suptitle.get_text() and "dotted" not in fig._suptitle.get_text()
    plt.close(fig)


def test_published_code_rows_record_the_split_and_torch_seed_of_their_seed():
    """Each committed row names the published code's split random_state and torch seed (README: Seeds),
    so another run of the published code can be lined up by them; the reader still works."""
    path = Path(__file__).resolve().parents[2] / "results" / "paper" / "published_code.csv"
    d = pd.read_csv(path, dtype={"commit": str})
    assert {"split_random_state", "torch_seed"} <= set(d.columns)
    assert (d.split_random_state == d.seed).all() and (d.torch_seed == d.seed).all()
    assert ladder.published_code(path).n.min() == d.seed.nunique()
    run_sh = (path.parents[2] / "scripts" / "published_code" / "run.sh").read_text()
    assert "split_random_state=seed, torch_seed=seed" in run_sh and "random_state=$SEED" in run_sh


def test_table2_variants_and_task_counts_extend_the_replay(tmp_path):
    """Out of sample: Table II's variants reuse the rung's trained models (only EMM is trained
    again), and more task counts run every model of the replay on the first k tasks under their own key."""
    st = study.settings("synthetic", "tiny", results_dir=str(tmp_path), seeds=[0], epochs=1, max_train_rows=2000)
    runs = authors.plan(st, ["ours"], variants="table2", task_counts=[2, 3])
    assert [r.label for r in runs if r.n_tasks == 2][-3:] == list(config.AUTHORS_PROTOCOL["variants"])
    assert {r.label for r in runs if r.n_tasks == 3} >= {"tm1:t3", "tm2:t3", "mmoe", "ple", "emm"}
    assert not any(r.label.startswith("emm:") for r in runs if r.n_tasks == 3)
    with pytest.raises(ValueError, match="Unknown replay variant"):
        authors.plan(st, variants=["emm:nope"])
    calls = []
    df = authors.run(st, ["ours"], log=calls.append, variants="table2")
    assert len(calls) == 7 + 3  # the replay's 7 runs, then the 3 variants on its trained models
    s = df[df.model.str.startswith("emm:")].set_index("model").settings.map(json.loads)
    assert s["emm:baseline"].iloc[0]["options"]["pretrained"] is False
    assert s["emm:+p"].iloc[0]["options"]["use_mtm"] is False
    v = authors.view(df, "synthetic", ["ours"])
    assert {"emm:baseline", "emm:+mtm", "emm:+p"} <= set(v.model)
    pv = authors.pair_variances(st, ["ours"])
    assert {"emm:+p", "emm:baseline"} <= set(pv.model_a) | set(pv.model_b)
    study.main(["authors", "--dataset", "synthetic", "--profile", "tiny", "--seeds", "0", "--rungs", "ours",
                "--task-counts", "3", "--epochs", "1", "--results-dir", str(tmp_path)])
    df3 = authors.read(st)
    assert "synthetic/3-tasks/rung-no_published_training_loop" in set(df3.dataset)
    assert len(df3[df3.dataset == "synthetic/rung-no_published_training_loop"]) == len(df)  # 2 tasks kept


def test_variants_at_new_seeds_keep_table1_at_the_profile_seeds(tmp_path):
    """Table II's variants need their seed's trained-model checkpoints; where a CPU cannot rebuild those
    (other kernels give another trajectory), they run at new seeds with ``models=["emm"]``: the trained
    models and EMM only, no baselines. Table I keeps the profile's seeds; the variants keep all of theirs."""
    st = study.settings("synthetic", "tiny", results_dir=str(tmp_path), seeds=[0], epochs=1, max_train_rows=2000)
    runs = authors.plan(st, ["ours"], variants="table2", models=["emm"])
    assert [r.label for r in runs] == ["tm1:t1", "tm2:t1", "tm1:t2", "tm2:t2", "emm",
                                       *config.AUTHORS_PROTOCOL["variants"]]
    with pytest.raises(ValueError, match="Unknown replay model"):
        authors.plan(st, ["ours"], models=["aitm"])
    study.main(["authors", "--dataset", "synthetic", "--profile", "tiny", "--seeds", "3", "--rungs", "ours",
                "--variants", "table2", "--models", "emm", "--epochs", "1", "--results-dir", str(tmp_path)])
    everything = pd.read_csv(tmp_path / "tiny" / f"{authors.EXPERIMENT}.csv")
    assert set(everything.seed) == {3} and "mmoe" not in set(everything.model)
    seen = authors.read(st)  # the profile's seeds are (0,): only the variants of seed 3 show
    assert set(seen.model) == set(config.AUTHORS_PROTOCOL["variants"]) and set(seen.seed) == {3}


def test_out_of_sample_judges_each_table2_number_and_compares_it_with_the_prediction(tmp_path):
    from emm_lib.study.replay import out_of_sample

    st = study.settings("census", "paper", results_dir=str(tmp_path))
    means = {"emm:baseline": 0.92, "emm:+mtm": 0.932, "emm:+p": 0.942, "emm": 0.943}
    v = pd.DataFrame([dict(dataset="census/rung-paper", model=m, task=t, seed=s, metric="test_auc",
                           value=(mu if t == "income" else 0.9935) + 0.001 * (s - 2))
                      for m, mu in means.items() for t in ("income", "marital") for s in range(5)])
    pv = pd.DataFrame(columns=["dataset", "seed", "task", "model_a", "model_b", "var_diff"])
    t = out_of_sample.table2(st, v, pv).set_index(["row", "task"])
    assert t.loc[("baseline", "income"), "verdict"] == "inconsistent" and t.loc[("baseline", "income"), "held"]
    assert t.loc[("baseline+MTM", "income"), "verdict"] == "consistent"
    assert t.loc[("baseline+p", "income"), "verdict"] == "inconsistent"
    assert t.loc[("EMM", "income"), "predicted"] == "fitted" and t.loc[("EMM", "income"), "held"] is None
    text = out_of_sample.summary(t.reset_index(), pd.DataFrame(), out_of_sample.figure3(st))
    assert "predictions written before the runs held" in text and "Figure 3" in text
    assert "not run" in out_of_sample.pretty_table2(out_of_sample.table2(st, v.iloc[:0], pv)).iloc[0, 2]
    one = out_of_sample.table2(st, v[v.seed == 0], pv)
    assert set(one[one.predicted != "fitted"].verdict) == {"not judged (1 seed)"}
    assert "Not judged (1 seed)" in out_of_sample.summary(one, pd.DataFrame(), out_of_sample.figure3(st))
    text = out_of_sample.abstract(t.reset_index(), pd.DataFrame())
    assert text.startswith("Not answered yet") and "rung" not in text
    assert out_of_sample.seeds_note(t.reset_index()) == ""  # Table II at Table I's seeds: nothing to say
    moved = v[~v.model.str.startswith("emm:") | v.seed.isin([0, 1])]
    moved = pd.concat([moved, v[v.model.str.startswith("emm:") & (v.seed == 2)].assign(seed=5)])
    note = out_of_sample.seeds_note(out_of_sample.table2(st, moved, pv))
    assert "ran at seeds 0, 1 and 5; Table I's at 0, 1, 2, 3 and 4" in note and "new seeds 5" in note


def test_a_frozen_feature_that_is_a_task_is_dropped_for_emm_only():
    """Census's 4th task is 'sex': the published code's frozen 'sex' table has no input to act on, so at
    4 tasks EMM is built without it and its identity says the flag was dropped; the trained models and
    fewer tasks keep the rung as it is."""
    st = authors.settings("census", "paper", seeds=[0])
    runs = {(r.label, r.n_tasks): r for r in authors.plan(st, ["paper"], task_counts=[3, 4])}
    at4, at3 = authors.identity(runs[("emm", 4)], st), authors.identity(runs[("emm", 3)], st)
    assert "frozen_features" not in at4["options"] and "frozen_sex_embedding" in at4["dropped_flags"]
    assert at3["options"]["frozen_features"] == ("sex",) and at3["dropped_flags"] == []
    tm = authors.identity(runs[("tm1:sex", 4)], st)
    assert tm["dropped_flags"] == [] and "frozen_sex_embedding" in tm["flags"]


def test_figure3_table_for_the_page_uses_labels():
    """Chapter 08's Figure 3 table: model labels, not internal names, and five columns that fit the page."""
    from emm_lib.study.replay import out_of_sample

    f3 = pd.DataFrame([dict(n_tasks=3, task="income", emm=0.939, seeds_emm=5, best_baseline="ple", baseline=0.933,
                            seeds_baseline=5, emm_leads=True, diff=0.006, half=0.0053, predicted="leads", held=True)])
    p = out_of_sample.pretty_figure3(f3)
    assert list(p.columns) == ["EMM (seeds)", "better baseline (seeds)", "EMM − better (95% over seeds)",
                               "prediction (written for 3 tasks; others by its rule)"]
    assert p.iloc[0].tolist() == ["0.9390 (5)", "PLE 0.9330 (5)", "+0.0060 ± 0.0053", "EMM leads: held"]


def test_figure3_reads_each_task_counts_own_seeds(tmp_path):
    """A Figure 3 point whose seed was replaced (config.REPLAY_OUT_OF_SAMPLE["figure3"]["seeds"]) counts the
    replacement, and not the seed it replaces, even outside the profile's seeds."""
    from emm_lib.study.replay import out_of_sample
    from emm_lib.study.shared import results

    st = authors.settings("census", "paper", results_dir=str(tmp_path))
    seeds = config.REPLAY_OUT_OF_SAMPLE["figure3"]["seeds"][4]
    rows = [dict(dataset="census/4-tasks/rung-paper", profile="paper", model=m, task="income", seed=s,
                 metric="test_auc", value=0.93 + (0.002 if m == "emm" else 0.0), best_epoch=1, train_seconds=1.0,
                 git_commit="abc", torch_version="x", device="cpu", settings="{}", timestamp="t")
            for m in ("emm", "mmoe", "ple") for s in (0, 1, 2, 3, 4, 5)]
    st.out_dir.mkdir(parents=True)
    pd.DataFrame(rows, columns=results.COLUMNS).to_csv(st.out_dir / f"{authors.EXPERIMENT}.csv", index=False)
    f3 = out_of_sample.figure3(st, task_counts=[4])
    assert f3.seeds_emm.tolist() == [len(seeds)] and 1 not in seeds and 5 in seeds
    assert bool(f3.emm_leads.iloc[0])


def test_figure3_judges_the_prediction_written_before_the_runs(tmp_path):
    """Figure 3's prediction (config "prediction_by_task"): on income EMM's mean leads; elsewhere the paired
    difference over seeds stays within its 95% t interval. A clear lead elsewhere misses it, in EMM's favour."""
    from emm_lib.study.replay import out_of_sample
    from emm_lib.study.shared import results

    st = authors.settings("census", "paper", results_dir=str(tmp_path))
    noise = [0.001, -0.002, 0.0015, -0.0005, 0.0]
    gaps = {"income": -0.0003, "marital": 0.0, "education": 0.01}  # EMM − MMoE per task, before the noise
    rows = [dict(dataset="census/3-tasks/rung-paper", profile="paper", model=m, task=t, seed=s, metric="test_auc",
                 value=0.9 + (gaps[t] + noise[s] if m == "emm" else 0.0) - (0.01 if m == "ple" else 0.0),
                 best_epoch=1, train_seconds=1.0, git_commit="abc", torch_version="x", device="cpu",
                 settings="{}", timestamp="t")
            for m in ("emm", "mmoe", "ple") for t in gaps for s in range(5)]
    st.out_dir.mkdir(parents=True)
    pd.DataFrame(rows, columns=results.COLUMNS).to_csv(st.out_dir / f"{authors.EXPERIMENT}.csv", index=False)
    f3 = out_of_sample.figure3(st, task_counts=[3]).set_index("task")
    assert f3.loc["income", "predicted"] == "leads" and not f3.loc["income", "held"]  # behind by 0.0003 + noise
    assert f3.loc["marital", "predicted"] == "within the seed spread" and f3.loc["marital", "held"]
    assert not f3.loc["education", "held"] and f3.loc["education", "diff"] > f3.loc["education", "half"]
    text = out_of_sample._figure3_prediction(f3.reset_index())
    assert "held on 1 of 3 tasks" in text and "ahead by more than the spread on education" in text
    assert "behind on income" in text and "holds at this rung on 2 of 3 tasks" in text
