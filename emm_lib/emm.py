"""EMM (Algorithm 2): embedding -> AKF level 1..L -> one tower per task.

Paper Sec. III-C. Task t's level-1 components read the embedded input; at level l > 1 they
read task t's output of level l-1. Built either

* from trained models, :meth:`EMM.from_trained`: :func:`~emm_lib.deconstruct.deconstruct`
  cuts every trained body; the components are copied in and frozen (no gradients, BatchNorm
  and Dropout kept in eval mode even while the EMM trains, so running statistics never drift
  -- the authors' code lets them drift); or
* from scratch, ``EMM(spec, tasks, component_shapes=...)``: the same structure, randomly
  initialised and trainable (Table II's "baseline" rows).

``model.config`` rebuilds an identically shaped model (component layers included), so
``type(m)(m.spec, m.tasks, **m.config).load_state_dict(m.state_dict())`` restores any EMM.
"""
from __future__ import annotations

import copy
import warnings
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from .akf import AKF, FUSION_MODES
from .akf_fused import sequential_forward
from .checks import check_trained_specs
from .data.types import Batch, FeatureSpec
from .deconstruct import Adapter, deconstruct
from .features import FeatureEmbedding
from .models.base import MultiTaskModel, mlp, register_model
from .protocol import FrozenEmbeddings

__all__ = ["EMM", "ABLATIONS", "DEFAULT_COMPONENT_SHAPES", "DEFAULT_FUSION"]

# The authors' Census blocks: TM-1 [8, 8], TM-2 [16, 8], two trained models per task.
DEFAULT_COMPONENT_SHAPES: tuple[tuple[int, ...], ...] = ((8, 8), (16, 8))
# Table II rows: which ingredients each variant has.
ABLATIONS: dict[str, dict[str, bool]] = {
    "baseline": dict(pretrained=False, use_mtm=False),
    "baseline+MTM": dict(pretrained=False, use_mtm=True),
    "baseline+p": dict(pretrained=True, use_mtm=False),
    "EMM": dict(pretrained=True, use_mtm=True),
}
# Differentiable partner choice; identical to the paper's arg max with 2 tasks (see FusionGate).
DEFAULT_FUSION = "soft"

_UNDESCRIBED = "not describable (built by from_trained)"
_PLAIN = {"ReLU", "GELU", "Tanh", "Sigmoid", "SiLU", "Identity", "Softplus"}


# --------------------------------------------------------------------------- layer descriptors
# A component is stored in the config as a list of JSON-able layer descriptors, so a checkpoint
# can rebuild its skeleton and load the weights.


def _describe_layer(m: nn.Module) -> list | None:
    if isinstance(m, Adapter):
        return ["Adapter", m.in_features, m.out_features]
    if type(m) is nn.Linear:
        return ["Linear", m.in_features, m.out_features, m.bias is not None]
    if type(m) is nn.BatchNorm1d:
        return ["BatchNorm1d", m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats]
    if type(m) is nn.LayerNorm:
        return ["LayerNorm", list(m.normalized_shape), m.eps, m.elementwise_affine]
    if type(m) is nn.Dropout:
        return ["Dropout", m.p]
    if type(m) is nn.LeakyReLU:
        return ["LeakyReLU", m.negative_slope]
    if type(m) is nn.ELU:
        return ["ELU", m.alpha]
    if type(m).__name__ in _PLAIN and type(m) is getattr(nn, type(m).__name__):
        return [type(m).__name__]
    if isinstance(m, FeatureEmbedding):
        return ["FeatureEmbedding", m.dim]
    return None


def _build_layer(d: Sequence, spec: FeatureSpec) -> nn.Module:
    kind, *a = d
    if kind == "Adapter":
        return Adapter(int(a[0]), int(a[1]))
    if kind == "Linear":
        return nn.Linear(int(a[0]), int(a[1]), bias=bool(a[2]) if len(a) > 2 else True)
    if kind == "BatchNorm1d":
        return nn.BatchNorm1d(int(a[0]), *a[1:])
    if kind == "LayerNorm":
        return nn.LayerNorm(a[0], *a[1:])
    if kind in ("Dropout", "LeakyReLU", "ELU"):
        return getattr(nn, kind)(*a)
    if kind in _PLAIN:
        return getattr(nn, kind)()
    if kind == "FeatureEmbedding":
        return FeatureEmbedding(spec, int(a[0]))
    raise ValueError(f"Unknown component layer descriptor {list(d)!r}.")


