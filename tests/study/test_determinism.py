"""Determinism on this machine: every experiment at the tiny profile (seed 0, CPU), run twice in fresh
processes, gives the same metric values bit for bit (``tests/bit_identical.py``).

This holds on any machine, unlike a committed reference (the harness's docstring says why floats from
training differ across CPUs). ``make test`` runs it twice: with this machine's kernels, and again under
another kernel configuration (``make test-kernels``: ATen's portable code path, MKL's compatible one),
so that a check that depends on the kernels fails here before it lands. Whether refactoring changed a
number is the developer check ``make refactor-guard REF=<commit>``, which regenerates its reference on
the same machine.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

HERE = Path(__file__).resolve().parents[1]  # tests/, where bit_identical.py lives
sys.path.insert(0, str(HERE))
import bit_identical  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.kernels]


def _start(out: Path, census_mirror: Path) -> subprocess.Popen:
    env = dict(os.environ, EMM_DATA_MIRROR=str(census_mirror))
    return subprocess.Popen([sys.executable, str(HERE / "bit_identical.py"), str(out)], env=env, cwd=HERE.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_every_experiment_at_the_tiny_profile_is_bit_identical_across_fresh_processes(tmp_path, census_mirror):
    # Two processes side by side (one thread each): the 2-core CI machine runs both at once.
    procs = {name: _start(tmp_path / name, census_mirror) for name in ("first", "second")}
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=1800)
        assert proc.returncode == 0, f"{name} run failed:\n{err[-4000:]}"
    first, second = bit_identical.collect(tmp_path / "first"), bit_identical.collect(tmp_path / "second")
    assert len(first) > 1000 and first.file.nunique() >= 10, first.file.unique()
    assert bit_identical.report(first, second) == ""


def test_the_comparison_sees_a_last_bit_difference_and_a_missing_row():
    rows = pd.DataFrame({"file": ["a.csv", "a.csv"], "metric": ["test_auc", "val_auc"],
                         "exact": [(0.75).hex(), (0.5).hex()]})
    assert bit_identical.report(rows, rows.copy()) == ""
    nudged = rows.copy()
    nudged.loc[0, "exact"] = float.fromhex(rows.exact[0]).__add__(2 ** -53).hex()
    assert "1 of 2 values differ" in bit_identical.report(rows, nudged)
    assert "rows only in one table" in bit_identical.report(rows, rows.iloc[:1])
