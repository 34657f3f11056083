"""Models under one interface: ``forward(batch) -> (B, n_tasks)`` logits.

Build any of them by name with :func:`build_model`; :data:`MODEL_REGISTRY` lists the names.
"""
from .base import MODEL_REGISTRY, MultiTaskModel, build_model, count_parameters, mlp, register_model
from .single_task import SingleTaskMLP
from .shared_bottom import SharedBottom
from .mmoe import MMoE
from .ple import PLE
from .aitm import AITM
from .adatt import AdaTT
from .summary import parameter_table

__all__ = ["MODEL_REGISTRY", "MultiTaskModel", "build_model", "count_parameters", "mlp",
           "register_model", "SingleTaskMLP", "SharedBottom", "MMoE", "PLE", "AITM", "AdaTT",
           "parameter_table"]
