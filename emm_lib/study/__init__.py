"""The study's experiments as short, resumable functions (notebooks and the CLI call these).

Every run trains on ``train``, selects its epoch on ``val`` and is evaluated once on ``test``;
rows go to ``results/<profile>/<experiment>.csv`` in the tidy format of :mod:`emm_lib.study.shared.results`.
A run whose rows were made with the same settings is skipped, so an interrupted study resumes
where it stopped; rows made with other settings stop the run with the setting that changed
(:mod:`emm_lib.study.shared.runs`). Planning and executing (locally or on Ray) live in :mod:`emm_lib.study.shared.runner`,
a run's settings and file locations in :mod:`emm_lib.study.shared.run_settings`, the tables over seeds in
:mod:`emm_lib.study.shared.tables`; their names are re-exported here (``study.settings``, ``study.summarize``, ...).

    python -m emm_lib.study table1 --profile paper --seeds 0 1 2 3 4
    python -m emm_lib.study table1 --dataset aliexpress --data-path ~/data/aliexpress   # your Tianchi CSVs
    python -m emm_lib.study all --profile paper --executor ray      # every experiment, then analyze
    python -m emm_lib.study synthetic --profile paper --axes relatedness task_count   # emm_lib.study.sweep.grid
    python -m emm_lib.study synthetic_map --profile paper --axes relatedness task_count   # its second pass
    python -m emm_lib.study authors --profile paper                 # the protocol replay (emm_lib.study.replay.authors)
"""
from __future__ import annotations

import argparse
from typing import Callable, Sequence

import pandas as pd

from emm_lib import checkpoint, config
from emm_lib.data import Dataset
from emm_lib.models import SingleTaskMLP, build_model  # noqa: F401
from emm_lib.study.paper.experiment import check_request, plan, run_experiments  # noqa: F401
from emm_lib.study.shared import results, runner  # noqa: F401
from emm_lib.study.shared.datasets import load_study_data
from emm_lib.study.shared.experiment import command_families
from emm_lib.study.shared.run_settings import (StudySettings, checkpoint_path, checkpoint_path_of, dataset_key,  # noqa: F401
                                               dataset_key_of, experiment_tasks, history_path, history_path_of,
                                               settings)
from emm_lib.study.shared.run_settings import logger as _logger
from emm_lib.study.shared.runner import execute_plan
from emm_lib.study.shared.runs import Run
from emm_lib.study.shared.tables import (compute_cost, paired_test, paper_table, pretty, study_tables,  # noqa: F401
                                         summarize, table_with_gain)
from emm_lib.utils import repo_root

__all__ = ["StudySettings", "settings", "load_dataset", "trained_models", "run_experiment", "run_experiments",
           "EXPERIMENTS", "VARIANTS", "dataset_key", "dataset_key_of", "experiment_tasks", "summarize",
           "table_with_gain", "paired_test", "compute_cost", "pretty", "paper_table", "history_path",
           "checkpoint_path", "BASELINES", "TM_SHAPES"]

TM_SHAPES = config.TM_SHAPES
BASELINES = config.BASELINES


def load_dataset(st: StudySettings, tasks: Sequence[str] | None = None, *, n_tasks: int | None = None,
                 features: str = "paper", seed: int | None = None, data: str = "",
                 rung: str | None = None, experiment: str = "synthetic") -> Dataset:
    """The study's dataset for a run: ``tasks`` (or the first ``n_tasks``; default the paper's two),
    feature set ``features`` (Census), and the val/test split of run ``seed`` (default the first seed).
    ``data``: a synthetic sweep point (:mod:`emm_lib.study.sweep.grid`), generated with the run's seed.
    ``rung``: a protocol rung of the replay, whose data flags (``ProtocolSettings.data``,
    e.g. the published preprocessing) apply; recorded in ``ds.info["rung"]``. ``experiment``: the sweep
    pass whose grid makes a point's data (``synthetic``, ``synthetic_map``)."""
    if data:
        from emm_lib.study.sweep.experiment import load as load_point

        if tasks is not None:
            raise ValueError("A sweep point defines its tasks; pass n_tasks, not tasks.")
        return load_point(st, data, n_tasks or 2, st.seeds[0] if seed is None else seed, experiment, features)
    if rung:
        from emm_lib.study.replay.experiment import load as load_rung

        return load_rung(st, rung, tasks, n_tasks=n_tasks, features=features, seed=seed)
    return load_study_data(st, tasks, n_tasks=n_tasks, features=features, seed=seed)


