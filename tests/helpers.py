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


def train_tiny_models(ds, blocks=((8, 8), (16, 8)), seed=0, **kw):
    """Single-task models per task with non-trivial weights and BatchNorm statistics (a few Adam steps each)."""
    import torch
    import torch.nn.functional as F

    from emm_lib.models import SingleTaskMLP

    torch.manual_seed(seed)
    out = {}
    for i, t in enumerate(ds.tasks):
        out[t] = []
        for block in blocks:
            m = SingleTaskMLP(ds.spec, t, block=block, n_blocks=3, **kw)
            opt = torch.optim.Adam(m.parameters(), lr=1e-2)
            m.train()
            for b in ds.train.batches(100):
                opt.zero_grad()
                F.binary_cross_entropy_with_logits(m(b)[:, 0], b.y[:, i]).backward()
                opt.step()
            m.eval()
            out[t].append(m)
    return out
