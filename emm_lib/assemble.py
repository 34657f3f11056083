"""From trained single-task models to an EMM, in the paper's steps (Sec. III; Algorithms 1 and 2).

:meth:`emm_lib.emm.EMM.from_trained` is these steps, in order (:func:`fuse`):

1. :func:`gather_trained` -- the ``{task: [models]}`` dict, checked and flattened in task order;
2. :func:`deconstruct_trained` -- Algorithm 1: every model's body cut into the same number of
   components (:func:`~emm_lib.deconstruct.deconstruct`);
3. :func:`embedding_dim_for` -- the width of the EMM's own embedding that the bodies' input implies;
4. :func:`align_levels` -- the components regrouped per task: ``sources[task][model][level]``,
   so that level ``l`` of the EMM holds every model's ``l``-th component;
5. :func:`build_levels` -- Algorithm 2's AKF levels built around *copies* of those components;
6. :meth:`EMM.freeze <emm_lib.emm.EMM.freeze>` -- the trained components frozen.
"""
from __future__ import annotations

import copy
import warnings
from typing import Any, Mapping, Sequence

from torch import nn

from . import checks
from .data.types import FeatureSpec
from .deconstruct import Decomposition, deconstruct
from .features import FeatureEmbedding
from .layer_descriptors import describe_layer
from .models.base import MultiTaskModel

__all__ = ["gather_trained", "spec_of", "deconstruct_trained", "embedding_dim_for", "align_levels",
           "build_levels"]


def gather_trained(trained: Mapping[str, Sequence[nn.Module]], tasks: Sequence[str] | None = None
                   ) -> tuple[tuple[str, ...], list[nn.Module], list[str], list[str]]:
    """``(tasks, models, names, owner)``: the models in task order, named ``task/k``, with their task."""
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
        ms = list([ms] if isinstance(ms, nn.Module) else ms)
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
    return tasks, models, names, owner


def spec_of(models: Sequence[nn.Module]) -> FeatureSpec:
    """The feature spec the first model that carries one was built for."""
    spec = next((m.spec for m in models if isinstance(getattr(m, "spec", None), FeatureSpec)), None)
    if spec is None:
        raise ValueError("Pass spec=<FeatureSpec>: the trained models do not carry one.")
    return spec


def deconstruct_trained(models: Sequence[nn.Module], names: Sequence[str], **kw: Any) -> Decomposition:
    """Algorithm 1 on the models' bodies (a :class:`~emm_lib.models.SingleTaskMLP`'s ``body``, or
    the module itself); ``kw``: ``n_levels``, ``cut_points``, ``adapters`` of
    :func:`~emm_lib.deconstruct.deconstruct`. The bodies must take flat feature vectors."""
    bodies = [m.body if isinstance(getattr(m, "body", None), nn.Module) else m for m in models]
    dec = deconstruct(bodies, names=list(names), **kw)
    if len(dec.input_shapes[0]) != 1:
        raise ValueError(f"The trained bodies take input of shape {dec.input_shapes[0]}; "
                         "EMM needs flat feature vectors.")
    return dec


def embedding_dim_for(dec: Decomposition, spec: FeatureSpec, models: Sequence[nn.Module], names: Sequence[str],
                      reuse_embeddings: bool = False, embedding_dim: int | None = None) -> int:
    """The EMM's embedding dim: the given one, checked against the bodies' input width
    (``n_sparse * dim + n_dense``), else the one that width implies; with ``reuse_embeddings``
    the trained models' own (each must have a :class:`~emm_lib.features.FeatureEmbedding` of that width)."""
    in_width = dec.input_shapes[0][0]
    fits = spec.n_sparse > 0 and (in_width - spec.n_dense) % spec.n_sparse == 0 and in_width > spec.n_dense
    implied = (in_width - spec.n_dense) // spec.n_sparse if fits else None
    if reuse_embeddings:
        for m, n in zip(models, names):
            emb = getattr(m, "embedding", None)
            if not isinstance(emb, FeatureEmbedding) or emb.out_features != in_width:
                raise ValueError(f"reuse_embeddings=True needs every trained model to have a FeatureEmbedding "
                                 f"of width {in_width} (its body's input); {n} has none that fits.")
        return embedding_dim or next(m.embedding.dim for m in models)
    if embedding_dim is None:
        if implied is None:
            raise ValueError(
                f"The trained bodies take inputs of width {in_width}, which does not fit the feature spec "
                f"({spec.n_sparse} sparse x embedding_dim + {spec.n_dense} dense); the models were not "
                "built for these features."
            )
        return implied
    if spec.n_sparse * embedding_dim + spec.n_dense != in_width:
        raise ValueError(
            f"Body input width {in_width} != embedding width {spec.n_sparse * embedding_dim + spec.n_dense} "
            f"({spec.n_sparse} sparse x {embedding_dim} + {spec.n_dense} dense); pass the embedding_dim "
            f"the trained models used{f' ({implied})' if implied else ''}."
        )
    return embedding_dim


