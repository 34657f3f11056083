"""Label leakage: how well does one feature alone predict a task?

Each sparse feature is target-encoded on ``train`` (the positive rate of each category;
categories unseen in train get the overall rate) and scored by AUC on ``val``. A feature
that alone comes close to the task's label is a near-copy of it (Census ``marital``:
the household-role columns, see :data:`emm_lib.data.census.FEATURE_SETS`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..metrics import auc
from .types import Dataset

__all__ = ["single_feature_auc"]


def single_feature_auc(ds: Dataset, task: str, split: str = "val", top: int | None = None) -> pd.DataFrame:
    """Validation AUC of every sparse feature alone for ``task``, best first."""
    if task not in ds.tasks:
        raise ValueError(f"Task {task!r} is not in dataset {ds.name!r}; its tasks are {list(ds.tasks)}.")
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test' (the categories are encoded on train), got {split!r}.")
    ti = list(ds.tasks).index(task)
    y_tr = ds.train.y[:, ti].numpy().astype(np.float64)
    ev = getattr(ds, split)
    y_ev = ev.y[:, ti]
    rows = []
    for j, feat in enumerate(ds.spec.sparse):
        rate = pd.Series(y_tr).groupby(ds.train.sparse[:, j].numpy()).mean()
        score = pd.Series(ev.sparse[:, j].numpy()).map(rate).fillna(y_tr.mean()).to_numpy()
        rows.append({"feature": feat.name, "categories": feat.cardinality,
                     "auc": auc(y_ev, score, task=task)})
    out = pd.DataFrame(rows).sort_values("auc", ascending=False, ignore_index=True)
    return out.head(top) if top else out
