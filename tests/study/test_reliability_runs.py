"""Reliability of runs: no recorded row is lost or silently replaced, a notebook run never
overwrites its source, and a study waiting on a claim says so and does not wait forever."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from emm_lib.study.shared import execution, results, runner, runs
from emm_lib import study

REPO = Path(__file__).resolve().parents[2]
TINY = ["--dataset", "synthetic", "--profile", "tiny", "--seeds", "0", "--task-counts", "2"]


def _st(tmp_path, **kw):
    return study.settings("synthetic", "tiny", results_dir=str(tmp_path), seeds=[0], **{"epochs": 1, **kw})


def _complete(tmp_path, models=("mmoe", "emm")):
    """A finished tiny study: 4 trained models and ``models`` on 2 synthetic tasks, seed 0."""
    st = _st(tmp_path)
    study.run_experiment("synthetic_tasks", st, models=list(models), task_counts=[2])
    return st


def _runs_of(df: pd.DataFrame) -> dict:
    """{(dataset, model, seed): sorted (task, metric, value, timestamp) rows} of a results table."""
    return {k: sorted(map(tuple, g[["task", "metric", "value", "timestamp"]].to_numpy().tolist()))
            for k, g in df.groupby(["dataset", "model", "seed"])}


def _study_killed_after_first_run(tmp_path, *args) -> None:
    """Start the study CLI, SIGKILL it as soon as its first run is written (the next one is training)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "emm_lib.study", "synthetic_tasks", *TINY, "--results-dir", str(tmp_path), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if re.search(r" in \d+\.\ds", line):  # "  single_task: tm1:t1 (...) seed 0 in 0.2s"
                os.kill(proc.pid, signal.SIGKILL)
                break
        proc.wait(60)
        assert proc.returncode == -signal.SIGKILL, f"the study ended before it was killed: {''.join(lines)}"
    finally:
        if proc.poll() is None:
            proc.kill()


# --- D1: --on-change rerun replaces a run's rows only when the new ones are written ------------------

def test_rerun_killed_mid_study_keeps_every_run_old_or_new(tmp_path):
    st = _complete(tmp_path, models=("mmoe",))
    before = {n: _runs_of(results.read(st.out_dir / f"{n}.csv")) for n in ("single_task", "synthetic_tasks")}
    _study_killed_after_first_run(tmp_path, "--models", "mmoe", "--epochs", "2", "--on-change", "rerun")
    replaced = 0
    for name, old in before.items():
        now = _runs_of(results.read(st.out_dir / f"{name}.csv"))
        assert set(now) == set(old), f"{name}.csv lost runs: {set(old) - set(now)}"
        for key, rows in now.items():
            assert len(rows) == len(old[key])  # a run's rows are all old or all new, never a part
            replaced += rows != old[key]
    assert replaced >= 1  # the first run was replaced before the kill


def test_rerun_replaces_rows_in_one_write_and_a_racing_writer_is_refused(tmp_path):
    st = _complete(tmp_path, models=("mmoe",))
    path = st.out_dir / "synthetic_tasks.csv"
    old = results.read(path)
    new = old.assign(value=0.5, timestamp="later")
    results.replace_run(path, new.to_dict("records"), expected=old)
    assert (results.read(path).value == 0.5).all() and len(results.read(path)) == len(old)
    with pytest.raises(results.DuplicateRun, match="meanwhile"):  # the rows are no longer those judged
        results.replace_run(path, old.to_dict("records"), expected=old)


# --- D2: a trained model whose checkpoint is missing ------------------------------------------------

def _fresh_clone(st, tamper: str | None = None) -> pd.DataFrame:
    """As a fresh clone sees the results: no checkpoints, no EMM rows; ``tamper``: that trained model's
    recorded test AUC made elsewhere (another machine, another commit). Returns single_task.csv."""
    shutil.rmtree(st.out_dir / "checkpoints")
    results.remove(st.out_dir / "synthetic_tasks.csv", model="emm")
    path = st.out_dir / "single_task.csv"
    if tamper:
        df = results.read(path)
        hit = (df.model == tamper) & (df.metric == "test_auc")
        df.loc[hit, "value"] = df.loc[hit, "value"] + 0.01
        df.loc[hit, "git_commit"] = "0123456789ab"
        df.to_csv(path, index=False)
    return results.read(path)


