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
import sys
from typing import Callable, Sequence

import pandas as pd

from emm_lib import checkpoint, config
from emm_lib.study.shared import results
from emm_lib.data import Dataset, load
from emm_lib.models import SingleTaskMLP, build_model  # noqa: F401
from emm_lib.study.shared import runner  # noqa: F401
from emm_lib.study.shared.run_settings import (StudySettings, checkpoint_path, checkpoint_path_of, dataset_key, dataset_key_of,  # noqa: F401
                           experiment_tasks, history_path, history_path_of, settings)
from emm_lib.study.shared.run_settings import logger as _logger
from emm_lib.study.shared.runner import execute_plan, plan
from emm_lib.study.shared.runs import Run, split_seed
from emm_lib.utils import repo_root
from emm_lib.study.shared.tables import (compute_cost, paired_test, paper_table, pretty, study_tables, summarize,  # noqa: F401
                     table_with_gain)

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
    ``rung``: a protocol rung of the replay (issue 17), whose data flags (``ProtocolSettings.data``,
    e.g. the published preprocessing) apply; recorded in ``ds.info["rung"]``. ``experiment``: the sweep
    pass whose grid makes a point's data (``synthetic``, ``synthetic_map``)."""
    from emm_lib.study.replay import protocol

    if data:
        from emm_lib.study.sweep.grid import load_point

        if tasks is not None:
            raise ValueError("A sweep point defines its tasks; pass n_tasks, not tasks.")
        ds = load_point(data, st, n_tasks or 2, st.seeds[0] if seed is None else seed, experiment)
        ds.info["feature_set"] = features
        return ds
    pdata = protocol.apply(rung, st.dataset).data if rung else {}
    if tasks is None:
        tasks = experiment_tasks(st.dataset, n_tasks or 2)
    sseed = split_seed(st.seeds[0] if seed is None else seed)
    if st.dataset == "census":
        ds = load("census", tasks=tasks, data_dir=st.data_dir, seed=sseed, exclude=features, **pdata)
    elif st.dataset in ("aliexpress", "ali-ccp"):
        if not st.data_path:
            raise ValueError(f"{st.dataset} needs data_path: the folder holding your downloaded CSVs "
                             "(see the data chapter for where to get them).")
        ds = load(st.dataset, tasks=tasks, path=st.data_path)
    else:
        from emm_lib.study.replay.authors import data_options

        ds = load(st.dataset, tasks=tasks, seed=sseed, **(data_options(st.dataset, st.profile) if rung else {}))
    if features != "paper" and st.dataset != "census":
        raise ValueError(f"Feature set {features!r} is defined for Census only.")
    ds.info["feature_set"] = features
    if rung:
        ds.info["rung"] = rung
    return ds


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


