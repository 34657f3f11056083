"""Groups of independent MLPs (experts, task towers) evaluated as batched matmuls.

MMoE, PLE and AdaTT run many small experts side by side. Looping over them costs one
kernel launch per layer per expert; here ``n`` experts of the same shape are one
:class:`GroupedLinear` per layer (a single matmul when all experts read the same input,
one ``bmm`` when each reads its own), followed by one ``BatchNorm1d`` over the ``n * width``
channels. BatchNorm normalises every channel separately, so this is *exactly* ``n``
independent :func:`emm_lib.models.base.mlp` experts (same initialisation distribution,
same batch statistics, same running statistics); :meth:`ExpertGroup.expert_as_mlp` returns
expert ``i`` as such an ``mlp`` and the tests check the identity. :func:`mix` forms the
gate-weighted sums of expert outputs used by MMoE, PLE and AdaTT.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor, nn

import torch.nn.functional as F

from ..akf_fused import batch_norm_args, batch_norm_fm
from ..features import EmbeddedBatch
from .base import mlp

__all__ = ["GroupedLinear", "ExpertGroup", "TaskTowers", "mix", "softmax", "check_sizes", "widths_of",
           "rows", "fused_rows", "mix_fm"]


class GroupedLinear(nn.Module):
    """``n`` independent affine maps ``y_i = x_i W_i + b_i``.

    Input ``(B, in)`` (every map reads the same row) or ``(B, n, in)`` (map ``i`` reads
    ``x[:, i]``); output ``(B, n, out)``. Initialised like ``nn.Linear``:
    U(-1/sqrt(in), 1/sqrt(in)) for weights and biases.
    """

    def __init__(self, n: int, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        if n < 1 or in_features < 1 or out_features < 1:
            raise ValueError("GroupedLinear needs n, in_features, out_features >= 1; "
                             f"got {n}, {in_features}, {out_features}.")
        self.n, self.in_features, self.out_features = n, in_features, out_features
        self.weight = nn.Parameter(torch.empty(n, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(n, out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    # False: one map at a time (the reference path, ``model.fast = False``; same values).
    batched: bool = True

    def forward(self, x: Tensor) -> Tensor:
        if not self.batched and x.dim() in (2, 3):
            outs = [(x if x.dim() == 2 else x[:, i]) @ self.weight[i] for i in range(self.n)]
            out = torch.stack(outs, 1)
            return out + self.bias if self.bias is not None else out
        if x.dim() == 2:  # one shared input: a single (in, n*out) matmul
            w = self.weight.permute(1, 0, 2).reshape(self.in_features, self.n * self.out_features)
            out = (x @ w).view(x.shape[0], self.n, self.out_features)
        elif x.dim() == 3 and x.shape[1] == self.n:  # one input per map: a batched matmul
            out = torch.einsum("bni,nio->bno", x, self.weight)
        else:
            raise ValueError(f"GroupedLinear of {self.n} maps needs input (B, {self.in_features}) or "
                             f"(B, {self.n}, {self.in_features}); got {tuple(x.shape)}.")
        return out + self.bias if self.bias is not None else out

    def forward_fm(self, x: Tensor) -> Tensor:
        """Feature-major: x (in, B) shared or (n, in, B) one per map -> (n, out, B)."""
        if x.dim() == 2:
            W, b = rows(self)
            y = torch.mm(W, x) if b is None else torch.addmm(b.unsqueeze(1), W, x)
            return y.view(self.n, self.out_features, -1)
        Wt = self.weight.transpose(1, 2)
        return torch.bmm(Wt, x) if self.bias is None else torch.baddbmm(self.bias.unsqueeze(-1), Wt, x)

    def extra_repr(self) -> str:
        return (f"n={self.n}, in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class ExpertGroup(nn.Module):
    """``n`` independent MLP experts, each ``Linear -> BatchNorm -> ReLU (-> Dropout)`` per width.

    ``forward(x)``: ``x`` is ``(B, in)`` shared by all experts or ``(B, n, in)``; returns
    ``(B, n, widths[-1])`` -- one output *vector* per expert.
    """

    def __init__(self, n: int, in_features: int, widths: Sequence[int], dropout: float = 0.0) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if not widths or any(w < 1 for w in widths):
            raise ValueError(f"Expert widths must be a non-empty list of ints >= 1, got {widths}.")
        self.n, self.in_features, self.widths, self.dropout = n, in_features, widths, dropout
        self.linears = nn.ModuleList()
        self.norms = nn.ModuleList()
        d = in_features
        for w in widths:
            self.linears.append(GroupedLinear(n, d, w))
            self.norms.append(nn.BatchNorm1d(n * w))
            d = w
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.out_features = widths[-1]

    batched: bool = True  # False: expert by expert (the reference path; same values)

    def forward(self, x: Tensor) -> Tensor:
        if not self.batched:
            return self._forward_per_expert(x)
        h = x
        for lin, bn in zip(self.linears, self.norms):
            h = lin(h)
            b, n, w = h.shape
            h = self.drop(torch.relu(bn(h.reshape(b, n * w)))).view(b, n, w)
        return h

    def _forward_per_expert(self, x: Tensor) -> Tensor:
        """Each expert its own Linear -> BatchNorm -> ReLU chain, as separate modules would run
        (dropout drawn over all experts at once, as the batched path draws it)."""
        hs = [x if x.dim() == 2 else x[:, i] for i in range(self.n)]
        for lin, bn in zip(self.linears, self.norms):
            w = lin.out_features
            use_batch, factor, track = batch_norm_args(bn)
            outs = []
            for i, h in enumerate(hs):
                sl = slice(i * w, (i + 1) * w)
                h = F.linear(h, lin.weight[i].t(), lin.bias[i])
                h = F.batch_norm(h, bn.running_mean[sl] if track else None, bn.running_var[sl] if track else None,
                                 bn.weight[sl], bn.bias[sl], use_batch, factor, bn.eps)
                outs.append(torch.relu(h))
            hs = list(self.drop(torch.cat(outs, 1)).split(w, 1))
        return torch.stack(hs, 1)

    def forward_fm(self, x: Tensor, first: Tensor | None = None) -> Tensor:
        """Feature-major :meth:`forward`: x (in, B) or (n, in, B) -> (n, widths[-1], B). ``first``: the
        first layer's pre-activations (n * widths[0], B) when already computed (see :func:`fused_rows`)."""
        h = x
        for i, (lin, bn) in enumerate(zip(self.linears, self.norms)):
            y = first if i == 0 and first is not None else lin.forward_fm(h).reshape(-1, x.shape[-1])
            y = torch.relu(batch_norm_fm(bn, y))
            if self.dropout > 0 and self.training:  # drawn in the reference's (B, n*w) order
                y = self.drop(y.t().contiguous()).t()
            h = y.view(self.n, lin.out_features, -1)
        return h

    @torch.no_grad()
    def expert_as_mlp(self, i: int) -> nn.Sequential:
        """Expert ``i`` as a stand-alone :func:`~emm_lib.models.base.mlp` with copied weights and BN state."""
        if not 0 <= i < self.n:
            raise ValueError(f"Expert index {i} out of range [0, {self.n}).")
        seq = mlp(self.in_features, self.widths, self.dropout)
        lins = [m for m in seq if isinstance(m, nn.Linear)]
        bns = [m for m in seq if isinstance(m, nn.BatchNorm1d)]
        for lin, bn, glin, gbn in zip(lins, bns, self.linears, self.norms):
            w = glin.out_features
            lin.weight.copy_(glin.weight[i].T)
            lin.bias.copy_(glin.bias[i])
            sl = slice(i * w, (i + 1) * w)
            bn.weight.copy_(gbn.weight[sl])
            bn.bias.copy_(gbn.bias[sl])
            bn.running_mean.copy_(gbn.running_mean[sl])
            bn.running_var.copy_(gbn.running_var[sl])
            bn.num_batches_tracked.copy_(gbn.num_batches_tracked)
        return seq.train(self.training)


