"""Refactoring changes no number: every experiment at the tiny profile (seed 0, CPU) gives the same
metric values, bit for bit, as the committed reference (``tests/fixtures/tiny_reference.csv``,
written by ``tests/bit_identical.py`` at commit 661efa4, before the architecture pass of issue 16).

Runs in a fresh process (about 75-95 s on a busy 2-core CPU), so no state of other tests leaks in.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bit_identical  # noqa: E402

pytestmark = pytest.mark.slow


def test_every_experiment_at_the_tiny_profile_is_bit_identical_to_the_reference(tmp_path, census_mirror):
    env = dict(os.environ, EMM_DATA_MIRROR=str(census_mirror))
    proc = subprocess.run([sys.executable, str(HERE / "bit_identical.py"), str(tmp_path)], env=env,
                          cwd=HERE.parent, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    got = bit_identical.collect(tmp_path)
    want = pd.read_csv(HERE / "fixtures" / "tiny_reference.csv", dtype=str, keep_default_na=False)
    key = [c for c in want.columns if c != "exact"]
    assert list(got.columns) == list(want.columns)
    merged = want.merge(got, on=key, how="outer", suffixes=("_want", "_got"), indicator=True)
    missing = merged[merged._merge != "both"]
    assert missing.empty, f"rows only in one table:\n{missing.head(20).to_string()}"
    diff = merged[merged.exact_want != merged.exact_got]
    assert diff.empty, (f"{len(diff)} of {len(merged)} values differ from the reference, e.g.:\n"
                        f"{diff.head(20).to_string()}")
