"""Small synthetic datasets for unit tests (not the study's generator: see emm_lib.data.synthetic)."""
from __future__ import annotations

import torch

from emm_lib.data.types import Dataset, FeatureSpec, SparseFeature, Split

CARDS = (5, 7, 3, 11)


def make_tiny_dataset(n_tasks: int = 2, n_rows: int = 600, seed: int = 0, n_dense: int = 3) -> Dataset:
    """Random features; task t's label depends on a shared signal plus its own, so tasks are related."""
    g = torch.Generator().manual_seed(seed)
    tasks = tuple("abcdefgh"[:n_tasks])
    spec = FeatureSpec(tuple(SparseFeature(f"s{i}", c) for i, c in enumerate(CARDS)),
                       tuple(f"d{i}" for i in range(n_dense)))

    def split(n: int) -> Split:
        sparse = torch.stack([torch.randint(0, c, (n,), generator=g) for c in CARDS], 1)
        dense = torch.rand(n, n_dense, generator=g)
        shared = (sparse[:, 0] % 2).float() * 2 - 1 + dense[:, 0] * 2 - 1
        ys = []
        for t in range(n_tasks):
            own = (sparse[:, 1 + t % 3] % 2).float() - 0.5
            logit = 2.0 * shared + 1.5 * own + 0.3 * torch.randn(n, generator=g)
            ys.append((logit > 0).float())
        return Split(sparse, dense, torch.stack(ys, 1), tasks)

    return Dataset("tiny", tasks, spec, split(n_rows), split(n_rows // 3), split(n_rows // 3))
