"""The study runner: resumable experiments, tidy rows, summaries, paired tests."""
import pandas as pd
import torch
import pytest

from emm_lib import study


@pytest.fixture
def st(tmp_path):
    return study.settings("synthetic", "tiny", results_dir=str(tmp_path), seeds=[0, 1], epochs=1)


def test_settings_reject_unknown_keys_and_profiles():
    with pytest.raises(ValueError, match="Unknown study setting"):
        study.settings("census", "tiny", learning_rat=1)
    with pytest.raises(ValueError, match="Known profiles"):
        study.settings("census", "huge")
    with pytest.raises(ValueError, match="seeds"):
        study.settings("census", "tiny", seeds=[])


def test_settings_describe_themselves_in_words():
    text = study.settings("census", "tiny", seeds=[3], epochs=1, device="cpu").describe()
    assert "Census-Income" in text and "seed 3;" in text and "up to 1 epoch," in text
    assert "20,000 training rows" in text and "device cpu" in text and "StudySettings" not in text
    assert "seeds 0, 1" in study.settings("synthetic", "default", seeds=[0, 1]).describe()


def test_experiment_runs_once_and_resumes(st):
    calls = []
    df = study.run_experiment("synthetic_tasks", st, models=["mmoe", "emm"], task_counts=[2], log=calls.append)
    assert set(df.model) == {"mmoe", "emm"} and set(df.seed) == {0, 1}
    assert set(df.metric) == {"test_auc", "val_auc"}
    n_rows, n_calls = len(df), len(calls)
    assert n_calls == 2 * 4 + 2 * 2  # 4 trained models and 2 multi-task models per seed
    again = study.run_experiment("synthetic_tasks", st, models=["mmoe", "emm"], task_counts=[2], log=calls.append)
    assert len(again) == n_rows and len(calls) == n_calls  # nothing retrained
    single = study.results.read(st.out_dir / "single_task.csv")
    assert set(single.model) == {"tm1:t1", "tm2:t1", "tm1:t2", "tm2:t2"}
    assert study.checkpoint_path(st, "synthetic_tasks", study.load_dataset(st), 0, "emm").with_suffix(".pt").exists()


def test_require_trained_names_the_notebook(st):
    with pytest.raises(FileNotFoundError, match="02-single-task"):
        study.run_experiment("synthetic_tasks", st, models=["emm"], task_counts=[2], require_trained=True)


def test_unknown_experiment_and_model(st):
    with pytest.raises(ValueError, match="Known"):
        study.run_experiment("table9", st)
    with pytest.raises(ValueError, match="Unknown model label"):
        study.run_experiment("table1", st, models=["gpt"])
    with pytest.raises(ValueError, match="task counts"):
        study.run_experiment("figure3", st, task_counts=[7])


def _rows(model, task, values):
    return [{"dataset": "d", "model": model, "task": task, "seed": s, "metric": "test_auc", "value": v,
             "train_seconds": 1.0, "best_epoch": 1} for s, v in enumerate(values)]


def test_summaries_gain_and_paired_test():
    df = pd.DataFrame(_rows("tm1:a", "a", [0.80, 0.82]) + _rows("tm2:a", "a", [0.70, 0.72])
                      + _rows("emm", "a", [0.90, 0.93]) + _rows("mmoe", "a", [0.85, 0.86]))
    s = study.table_with_gain(df).set_index("model")
    assert s.loc["emm", "mean"] == pytest.approx(0.915)
    assert s.loc["emm", "gain"] == pytest.approx(0.915 - 0.76)
    t = study.paired_test(df, "emm", "mmoe").iloc[0]
    assert t.mean_diff == pytest.approx(0.06) and t.n_seeds == 2
    # a rerun of a seed counts once
    dup = pd.concat([df, pd.DataFrame(_rows("emm", "a", [0.90]))])
    assert study.summarize(dup).set_index("model").loc["emm", "n"] == 2
    table = study.pretty(study.summarize(df))
    assert table.loc["emm", "a"] == "0.9150 ± 0.0212"


# --- the runner: threads, split seeds, settings-aware resume, claims, Ray --------------------------

import json  # noqa: E402
import multiprocessing as mp  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

from emm_lib.study.shared import runs as runs_mod  # noqa: E402


def _settings_of(df):
    return [json.loads(s) for s in df.settings]