def test_a_missing_checkpoint_that_reproduces_its_rows_keeps_them(tmp_path, monkeypatch):
    st = _complete(tmp_path)
    single = _fresh_clone(st)
    monkeypatch.setattr(runner, "_pause", lambda s: pytest.fail("waited with nothing claimed elsewhere"))
    history = next((st.out_dir / "histories" / "single_task").iterdir())
    recorded_history = history.read_bytes()
    df = study.run_experiment("synthetic_tasks", st, models=["emm"], task_counts=[2])
    assert results.read(st.out_dir / "single_task.csv").equals(single)  # not rewritten: same timestamps
    assert history.read_bytes() == recorded_history
    assert (df.model == "emm").sum() == 4
    assert study.checkpoint_path(st, "single_task", study.load_dataset(st), 0, "tm2:t2").with_suffix(".pt").exists()


def test_an_emm_run_missing_its_trained_models_has_them_trained_next_not_after_the_rest(tmp_path, monkeypatch):
    """A fresh clone (rows, no checkpoints): EMM's chain (its trained models, then EMM) runs before
    the runs planned after EMM, not at the end of the whole plan."""
    st = _complete(tmp_path, models=("emm",))
    _fresh_clone(st)
    monkeypatch.setattr(runner, "_pause", lambda s: pytest.fail("waited with nothing claimed elsewhere"))
    plan = [r for r in study.plan(["synthetic_tasks"], st, ["emm", "mmoe"], [2]) if not r.is_trained_model]
    assert [r.label for r in plan] == ["emm", "mmoe"]
    order: list[str] = []
    runner.execute_plan(plan, st, log=lambda m: order.append(m.split()[1]))
    assert order == ["tm1:t1", "tm2:t1", "tm1:t2", "tm2:t2", "emm", "mmoe"]


def test_a_missing_checkpoint_that_does_not_reproduce_its_rows_stops_naming_the_choice(tmp_path):
    st = _complete(tmp_path)
    single = _fresh_clone(st, tamper="tm2:t2")
    with pytest.raises(runs.SettingsChanged, match=r"tm2:t2.*--on-change rerun"):
        study.run_experiment("synthetic_tasks", st, models=["emm"], task_counts=[2])
    assert results.read(st.out_dir / "single_task.csv").equals(single)  # nothing replaced
    assert not (results.read(st.out_dir / "synthetic_tasks.csv").model == "emm").any()
    ck = study.checkpoint_path(st, "single_task", study.load_dataset(st), 0, "tm2:t2")
    assert not ck.with_suffix(".pt").exists()  # no checkpoint that disagrees with its rows
    # the named choice: replace the rows with the retrained model's
    rerun = _st(tmp_path, on_change="rerun")
    study.run_experiment("synthetic_tasks", rerun, models=["emm"], task_counts=[2])
    now, was = _runs_of(results.read(st.out_dir / "single_task.csv")), _runs_of(single)
    assert set(now) == set(was) and {k[1] for k in now if now[k] != was[k]} == {"tm2:t2"}


def test_a_missing_checkpoint_killed_mid_rebuild_loses_no_row(tmp_path):
    st = _complete(tmp_path)
    single = _fresh_clone(st, tamper="tm2:t2")
    _study_killed_after_first_run(tmp_path, "--models", "emm")
    assert results.read(st.out_dir / "single_task.csv").equals(single)


def test_the_cli_refuses_in_one_line_naming_the_choice(tmp_path):
    st = _complete(tmp_path)
    single = _fresh_clone(st, tamper="tm1:t1")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "emm_lib.study", "synthetic_tasks", *TINY, "--results-dir", str(tmp_path),
           "--models", "emm"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "--on-change rerun" in out.stderr.strip().splitlines()[-1]
    assert results.read(st.out_dir / "single_task.csv").equals(single)


# --- D3: a notebook run never writes over its input ---------------------------------------------------

