"""AITM: Adaptive Information Transfer Multi-task framework (Xi et al., KDD 2021, Sec. 3).

For tasks in funnel order ``1..T`` (e.g. click -> purchase):

* ``q_t = bottom_t(x)``: each task's own representation of the shared embedding (the
  paper's per-task "Tower" network before the AIT module);
* ``p_{t-1} = g_{t-1}(z_{t-1})``: the information transferred from the previous task, an
  MLP (one ReLU layer) on the previous task's AIT output;
* AIT module (Eq. 3-5): for ``u`` in ``{p_{t-1}, q_t}``, ``w_u = <h1(u), h2(u)> / sqrt(d)``,
  softmax over the two ``w_u``, ``z_t = sum_u w_u h3(u)``; ``h1, h2, h3`` are linear maps
  (queries, keys, values); ``z_1 = q_1``;
* ``logit_t = tower_t(z_t)``.

Behavioural Expectation Calibrator (Eq. 7): ``L_lc = alpha * mean_rows sum_{t>=2}
max(p_t - p_{t-1}, 0)`` with ``p_t = sigmoid(logit_t)``: a later task of the funnel may not be
more probable than its predecessor. It is returned by :meth:`AITM.auxiliary_loss` and added to
the BCE by the trainer. ``alpha=0.6`` as in the paper's experiments.

Caution: the calibrator assumes a funnel (task ``t`` implies task ``t-1``). Census-Income's
two tasks (income > 50K, never married) are *not* a funnel, so the constraint is then an
arbitrary prior; pass ``alpha=0`` to switch it off (the transfer chain still follows
``task_order``).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..data.types import Batch, FeatureSpec
from ..features import FeatureEmbedding
from .base import MultiTaskModel, mlp, register_model
from .experts import ExpertGroup, TaskTowers, check_sizes, softmax, widths_of

__all__ = ["AITM", "AITAttention", "calibrator_loss"]


class AITAttention(nn.Module):
    """The AIT module: attention pooling over the pair ``(p_{t-1}, q_t)`` (paper Eq. 3-5)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query = nn.Linear(dim, dim)  # h1
        self.key = nn.Linear(dim, dim)  # h2
        self.value = nn.Linear(dim, dim)  # h3
        self.scale = 1.0 / math.sqrt(dim)

    def weights(self, u: Tensor) -> Tensor:
        """Softmax attention weights over the set ``u`` of shape (B, n, d): (B, n)."""
        return softmax((self.query(u) * self.key(u)).sum(-1) * self.scale)

    def forward(self, p_prev: Tensor, q: Tensor) -> Tensor:
        u = torch.stack([p_prev, q], dim=1)  # (B, 2, d)
        return (self.weights(u).unsqueeze(-1) * self.value(u)).sum(1)


def calibrator_loss(logits: Tensor, order: Sequence[int] | Tensor, alpha: float) -> Tensor:
    """``alpha * mean_rows sum_{t>=2} relu(sigmoid(l_t) - sigmoid(l_{t-1}))`` along ``order`` (Eq. 7).

    ``order`` as a tensor on the logits' device needs no host-to-device copy (a CUDA graph forbids one)."""
    if not isinstance(order, Tensor):
        order = torch.tensor(list(order), device=logits.device)
    p = torch.sigmoid(logits.float()).index_select(1, order)
    return alpha * torch.relu(p[:, 1:] - p[:, :-1]).sum(1).mean()


@register_model("aitm")
class AITM(MultiTaskModel):
    """Per-task bottoms, an AIT module per transfer step along ``task_order``, a tower per task.

    Census setting: ``bottom=(16,)``, ``tower=(8,)`` (config.MODEL_SIZES). ``alpha``: calibrator
    weight (0 switches it off); ``task_order``: the funnel order (default: ``tasks``).
    ``forward`` returns logits in ``tasks`` order whatever ``task_order`` is.
    """

    def __init__(
        self,
        spec: FeatureSpec,
        tasks: Sequence[str],
        bottom: Sequence[int] = (16,),
        tower: Sequence[int] = (8,),
        embedding_dim: int = 4,
        dropout: float = 0.0,
        alpha: float = 0.6,
        task_order: Sequence[str] | None = None,
        **unknown: Any,
    ) -> None:
        super().__init__(spec, tasks)
        check_sizes("aitm", unknown, ["bottom", "tower", "embedding_dim", "dropout", "alpha", "task_order"])
        bottom = widths_of("bottom", "aitm", bottom)
        tower = widths_of("tower", "aitm", tower, allow_empty=True)
        if not alpha >= 0:
            raise ValueError(f"aitm: alpha (calibrator weight) must be >= 0, got {alpha}; use 0 to switch it off.")
        order = list(self.tasks) if task_order is None else [str(t) for t in task_order]
        if sorted(order) != sorted(self.tasks):
            raise ValueError(f"aitm: task_order {order} must list each of the model's tasks {list(self.tasks)} once.")
        self.config = dict(bottom=bottom, tower=tower, embedding_dim=embedding_dim, dropout=dropout,
                           alpha=float(alpha), task_order=None if task_order is None else order)
        self.alpha = float(alpha)
        self.order = [self.tasks.index(t) for t in order]  # funnel position -> column in self.tasks
        T, d = len(self.tasks), bottom[-1]
        self.embedding = FeatureEmbedding(spec, embedding_dim)
        self.bottoms = ExpertGroup(T, self.embedding.out_features, bottom, dropout)  # q_t, in funnel order
        self.transfer = nn.ModuleList(mlp(d, [d], dropout, batch_norm=False) for _ in range(T - 1))  # g_t
        self.ait = nn.ModuleList(AITAttention(d) for _ in range(T - 1))
        self.towers = TaskTowers(T, d, tower, dropout)  # in funnel order
        inverse = [0] * T
        for pos, col in enumerate(self.order):
            inverse[col] = pos
        self.register_buffer("to_task_order", torch.tensor(inverse), persistent=False)
        self.register_buffer("funnel_order", torch.tensor(self.order), persistent=False)

    def representations(self, batch: Batch) -> Tensor:
        """``z_t`` for every task, in funnel order: (B, T, d)."""
        q = self.bottoms(self.embedding(batch))
        z = [q[:, 0]]
        for t in range(1, q.shape[1]):
            z.append(self.ait[t - 1](self.transfer[t - 1](z[-1]), q[:, t]))
        return torch.stack(z, dim=1)

    def forward(self, batch: Batch) -> Tensor:
        logits = self.towers(self.representations(batch))  # funnel order
        return logits[:, self.to_task_order]  # self.tasks order

    def auxiliary_loss(self, logits: Tensor, batch: Batch) -> Tensor | None:
        """The behavioural expectation calibrator (``None`` when ``alpha == 0`` or one task)."""
        if self.alpha == 0 or len(self.tasks) < 2:
            return None
        return calibrator_loss(logits, self.funnel_order, self.alpha)