def test_threads_split_seed_and_features_are_recorded(tmp_path):
    st = study.settings("synthetic", "tiny", results_dir=str(tmp_path), seeds=[0, 1], epochs=1, threads=2)
    df = study.run_experiment("synthetic_tasks", st, models=["mmoe"], task_counts=[2])
    s = _settings_of(df)
    assert {x["torch_threads"] for x in s} == {2}  # --threads reaches the trainer
    assert {(x["split_seed"], x["n_features"]) for x in s} == {(0, 16), (1, 16)}
    # the split is drawn anew per seed: different test rows
    a, b = (study.load_dataset(st, seed=k).test.dense for k in (0, 1))
    assert not torch.equal(a, b)


def test_changed_settings_stop_with_the_setting_named_or_rerun(tmp_path):
    st = study.settings("synthetic", "tiny", results_dir=str(tmp_path), seeds=[0], epochs=1)
    study.run_experiment("synthetic_tasks", st, models=["mmoe"], task_counts=[2])
    st2 = study.settings("synthetic", "tiny", results_dir=str(tmp_path), seeds=[0], epochs=2)
    with pytest.raises(runs_mod.SettingsChanged, match=r"epochs: recorded 1, now 2"):
        study.run_experiment("synthetic_tasks", st2, models=["mmoe"], task_counts=[2])
    st3 = study.settings("synthetic", "tiny", results_dir=str(tmp_path), seeds=[0], epochs=2, on_change="rerun")
    df = study.run_experiment("synthetic_tasks", st3, models=["mmoe"], task_counts=[2])
    assert len(df[df.model == "mmoe"]) == 4  # 2 tasks x (test, val), replaced, not appended
    assert {x["epochs"] for x in _settings_of(df)} == {2}


def test_a_run_is_never_appended_twice(tmp_path):
    rows = study.results.make_rows(dataset="d", profile="p", model="m", seed=0, metrics={"test_auc": {"a": 0.5}})
    study.results.append(tmp_path / "x.csv", rows)
    with pytest.raises(study.results.DuplicateRun, match="written once"):
        study.results.append(tmp_path / "x.csv", rows)


def test_a_claim_excludes_others_and_a_dead_claim_is_taken_over(tmp_path):
    run = runs_mod.Run("e", "mmoe", 0)
    with runs_mod.claim(tmp_path, run, "d") as first:
        assert first
        with runs_mod.claim(tmp_path, run, "d") as second:  # same live pid holds it
            assert not second
    path = next((tmp_path / ".claims").rglob("*.claim"), None)
    assert path is None  # released
    dead = tmp_path / ".claims" / "e" / "d__seed0__mmoe.claim"
    dead.write_text(json.dumps({"pid": 2 ** 22 + 12345, "host": socket.gethostname()}))
    with runs_mod.claim(tmp_path, run, "d") as third:
        assert third


def test_a_claim_being_written_is_not_taken_for_a_dead_one(tmp_path):
    """An unreadable claim (empty: another process's claim half-written, as the old O_EXCL-then-write
    could show) is held, not taken over, until it is older than the grace period."""
    run = runs_mod.Run("e", "mmoe", 0)
    path = tmp_path / ".claims" / "e" / "d__seed0__mmoe.claim"
    path.parent.mkdir(parents=True)
    path.write_text("")
    with runs_mod.claim(tmp_path, run, "d") as got:
        assert not got and path.exists()
    old = time.time() - runs_mod.CLAIM_GRACE_SECONDS - 5
    os.utime(path, (old, old))
    with runs_mod.claim(tmp_path, run, "d") as got:
        assert got and json.loads(path.read_text())["pid"] == os.getpid()
    assert not [p for p in (tmp_path / ".claims").rglob("*") if p.is_file()]  # released, no temp files left


