"""Models under one interface: ``forward(batch) -> (B, n_tasks)`` logits.

Build any of them by name with :func:`build_model`; :data:`MODEL_REGISTRY` lists the names.
"""
from .base import MODEL_REGISTRY, MultiTaskModel, build_model, count_parameters, mlp, register_model
from .single_task import SingleTaskMLP

__all__ = ["MODEL_REGISTRY", "MultiTaskModel", "build_model", "count_parameters", "mlp",
           "register_model", "SingleTaskMLP"]
