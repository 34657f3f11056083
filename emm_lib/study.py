"""The study's experiments as short, resumable functions (notebooks and the CLI call these).

Every run trains on ``train``, selects its epoch on ``val`` and is evaluated once on ``test``;
rows go to ``results/<profile>/<experiment>.csv`` in the tidy format of :mod:`emm_lib.results`.
A run whose rows were made with the same settings is skipped, so an interrupted study resumes
where it stopped; rows made with other settings stop the run with the setting that changed
(:mod:`emm_lib.runs`). Planning and executing (locally or on Ray) live in :mod:`emm_lib.runner`.

    python -m emm_lib.study table1 --profile paper --seeds 0 1 2 3 4
    python -m emm_lib.study all --profile paper --executor ray      # every experiment, then analyze
    python -m emm_lib.study synthetic --profile paper --axes relatedness task_count   # emm_lib.sweep
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
import torch

from . import checkpoint, config, results
from .data import Dataset, load
from .models import SingleTaskMLP, build_model
from . import runner
from .runner import execute_plan, plan
from .runs import Run, split_seed
from .utils import repo_root, resolve_device

__all__ = ["StudySettings", "settings", "load_dataset", "trained_models", "run_experiment", "run_experiments",
           "EXPERIMENTS", "VARIANTS", "dataset_key", "dataset_key_of", "experiment_tasks", "summarize",
           "table_with_gain", "paired_test", "compute_cost", "pretty", "paper_table", "history_path",
           "checkpoint_path", "BASELINES", "TM_SHAPES"]

TM_SHAPES = config.TM_SHAPES
BASELINES = config.BASELINES


@dataclass(frozen=True)
class StudySettings:
    """Everything a run depends on; recorded with every result row."""

    dataset: str = "census"
    profile: str = "default"
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 8
    batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 1e-6
    patience: int | None = 3
    max_train_rows: int | None = None
    device: str = "auto"
    results_dir: str = "results"
    data_dir: str | None = None
    data_path: str | None = None  # AliExpress / Ali-CCP: the folder with the user's CSVs
    threads: int | None = None
    quiet: bool = True
    on_change: str = "error"  # rows made with other settings: "error" names the change, "rerun" replaces them

    @property
    def out_dir(self) -> Path:
        p = Path(self.results_dir)
        return (p if p.is_absolute() else repo_root() / p) / self.profile

    def fit_kwargs(self) -> dict:
        return dict(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
                    patience=self.patience, device=self.device, max_train_rows=self.max_train_rows,
                    progress=not self.quiet, cpu_threads=self.threads or 1)

    def record(self) -> dict:
        d = asdict(self)
        d.pop("seeds")
        for k in ("quiet", "on_change", "results_dir", "data_dir", "data_path"):
            d.pop(k)
        return d


def settings(dataset: str = "census", profile: str = "default", **overrides) -> StudySettings:
    """The profile's settings (from :mod:`emm_lib.config`) with papermill-style overrides (None = keep)."""
    base = config.profile(profile, dataset)
    kw = {k: base[k] for k in ("epochs", "batch_size", "lr", "weight_decay", "patience", "max_train_rows")}
    kw["seeds"] = tuple(base["seeds"])
    for k, v in overrides.items():
        if k not in StudySettings.__dataclass_fields__:
            raise ValueError(f"Unknown study setting {k!r}; known: {sorted(StudySettings.__dataclass_fields__)}.")
        if v is not None:
            kw[k] = v
    from .params import coerce_settings

    kw = coerce_settings(kw)  # "0", "[0,1]", 3.0 -> ints; batch_size=2.5 or an absent device -> clear errors
    st = StudySettings(dataset=dataset, profile=profile, **kw)
    if not st.seeds:
        raise ValueError("seeds must name at least one seed, e.g. [0, 1, 2].")
    resolve_device(st.device)  # fail early on a bad device string
    if st.threads:
        torch.set_num_threads(int(st.threads))
    return st


def dataset_key_of(dataset: str, features: str = "paper", n_tasks: int = 2) -> str:
    """The ``dataset`` column of a run: e.g. ``census``, ``census/leak-free``, ``census/fixed-features/3-tasks``."""
    return "/".join([dataset] + ([features] if features != "paper" else [])
                    + ([f"{n_tasks}-tasks"] if n_tasks != 2 else []))


