"""The fused AKF level: all tasks' components, gates and MTM of a level in a few large ops.

Same maths as :class:`~emm_lib.akf.AKF` (paper Sec. III-B, Eqs. 1-6), laid out *feature-major*:
activations are ``(features, B)`` with the batch contiguous. The gates and the attention reduce
over tiny dimensions (components, tasks, the [own, partner] pair, the key width); with the batch
as the inner dimension those reductions vectorise, which makes them 5-20x faster on CPU than over
a short inner dimension. Frozen components (trained, eval mode) are folded
(:class:`FoldedComponents`): Linear + BatchNorm is one affine map and each stage of all tasks'
and components' chains is one matmul with block-diagonal weights.

:func:`level_forward` is the fused level, :func:`sequential_forward` a Linear/BatchNorm/activation
chain (a tower) in this layout; ``tests/method/test_fast_paths.py`` checks both against the
component-by-component reference to 1e-6 (values, gradients, BatchNorm running statistics).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .features import EmbeddedBatch

__all__ = ["FoldedComponents", "FrozenAndTrainableLinear", "level_forward", "sequential_forward", "batch_norm_fm",
           "batch_norm_args"]


def batch_norm_args(bn: nn.BatchNorm1d) -> tuple[bool, float, bool]:
    """Count one batch as ``nn.BatchNorm1d.forward`` does; returns (use batch statistics, momentum
    factor, pass the running statistics) for ``F.batch_norm``."""
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    use_batch = bn.training or (bn.running_mean is None and bn.running_var is None)
    return use_batch, factor, not bn.training or bn.track_running_stats


def batch_norm_fm(bn: nn.BatchNorm1d, x: Tensor) -> Tensor:
    """``bn`` on feature-major ``x`` (C, B): the values of ``bn(x.t()).t()``, running statistics
    and ``num_batches_tracked`` updated the same way (mirrors ``nn.BatchNorm1d.forward``)."""
    use_batch, factor, track = batch_norm_args(bn)
    out = F.batch_norm(x.unsqueeze(0), bn.running_mean if track else None, bn.running_var if track else None,
                       bn.weight, bn.bias, use_batch, factor, bn.eps)
    return out.squeeze(0)


def _linear_fm(lin: nn.Linear, x: Tensor) -> Tensor:
    if lin.bias is None:
        return torch.mm(lin.weight, x)
    return torch.addmm(lin.bias.unsqueeze(1), lin.weight, x)


def sequential_forward(seq: nn.Sequential, x: Tensor) -> Tensor:
    """An ``nn.Sequential`` of Linear/BatchNorm1d/activation/Dropout on feature-major ``x`` (C, B).

    Dropout is drawn in the batch-major order of the reference, so the same seed gives the same mask.
    """
    for m in seq:
        if type(m) is nn.Linear:
            x = _linear_fm(m, x)
        elif type(m) is nn.BatchNorm1d:
            x = batch_norm_fm(m, x)
        elif type(m) is nn.Dropout:
            x = F.dropout(x.t().contiguous(), m.p, m.training).t() if m.training and m.p > 0 else x
        elif isinstance(m, (nn.ReLU, nn.Tanh, nn.GELU, nn.Sigmoid, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.Identity)):
            x = m(x)
        else:
            x = m(x.t()).t()
    return x


class FrozenAndTrainableLinear(torch.autograd.Function):
    """``[W0; W1] x + [b0; b1]`` for feature-major x (D, B): constant rows W0, b0 (folded frozen
    components) stacked on trainable rows W1, b1 (a gate). One matmul forward and one for the
    input gradient, as autograd would do for the stacked weights, but weight gradients only for the
    trainable rows (autograd would compute them for all rows and drop the constant ones).
    ``tests/method/test_fast_paths.py`` checks it with ``torch.autograd.gradcheck``."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")  # under autocast, the backward runs in the same precision
    def forward(ctx, x: Tensor, W0: Tensor, b0: Tensor, W1: Tensor, b1: Tensor) -> Tensor:
        W = torch.cat([W0, W1])
        ctx.save_for_backward(x, W)
        ctx.n0 = W0.shape[0]
        return torch.addmm(torch.cat([b0, b1]), W, x)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, gy: Tensor):
        x, W = ctx.saved_tensors
        gx = gW1 = gb1 = None
        if ctx.needs_input_grad[0]:  # in x's own layout (x is usually the transposed embedding)
            gx = torch.mm(gy.t(), W).t() if x.stride(0) == 1 else torch.mm(W.t(), gy)
        g1 = gy[ctx.n0:]
        if ctx.needs_input_grad[3]:
            gW1 = torch.mm(g1, x.t())
        if ctx.needs_input_grad[4]:
            gb1 = g1.sum(1, keepdim=True)
        return gx, None, None, gW1, gb1