@pytest.mark.parametrize("how", ["same", "relative", "symlink", "hardlink"])
def test_run_notebook_refuses_to_overwrite_its_input(tmp_path, monkeypatch, capsys, how):
    from emm_lib.study.book import run_notebook

    nb = tmp_path / "nb.ipynb"
    nb.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    out = {"same": nb, "relative": Path("sub/../nb.ipynb"), "symlink": tmp_path / "link.ipynb",
           "hardlink": tmp_path / "hard.ipynb"}[how]
    if how == "symlink":
        out.symlink_to(nb)
    if how == "hardlink":
        os.link(nb, out)
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    before = nb.read_bytes()
    assert run_notebook.main([str(nb), str(out), "-p", "profile", "tinyy"]) == 2
    err = capsys.readouterr().err
    assert "is the input notebook" in err and err.count("\n") == 1
    assert nb.read_bytes() == before


def test_papermill_run_refuses_to_overwrite_its_input(tmp_path):
    nb = tmp_path / "nb.ipynb"
    nb.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    before = nb.read_bytes()
    out = subprocess.run([sys.executable, "-m", "emm_lib.study.book.papermill_run", str(nb), str(nb)], capture_output=True,
                         text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert out.returncode != 0 and "is the input notebook" in out.stderr and "Traceback" not in out.stderr
    assert nb.read_bytes() == before


# --- silent hangs: claims go stale by heartbeat; a waiting study says what it waits for -------------

RUN = runs.Run("e", "mmoe", 0)


def _foreign_claim(tmp_path, age: float = 0.0, **holder) -> Path:
    path = tmp_path / ".claims" / "e" / "d__seed0__mmoe.claim"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "since": time.time() - age,
                                "token": "someone-else", **holder}))
    os.utime(path, (time.time() - age, time.time() - age))
    return path


@pytest.mark.parametrize("holder", [{}, {"host": "elsewhere"}, {"pid": os.getpid()}])
def test_a_claim_whose_heartbeat_stopped_is_taken_over(tmp_path, holder):
    """A live pid, another host, or our own pid (a restarted container): stale once the heartbeat stopped."""
    _foreign_claim(tmp_path, age=runs.CLAIM_STALE_SECONDS + 5, **holder)
    with runs.claim(tmp_path, RUN, "d") as got:
        assert got


@pytest.mark.parametrize("holder", [{}, {"host": "elsewhere"}])
def test_a_claim_with_a_fresh_heartbeat_is_held(tmp_path, holder):
    _foreign_claim(tmp_path, **holder)
    with runs.claim(tmp_path, RUN, "d") as got:
        assert not got


def test_a_claim_with_our_pid_but_not_our_token_is_stale(tmp_path):
    _foreign_claim(tmp_path, pid=os.getpid())  # a container restarted with the same pids; exec'd wrapper
    with runs.claim(tmp_path, RUN, "d") as got:
        assert got


def test_a_held_claim_keeps_its_heartbeat(tmp_path, monkeypatch):
    monkeypatch.setattr(runs.claims, "HEARTBEAT_SECONDS", 0.05)
    with runs.claim(tmp_path, RUN, "d") as got:
        assert got
        path = next((tmp_path / ".claims").rglob("*.claim"))
        os.utime(path, (0, 0))
        time.sleep(0.5)
        assert time.time() - path.stat().st_mtime < 5
    assert not path.exists()


def test_a_waiting_study_says_what_it_waits_for_then_takes_a_stale_claim(tmp_path, monkeypatch, capsys):
    st = _st(tmp_path)
    tm = runs.Run("single_task", "tm1:t1", 0, 2, "paper")
    held = runs.claims.claim_path(st.out_dir, tm, execution.run_key(tm, st))
    held.parent.mkdir(parents=True)
    held.write_text(json.dumps({"pid": 1, "host": "gpu-box-7", "since": time.time(), "token": "x"}))
    sleeps = []

    def sleep(seconds):  # the claim's holder is gone: after the first wait its heartbeat grows old
        sleeps.append(seconds)
        assert len(sleeps) < 5, "still waiting on a claim whose heartbeat stopped"
        old = time.time() - runs.CLAIM_STALE_SECONDS - 5
        os.utime(held, (old, old))

    monkeypatch.setattr(runner, "_pause", sleep)
    runner.execute_plan([tm], st, poll_seconds=0.01)
    err = capsys.readouterr().err
    assert str(held) in err and "gpu-box-7" in err and "pid 1" in err and "delete" in err
    assert len(results.read(st.out_dir / "single_task.csv")) == 2