def dataset_key(ds: Dataset) -> str:
    return dataset_key_of(ds.name, ds.info.get("feature_set", "paper"), len(ds.tasks))


def experiment_tasks(dataset: str, k: int) -> tuple[str, ...]:
    """The first ``k`` tasks of ``dataset`` (Census: income, marital, education, sex)."""
    if dataset == "synthetic":
        return tuple(f"t{i + 1}" for i in range(k))
    if dataset == "synthetic-ali":
        tasks = tuple(config.SYNTHETIC_PRESETS["synthetic-ali"]["tasks"])
        if not 1 <= k <= len(tasks):
            raise ValueError(f"The synthetic-ali preset defines tasks {list(tasks)}; {k} were asked for.")
        return tasks[:k]
    if dataset != "census":
        if k != 2:
            raise ValueError(f"More than two tasks are defined for Census and synthetic data, not {dataset!r}.")
        from .data.ali import TASKS as ALI_TASKS  # noqa: N811

        return tuple(ALI_TASKS)[:2]
    from .data.census import TASKS

    if not 1 <= k <= len(TASKS):
        raise ValueError(f"Census defines {len(TASKS)} tasks ({list(TASKS)}); {k} were asked for.")
    return tuple(TASKS)[:k]


def load_dataset(st: StudySettings, tasks: Sequence[str] | None = None, *, n_tasks: int | None = None,
                 features: str = "paper", seed: int | None = None, data: str = "") -> Dataset:
    """The study's dataset for a run: ``tasks`` (or the first ``n_tasks``; default the paper's two),
    feature set ``features`` (Census), and the val/test split of run ``seed`` (default the first seed).
    ``data``: a synthetic sweep point (:mod:`emm_lib.sweep`), generated with the run's seed."""
    if data:
        from .sweep import load_point

        if tasks is not None:
            raise ValueError("A sweep point defines its tasks; pass n_tasks, not tasks.")
        ds = load_point(data, st, n_tasks or 2, st.seeds[0] if seed is None else seed)
        ds.info["feature_set"] = features
        return ds
    if tasks is None:
        tasks = experiment_tasks(st.dataset, n_tasks or 2)
    sseed = split_seed(st.seeds[0] if seed is None else seed)
    if st.dataset == "census":
        ds = load("census", tasks=tasks, data_dir=st.data_dir, seed=sseed, exclude=features)
    elif st.dataset in ("aliexpress", "ali-ccp"):
        if not st.data_path:
            raise ValueError(f"{st.dataset} needs data_path: the folder holding your downloaded CSVs "
                             "(see the data chapter for where to get them).")
        ds = load(st.dataset, tasks=tasks, path=st.data_path)
    else:
        ds = load(st.dataset, tasks=tasks, seed=sseed)
    if features != "paper" and st.dataset != "census":
        raise ValueError(f"Feature set {features!r} is defined for Census only.")
    ds.info["feature_set"] = features
    return ds


def trained_models(ds: Dataset, st: StudySettings, seed: int, log: Callable | None = None,
                   require: bool = False) -> dict[str, list[SingleTaskMLP]]:
    """TM-1 and TM-2 for every task of ``ds`` at ``seed``: loaded from their checkpoints, else trained
    (rows in ``single_task.csv``). ``require=True`` raises instead of training (notebooks 03-06)."""
    features = ds.info.get("feature_set", "paper")
    runs = [Run("single_task", f"{shape}:{t}", seed, len(ds.tasks), features)
            for t in ds.tasks for shape in config.TM_SHAPES]
    execute_plan(runs, st, log=_logger(st, log), require_trained=require)
    key = dataset_key(ds)
    return {t: [checkpoint.load(checkpoint_path_of(st, "single_task", key, seed, f"{shape}:{t}"))
                for shape in config.TM_SHAPES] for t in ds.tasks}


def _logger(st: StudySettings, log: Callable | None) -> Callable:
    """``log`` if given; else print progress unless the settings are quiet (notebooks, tests)."""
    if log is not None:
        return log
    return (lambda msg: None) if st.quiet else print


