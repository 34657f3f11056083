"""The protocol replay as an experiment: each run is trained under a rung of the authors' protocol
(:mod:`emm_lib.study.replay.protocol`), whose flags set its data, its models and its training; its
trained models are shared between the rungs that agree on them (:func:`.authors.owner`)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

from emm_lib.study.replay import authors, protocol
from emm_lib.study.shared.datasets import load_study_data
from emm_lib.study.shared.experiment import RUN_OPTIONS, Experiment, register
from emm_lib.study.shared.run_settings import dataset_key_of
from emm_lib.study.shared.runs import AUTHORS_EXPERIMENT, Run

if TYPE_CHECKING:  # pragma: no cover
    import argparse

    from emm_lib.data import Dataset
    from emm_lib.study.shared.run_settings import StudySettings

__all__ = ["ProtocolReplay", "REPLAY", "load"]


def load(st: "StudySettings", rung: str, tasks: Sequence[str] | None = None, *, n_tasks: int | None = None,
         features: str = "paper", seed: int | None = None) -> "Dataset":
    """The study's dataset under ``rung``: its data flags (``ProtocolSettings.data``, e.g. the published
    preprocessing) apply, and the synthetic generator takes the replay's budget; ``ds.info["rung"]``."""
    ds = load_study_data(st, tasks, n_tasks=n_tasks, features=features, seed=seed,
                         census_options=protocol.apply(rung, st.dataset).data,
                         generator_options=authors.data_options(st.dataset, st.profile))
    ds.info["rung"] = rung
    return ds


class ProtocolReplay(Experiment):
    """The replay's runs, rung by rung (``Run.rung``)."""

    names = frozenset({AUTHORS_EXPERIMENT})

    def key(self, run: Run, st: "StudySettings") -> str:
        return dataset_key_of(st.dataset, run.features, run.n_tasks, run.rung)

    def identity(self, run: Run, st: "StudySettings") -> dict:
        return authors.identity(run, st)  # the rung, its flags, and what they set

    def dataset(self, run: Run, st: "StudySettings") -> "Dataset":
        return load(st, run.rung, n_tasks=run.n_tasks, features=run.features, seed=run.seed)

    def build(self, run: Run, ds: "Dataset", st: "StudySettings", trained: dict | None):
        return authors.build(run, ds, st, trained)  # the rung's flags set the models

    def fit_options(self, run: Run, st: "StudySettings") -> dict:
        return dict(protocol.apply(run.rung, st.dataset).fit)

    def trained_model(self, run: Run, shape: str, task: str, st: "StudySettings") -> Run:
        return authors.tm_run(run, shape, task, st.dataset)

    commands = {"authors": "'authors': the protocol replay (emm_lib.study.replay.authors; --rungs)"}
    options_used = {"authors": RUN_OPTIONS + ("rungs", "variants", "task_counts", "models")}
    applies = {"rungs": "--rungs applies to the 'authors' experiment only.",
               "variants": "--variants applies to the 'authors' experiment only."}
    why = {"authors": ("authors runs its own models (TM-1, TM-2, MMoE, PLE, EMM): choose rungs with --rungs, Table "
                       "II's variants with --variants, task counts with --task-counts, a subset of its multi-task "
                       "models with --models.")}

    def add_arguments(self, ap: "argparse.ArgumentParser") -> None:
        ap.add_argument("--rungs", nargs="+", help="authors: only these protocol rungs (default: the profile's)")
        ap.add_argument("--variants", nargs="+", help="authors: add these EMM variants on 2 tasks ('table2': the "
                                                     "paper's Table II rows), built from the rung's trained models")

    def command_settings(self, command: str, a: "argparse.Namespace") -> "StudySettings":
        return authors.settings(a.dataset, a.profile, seeds=a.seeds, epochs=a.epochs, device=a.device,
                                threads=a.threads, cuda_graph=a.cuda_graph or None, results_dir=a.results_dir,
                                data_dir=a.data_dir, data_path=a.data_path, on_change=a.on_change)

    def run_command(self, command: str, a: "argparse.Namespace", st: "StudySettings",
                    fail: Callable[[str], None], log: Callable[[str], None]) -> None:
        try:
            authors.plan(st, a.rungs, variants=a.variants, task_counts=a.task_counts, models=a.models)
        except ValueError as exc:
            fail(str(exc))
        authors.run(st, rungs=a.rungs, executor=a.executor, address=a.address, log=log, variants=a.variants,
                    task_counts=a.task_counts, models=a.models)
        print(authors.write_pair_variances(st, a.rungs))


REPLAY = register(ProtocolReplay())
