"""The one interface every experiment family of the study implements, and the registry that finds them.

The runner (:mod:`.execution`, :mod:`.runner`) and the Ray executor run any :class:`~.runs.Run`
without knowing which experiment it belongs to: they ask its family, :func:`family_of`, for what
differs between experiments. A family is a subfolder of ``emm_lib/study`` with an ``experiment``
module that calls :func:`register` (``paper``: Tables I, II and Figure 3; ``sweep``: the synthetic
sweep and its map; ``replay``: the authors' protocol); a new experiment is one new folder.

What a family answers, for one run (the defaults are the paper grid's):

* :meth:`Experiment.settings`: the study settings as the run sees them (a sweep point brings its own);
* :meth:`Experiment.key`: the dataset key its rows, checkpoints and claims are filed under;
* :meth:`Experiment.identity`: what it adds to the run's identity (recorded, checked on resume);
* :meth:`Experiment.dataset`: the run's data;
* :meth:`Experiment.init_seed`, :meth:`Experiment.build`, :meth:`Experiment.fit_options`: the model
  before training and how it is trained;
* :meth:`Experiment.measure`: what it records beyond the AUCs (efficiency, gate weights);
* :meth:`Experiment.trained_model`: the trained single-task run an EMM run fuses.

And for the command line (``python -m emm_lib.study COMMAND``): :attr:`Experiment.commands` (the
subcommands it runs, with their help), the options each reads (:attr:`Experiment.options_used`,
:attr:`Experiment.applies`, :attr:`Experiment.why`), its own options (:meth:`Experiment.add_arguments`),
its settings (:meth:`Experiment.command_settings`) and the run itself (:meth:`Experiment.run_command`).
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from emm_lib import config
from emm_lib.study.shared.run_settings import dataset_key, dataset_key_of
from emm_lib.study.shared.runs import Run

if TYPE_CHECKING:  # pragma: no cover
    import argparse

    import pandas as pd

    from emm_lib.data import Dataset
    from emm_lib.study.shared.run_settings import StudySettings

__all__ = ["Experiment", "register", "families", "family_of", "command_families", "RUN_OPTIONS",
           "EXPERIMENT_OPTIONS"]

#: The command line's options for any run (``argparse`` names).
RUN_OPTIONS = ("dataset", "profile", "seeds", "epochs", "device", "threads", "cuda_graph", "results_dir",
               "data_dir", "data_path", "on_change", "executor", "address")
#: What a subcommand reads unless its family says otherwise: a run's options, the models and the task counts.
EXPERIMENT_OPTIONS = RUN_OPTIONS + ("models", "task_counts")


class Experiment:
    """One family of experiments as the runner sees it; ``names``: the ``Run.experiment`` values it owns."""

    names: frozenset[str] = frozenset()

    def settings(self, run: Run, st: "StudySettings") -> "StudySettings":
        return st

    def key(self, run: Run, st: "StudySettings") -> str:
        return dataset_key_of(st.dataset, run.features, run.n_tasks)

    def row_key(self, run: Run, key: str, ds: "Dataset") -> str:
        """The dataset column of the run's result rows (the data's own key unless the family says)."""
        return dataset_key(ds)

    def identity(self, run: Run, st: "StudySettings") -> dict:
        return {}

    def dataset(self, run: Run, st: "StudySettings") -> "Dataset":
        raise NotImplementedError

    def init_seed(self, run: Run, st: "StudySettings") -> int:
        return run.seed

    def trained_sizes(self, run: Run, st: "StudySettings") -> dict:
        return config.model_settings(st.dataset, run.label.split(":")[0])

    def emm_options(self, run: Run, st: "StudySettings") -> dict:
        return {}

    def build(self, run: Run, ds: "Dataset", st: "StudySettings", trained: dict | None):
        """A freshly built model of ``run``: a trained model's shape, a baseline, or EMM fused from ``trained``."""
        from emm_lib.models import SingleTaskMLP, build_model

        torch.manual_seed(self.init_seed(run, st))
        if run.is_trained_model:
            return SingleTaskMLP(ds.spec, run.label.split(":")[1], **self.trained_sizes(run, st))
        kind, opts = config.VARIANTS[run.label]
        if kind != "emm":
            return build_model(kind, ds.spec, ds.tasks, **{**config.model_settings(st.dataset, kind), **opts})
        from emm_lib.emm import EMM

        sizes = config.model_settings(st.dataset, "emm")
        for k in ("embedding_dim", "component_shapes"):  # both come from the trained models
            sizes.pop(k)
        return EMM.from_trained(trained, **sizes, **opts, **self.emm_options(run, st))

    def fit_options(self, run: Run, st: "StudySettings") -> dict:
        return {}

    def measure(self, run: Run, model, ds: "Dataset", st: "StudySettings") -> tuple[dict, "pd.DataFrame | None"]:
        return {}, None

    def trained_model(self, run: Run, shape: str, task: str, st: "StudySettings") -> Run:
        return Run("single_task", f"{shape}:{task}", run.seed, run.n_tasks, run.features, run.data)

    # --- the command line ------------------------------------------------------------------------

    #: Subcommands of ``python -m emm_lib.study`` that this family runs, with their help ("" for none).
    commands: dict[str, str] = {}
    #: The options each subcommand reads (``argparse`` names); one not listed reads :data:`EXPERIMENT_OPTIONS`.
    options_used: dict[str, tuple[str, ...]] = {}
    #: Where this family's own options apply, said when a subcommand that does not read one is given it.
    applies: dict[str, str] = {}
    #: Why a subcommand reads so few options.
    why: dict[str, str] = {}

    def add_arguments(self, ap: "argparse.ArgumentParser") -> None:
        """This family's own options (defaults ``None``, so that a subcommand that ignores one can refuse it)."""

    def command_settings(self, command: str, a: "argparse.Namespace") -> "StudySettings":
        """The settings of ``command`` from the command line (a ValueError for a bad combination)."""
        from emm_lib.study.shared.run_settings import settings

        return settings(a.dataset, a.profile, seeds=a.seeds, epochs=a.epochs, device=a.device, threads=a.threads,
                        cuda_graph=a.cuda_graph or None, results_dir=a.results_dir, data_dir=a.data_dir,
                        data_path=a.data_path, on_change=a.on_change)

    def run_command(self, command: str, a: "argparse.Namespace", st: "StudySettings",
                    fail: Callable[[str], None], log: Callable[[str], None]) -> None:
        """Run ``command``; ``fail`` stops the command line with one line (a request that names nothing)."""
        raise NotImplementedError