def history_path_of(st: StudySettings, experiment: str, key: str, seed: int, label: str) -> Path:
    return (st.out_dir / "histories" / experiment
            / f"{key.replace('/', '_')}__seed{seed}__{label.replace(':', '_')}.csv")


def checkpoint_path_of(st: StudySettings, experiment: str, key: str, seed: int, label: str) -> Path:
    return st.out_dir / "checkpoints" / experiment / key.replace("/", "_") / f"seed{seed}" / label.replace(":", "_")


def history_path(st: StudySettings, experiment: str, ds: Dataset, seed: int, label: str) -> Path:
    """Where a run's per-epoch history is saved."""
    return history_path_of(st, experiment, dataset_key(ds), seed, label)


def checkpoint_path(st: StudySettings, experiment: str, ds: Dataset, seed: int, label: str) -> Path:
    """Where a run's weights are saved (gitignored)."""
    return checkpoint_path_of(st, experiment, dataset_key(ds), seed, label)


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
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise ValueError(f"Unknown experiment {unknown[0]!r}. Known: {sorted(EXPERIMENTS)}.")
    for n in names:
        counts = EXPERIMENTS[n]["task_counts"]
        bad = [k for k in (task_counts or ()) if k not in counts]
        if bad:
            raise ValueError(f"Experiment {n!r} runs task counts {list(counts)}, not {bad}.")
    bad_models = [m for m in (models or ()) if m not in VARIANTS]
    if bad_models:
        raise ValueError(f"Unknown model label(s) {bad_models}. Known: {sorted(VARIANTS)}.")
    runs = plan(names, st, models, task_counts)
    execute_plan(runs, st, executor=executor, address=address, log=_logger(st, log),
                 require_trained=require_trained)
    out = {}
    for n in names:
        path = st.out_dir / f"{n}.csv"
        out[n] = results.read(path) if path.exists() else pd.DataFrame(columns=results.COLUMNS)
    return out


def summarize(df: pd.DataFrame, metric: str = "test_auc") -> pd.DataFrame:
    """Mean, std and count over seeds per (dataset, model, task); a rerun of the same seed counts once (the last)."""
    d = df[df.metric == metric].drop_duplicates(["dataset", "model", "task", "seed"], keep="last")
    g = d.groupby(["dataset", "model", "task"], sort=False).value
    return g.agg(mean="mean", std="std", n="count").reset_index()


def table_with_gain(df: pd.DataFrame, metric: str = "test_auc") -> pd.DataFrame:
    """Model x task mean AUC with the paper's gain column: difference to the mean of TM-1 and TM-2."""
    s = summarize(df, metric)
    tm = s[s.model.str.match(r"tm[12]:")].copy()
    tm["shape"] = tm.model.str.split(":").str[0]
    tm_mean = tm.groupby("task")["mean"].mean()
    s["gain"] = s["mean"] - s.task.map(tm_mean)
    return s


def pretty(summary: pd.DataFrame, order: Sequence[str] | None = None, gain: bool = False) -> pd.DataFrame:
    """Model x task table of "mean ± std" strings (AUC to 4 decimals; the gain when asked)."""
    s = summary.copy()
    one = s["n"] <= 1
    s["cell"] = [f"{m:.4f}" if o or pd.isna(sd) else f"{m:.4f} ± {sd:.4f}"
                 for m, sd, o in zip(s["mean"], s["std"], one)]
    if gain:
        s["cell"] = s["cell"] + [f" ({g:+.4f})" for g in s["gain"]]
    t = s.pivot_table(index="model", columns="task", values="cell", aggfunc="first", sort=False)
    t["seeds"] = s.groupby("model", sort=False)["n"].min()
    if order is not None:
        t = t.reindex([m for m in order if m in t.index])
    t.columns.name = None
    return t


def paper_table(name: str) -> pd.DataFrame:
    """The paper's reported numbers (single runs) as a model x task table, labelled as such."""
    if name not in config.PAPER_TABLES:
        raise ValueError(f"Unknown paper table {name!r}; known: {sorted(config.PAPER_TABLES)}.")
    t = pd.DataFrame(config.PAPER_TABLES[name]).T
    t.index.name = "model (paper, single run)"
    return t


