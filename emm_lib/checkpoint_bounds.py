"""Bounds on the structure a checkpoint's JSON may describe, checked before anything is built.

A checkpoint's config cannot describe more model than its weights hold: every layer, block,
level, tower and per-task module owns at least one weight tensor, and every width, expert, task,
feature and embedding column at least one weight element. :func:`check_structure` compares the
counts a config asks for with the weights (their number of tensors, and their number of elements
plus the allocation budget's margin) and raises a ``ValueError`` naming the field, its value and
the bound, so that an edited JSON (``n_blocks: 400000`` next to 14 tensors) is refused in
microseconds instead of building hundreds of thousands of modules.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

__all__ = ["check_structure", "StructureError"]

#: Config keys that set no count or size (each model's constructor checks their values).
_FREE = {"dropout", "alpha", "task_order", "fusion", "use_mtm", "pretrained", "reuse_embeddings",
         "gate_batch_norm", "mtm_activation", "bn_drift", "block3_skipped", "residual_init"}
_WIDTH_LISTS = ("block", "tower", "expert", "bottom")
_SIZES = ("n_experts", "n_specific", "n_shared", "embedding_dim")
#: Models with modules of their own per task (towers, attention units), not one grouped module.
_PER_TASK_MODULES = {"emm", "emm_published", "aitm"}
#: Descriptors of component layers that own weight tensors (emm_lib.layer_descriptors).
_WEIGHTED = {"Linear", "BatchNorm1d", "LayerNorm", "Adapter", "FeatureEmbedding"}


class StructureError(ValueError):
    """A config describes more structure than the weights hold, or a count of the wrong type."""


def _count(field: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise StructureError(f"config field {field!r} must be an integer >= {minimum}, got {value!r}")
    return value


def _widths(field: str, value: Any) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list):
        raise StructureError(f"config field {field!r} must be a list of widths, got {type(value).__name__}")
    return [_count(f"{field}[{i}]", w, 1) for i, w in enumerate(value)]


def _at_most(field: str, value: int, bound: int, unit: str, detail: str = "", amount: int | None = None) -> None:
    """``amount`` (default ``value``) of ``unit`` asked for by ``field`` must not exceed ``bound``."""
    if (value if amount is None else amount) > bound:
        raise StructureError(f"config field {field!r} = {value:,}{detail} asks for more {unit} than the weights "
                             f"hold (bound: {bound:,})")


def _ints(x: Any) -> Iterator[int]:
    """Every int in a nested list (a descriptor's widths)."""
    if isinstance(x, int) and not isinstance(x, bool):
        yield x
    elif isinstance(x, list):
        for v in x:
            yield from _ints(v)


def _components(config: Mapping, tensors: int, elements: int) -> None:
    """EMM ``component_layers`` ({task: [model][level][layer descriptor]}) or ``component_shapes``."""
    layers = config.get("component_layers")
    if isinstance(layers, Mapping):
        comps = [lvl for models in layers.values() if isinstance(models, list)
                 for m in models if isinstance(m, list) for lvl in m]
        descs = [d for lvl in comps if isinstance(lvl, list) for d in lvl]
        weighted = sum(1 for d in descs if isinstance(d, list) and d and d[0] in _WEIGHTED)
        _at_most("component_layers", len(comps), tensors, "weight tensors", " components")
        _at_most("component_layers", weighted, tensors, "weight tensors", " weighted layers")
        _at_most("component_layers", len(descs), 4 * tensors, "layers", " layers")
        for w in _ints(descs):
            _at_most("component_layers", w, elements, "weight elements", " (a width)")
    shapes = config.get("component_shapes")
    if shapes is not None:
        flat = list(_ints(list(shapes.values()) if isinstance(shapes, Mapping) else shapes))
        levels = _count("n_levels", config["n_levels"], 1) if config.get("n_levels") is not None else 1
        _at_most("component_shapes", len(flat), tensors, "weight tensors",
                 f" widths (x {levels} level(s))", len(flat) * levels)
        for w in flat:
            _at_most("component_shapes", w, elements, "weight elements", " (a width)")


def check_structure(model: str, config: Mapping, tasks: Sequence, spec: Mapping, tensors: int,
                    elements: int) -> None:
    """Raise :class:`StructureError` when ``config`` (with ``tasks`` and ``spec``) describes more
    layers than ``tensors`` or larger sizes than ``elements``; nothing is built."""
    if not isinstance(config, Mapping):
        raise StructureError(f"config must be a JSON object, got {type(config).__name__}")
    if not isinstance(tasks, list):
        raise StructureError(f"'tasks' must be a list of task names, got {type(tasks).__name__}")
    _at_most("tasks", len(tasks), tensors if model in _PER_TASK_MODULES else elements,
             "weight tensors" if model in _PER_TASK_MODULES else "weight elements", " tasks")
    lists = [spec.get(k) for k in ("sparse", "dense")] if isinstance(spec, Mapping) else []
    n_features = sum(len(x) for x in lists if isinstance(x, list))
    _at_most("spec", n_features, elements, "weight elements", " features")
    widths = {k: _widths(k, config[k]) for k in _WIDTH_LISTS if k in config}
    for k, ws in widths.items():
        _at_most(k, len(ws), tensors, "weight tensors", " layers")
        for w in ws:
            _at_most(k, w, elements, "weight elements", " (a width)")
    for k in _SIZES:
        if k in config:
            _at_most(k, _count(k, config[k]), elements, "weight elements")
    if "n_blocks" in config:
        per = max(len(widths.get("block", [])), 1)
        n = _count("n_blocks", config["n_blocks"])
        _at_most("n_blocks", n, tensors, "weight tensors", f" (x {per} layer(s) per block = {n * per:,} layers)",
                 n * per)
    if config.get("n_levels") is not None and model not in ("emm", "emm_published"):
        per = max(len(widths.get("expert", [])), 1)
        n = _count("n_levels", config["n_levels"])
        _at_most("n_levels", n, tensors, "weight tensors", f" (x {per} expert layer(s) = {n * per:,} layers)",
                 n * per)
    elif config.get("n_levels") is not None:
        _at_most("n_levels", _count("n_levels", config["n_levels"]), tensors, "weight tensors", " levels")
    if "frozen_features" in config and isinstance(config["frozen_features"], list):
        _at_most("frozen_features", len(config["frozen_features"]), tensors, "weight tensors", " tables")
    _components(config, tensors, elements)
