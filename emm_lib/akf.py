"""The Adaptive Knowledge Fusion (AKF) module: one level of EMM (paper Sec. III-B, Fig. 2).

Per task ``t`` and level, with ``x_t`` the task's level input:

* components of task t give ``h^t_1 .. h^t_{m_t}``                          (Eq. 1)
* :class:`TaskGate`: ``h^t = sum_i G_t(x_t)_i h^t_i``, ``G_t`` a softmax      (Eq. 2)
* :class:`FusionGate`: scores ``F_t(x_t)`` over tasks, partner = best other task (Eq. 3)
* :class:`MultiTaskMerge`: attention pooling over the pair ``[h^t, h^s(t)]``  (Eqs. 4-6)

Gates and attention of all tasks run as one batched matmul each (:class:`TaskLinear`).
:meth:`AKF.forward` is the readable reference (batch-major, components one by one unless
folded); :meth:`AKF.forward_fm` the fused feature-major level of :mod:`emm_lib.akf_fused`
that EMM trains with (same values). Frozen MLP components (Linear/BatchNorm/activation
chains in eval mode) are folded into one matmul per stage (:class:`FoldedComponents`).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .akf_fused import FoldedComponents, level_forward

__all__ = ["TaskLinear", "TaskGate", "FusionGate", "MultiTaskMerge", "AKF", "FUSION_MODES"]

FUSION_MODES = ("hard", "soft", "gumbel")
_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid, "none": nn.Identity}


class TaskLinear(nn.Module):
    """``n_tasks`` independent Linear maps computed in one matmul.

    Input ``(B, in)`` (shared by all tasks) or ``(T, B, in)`` (one per task); output
    ``(T, B, out)``. ``weight[t]`` (out, in) and ``bias[t]`` are task t's ``nn.Linear``
    weight and bias, initialised the same way. The shared-input case is a single ``addmm``
    of all tasks' weights side by side, the per-task case one ``baddbmm``.
    """

    def __init__(self, n_tasks: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.n_tasks, self.in_features, self.out_features = n_tasks, in_features, out_features
        bound = 1.0 / math.sqrt(in_features) if in_features > 0 else 0.0
        self.weight = nn.Parameter(torch.empty(n_tasks, out_features, in_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_tasks, out_features).uniform_(-bound, bound))

    def flat(self, x: Tensor) -> Tensor:
        """Shared input (B, in) -> (B, T * out), task-major columns."""
        return torch.addmm(self.bias.view(-1), x, self.weight.view(-1, self.in_features).t())

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            return self.flat(x).view(x.shape[0], self.n_tasks, self.out_features).transpose(0, 1)
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))

    def task(self, t: int, x: Tensor) -> Tensor:
        """Task ``t``'s map alone (for explanations and hand checks)."""
        return F.linear(x, self.weight[t], self.bias[t])

    def extra_repr(self) -> str:
        return f"n_tasks={self.n_tasks}, in_features={self.in_features}, out_features={self.out_features}"


