"""A component as JSON-able layer descriptors: what ``EMM.config`` records, so a checkpoint
rebuilds the skeleton of every frozen component and loads its weights.

A descriptor is a short list, the layer's type and its constructor arguments, e.g.
``["Linear", 39, 8, True]``, ``["BatchNorm1d", 8, 1e-05, 0.1, True, True]``, ``["ReLU"]``.
:func:`describe_layer` writes one (``None`` for a layer it cannot describe), :func:`build_layer`
reads one back. The structure helpers below turn ``component_shapes`` (widths) into descriptor
lists, check their shape, and compute each EMM level's input and output widths.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from torch import nn

from .data.types import FeatureSpec
from .deconstruct import Adapter
from .features import FeatureEmbedding

__all__ = ["describe_layer", "build_layer", "output_width", "mlp_descriptors", "shapes_to_layers",
           "check_layers", "resolve_layers", "build_components", "level_widths", "check_task_keys", "DEFAULT_COMPONENT_SHAPES", "UNDESCRIBED"]

# The authors' Census blocks: TM-1 [8, 8], TM-2 [16, 8], two trained models per task.
DEFAULT_COMPONENT_SHAPES: tuple[tuple[int, ...], ...] = ((8, 8), (16, 8))
#: The ``component_layers`` value of an EMM whose components have layers no descriptor covers.
UNDESCRIBED = "not describable (built by from_trained)"
_PLAIN = {"ReLU", "GELU", "Tanh", "Sigmoid", "SiLU", "Identity", "Softplus"}


def describe_layer(m: nn.Module) -> list | None:
    """The descriptor of layer ``m``, or None when it has none."""
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


def build_layer(d: Sequence, spec: FeatureSpec) -> nn.Module:
    """A fresh layer (random weights) from its descriptor."""
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


def output_width(layers: Sequence[Sequence], width: int, spec: FeatureSpec) -> int:
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


def mlp_descriptors(in_width: int, widths: Sequence[int], dropout: float) -> list[list]:
    """Linear -> BatchNorm1d -> ReLU (-> Dropout) per width: one MLP block of a trained model."""
    out: list[list] = []
    for w in widths:
        out += [["Linear", in_width, int(w), True], ["BatchNorm1d", int(w), 1e-5, 0.1, True, True], ["ReLU"]]
        if dropout > 0:
            out.append(["Dropout", dropout])
        in_width = int(w)
    return out


def _is_int_list(x: Any) -> bool:
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(v, int) for v in x)


# --------------------------------------------------------------------------- an EMM's components


def check_task_keys(tasks: Sequence[str], per_task: Mapping, what: str) -> None:
    """``per_task`` has exactly the keys ``tasks``."""
    missing = [t for t in tasks if t not in per_task]
    extra = [t for t in per_task if t not in tasks]
    if missing or extra:
        raise ValueError(f"{what} is given for tasks {list(per_task)} but the model's tasks are "
                         f"{list(tasks)} (missing: {missing}, unexpected: {extra}).")


def shapes_to_layers(shapes: Sequence | Mapping | None, tasks: Sequence[str], spec: FeatureSpec,
                     n_levels: int | None, embedding_dim: int, reuse: bool, dropout: float) -> dict:
    """``component_shapes`` (see :class:`~emm_lib.emm.EMM`) as descriptors ``{task: [model][level][layer]}``."""
    if n_levels is None or n_levels < 1:
        raise ValueError(f"Building an EMM from component_shapes needs n_levels >= 1, got {n_levels}.")
    shapes = DEFAULT_COMPONENT_SHAPES if shapes is None else shapes
    per_task = shapes if isinstance(shapes, Mapping) else {t: shapes for t in tasks}
    check_task_keys(tasks, per_task, "component_shapes")
    in_width = spec.n_sparse * embedding_dim + spec.n_dense
    layers: dict[str, list] = {}
    for t in tasks:
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
                model_layers.append(prefix + mlp_descriptors(width, ws, dropout))
                width = ws[-1]
            layers[t].append(model_layers)
    return layers


def check_layers(layers: Mapping, tasks: Sequence[str], n_levels: int | None) -> dict:
    """``component_layers`` as plain lists, every task with >= 1 model and all models ``n_levels`` deep."""
    check_task_keys(tasks, layers, "component_layers")
    out = {t: [[[list(d) for d in lvl] for lvl in m] for m in layers[t]] for t in tasks}
    counts = {len(m) for t in tasks for m in out[t]}
    if any(not out[t] for t in tasks) or len(counts) != 1:
        raise ValueError(f"component_layers: every task needs >= 1 model and every model the same "
                         f"number of levels; got level counts {sorted(counts)}.")
    if n_levels is not None and counts != {n_levels}:
        raise ValueError(f"component_layers has {counts.pop()} levels but n_levels={n_levels}.")
    return out


def level_widths(layers: Mapping, tasks: Sequence[str], spec: FeatureSpec, width_in: int) -> list[tuple[int, int]]:
    """(input, output) width of every level; all components of a level must agree."""
    n_levels = len(layers[tasks[0]][0])
    widths = []
    for lvl in range(n_levels):
        outs = {}
        for t in tasks:
            for k, m in enumerate(layers[t]):
                try:
                    outs[(t, k)] = output_width(m[lvl], width_in, spec)
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


def resolve_layers(shapes: Sequence | Mapping | None, layers: Mapping | str | None, tasks: Sequence[str],
                   spec: FeatureSpec, n_levels: int | None, embedding_dim: int, reuse: bool, dropout: float) -> dict:
    """An EMM's ``component_layers``: the given descriptors (checked) or those of ``component_shapes``."""
    if shapes is not None and layers is not None:
        raise ValueError("Give component_shapes or component_layers, not both.")
    if layers == UNDESCRIBED:
        raise ValueError("This EMM was built by from_trained() from component layers its config cannot "
                         "describe; rebuild it with EMM.from_trained(...) and load the state dict into that.")
    if layers is None:
        layers = shapes_to_layers(shapes, tasks, spec, n_levels, embedding_dim, reuse, dropout)
    return check_layers(layers, tasks, n_levels)


def build_components(layers: Mapping, tasks: Sequence[str], spec: FeatureSpec) -> list[list[list[nn.Sequential]]]:
    """Fresh components ``[task][model][level]`` from their descriptors."""
    return [[[nn.Sequential(*(build_layer(d, spec) for d in lvl)) for lvl in m] for m in layers[t]] for t in tasks]