def run_experiments(names: Sequence[str], st: StudySettings, models: Sequence[str] | None = None, *,
                    log: Callable | None = None, require_trained: bool = False,
                    task_counts: Sequence[int] | None = None, executor: str = "local",
                    address: str | None = None) -> dict[str, pd.DataFrame]:
    """Run (or resume) several experiments, seed by seed; returns each one's results table."""
    check_request(names, models, task_counts, st.dataset)
    runs = plan(names, st, models, task_counts)
    execute_plan(runs, st, executor=executor, address=address, log=_logger(st, log),
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
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise ValueError(f"Unknown experiment {unknown[0]!r}. Known: {sorted(EXPERIMENTS)}.")
    for n in names:
        counts = EXPERIMENTS[n]["task_counts"]
        bad = [k for k in (task_counts or ()) if k not in counts]
        if bad:
            raise ValueError(f"Experiment {n!r} runs task counts {list(counts)}, not {bad} (--task-counts).")
    bad_models = [m for m in (models or ()) if m not in VARIANTS]
    if bad_models:
        raise ValueError(f"Unknown model label(s) {bad_models} (--models). Known: {sorted(VARIANTS)}.")
    for n in names if dataset is not None else ():
        features = EXPERIMENTS[n]["features"]
        if features != "paper" and dataset != "census":
            raise ValueError(f"Experiment {n!r} uses Census' {features!r} feature set; it runs on --dataset census "
                             f"only, not {dataset!r}.")
        for k in task_counts or EXPERIMENTS[n]["task_counts"]:
            experiment_tasks(dataset, k)  # names the tasks the dataset defines


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m emm_lib.study", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("experiment", choices=sorted(EXPERIMENTS) + ["single_task", "all", "analyze", "synthetic",
                                                  "synthetic_map", "authors"],
                    help="'all': every Census experiment, seed by seed; 'analyze': paired DeLong variances; "
                         "'synthetic': the synthetic sweep (emm_lib.study.sweep.grid; --axes, seeds from its grid); "
                         "'synthetic_map': its second pass (worlds, one stopping rule; config.SYNTHETIC_MAPS); "
                         "'authors': the protocol replay (emm_lib.study.replay.authors; --rungs)")
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
    ap.add_argument("--axes", nargs="+", help="synthetic sweep: only these axes (relatedness task_count "
                                             "data_size shapes)")
    ap.add_argument("--rows", type=int, nargs="+", help="synthetic sweep: only the points with these training "
                                                       "rows (e.g. --axes data_size --rows 10000000 on a GPU)")
    ap.add_argument("--executor", choices=["local", "ray"], help="default: local")
    ap.add_argument("--address", help="Ray cluster address (default: start a local instance)")
    ap.add_argument("--rungs", nargs="+", help="authors: only these protocol rungs (default: the profile's)")
    ap.add_argument("--variants", nargs="+", help="authors: add these EMM variants on 2 tasks ('table2': the "
                                                 "paper's Table II rows), built from the rung's trained models")
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
    from emm_lib.study.replay import authors

    try:
        if a.experiment in ("synthetic", "synthetic_map"):
            return settings("synthetic", a.profile, seeds=a.seeds, device=a.device, threads=a.threads,
                            cuda_graph=a.cuda_graph or None, results_dir=a.results_dir, on_change=a.on_change,
                            quiet=False)
        make = authors.settings if a.experiment == "authors" else settings  # the replay's synthetic budget
        return make(a.dataset, a.profile, seeds=a.seeds, epochs=a.epochs, device=a.device, threads=a.threads,
                    cuda_graph=a.cuda_graph or None, results_dir=a.results_dir, data_dir=a.data_dir,
                    data_path=a.data_path, on_change=a.on_change)
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
    if a.experiment in ("synthetic", "synthetic_map"):
        from emm_lib.study.sweep import grid as sweep

        try:
            sweep.plan(st, a.axes, a.seeds, a.rows, a.experiment)  # names a point that does not exist
        except ValueError as exc:
            ap.error(str(exc))
        sweep.run_sweep(st, a.axes, a.seeds, executor=a.executor, address=a.address, rows=a.rows,
                        experiment=a.experiment)
        return
    log = lambda m: print(m, flush=True)  # noqa: E731
    if a.experiment == "analyze":
        from emm_lib.study.shared.analysis import write_pair_variances

        try:
            print(write_pair_variances(st.out_dir))
        except FileNotFoundError as exc:
            ap.error(str(exc))
        return
    if a.experiment == "authors":  # issue 17: the protocol replay (emm_lib.study.replay.authors)
        from emm_lib.study.replay import authors

        try:
            authors.plan(st, a.rungs, variants=a.variants, task_counts=a.task_counts, models=a.models)
        except ValueError as exc:
            ap.error(str(exc))
        authors.run(st, rungs=a.rungs, executor=a.executor, address=a.address, log=log, variants=a.variants,
                    task_counts=a.task_counts, models=a.models)
        print(authors.write_pair_variances(st, a.rungs))
        return
    if a.experiment == "single_task":
        runs = [r for r in plan(["table1"], st) if r.is_trained_model]
        execute_plan(runs, st, executor=a.executor, address=a.address, log=log)
        return
    names = [n for n in EXPERIMENTS if n != "synthetic_tasks"] if a.experiment == "all" else [a.experiment]
    try:
        check_request(names, a.models, a.task_counts, st.dataset)
    except ValueError as exc:
        ap.error(str(exc))
    run_experiments(names, st, a.models, log=log, task_counts=a.task_counts, executor=a.executor,
                    address=a.address)
    if a.experiment == "all":
        from emm_lib.study.shared.analysis import write_pair_variances

        print(write_pair_variances(st.out_dir))

