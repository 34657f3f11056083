"""The study runner: resumable experiments, tidy rows, summaries, paired tests."""
import pandas as pd
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
