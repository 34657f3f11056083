"""AdaTT: Adaptive Task-to-Task Fusion Network (Li et al., KDD 2023, Sec. 3).

Every fusion level holds ``n_specific`` experts per task (and, in the general AdaTT,
``n_shared`` shared experts). Each task's *fusion unit* combines

* ``AllExpertGF``: a softmax gate, computed from that task's level input, over the outputs
  of *all* experts of the level (task-to-task fusion), and
* ``NativeExpertLF``: a residual linear combination ``v_k^T E_k`` of the task's own
  experts with learnable weights ``v_k`` (a plain ``+ E_k`` when the task has one expert),

``f_k = sum_e G_k(x_k)_e E_e + v_k^T E_k``. The fused output of task ``k`` is task ``k``'s
input at the next level, where task ``k``'s experts and gate read it; towers sit on the
last level's task outputs.

Variants (paper Sec. 3.2 / 3.3; the authors' reference code calls them ``att_sp`` and ``att_g``):

* ``n_shared=0`` -- **AdaTT-sp**: task-specific fusion units only.
* ``n_shared>0`` -- **general AdaTT**: shared experts plus a *shared fusion unit* built like a
  task unit (gate from the shared module's own input over all experts + linear residual over
  the shared experts). At every level but the last its fused output is the shared experts'
  input (and its gate's input) at the next level; the last level has shared experts but no
  shared unit (nothing reads it). Level 1: every module reads the embedding.

Experts are MLPs with vector outputs (not scalars), so any number of levels composes.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..data.types import Batch, FeatureSpec
from ..features import FeatureEmbedding
from .base import MultiTaskModel, register_model
from .experts import (ExpertGroup, GroupedLinear, TaskTowers, check_sizes, fused_rows, mix, mix_fm, rows, softmax,
                      widths_of)

__all__ = ["AdaTT", "FusionLevel"]

RESIDUAL_INITS = ("sum", "mean", "uniform")


def _native_weights(module: nn.Module, name: str, shape: tuple[int, ...], init: str) -> None:
    """Register ``v`` (NativeExpertLF weights): learnable when a module has > 1 expert, else fixed 1."""
    m = shape[-1]
    if m == 1:
        module.register_buffer(name, torch.ones(shape), persistent=False)
        return
    if init == "sum":
        v = torch.ones(shape)
    elif init == "mean":
        v = torch.full(shape, 1.0 / m)
    else:  # "uniform": U(-sqrt(1/m), sqrt(1/m)), the reference implementation's choice
        v = torch.empty(shape).uniform_(-math.sqrt(1.0 / m), math.sqrt(1.0 / m))
    module.register_parameter(name, nn.Parameter(v))


class FusionLevel(nn.Module):
    """One AdaTT fusion level. Input ``(B, D)`` (level 1) or ``(B, G, D)`` (one row per module:
    tasks, then the shared module if any); output ``(B, G', d)`` with ``G' = T + 1`` when a shared
    fusion unit exists at this level, else ``T``.

    Experts are ordered ``[task 0 x n_specific, ..., task T-1 x n_specific, shared x n_shared]``.
    """

    def __init__(self, n_tasks: int, n_specific: int, n_shared: int, in_features: int,
                 expert: Sequence[int], dropout: float, last: bool, residual_init: str) -> None:
        super().__init__()
        self.n_tasks, self.n_specific, self.n_shared = n_tasks, n_specific, n_shared
        self.shared_unit = n_shared > 0 and not last
        n_experts = n_tasks * n_specific + n_shared
        n_units = n_tasks + int(self.shared_unit)
        self.experts = ExpertGroup(n_experts, in_features, expert, dropout)
        self.gates = GroupedLinear(n_units, in_features, n_experts, bias=False)  # AllExpertGF, one per unit
        _native_weights(self, "task_residual", (n_tasks, n_specific), residual_init)
        if self.shared_unit:
            _native_weights(self, "shared_residual", (n_shared,), residual_init)
        owner = [t for t in range(n_tasks) for _ in range(n_specific)] + [n_tasks] * n_shared
        self.register_buffer("owner", torch.tensor(owner), persistent=False)
        # Where each native weight sits in the (units x experts) mixing matrix: unit u, its own expert e.
        own = [(u, e) for u in range(n_units) for e in range(n_experts) if owner[e] == u]
        self.register_buffer("native_index", torch.tensor([u * n_experts + e for u, e in own]), persistent=False)
        self.n_units, self.n_experts = n_units, n_experts

    def native_matrix(self) -> Tensor:
        """NativeExpertLF as a (units, experts) matrix: row ``u`` holds ``v_u`` on unit ``u``'s own experts."""
        v = [self.task_residual.flatten()] + ([self.shared_residual] if self.shared_unit else [])
        flat = self.task_residual.new_zeros(self.n_units * self.n_experts)
        return flat.index_put((self.native_index,), torch.cat(v)).view(self.n_units, self.n_experts)

    def forward(self, h: Tensor) -> Tensor:
        if h.dim() == 2:  # level 1: every module reads the embedding
            experts, gate_in = self.experts(h), h
        else:
            experts, gate_in = self.experts(h[:, self.owner]), h[:, : self.n_units]
        gates = softmax(self.gates(gate_in))  # AllExpertGF weights, (B, units, E)
        # sum_e G_u,e E_e + v_u^T E_u in one weighted sum: add v_u on unit u's own experts.
        return mix(gates + self.native_matrix(), experts)

    def forward_fm(self, h: Tensor) -> Tensor:
        """:meth:`forward` feature-major: h (D, B) or (G, D, B) -> (G', d, B)."""
        B = h.shape[-1]
        if h.dim() == 2:  # level 1: the experts' first layer and the gates read h: one matmul
            first, g = fused_rows(h, [rows(self.experts.linears[0]), rows(self.gates)])
            experts, g = self.experts.forward_fm(h, first), g.view(self.n_units, self.n_experts, B)
        else:
            experts, g = self.experts.forward_fm(h.index_select(0, self.owner)), self.gates.forward_fm(h[: self.n_units])
        return mix_fm(torch.softmax(g, dim=1) + self.native_matrix().unsqueeze(-1), experts)


@register_model("adatt")
class AdaTT(MultiTaskModel):
    """AdaTT fusion levels, then a tower per task.

    Census setting (config.MODEL_SIZES): 2 levels x (2 specific per task x 2 tasks + 2 shared)
    experts of widths ``(16,)`` = 12 experts, towers ``(8,)``: the general AdaTT. Pass
    ``n_shared=0`` for AdaTT-sp. ``residual_init``: initial NativeExpertLF weights ``v``
    (learnable when a task has more than one expert; we found no initialisation stated in the paper):
    ``"mean"`` (default, 1/m: the residual starts as the mean of the native experts, so its scale
    does not grow with ``n_specific`` and one expert gives the paper's plain ``+E_k``), ``"sum"``
    (all 1) or ``"uniform"`` (U(+-sqrt(1/m)), the authors' reference code).
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
        residual_init: str = "mean",
        **unknown: Any,
    ) -> None:
        super().__init__(spec, tasks)
        check_sizes("adatt", unknown, ["n_levels", "n_specific", "n_shared", "expert", "tower", "embedding_dim",
                                       "dropout", "residual_init"], n_levels=n_levels, n_specific=n_specific)
        if not isinstance(n_shared, int) or n_shared < 0:
            raise ValueError(f"adatt: n_shared must be an integer >= 0 (0 = AdaTT-sp), got {n_shared!r}.")
        if residual_init not in RESIDUAL_INITS:
            raise ValueError(f"adatt: residual_init must be one of {RESIDUAL_INITS}, got {residual_init!r}.")
        expert = widths_of("expert", "adatt", expert)
        tower = widths_of("tower", "adatt", tower, allow_empty=True)
        self.config = dict(n_levels=n_levels, n_specific=n_specific, n_shared=n_shared, expert=expert,
                           tower=tower, embedding_dim=embedding_dim, dropout=dropout, residual_init=residual_init)
        self.embedding = FeatureEmbedding(spec, embedding_dim)
        T = len(self.tasks)
        d = self.embedding.out_features
        self.levels = nn.ModuleList()
        for j in range(n_levels):
            self.levels.append(FusionLevel(T, n_specific, n_shared, d, expert, dropout,
                                           last=j == n_levels - 1, residual_init=residual_init))
            d = expert[-1]
        self.towers = TaskTowers(T, d, tower, dropout)

    @property
    def variant(self) -> str:
        return "AdaTT-sp" if self.config["n_shared"] == 0 else "AdaTT (general, shared fusion unit)"

    def forward(self, batch: Batch) -> Tensor:
        if self.fast:  # the same maths feature-major (FusionLevel.forward_fm)
            h = self.embedding.feature_major(batch)
            for level in self.levels:
                h = level.forward_fm(h)
            return self.towers.forward_fm(h)
        h = self.embedding(batch)
        for level in self.levels:
            h = level(h)
        return self.towers(h)
