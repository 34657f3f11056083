"""Label leakage: how well does one feature alone predict a task?

Each sparse feature is target-encoded on ``train`` (the positive rate of each category;
categories unseen in train get the overall rate) and scored by AUC on ``val``. A feature
that alone comes close to the task's label is a near-copy of it (Census ``marital``:
the household-role columns, see :data:`emm_lib.data.census.FEATURE_SETS`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..metrics import auc
from .types import Dataset

__all__ = ["single_feature_auc", "finding"]


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


def finding(summary: pd.DataFrame, leaks: dict[str, pd.DataFrame], removed: Sequence[str] = ()) -> str:
    """The data chapter's conclusion in words, computed from what it shows: each task's positive rate
    in training (``summary``: :meth:`Dataset.summary`) and, per task (``leaks``: task ->
    :func:`single_feature_auc`), the AUC of the ``removed`` columns (the leak-free feature set's) where
    they are among its best features, else its best single feature."""
    from .census import TASK_NAMES as TASKS

    rate = summary[summary.split == "train"].set_index("task").positive_rate
    shares = [f"{100 * r:.1f}%" + (" are positive" if i == 0 else "") + f" for {TASKS.get(t, t)}"
              for i, (t, r) in enumerate(rate.items())]
    text = (f"**In these data:** of the training rows, {', '.join(shares[:-1])}"
            f"{' and ' if len(shares) > 1 else ''}{shares[-1]}; {TASKS.get(rate.idxmin(), rate.idxmin())} is the "
            f"{'rarer' if len(shares) == 2 else 'rarest'} label.")
    for task, leak in leaks.items():
        name, cut = TASKS.get(task, task), leak[leak.feature.isin(list(removed))]
        if len(cut):
            one = len(cut) == 1
            span = f"{cut.auc.min():.3f}" + ("" if one else f"\u2013{cut.auc.max():.3f}")
            count = {2: "two", 3: "three", 4: "four"}.get(len(cut), str(len(cut)))
            text += (f" The {'column' if one else f'{count} columns'} that the leak-free rows remove "
                     f"({', '.join(f.replace('_', ' ') for f in cut.feature)}) alone predict{'s' if one else ''} "
                     f"{name} at validation AUC {span}: so close to the label that {name} can hardly tell one "
                     "model from another.")
        else:
            top = leak.iloc[0]
            text += (f" The best single feature for {name} ({top.feature.replace('_', ' ')}) reaches validation "
                     f"AUC {top.auc:.3f}.")
    return text
