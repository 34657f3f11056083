"""What a study run depends on, and where its outputs go.

:class:`StudySettings` (from a profile of :mod:`emm_lib.config` plus overrides) is recorded with
every result row; :func:`dataset_key_of` names a run's data in the ``dataset`` column;
:func:`experiment_tasks` gives an experiment's tasks; the ``*_path_of`` functions place histories
and checkpoints under ``results/<profile>/``. :mod:`emm_lib.study` runs the experiments.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from emm_lib import config
from emm_lib.data import Dataset
from emm_lib.train import set_threads
from emm_lib.utils import repo_root, resolve_device

__all__ = ["StudySettings", "settings", "dataset_key_of", "dataset_key", "experiment_tasks", "history_path_of",
           "checkpoint_path_of", "history_path", "checkpoint_path", "logger"]


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
    cuda_graph: bool = False  # fit(cuda_graph=True) on CUDA: the same training, replayed as one graph
    quiet: bool = True
    on_change: str = "error"  # rows made with other settings: "error" names the change, "rerun" replaces them

    @property
    def out_dir(self) -> Path:
        p = Path(self.results_dir)
        return (p if p.is_absolute() else repo_root() / p) / self.profile

    def fit_kwargs(self) -> dict:
        return dict(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
                    patience=self.patience, device=self.device, max_train_rows=self.max_train_rows,
                    progress=not self.quiet, cpu_threads=self.threads or 1, cuda_graph=self.cuda_graph)

    def describe(self) -> str:
        """One sentence a reader can take in: the data, the profile, the seeds and the training budget."""
        from emm_lib.study.shared.glossary import dataset_label

        what = {"paper": "the paper's settings", "default": "short runs, minutes on a 2-core CPU",
                "tiny": "a smoke run on a subsample"}.get(self.profile, self.profile)
        seeds = ", ".join(str(s) for s in self.seeds)
        def n(k: int, word: str) -> str:
            return f"{k} {word}{'' if k == 1 else 's'}"

        stop = f", stopping after {n(self.patience, 'epoch')} without a better validation AUC" if self.patience else ""
        rows = f", at most {self.max_train_rows:,} training rows" if self.max_train_rows else ""
        return (f"This page's own runs: {dataset_label(self.dataset)}, profile '{self.profile}' ({what}); "
                f"seed{'s' if len(self.seeds) > 1 else ''} {seeds}; up to {n(self.epochs, 'epoch')}{stop}; "
                f"batch {self.batch_size}, learning rate {self.lr:g}{rows}; device {resolve_device(self.device)}.")

    def record(self) -> dict:
        d = asdict(self)
        d.pop("seeds")
        # cuda_graph: the rows record it from fit(), where a graph was used.
        for k in ("quiet", "on_change", "results_dir", "data_dir", "data_path", "cuda_graph"):
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
    from emm_lib.params import coerce_settings

    kw = coerce_settings(kw)  # "0", "[0,1]", 3.0 -> ints; batch_size=2.5 or an absent device -> clear errors
    kw.update(_data_folder(dataset, kw.get("data_dir"), kw.get("data_path")))
    if kw.get("results_dir") is not None:
        check_folder("results_dir", repo_root() / kw["results_dir"])  # as out_dir: relative to the repo
    st = StudySettings(dataset=dataset, profile=profile, **kw)
    if not st.seeds:
        raise ValueError("seeds must name at least one seed, e.g. [0, 1, 2].")
    resolve_device(st.device)  # fail early on a bad device string
    if st.threads:
        set_threads(int(st.threads))
    return st


ALI_DATASETS = ("aliexpress", "ali-ccp")


def _data_folder(dataset: str, data_dir, data_path) -> dict:
    """``data_dir`` / ``data_path`` for ``dataset``. AliExpress and Ali-CCP read the user's CSVs from one
    folder, named by either (they are the same setting there); Census caches its files in ``data_dir``
    and has no ``data_path``."""
    if dataset in ALI_DATASETS:
        if data_dir is not None and data_path is not None and Path(data_dir) != Path(data_path):
            raise ValueError(f"{dataset}: data_dir={str(data_dir)!r} and data_path={str(data_path)!r} name two "
                             "folders; for AliExpress / Ali-CCP both name the folder with your CSVs: pass one.")
        folder = data_path if data_path is not None else data_dir
        if folder is not None and not Path(folder).expanduser().is_dir():
            raise ValueError(f"{dataset}: the data folder {str(folder)!r} does not exist (or is a file); pass the "
                             "folder that holds your downloaded CSVs (see the data chapter).")
        return {"data_path": None if folder is None else str(folder), "data_dir": None}
    if data_path is not None:
        raise ValueError(f"data_path ({str(data_path)!r}) names the folder of AliExpress / Ali-CCP CSVs; the "
                         f"{dataset!r} data does not read it. Drop it (Census: data_dir is where its files are "
                         "cached).")
    return {}


def check_folder(name: str, path) -> None:
    """A ValueError naming ``name`` when ``path`` (or the nearest part of it that exists) is a file, or a
    folder that cannot be written to: results would fail to save only after the first run."""
    import os

    p = Path(path).expanduser()
    existing = next((q for q in (p, *p.parents) if q.exists()), None)
    if existing is None:
        return
    if not existing.is_dir():
        where = "is a file" if existing == p else f"cannot be created: {existing} is a file"
        raise ValueError(f"{name}: {p} {where}; pass a folder (it is created when missing).")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{name}: {p}: {existing} is not writable; pass a folder you can write to.")


def dataset_key_of(dataset: str, features: str = "paper", n_tasks: int = 2, rung: str | None = None) -> str:
    """The ``dataset`` column of a run: e.g. ``census``, ``census/leak-free``, ``census/fixed-features/3-tasks``;
    a protocol replay run names its rung: ``census/rung-published``."""
    return "/".join([dataset] + ([features] if features != "paper" else [])
                    + ([f"{n_tasks}-tasks"] if n_tasks != 2 else []) + ([f"rung-{rung}"] if rung else []))


def dataset_key(ds: Dataset) -> str:
    return dataset_key_of(ds.name, ds.info.get("feature_set", "paper"), len(ds.tasks), ds.info.get("rung"))


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
        from emm_lib.data.ali import ALI_CCP, ALIEXPRESS

        layouts = {"aliexpress": ALIEXPRESS, "ali-ccp": ALI_CCP}
        if dataset not in layouts:
            raise ValueError(f"Unknown dataset {dataset!r}. Known datasets: {list(config.DATASETS)}.")
        if k != 2:
            raise ValueError(f"{dataset} defines two tasks {list(layouts[dataset].paper_tasks)}; {k} were asked for. "
                             "More tasks: run on census or synthetic data.")
        return layouts[dataset].paper_tasks
    from emm_lib.data.census import TASKS

    if not 1 <= k <= len(TASKS):
        raise ValueError(f"Census defines {len(TASKS)} tasks ({list(TASKS)}); {k} were asked for.")
    return tuple(TASKS)[:k]


def logger(st: StudySettings, log: Callable | None) -> Callable:
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
