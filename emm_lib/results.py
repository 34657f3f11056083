"""One tidy table format for every run, appended atomically.

Columns: dataset, profile, model, task, seed, metric, value, best_epoch, train_seconds,
git_commit, torch_version, device, plus free-form ``settings`` (JSON) and a UTC timestamp.
"""
from __future__ import annotations

import datetime as _dt
import functools
import fcntl
import json
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd
import torch

from .utils import atomic_write, repo_root

__all__ = ["COLUMNS", "KEY", "DuplicateRun", "git_commit", "make_rows", "append", "replace_run", "remove", "read"]

#: One row per run, task and metric: a run is never written twice.
KEY = ["dataset", "model", "task", "seed", "metric"]


class DuplicateRun(ValueError):
    """The rows of a run are already in the table."""


COLUMNS = ["dataset", "profile", "model", "task", "seed", "metric", "value", "best_epoch",
           "train_seconds", "git_commit", "torch_version", "device", "settings", "timestamp"]


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The repository's HEAD commit (with ``-dirty`` when the tree has changes), or ``unknown``.

    Read once per process (the study pins it before its first run): a checkout that moves while a
    long study runs does not relabel the rows of code loaded before the move."""
    try:
        root = repo_root()
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (sha + ("-dirty" if dirty else "")) if sha else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def make_rows(*, dataset: str, profile: str, model: str, seed: int, metrics: Mapping[str, Mapping[str, float]],
              best_epoch: int | None = None, train_seconds: float | None = None, device: str = "cpu",
              settings: Mapping | None = None) -> list[dict]:
    """Rows for one run. ``metrics`` maps a metric name (e.g. ``test_auc``) to {task: value}."""
    commit, now = git_commit(), _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    rows = []
    for metric, per_task in metrics.items():
        for task, value in per_task.items():
            rows.append({"dataset": dataset, "profile": profile, "model": model, "task": task, "seed": int(seed),
                         "metric": metric, "value": float(value), "best_epoch": best_epoch,
                         "train_seconds": train_seconds, "git_commit": commit,
                         "torch_version": torch.__version__, "device": device,
                         "settings": json.dumps(dict(settings or {}), sort_keys=True, default=str),
                         "timestamp": now})
    return rows


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lk, fcntl.LOCK_UN)


def append(path: str | os.PathLike, rows: Iterable[Mapping]) -> Path:
    """Append rows to the CSV at ``path`` atomically (lock, read, write a temp file, rename).

    Raises :class:`DuplicateRun` when a row with the same :data:`KEY` is already there.
    """
    path = Path(path)
    new = pd.DataFrame(list(rows))
    unknown = set(new.columns) - set(COLUMNS)
    missing = set(COLUMNS) - set(new.columns)
    if unknown or missing:
        raise ValueError(f"Result rows must have exactly the columns {COLUMNS}; "
                         f"unknown {sorted(unknown)}, missing {sorted(missing)}. Build them with make_rows().")
    with _locked(path):
        old = read(path) if path.exists() else pd.DataFrame(columns=COLUMNS)
        if len(old):
            clash = old[KEY].astype(str).merge(new[KEY].astype(str))
            if len(clash):
                r = clash.iloc[0]
                raise DuplicateRun(f"{path} already holds {r.model} seed {r.seed} on {r.dataset} ({r.task}, "
                                   f"{r.metric}); a run is written once. Remove its rows first to replace it.")
        out = pd.concat([old, new[COLUMNS]], ignore_index=True) if len(old) else new[COLUMNS]
        with atomic_write(path, "w") as fh:
            out.to_csv(fh, index=False)
    return path


def _signature(df: pd.DataFrame) -> list[tuple]:
    """What tells two row sets of a run apart: each row's task, metric, value and timestamp."""
    return sorted(map(tuple, df[["task", "metric", "value", "timestamp"]].astype(str).to_numpy().tolist()))


def replace_run(path: str | os.PathLike, rows: Iterable[Mapping], expected: pd.DataFrame) -> Path:
    """Put a run's new ``rows`` in place of its old ones in one atomic write of ``path``.

    The run is the (dataset, model, seed) of ``rows``; ``expected`` are its rows as the caller read them
    when it judged them replaceable (empty: none). When the table holds other rows for the run by now
    (another process wrote them meanwhile), nothing is written and :class:`DuplicateRun` is raised.
    Until this write the old rows stay, so an interrupted run never loses them.
    """
    path = Path(path)
    new = pd.DataFrame(list(rows))
    if new.empty or new[["dataset", "model", "seed"]].drop_duplicates().shape[0] != 1:
        raise ValueError("replace_run takes the rows of one run (one dataset, model and seed).")
    if set(new.columns) != set(COLUMNS):
        raise ValueError(f"Result rows must have exactly the columns {COLUMNS}. Build them with make_rows().")
    r = new.iloc[0]
    with _locked(path):
        old = read(path) if path.exists() else pd.DataFrame(columns=COLUMNS)
        hit = (old.dataset == r.dataset) & (old.model == r.model) & (old.seed == int(r.seed))
        if _signature(old[hit]) != _signature(expected):
            raise DuplicateRun(f"{path}: the rows of {r.model} seed {r.seed} on {r.dataset} were written meanwhile "
                               "by another process; this run's rows were not written.")
        kept = old[~hit]
        out = pd.concat([kept, new[COLUMNS]], ignore_index=True) if len(kept) else new[COLUMNS]
        with atomic_write(path, "w") as fh:
            out.to_csv(fh, index=False)
    return path


def remove(path: str | os.PathLike, **match) -> int:
    """Remove the rows whose columns equal ``match`` (e.g. dataset, model, seed), atomically; the count."""
    path = Path(path)
    with _locked(path):
        if not path.exists():
            return 0
        old = read(path)
        hit = pd.Series(True, index=old.index)
        for k, v in match.items():
            hit &= old[k] == v
        with atomic_write(path, "w") as fh:
            old[~hit].to_csv(fh, index=False)
    return int(hit.sum())


#: Columns read back as text whatever they look like (a hex commit can look like a number).
TEXT_COLUMNS = ("dataset", "profile", "model", "task", "git_commit", "torch_version", "device", "settings",
                "timestamp")


def read(path: str | os.PathLike) -> pd.DataFrame:
    """Read a results CSV, checking its columns."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No results at {path}; run the notebook or script that writes them first.")
    try:  # text columns stay text: a commit such as "3263898569e9" would otherwise be read as a float
        df = pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS})
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} cannot be read as a results table ({type(exc).__name__}: {exc}); it is damaged. "
                         "Restore it (git checkout) or delete it and rerun the experiment.") from exc
    missing = set(COLUMNS) - set(df.columns)
    if missing:
        raise ValueError(f"{path} is not a results table: columns {sorted(missing)} are missing.")
    incomplete = df[["dataset", "model", "task", "seed", "metric", "value", "settings"]].isna().any(axis=1)
    if incomplete.any():
        raise ValueError(f"{path}: {int(incomplete.sum())} row(s) are incomplete (first at line "
                         f"{int(incomplete.to_numpy().argmax()) + 2}); the file is truncated or damaged. "
                         "Restore it (git checkout) or delete the broken rows and rerun the experiment.")
    return df
