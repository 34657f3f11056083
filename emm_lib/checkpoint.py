"""Checkpoints: ``state_dict`` (loaded with ``weights_only=True``) + a JSON config that rebuilds the model."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from .data.types import FeatureSpec
from .models.base import MODEL_REGISTRY, MultiTaskModel
from .utils import atomic_write

__all__ = ["save", "load"]


def _paths(path: str | os.PathLike) -> tuple[Path, Path]:
    path = Path(path)
    base = path.with_suffix("") if path.suffix in (".pt", ".json") else path
    return base.with_suffix(".pt"), base.with_suffix(".json")


def save(model: MultiTaskModel, path: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write ``<path>.pt`` (the state dict) and ``<path>.json`` (what rebuilds the model), atomically."""
    if getattr(model, "name", None) not in MODEL_REGISTRY:
        raise ValueError(f"Only registered models can be saved; {type(model).__name__} has no registry name.")
    pt, js = _paths(path)
    meta = {"model": model.name, "tasks": list(model.tasks), "spec": model.spec.to_dict(),
            "config": model.config, "extra": extra or {}, "torch": torch.__version__}
    json.dumps(meta)  # fail before writing anything if the config is not JSON-able
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_write(pt, "wb") as fh:
        torch.save(state, fh)
    with atomic_write(js, "w") as fh:
        json.dump(meta, fh, indent=2)
    return pt


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> MultiTaskModel:
    """Rebuild a model saved with :func:`save`; tensors only (``weights_only=True``), never pickles."""
    pt, js = _paths(path)
    for p in (pt, js):
        if not p.exists():
            raise FileNotFoundError(f"Checkpoint file {p} is missing; save() writes both {pt.name} and {js.name}.")
    meta = json.loads(js.read_text())
    name = meta.get("model")
    if name not in MODEL_REGISTRY:
        raise ValueError(f"Checkpoint {js} names unknown model {name!r}; known: {sorted(MODEL_REGISTRY)}.")
    spec = FeatureSpec.from_dict(meta["spec"])
    model = MODEL_REGISTRY[name](spec, tuple(meta["tasks"]), **meta["config"])
    state = torch.load(pt, map_location=device, weights_only=True)
    model.load_state_dict(state)
    return model.to(device)
