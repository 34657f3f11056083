"""emm_lib: EMM (arXiv 2504.09812) and its multi-task baselines, small and exact."""
from __future__ import annotations

__version__ = "0.1.0"

from . import config, data, models  # noqa: E402
from .akf import AKF, FusionGate, MultiTaskMerge, TaskGate  # noqa: E402
from .data import load  # noqa: E402
from .deconstruct import Decomposition, deconstruct  # noqa: E402
from .emm import EMM  # noqa: E402  (registers "emm")
from .models import SingleTaskMLP, build_model  # noqa: E402

__all__ = ["config", "data", "models", "load", "SingleTaskMLP", "build_model", "deconstruct", "Decomposition",
           "EMM", "AKF", "TaskGate", "FusionGate", "MultiTaskMerge"]
