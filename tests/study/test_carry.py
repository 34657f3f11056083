"""A long map point carried across sessions (emm_lib.study.sweep.carry): a world enters the map whole or
not at all, with its paired variances computed from the carried test logits.

Files are written with the study's own writer (``runs.write``) from hand-made artifacts (no training)."""
import numpy as np
import pandas as pd
import pytest

from emm_lib.models import SingleTaskMLP
from emm_lib.study.shared import analysis, results, runs
from emm_lib.study.sweep import carry
from helpers import make_tiny_dataset

MODEL = SingleTaskMLP(make_tiny_dataset().spec, "a", block=(4, 4), n_blocks=1)  # a registered model to save

DATA, PROFILE = "synthetic-ali/rows=2000", "tiny"  # the tiny grid's data-size point
TASKS = ("click", "conversion")
LABELS = ("mmoe", "aitm:calibrated", "emm") + tuple(f"{s}:{t}" for t in TASKS for s in ("tm1", "tm2"))


def _write_run(out, label, seed, y, rng):
    tm = label.split(":")[0] in ("tm1", "tm2")
    run = runs.Run("synthetic_map_single_task" if tm else "synthetic_map", label, seed, 2, "paper", DATA)
    tasks = (label.split(":")[1],) if tm else TASKS
    cols = [TASKS.index(t) for t in tasks]
    logits = (y[:, cols] + rng.normal(0, 1.5, (len(y), len(cols)))).astype(np.float32)
    aucs = {t: float(0.6 + 0.3 * rng.random()) for t in tasks}
    rows = results.make_rows(dataset=DATA, profile=PROFILE, model=label, seed=seed,
                             metrics={"test_auc": aucs, "val_auc": aucs}, best_epoch=1, train_seconds=1.0)
    gates = pd.DataFrame({"level": [0], "task": ["click"], "weight": [0.5]}) if label == "emm" else None
    art = runs.Artifacts(rows, pd.DataFrame({"epoch": [1], "val_auc": [0.7]}), MODEL, logits,
                         y[:, cols], tasks, gates)
    stem = f"{DATA.replace('/', '_')}__seed{seed}__{run.slug}"
    runs.write(out, run, DATA, art, history=out / "histories" / run.experiment / f"{stem}.csv",
               checkpoint=out / "checkpoints" / run.experiment / DATA.replace("/", "_") / f"seed{seed}" / run.slug)


@pytest.fixture
def carried(tmp_path):
    """World 0 whole in the carry folder; world 1 without its EMM run."""
    rng = np.random.default_rng(0)
    out = tmp_path / "carry" / PROFILE
    for seed in (0, 1):
        y = (rng.random((400, 2)) < 0.3).astype(np.uint8)
        for label in LABELS:
            if not (seed == 1 and label == "emm"):
                _write_run(out, label, seed, y, rng)
    return tmp_path


def _table(root, name):
    return results.read(root / PROFILE / f"{name}.csv")


def test_a_world_with_runs_to_do_is_refused_and_nothing_is_written(carried):
    assert carry.missing_runs(carried / "carry", DATA, 1, PROFILE) == ["emm"]
    with pytest.raises(ValueError, match="World 1 .* not whole yet: no rows for emm"):
        carry.merge_world(carried / "carry", carried / "results", DATA, 1, PROFILE)
    assert not (carried / "results").exists()
    with pytest.raises(ValueError, match="not whole"):
        carry.prune_world(carried / "carry", DATA, 1, PROFILE)


def test_a_whole_world_enters_the_map_with_its_rows_files_gates_and_paired_variances(carried):
    src, dst = carried / "carry", carried / "results"
    done = carry.merge_world(src, dst, DATA, 0, PROFILE)
    assert done["runs_added"] == len(LABELS)
    for name in ("synthetic_map", "synthetic_map_single_task"):
        want = _table(src, name).query("seed == 0").reset_index(drop=True)
        pd.testing.assert_frame_equal(_table(dst, name).reset_index(drop=True), want)
    hist = sorted(p.name for p in (dst / PROFILE / "histories").rglob("*.csv"))
    assert len(hist) == len(LABELS) and all("__seed0__" in h for h in hist)
    gates = pd.read_csv(dst / PROFILE / "analysis" / "synthetic_map_gates.csv")
    assert set(zip(gates.model, gates.seed)) == {("emm", 0)}
    pv = pd.read_csv(dst / PROFILE / "analysis" / "synthetic_map_pair_variances.csv")
    ref = analysis.pair_variances(src / PROFILE, ("synthetic_map", "synthetic_map_single_task"))
    ref = ref[ref.seed == 0].reset_index(drop=True)
    # Every pair of models that share a task: 3 multi-task + 2 trained models per task, C(5, 2) each.
    assert len(pv) == 2 * 10
    pd.testing.assert_frame_equal(pv.sort_values(analysis.PAIR_KEY).reset_index(drop=True),
                                  ref.sort_values(analysis.PAIR_KEY).reset_index(drop=True), check_dtype=False)
    again = carry.merge_world(src, dst, DATA, 0, PROFILE)  # a second merge adds nothing
    assert again["runs_added"] == 0 and len(_table(dst, "synthetic_map")) == 2 * 2 * 3


