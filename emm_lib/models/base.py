"""The one interface every multi-task architecture fills (LibMTL style), plus a name registry.

A model is built from the feature spec, the task list and size settings, and its
``forward(batch)`` returns one logit per task, shape (B, n_tasks), in ``self.tasks`` order.
Extra loss terms (e.g. AITM's calibrator) come from :meth:`MultiTaskModel.auxiliary_loss`,
which the trainer adds to the per-task BCE.
"""
from __future__ import annotations

import inspect
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from ..data.types import Batch, FeatureSpec

__all__ = ["MultiTaskModel", "register_model", "MODEL_REGISTRY", "build_model", "mlp", "count_parameters"]


class MultiTaskModel(nn.Module):
    """Base class: ``tasks`` names the outputs; ``config`` rebuilds the model (see checkpoint.py)."""

    tasks: tuple[str, ...]
    name: str = "model"

    @property
    def fast(self) -> bool:
        """True (default): the fused forward where a model has one (feature-major, experts
        batched); False: the readable reference, one expert/component/task at a time as separate
        modules would run (same values; ``tests/method/test_fast_paths.py`` compares the two)."""
        return self.__dict__.get("_fast", True)

    @fast.setter
    def fast(self, value: bool) -> None:
        self.__dict__["_fast"] = bool(value)
        for m in self.modules():
            if hasattr(type(m), "batched"):
                m.batched = bool(value)

    def __init__(self, spec: FeatureSpec, tasks: Sequence[str]) -> None:
        super().__init__()
        if isinstance(tasks, str):
            raise TypeError(f"tasks must be a list of task names such as ['income', 'marital'], got the string "
                            f"{tasks!r} (a string would be split into characters).")
        tasks = tuple(tasks)
        if not tasks:
            raise ValueError("A model needs at least one task.")
        if len(set(tasks)) != len(tasks):
            raise ValueError(f"Task names must be unique, got {list(tasks)}.")
        self.spec = spec
        self.tasks = tasks
        self.config: dict = {}

    def forward(self, batch: Batch) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def auxiliary_loss(self, logits: Tensor, batch: Batch) -> Tensor | None:
        """An extra loss term added by the trainer, or ``None`` (the default)."""
        return None

    def predict_proba(self, batch: Batch) -> Tensor:
        return torch.sigmoid(self(batch))


MODEL_REGISTRY: dict[str, Callable[..., MultiTaskModel]] = {}


def register_model(name: str) -> Callable:
    """Class decorator: make a model buildable by name (notebooks, papermill parameters)."""

    def deco(cls):
        if name in MODEL_REGISTRY:
            raise ValueError(f"Model name {name!r} registered twice.")
        MODEL_REGISTRY[name] = cls
        cls.name = name
        return cls

    return deco


def build_model(name: str, spec: FeatureSpec, tasks: Sequence[str], **sizes) -> MultiTaskModel:
    """Build a registered model by name; unknown names raise a ValueError listing the known ones."""
    if name not in MODEL_REGISTRY:
        raise ValueError(f"Unknown model {name!r}. Known models: {sorted(MODEL_REGISTRY)}.")
    cls = MODEL_REGISTRY[name]
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(sizes) - set(params))
        if unknown:
            raise ValueError(f"Unknown setting(s) {unknown} for model {name!r}; it accepts "
                             f"{[k for k in params if k not in ('self', 'spec', 'tasks')]}.")
    return cls(spec, tasks, **sizes)


def mlp(in_features: int, widths: Sequence[int], dropout: float = 0.0, batch_norm: bool = True) -> nn.Sequential:
    """A flat chain of blocks Linear -> BatchNorm -> ReLU (-> Dropout), one per width.

    Kept flat (no nested Sequentials) so that :func:`emm_lib.deconstruct` can cut it.
    """
    layers: list[nn.Module] = []
    d = in_features
    for w in widths:
        if w < 1:
            raise ValueError(f"Layer widths must be >= 1, got {list(widths)}.")
        layers.append(nn.Linear(d, w))
        if batch_norm:
            layers.append(nn.BatchNorm1d(w))
        layers.append(nn.ReLU())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        d = w
    return nn.Sequential(*layers)


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Total, trainable and frozen parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable, "frozen": total - trainable}