class TaskTowers(nn.Module):
    """One tower per task: ``mlp(in, widths) -> Linear(., 1)``, all towers batched.

    ``forward(h)``: ``h`` is ``(B, T, in)`` (task ``t`` reads ``h[:, t]``) or ``(B, in)``
    (every tower reads the same row); returns ``(B, T)`` logits.
    """

    def __init__(self, n_tasks: int, in_features: int, widths: Sequence[int], dropout: float = 0.0) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        self.hidden = ExpertGroup(n_tasks, in_features, widths, dropout) if widths else None
        self.out = GroupedLinear(n_tasks, widths[-1] if widths else in_features, 1)

    def forward(self, h: Tensor) -> Tensor:
        if self.hidden is not None:
            h = self.hidden(h)
        return self.out(h).squeeze(-1)

    def forward_fm(self, h: Tensor) -> Tensor:
        """Feature-major input (T, in, B) or (in, B) -> logits (B, T)."""
        if self.hidden is not None:
            h = self.hidden.forward_fm(h)
        return self.out.forward_fm(h).view(self.out.n, -1).t()


def rows(lin: nn.Module) -> tuple[Tensor, Tensor | None]:
    """A :class:`GroupedLinear` or ``nn.Linear`` as (weight rows (n*out, in), bias (n*out,) or None)."""
    if isinstance(lin, GroupedLinear):
        W = lin.weight.transpose(1, 2).reshape(lin.n * lin.out_features, lin.in_features)
        return W, None if lin.bias is None else lin.bias.reshape(-1)
    return lin.weight, lin.bias