class _SlowRay:
    """A stand-in for ``ray`` whose local start times out ``fails`` times (Ray's fixed 30 s wait)."""

    def __init__(self, fails: int):
        self.fails, self.inits, self.shutdowns = fails, 0, 0

    def init(self, **kw):
        self.inits += 1
        if self.inits <= self.fails:
            raise Exception("The current node timed out during startup. This could happen because ...")

    def shutdown(self):
        self.shutdowns += 1


def test_a_local_ray_that_starts_late_is_started_again_then_named():
    from emm_lib.study.shared.ray_executor import _init

    said = []
    ray = _SlowRay(fails=2)
    _init(ray, {"num_cpus": 2}, said.append)
    assert ray.inits == 3 and ray.shutdowns == 2 and len(said) == 2 and "try 1 of 3" in said[0]
    with pytest.raises(RuntimeError, match="did not start in 3 tries.*--executor local"):
        _init(_SlowRay(fails=3), {"num_cpus": 2}, said.append)
    with pytest.raises(Exception, match="timed out during startup"):  # a cluster address: no silent retry
        _init(_SlowRay(fails=1), {"address": "head:6379"}, said.append)


def test_the_injected_parameters_are_folded_like_the_notebooks_own(tmp_path):
    import nbformat

    from emm_lib.study.book import run_notebook

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["injected-parameters"]}),
                nbformat.v4.new_code_cell("print(x)")]
    path = tmp_path / "out.ipynb"
    nbformat.write(nb, str(path))
    run_notebook.fold_parameters(str(path))
    cells = nbformat.read(str(path), as_version=4).cells
    assert cells[0].metadata.tags == ["injected-parameters", "hide-input"]
    assert "tags" not in cells[1].metadata or "hide-input" not in cells[1].metadata.tags


# --- a run stopped mid-training resumes from its saved epoch ----------------------------------------

def _epochs_trained(monkeypatch, stop_after: int | None = None) -> dict:
    """Count fit()'s epochs; with ``stop_after``, raise at the epoch after that many (a stopped process)."""
    from emm_lib import train

    real, n = train._train_epoch, {"n": 0}

    def epoch(*a, **k):
        if stop_after is not None and n["n"] >= stop_after:
            raise KeyboardInterrupt
        n["n"] += 1
        return real(*a, **k)

    monkeypatch.setattr(train, "_train_epoch", epoch)
    return n


def test_a_study_run_stopped_mid_training_resumes_from_its_saved_epoch(tmp_path, monkeypatch):
    monkeypatch.setattr(execution, "RESUME_EVERY_S", 0.0)
    kw = dict(epochs=3, patience=None)
    with monkeypatch.context() as m:
        whole = _epochs_trained(m)
        study.run_experiment("synthetic_tasks", _st(tmp_path / "whole", **kw), models=["mmoe"], task_counts=[2])
    with monkeypatch.context() as m:
        _epochs_trained(m, stop_after=2)  # the first run (a trained model) is stopped in its third epoch
        with pytest.raises(KeyboardInterrupt):
            study.run_experiment("synthetic_tasks", _st(tmp_path / "cut", **kw), models=["mmoe"], task_counts=[2])
    saved = list((tmp_path / "cut").rglob("*.resume.pt"))
    assert len(saved) == 1
    with monkeypatch.context() as m:
        resumed = _epochs_trained(m)
        study.run_experiment("synthetic_tasks", _st(tmp_path / "cut", **kw), models=["mmoe"], task_counts=[2])
    assert resumed["n"] == whole["n"] - 2  # the two saved epochs are not trained again
    assert not list((tmp_path / "cut").rglob("*.resume.pt"))
    for name in ("single_task", "synthetic_tasks"):
        a, b = (results.read(tmp_path / d / "tiny" / f"{name}.csv") for d in ("whole", "cut"))
        key = ["dataset", "model", "task", "seed", "metric"]
        a, b = a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True)
        assert a[key + ["value", "best_epoch"]].equals(b[key + ["value", "best_epoch"]])
