"""The study's experiments as short, resumable functions (notebooks and the CLI call these).

Every run trains on ``train``, selects its epoch on ``val`` and is evaluated once on ``test``;
rows go to ``results/<profile>/<experiment>.csv`` in the tidy format of :mod:`emm_lib.results`.
A run whose rows are already there is skipped, so an interrupted study resumes where it stopped.

    python -m emm_lib.study table1 --profile paper --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
import torch

from . import checkpoint, config, results
from .data import Dataset, load
from .models import SingleTaskMLP, build_model
from .models.base import MultiTaskModel
from .train import evaluate, fit
from .utils import atomic_write, repo_root, resolve_device

__all__ = ["StudySettings", "settings", "load_dataset", "trained_models", "run_model", "run_experiment",
           "EXPERIMENTS", "VARIANTS", "dataset_key", "summarize", "table_with_gain", "paired_test", "compute_cost", "pretty", "paper_table",
           "history_path", "checkpoint_path", "BASELINES", "TM_SHAPES"]

TM_SHAPES = ("tm1", "tm2")
BASELINES = ("shared_bottom", "mmoe", "ple", "aitm", "adatt")


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

    @property
    def out_dir(self) -> Path:
        p = Path(self.results_dir)
        return (p if p.is_absolute() else repo_root() / p) / self.profile

    def fit_kwargs(self) -> dict:
        return dict(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
                    patience=self.patience, device=self.device, max_train_rows=self.max_train_rows,
                    progress=not self.quiet)

    def record(self) -> dict:
        d = asdict(self)
        d.pop("seeds")
        d.pop("quiet")
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


def load_dataset(st: StudySettings, tasks: Sequence[str] | None = None) -> Dataset:
    """Load the study's dataset (``tasks=None``: the paper's two tasks)."""
    if st.dataset == "census":
        return load("census", tasks=tasks, data_dir=st.data_dir)
    if st.dataset in ("aliexpress", "ali-ccp"):
        if not st.data_path:
            raise ValueError(f"{st.dataset} needs data_path: the folder holding your downloaded CSVs "
                             "(see the data chapter for where to get them).")
        return load(st.dataset, tasks=tasks, path=st.data_path)
    return load(st.dataset, tasks=tasks)


def dataset_key(ds: Dataset) -> str:
    return ds.name if len(ds.tasks) == 2 else f"{ds.name}/{len(ds.tasks)}-tasks"


def _done(path: Path, dataset: str, model: str, seed: int) -> bool:
    if not path.exists():
        return False
    df = results.read(path)
    return bool(((df.dataset == dataset) & (df.model == model) & (df.seed == seed)).any())


def run_model(model: MultiTaskModel, ds: Dataset, st: StudySettings, seed: int, *, label: str,
              experiment: str, extra: dict | None = None) -> pd.DataFrame:
    """Train ``model`` (validation selects the epoch), test once, append the rows; return them."""
    res = fit(model, ds, seed=seed, **st.fit_kwargs())
    test = evaluate(model, ds.test)
    rows = results.make_rows(
        dataset=dataset_key(ds), profile=st.profile, model=label, seed=seed,
        metrics={"test_auc": test, "val_auc": res.best_val_auc}, best_epoch=res.best_epoch,
        train_seconds=res.seconds, device=res.device,
        settings={**st.record(), "tasks": list(model.tasks), "epochs_run": len(res.history), **(extra or {})})
    with atomic_write(history_path(st, experiment, ds, seed, label)) as fh:
        res.history.to_csv(fh, index=False)
    checkpoint.save(model.cpu(), checkpoint_path(st, experiment, ds, seed, label))
    results.append(st.out_dir / f"{experiment}.csv", rows)
    return pd.DataFrame(rows)


def _logger(st: StudySettings, log: Callable | None) -> Callable:
    """``log`` if given; else print progress unless the settings are quiet (notebooks, tests)."""
    if log is not None:
        return log
    return (lambda msg: None) if st.quiet else print


def trained_models(ds: Dataset, st: StudySettings, seed: int, log: Callable | None = None,
                   require: bool = False) -> dict[str, list[SingleTaskMLP]]:
    """TM-1 and TM-2 for every task of ``ds`` at ``seed``: loaded from their checkpoints, else trained
    (rows in ``single_task.csv``). ``require=True`` raises instead of training (notebooks 03-06)."""
    log = _logger(st, log)
    out: dict[str, list[SingleTaskMLP]] = {}
    for task in ds.tasks:
        out[task] = []
        for shape in TM_SHAPES:
            label = f"{shape}:{task}"
            ck = checkpoint_path(st, "single_task", ds, seed, label)
            if ck.with_suffix(".pt").exists() and _done(st.out_dir / "single_task.csv", dataset_key(ds), label, seed):
                out[task].append(checkpoint.load(ck))
                continue
            if require:
                raise FileNotFoundError(
                    f"No trained {label} model for seed {seed} ({dataset_key(ds)}) under {st.out_dir}. "
                    f"Run notebooks/02-single-task.ipynb first with the same profile ({st.profile!r}) and seeds.")
            torch.manual_seed(seed)
            m = SingleTaskMLP(ds.spec, task, **config.model_settings(st.dataset, shape))
            t0 = time.perf_counter()
            run_model(m, ds, st, seed, label=label, experiment="single_task", extra={"shape": shape})
            log(f"  trained {label} seed {seed} in {time.perf_counter() - t0:.1f}s")
            out[task].append(m)
    return out


def history_path(st: StudySettings, experiment: str, ds: Dataset, seed: int, label: str) -> Path:
    """Where :func:`run_model` saved a run's per-epoch history."""
    return (st.out_dir / "histories" / experiment
            / f"{dataset_key(ds).replace('/', '_')}__seed{seed}__{label.replace(':', '_')}.csv")


