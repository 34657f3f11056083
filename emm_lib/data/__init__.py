"""Data: one entry point, :func:`load`, for Census-Income, AliExpress, Ali-CCP and synthetic data."""
from __future__ import annotations

from typing import Sequence

from .types import Batch, Dataset, FeatureSpec, SparseFeature, Split

__all__ = ["load", "DATASETS", "Batch", "Dataset", "FeatureSpec", "SparseFeature", "Split"]

DATASETS = ("census", "aliexpress", "ali-ccp", "synthetic", "synthetic-ali")


def load(name: str, tasks: Sequence[str] | None = None, **kwargs) -> Dataset:
    """Load a dataset with ``train``/``val``/``test`` splits and its feature spec.

    ``tasks=None`` means the paper's two tasks. Keyword arguments go to the loader:
    census: ``data_dir``, ``mirror``, ``cache``, ``seed`` (the val/test split), ``quiet``;
    aliexpress / ali-ccp: ``path`` (the directory holding the user's downloaded CSVs),
    ``val_frac``, ``seed``; synthetic: ``n_rows``,
    ``correlation``, ``seed`` and the generator's other settings; synthetic-ali (the
    AliExpress-shaped funnel preset, :func:`~emm_lib.data.synthetic_stream.make_preset`):
    ``n_train``, ``seed`` and overrides of the preset's settings.
    """
    if name == "census":
        from .census import load_census

        return load_census(tasks=tasks, **kwargs)
    if name == "aliexpress":
        from .ali import load_aliexpress

        return load_aliexpress(tasks=tasks, **kwargs)
    if name == "ali-ccp":
        from .ali import load_ali_ccp

        return load_ali_ccp(tasks=tasks, **kwargs)
    if name == "synthetic":
        from .synthetic import make_synthetic

        return make_synthetic(tasks=tasks, **kwargs)
    if name == "synthetic-ali":
        from .synthetic_stream import make_preset

        return make_preset("synthetic-ali", tasks=tasks, **kwargs)
    raise ValueError(f"Unknown dataset {name!r}. Known datasets: {list(DATASETS)}.")