def align_levels(dec: Decomposition, models: Sequence[nn.Module], owner: Sequence[str], tasks: Sequence[str],
                 reuse_embeddings: bool = False) -> dict[str, list[list[nn.Module]]]:
    """``sources[task][k][level]``: model ``k`` of ``task``'s components (the trained layers
    themselves, not copies); with ``reuse_embeddings`` a model's embedding leads its level-1 component."""
    sources: dict[str, list[list[nn.Module]]] = {t: [] for t in tasks}
    for i, (m, t) in enumerate(zip(models, owner)):
        comps: list[nn.Module] = list(dec.components[i])
        if reuse_embeddings:
            comps[0] = nn.Sequential(m.embedding, *comps[0])
        sources[t].append(comps)
    return sources


def build_levels(emm_cls: type, spec: FeatureSpec, tasks: Sequence[str], sources: Mapping[str, list],
                 dec: Decomposition, pretrained: bool = True, **kw: Any):
    """An ``emm_cls`` (:class:`~emm_lib.emm.EMM`) whose AKF levels hold copies of ``sources``.

    When every layer has a descriptor (:mod:`emm_lib.layer_descriptors`) the components are
    rebuilt from descriptors (so ``config`` rebuilds the model) and, if ``pretrained``, the
    trained weights loaded into them; otherwise deep copies are used and a warning says that a
    checkpoint cannot rebuild the model. ``kw`` goes to the EMM."""
    layers = {t: [[[describe_layer(x) for x in comp] for comp in model] for model in sources[t]] for t in tasks}
    describable = all(d is not None for t in tasks for model in layers[t] for comp in model for d in comp)
    if describable:
        emm = emm_cls(spec, tasks, component_layers=layers, n_levels=dec.n_levels, pretrained=pretrained, **kw)
        if pretrained:
            for lvl, level in enumerate(emm.levels):
                for ti, t in enumerate(tasks):
                    for k, target in enumerate(level.components[ti]):
                        target.load_state_dict(nn.Sequential(*sources[t][k][lvl]).state_dict())
        return emm
    if not pretrained:
        raise ValueError("pretrained=False needs components made of layers the config can describe "
                         "(Linear, BatchNorm1d, LayerNorm, activations, Dropout).")
    warnings.warn("Some component layers cannot be described in the EMM config; this model trains and "
                  "predicts, but a checkpoint cannot rebuild it (build it again with from_trained).",
                  stacklevel=3)
    comps = [[[copy.deepcopy(nn.Sequential(*c)) for c in model] for model in sources[t]] for t in tasks]
    widths = [(dec.input_shapes[lvl][0], dec.output_shapes[lvl][0]) for lvl in range(dec.n_levels)]
    return emm_cls(spec, tasks, n_levels=dec.n_levels, _prebuilt=(comps, widths), pretrained=pretrained, **kw)

def fuse(emm_cls: type, trained: Mapping[str, Sequence[nn.Module]], spec: FeatureSpec | None,
         tasks: Sequence[str] | None, *, n_levels: int | None, cut_points, adapters: bool, pretrained: bool,
         reuse_embeddings: bool, embedding_dim: int | None, **options: Any) -> MultiTaskModel:
    """:meth:`emm_lib.emm.EMM.from_trained`: the steps above, in order (Algorithms 1 and 2)."""
    tasks, models, names, owner = gather_trained(trained, tasks)
    spec = spec if spec is not None else spec_of(models)
    checks.check_trained_specs(models, names, spec)  # names, cardinalities, dense columns (emm_lib.checks)
    # Algorithm 1: every body cut into the same number of components.
    dec = deconstruct_trained(models, names, n_levels=n_levels, cut_points=cut_points, adapters=adapters)
    embedding_dim = embedding_dim_for(dec, spec, models, names, reuse_embeddings, embedding_dim)
    checks.check_specs_stated(models, names, spec)  # a bare body of the right width may be other features
    # Level l of the EMM holds every model's l-th component, grouped by task.
    sources = align_levels(dec, models, owner, tasks, reuse_embeddings)
    # Algorithm 2: the AKF levels around copies of the components, then the copies frozen.
    emm = build_levels(emm_cls, spec, tasks, sources, dec, pretrained, reuse_embeddings=reuse_embeddings,
                       embedding_dim=embedding_dim, **options)
    if pretrained:
        emm.freeze()
    emm.trained_models_built(models)
    emm.component_names = {t: [n for n, o in zip(names, owner) if o == t] for t in tasks}
    emm.decomposition_table = dec.describe()
    return emm
