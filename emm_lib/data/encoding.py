"""Small preprocessing helpers shared by the dataset loaders (Census, AliExpress, Ali-CCP):
label encoding with an index for unseen values, and min-max scaling fitted on training data."""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["label_encode", "min_max"]


def label_encode(train: pd.Series | np.ndarray, *others: pd.Series | np.ndarray) -> tuple[list[np.ndarray], int]:
    """Encode ``train`` values (sorted) as 1..K and ``others`` with the same map, 0 for
    values unseen in ``train``. Returns ``([codes_train, *codes_others], K + 1)``."""
    train = pd.Series(train) if not isinstance(train, pd.Series) else train
    vocab = pd.Index(pd.unique(train)).sort_values()
    out = []
    for s in (train, *others):
        codes = vocab.get_indexer(pd.Series(s) if not isinstance(s, pd.Series) else s)
        out.append((codes + 1).astype(np.int64))  # -1 (unseen) -> 0
    return out, len(vocab) + 1


def min_max(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Scale columns to [0, 1] with the training min/max (constant columns -> 0); no clipping."""
    lo, hi = train.min(axis=0), train.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return [((x - lo) / span).astype(np.float32) for x in (train, *others)]
