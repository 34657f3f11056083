"""Bad inputs at the command lines and the trainer: each case asserts the error type and
the words that name the problem and the fix, or that the fixed path works end to end.

Cases: 1 the Ali datasets through the study and the notebooks, 2 one-line command-line errors,
3 options a subcommand would ignore, 4 analyze on a missing results folder, 5 training data fit()
cannot use, 6 AUC on labels that are not 0/1.
"""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from emm_lib.study.shared import results
from emm_lib import study
from emm_lib.data.ali import ALI_CCP, ALIEXPRESS
from emm_lib.data.types import Dataset, Split
from emm_lib.metrics import auc
from emm_lib.models import SingleTaskMLP
from emm_lib.study.book.run_notebook import main as run_notebook
from emm_lib.train import evaluate, fit

from test_data_ali import write_layout

REPO = Path(__file__).resolve().parents[2]
PROG = "python -m emm_lib.study: error: "


def _cli_error(capsys, argv: list[str], code: int = 2) -> str:
    """The study CLI's last stderr line for ``argv``, which must stop with ``code`` and no traceback."""
    with pytest.raises(SystemExit) as exc:
        study.main(argv)
    assert exc.value.code == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


# --------------------------------------------------------------------------- 1. the Ali datasets


def test_1_study_cli_runs_table1_on_aliexpress_files(tmp_path, capsys):
    folder = write_layout(tmp_path / "ali", ALIEXPRESS, n=300)
    study.main(["table1", "--dataset", "aliexpress", "--data-path", str(folder), "--profile", "tiny",
                "--results-dir", str(tmp_path / "res")])
    df = results.read(tmp_path / "res" / "tiny" / "table1.csv")
    assert set(df.dataset) == {"aliexpress"} and set(df.task) == {"conversion", "click"}
    assert {"emm", "mmoe", "ple"} <= set(df.model)
    assert (tmp_path / "res" / "tiny" / "single_task.csv").exists()


def test_1_data_dir_and_data_path_both_name_the_ali_folder(tmp_path):
    folder = write_layout(tmp_path / "ccp", ALI_CCP, n=300)
    for kw in (dict(data_dir=str(folder)), dict(data_path=str(folder))):
        st = study.settings("ali-ccp", "tiny", **kw)
        assert st.data_path == str(folder)
        ds = study.load_dataset(st)
        assert ds.tasks == ("purchase", "click") and ds.name == "ali-ccp"
    with pytest.raises(ValueError, match="name two folders.*pass one"):
        study.settings("ali-ccp", "tiny", data_dir=str(folder), data_path=str(tmp_path))
    with pytest.raises(ValueError, match="'census' data does not read it"):
        study.settings("census", "tiny", data_path=str(folder))


def test_1_notebook_01_runs_on_aliexpress_named_by_data_dir(tmp_path):
    folder = write_layout(tmp_path / "ali", ALIEXPRESS, n=300)
    out = tmp_path / "out.ipynb"
    assert run_notebook([str(REPO / "notebooks" / "01-data.ipynb"), str(out), "--cwd", str(REPO / "notebooks"),
                         "-p", "dataset", "aliexpress", "-p", "data_dir", str(folder), "-p", "profile", "tiny",
                         "-p", "results_dir", str(tmp_path / "res"), "--no-progress-bar"]) == 0
    text = out.read_text()
    assert "AliExpress: 2 tasks (conversion, click); 16 categorical + 63 numeric features." in text


# --------------------------------------------------------------------------- 2. one-line command-line errors


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("argv, words", [
    (["--epochs", "0"], "argument --epochs: Need epochs >= 1, got 0."),
    (["--seeds", "99999999999999999999"], "argument --seeds: seed 99999999999999999999 is too large"),
    (["--threads", "0"], "argument --threads: Need threads >= 1"),
    (["--profile", "tny"], "argument --profile: invalid choice: 'tny'"),
    (["--models", "nope"], "Unknown model label(s) ['nope'] (--models)"),
    (["--task-counts", "3"], "Experiment 'table1' runs task counts [2], not [3] (--task-counts)"),
    (["--dataset", "aliexpress"], "--dataset aliexpress needs --data-path"),
    (["--dataset", "aliexpress", "--data-path", "/nonexistent/ali"], "the data folder '/nonexistent/ali' does not exist"),
])
def test_2_bad_settings_are_one_line_naming_the_option(tmp_path, capsys, argv, words):
    line = _cli_error(capsys, ["table1", "--profile", "tiny", "--results-dir", str(tmp_path), *argv])
    assert line.startswith(PROG) and words in line
    assert not (tmp_path / "tiny").exists()


