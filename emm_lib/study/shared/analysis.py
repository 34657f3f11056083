"""Paired test-set variances of the study's runs (the test-set term of :mod:`emm_lib.study.shared.stats`).

For every (dataset, seed, task), the saved test logits of all runs (``predictions/``, written
by :func:`emm_lib.study.shared.runs.write`) give each pair of models the paired DeLong variance of their AUC
difference. The table is small and committed beside the results; the logits are not.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from emm_lib.study.shared.stats import delong
from emm_lib.utils import atomic_write

__all__ = ["PAIR_VARIANCES", "pair_variances", "write_pair_variances", "merge_pair_variances", "read_pair_variances"]

PAIR_VARIANCES = "analysis/pair_variances.csv"  # derived tables live apart from the run tables


#: Experiments whose dataset keys repeat another experiment's on other data (the synthetic map repeats the
#: first pass's point keys): left out of the study-wide table, read only when named (their own table).
_APART = ("synthetic_map", "synthetic_map_single_task")


def _load(out_dir: Path, experiments: Sequence[str] | None = None) -> list[dict]:
    found = []
    for f in sorted((out_dir / "predictions").glob("*/*.npz")):
        if (f.parent.name not in experiments) if experiments is not None else (f.parent.name in _APART):
            continue
        key, seed, label = f.stem.split("__")
        with np.load(f) as z:
            label = str(z["label"]) if "label" in z.files else label  # older files: the file-name slug
            found.append({"file": f, "key": key, "seed": int(seed[4:]),
                          "label": label, "logits": z["logits"], "y": z["y"], "tasks": list(z["tasks"])})
    return found


def pair_variances(out_dir: str | Path, experiments: Sequence[str] | None = None) -> pd.DataFrame:
    """Columns dataset_file_key, seed, task, model_a, model_b, auc_a, auc_b, var_diff (all pairs);
    ``experiments``: only the predictions of these experiments (e.g. one pass of the synthetic sweep,
    whose dataset keys another pass repeats)."""
    out_dir = Path(out_dir)
    rows = []
    preds = _load(out_dir, experiments)
    by = {}
    for p in preds:
        by.setdefault((p["key"], p["seed"]), []).append(p)
    for (key, seed), group in by.items():
        tasks = sorted({t for p in group for t in p["tasks"]})
        for task in tasks:
            have = [(p["label"], p["logits"][:, p["tasks"].index(task)], p["y"][:, p["tasks"].index(task)])
                    for p in group if task in p["tasks"]]
            y0 = have[0][2]
            for label, _, y in have[1:]:
                if not np.array_equal(y, y0):
                    raise ValueError(f"Runs of {key} seed {seed} disagree on the {task} test labels "
                                     f"({have[0][0]} vs {label}): their splits differ; rerun them.")
            if len(have) < 2:
                continue
            aucs, cov = delong(y0, np.stack([h[1] for h in have]))
            for i, j in itertools.combinations(range(len(have)), 2):
                rows.append({"key": key, "seed": seed, "task": task, "model_a": have[i][0], "model_b": have[j][0],
                             "auc_a": aucs[i], "auc_b": aucs[j],
                             "var_diff": cov[i, i] + cov[j, j] - 2 * cov[i, j]})
    return pd.DataFrame(rows, columns=["key", "seed", "task", "model_a", "model_b", "auc_a", "auc_b", "var_diff"])


def write_pair_variances(out_dir: str | Path) -> Path:
    """Compute :func:`pair_variances` and write them atomically to ``<out_dir>/analysis/pair_variances.csv``;
    a FileNotFoundError (and nothing written) when ``out_dir`` holds no saved predictions."""
    out_dir = Path(out_dir)
    if not any((out_dir / "predictions").glob("*/*.npz")):
        what = "does not exist" if not out_dir.is_dir() else "holds no saved test predictions (predictions/*/*.npz)"
        raise FileNotFoundError(f"{out_dir} {what}: there are no runs to analyze. Run the experiments first "
                                "(e.g. python -m emm_lib.study table1), or pass the --results-dir and --profile "
                                "they were run with.")
    path = out_dir / PAIR_VARIANCES
    df = merge_pair_variances(pd.read_csv(path) if path.exists() else None, pair_variances(out_dir))
    with atomic_write(path) as fh:
        df.to_csv(fh, index=False)
    return path


PAIR_KEY = ["key", "seed", "task", "model_a", "model_b"]


def merge_pair_variances(old: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """The recorded variances ``old`` updated with the recomputed ``new``; never fewer rows than ``old``
    keeps. Predictions are not committed, so a machine recomputes only the runs it holds: every other
    recorded pair keeps its row, unless one of its models was recomputed here with another test AUC
    than the row records (that model was trained again: the row describes a model that is gone)."""
    if old is None or old.empty:
        return new.reset_index(drop=True)
    fresh = old.set_index(PAIR_KEY).index.isin(new.set_index(PAIR_KEY).index)
    now = pd.concat([new[["key", "seed", "task", m, a]].set_axis(["key", "seed", "task", "model", "auc"], axis=1)
                     for m, a in (("model_a", "auc_a"), ("model_b", "auc_b"))]).drop_duplicates(
        ["key", "seed", "task", "model"]).set_index(["key", "seed", "task", "model"]).auc
    stale = np.zeros(len(old), bool)
    for m, a in (("model_a", "auc_a"), ("model_b", "auc_b")):
        idx = pd.MultiIndex.from_frame(old[["key", "seed", "task", m]])
        current = now.reindex(idx).to_numpy()
        stale |= ~np.isnan(current) & ~np.isclose(current, old[a].to_numpy(), rtol=0, atol=1e-12)
    out = pd.concat([old[~fresh & ~stale], new], ignore_index=True)
    return out.sort_values(PAIR_KEY, kind="stable").reset_index(drop=True)


def read_pair_variances(out_dir: str | Path, results: pd.DataFrame) -> pd.DataFrame:
    """The committed pair variances with the results' ``dataset`` names (``census/leak-free`` ...)."""
    path = Path(out_dir) / PAIR_VARIANCES
    if not path.exists():
        return pd.DataFrame(columns=["dataset", "seed", "task", "model_a", "model_b", "var_diff"])
    pv = pd.read_csv(path)
    names = {d.replace("/", "_"): d for d in results.dataset.unique()}
    labels = {**{m.replace(":", "_"): m for m in results.model.unique()}, **{m: m for m in results.model.unique()}}
    pv["dataset"] = pv.key.map(names)
    pv["model_a"], pv["model_b"] = pv.model_a.map(labels), pv.model_b.map(labels)
    return pv.dropna(subset=["dataset", "model_a", "model_b"])