_REGISTRY: dict[str, Experiment] = {}
_FOUND: list[bool] = []


def register(family: Experiment) -> Experiment:
    """Add ``family`` to the registry (its ``experiment`` module calls this on import)."""
    taken = {n: _REGISTRY[n] for n in family.names if n in _REGISTRY and _REGISTRY[n] is not family}
    if taken:
        raise ValueError(f"Experiment names {sorted(taken)} are owned by another family already.")
    _REGISTRY.update(dict.fromkeys(family.names, family))
    return family


def families() -> dict[str, Experiment]:
    """Every registered family by experiment name; the first call imports each ``emm_lib/study/*/experiment.py``."""
    if not _FOUND:
        study = Path(__file__).resolve().parents[1]
        for folder in sorted(p.parent.name for p in study.glob("*/experiment.py")):
            importlib.import_module(f"emm_lib.study.{folder}.experiment")
        _FOUND.append(True)
    return _REGISTRY


def family_of(run: Run) -> Experiment:
    """The family that runs ``run`` (a ValueError naming the known experiments otherwise)."""
    known: dict[str, Any] = families()
    if run.experiment not in known:
        raise ValueError(f"No experiment family runs {run.experiment!r}; known: {sorted(known)}.")
    return known[run.experiment]


def command_families() -> dict[str, Experiment]:
    """The family that runs each subcommand of the command line, in the families' order."""
    out: dict[str, Experiment] = {}
    for family in dict.fromkeys(families().values()):
        out.update(dict.fromkeys(family.commands, family))
    return out