class FoldedComponents:
    """A level's frozen components as one matmul per stage, feature-major.

    ``plans[t][k]`` lists task t's component k as stages (Linear, BatchNorm|None, activation|None,
    Dropout|None) (see ``akf._stages``); all components share the stage structure. In eval mode
    ``BN(Wx + b) = (s*W) x + (b - mean) * s + beta`` with ``s = gamma / sqrt(var + eps)`` and Dropout
    is the identity. Stage 1 of every (task, component) is one weight matrix: rows stacked when
    all tasks read one input (level 1), block-diagonal over tasks otherwise; later stages are
    block-diagonal over (task, component). The last stage writes task t's component k to rows
    ``(t*M + k)*d ...``; slots of tasks with fewer than ``M`` components stay zero. The folded
    weights are cached and rebuilt whenever a component tensor is replaced or changed in place
    (``load_state_dict``, ``.to()``, an in-place edit).
    """

    def __init__(self, plans: list[list[list[tuple]]], acts: Sequence[nn.Module | None], M: int, d: int) -> None:
        self.plans, self.acts, self.M, self.d = plans, list(acts), M, d
        mods = [m for task in plans for comp in task for st in comp for m in st[:2] if m is not None]
        self._refs = [(m._parameters, n) for m in mods for n in m._parameters] + \
                     [(m._buffers, n) for m in mods for n in m._buffers]
        self._key: tuple | None = None
        self._cache: dict[bool, list[tuple[Tensor, Tensor]]] = {}

    def _state(self) -> tuple:
        return tuple((v._version, v.data_ptr(), v.dtype) if (v := d[n]) is not None else None for d, n in self._refs)

    @staticmethod
    def _affine(lin: nn.Linear, bn: nn.BatchNorm1d | None) -> tuple[Tensor, Tensor]:
        W = lin.weight.detach()
        b = lin.bias.detach() if lin.bias is not None else W.new_zeros(W.shape[0])
        if bn is not None:
            s = torch.rsqrt(bn.running_var + bn.eps)
            if bn.affine:
                s = s * bn.weight.detach()
            shift = bn.bias.detach() if bn.affine else torch.zeros_like(s)
            W, b = W * s.unsqueeze(1), (b - bn.running_mean) * s + shift
        return W, b

    @torch.no_grad()
    def _fold(self, shared: bool) -> list[tuple[Tensor, Tensor]]:
        T, M, d = len(self.plans), self.M, self.d
        slots = [(t, k) for t in range(T) for k in range(len(self.plans[t]))]
        n_stages = len(self.plans[0][0])
        affine = {(t, k): [self._affine(lin, bn) for lin, bn, _, _ in self.plans[t][k]] for t, k in slots}
        ref = affine[slots[0]][0][0]
        d_in = ref.shape[1]
        cols = {tk: (0 if shared else tk[0] * d_in, d_in) for tk in slots}  # input columns of each slot
        n_cols = d_in if shared else T * d_in
        out = []
        for s in range(n_stages):
            last = s == n_stages - 1
            rows, r = {}, 0
            for tk in slots:
                h = affine[tk][s][0].shape[0]
                rows[tk] = ((tk[0] * M + tk[1]) * d if last else r, h)
                r += h
            n_rows = T * M * d if last else r
            W = ref.new_zeros(n_rows, n_cols)
            b = ref.new_zeros(n_rows)
            for tk in slots:
                (r0, h), (c0, w) = rows[tk], cols[tk]
                W[r0:r0 + h, c0:c0 + w] = affine[tk][s][0]
                b[r0:r0 + h] = affine[tk][s][1]
            out.append((W, b.unsqueeze(1)))
            cols, n_cols = rows, n_rows
        return out

    def __call__(self, x: Tensor, extra: tuple[Tensor, Tensor] | None = None):
        """x: (D, B) read by every task, or (T, d_in, B) one per task -> outputs (T, M, d, B).

        ``extra`` = (W, b): more rows for the first matmul (another map of the same input, e.g. a
        gate); then returns (outputs, W x + b). One matmul reads x, so its gradient is one matmul too.
        """
        state = self._state()
        if state != self._key:
            self._cache, self._key = {}, state
        shared = x.dim() == 2
        stages = self._cache.get(shared)
        if stages is None:
            stages = self._cache[shared] = self._fold(shared)
        B = x.shape[-1]
        h = x if shared else x.reshape(-1, B)
        out_extra = None
        for s, ((W, b), act) in enumerate(zip(stages, self.acts)):
            if s == 0 and isinstance(h, EmbeddedBatch):  # the embedding lookup fused with this matmul
                if extra is None:
                    h = h.affine(W, b)
                else:
                    h, out_extra = h.affine(*extra, W0=W, b0=b).split([W.shape[0], extra[0].shape[0]])
            elif s == 0 and extra is not None:
                h, out_extra = FrozenAndTrainableLinear.apply(h, W, b, *extra).split([W.shape[0], extra[0].shape[0]])
            else:
                h = torch.addmm(b, W, h)
            h = act(h) if act is not None else h
        h = h.view(len(self.plans), self.M, self.d, B)
        return h if extra is None else (h, out_extra)


