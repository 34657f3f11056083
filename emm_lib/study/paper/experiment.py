"""The paper grid as an experiment: Tables I, II, Figure 3 and their variants (``config.EXPERIMENTS``) on
the study's dataset, each multi-task run built from the trained single-task models of its seed."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

import pandas as pd

from emm_lib import config
from emm_lib.study.shared import results
from emm_lib.study.shared.datasets import load_study_data
from emm_lib.study.shared.experiment import RUN_OPTIONS, Experiment, register
from emm_lib.study.shared.run_settings import StudySettings, experiment_tasks, logger
from emm_lib.study.shared.runner import execute_plan
from emm_lib.study.shared.runs import Run

if TYPE_CHECKING:  # pragma: no cover
    import argparse

    from emm_lib.data import Dataset

__all__ = ["PaperGrid", "PAPER", "plan", "run_experiments", "check_request"]


def _tm_labels(tasks: Sequence[str]) -> list[str]:
    return [f"{shape}:{t}" for t in tasks for shape in config.TM_SHAPES]


def plan(experiments: Sequence[str], st: "StudySettings", models: Sequence[str] | None = None,
         task_counts: Sequence[int] | None = None) -> list[Run]:
    """Every run of ``experiments`` over ``st.seeds``, trained models first within each seed."""
    runs: list[Run] = []
    for seed in st.seeds:
        for name in experiments:
            ex = config.EXPERIMENTS[name]
            counts = tuple(task_counts) if task_counts is not None else ex["task_counts"]
            labels = tuple(models) if models is not None else ex["models"]
            for k in counts:
                tms = [Run("single_task", lab, seed, k, ex["features"])
                       for lab in _tm_labels(experiment_tasks(st.dataset, k))]
                runs += [r for r in tms if r not in runs]
                runs += [Run(name, lab, seed, k, ex["features"]) for lab in labels]
    return runs


def run_experiments(names: Sequence[str], st: StudySettings, models: Sequence[str] | None = None, *,
                    log: Callable | None = None, require_trained: bool = False,
                    task_counts: Sequence[int] | None = None, executor: str = "local",
                    address: str | None = None) -> dict[str, pd.DataFrame]:
    """Run (or resume) several experiments, seed by seed; returns each one's results table."""
    check_request(names, models, task_counts, st.dataset)
    runs = plan(names, st, models, task_counts)
    execute_plan(runs, st, executor=executor, address=address, log=logger(st, log),
                 require_trained=require_trained)
    out = {}
    for n in names:
        path = st.out_dir / f"{n}.csv"
        out[n] = results.read(path) if path.exists() else pd.DataFrame(columns=results.COLUMNS)
    return out


def check_request(names: Sequence[str], models: Sequence[str] | None = None,
                  task_counts: Sequence[int] | None = None, dataset: str | None = None) -> None:
    """A ValueError naming an unknown experiment or model label, a task count an experiment does not run,
    or (given ``dataset``) an experiment that ``dataset`` cannot run (Census feature sets, more tasks)."""
    unknown = [n for n in names if n not in config.EXPERIMENTS]
    if unknown:
        raise ValueError(f"Unknown experiment {unknown[0]!r}. Known: {sorted(config.EXPERIMENTS)}.")
    for n in names:
        counts = config.EXPERIMENTS[n]["task_counts"]
        bad = [k for k in (task_counts or ()) if k not in counts]
        if bad:
            raise ValueError(f"Experiment {n!r} runs task counts {list(counts)}, not {bad} (--task-counts).")
    bad_models = [m for m in (models or ()) if m not in config.VARIANTS]
    if bad_models:
        raise ValueError(f"Unknown model label(s) {bad_models} (--models). Known: {sorted(config.VARIANTS)}.")
    for n in names if dataset is not None else ():
        features = config.EXPERIMENTS[n]["features"]
        if features != "paper" and dataset != "census":
            raise ValueError(f"Experiment {n!r} uses Census' {features!r} feature set; it runs on --dataset census "
                             f"only, not {dataset!r}.")
        for k in task_counts or config.EXPERIMENTS[n]["task_counts"]:
            experiment_tasks(dataset, k)  # names the tasks the dataset defines


class PaperGrid(Experiment):
    """The paper's experiments: the interface's defaults, on the study's own dataset."""

    names = frozenset(config.EXPERIMENTS) | {"single_task"}

    def dataset(self, run: Run, st: "StudySettings") -> "Dataset":
        return load_study_data(st, n_tasks=run.n_tasks, features=run.features, seed=run.seed)

    commands = {**dict.fromkeys(sorted(config.EXPERIMENTS), ""), "single_task": "",
                "all": "'all': every Census experiment, seed by seed",
                "analyze": "'analyze': paired DeLong variances"}
    options_used = {"analyze": ("profile", "results_dir"), "single_task": RUN_OPTIONS}
    why = {"analyze": "analyze only reads the saved test predictions under --results-dir/<--profile>.",
           "single_task": "single_task trains TM-1 and TM-2 for the paper's two tasks."}

    def run_command(self, command: str, a: "argparse.Namespace", st: StudySettings,
                    fail: Callable[[str], None], log: Callable[[str], None]) -> None:
        from emm_lib.study.shared.analysis import write_pair_variances

        if command == "analyze":
            try:
                print(write_pair_variances(st.out_dir))
            except FileNotFoundError as exc:
                fail(str(exc))
            return
        if command == "single_task":
            runs = [r for r in plan(["table1"], st) if r.is_trained_model]
            execute_plan(runs, st, executor=a.executor, address=a.address, log=log)
            return
        names = [n for n in config.EXPERIMENTS if n != "synthetic_tasks"] if command == "all" else [command]
        try:
            check_request(names, a.models, a.task_counts, st.dataset)
        except ValueError as exc:
            fail(str(exc))
        run_experiments(names, st, a.models, log=log, task_counts=a.task_counts, executor=a.executor,
                        address=a.address)
        if command == "all":
            print(write_pair_variances(st.out_dir))


PAPER = register(PaperGrid())
