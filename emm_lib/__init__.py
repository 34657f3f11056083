"""emm_lib: EMM (arXiv 2504.09812) and its multi-task baselines, small and exact."""
from __future__ import annotations

__version__ = "0.1.0"

from emm_lib import config, data, models  # noqa: E402
from emm_lib.akf import AKF, FusionGate, MultiTaskMerge, TaskGate  # noqa: E402
from emm_lib.data import load  # noqa: E402
from emm_lib.deconstruct import Decomposition, deconstruct  # noqa: E402
from emm_lib.emm import EMM  # noqa: E402  (registers "emm")
from emm_lib.models import SingleTaskMLP, build_model  # noqa: E402

__all__ = ["config", "data", "models", "load", "SingleTaskMLP", "build_model", "deconstruct", "Decomposition",
           "EMM", "AKF", "TaskGate", "FusionGate", "MultiTaskMerge"]