@pytest.mark.parametrize("experiment, words", [
    ("all", "Experiment 'leak_free' uses Census' 'leak-free' feature set; it runs on --dataset census only"),
    ("figure3", "Experiment 'figure3' uses Census' 'fixed-features' feature set"),
    ("synthetic_tasks", "aliexpress defines two tasks ['conversion', 'click']; 4 were asked for"),
])
def test_2_experiments_the_dataset_cannot_run_are_one_line_before_any_run(tmp_path, capsys, experiment, words):
    (tmp_path / "ali").mkdir()
    line = _cli_error(capsys, [experiment, "--dataset", "aliexpress", "--data-path", str(tmp_path / "ali"),
                               "--profile", "tiny", "--results-dir", str(tmp_path / "res")])
    assert words in line and not (tmp_path / "res").exists()


def test_2_results_dir_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "f").write_text("")
    line = _cli_error(capsys, ["table1", "--profile", "tiny", "--results-dir", str(tmp_path / "f")])
    assert line == f"{PROG}argument --results-dir: {tmp_path / 'f'} is a file; pass a folder (it is created when missing)."
    line = _cli_error(capsys, ["table1", "--profile", "tiny", "--results-dir", str(tmp_path / "f" / "x")])
    assert f"cannot be created: {tmp_path / 'f'} is a file" in line
    with pytest.raises(ValueError, match="results_dir: .* is a file"):
        study.settings("census", "tiny", results_dir=str(tmp_path / "f"))


def test_2_unreachable_ray_address_is_one_line_within_seconds(tmp_path, capsys):
    port = _closed_port()
    t0 = time.perf_counter()
    line = _cli_error(capsys, ["table1", "--profile", "tiny", "--executor", "ray", "--address", f"127.0.0.1:{port}",
                               "--results-dir", str(tmp_path)])
    assert time.perf_counter() - t0 < 10
    assert f"argument --address: No Ray cluster answers at 127.0.0.1:{port}" in line and "ray start --head" in line
    line = _cli_error(capsys, ["table1", "--executor", "ray", "--address", "headnode", "--results-dir", str(tmp_path)])
    assert "is not HOST:PORT" in line


def test_2_run_on_ray_checks_the_address_before_ray_init(tmp_path):
    from emm_lib.study.shared.ray_executor import run_on_ray

    port = _closed_port()
    t0 = time.perf_counter()
    with pytest.raises(ConnectionError, match=f"No Ray cluster answers at 127.0.0.1:{port}"):
        run_on_ray([], study.settings("synthetic", "tiny", results_dir=str(tmp_path)), address=f"127.0.0.1:{port}")
    assert time.perf_counter() - t0 < 10


def test_2_data_cli_with_a_path_census_does_not_read(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "emm_lib.data", *args], capture_output=True, text=True,
                              cwd=REPO, timeout=120)

    p = run("census", "--path", str(tmp_path / "X"))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "--path names the folder of your AliExpress / Ali-CCP CSVs; 'census' does not read one" in p.stderr
    p = run("aliexpress", "--path", str(tmp_path / "X"))
    assert p.returncode == 1 and "Traceback" not in p.stderr and f"{tmp_path / 'X'} is not a folder" in p.stderr


# --------------------------------------------------------------------------- 3. options a subcommand ignores


def test_3_synthetic_refuses_the_options_it_would_ignore(tmp_path, capsys):
    line = _cli_error(capsys, ["synthetic", "--profile", "tiny", "--epochs", "3", "--models", "emm",
                               "--task-counts", "2", "--dataset", "census", "--results-dir", str(tmp_path)])
    assert "'synthetic' does not use --dataset, --models, --epochs, --task-counts; drop them." in line
    assert not any(tmp_path.iterdir())  # nothing ran


@pytest.mark.parametrize("argv, words", [
    (["analyze", "--seeds", "1"], "'analyze' does not use --seeds; drop it."),
    (["analyze", "--executor", "ray"], "'analyze' does not use --executor"),
    (["single_task", "--models", "emm"], "'single_task' does not use --models"),
    (["table1", "--axes", "relatedness"], "--axes applies to the 'synthetic' and 'synthetic_map' experiments only"),
    (["table1", "--address", "127.0.0.1:6379"], "--address names a Ray cluster and applies to --executor ray only"),
])
def test_3_other_subcommands_refuse_options_they_ignore(tmp_path, capsys, argv, words):
    assert words in _cli_error(capsys, [*argv, "--results-dir", str(tmp_path)])


# --------------------------------------------------------------------------- 4. analyze without runs