class TaskGate(nn.Module):
    """Eq. 2: per task, a softmax over that task's own components (intra-task MoE gate).

    ``G_t(x_t) = softmax(BatchNorm(Linear_t(x_t)))`` (authors: Linear -> BatchNorm -> Softmax).
    Tasks with fewer components than the largest are padded; padded slots get weight 0.
    """

    def __init__(self, in_features: int, n_components: Sequence[int], batch_norm: bool = True) -> None:
        super().__init__()
        n_components = [int(m) for m in n_components]
        if not n_components or min(n_components) < 1:
            raise ValueError(f"Every task needs >= 1 component, got {n_components}.")
        self.n_components = n_components
        T, M = len(n_components), max(n_components)
        self.linear = TaskLinear(T, in_features, M)
        self.norm = nn.BatchNorm1d(T * M) if batch_norm else None
        mask = torch.zeros(T, M, dtype=torch.bool)  # broadcast over (B, T, M)
        for t, m in enumerate(n_components):
            mask[t, m:] = True
        self.register_buffer("pad", mask, persistent=False)
        self.padded = bool(mask.any())

    def forward(self, x: Tensor) -> Tensor:
        """Gate weights ``(T, B, M)``; row ``t`` sums to 1 over task t's ``m_t`` components."""
        T, M = len(self.n_components), self.linear.out_features
        B = x.shape[-2]
        if x.dim() == 2:
            logits = self.linear.flat(x)  # (B, T*M)
        else:
            logits = self.linear(x).transpose(0, 1).reshape(B, T * M)
        if self.norm is not None:
            logits = self.norm(logits)
        # Softmax over a short last dimension is slow on CPU; the same softmax over dim 1 of a
        # (T, M, B) view of the logits is ~3x faster (same values).
        logits = logits.t().view(T, M, B)
        if self.padded:
            logits = logits.masked_fill(self.pad.unsqueeze(-1), float("-inf"))
        return torch.softmax(logits, dim=1).transpose(1, 2)

    @staticmethod
    def mix(weights: Tensor, h: Tensor) -> Tensor:
        """``H[t] = sum_i weights[t, :, i] * h[t, :, i]``: weights (T,B,M), h (T,B,M,d) -> (T,B,d)."""
        return (weights.unsqueeze(-1) * h).sum(2)


class FusionGate(nn.Module):
    """Eq. 3: per task, scores over all tasks; the partner is the best task other than itself.

    ``mode``:
      * ``"hard"`` (paper): arg max over the other tasks. The arg max passes no gradient, so
        this gate never learns (as in the authors' code).
      * ``"soft"`` (default): the partner is the softmax-weighted mix of the other tasks'
        outputs (self weight exactly 0); differentiable and deterministic.
      * ``"gumbel"``: straight-through Gumbel-softmax: one other task in the forward pass
        (sampled in training, arg max in eval), softmax gradients in the backward pass.

    With 2 tasks every mode picks the other task with weight 1 (nothing to learn).

    Why ``"soft"`` is the default: with 2 tasks (all of the paper's Tables I-II) it equals the
    paper's arg max exactly; with 3+ tasks the paper's arg max gate is never trained, so its
    partner choice stays a random function of the input, while the soft gate learns which
    partner helps, is deterministic (train = eval, reproducible validation AUC) and has no
    straight-through bias. ``"gumbel"`` keeps the paper's one-partner choice and still learns.
    """

    def __init__(self, in_features: int, n_tasks: int, mode: str = "soft", tau: float = 1.0) -> None:
        super().__init__()
        if mode not in FUSION_MODES:
            raise ValueError(f"Unknown fusion mode {mode!r}; choose one of {FUSION_MODES}.")
        if n_tasks < 2:
            raise ValueError("The fusion gate needs >= 2 tasks to pick a partner; use use_mtm=False for one task.")
        if tau <= 0:
            raise ValueError(f"tau must be > 0, got {tau}.")
        self.mode, self.tau, self.n_tasks = mode, tau, n_tasks
        self.linear = TaskLinear(n_tasks, in_features, n_tasks)
        self.register_buffer("self_mask", torch.eye(n_tasks, dtype=torch.bool).unsqueeze(1), persistent=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Returns (partner weights (T, B, T) with zero on the diagonal task, scores F (T, B, T) in (0,1))."""
        w, logits = self.weights(x)
        return w, torch.softmax(logits, dim=-1)

    def weights(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Partner weights (T, B, T) and the raw gate logits."""
        logits = self.linear(x)
        others = logits.masked_fill(self.self_mask, float("-inf"))
        if self.mode == "soft":
            w = torch.softmax(others, dim=-1)
        elif self.mode == "gumbel" and self.training:
            w = F.gumbel_softmax(others, tau=self.tau, hard=True, dim=-1)
        else:  # hard, or gumbel in eval: the arg max, no gradient
            w = F.one_hot(others.argmax(-1), self.n_tasks).to(logits.dtype)
        return w, logits

    @staticmethod
    def partner(weights: Tensor, H: Tensor) -> Tensor:
        """``P[t] = sum_u weights[t, :, u] * H[u]``: weights (T,B,T), H (T,B,d) -> (T,B,d)."""
        return (weights.unsqueeze(-1) * H.transpose(0, 1).unsqueeze(0)).sum(2)


class MultiTaskMerge(nn.Module):
    """Eqs. 4-6: attention pooling over the pair ``w in [p^x, p^y]`` = [own, partner].

    ``c_w = softmax_w(<Q(w), K(w)> / sqrt(d))``, ``z = sum_w c_w V(w)``; Q, K, V are one
    fully connected layer + activation each, one set per task (batched).
    """

    def __init__(self, n_tasks: int, in_features: int, out_features: int | None = None,
                 key_features: int | None = None, activation: str = "relu") -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"Unknown activation {activation!r}; choose one of {sorted(_ACTIVATIONS)}.")
        self.d_k = key_features or in_features
        self.d_v = out_features or in_features
        self.qkv = TaskLinear(n_tasks, in_features, 2 * self.d_k + self.d_v)
        self.act = _ACTIVATIONS[activation]()

    def forward(self, own: Tensor, partner: Tensor) -> tuple[Tensor, Tensor]:
        """own, partner (T, B, d) -> z (T, B, d_v), attention weights (T, B, 2) [own, partner]."""
        T, B, d = own.shape
        pair = torch.stack([own, partner], dim=1).reshape(T, 2 * B, d)
        q, k, v = self.act(self.qkv(pair)).reshape(T, 2, B, -1).split([self.d_k, self.d_k, self.d_v], dim=-1)
        c = torch.softmax((q * k).sum(-1) / math.sqrt(self.d_k), dim=1)  # (T, 2, B)
        z = (c.unsqueeze(-1) * v).sum(1)
        return z, c.transpose(1, 2)