def test_racing_claims_have_one_winner(tmp_path):
    run = runs_mod.Run("e", "mmoe", 0)
    barrier, wins = threading.Barrier(16), []

    def attempt():
        barrier.wait()
        with runs_mod.claim(tmp_path, run, "d") as got:
            wins.append(got)
            time.sleep(0.2)  # hold it while the others try

    threads = [threading.Thread(target=attempt) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(wins) == 16 and sum(wins) == 1


def _worker(results_dir, q):
    st = study.settings("synthetic", "tiny", results_dir=results_dir, seeds=[0, 1], epochs=1)
    n = study.runner.execute_plan(study.plan(["synthetic_tasks"], st, ["mmoe", "emm"], [2]), st)
    q.put(n)


def test_two_processes_on_one_results_directory_train_each_run_once(tmp_path):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(tmp_path), q)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    counts = [q.get(timeout=5) for _ in procs]
    assert sum(counts) == 2 * (4 + 2)  # every run once: 4 trained models + 2 multi-task models per seed
    single = study.results.read(tmp_path / "tiny" / "single_task.csv")
    multi = study.results.read(tmp_path / "tiny" / "synthetic_tasks.csv")
    for df in (single, multi):
        assert not df.duplicated(study.results.KEY).any()
    assert len(multi) == 2 * 2 * 2 * 2  # seeds x models x tasks x metrics


def test_analysis_writes_paired_variances_for_every_pair(tmp_path):
    from emm_lib.study.shared import analysis

    st = study.settings("synthetic", "tiny", results_dir=str(tmp_path), seeds=[0], epochs=1)
    study.run_experiment("synthetic_tasks", st, models=["mmoe", "ple"], task_counts=[2])
    pv = study.results.pd.read_csv(analysis.write_pair_variances(st.out_dir))
    pair = pv[(pv.model_a.isin(["mmoe", "ple"])) & (pv.model_b.isin(["mmoe", "ple"]))]
    assert set(pair.task) == {"t1", "t2"} and (pair.var_diff > 0).all()
    df = study.results.read(st.out_dir / "synthetic_tasks.csv")
    test = df[(df.metric == "test_auc") & (df.model == "mmoe") & (df.task == "t1")].value.iloc[0]
    got = pair[(pair.task == "t1")]
    auc_mmoe = got.auc_a.iloc[0] if got.model_a.iloc[0] == "mmoe" else got.auc_b.iloc[0]
    assert auc_mmoe == pytest.approx(test, abs=1e-9)  # the saved logits are the evaluated ones


def test_refreshing_pair_variances_never_drops_a_run_made_elsewhere(tmp_path):
    """Predictions are not committed: a machine that holds the logits of some runs only recomputes
    those, and every other recorded pair keeps its row."""
    import shutil

    from emm_lib.study.shared import analysis

    st = study.settings("synthetic", "tiny", results_dir=str(tmp_path), seeds=[0, 1], epochs=1)
    study.run_experiment("synthetic_tasks", st, models=["mmoe", "ple"], task_counts=[2])
    path = analysis.write_pair_variances(st.out_dir)
    full = pd.read_csv(path)
    assert set(full.seed) == {0, 1}
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    for f in (st.out_dir / "predictions").glob("*/*seed1*.npz"):  # seed 1 ran on another machine
        shutil.move(f, moved / f.name)
    assert any(moved.iterdir())
    after = pd.read_csv(analysis.write_pair_variances(st.out_dir))
    key = analysis.PAIR_KEY
    pd.testing.assert_frame_equal(after.sort_values(key).reset_index(drop=True),
                                  full.sort_values(key).reset_index(drop=True))


def test_merged_pair_variances_drop_only_rows_of_a_model_trained_again():
    from emm_lib.study.shared.analysis import merge_pair_variances

    def rows(*r):
        return pd.DataFrame(r, columns=["key", "seed", "task", "model_a", "model_b", "auc_a", "auc_b", "var_diff"])

    old = rows(("k", 0, "t1", "emm", "mmoe", 0.90, 0.91, 1e-6), ("k", 0, "t1", "emm", "tm1:t1", 0.90, 0.92, 2e-6),
               ("k", 1, "t1", "emm", "mmoe", 0.80, 0.81, 3e-6))
    new = rows(("k", 0, "t1", "emm", "mmoe", 0.90, 0.91, 1.5e-6))  # the same emm: its pair recomputed
    out = merge_pair_variances(old, new)
    assert len(out) == 3 and out.var_diff.tolist() == [1.5e-6, 2e-6, 3e-6]
    again = rows(("k", 0, "t1", "emm", "mmoe", 0.95, 0.91, 1e-6))  # emm trained again: its other old pair is stale
    out = merge_pair_variances(old, again)
    assert out[["seed", "model_b", "var_diff"]].values.tolist() == [[0, "mmoe", 1e-6], [1, "mmoe", 3e-6]]


