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

import numpy as np
import pandas as pd
import torch

from emm_lib.utils import atomic_write, repo_root

__all__ = ["COLUMNS", "KEY", "DuplicateRun", "git_commit", "make_rows", "append", "replace_run", "remove", "read",
           "one_row_per_run", "METRIC_RANGES"]

#: One row per run, task and metric: a run is never written twice.
KEY = ["dataset", "model", "task", "seed", "metric"]


class DuplicateRun(ValueError):
    """The rows of a run are already in the table."""


COLUMNS = ["dataset", "profile", "model", "task", "seed", "metric", "value", "best_epoch",
           "train_seconds", "git_commit", "torch_version", "device", "settings", "timestamp"]


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The repository's HEAD commit (with ``-dirty`` when tracked files outside ``results/`` have
    changes), or ``unknown``.

    The study's own result tables are tracked and change while it runs, which says nothing about the
    code, so changes under ``results/`` do not count. Read once per process (the study pins it before
    its first run): a checkout that moves while a long study runs does not relabel the rows of code
    loaded before the move."""
    try:
        root = repo_root()
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)results"], cwd=root,
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
    df = _typed(df, path)
    _check_ranges(df, path)
    _check_one_profile(df, str(path))
    dup = df[df.duplicated(KEY, keep=False)]
    if len(dup):
        first = dup[dup[KEY].eq(dup[KEY].iloc[0]).all(axis=1)]
        key = ", ".join(f"{k}={_plain(first[k].iloc[0])!r}" for k in KEY)
        raise ValueError(f"{path}: lines {[int(i) + 2 for i in first.index]} hold the same run ({key}), with values "
                         f"{first.value.tolist()}; a run is written once (results.append refuses a second). Delete "
                         "the wrong line(s) by hand (or restore the file with git checkout) and read it again.")
    return df


#: Columns that must be numbers: (column, whole numbers, may be empty, minimum).
_NUMERIC = (("seed", True, False, 0), ("value", False, False, None), ("best_epoch", True, True, 0),
            ("train_seconds", False, True, 0.0))
#: The range of a metric's value, by a word of its name (``test_auc`` -> ``auc``).
METRIC_RANGES = {"auc": (0.0, 1.0), "accuracy": (0.0, 1.0), "loss": (0.0, float("inf")),
                 "logloss": (0.0, float("inf"))}


def _plain(v):
    """A cell as Python sees it (``1.7``, ``'x'``), not as ``np.float64(1.7)``."""
    return v.item() if isinstance(v, np.generic) else v


def _fail(path: Path, df: pd.DataFrame, bad: pd.Series, column: str, what: str) -> None:
    i, more = int(bad.to_numpy().argmax()), int(bad.sum()) - 1
    raise ValueError(f"{path}: column {column!r} at line {i + 2}{f' (and {more} more row(s))' if more else ''} holds "
                     f"{_plain(df[column].iloc[i])!r}; {what}. The file was edited or damaged: fix or delete those "
                     "rows (or restore the file with git checkout) and rerun the affected runs.")


def _typed(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The numeric columns as numbers, each cell checked (a stray ``'x'`` or ``1.5`` seed is named, not
    carried into comparisons that then never match)."""
    df = df.copy()
    for col, whole, optional, minimum in _NUMERIC:
        num = pd.to_numeric(df[col], errors="coerce")
        empty = df[col].isna()
        bad = (num.isna() & ~empty) | (empty & (not optional)) | (~empty & ~np.isfinite(num.fillna(0)))
        kind = ("a whole number" if whole else "a finite number") + (" (or empty)" if optional else "")
        if bad.any():
            _fail(path, df, bad, col, f"it must be {kind}")
        if whole and ((num % 1 != 0) & ~empty).any():
            _fail(path, df, (num % 1 != 0) & ~empty, col, f"it must be {kind}")
        if minimum is not None and ((num < minimum) & ~empty).any():
            _fail(path, df, (num < minimum) & ~empty, col, f"it must be >= {minimum:g}")
        df[col] = num.astype("int64" if whole and not empty.any() else "float64")  # empty: NaN, as pandas reads it
    return df


def _check_ranges(df: pd.DataFrame, path: Path) -> None:
    """Every metric value in its range (:data:`METRIC_RANGES`): an AUC of 1.7 is not averaged in."""
    words = df.metric.astype(str).str.lower().str.split("_")
    for word, (lo, hi) in METRIC_RANGES.items():
        out = words.map(lambda w: word in w) & ((df.value < lo) | (df.value > hi))
        if out.any():
            _fail(path, df, out, "value", f"a {df.metric[out].iloc[0]} value lies in [{lo:g}, {hi:g}]")


def _check_one_profile(df: pd.DataFrame, where: str, file: bool = True) -> None:
    """One run profile in ``df`` (a profile's results live in results/<profile>/); rows that state no
    profile (derived rows, such as a mean over models) are not counted."""
    if "profile" not in df.columns or df.empty:
        return
    profiles = df.profile.astype(str).where(df.profile.notna())
    counts = profiles.value_counts()
    if len(counts) > 1:
        foreign = counts.index[-1]
        i = int((profiles == foreign).to_numpy().argmax())
        at = f"line {i + 2}" if file else f"row {i}"
        raise ValueError(f"{where} mixes rows of run profiles {counts.to_dict()} (the first {foreign!r} row: {at}); "
                         "the results of one profile live in results/<profile>/ and are summarized apart. Move the "
                         "foreign rows to their profile's file or delete them (or select one profile's rows).")


def one_row_per_run(df: pd.DataFrame, where: str) -> pd.DataFrame:
    """``df`` with one row per (dataset, model, task, seed, metric): exact repeats (the same row
    concatenated twice) count once; rows of one key with different values, or rows of several run
    profiles, raise a ValueError naming ``where``, the key and the fix (no row silently wins)."""
    _check_one_profile(df.reset_index(drop=True), where, file=False)
    num = pd.to_numeric(df["value"], errors="coerce")
    if (num.isna() & df["value"].notna()).any():
        i = int((num.isna() & df["value"].notna()).to_numpy().argmax())
        raise ValueError(f"{where}: row {i} holds value {_plain(df['value'].iloc[i])!r}, not a number; read results "
                         "tables with emm_lib.study.shared.results.read, which names the file, line and column of such a cell.")
    key = [k for k in KEY if k in df.columns]
    d = df.drop_duplicates(key + ["value"], keep="last")
    clash = d[d.duplicated(key, keep=False)]
    if len(clash):
        first = clash[clash[key].eq(clash[key].iloc[0]).all(axis=1)]
        name = ", ".join(f"{k}={_plain(first[k].iloc[0])!r}" for k in key)
        raise ValueError(f"{where}: {len(first)} rows for one run ({name}) disagree (values {first.value.tolist()}); "
                         "no row is taken over another. Keep one row per run (remove the foreign or stale rows "
                         "from the results file) and summarize again.")
    return d
