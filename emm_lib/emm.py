"""EMM (Algorithm 2): embedding -> AKF level 1..L -> one tower per task.

Paper Sec. III-C. Task t's level-1 components read the embedded input; at level l > 1 they
read task t's output of level l-1. Built either

* from trained models, :meth:`EMM.from_trained`: :func:`~emm_lib.deconstruct.deconstruct`
  cuts every trained body; the components are copied in and frozen (no gradients, BatchNorm
  and Dropout kept in eval mode even while the EMM trains, so running statistics never drift
  -- the authors' code lets them drift); or
* from scratch, ``EMM(spec, tasks, component_shapes=...)``: the same structure, randomly
  initialised and trainable (Table II's "baseline" rows).

``model.config`` rebuilds an identically shaped model (component layers included, as the
descriptors of :mod:`emm_lib.layer_descriptors`), so
``type(m)(m.spec, m.tasks, **m.config).load_state_dict(m.state_dict())`` restores any EMM.
:meth:`EMM.from_trained` is the paper's steps, each a function of :mod:`emm_lib.assemble`.

Behaviours of the authors' published code (BatchNorm drift, a frozen embedding table) are not
EMM options: the protocol replay attaches them in a subclass (:class:`emm_lib.study.replay.protocol.PublishedEMM`)
through two hooks, :meth:`EMM.embed` and :meth:`EMM.frozen_components_in_eval`.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from . import assemble
from .akf import AKF, FUSION_MODES
from .akf_fused import sequential_forward
from .data.types import Batch, FeatureSpec
from .deconstruct import Adapter
from .features import FeatureEmbedding
from .layer_descriptors import DEFAULT_COMPONENT_SHAPES, UNDESCRIBED, build_components, level_widths, resolve_layers
from .models.base import MultiTaskModel, mlp, register_model

__all__ = ["EMM", "ABLATIONS", "DEFAULT_COMPONENT_SHAPES", "DEFAULT_FUSION"]

# Table II rows: which ingredients each variant has.
ABLATIONS: dict[str, dict[str, bool]] = {
    "baseline": dict(pretrained=False, use_mtm=False),
    "baseline+MTM": dict(pretrained=False, use_mtm=True),
    "baseline+p": dict(pretrained=True, use_mtm=False),
    "EMM": dict(pretrained=True, use_mtm=True),
}
# Differentiable partner choice; identical to the paper's arg max with 2 tasks (see FusionGate).
DEFAULT_FUSION = "soft"


# --------------------------------------------------------------------------- the model


@register_model("emm")
class EMM(MultiTaskModel):
    """Efficient Multi-task Modeling (Algorithm 2): stacked :class:`~emm_lib.akf.AKF` levels + towers.

    Args:
        spec, tasks: the features and task names.
        component_shapes: the trained-model structure to build from scratch, the same for
            every task or a dict ``{task: [...]}``; each model is a block of widths repeated
            at every level (``(8, 8)``) or one width list per level (``[[16, 8], [8], [8]]``).
            Each width is Linear -> BatchNorm -> ReLU (-> Dropout). Default: the authors'
            Census models ``((8, 8), (16, 8))``, two per task.
        n_levels: number of AKF levels (components per model).
        tower: hidden widths of each task's tower.
        use_mtm: fusion gate + Multi-Task Merge (False: the level output is the task-gated
            mixture alone, Table II).
        fusion: partner choice of the fusion gate, ``"soft"`` (default), ``"hard"`` (paper's
            arg max, never learns) or ``"gumbel"``; see :class:`~emm_lib.akf.FusionGate`.
        embedding_dim: the EMM's own (trainable) embedding; it feeds the gates and, unless
            ``reuse_embeddings``, the level-1 components.
        pretrained: components are frozen trained weights (set by :meth:`from_trained`; a
            skeleton built with True, then ``load_state_dict``, restores such a model).
        reuse_embeddings: level-1 components start with their own embedding layer and read
            the raw batch.
        component_layers: the exact layer descriptors per task/model/level (what
            ``config`` records; alternative to ``component_shapes``).
        gate_batch_norm, mtm_activation, dropout: gate BatchNorm (authors: on), Q/K/V
            activation, tower/component dropout.
    """

    def __init__(
        self,
        spec: FeatureSpec,
        tasks: Sequence[str],
        component_shapes: Sequence | Mapping | None = None,
        n_levels: int | None = 3,
        tower: Sequence[int] = (8,),
        use_mtm: bool = True,
        fusion: str = DEFAULT_FUSION,
        embedding_dim: int = 4,
        pretrained: bool = False,
        reuse_embeddings: bool = False,
        component_layers: Mapping[str, Sequence] | None = None,
        gate_batch_norm: bool = True,
        mtm_activation: str = "relu",
        dropout: float = 0.0,
        _prebuilt: tuple | None = None,
    ) -> None:
        super().__init__(spec, tasks)
        if fusion not in FUSION_MODES:
            raise ValueError(f"Unknown fusion mode {fusion!r}; choose one of {FUSION_MODES}.")
        if use_mtm and len(self.tasks) < 2:
            raise ValueError("EMM with MTM needs >= 2 tasks (the fusion gate picks another task); "
                             "use use_mtm=False for a single task.")
        self.embedding = FeatureEmbedding(spec, embedding_dim)
        if _prebuilt is not None:  # from_trained: comps[t][k][l] modules, widths[l] = (in, out)
            (comps, widths), component_layers = _prebuilt, UNDESCRIBED
        else:
            component_layers = resolve_layers(component_shapes, component_layers, self.tasks, spec, n_levels,
                                              embedding_dim, reuse_embeddings, dropout)
            comps = build_components(component_layers, self.tasks, spec)
            widths = level_widths(component_layers, self.tasks, spec, self.embedding.out_features)
        self.pretrained, self.reuse_embeddings = bool(pretrained), bool(reuse_embeddings)
        self.config = dict(
            component_layers=component_layers, n_levels=len(widths), tower=list(tower), use_mtm=bool(use_mtm),
            fusion=fusion, embedding_dim=embedding_dim, pretrained=self.pretrained,
            reuse_embeddings=self.reuse_embeddings, gate_batch_norm=bool(gate_batch_norm),
            mtm_activation=mtm_activation, dropout=dropout,
        )
        self.levels = _levels(comps, widths, self.embedding.out_features, use_mtm=use_mtm, fusion=fusion,
                              gate_batch_norm=gate_batch_norm, mtm_activation=mtm_activation)
        self.towers = nn.ModuleList(
            nn.Sequential(*mlp(widths[-1][1], tower, dropout), nn.Linear(tower[-1] if tower else widths[-1][1], 1))
            for _ in self.tasks)
        if self.pretrained:
            self.freeze()

    def _components(self) -> list[nn.Module]:
        return [c for level in self.levels for task in level.components for c in task]

    def freeze(self) -> "EMM":
        """Trained components: no gradients (adapters excepted), eval mode (see :meth:`train`)."""
        for comp in self._components():
            for sub in comp.modules():
                if not isinstance(sub, Adapter):
                    for p in sub.parameters(recurse=False):
                        p.requires_grad_(False)
            comp.eval()
        return self

    def train(self, mode: bool = True) -> "EMM":
        """Like ``nn.Module.train``, but frozen trained components always stay in eval mode,
        so their BatchNorm running statistics (and Dropout) never change."""
        super().train(mode)
        if self.pretrained and self.frozen_components_in_eval:
            for comp in self._components():
                comp.eval()
        return self

    #: Frozen components stay in eval mode while the EMM trains (a subclass may replay otherwise).
    frozen_components_in_eval = True

    @property
    def fast(self) -> bool:
        """True (default): train and predict with the fused feature-major levels
        (:mod:`emm_lib.akf_fused`); False: the readable reference, components one by one
        (same values; the tests compare the two)."""
        return all(level.fast for level in self.levels)

    @fast.setter
    def fast(self, value: bool) -> None:
        for level in self.levels:
            level.fast = bool(value)

    def forward(self, batch: Batch, return_details: bool = False):
        """Logits (B, T); with ``return_details`` also per-level gate/attention weights."""
        # The fused levels run every component in eval mode: with components that train, the reference.
        if not return_details and self.fast and self.frozen_components_in_eval:
            return self._forward_fused(batch)
        x = self.embed(batch)
        comp_in = batch if self.reuse_embeddings else None
        details = []
        z = x
        for lvl, level in enumerate(self.levels):
            out = level(z, component_input=comp_in if lvl == 0 else None, return_details=return_details)
            if return_details:
                z, d = out
                details.append(d)
            else:
                z = out
        logits = torch.cat([tower(z[t]) for t, tower in enumerate(self.towers)], dim=1)
        if return_details:
            return logits, [_readable(self, d, lvl) for lvl, d in enumerate(details)]
        return logits

    def _forward_fused(self, batch: Batch) -> Tensor:
        """:meth:`forward` with the fused levels: activations feature-major (width, B) throughout."""
        comp_in = batch if self.reuse_embeddings else None
        z = self.embed(batch, feature_major=True)
        for lvl, level in enumerate(self.levels):
            z = level.forward_fm(z, comp_in if lvl == 0 else None)
        return torch.cat([sequential_forward(tower, z[t]) for t, tower in enumerate(self.towers)]).t()

    def embed(self, batch: Batch, feature_major: bool = False) -> Tensor:
        """What level 1 reads: the EMM's embedding of ``batch``, (B, width) or feature-major (width, B)
        (then fused with level 1's first matmul)."""
        return self.embedding.feature_major(batch) if feature_major else self.embedding(batch)

    @torch.no_grad()
    def explain(self, batch: Batch) -> dict:
        """Probabilities and, per level, task-gate weights {task: (B, m_t)}, fusion scores and
        partner weights {task: (B, T)}, chosen partner {task: (B,) task index} and MTM
        attention {task: (B, 2) over [own, partner]}. Uses the current train/eval mode."""
        logits, levels = self(batch, return_details=True)
        return {"tasks": self.tasks, "probabilities": torch.sigmoid(logits), "levels": levels}

    def describe(self):
        """One row per (task, model, level): layers, parameters, trainable or frozen."""
        return describe(self)

    @classmethod
    def from_trained(cls, trained: Mapping[str, Sequence[nn.Module]], spec: FeatureSpec | None = None,
                     tasks: Sequence[str] | None = None, n_levels: int | None = None, tower: Sequence[int] = (8,),
                     fusion: str = DEFAULT_FUSION, use_mtm: bool = True, reuse_embeddings: bool = False,
                     embedding_dim: int | None = None, cut_points: Sequence[Sequence[int]] | None = None,
                     adapters: bool = False, pretrained: bool = True, **kwargs: Any) -> "EMM":
        """Build an EMM from trained single-task models ``{task: [model, ...]}`` (Algorithms 1+2).

        Each model is a :class:`~emm_lib.models.SingleTaskMLP` (its ``body`` is used) or a bare
        body that states its features as ``body.spec`` (a SingleTaskMLP's body does; each model's
        spec must be ``spec``). Bodies are deconstructed together (``n_levels``, ``cut_points``,
        ``adapters`` as in :func:`~emm_lib.deconstruct.deconstruct`); task t's models' components go to task t at
        every level. Components are *copies* of the trained weights, frozen; the trained models
        are left untouched. The embedding is a new trainable one (authors), of
        ``embedding_dim`` (default: what the bodies' input width implies); with
        ``reuse_embeddings=True`` each level-1 component starts with its own model's frozen
        embedding instead. ``pretrained=False`` keeps only the structure (random, trainable).
        Other keyword arguments go to :class:`EMM` (``gate_batch_norm``, ``mtm_activation``,
        ``dropout``). Each step below is a function of :mod:`emm_lib.assemble`.
        """
        return assemble.fuse(cls, trained, spec, tasks, n_levels=n_levels, tower=tower, fusion=fusion,
                             use_mtm=use_mtm, reuse_embeddings=reuse_embeddings, embedding_dim=embedding_dim,
                             cut_points=cut_points, adapters=adapters, pretrained=pretrained, **kwargs)

    def trained_models_built(self, models: Sequence[nn.Module]) -> None:
        """Called by :meth:`from_trained` with the trained models, in order, once the EMM is built
        (a hook for subclasses that copy more from them; EMM copies nothing else)."""

    @classmethod
    def ablation(cls, variant: str, trained: Mapping[str, Sequence[nn.Module]] | None = None,
                 spec: FeatureSpec | None = None, tasks: Sequence[str] | None = None, **kwargs: Any) -> "EMM":
        """One of Table II's variants: ``"baseline"`` (structure from scratch, no MTM),
        ``"baseline+MTM"``, ``"baseline+p"`` (trained components, no MTM) or ``"EMM"``.

        With ``trained`` the structure comes from the trained models (as :meth:`from_trained`
        would build it); without, the from-scratch variants use ``component_shapes`` etc. from
        ``kwargs`` (``spec`` and ``tasks`` needed).
        """
        return _ablation(cls, variant, trained, spec, tasks, **kwargs)


# --------------------------------------------------------------------------- outside the class


def _levels(comps: list, widths: list, embedded: int, **akf: Any) -> nn.ModuleList:
    """The AKF levels: level l holds every task's models' l-th components and reads ``embedded``
    features (level 1) or the previous level's width."""
    gate_in = [embedded] + [w for _, w in widths[:-1]]
    return nn.ModuleList(AKF([[model[lvl] for model in comps[t]] for t in range(len(comps))], gate_in[lvl], w_out,
                             **akf) for lvl, (_, w_out) in enumerate(widths))


def _readable(emm: "EMM", d: dict, lvl: int) -> dict:
    """One level's gate and attention weights (:meth:`EMM.explain`), keyed by task name."""
    n_comp = emm.levels[lvl].n_components
    out: dict[str, Any] = {"level": lvl + 1,
                           "task_gate": {t: d["task_gate"][i, :, : n_comp[i]] for i, t in enumerate(emm.tasks)}}
    if "mtm" in d:
        w = d["partner_weights"]
        out["fusion_scores"] = {t: d["fusion_scores"][i] for i, t in enumerate(emm.tasks)}
        out["partner_weights"] = {t: w[i] for i, t in enumerate(emm.tasks)}
        out["partner"] = {t: w[i].argmax(-1) for i, t in enumerate(emm.tasks)}
        out["mtm"] = {t: d["mtm"][i] for i, t in enumerate(emm.tasks)}
    return out


def describe(emm: "EMM"):
    """One row per (task, model, level): layers, parameters, trainable or frozen."""
    import pandas as pd

    from .deconstruct.decomposition import short_name as _short

    rows = []
    for lvl, level in enumerate(emm.levels):
        for t, task in enumerate(emm.tasks):
            for k, comp in enumerate(level.components[t]):
                n = sum(p.numel() for p in comp.parameters())
                rows.append({"task": task, "model": k, "level": lvl + 1,
                             "layers": " -> ".join(_short(m) for m in comp), "parameters": n,
                             "trainable": sum(p.numel() for p in comp.parameters() if p.requires_grad)})
    return pd.DataFrame(rows).sort_values(["task", "model", "level"], ignore_index=True)


def _ablation(cls: type, variant: str, trained, spec, tasks, **kwargs: Any) -> EMM:
    if variant not in ABLATIONS:
        raise ValueError(f"Unknown ablation variant {variant!r}; choose one of {list(ABLATIONS)}.")
    flags = ABLATIONS[variant]
    if trained is not None:
        return cls.from_trained(trained, spec=spec, tasks=tasks, **flags, **kwargs)
    if flags["pretrained"]:
        raise ValueError(f"Variant {variant!r} uses trained components: pass trained={{task: [models]}}.")
    if spec is None or tasks is None:
        raise ValueError("Without trained models, pass spec and tasks (and optionally component_shapes).")
    return cls(spec, tasks, use_mtm=flags["use_mtm"], **kwargs)
