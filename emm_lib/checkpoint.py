"""Checkpoints: ``<name>.pt`` (tensors, loaded with ``weights_only=True``) + ``<name>.json`` (what
rebuilds the model).

The ``.pt`` file also carries a copy of the JSON, so :func:`load` catches a JSON that was edited or
swapped (renamed or reordered tasks or features, other sizes) instead of loading weights under the
wrong names. Before the model is rebuilt, its structure (blocks, levels, layers, tasks, widths) is
bounded by the weights (:mod:`emm_lib.checkpoint_bounds`), and it is rebuilt under an allocation
budget derived from the weights, so a JSON that asks for a huge model fails before anything large
is allocated.
"""
from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

from .checkpoint_bounds import StructureError, check_structure
from .data.types import FeatureSpec
from .models.base import MODEL_REGISTRY, MultiTaskModel
from .utils import atomic_write

__all__ = ["save", "load", "load_or_none", "exists", "paths", "CheckpointError"]

FORMAT = "emm-checkpoint/2"
_IDENTITY = ("model", "tasks", "spec", "config")  # what must agree between the .json and the .pt


class CheckpointError(ValueError):
    """A checkpoint file is damaged, or its two files disagree; the message names the file."""


def paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(<path>.pt, <path>.json)``; a trailing ``.pt``/``.json`` is dropped first. Any other dotted
    part is kept (``mmoe.seed0`` -> ``mmoe.seed0.pt``), so two names never share one file."""
    path = Path(path)
    base = path.with_suffix("") if path.suffix in (".pt", ".json") else path
    return base.with_name(base.name + ".pt"), base.with_name(base.name + ".json")


def exists(path: str | os.PathLike) -> bool:
    """True when both files of the checkpoint at ``path`` exist."""
    return all(p.is_file() for p in paths(path))


def save(model: MultiTaskModel, path: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write ``<path>.pt`` (the state dict and a copy of the config) and ``<path>.json``, atomically."""
    if getattr(model, "name", None) not in MODEL_REGISTRY:
        raise ValueError(f"Only registered models can be saved; {type(model).__name__} has no registry name.")
    pt, js = paths(path)
    meta = {"model": model.name, "tasks": list(model.tasks), "spec": model.spec.to_dict(),
            "config": model.config, "extra": extra or {}, "torch": torch.__version__, "format": FORMAT}
    text = json.dumps(meta, indent=2)  # fail before writing anything if the config is not JSON-able
    identity = json.dumps({k: meta[k] for k in _IDENTITY}, sort_keys=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_write(pt, "wb") as fh:
        torch.save({"format": FORMAT, "identity": identity, "state_dict": state}, fh)
    with atomic_write(js, "w") as fh:
        fh.write(text)
    return pt


class _AllocationBudget(TorchFunctionMode):
    """Refuse tensor allocations beyond ``limit`` elements in total (checked before allocating)."""

    _FACTORIES = {torch.empty, torch.zeros, torch.ones, torch.rand, torch.randn, torch.full}

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit, self.used = limit, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self._FACTORIES and args:
            size = args[0] if isinstance(args[0], (tuple, list, torch.Size)) else (
                args if func is not torch.full else ())
            if all(isinstance(s, int) for s in size):
                self.used += math.prod(size)
                if self.used > self.limit:
                    raise MemoryError(f"building the model needs more than {self.limit:,} elements")
        return func(*args, **kwargs)


def _read_json(js: Path) -> dict:
    try:
        meta = json.loads(js.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"Checkpoint {js} is not readable JSON ({exc}); the file is damaged. "
                              "Delete the checkpoint's .pt and .json and train (or save) again.") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"Checkpoint {js} holds {type(meta).__name__}, not a JSON object; it is not a "
                              "checkpoint written by emm_lib.checkpoint.save.")
    missing = [k for k in _IDENTITY if k not in meta]
    if missing:
        raise CheckpointError(f"Checkpoint {js} lacks the key(s) {missing}; it was not written by "
                              "emm_lib.checkpoint.save or was edited. Save the model again.")
    config = meta.get("config")
    if meta["model"] == "emm" and isinstance(config, dict) and _REPLAYED & set(config):
        meta["model"] = "emm_published"  # saved before the authors' behaviours left EMM (emm_lib.study.replay.protocol)
    if meta["model"] not in MODEL_REGISTRY:
        hint = (" It is the protocol replay's EMM: import emm_lib.study.replay.protocol first, which registers it."
                if meta["model"] == "emm_published" else "")
        raise CheckpointError(f"Checkpoint {js} names unknown model {meta['model']!r}; "
                              f"known: {sorted(MODEL_REGISTRY)}.{hint}")
    return meta


