"""Bad inputs at the command lines and the trainer (issue 28): each case asserts the error type and
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

from emm_lib import results, study
from emm_lib.data.ali import ALI_CCP, ALIEXPRESS
from emm_lib.data.types import Dataset, Split
from emm_lib.metrics import auc
from emm_lib.models import SingleTaskMLP
from emm_lib.run_notebook import main as run_notebook
from emm_lib.train import evaluate, fit

from test_data_ali import write_layout

REPO = Path(__file__).resolve().parent.parent
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
    assert "aliexpress: tasks ['conversion', 'click']; 16 sparse + 63 dense features" in text