def test_ray_executor_gives_the_local_rows_bit_for_bit(tmp_path):
    pytest.importorskip("ray")
    local = study.settings("synthetic", "tiny", results_dir=str(tmp_path / "local"), seeds=[0], epochs=1)
    on_ray = study.settings("synthetic", "tiny", results_dir=str(tmp_path / "ray"), seeds=[0], epochs=1)
    a = study.run_experiment("synthetic_tasks", local, models=["mmoe", "emm"], task_counts=[2])
    b = study.run_experiment("synthetic_tasks", on_ray, models=["mmoe", "emm"], task_counts=[2], executor="ray")
    key = ["model", "task", "seed", "metric"]
    a, b = a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True)
    assert a[key].equals(b[key])
    assert (a.value.to_numpy() == b.value.to_numpy()).all()  # bit-identical AUCs on CPU
    # resumed on Ray: nothing is trained again
    again = study.run_experiment("synthetic_tasks", on_ray, models=["mmoe", "emm"], task_counts=[2], executor="ray")
    assert len(again) == len(b)


def test_a_damaged_trained_model_checkpoint_is_trained_again(tmp_path):
    st = study.settings("synthetic", "tiny", results_dir=str(tmp_path), seeds=[0], epochs=1)
    calls = []
    study.run_experiment("synthetic_tasks", st, models=["mmoe"], task_counts=[2], log=calls.append)
    ds = study.load_dataset(st)
    ck = study.checkpoint_path(st, "single_task", ds, 0, "tm1:t1")
    pt = next(p for p in ck.parent.iterdir() if p.name.startswith("tm1_t1") and p.suffix == ".pt")
    pt.write_bytes(b"not a checkpoint")
    calls.clear()
    with pytest.warns(UserWarning):
        study.run_experiment("synthetic_tasks", st, models=["emm"], task_counts=[2], log=calls.append)
    assert any("tm1:t1" in c for c in calls) and any("emm" in c for c in calls)
    single = study.results.read(st.out_dir / "single_task.csv")
    assert not single.duplicated(study.results.KEY).any()


def test_a_trained_model_finished_meanwhile_keeps_its_rows(tmp_path, monkeypatch):
    """Another process finishes a trained model between two looks at it (not done, then done): its
    fresh rows stay (asked twice, the old code removed them and trained the model again: 13 runs
    instead of 12 in the two-process test)."""
    from emm_lib.study.shared import execution

    st = study.settings("synthetic", "tiny", results_dir=str(tmp_path), seeds=[0], epochs=1)
    study.run_experiment("synthetic_tasks", st, models=["mmoe"], task_counts=[2])
    emm = next(r for r in study.plan(["synthetic_tasks"], st, ["emm"], [2]) if r.label == "emm")
    real, asked = execution.done, {}

    def done_on_the_second_ask(run, st_):
        if run.is_trained_model and run.label == "tm1:t1":
            asked[run] = asked.get(run, 0) + 1
            return asked[run] > 1
        return real(run, st_)

    monkeypatch.setattr(execution, "done", done_on_the_second_ask)
    before = len(study.results.read(st.out_dir / "single_task.csv"))
    trained, missing = execution.trained_for(emm, st)
    assert trained is None and [m.label for m in missing] == ["tm1:t1"]  # not done yet when asked
    assert len(study.results.read(st.out_dir / "single_task.csv")) == before  # its rows stay


def test_pair_variances_carry_the_results_labels(tmp_path):
    from emm_lib.study.shared import analysis

    st = study.settings("synthetic", "tiny", results_dir=str(tmp_path), seeds=[0], epochs=1)
    df = study.run_experiment("synthetic_tasks", st, models=["emm", "emm:soft"], task_counts=[2])
    analysis.write_pair_variances(st.out_dir)
    pv = analysis.read_pair_variances(st.out_dir, df)
    assert {"emm", "emm:soft"} <= set(pv.model_a) | set(pv.model_b)


def test_git_commit_is_read_once_per_process(monkeypatch):
    """A checkout that moves while a long study runs must not relabel rows of the code already loaded."""
    import subprocess

    from emm_lib.study.shared import results

    results.git_commit.cache_clear()
    first = results.git_commit()
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(AssertionError("git asked again")))
    assert results.git_commit() == first
