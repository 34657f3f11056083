"""The single home of the paper's settings, model sizes and run profiles, in three parts:
:mod:`~emm_lib.config.core` (the paper, the models, the profiles, the experiments and the verdict rule),
:mod:`~emm_lib.config.synthetic` (the synthetic benchmark) and :mod:`~emm_lib.config.replay` (the
protocol replay). ``config.NAME`` reaches every one of them.

Paper: Sec. IV ("Experimental settings"); authors' code: EMM-method.md Sec. 6.
Notebooks and benchmarks read these; nothing else repeats the numbers.
"""
from __future__ import annotations

from . import core, replay, synthetic
from .core import *  # noqa: F401,F403
from .replay import *  # noqa: F401,F403
from .synthetic import *  # noqa: F401,F403

__all__ = [*core.__all__, *synthetic.__all__, *replay.__all__]