#: EMM options of checkpoints saved before the authors' code's behaviours moved to ``PublishedEMM``.
_REPLAYED = {"bn_drift", "frozen_features"}


def _read_pt(pt: Path, js: Path, meta: dict, device) -> dict:
    try:
        blob = torch.load(pt, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- truncated, empty, not a zip, or a pickle weights_only refuses
        raise CheckpointError(f"Checkpoint {pt} cannot be read ({type(exc).__name__}: {str(exc)[:200]}); it is "
                              "truncated, empty or not a checkpoint. Delete it (and its .json) and train again.") from exc
    if isinstance(blob, dict) and blob.get("format") == FORMAT:
        identity = json.loads(blob["identity"])
        wrong = [k for k in _IDENTITY if json.dumps(identity[k], sort_keys=True) != json.dumps(meta[k], sort_keys=True)]
        if wrong:
            detail = "; ".join(f"{k}: json {meta[k]!r:.120} vs weights {identity[k]!r:.120}" for k in wrong)
            raise CheckpointError(f"Checkpoint {js} does not describe the weights in {pt} ({detail}). The JSON was "
                                  "edited or belongs to another model; restore it or retrain.")
        state = blob["state_dict"]
    elif isinstance(blob, dict) and all(isinstance(v, torch.Tensor) for v in blob.values()):
        warnings.warn(f"Checkpoint {pt} predates format {FORMAT}: its task and feature names cannot be "
                      "cross-checked against the JSON. Save it again to upgrade.", stacklevel=3)
        state = blob
    else:
        raise CheckpointError(f"Checkpoint {pt} does not hold a state dict; it was not written by "
                              "emm_lib.checkpoint.save.")
    return state


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> MultiTaskModel:
    """Rebuild a model saved with :func:`save`; tensors only (``weights_only=True``), never pickles.

    Raises :class:`CheckpointError` (naming the file) when a file is damaged, when the JSON and the
    weights disagree, or when the JSON asks for a model of other shapes than the weights.
    """
    pt, js = paths(path)
    for p in (pt, js):
        if not p.exists():
            raise FileNotFoundError(f"Checkpoint file {p} is missing; save() writes both {pt.name} and {js.name}.")
    meta = _read_json(js)
    state = _read_pt(pt, js, meta, device)
    limit = 2 * sum(v.numel() for v in state.values()) + 10_000_000
    try:  # counts first (blocks, levels, tasks, widths...): nothing is built for a config the weights cannot fill
        check_structure(meta["model"], meta["config"], meta["tasks"], meta["spec"], len(state), limit)
    except StructureError as exc:
        raise CheckpointError(f"Checkpoint {js} does not describe a model that the weights in {pt} ({len(state)} "
                              f"tensors) can fill: {exc}. The JSON was edited or does not belong to these "
                              "weights; restore the pair or retrain.") from None
    try:
        spec = FeatureSpec.from_dict(meta["spec"])
        with _AllocationBudget(limit):
            model = MODEL_REGISTRY[meta["model"]](spec, tuple(meta["tasks"]), **meta["config"])
    except MemoryError as exc:
        raise CheckpointError(f"Checkpoint {js} describes a model far larger than the weights in {pt} ({exc}); "
                              "the JSON was edited or does not belong to these weights.") from None
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"Checkpoint {js} does not rebuild a model: {exc}") from exc
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in state.items()}
    if want != have:
        diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
        raise CheckpointError(
            f"Checkpoint {js} and {pt} disagree: {len(diff)} tensor(s) differ in name or shape, e.g. "
            + ", ".join(f"{k} (json {want.get(k)}, weights {have.get(k)})" for k in diff[:3])
            + ". The JSON was edited or belongs to other weights; retrain or restore the pair.")
    model.load_state_dict(state)
    return model.to(device)


def load_or_none(path: str | os.PathLike, device: str | torch.device = "cpu") -> MultiTaskModel | None:
    """:func:`load`, or ``None`` when the checkpoint is missing; a damaged or mismatched checkpoint
    gives a warning (naming the file) and ``None``, so a study retrains that run instead of crashing."""
    if not exists(path):
        return None
    try:
        return load(path, device)
    except CheckpointError as exc:
        warnings.warn(f"{exc} Retraining this run.", stacklevel=2)
        return None
