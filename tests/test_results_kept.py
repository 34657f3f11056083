"""No committed result is ever lost: every commit since :data:`SINCE` keeps the rows of the results
files it changes.

Runs are long and their logits are not committed, so a row that a commit drops cannot be made again
bit for bit on another machine. For each file under ``results/``, every pair of consecutive committed
versions is compared: a results table (``results.KEY``) and a paired-variance table keep every key
they had; any other table keeps at least its number of rows; no file is deleted, but for the binary
working state of a carried point (:data:`CARRIED`). A commit whose message says "Rows dropped on
purpose:" (with the reason) is exempt. Needs the git history: skipped in a checkout without it (an
export, or a shallow clone that does not reach :data:`SINCE`).
"""
from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The first commit this check holds for (the one that made paired-variance refreshes merge).
SINCE = "04e994f"
EXEMPT = "Rows dropped on purpose:"
#: A long map point's working state between sessions (emm_lib.study.sweep.carry): its test logits are
#: dropped once their world is merged into the map; its tables (CSV) are checked like every other.
CARRIED = "results/carry/"
KEYS = {"results": ["dataset", "model", "task", "seed", "metric"],
        "pairs": ["key", "dataset", "seed", "task", "model_a", "model_b"]}


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout


def _history() -> list[str]:
    try:
        _git("cat-file", "-e", f"{SINCE}^{{commit}}")
    except (subprocess.CalledProcessError, FileNotFoundError):
        pytest.skip(f"the git history does not reach {SINCE}")
    return _git("rev-list", "--reverse", f"{SINCE}^..HEAD", "--", "results").split()


def _keys(path: str, text: str) -> tuple[str, pd.DataFrame | int]:
    df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    for kind, cols in KEYS.items():
        have = [c for c in cols if c in df.columns]
        if kind == "results" and have == cols or kind == "pairs" and "model_a" in have and "model_b" in have:
            return kind, df[have].drop_duplicates()
    return "rows", len(df)


def lost_rows(before: str, after: str | None, path: str) -> str | None:
    """What the change of ``path`` from text ``before`` to ``after`` (None: deleted) loses, or None."""
    if after is None:
        return f"{path} was deleted"
    if not path.endswith(".csv"):
        return None
    kind, old = _keys(path, before)
    _, new = _keys(path, after)
    if kind == "rows":
        return f"{path} went from {old} to {new} rows" if new < old else None
    gone = old.merge(new, how="left", indicator=True)
    gone = gone[gone["_merge"] == "left_only"]
    return f"{path} lost {len(gone)} of its {len(old)} keys, e.g. {gone.iloc[0, :-1].to_dict()}" if len(gone) else None


def checked(status: str, path: str) -> bool:
    """Whether a change (git's ``status`` letter) of ``path`` can lose results: not an added file, nor the
    binary working state of a carried point."""
    return not (status.startswith("A") or path.startswith(CARRIED) and not path.endswith(".csv"))


def _show(commit: str, path: str) -> str | None:
    try:
        return _git("show", f"{commit}:{path}")
    except subprocess.CalledProcessError:
        return None


def test_every_commit_keeps_the_committed_results():
    problems = []
    for commit in _history():
        if EXEMPT in _git("log", "-1", "--format=%B", commit):
            continue
        changed = _git("diff-tree", "--no-commit-id", "-r", "--name-status", f"{commit}^", commit, "--",
                       "results").splitlines()
        for line in changed:
            status, path = line.split("\t")[0], line.split("\t")[-1]
            if not checked(status, path):
                continue
            before = _show(f"{commit}^", path)
            if before is None:
                continue
            why = lost_rows(before, _show(commit, path), path)
            if why:
                problems.append(f"{commit[:8]}: {why}")
    assert not problems, "commits that lose committed results:\n" + "\n".join(problems)


def test_the_check_sees_a_lost_row_and_a_shrunk_table():
    head = "dataset,model,task,seed,metric,value\n"
    before = head + "census,emm,income,0,test_auc,0.9\ncensus,emm,income,1,test_auc,0.91\n"
    assert lost_rows(before, head + "census,emm,income,1,test_auc,0.95\n", "results/x.csv").startswith(
        "results/x.csv lost 1 of its 2 keys")
    assert lost_rows(before, before.replace("0.91", "0.92"), "results/x.csv") is None  # a rerun keeps its key
    pairs = "key,seed,task,model_a,model_b,var_diff\nk,0,t1,a,b,1e-6\nk,1,t1,a,b,2e-6\n"
    assert "lost 1" in lost_rows(pairs, pairs.rsplit("k,1", 1)[0], "results/a_pair_variances.csv")
    assert lost_rows("a,b\n1,2\n3,4\n", "a,b\n1,2\n", "results/y.csv") == "results/y.csv went from 2 to 1 rows"
    assert lost_rows("a\n1\n", None, "results/z.csv") == "results/z.csv was deleted"


def test_only_a_carried_points_binary_working_state_may_go():
    base = "results/carry/paper/"
    assert not checked("D", base + "checkpoints/synthetic_map/synthetic-ali_rows=10000000/seed0/emm.resume.pt")
    assert not checked("M", base + "predictions/synthetic_map/synthetic-ali_rows=10000000__seed0__mmoe.npz")
    assert checked("D", base + "synthetic_map.csv") and checked("M", base + "analysis/synthetic_map_gates.csv")
    assert checked("D", "results/paper/checkpoints/x.pt") and not checked("A", "results/paper/synthetic_map.csv")
