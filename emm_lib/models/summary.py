"""Parameter counts of several models side by side (embedding separated from the rest)."""
from __future__ import annotations

from typing import Mapping

import pandas as pd
from torch import nn

from ..features import FeatureEmbedding
from .base import count_parameters

__all__ = ["parameter_table"]


def parameter_table(models: Mapping[str, nn.Module]) -> pd.DataFrame:
    """One row per model: total, trainable, frozen, embedding and non-embedding parameters.

    ``embedding`` counts the parameters of every :class:`~emm_lib.features.FeatureEmbedding`
    inside the model (its size depends on the sparse features' cardinalities);
    ``non_embedding = total - embedding`` is what the architecture itself adds.
    """
    rows = []
    for name, model in models.items():
        if not isinstance(model, nn.Module):
            raise ValueError(f"parameter_table needs torch modules; {name!r} is a {type(model).__name__}.")
        counts = count_parameters(model)
        emb = sum(p.numel() for m in model.modules() if isinstance(m, FeatureEmbedding) for p in m.parameters())
        rows.append({"model": name, **counts, "embedding": emb, "non_embedding": counts["total"] - emb})
    return pd.DataFrame(rows, columns=["model", "total", "trainable", "frozen", "embedding", "non_embedding"])