def paired_test(df: pd.DataFrame, model_a: str, model_b: str, metric: str = "test_auc") -> pd.DataFrame:
    """Per task: mean difference a - b over the seeds both have, and a paired t-test p-value."""
    from scipy import stats

    d = df[df.metric == metric].drop_duplicates(["dataset", "model", "task", "seed"], keep="last")
    rows = []
    for (dataset, task), g in d.groupby(["dataset", "task"], sort=False):
        a = g[g.model == model_a].set_index("seed").value
        b = g[g.model == model_b].set_index("seed").value
        seeds = sorted(set(a.index) & set(b.index))
        if not seeds:
            continue
        diff = a.loc[seeds] - b.loc[seeds]
        p = float(stats.ttest_rel(a.loc[seeds], b.loc[seeds]).pvalue) if len(seeds) > 1 and diff.std() > 0 else float("nan")
        rows.append({"dataset": dataset, "task": task, "a": model_a, "b": model_b, "n_seeds": len(seeds),
                     "mean_diff": float(diff.mean()), "std_diff": float(diff.std()) if len(seeds) > 1 else float("nan"),
                     "p_value": p})
    return pd.DataFrame(rows)


def compute_cost(df: pd.DataFrame) -> pd.DataFrame:
    """Training seconds per model (summed over seeds and tasks counted once per run)."""
    runs = df.drop_duplicates(["dataset", "model", "seed"])
    return (runs.groupby(["dataset", "model"], sort=False)
            .agg(runs=("seed", "count"), seconds_total=("train_seconds", "sum"),
                 seconds_per_run=("train_seconds", "mean"), epochs_mean=("best_epoch", "mean"))
            .reset_index())


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m emm_lib.study", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("experiment", choices=sorted(EXPERIMENTS) + ["single_task", "all", "analyze", "synthetic"],
                    help="'all': every Census experiment, seed by seed; 'analyze': paired DeLong variances; "
                         "'synthetic': the synthetic sweep (emm_lib.sweep; --axes, seeds from its grid)")
    ap.add_argument("--dataset", default="census")
    ap.add_argument("--profile", default="default")
    ap.add_argument("--seeds", type=int, nargs="+")
    ap.add_argument("--models", nargs="+")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--device")
    ap.add_argument("--threads", type=int, help="torch threads per run (default 1)")
    ap.add_argument("--results-dir")
    ap.add_argument("--data-dir")
    ap.add_argument("--task-counts", type=int, nargs="+", help="only these task counts (e.g. figure3: 3 4)")
    ap.add_argument("--on-change", choices=["error", "rerun"], default="error",
                    help="rows made with other settings: stop and name the change (default), or replace them")
    ap.add_argument("--axes", nargs="+", help="synthetic sweep: only these axes (relatedness task_count "
                                             "data_size shapes)")
    ap.add_argument("--executor", choices=["local", "ray"], default="local")
    ap.add_argument("--address", help="Ray cluster address (default: start a local instance)")
    a = ap.parse_args(argv)
    if a.experiment == "synthetic":
        from . import sweep

        st = settings("synthetic", a.profile, seeds=a.seeds, device=a.device, threads=a.threads,
                      results_dir=a.results_dir, on_change=a.on_change, quiet=False)
        sweep.run_sweep(st, a.axes or sweep.AXES, a.seeds, executor=a.executor, address=a.address)
        return
    st = settings(a.dataset, a.profile, seeds=a.seeds, epochs=a.epochs, device=a.device, threads=a.threads,
                  results_dir=a.results_dir, data_dir=a.data_dir, on_change=a.on_change)
    log = lambda m: print(m, flush=True)  # noqa: E731
    if a.experiment == "analyze":
        from .analysis import write_pair_variances

        print(write_pair_variances(st.out_dir))
        return
    if a.experiment == "single_task":
        runs = [r for r in plan(["table1"], st) if r.is_trained_model]
        execute_plan(runs, st, executor=a.executor, address=a.address, log=log)
        return
    names = [n for n in EXPERIMENTS if n != "synthetic_tasks"] if a.experiment == "all" else [a.experiment]
    run_experiments(names, st, a.models, log=log, task_counts=a.task_counts, executor=a.executor,
                    address=a.address)
    if a.experiment == "all":
        from .analysis import write_pair_variances

        print(write_pair_variances(st.out_dir))


if __name__ == "__main__":
    main(sys.argv[1:])
