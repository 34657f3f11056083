"""Evaluation metric of the paper: AUC per task (scikit-learn's roc_auc_score)."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score
from torch import Tensor

__all__ = ["auc", "OneClassError"]


class OneClassError(ValueError):
    """AUC is undefined when the labels hold one class only."""


def auc(labels: Tensor | np.ndarray, scores: Tensor | np.ndarray, task: str = "task") -> float:
    """ROC AUC of ``scores`` against 0/1 ``labels``; a clear error naming ``task`` when the labels are not
    0/1 or hold one class only."""
    y = labels.detach().cpu().numpy() if isinstance(labels, Tensor) else np.asarray(labels)
    s = scores.detach().float().cpu().numpy() if isinstance(scores, Tensor) else np.asarray(scores)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"labels and scores must be 1-D of equal length, got {y.shape} and {s.shape}.")
    if not np.isfinite(s).all():
        raise ValueError(f"Scores for task {task!r} contain NaN or inf: the model diverged "
                         "(try a lower learning rate).")
    other = ~np.isin(y, (0, 1))  # NaN too
    if other.any():
        seen = sorted({str(v) for v in np.unique(y[other])[:5].tolist()})
        raise ValueError(f"AUC for task {task!r} needs 0/1 labels, but {int(other.sum())} of {y.size} are not "
                         f"(e.g. {seen}): AUC here is binary. Map the classes to 0/1 (soft or multi-class labels "
                         "have no binary AUC), or drop the rows without a label.")
    classes = np.unique(y)
    if classes.size < 2:
        raise OneClassError(
            f"AUC for task {task!r} is undefined: the split holds only label {classes.tolist()} "
            f"in {y.size} rows. Use a larger or stratified split."
        )
    return float(roc_auc_score(y, s))