def test_a_merge_never_overwrites_other_rows_of_a_run(carried):
    src, dst = carried / "carry", carried / "results"
    carry.merge_world(src, dst, DATA, 0, PROFILE)
    path = dst / PROFILE / "synthetic_map.csv"
    df = results.read(path)
    df.loc[(df.model == "mmoe") & (df.metric == "test_auc"), "value"] = 0.5
    df.to_csv(path, index=False)
    with pytest.raises(ValueError, match="already holds other rows for mmoe seed 0"):
        carry.merge_world(src, dst, DATA, 0, PROFILE)
    assert results.read(path).equals(results.read(path)) and (results.read(path).value == 0.5).sum() == 2


def test_pruning_drops_a_merged_worlds_binaries_and_keeps_its_runs_done(carried):
    src = carried / "carry"
    carry.merge_world(src, carried / "results", DATA, 0, PROFILE)
    assert carry.prune_world(src, DATA, 0, PROFILE) == 3 * len(LABELS)  # a checkpoint (.pt, .json) and test logits each
    left = [p.name for p in (src / PROFILE).rglob("*") if p.is_file() and "seed0" in str(p)]
    assert left and all(n.endswith(".csv") for n in left)
    assert carry.missing_runs(src, DATA, 0, PROFILE) == []
    assert any((src / PROFILE / "predictions").rglob("*__seed1__*.npz"))  # the unfinished world keeps its files


def test_the_command_names_the_problem_instead_of_a_trace(carried, capsys):
    with pytest.raises(SystemExit, match="error: World 1 .* no rows for emm"):
        carry.main([DATA, "--seeds", "1", "--profile", PROFILE, "--carry", str(carried / "carry"),
                    "--dest", str(carried / "results")])
    with pytest.raises(SystemExit, match="not a point of the synthetic_map grid"):
        carry.main(["synthetic-ali/rows=7", "--seeds", "0", "--profile", PROFILE, "--carry", str(carried / "carry")])


def test_progress_counts_each_carried_world_and_its_runs_under_way(carried):
    src = carried / "carry"
    state = src / PROFILE / "checkpoints" / "synthetic_map" / DATA.replace("/", "_") / "seed1" / "emm.resume.pt"
    state.write_bytes(b"resume")
    prog = carry.progress(src, PROFILE)
    assert prog[["world", "runs_done", "runs_planned"]].values.tolist() == [[0, 7, 7], [1, 6, 7]]
    assert prog.under_way.tolist() == [[], ["emm"]]
    words = carry.progress_words(carry.progress(src, PROFILE, skip=[(DATA, 0)]))
    assert "world 1: 6 of 7 runs done, 1 under way" in words and "world 0" not in words
    assert carry.progress_words(carry.progress(carried / "nowhere", PROFILE)) == ""


def test_a_worlds_data_is_recorded_once_and_compared_on_every_later_check(tmp_path):
    first = carry.check_data(tmp_path, DATA, 0, PROFILE)
    assert sorted(first.split) == ["test", "train", "val"] and first.sha256.str.len().eq(64).all()
    again = carry.check_data(tmp_path, DATA, 0, PROFILE)  # the same machine: the same rows, one record
    assert sorted(map(tuple, again.astype(str).values.tolist())) == sorted(map(tuple, first.astype(str).values.tolist()))
    assert carry.data_digest(DATA, 1, PROFILE) != carry.data_digest(DATA, 0, PROFILE)  # another world
    path = tmp_path / PROFILE / "data_digests.csv"
    rec = pd.read_csv(path, dtype=str)
    rec.loc[rec.split == "val", ["sha256", "machine"]] = ["0" * 64, "another CPU"]
    rec.to_csv(path, index=False)
    with pytest.raises(ValueError, match="its val split generated here .* differs .* on another CPU"):
        carry.check_data(tmp_path, DATA, 0, PROFILE)
