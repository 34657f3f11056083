"""Models under one interface: ``forward(batch) -> (B, n_tasks)`` logits.

Build any of them by name with :func:`build_model`; :data:`MODEL_REGISTRY` lists the names.
"""
from emm_lib.models.base import MODEL_REGISTRY, MultiTaskModel, build_model, count_parameters, mlp, register_model
from emm_lib.models.single_task import SingleTaskMLP
from emm_lib.models.shared_bottom import SharedBottom
from emm_lib.models.mmoe import MMoE
from emm_lib.models.ple import PLE
from emm_lib.models.aitm import AITM
from emm_lib.models.adatt import AdaTT
from emm_lib.models.summary import parameter_table

__all__ = ["MODEL_REGISTRY", "MultiTaskModel", "build_model", "count_parameters", "mlp",
           "register_model", "SingleTaskMLP", "SharedBottom", "MMoE", "PLE", "AITM", "AdaTT",
           "parameter_table"]
