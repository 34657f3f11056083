"""PLE: Progressive Layered Extraction (Tang et al., RecSys 2020, Sec. 4).

Each extraction level (a CGC, Sec. 4.2) has ``n_specific`` experts per task and
``n_shared`` shared experts. Task ``k``'s gate mixes its own and the shared experts
(Eq. 2-4: ``g^k(x) = w^k(x) S^k(x)``, ``w^k(x) = softmax(W^k_g x)``); every level but the
last also has a shared gate over *all* experts of the level (Sec. 4.3). At level ``j > 1``
every module reads its own output of level ``j - 1`` (Eq. 5): task ``k``'s experts and gate
read ``g^{k,j-1}``, the shared experts and gate read ``g^{s,j-1}``. Towers on the last
level's task outputs (Eq. 6). With ``n_levels=1`` PLE is CGC.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..data.types import Batch, FeatureSpec
from ..features import FeatureEmbedding
from .base import MultiTaskModel, register_model
from .experts import (ExpertGroup, GroupedLinear, TaskTowers, check_sizes, fused_rows, mix, mix_fm, rows, softmax,
                      widths_of)

__all__ = ["PLE", "ExtractionLevel"]


class ExtractionLevel(nn.Module):
    """One CGC level. Input: ``(B, D)`` (level 1: every module reads the embedding) or
    ``(B, T + 1, D)`` (task modules, then the shared module). Output: ``(B, T + 1, d)`` with
    the shared module's output last, or ``(B, T, d)`` for the last level (no shared gate).

    Experts are ordered ``[task 0 x n_specific, ..., task T-1 x n_specific, shared x n_shared]``.
    """

    def __init__(self, n_tasks: int, n_specific: int, n_shared: int, in_features: int,
                 expert: Sequence[int], dropout: float, last: bool) -> None:
        super().__init__()
        self.n_tasks, self.n_specific, self.n_shared, self.last = n_tasks, n_specific, n_shared, last
        n_experts = n_tasks * n_specific + n_shared
        self.experts = ExpertGroup(n_experts, in_features, expert, dropout)
        self.task_gates = GroupedLinear(n_tasks, in_features, n_specific + n_shared, bias=False)
        self.shared_gate = None if last else nn.Linear(in_features, n_experts, bias=False)
        # Which module's input each expert reads, and which experts each task gate mixes.
        owner = [t for t in range(n_tasks) for _ in range(n_specific)] + [n_tasks] * n_shared
        shared = list(range(n_tasks * n_specific, n_experts))
        select = [list(range(t * n_specific, (t + 1) * n_specific)) + shared for t in range(n_tasks)]
        self.register_buffer("owner", torch.tensor(owner), persistent=False)
        self.register_buffer("select", torch.tensor(select), persistent=False)

    def forward(self, h: Tensor) -> Tensor:
        if h.dim() == 2:  # level 1: one input for every module
            experts, task_in, shared_in = self.experts(h), h, h
        else:
            experts, task_in, shared_in = self.experts(h[:, self.owner]), h[:, : self.n_tasks], h[:, self.n_tasks]
        w_task = softmax(self.task_gates(task_in))  # (B, T, n_specific + n_shared)
        # Place task k's weights on its own + the shared experts (S^k), zeros elsewhere: (B, T, E).
        weights = w_task.new_zeros(w_task.shape[0], self.n_tasks, experts.shape[1])
        weights = weights.scatter(2, self.select.expand(w_task.shape[0], -1, -1), w_task)
        if self.shared_gate is not None:  # the shared gate weighs all experts
            w_shared = softmax(self.shared_gate(shared_in)).unsqueeze(1)
            weights = torch.cat([weights, w_shared], dim=1)
        return mix(weights, experts)

    def forward_fm(self, h: Tensor) -> Tensor:
        """:meth:`forward` feature-major: h (D, B) or (T + 1, D, B) -> (T + 1 or T, d, B)."""
        T, B = self.n_tasks, h.shape[-1]
        if h.dim() == 2:  # level 1: the experts' first layer and all gates read h: one matmul
            maps = [rows(self.experts.linears[0]), rows(self.task_gates)]
            if self.shared_gate is not None:
                maps.append(rows(self.shared_gate))
            first, tg, *sg = fused_rows(h, maps)
            experts = self.experts.forward_fm(h, first)
            w_task = tg.view(T, -1, B)
            shared = sg[0] if sg else None
        else:
            experts = self.experts.forward_fm(h.index_select(0, self.owner))
            w_task = self.task_gates.forward_fm(h[:T])
            shared = None if self.shared_gate is None else torch.mm(self.shared_gate.weight, h[T])
        w_task = torch.softmax(w_task, dim=1)  # (T, n_specific + n_shared, B)
        weights = w_task.new_zeros(T, experts.shape[0], B).scatter(
            1, self.select.unsqueeze(-1).expand(-1, -1, B), w_task)
        if shared is not None:
            weights = torch.cat([weights, torch.softmax(shared, dim=0).unsqueeze(0)])
        return mix_fm(weights, experts)


@register_model("ple")
class PLE(MultiTaskModel):
    """Stacked CGC extraction levels, then a tower per task.

    Census setting: 2 levels x (2 specific per task x 2 tasks + 2 shared) experts of widths
    ``(16,)`` = 12 experts, towers ``(8,)`` (config.MODEL_SIZES). ``expert`` gives the widths
    of every expert at every level.
    """

    def __init__(
        self,
        spec: FeatureSpec,
        tasks: Sequence[str],
        n_levels: int = 2,
        n_specific: int = 2,
        n_shared: int = 2,
        expert: Sequence[int] = (16,),
        tower: Sequence[int] = (8,),
        embedding_dim: int = 4,
        dropout: float = 0.0,
        **unknown: Any,
    ) -> None:
        super().__init__(spec, tasks)
        check_sizes("ple", unknown, ["n_levels", "n_specific", "n_shared", "expert", "tower", "embedding_dim",
                                     "dropout"], n_levels=n_levels, n_specific=n_specific, n_shared=n_shared)
        expert = widths_of("expert", "ple", expert)
        tower = widths_of("tower", "ple", tower, allow_empty=True)
        self.config = dict(n_levels=n_levels, n_specific=n_specific, n_shared=n_shared, expert=expert,
                           tower=tower, embedding_dim=embedding_dim, dropout=dropout)
        self.embedding = FeatureEmbedding(spec, embedding_dim)
        T = len(self.tasks)
        d = self.embedding.out_features
        self.levels = nn.ModuleList()
        for j in range(n_levels):
            self.levels.append(ExtractionLevel(T, n_specific, n_shared, d, expert, dropout, last=j == n_levels - 1))
            d = expert[-1]
        self.towers = TaskTowers(T, d, tower, dropout)

    def forward(self, batch: Batch) -> Tensor:
        if self.fast:  # the same maths feature-major (ExtractionLevel.forward_fm)
            h = self.embedding.feature_major(batch)
            for level in self.levels:
                h = level.forward_fm(h)
            return self.towers.forward_fm(h)
        h = self.embedding(batch)
        for level in self.levels:
            h = level(h)
        return self.towers(h)
