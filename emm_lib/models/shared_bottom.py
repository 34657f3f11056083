"""Shared-Bottom (Caruana, 1997): one shared MLP bottom, one tower per task."""
from __future__ import annotations

from typing import Any, Sequence

from torch import Tensor

from ..data.types import Batch, FeatureSpec
from ..features import FeatureEmbedding
from .base import MultiTaskModel, mlp, register_model
from .experts import TaskTowers, check_sizes, widths_of

__all__ = ["SharedBottom"]


@register_model("shared_bottom")
class SharedBottom(MultiTaskModel):
    """``logit_t = tower_t(bottom(embed(x)))``: every task reads the same bottom representation.

    Census setting: ``bottom=(16,)``, ``tower=(8,)`` (config.MODEL_SIZES).
    """

    def __init__(
        self,
        spec: FeatureSpec,
        tasks: Sequence[str],
        bottom: Sequence[int] = (16,),
        tower: Sequence[int] = (8,),
        embedding_dim: int = 4,
        dropout: float = 0.0,
        **unknown: Any,
    ) -> None:
        super().__init__(spec, tasks)
        check_sizes("shared_bottom", unknown, ["bottom", "tower", "embedding_dim", "dropout"])
        bottom = widths_of("bottom", "shared_bottom", bottom)
        tower = widths_of("tower", "shared_bottom", tower, allow_empty=True)
        self.config = dict(bottom=bottom, tower=tower, embedding_dim=embedding_dim, dropout=dropout)
        self.embedding = FeatureEmbedding(spec, embedding_dim)
        self.bottom = mlp(self.embedding.out_features, bottom, dropout)
        self.towers = TaskTowers(len(self.tasks), bottom[-1], tower, dropout)

    def forward(self, batch: Batch) -> Tensor:
        return self.towers(self.bottom(self.embedding(batch)))
