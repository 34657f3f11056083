"""The synthetic sweep and its map as an experiment: each run is a point of a grid
(:mod:`emm_lib.study.sweep.grid`) that brings its own data, optimiser settings, model sizes and seeds,
and records its efficiency and, for EMM, its gate weights."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from emm_lib.study.shared.experiment import Experiment, register
from emm_lib.study.shared.runs import Run
from emm_lib.study.sweep import grid

if TYPE_CHECKING:  # pragma: no cover
    import argparse

    import pandas as pd

    from emm_lib.data import Dataset
    from emm_lib.study.shared.run_settings import StudySettings

__all__ = ["SyntheticSweep", "SWEEP", "load"]


def load(st: "StudySettings", data: str, n_tasks: int, seed: int, experiment: str, features: str = "paper") -> "Dataset":
    """The data of sweep point ``data`` for run ``seed``, generated with the run's seed."""
    ds = grid.load_point(data, st, n_tasks, seed, experiment)
    ds.info["feature_set"] = features
    return ds


class SyntheticSweep(Experiment):
    """Both passes of the synthetic benchmark, their trained models included."""

    names = frozenset(name for exp in grid.PASSES for name in grid.experiments(exp))

    def settings(self, run: Run, st: "StudySettings") -> "StudySettings":
        return grid.point_settings(run, st)

    def key(self, run: Run, st: "StudySettings") -> str:
        return grid.dataset_key(run)

    def row_key(self, run: Run, key: str, ds: "Dataset") -> str:
        return key

    def identity(self, run: Run, st: "StudySettings") -> dict:
        return grid.identity(run, st)  # the point; a sweep trained model's own sizes

    def dataset(self, run: Run, st: "StudySettings") -> "Dataset":
        return load(st, run.data, run.n_tasks, run.seed, run.experiment, run.features)

    def init_seed(self, run: Run, st: "StudySettings") -> int:
        return grid.init_seed(run, st)

    def trained_sizes(self, run: Run, st: "StudySettings") -> dict:
        return grid.trained_sizes(run, st)

    def emm_options(self, run: Run, st: "StudySettings") -> dict:
        return grid.emm_options(run, st)

    def measure(self, run: Run, model, ds: "Dataset", st: "StudySettings") -> tuple[dict, "pd.DataFrame | None"]:
        return grid.measure(run, model, ds, st)

    def trained_model(self, run: Run, shape: str, task: str, st: "StudySettings") -> Run:
        tm_experiment = grid.experiments(run.experiment)[1]  # the pass's own trained models
        return Run(tm_experiment, f"{shape}:{task}", run.seed, run.n_tasks, run.features, run.data)

    commands = {grid.EXPERIMENT: "'synthetic': the synthetic sweep (emm_lib.study.sweep.grid; --axes, seeds from "
                                 "its grid)",
                grid.MAP_EXPERIMENT: "'synthetic_map': its second pass (worlds, one stopping rule; "
                                     "config.SYNTHETIC_MAPS)"}
    options_used = dict.fromkeys(commands, ("profile", "seeds", "device", "threads", "cuda_graph", "results_dir",
                                            "on_change", "axes", "rows", "executor", "address"))
    applies = {"rows": "--rows applies to the 'synthetic' and 'synthetic_map' experiments only (their data-size "
                       "points).",
               "axes": "--axes applies to the 'synthetic' and 'synthetic_map' experiments only."}
    why = {grid.EXPERIMENT: "The sweep takes its data, models, epochs and task counts from its grid "
                            "(emm_lib.study.sweep.grid).",
           grid.MAP_EXPERIMENT: "The map takes its data, models, epochs, worlds and task counts from its grid "
                                "(config.SYNTHETIC_MAPS)."}

    def add_arguments(self, ap: "argparse.ArgumentParser") -> None:
        ap.add_argument("--axes", nargs="+", help="synthetic sweep: only these axes (relatedness task_count "
                                                 "data_size shapes)")
        ap.add_argument("--rows", type=int, nargs="+", help="synthetic sweep: only the points with these training "
                                                           "rows (e.g. --axes data_size --rows 10000000 on a GPU)")

    def command_settings(self, command: str, a: "argparse.Namespace") -> "StudySettings":
        from emm_lib.study.shared.run_settings import settings

        return settings("synthetic", a.profile, seeds=a.seeds, device=a.device, threads=a.threads,
                        cuda_graph=a.cuda_graph or None, results_dir=a.results_dir, on_change=a.on_change,
                        quiet=False)

    def run_command(self, command: str, a: "argparse.Namespace", st: "StudySettings",
                    fail: Callable[[str], None], log: Callable[[str], None]) -> None:
        try:
            grid.plan(st, a.axes, a.seeds, a.rows, command)  # names a point that does not exist
        except ValueError as exc:
            fail(str(exc))
        grid.run_sweep(st, a.axes, a.seeds, executor=a.executor, address=a.address, rows=a.rows, experiment=command)


SWEEP = register(SyntheticSweep())