def _task_linear_fm(lin: Any, x: Tensor) -> Tensor:
    """A :class:`~emm_lib.akf.TaskLinear` on feature-major input: (D, B) shared or (T, in, B) -> (T, out, B)."""
    if x.dim() == 2:
        T, out, _ = lin.weight.shape
        return torch.addmm(lin.bias.view(-1, 1), lin.weight.view(T * out, -1), x).view(T, out, -1)
    return torch.baddbmm(lin.bias.unsqueeze(-1), lin.weight, x)


def _partner_weights(gate: Any, x: Tensor) -> Tensor:
    """Eq. 3 feature-major: partner weights (T, U, B) over the other tasks U (see ``FusionGate.weights``)."""
    logits = _task_linear_fm(gate.linear, x)  # (T, U, B)
    others = logits.masked_fill(gate.self_mask.transpose(1, 2), float("-inf"))
    if gate.mode == "soft":
        return torch.softmax(others, dim=1)
    if gate.mode == "gumbel" and gate.training:  # the reference's (T, B, U) order, so the noise is the same
        return F.gumbel_softmax(others.transpose(1, 2), tau=gate.tau, hard=True, dim=-1).transpose(1, 2)
    return F.one_hot(others.argmax(1), gate.n_tasks).to(logits.dtype).transpose(1, 2)


def level_forward(akf: Any, x: Tensor, component_input: Any = None) -> Tensor:
    """One AKF level (Eqs. 1-6) feature-major: x (D, B) shared (level 1) or (T, d_in, B) -> Z (T, d, B).

    ``component_input`` (e.g. the raw batch, ``reuse_embeddings``) replaces x as the components'
    input; such components run one by one, as do trainable or unfoldable ones.
    """
    T, M, B = akf.n_tasks, max(akf.n_components), x.shape[-1]
    tg = akf.task_gate
    folded = akf._folded() if component_input is None else None
    if isinstance(x, EmbeddedBatch) and (folded is None or (akf.use_mtm and T > 2)):
        x = x.tensor()  # read by more than the first matmul (level 1 unfolded, or the fusion gate)
    if folded is not None and x.dim() == 2:  # level 1: components and task gate in one matmul
        W, b = tg.linear.weight, tg.linear.bias
        h, logits = folded(x, (W.view(T * M, -1), b.view(-1, 1)))  # (T, M, d, B), (T*M, B)
    else:
        if folded is not None:
            h = folded(x)  # (T, M, d, B)
        else:
            xb = x.t() if x.dim() == 2 else x.transpose(1, 2)
            h = akf.component_outputs(xb, component_input).permute(0, 2, 3, 1)
        logits = _task_linear_fm(tg.linear, x).view(T * M, B)
    # Eq. 2: task gate, softmax over each task's own components.
    if tg.norm is not None:
        logits = batch_norm_fm(tg.norm, logits)
    logits = logits.view(T, M, B)
    if tg.padded:
        logits = logits.masked_fill(tg.pad.unsqueeze(-1), float("-inf"))
    H = (torch.softmax(logits, dim=1).unsqueeze(2) * h).sum(1)  # (T, d, B)
    if not akf.use_mtm:
        return H
    # Eq. 3: the partner; with two tasks every mode picks the other task with weight 1.
    if T == 2:
        P = H.flip(0)
    else:
        P = (_partner_weights(akf.fusion_gate, x).unsqueeze(2) * H.unsqueeze(0)).sum(1)
    # Eqs. 4-6: attention over the pair [own, partner], Q/K/V of all tasks and both members in one bmm.
    mtm = akf.mtm
    y = mtm.act(_task_linear_fm(mtm.qkv, torch.cat([H, P], dim=2)))  # (T, 2dk+dv, 2B)
    q, k, v = y.split([mtm.d_k, mtm.d_k, mtm.d_v], dim=1)
    c = torch.softmax(((q * k).sum(1) / math.sqrt(mtm.d_k)).view(T, 2, B), dim=1)
    return (c.unsqueeze(1) * v.reshape(T, mtm.d_v, 2, B)).sum(2)
