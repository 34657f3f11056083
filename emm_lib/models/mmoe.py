"""MMoE: Multi-gate Mixture-of-Experts (Ma et al., KDD 2018, Sec. 4.2).

``f_k(x) = sum_i g_k(x)_i f_i(x)`` with ``g_k(x) = softmax(W_gk x)`` (Eq. 5-6): shared
experts ``f_i``, one softmax gate per task (a linear map of the input, no bias, as in
Eq. 6), then task towers ``y_k = h_k(f_k(x))``.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from ..data.types import Batch, FeatureSpec
from ..features import FeatureEmbedding
from .base import MultiTaskModel, register_model
from .experts import (ExpertGroup, GroupedLinear, TaskTowers, check_sizes, fused_rows, mix, mix_fm, rows, softmax,
                      widths_of)

__all__ = ["MMoE"]


@register_model("mmoe")
class MMoE(MultiTaskModel):
    """Shared experts, a softmax gate per task, a tower per task.

    Census setting: 12 experts of widths ``(16,)``, towers ``(8,)`` (config.MODEL_SIZES).
    The experts run as one batched matmul per layer (:class:`~.experts.ExpertGroup`).
    """

    def __init__(
        self,
        spec: FeatureSpec,
        tasks: Sequence[str],
        n_experts: int = 12,
        expert: Sequence[int] = (16,),
        tower: Sequence[int] = (8,),
        embedding_dim: int = 4,
        dropout: float = 0.0,
        **unknown: Any,
    ) -> None:
        super().__init__(spec, tasks)
        check_sizes("mmoe", unknown, ["n_experts", "expert", "tower", "embedding_dim", "dropout"],
                    n_experts=n_experts)
        expert = widths_of("expert", "mmoe", expert)
        tower = widths_of("tower", "mmoe", tower, allow_empty=True)
        self.config = dict(n_experts=n_experts, expert=expert, tower=tower,
                           embedding_dim=embedding_dim, dropout=dropout)
        self.embedding = FeatureEmbedding(spec, embedding_dim)
        d = self.embedding.out_features
        self.experts = ExpertGroup(n_experts, d, expert, dropout)
        self.gates = GroupedLinear(len(self.tasks), d, n_experts, bias=False)  # one W_gk per task
        self.towers = TaskTowers(len(self.tasks), expert[-1], tower, dropout)

    def gate_weights(self, x: Tensor) -> Tensor:
        """``g_k(x)`` for every task: (B, T, n_experts), rows sum to 1."""
        return softmax(self.gates(x))

    def forward(self, batch: Batch) -> Tensor:
        if self.fast:
            return self._forward_fused(batch)
        x = self.embedding(batch)
        mixed = mix(self.gate_weights(x), self.experts(x))  # (B, T, E), (B, E, d) -> (B, T, d)
        return self.towers(mixed)

    def _forward_fused(self, batch: Batch) -> Tensor:
        """:meth:`forward` feature-major (width, B): the experts' first layer and the gates are one matmul."""
        x = self.embedding.feature_major(batch)
        first, g = fused_rows(x, [rows(self.experts.linears[0]), rows(self.gates)])
        gates = torch.softmax(g.view(len(self.tasks), self.experts.n, -1), dim=1)
        return self.towers.forward_fm(mix_fm(gates, self.experts.forward_fm(x, first)))