def test_4_analyze_refuses_a_missing_or_empty_results_folder(tmp_path, capsys):
    line = _cli_error(capsys, ["analyze", "--results-dir", str(tmp_path / "none")])
    assert f"{tmp_path / 'none' / 'default'} does not exist: there are no runs to analyze" in line
    assert not (tmp_path / "none").exists()
    (tmp_path / "empty" / "tiny").mkdir(parents=True)
    line = _cli_error(capsys, ["analyze", "--profile", "tiny", "--results-dir", str(tmp_path / "empty")])
    assert "holds no saved test predictions" in line
    assert not any((tmp_path / "empty" / "tiny").iterdir())


# --------------------------------------------------------------------------- 5. data fit() cannot train on


def _with(ds: Dataset, split: str, **tensors) -> Dataset:
    """``ds`` with some tensors of one split replaced (sparse, dense or y)."""
    s = getattr(ds, split)
    new = Split(tensors.get("sparse", s.sparse), tensors.get("dense", s.dense), tensors.get("y", s.y), s.tasks)
    parts = {k: getattr(ds, k) for k in ("train", "val", "test")}
    parts[split] = new
    return Dataset(ds.name, ds.tasks, ds.spec, parts["train"], parts["val"], parts["test"])


def _fit(ds: Dataset, **kw):
    return fit(SingleTaskMLP(ds.spec, ds.tasks[0]), ds, epochs=1, batch_size=64, device="cpu", **kw)


@pytest.mark.parametrize("split, where", [("train", "training"), ("val", "validation")])
@pytest.mark.parametrize("code", [5, 9, -1])
def test_5_codes_outside_a_features_cardinality_are_refused_naming_it(tiny_dataset, split, where, code):
    sparse = getattr(tiny_dataset, split).sparse.clone()
    sparse[3, 0] = code  # feature s0 has cardinality 5: code 5 would read s1's first embedding row
    with pytest.raises(ValueError, match=rf"fit\(\): the {where} split of 'tiny': sparse feature 's0' holds codes "
                                         rf".*\(1 row\(s\) out of range\) but its cardinality is 5 \(codes 0\.\.4\)"):
        _fit(_with(tiny_dataset, split, sparse=sparse))


@pytest.mark.parametrize("bad", [-1.0, 5.0, 0.5, float("nan")])
def test_5_labels_that_are_not_0_or_1_are_refused_naming_the_task(tiny_dataset, bad):
    y = tiny_dataset.train.y.clone()
    y[:7, 0] = bad
    with pytest.raises(ValueError, match=r"fit\(\): the training split of 'tiny': the labels of task 'a' must be 0 "
                                         r"or 1, but 7 of 600 are not"):
        _fit(_with(tiny_dataset, "train", y=y))


@pytest.mark.parametrize("split, where", [("train", "training"), ("val", "validation")])
def test_5_non_finite_inputs_name_the_split_and_column_not_the_learning_rate(tiny_dataset, split, where):
    dense = getattr(tiny_dataset, split).dense.clone()
    dense[:3, 1], dense[5, 2] = float("nan"), float("inf")
    with pytest.raises(ValueError, match=rf"the {where} split of 'tiny': dense feature\(s\) 'd1' \(3 values\), "
                                         r"'d2' \(1 values\) hold NaN or inf"):
        _fit(_with(tiny_dataset, split, dense=dense))


@pytest.mark.parametrize("patience", [0, -2, 1.5, True])
def test_5_patience_below_one_is_refused(tiny_dataset, patience):
    with pytest.raises(ValueError, match=r"must be a whole number >= 1; pass patience=None"):
        fit(SingleTaskMLP(tiny_dataset.spec, "a"), tiny_dataset, epochs=5, patience=patience)


def test_5_evaluate_shares_the_check(tiny_dataset):
    sparse = tiny_dataset.test.sparse.clone()
    sparse[0, 3] = 11
    split = Split(sparse, tiny_dataset.test.dense, tiny_dataset.test.y, tiny_dataset.tasks, tiny_dataset.spec)
    with pytest.raises(ValueError, match=r"evaluate\(\): sparse feature 's3' holds codes 0\.\.11 .*cardinality is 11"):
        evaluate(SingleTaskMLP(tiny_dataset.spec, "a"), split)


# --------------------------------------------------------------------------- 6. AUC on labels that are not 0/1


@pytest.mark.parametrize("labels", [[0, 1, 2, 1, 0, 2], [0.0, 0.3, 1.0, 0.7, 0.0, 1.0]])
def test_6_auc_on_multi_class_or_soft_labels_names_the_task(labels):
    with pytest.raises(ValueError, match=r"AUC for task 'income' needs 0/1 labels, but 2 of 6 are not.*Map the "
                                         r"classes to 0/1"):
        auc(torch.tensor(labels), torch.linspace(0, 1, 6), task="income")
