"""AliExpress (US) and Ali-CCP from the user's preprocessed CSVs (paper Sec. IV, "Datasets").

The full data sets come from Tianchi (login required), so nothing is downloaded:
``path`` names the folder with the CSVs in the layout public multi-task
recommendation code reads:

* AliExpress: ``aliexpress_train*.csv``, ``aliexpress_test*.csv`` with columns
  ``search_id``, ``categorical_1..16``, ``numerical_1..63``, ``click``,
  ``conversion``. There is no validation file; we hold out 10 % of the training
  *search sessions* (``search_id`` groups, seeded) as validation. The authors
  used the test set for validation (EMM-method.md Sec. 6); we do not.
* Ali-CCP: ``ali_ccp_{train,val,test}*.csv`` with ``click``, ``purchase``, 23
  sparse columns and 8 dense ``D*`` columns.

The real names (``aliexpress_train.csv``) and the format samples
(``aliexpress_train_sample.csv``) are both accepted. Categorical columns are
re-encoded to 1..K in sorted order of their training values, 0 for values unseen
in training; codes written as floats (``9.0``) read as the integers they are, in
every file. Dense columns are taken as they are (the preprocessed files hold
them normalised already). ``search_id`` is an identifier, not a feature.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..checks import check_finite_columns, whole_number
from .encoding import label_encode
from .types import Dataset, FeatureSpec, SparseFeature, Split

__all__ = ["load_aliexpress", "load_ali_ccp", "Layout", "ALIEXPRESS", "ALI_CCP"]


@dataclass(frozen=True)
class Layout:
    """The CSV layout of one preprocessed data set."""

    name: str
    prefix: str
    files: tuple[str, ...]  # which splits have a file
    ids: tuple[str, ...]
    sparse: tuple[str, ...]
    dense: tuple[str, ...]
    labels: tuple[str, ...]
    paper_tasks: tuple[str, ...]  # Table I order (T1, T2)
    where: str

    @property
    def columns(self) -> tuple[str, ...]:
        return self.ids + self.sparse + self.dense + self.labels


ALIEXPRESS = Layout(
    name="aliexpress", prefix="aliexpress", files=("train", "test"), ids=("search_id",),
    sparse=tuple(f"categorical_{i}" for i in range(1, 17)),
    dense=tuple(f"numerical_{i}" for i in range(1, 64)),
    labels=("click", "conversion"), paper_tasks=("conversion", "click"),
    where="AliExpress (US) from Tianchi, https://tianchi.aliyun.com/dataset/74690 (login required), "
          "preprocessed into the CSV layout of public multi-task recommendation code",
)
ALI_CCP = Layout(
    name="ali-ccp", prefix="ali_ccp", files=("train", "val", "test"), ids=(),
    sparse=("101", "121", "122", "124", "125", "126", "127", "128", "129", "205", "206", "207", "210", "216",
            "508", "509", "702", "853", "301", "109_14", "110_14", "127_14", "150_14"),
    dense=("D109_14", "D110_14", "D127_14", "D150_14", "D508", "D509", "D702", "D853"),
    labels=("click", "purchase"), paper_tasks=("purchase", "click"),
    where="Ali-CCP from Tianchi, https://tianchi.aliyun.com/dataset/408 (login required), "
          "preprocessed into the CSV layout of public multi-task recommendation code",
)


def _find(folder: Path, layout: Layout, split: str) -> Path:
    exact = [folder / f"{layout.prefix}_{split}.csv", folder / f"{layout.prefix}_{split}.csv.gz"]
    for p in exact:
        if p.is_file():
            return p
    found = sorted(p for p in folder.glob(f"{layout.prefix}_{split}*.csv*") if p.name.endswith((".csv", ".csv.gz")))
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise ValueError(f"Several {split} files for {layout.name} in {folder}: {[p.name for p in found]}; "
                         f"keep one (or name it {layout.prefix}_{split}.csv).")
    expected = ", ".join(f"{layout.prefix}_{s}.csv" for s in layout.files)
    raise FileNotFoundError(
        f"No {split} file for {layout.name} in {folder}: expected {expected} (or *_sample.csv). "
        f"Get the data from {layout.where}, and pass the folder that holds them as path=."
    )


#: Dense values beyond this magnitude are rejected: the preprocessed files hold normalised values.
MAX_ABS_DENSE = 1e9


def _whole_codes(values: pd.Series, file: Path, column: str) -> pd.Series:
    """Categorical codes written as floats read as the integers they are (``9.0``, ``9.``, ``9e0`` -> ``9``),
    so a file written through a float column matches one written with integers; a number with a
    fraction (``2.5``) is refused. Text that is not a number is kept as it is. Works on the
    distinct values (a few thousand), not on the rows."""
    uniq = pd.Series(pd.unique(values))
    raw = uniq[uniq.str.contains(r"[.eE]", regex=True)]
    text = raw.str.strip()
    if text.empty:
        return values
    exact = text.str.fullmatch(r"[+-]?\d+\.0*")  # exact, whatever the size: drop the zero fraction
    fix = dict(zip(raw[exact], text[exact].str.replace(r"\.0*$", "", regex=True).map(lambda v: str(int(v)))))
    num = pd.to_numeric(text[~exact], errors="coerce").dropna()
    whole = np.isfinite(num) & (num == np.floor(num)) & (num.abs() < 2 ** 53)
    if not whole.all():
        bad = sorted(raw[num.index[~whole.to_numpy()]])
        line = int(np.flatnonzero(values.isin(bad).to_numpy())[0]) + 2
        raise ValueError(f"{file}: categorical column {column!r} holds values that are numbers but not "
                         f"whole-number codes, e.g. {bad[:3]} (first at line {line}); categorical codes are "
                         "integers. Fix the export that wrote them (or write them as text labels).")
    fix.update(zip(raw[num.index], num.astype(np.int64).astype(str)))
    fixed = values.map(fix)
    return fixed.where(fixed.notna(), values)


def _read(file: Path, layout: Layout) -> pd.DataFrame:
    """One CSV, checked: exact columns, at least one row, categorical columns read as text in every
    file (so one stray string cannot turn a whole column into 'unseen'), finite dense values, 0/1 labels."""
    try:
        header = list(pd.read_csv(file, nrows=0).columns)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as exc:
        raise ValueError(f"{file}: cannot read it as a CSV ({type(exc).__name__}: {exc}); the file is empty or "
                         "damaged. Download it again.") from exc
    missing = [c for c in layout.columns if c not in header]
    extra = [c for c in header if c not in layout.columns]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {missing}")
        if extra:
            parts.append(f"unexpected column(s) {extra}")
        raise ValueError(f"{file}: {' and '.join(parts)}. A {layout.name} file has exactly the columns "
                         f"{list(layout.ids)} + {len(layout.sparse)} sparse + {len(layout.dense)} dense + "
                         f"{list(layout.labels)}.")
    dtypes = {**{c: str for c in layout.sparse}, **{c: np.float32 for c in layout.dense}}
    try:
        df = pd.read_csv(file, dtype=dtypes)
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as exc:
        raise ValueError(f"{file}: cannot read it as a CSV ({type(exc).__name__}: {exc}).") from exc
    except ValueError as exc:
        raise ValueError(f"{file}: a dense column holds non-numeric values ({exc}).") from exc
    if len(df) == 0:
        raise ValueError(f"{file}: the file has a header but no rows; a {layout.name} split cannot be empty.")
    nans = df.isna().sum()
    nans = nans[nans > 0]
    if len(nans):
        raise ValueError(f"{file}: missing values (NaN) in " +
                         ", ".join(f"column {c!r} ({n} rows)" for c, n in nans.items()) +
                         "; fill or drop them before loading.")
    for c in layout.sparse:
        df[c] = _whole_codes(df[c], file, c)
    for c in layout.labels:
        bad = ~df[c].isin([0, 1])
        if bad.any():
            vals = sorted(map(str, pd.unique(df.loc[bad, c])))[:5]
            raise ValueError(f"{file}: label column {c!r} must be 0/1 but has {int(bad.sum())} rows with "
                             f"other values, e.g. {vals}.")
    check_finite_columns(df[list(layout.dense)].to_numpy(np.float32), layout.dense, str(file), MAX_ABS_DENSE)
    return df


def _check_tasks(tasks: Sequence[str] | None, layout: Layout) -> tuple[str, ...]:
    if tasks is None:
        return layout.paper_tasks
    tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
    unknown = [t for t in tasks if t not in layout.labels]
    if unknown or not tasks or len(set(tasks)) != len(tasks):
        raise ValueError(f"Unknown or repeated {layout.name} task(s) {list(tasks)}. Known tasks: "
                         f"{list(layout.labels)} (the paper's order: {list(layout.paper_tasks)}).")
    return tasks


def _group_holdout(groups: np.ndarray, frac: float, seed: int) -> np.ndarray:
    """Boolean mask of held-out rows: a seeded ``frac`` of the distinct groups (at least one,
    never all)."""
    uniq = np.unique(groups)
    if len(uniq) < 2:
        raise ValueError("The training file has fewer than 2 search_id groups; cannot hold out a validation set.")
    k = min(max(1, int(round(frac * len(uniq)))), len(uniq) - 1)
    held = np.random.default_rng(seed).choice(uniq, size=k, replace=False)
    return np.isin(groups, held)


def _load(path: str | os.PathLike | None, layout: Layout, tasks, val_frac: float, seed: int) -> Dataset:
    t0 = time.perf_counter()
    tasks = _check_tasks(tasks, layout)
    seed = whole_number("seed", seed, minimum=0, strict=True)
    if path is None:
        raise ValueError(f"{layout.name}: pass path= (the folder with {layout.prefix}_{{{','.join(layout.files)}}}"
                         f".csv). The data cannot be downloaded automatically: get it from {layout.where}.")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{layout.name}: {folder} is not a folder. Pass the folder holding "
                                f"{', '.join(f'{layout.prefix}_{s}.csv' for s in layout.files)}; get them from "
                                f"{layout.where}.")
    files = {s: _find(folder, layout, s) for s in layout.files}
    frames = {s: _read(f, layout) for s, f in files.items()}
    if "val" not in frames:
        if not 0.0 < val_frac < 1.0:
            raise ValueError(f"val_frac must be in (0, 1), got {val_frac}.")
        full = frames["train"]
        if layout.ids:
            held = _group_holdout(full[layout.ids[0]].to_numpy(), val_frac, seed)
        else:
            held = np.zeros(len(full), bool)
            held[np.random.default_rng(seed).permutation(len(full))[: max(1, int(round(val_frac * len(full))))]] = True
        frames["train"], frames["val"] = full.loc[~held], full.loc[held]
    order = ("train", "val", "test")
    enc: dict[str, list[np.ndarray]] = {s: [] for s in order}
    cards = []
    for c in layout.sparse:
        codes, k = label_encode(frames["train"][c], frames["val"][c], frames["test"][c])
        cards.append(k)
        for s, code in zip(order, codes):
            enc[s].append(code)
    splits = {
        s: Split.from_numpy(np.stack(enc[s], axis=1), frames[s][list(layout.dense)].to_numpy(np.float32),
                            frames[s][list(tasks)].to_numpy(np.float32), tasks)
        for s in order
    }
    spec = FeatureSpec(tuple(SparseFeature(c, k) for c, k in zip(layout.sparse, cards)), layout.dense)
    info = {
        "rows": {s: len(sp) for s, sp in splits.items()},
        "positive_rate": {s: {t: round(float(v.mean()), 6) if len(sp) else float("nan") for t, v in sp.labels.items()}
                          for s, sp in splits.items()},
        "files": {s: str(f) for s, f in files.items()},
        "n_sparse": spec.n_sparse, "n_dense": spec.n_dense,
        "validation": ("the val file" if "val" in layout.files else
                       f"{val_frac:.0%} of the training search sessions (search_id groups), seed {seed}"
                       if layout.ids else f"{val_frac:.0%} of the training rows, seed {seed}"),
        "seed": seed,
        "load_seconds": round(time.perf_counter() - t0, 3),
    }
    return Dataset(layout.name, tasks, spec, splits["train"], splits["val"], splits["test"], info)


def load_aliexpress(path: str | os.PathLike | None = None, tasks: Sequence[str] | None = None,
                    val_frac: float = 0.1, seed: int = 2025) -> Dataset:
    """AliExpress (US) from ``path``; tasks default to the paper's ("conversion", "click")."""
    return _load(path, ALIEXPRESS, tasks, val_frac, seed)


def load_ali_ccp(path: str | os.PathLike | None = None, tasks: Sequence[str] | None = None,
                 val_frac: float = 0.1, seed: int = 2025) -> Dataset:
    """Ali-CCP from ``path``; tasks default to the paper's ("purchase", "click"). ``val_frac`` is
    unused (Ali-CCP ships a validation file)."""
    return _load(path, ALI_CCP, tasks, val_frac, seed)