def trained_models(ds: Dataset, st: StudySettings, seed: int, log: Callable | None = None,
                   require: bool = False) -> dict[str, list[SingleTaskMLP]]:
    """TM-1 and TM-2 for every task of ``ds`` at ``seed``: loaded from their checkpoints, else trained
    (rows in ``single_task.csv``). ``require=True`` raises instead of training (notebooks 03-06)."""
    features = ds.info.get("feature_set", "paper")
    runs = [Run("single_task", f"{shape}:{t}", seed, len(ds.tasks), features)
            for t in ds.tasks for shape in config.TM_SHAPES]
    execute_plan(runs, st, log=_logger(st, log), require_trained=require, need_checkpoints=True)
    key = dataset_key(ds)
    return {t: [checkpoint.load(checkpoint_path_of(st, "single_task", key, seed, f"{shape}:{t}"))
                for shape in config.TM_SHAPES] for t in ds.tasks}


VARIANTS = config.VARIANTS
EXPERIMENTS = config.EXPERIMENTS


def run_experiment(name: str, st: StudySettings, models: Sequence[str] | None = None,
                   log: Callable | None = None, require_trained: bool = False,
                   task_counts: Sequence[int] | None = None, executor: str = "local",
                   address: str | None = None) -> pd.DataFrame:
    """Run (or resume) an experiment over ``st.seeds``; returns its full results table."""
    return run_experiments([name], st, models, log=log, require_trained=require_trained,
                           task_counts=task_counts, executor=executor, address=address)[name]


def _parser() -> argparse.ArgumentParser:
    commands = command_families()
    ap = argparse.ArgumentParser(prog="python -m emm_lib.study", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("experiment", choices=list(commands),
                    help="; ".join(h for family in dict.fromkeys(commands.values()) for h in family.commands.values() if h))
    # Defaults are None (filled in by main) so that an option a subcommand ignores can be refused.
    ap.add_argument("--dataset", choices=list(config.DATASETS), help="default: census")
    ap.add_argument("--profile", default="default", choices=sorted(config.PROFILES))
    ap.add_argument("--seeds", type=int, nargs="+")
    ap.add_argument("--models", nargs="+")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--device")
    ap.add_argument("--threads", type=int, help="torch threads per run (default 1)")
    ap.add_argument("--cuda-graph", action="store_true",
                    help="on CUDA, replay each training step as one CUDA graph (the same training, faster)")
    ap.add_argument("--results-dir")
    ap.add_argument("--data-dir", help="Census: where its files are cached (default data/); AliExpress, "
                                       "Ali-CCP: the same as --data-path")
    ap.add_argument("--data-path", help="AliExpress, Ali-CCP: the folder holding your downloaded CSVs")
    ap.add_argument("--task-counts", type=int, nargs="+", help="only these task counts (e.g. figure3: 3 4)")
    ap.add_argument("--on-change", choices=["error", "rerun"],
                    help="rows made with other settings: stop and name the change (default), or replace them")
    ap.add_argument("--executor", choices=["local", "ray"], help="default: local")
    ap.add_argument("--address", help="Ray cluster address (default: start a local instance)")
    for family in dict.fromkeys(commands.values()):
        family.add_arguments(ap)
    return ap


def _checked_args(ap: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line, refused with one line (``ap.error``) when it names an option the subcommand
    ignores, a bad value, or a Ray cluster that does not answer."""
    from emm_lib.study import cli

    a = ap.parse_args(argv)
    cli.check_options(a.experiment, a, ap)
    cli.check_values(ap, [("--seeds", "seeds", a.seeds), ("--epochs", "epochs", a.epochs),
                          ("--threads", "threads", a.threads), ("--device", "device", a.device)])
    if a.results_dir is not None:
        from emm_lib.study.shared.run_settings import check_folder

        try:
            check_folder("--results-dir", repo_root() / a.results_dir)
        except ValueError as exc:
            ap.error(f"argument {exc}")
    a.dataset, a.executor, a.on_change = a.dataset or "census", a.executor or "local", a.on_change or "error"
    if a.dataset in ("aliexpress", "ali-ccp") and not (a.data_path or a.data_dir):
        ap.error(f"--dataset {a.dataset} needs --data-path: the folder holding your downloaded CSVs (they cannot "
                 "be downloaded automatically; see the data chapter).")
    if a.executor == "ray":
        try:
            cli.check_ray_address(a.address)
        except (ValueError, ConnectionError) as exc:
            ap.error(f"argument --address: {exc}")
    return a


def _settings(ap: argparse.ArgumentParser, a: argparse.Namespace) -> StudySettings:
    """The run's settings from the command line; a bad combination is one line (``ap.error``)."""
    try:
        return command_families()[a.experiment].command_settings(a.experiment, a)
    except ValueError as exc:
        ap.error(str(exc))


def main(argv: Sequence[str] | None = None) -> None:
    ap = _parser()
    a = _checked_args(ap, argv)
    st = _settings(ap, a)
    try:
        _main(ap, a, st)
    except ConnectionError as exc:  # a Ray cluster that stopped answering
        ap.exit(1, f"{ap.prog}: error: {exc}\n")


def _main(ap: argparse.ArgumentParser, a: argparse.Namespace, st: StudySettings) -> None:
    log = lambda m: print(m, flush=True)  # noqa: E731
    command_families()[a.experiment].run_command(a.experiment, a, st, ap.error, log)
