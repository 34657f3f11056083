"""The study's real and generated datasets for a run: tasks, feature set and the split of the run's seed."""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from emm_lib.data import Dataset, load
from emm_lib.study.shared.run_settings import experiment_tasks
from emm_lib.study.shared.runs import split_seed

if TYPE_CHECKING:  # pragma: no cover
    from emm_lib.study.shared.run_settings import StudySettings

__all__ = ["load_study_data"]


def load_study_data(st: "StudySettings", tasks: Sequence[str] | None = None, *, n_tasks: int | None = None,
                    features: str = "paper", seed: int | None = None, census_options: dict | None = None,
                    generator_options: dict | None = None) -> Dataset:
    """``st.dataset`` with ``tasks`` (or the first ``n_tasks``; default the paper's two), feature set
    ``features`` (Census) and the val/test split of run ``seed`` (default the first seed).
    ``census_options``: extra Census loading flags (a protocol rung's preprocessing);
    ``generator_options``: the synthetic generator's settings (the replay's budget)."""
    if tasks is None:
        tasks = experiment_tasks(st.dataset, n_tasks or 2)
    sseed = split_seed(st.seeds[0] if seed is None else seed)
    if st.dataset == "census":
        ds = load("census", tasks=tasks, data_dir=st.data_dir, seed=sseed, exclude=features, **(census_options or {}))
    elif st.dataset in ("aliexpress", "ali-ccp"):
        if not st.data_path:
            raise ValueError(f"{st.dataset} needs data_path: the folder holding your downloaded CSVs "
                             "(see the data chapter for where to get them).")
        ds = load(st.dataset, tasks=tasks, path=st.data_path)
    else:
        ds = load(st.dataset, tasks=tasks, seed=sseed, **(generator_options or {}))
    if features != "paper" and st.dataset != "census":
        raise ValueError(f"Feature set {features!r} is defined for Census only.")
    ds.info["feature_set"] = features
    return ds