def fused_rows(x: Tensor | EmbeddedBatch, maps: Sequence[tuple[Tensor, Tensor | None]]) -> list[Tensor]:
    """Several affine maps of one feature-major input x (in, B) as one matmul: [(W_i x + b_i)].
    ``x`` may be an :class:`~emm_lib.features.EmbeddedBatch` (the lookup fused with the matmul)."""
    W = torch.cat([w for w, _ in maps])
    b = None
    if any(b is not None for _, b in maps):
        b = torch.cat([w.new_zeros(w.shape[0]) if b is None else b for w, b in maps]).unsqueeze(1)
    if isinstance(x, EmbeddedBatch):
        y = x.affine(W, b)
    else:
        y = torch.mm(W, x) if b is None else torch.addmm(b, W, x)
    return list(y.split([w.shape[0] for w, _ in maps]))


def mix_fm(gates: Tensor, experts: Tensor) -> Tensor:
    """Feature-major :func:`mix`: gates (G, E, B), experts (E, d, B) -> (G, d, B). One
    multiply-and-sum per gate: ~1.5x faster (forward + backward) than one 4-D broadcast."""
    return torch.stack([(gates[i].unsqueeze(1) * experts).sum(0) for i in range(gates.shape[0])])


def softmax(logits: Tensor) -> Tensor:
    """Softmax over the last dimension, ``exp(x - max) / sum``: the values of ``torch.softmax``,
    about 2x faster on CPU (forward + backward) for gate logits with few experts per row."""
    e = torch.exp(logits - logits.detach().amax(-1, keepdim=True))
    return e / e.sum(-1, keepdim=True)


def mix(gates: Tensor, experts: Tensor) -> Tensor:
    """Gate-weighted sums of expert outputs: ``out[b, g] = sum_e gates[b, g, e] * experts[b, e]``.

    ``gates`` (B, G, E), ``experts`` (B, E, d) -> (B, G, d). One multiply-and-sum per gate
    (G is the number of tasks, or tasks + 1): on CPU this beats ``bmm`` (B tiny products) and a
    single 4-D broadcast by about 1.5-2x.
    """
    return torch.stack([(gates[:, g, :, None] * experts).sum(1) for g in range(gates.shape[1])], dim=1)


def check_sizes(model: str, unknown: dict[str, Any], accepted: Sequence[str], **counts: int) -> None:
    """Reject unknown size keys and counts below 1 with a ValueError naming the fix."""
    if unknown:
        raise ValueError(f"Unknown setting(s) {sorted(unknown)} for model {model!r}; it accepts "
                         f"{list(accepted)} (see emm_lib.config.MODEL_SIZES).")
    bad = {k: v for k, v in counts.items() if not isinstance(v, int) or isinstance(v, bool) or v < 1}
    if bad:
        raise ValueError(f"{model}: {bad} must be integers >= 1.")


def widths_of(name: str, model: str, widths: Sequence[int], allow_empty: bool = False) -> list[int]:
    """A width list as ints, checked (a bare int is read as one layer)."""
    if isinstance(widths, int):
        widths = [widths]
    out = [int(w) for w in widths]
    if (not out and not allow_empty) or any(w < 1 for w in out):
        kind = "list" if allow_empty else "non-empty list"
        raise ValueError(f"{model}: {name} must be a {kind} of widths >= 1, got {list(widths)}.")
    return out