def checkpoint_path(st: StudySettings, experiment: str, ds: Dataset, seed: int, label: str) -> Path:
    """Where :func:`run_model` saved a run's weights (gitignored)."""
    return (st.out_dir / "checkpoints" / experiment / dataset_key(ds).replace("/", "_") / f"seed{seed}"
            / label.replace(":", "_"))


def _emm(**flags) -> Callable:
    def make(ds: Dataset, st: StudySettings, trained: dict) -> MultiTaskModel:
        from .emm import EMM

        sizes = config.model_settings(st.dataset, "emm")
        for k in ("embedding_dim", "component_shapes"):  # both come from the trained models
            sizes.pop(k)
        return EMM.from_trained(trained, **sizes, **flags)

    return make


def _baseline(name: str) -> Callable:
    def make(ds: Dataset, st: StudySettings, trained: dict) -> MultiTaskModel:
        return build_model(name, ds.spec, ds.tasks, **config.model_settings(st.dataset, name))

    return make


# Model variants by label. EMM flags: pretrained (trained components), use_mtm, fusion, reuse_embeddings.
VARIANTS: dict[str, Callable] = {
    **{b: _baseline(b) for b in BASELINES},
    "emm": _emm(),
    "emm:baseline": _emm(pretrained=False, use_mtm=False),
    "emm:+mtm": _emm(pretrained=False, use_mtm=True),
    "emm:+p": _emm(pretrained=True, use_mtm=False),
    "emm:reused-embeddings": _emm(reuse_embeddings=True),
    "emm:hard-gate": _emm(fusion="hard"),  # the paper's arg max (our default is the soft partner)
}

# experiment -> (task counts, variant labels)
EXPERIMENTS: dict[str, tuple[tuple[int, ...], tuple[str, ...]]] = {
    "table1": ((2,), BASELINES + ("emm",)),
    # EMM itself is table1's "emm" row. With two tasks the hard and soft fusion gates are the
    # same function (the only other task gets all the weight), so the gate question is asked
    # in figure3, with 3 and 4 tasks.
    "table2": ((2,), ("emm:baseline", "emm:+mtm", "emm:+p", "emm:reused-embeddings")),
    "figure3": ((3, 4), BASELINES + ("emm", "emm:hard-gate")),
    # Beyond the paper: more tasks on synthetic data of controlled relatedness.
    "synthetic_tasks": ((2, 4, 6), ("mmoe", "ple", "emm")),
}


def run_experiment(name: str, st: StudySettings, models: Sequence[str] | None = None,
                   log: Callable | None = None, require_trained: bool = False,
                   task_counts: Sequence[int] | None = None) -> pd.DataFrame:
    """Run (or resume) an experiment over ``st.seeds``; returns its full results table."""
    if name not in EXPERIMENTS:
        raise ValueError(f"Unknown experiment {name!r}. Known: {sorted(EXPERIMENTS)}.")
    log = _logger(st, log)
    counts, labels = EXPERIMENTS[name]
    labels = tuple(models) if models is not None else labels
    if task_counts is not None:
        bad = [k for k in task_counts if k not in counts]
        if bad:
            raise ValueError(f"Experiment {name!r} runs task counts {list(counts)}, not {bad}.")
        counts = tuple(task_counts)
    unknown = [m for m in labels if m not in VARIANTS]
    if unknown:
        raise ValueError(f"Unknown model label(s) {unknown}. Known: {sorted(VARIANTS)}.")
    path = st.out_dir / f"{name}.csv"
    for k in counts:
        ds = load_dataset(st, tasks=_tasks(st.dataset, k))
        for seed in st.seeds:
            todo = [m for m in labels if not _done(path, dataset_key(ds), m, seed)]
            if not todo:
                continue
            trained = trained_models(ds, st, seed, log=log, require=require_trained and k == 2)
            for label in todo:
                torch.manual_seed(seed)
                model = VARIANTS[label](ds, st, trained)
                t0 = time.perf_counter()
                run_model(model, ds, st, seed, label=label, experiment=name)
                log(f"  {name}: {label} ({len(ds.tasks)} tasks) seed {seed} in {time.perf_counter() - t0:.1f}s")
    return results.read(path) if path.exists() else pd.DataFrame(columns=results.COLUMNS)


def _tasks(dataset: str, k: int) -> tuple[str, ...] | None:
    if k == 2:
        return None
    if dataset == "synthetic":
        return tuple(f"t{i + 1}" for i in range(k))
    from .data.census import TASKS

    if dataset != "census":
        raise ValueError(f"More than two tasks are defined for Census only, not {dataset!r}.")
    return tuple(TASKS)[:k]


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
    ap.add_argument("experiment", choices=sorted(EXPERIMENTS) + ["single_task"])
    ap.add_argument("--dataset", default="census")
    ap.add_argument("--profile", default="default")
    ap.add_argument("--seeds", type=int, nargs="+")
    ap.add_argument("--models", nargs="+")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--device")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--results-dir")
    ap.add_argument("--data-dir")
    ap.add_argument("--task-counts", type=int, nargs="+", help="only these task counts (e.g. figure3: 3 4)")
    a = ap.parse_args(argv)
    st = settings(a.dataset, a.profile, seeds=a.seeds, epochs=a.epochs, device=a.device, threads=a.threads,
                  results_dir=a.results_dir, data_dir=a.data_dir)
    log = lambda m: print(m, flush=True)  # noqa: E731
    if a.experiment == "single_task":
        ds = load_dataset(st)
        for s in st.seeds:
            trained_models(ds, st, s, log=log)
        return
    run_experiment(a.experiment, st, a.models, log=log, task_counts=a.task_counts)


if __name__ == "__main__":
    main(sys.argv[1:])