def _width(layers: Sequence[Sequence], width: int, spec: FeatureSpec) -> int:
    """The feature width after a descriptor list, given the input width."""
    for d in layers:
        if d[0] in ("Linear", "Adapter"):
            if int(d[1]) != width:
                raise ValueError(f"Component layer {list(d)} expects width {d[1]} but receives {width}.")
            width = int(d[2])
        elif d[0] == "FeatureEmbedding":
            width = spec.n_sparse * int(d[1]) + spec.n_dense
        elif d[0] == "BatchNorm1d" and int(d[1]) != width:
            raise ValueError(f"Component layer {list(d)} expects width {d[1]} but receives {width}.")
    return width


def _mlp_descriptors(in_width: int, widths: Sequence[int], dropout: float) -> list[list]:
    out: list[list] = []
    for w in widths:
        out += [["Linear", in_width, int(w), True], ["BatchNorm1d", int(w), 1e-5, 0.1, True, True], ["ReLU"]]
        if dropout > 0:
            out.append(["Dropout", dropout])
        in_width = int(w)
    return out


def _is_int_list(x: Any) -> bool:
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(v, int) for v in x)


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
        bn_drift, frozen_features: replays of the authors' code (protocol flags ``bn_drift``,
            ``frozen_sex_embedding``; EMM-method.md Sec. 6): frozen components follow the
            model's train/eval mode; these sparse features' embeddings are frozen tables
            (:class:`~emm_lib.protocol.FrozenEmbeddings`, filled by :meth:`from_trained`).
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
        bn_drift: bool = False,
        frozen_features: Sequence[str] = (),
        _prebuilt: tuple | None = None,
    ) -> None:
        super().__init__(spec, tasks)
        if fusion not in FUSION_MODES:
            raise ValueError(f"Unknown fusion mode {fusion!r}; choose one of {FUSION_MODES}.")
        if use_mtm and len(self.tasks) < 2:
            raise ValueError("EMM with MTM needs >= 2 tasks (the fusion gate picks another task); "
                             "use use_mtm=False for a single task.")
        if component_shapes is not None and component_layers is not None:
            raise ValueError("Give component_shapes or component_layers, not both.")
        self.embedding = FeatureEmbedding(spec, embedding_dim)
        self.frozen_embedding = FrozenEmbeddings(spec, frozen_features, embedding_dim) if frozen_features else None
        if _prebuilt is not None:
            comps, widths = _prebuilt  # comps[t][k][l] modules, widths[l] = (in, out)
            component_layers = _UNDESCRIBED
        elif component_layers == _UNDESCRIBED:
            raise ValueError("This EMM was built by from_trained() from component layers its config cannot "
                             "describe; rebuild it with EMM.from_trained(...) and load the state dict into that.")
        else:
            if component_layers is None:
                component_layers = self._shapes_to_layers(component_shapes, n_levels, embedding_dim,
                                                          reuse_embeddings, dropout)
            component_layers = self._check_layers(component_layers, n_levels)
            comps = [[[nn.Sequential(*(_build_layer(d, spec) for d in lvl)) for lvl in m]
                      for m in component_layers[t]] for t in self.tasks]
            widths = self._level_widths(component_layers, reuse_embeddings)
        n_levels = len(widths)
        self.pretrained = bool(pretrained)
        self.reuse_embeddings = bool(reuse_embeddings)
        self.config = dict(
            component_layers=component_layers, n_levels=n_levels, tower=list(tower), use_mtm=bool(use_mtm),
            fusion=fusion, embedding_dim=embedding_dim, pretrained=self.pretrained,
            reuse_embeddings=self.reuse_embeddings, gate_batch_norm=bool(gate_batch_norm),
            mtm_activation=mtm_activation, dropout=dropout,
        )
        self.bn_drift = bool(bn_drift)
        if bn_drift:
            self.config["bn_drift"] = True
        if frozen_features:
            self.config["frozen_features"] = list(frozen_features)
        gate_in = self.embedding.out_features
        levels = []
        for lvl in range(n_levels):
            level_comps = [[model[lvl] for model in comps[t]] for t in range(len(self.tasks))]
            levels.append(AKF(level_comps, gate_in if lvl == 0 else widths[lvl - 1][1], widths[lvl][1],
                              use_mtm=use_mtm, fusion=fusion, gate_batch_norm=gate_batch_norm,
                              mtm_activation=mtm_activation))
        self.levels = nn.ModuleList(levels)
        d_out = widths[-1][1]
        self.towers = nn.ModuleList(
            nn.Sequential(*mlp(d_out, tower, dropout), nn.Linear(tower[-1] if tower else d_out, 1))
            for _ in self.tasks
        )
        if self.pretrained:
            self._freeze()

    # ---------------------------------------------------------------- structure helpers

    def _shapes_to_layers(self, shapes, n_levels, embedding_dim, reuse, dropout) -> dict:
        if n_levels is None or n_levels < 1:
            raise ValueError(f"Building an EMM from component_shapes needs n_levels >= 1, got {n_levels}.")
        shapes = DEFAULT_COMPONENT_SHAPES if shapes is None else shapes
        per_task = shapes if isinstance(shapes, Mapping) else {t: shapes for t in self.tasks}
        self._check_task_keys(per_task, "component_shapes")
        in_width = self.spec.n_sparse * embedding_dim + self.spec.n_dense
        layers: dict[str, list] = {}
        for t in self.tasks:
            models = list(per_task[t])
            if not models:
                raise ValueError(f"component_shapes gives no model for task {t!r}; give at least one.")
            layers[t] = []
            for m in models:
                if _is_int_list(m):
                    per_level = [list(m)] * n_levels
                elif isinstance(m, (list, tuple)) and all(_is_int_list(x) for x in m) and len(m) == n_levels:
                    per_level = [list(x) for x in m]
                else:
                    raise ValueError(
                        f"component_shapes for task {t!r}: each model is a block of widths like (8, 8) or "
                        f"{n_levels} width lists (one per level); got {m!r}."
                    )
                width, model_layers = in_width, []
                for lvl, ws in enumerate(per_level):
                    prefix = [["FeatureEmbedding", embedding_dim]] if reuse and lvl == 0 else []
                    model_layers.append(prefix + _mlp_descriptors(width, ws, dropout))
                    width = ws[-1]
                layers[t].append(model_layers)
        return layers

    def _check_task_keys(self, per_task: Mapping, what: str) -> None:
        missing = [t for t in self.tasks if t not in per_task]
        extra = [t for t in per_task if t not in self.tasks]
        if missing or extra:
            raise ValueError(f"{what} is given for tasks {list(per_task)} but the model's tasks are "
                             f"{list(self.tasks)} (missing: {missing}, unexpected: {extra}).")

    def _check_layers(self, layers: Mapping, n_levels: int | None) -> dict:
        self._check_task_keys(layers, "component_layers")
        out = {t: [[[list(d) for d in lvl] for lvl in m] for m in layers[t]] for t in self.tasks}
        counts = {len(m) for t in self.tasks for m in out[t]}
        if any(not out[t] for t in self.tasks) or len(counts) != 1:
            raise ValueError(f"component_layers: every task needs >= 1 model and every model the same "
                             f"number of levels; got level counts {sorted(counts)}.")
        if n_levels is not None and counts != {n_levels}:
            raise ValueError(f"component_layers has {counts.pop()} levels but n_levels={n_levels}.")
        return out

    def _level_widths(self, layers: Mapping, reuse: bool) -> list[tuple[int, int]]:
        n_levels = len(layers[self.tasks[0]][0])
        width_in = self.embedding.out_features
        widths = []
        for lvl in range(n_levels):
            outs = {}
            for t in self.tasks:
                for k, m in enumerate(layers[t]):
                    try:
                        outs[(t, k)] = _width(m[lvl], width_in, self.spec)
                    except ValueError as exc:
                        what = "the embedding width n_sparse*dim+n_dense" if lvl == 0 else f"level {lvl}'s output width"
                        raise ValueError(f"Task {t!r} model {k}, level {lvl + 1}: {exc} ({what} is {width_in}).") from None
            if len(set(outs.values())) != 1:
                raise ValueError(f"Components at level {lvl + 1} must give the same output width; got "
                                 f"{ {f'{t}/{k}': w for (t, k), w in outs.items()} }.")
            w = next(iter(outs.values()))
            widths.append((width_in, w))
            width_in = w
        return widths

    def _components(self) -> list[nn.Module]:
        return [c for level in self.levels for task in level.components for c in task]

    def _freeze(self) -> None:
        """Trained components: no gradients (adapters excepted), eval mode (see :meth:`train`)."""
        for comp in self._components():
            for sub in comp.modules():
                if not isinstance(sub, Adapter):
                    for p in sub.parameters(recurse=False):
                        p.requires_grad_(False)
            comp.eval()

    def train(self, mode: bool = True) -> "EMM":
        """Like ``nn.Module.train``, but frozen trained components always stay in eval mode,
        so their BatchNorm running statistics (and Dropout) never change."""
        super().train(mode)
        if self.pretrained and not self.bn_drift:
            for comp in self._components():
                comp.eval()
        return self

    # ---------------------------------------------------------------- forward

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
        if not return_details and self.fast and not self.bn_drift:  # bn_drift: components in train mode
            return self._forward_fused(batch)
        x = self.embedding(batch)
        if self.frozen_embedding is not None:
            x = self.frozen_embedding(x, batch)
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
            return logits, [self._readable(d, lvl) for lvl, d in enumerate(details)]
        return logits

    def _forward_fused(self, batch: Batch) -> Tensor:
        """:meth:`forward` with the fused levels: activations feature-major (width, B) throughout."""
        comp_in = batch if self.reuse_embeddings else None
        if self.frozen_embedding is None:  # level 1 fuses the lookup with its first matmul
            z = self.embedding.feature_major(batch)
        else:
            z = self.frozen_embedding(self.embedding(batch), batch).t()
        for lvl, level in enumerate(self.levels):
            z = level.forward_fm(z, comp_in if lvl == 0 else None)
        return torch.cat([sequential_forward(tower, z[t]) for t, tower in enumerate(self.towers)]).t()

    def _readable(self, d: dict, lvl: int) -> dict:
        n_comp = self.levels[lvl].n_components
        out: dict[str, Any] = {"level": lvl + 1,
                               "task_gate": {t: d["task_gate"][i, :, : n_comp[i]] for i, t in enumerate(self.tasks)}}
        if "mtm" in d:
            w = d["partner_weights"]
            out["fusion_scores"] = {t: d["fusion_scores"][i] for i, t in enumerate(self.tasks)}
            out["partner_weights"] = {t: w[i] for i, t in enumerate(self.tasks)}
            out["partner"] = {t: w[i].argmax(-1) for i, t in enumerate(self.tasks)}
            out["mtm"] = {t: d["mtm"][i] for i, t in enumerate(self.tasks)}
        return out

    @torch.no_grad()
    def explain(self, batch: Batch) -> dict:
        """Probabilities and, per level, task-gate weights {task: (B, m_t)}, fusion scores and
        partner weights {task: (B, T)}, chosen partner {task: (B,) task index} and MTM
        attention {task: (B, 2) over [own, partner]}. Uses the current train/eval mode."""
        logits, levels = self(batch, return_details=True)
        return {"tasks": self.tasks, "probabilities": torch.sigmoid(logits), "levels": levels}

    def describe(self):
        """One row per (task, model, level): layers, parameters, trainable or frozen."""
        import pandas as pd

        from .deconstruct import _short

        rows = []
        for lvl, level in enumerate(self.levels):
            for t, task in enumerate(self.tasks):
                for k, comp in enumerate(level.components[t]):
                    n = sum(p.numel() for p in comp.parameters())
                    rows.append({"task": task, "model": k, "level": lvl + 1,
                                 "layers": " -> ".join(_short(m) for m in comp), "parameters": n,
                                 "trainable": sum(p.numel() for p in comp.parameters() if p.requires_grad)})
        return pd.DataFrame(rows).sort_values(["task", "model", "level"], ignore_index=True)

    # ---------------------------------------------------------------- constructors

    @classmethod
    def from_trained(
        cls,
        trained: Mapping[str, Sequence[nn.Module]],
        spec: FeatureSpec | None = None,
        tasks: Sequence[str] | None = None,
        n_levels: int | None = None,
        tower: Sequence[int] = (8,),
        fusion: str = DEFAULT_FUSION,
        use_mtm: bool = True,
        reuse_embeddings: bool = False,
        embedding_dim: int | None = None,
        cut_points: Sequence[Sequence[int]] | None = None,
        adapters: bool = False,
        pretrained: bool = True,
        **kwargs: Any,
    ) -> "EMM":
        """Build an EMM from trained single-task models ``{task: [model, ...]}`` (Algorithms 1+2).

        Each model is a :class:`~emm_lib.models.SingleTaskMLP` (its ``body`` is used) or a bare
        body. Bodies are deconstructed together (``n_levels``, ``cut_points``, ``adapters`` as in
        :func:`~emm_lib.deconstruct.deconstruct`); task t's models' components go to task t at
        every level. Components are *copies* of the trained weights, frozen; the trained models
        are left untouched. The embedding is a new trainable one (authors), of
        ``embedding_dim`` (default: what the bodies' input width implies); with
        ``reuse_embeddings=True`` each level-1 component starts with its own model's frozen
        embedding instead. ``pretrained=False`` keeps only the structure (random, trainable).
        Other keyword arguments go to :class:`EMM` (``gate_batch_norm``, ``mtm_activation``,
        ``dropout``).
        """
        if not isinstance(trained, Mapping) or not trained:
            raise ValueError("from_trained() takes a non-empty dict {task: [trained models]}.")
        tasks = tuple(tasks) if tasks is not None else tuple(trained)
        missing = [t for t in tasks if t not in trained]
        extra = [t for t in trained if t not in tasks]
        if missing or extra:
            raise ValueError(f"Trained models are given for tasks {list(trained)} but the EMM's tasks are "
                             f"{list(tasks)} (missing: {missing}, unexpected: {extra}); the dict keys must "
                             "be the task names.")
        models: list[nn.Module] = []
        names: list[str] = []
        owner: list[str] = []
        for t in tasks:
            ms = trained[t]
            if isinstance(ms, nn.Module):
                ms = [ms]
            ms = list(ms)
            if not ms:
                raise ValueError(f"No trained models for task {t!r}; give at least one.")
            for k, m in enumerate(ms):
                if not isinstance(m, nn.Module):
                    raise ValueError(f"Trained model {k} for task {t!r} is a {type(m).__name__}, not an nn.Module.")
                mt = getattr(m, "tasks", None)
                if isinstance(m, MultiTaskModel) and tuple(mt) != (t,):
                    raise ValueError(f"Trained model {k} given for task {t!r} was trained for task(s) {list(mt)}; "
                                     "put it under its own task (or pass model.body to use it anyway).")
                models.append(m)
                names.append(f"{t}/{k}")
                owner.append(t)
        if spec is None:
            spec = next((m.spec for m in models if isinstance(getattr(m, "spec", None), FeatureSpec)), None)
            if spec is None:
                raise ValueError("Pass spec=<FeatureSpec>: the trained models do not carry one.")
        check_trained_specs(models, names, spec)  # names, cardinalities, dense columns (emm_lib.checks)
        bodies = [m.body if isinstance(getattr(m, "body", None), nn.Module) else m for m in models]
        dec = deconstruct(bodies, n_levels=n_levels, cut_points=cut_points, adapters=adapters, names=names)
        in_shape = dec.input_shapes[0]
        if len(in_shape) != 1:
            raise ValueError(f"The trained bodies take input of shape {in_shape}; EMM needs flat feature vectors.")
        in_width = in_shape[0]
        fits = spec.n_sparse > 0 and (in_width - spec.n_dense) % spec.n_sparse == 0 and in_width > spec.n_dense
        implied = (in_width - spec.n_dense) // spec.n_sparse if fits else None
        if reuse_embeddings:
            for m, n in zip(models, names):
                emb = getattr(m, "embedding", None)
                if not isinstance(emb, FeatureEmbedding) or emb.out_features != in_width:
                    raise ValueError(f"reuse_embeddings=True needs every trained model to have a FeatureEmbedding "
                                     f"of width {in_width} (its body's input); {n} has none that fits.")
            embedding_dim = embedding_dim or next(m.embedding.dim for m in models)
        else:
            if embedding_dim is None:
                if implied is None:
                    raise ValueError(
                        f"The trained bodies take inputs of width {in_width}, which does not fit the feature spec "
                        f"({spec.n_sparse} sparse x embedding_dim + {spec.n_dense} dense); the models were not "
                        "built for these features."
                    )
                embedding_dim = implied
            elif spec.n_sparse * embedding_dim + spec.n_dense != in_width:
                raise ValueError(
                    f"Body input width {in_width} != embedding width {spec.n_sparse * embedding_dim + spec.n_dense} "
                    f"({spec.n_sparse} sparse x {embedding_dim} + {spec.n_dense} dense); pass the embedding_dim "
                    f"the trained models used{f' ({implied})' if implied else ''}."
                )
        # The EMM's own components, model by model (copies, then frozen).
        sources: dict[str, list[list[nn.Module]]] = {t: [] for t in tasks}
        for i, (m, t) in enumerate(zip(models, owner)):
            comps = list(dec.components[i])
            if reuse_embeddings:
                comps[0] = nn.Sequential(m.embedding, *comps[0])
            sources[t].append(comps)
        layers = {t: [[[_describe_layer(x) for x in comp] for comp in model] for model in sources[t]] for t in tasks}
        describable = all(d is not None for t in tasks for model in layers[t] for comp in model for d in comp)
        common = dict(tower=tower, fusion=fusion, use_mtm=use_mtm, reuse_embeddings=reuse_embeddings,
                      embedding_dim=embedding_dim, pretrained=pretrained, **kwargs)
        if describable:
            emm = cls(spec, tasks, component_layers=layers, n_levels=dec.n_levels, **common)
            if pretrained:
                for lvl, level in enumerate(emm.levels):
                    for ti, t in enumerate(tasks):
                        for k, target in enumerate(level.components[ti]):
                            target.load_state_dict(nn.Sequential(*sources[t][k][lvl]).state_dict())
        else:
            if not pretrained:
                raise ValueError("pretrained=False needs components made of layers the config can describe "
                                 "(Linear, BatchNorm1d, LayerNorm, activations, Dropout).")
            warnings.warn("Some component layers cannot be described in the EMM config; this model trains and "
                          "predicts, but a checkpoint cannot rebuild it (build it again with from_trained).",
                          stacklevel=2)
            comps = [[[copy.deepcopy(nn.Sequential(*c)) for c in model] for model in sources[t]] for t in tasks]
            widths = [(dec.input_shapes[0][0] if lvl == 0 else dec.input_shapes[lvl][0], dec.output_shapes[lvl][0])
                      for lvl in range(dec.n_levels)]
            emm = cls(spec, tasks, n_levels=dec.n_levels, _prebuilt=(comps, widths), **common)
        if emm.frozen_embedding is not None:  # the authors' load order ends with the last model
            emm.frozen_embedding.copy_from(models[-1])
        emm.component_names = {t: [n for n, o in zip(names, owner) if o == t] for t in tasks}
        emm.decomposition_table = dec.describe()
        return emm

    @classmethod
    def ablation(
        cls,
        variant: str,
        trained: Mapping[str, Sequence[nn.Module]] | None = None,
        spec: FeatureSpec | None = None,
        tasks: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> "EMM":
        """One of Table II's variants: ``"baseline"`` (structure from scratch, no MTM),
        ``"baseline+MTM"``, ``"baseline+p"`` (trained components, no MTM) or ``"EMM"``.

        With ``trained`` the structure comes from the trained models (as :meth:`from_trained`
        would build it); without, the from-scratch variants use ``component_shapes`` etc. from
        ``kwargs`` (``spec`` and ``tasks`` needed).
        """
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