_ACT_TYPES = (nn.ReLU, nn.Tanh, nn.GELU, nn.Sigmoid, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.Identity)


def _stages(comp: nn.Module) -> list[tuple] | None:
    """A component as stages (Linear, BatchNorm1d|None, activation|None, Dropout|None), or None
    if it is not such a chain (then the level evaluates its components one by one)."""
    if not isinstance(comp, nn.Sequential):
        return None
    layers = list(comp)
    out, i = [], 0
    while i < len(layers):
        lin = layers[i]
        if not isinstance(lin, nn.Linear):
            return None
        i += 1
        bn = act = drop = None
        if i < len(layers) and type(layers[i]) is nn.BatchNorm1d:
            bn, i = layers[i], i + 1
            if not bn.track_running_stats:
                return None
        if i < len(layers) and type(layers[i]) in _ACT_TYPES:
            act, i = layers[i], i + 1
        if i < len(layers) and type(layers[i]) is nn.Dropout:
            drop, i = layers[i], i + 1
        out.append((lin, bn, act, drop))
    return out


def _stage_key(stage: tuple) -> tuple:
    _, bn, act, _ = stage
    return (bn is not None, None if act is None else (type(act), act.extra_repr()))


class AKF(nn.Module):
    """One AKF level: the level's components grouped by task, plus gates and MTM.

    ``components[t][k]`` is task t's k-th component at this level (any module mapping the
    level input to ``(B, out_features)``). ``use_mtm=False`` drops the fusion gate and MTM:
    the level output is the task-gated mixture ``H`` alone (Table II ablations).
    ``fast=True`` evaluates frozen Linear/BatchNorm/activation components folded and batched
    (:class:`~emm_lib.akf_fused.FoldedComponents`); trainable or other components run one by one.
    """

    def __init__(
        self,
        components: Sequence[Sequence[nn.Module]],
        in_features: int,
        out_features: int,
        use_mtm: bool = True,
        fusion: str = "soft",
        gate_batch_norm: bool = True,
        mtm_activation: str = "relu",
        fast: bool = True,
    ) -> None:
        super().__init__()
        if not components or any(len(c) == 0 for c in components):
            raise ValueError("AKF needs >= 1 task and >= 1 component per task.")
        self.n_tasks = len(components)
        self.components = nn.ModuleList(nn.ModuleList(c) for c in components)
        self.n_components = [len(c) for c in components]
        self.out_features = out_features
        self.use_mtm = use_mtm
        self.task_gate = TaskGate(in_features, self.n_components, gate_batch_norm)
        if use_mtm:
            self.fusion_gate = FusionGate(in_features, self.n_tasks, fusion)
            self.mtm = MultiTaskMerge(self.n_tasks, out_features, out_features, activation=mtm_activation)
        else:
            self.fusion_gate = None
            self.mtm = None
        self.fast = fast
        self._make_plan()

    def _frozen_path(self) -> FoldedComponents | None:
        """The folded fast path, when every component is a frozen Linear/BN/activation chain in eval mode."""
        if self._plan is None:
            return None
        if any(p.requires_grad for p in self._plan_params) or any(m.training for m in self._plan_modes):
            return None
        return self._plan

    def _folded(self) -> FoldedComponents | None:
        """The folded components when ``fast`` and every component is frozen and in eval mode."""
        return self._frozen_path() if self.fast else None

    def forward_fm(self, x: Tensor, component_input: Any = None) -> Tensor:
        """The fused level (:func:`~emm_lib.akf_fused.level_forward`), feature-major: x (D, B) or
        (T, d_in, B) -> Z (T, out_features, B); the same values as :meth:`forward` (transposed)."""
        return level_forward(self, x, component_input)

    def _make_plan(self) -> None:
        plans = [[_stages(c) for c in comps] for comps in self.components]
        flat = [p for task in plans for p in task]
        self._plan = None
        if any(p is None for p in flat):
            return
        keys = {tuple(_stage_key(st) for st in p) for p in flat}
        if len(keys) != 1:
            return
        acts = [st[2] for st in flat[0]]
        self._plan = FoldedComponents(plans, acts, max(self.n_components), self.out_features)
        self._plan_params = [p for c in self._all_components() for p in c.parameters()]
        self._plan_modes = [m for c in self._all_components() for m in c.modules()
                            if isinstance(m, (nn.BatchNorm1d, nn.Dropout))]

    def _all_components(self) -> list[nn.Module]:
        return [c for comps in self.components for c in comps]

    def component_outputs(self, x: Tensor, component_input: Any = None) -> Tensor:
        """All component outputs stacked (T, B, M, d); padded slots are zeros."""
        M = max(self.n_components)
        folded = self._folded() if component_input is None else None
        if folded is not None:  # feature-major in, (T, M, d, B) out
            return folded(x.t() if x.dim() == 2 else x.transpose(1, 2)).permute(0, 3, 1, 2)
        per_task: list[Tensor] = []
        for t, comps in enumerate(self.components):
            inp = component_input if component_input is not None else (x if x.dim() == 2 else x[t])
            outs = [c(inp) for c in comps]
            if len(comps) < M:
                outs.extend([torch.zeros_like(outs[-1])] * (M - len(comps)))
            per_task.append(torch.stack(outs, dim=1))
        return torch.stack(per_task)

    def forward(self, x: Tensor, component_input: Any = None, return_details: bool = False):
        """x: the level input, (B, d) shared by all tasks (level 1) or (T, B, d) per task.

        ``component_input`` replaces x as the components' input (e.g. a raw batch when each
        component embeds its own input); gates always read x. Returns Z (T, B, out_features),
        and with ``return_details`` a dict of gate and attention weights.
        """
        h = self.component_outputs(x, component_input)
        g = self.task_gate(x)
        H = TaskGate.mix(g, h)
        if not self.use_mtm:
            return (H, {"task_gate": g}) if return_details else H
        if return_details:
            w, scores = self.fusion_gate(x)
        elif self.n_tasks == 2:
            w = None  # with two tasks every mode picks the other task, with weight exactly 1
        else:
            w, _ = self.fusion_gate.weights(x)
        P = H.flip(0) if w is None else FusionGate.partner(w, H)
        Z, c = self.mtm(H, P)
        if return_details:
            return Z, {"task_gate": g, "fusion_scores": scores, "partner_weights": w, "mtm": c}
        return Z
