"""The two training and inference paths that ``bench_train.py`` times for one model on the Census
rows: ours (``fit``'s step on tensors sliced by a shuffled index) and the published pipeline's (a
per-row ``DataLoader``, one embedding lookup per feature); the same model and values on both."""
from __future__ import annotations

import gc
import time


def build(name: str, spec, tasks):
    from emm_lib import config
    from emm_lib.models import SingleTaskMLP, build_model

    if name in ("tm1", "tm2"):
        return SingleTaskMLP(spec, tasks[0], **config.model_settings("census", name))
    if name == "emm":
        from emm_lib.emm import EMM

        trained = {t: [SingleTaskMLP(spec, t, **config.model_settings("census", k)) for k in ("tm1", "tm2")]
                   for t in tasks}
        return EMM.from_trained(trained, **{k: v for k, v in config.model_settings("census", "emm").items()
                                             if k not in ("embedding_dim", "component_shapes")})
    return build_model(name, spec, tasks, **config.model_settings("census", name))


class Paths:
    """One model's two training and inference paths on the Census rows, sharing one model and one
    optimiser: ``ours`` (tensors sliced by a shuffled index, ``fit``'s step) and ``per_row`` (the
    published pipeline: a per-row ``DataLoader`` and one embedding lookup per feature, same values)."""

    warm = 2  # untimed steps at the start of every pass (allocator, caches after the other path ran)

    def __init__(self, name: str, n_batches: int, batch_size: int, threads: int, compile_: bool, wall: bool,
                 device: str, amp: bool, compile_mode: str | None, cuda_graph: bool):
        import torch

        from emm_lib.data import load
        from emm_lib.data.types import Split
        from emm_lib.utils import resolve_device

        self.torch, self.dev = torch, resolve_device(device)
        cuda = self.dev.type == "cuda"
        self.clock = self._cuda_clock if cuda else (time.perf_counter if wall else time.process_time)
        torch.set_num_threads(threads)
        self.ds = ds = load("census")
        tasks = ds.tasks[:1] if name in ("tm1", "tm2") else ds.tasks
        torch.manual_seed(0)
        self.model = build(name, ds.spec, tasks).to(self.dev)
        self.fast_model = torch.compile(self.model, mode=compile_mode) if compile_ else self.model
        self.opt = torch.optim.Adam([p for p in self.model.parameters() if p.requires_grad], lr=1e-3,
                                    weight_decay=1e-6, fused=True)  # as emm_lib.train.fit; both paths step it
        tr = ds.train
        self.split = Split(tr.sparse, tr.dense, tr.select_tasks(tasks), tasks).to(self.dev)  # data on the device
        self.n_batches, self.batch_size = n_batches, batch_size
        self.n_rows = min(n_batches * batch_size, len(self.split))
        self.lossf = torch.nn.BCEWithLogitsLoss()
        self.amp = amp and cuda
        self.graphed = None
        if cuda_graph:
            from emm_lib.graphed import GraphedTrainStep
            from emm_lib.train import train_step

            self.graphed = GraphedTrainStep(self.fast_model, self.opt, self.split, batch_size, amp=self.amp,
                                            step=train_step)
        self.gen = torch.Generator().manual_seed(0)
        self.loaders: dict = {}
        self.offsets = self.model.embedding.offsets.tolist()

    def _cuda_clock(self) -> float:
        self.torch.cuda.synchronize()
        return time.perf_counter()

    def step(self, m, b) -> None:  # the published training step
        self.opt.zero_grad(set_to_none=True)
        self.lossf(m(b), b.y).backward()
        self.opt.step()

    def our_step(self, m, b) -> None:  # fit()'s step
        from emm_lib.train import train_step

        train_step(m, self.opt, b, amp=self.amp)

    def set_fast(self, flag: bool) -> None:
        if hasattr(self.model, "fast"):
            self.model.fast = flag

    def timed_steps(self, batches, m, to_batch=lambda b: b, step=None) -> float:
        step = step or self.step
        gc.collect()
        t0 = None
        for i, b in enumerate(batches):
            if i == self.warm:
                t0 = self.clock()
            if i == self.warm + self.n_batches:
                break
            step(m, to_batch(b))
        return self.clock() - t0

    def ours(self) -> tuple[float, float]:
        from emm_lib.train import predict

        torch, split, dev, bs = self.torch, self.split, self.dev, self.batch_size
        self.set_fast(True)
        self.model.train()
        if self.graphed is None:
            t_train = self.timed_steps(split.batches(bs, shuffle=True, generator=self.gen), self.fast_model,
                                       step=self.our_step)
        else:  # the graph gathers the batch itself, from the rows' indices
            t_train = self.timed_steps(split.batch_indices(bs, self.gen), None, step=lambda _, idx: self.graphed(idx))
        rows = split.subset(torch.arange(self.n_rows, device=dev))
        predict(self.fast_model, split.subset(torch.arange(bs, device=dev)))  # warm-up
        t0 = self.clock()
        torch.sigmoid(predict(self.fast_model, rows)).tolist()
        return t_train, self.clock() - t0

    def per_feature_embedding(self, batch):
        """The published EmbeddingLayer: one lookup per sparse feature (its own table; here its
        rows of our shared table), one column per dense feature, concatenated."""
        torch, emb = self.torch, self.model.embedding
        parts = [torch.nn.functional.embedding(batch.sparse[:, i], emb.table.weight[o:o + f.cardinality])
                 for i, (f, o) in enumerate(zip(emb.spec.sparse, self.offsets))]
        parts += [batch.dense[:, j].unsqueeze(1) for j in range(batch.dense.shape[1])]
        return torch.cat(parts, dim=1)

    def _build_loaders(self) -> None:
        """The published pipeline's data path: numpy columns, one dict per row."""
        from torch.utils.data import DataLoader, Dataset, Subset

        from emm_lib.data.types import Batch

        torch, dev, tr, spec = self.torch, self.dev, self.ds.train, self.ds.spec
        names_s, names_d = [f.name for f in spec.sparse], list(spec.dense)
        cols = {n: tr.sparse[:, i].numpy().copy() for i, n in enumerate(names_s)}
        cols.update({n: tr.dense[:, i].numpy().copy() for i, n in enumerate(names_d)})
        ys = self.split.y.cpu().numpy().copy()

        class RowDataset(Dataset):
            def __len__(self):
                return len(ys)

            def __getitem__(self, i):
                return {n: c[i] for n, c in cols.items()}, ys[i]

        def to_batch(feats, y) -> Batch:
            return Batch(torch.stack([feats[n] for n in names_s], 1).long().to(dev),
                         torch.stack([feats[n] for n in names_d], 1).float().to(dev), y.float().to(dev))

        self.loaders["train"] = DataLoader(RowDataset(), batch_size=self.batch_size, shuffle=True, num_workers=0)
        self.loaders["infer"] = DataLoader(Subset(RowDataset(), range(self.n_rows)), batch_size=self.batch_size,
                                           shuffle=False, num_workers=0)
        self.loaders["batch"] = to_batch

    def per_row(self) -> tuple[float, float]:
        if not self.loaders:
            self._build_loaders()
        model, batch = self.model, self.loaders["batch"]
        self.set_fast(False)
        model.embedding.forward = self.per_feature_embedding  # the published input layer, same values
        model.train()
        t_train = self.timed_steps(self.loaders["train"], model, lambda fy: batch(*fy))
        model.eval()
        with self.torch.no_grad():
            preds = []
            t0 = None
            for i, (feats, y) in enumerate(self.loaders["infer"]):
                if i == 1:  # the first batch is a warm-up
                    t0, n_timed = self.clock(), self.n_rows - len(y)
                preds.extend(self.torch.sigmoid(model(batch(feats, y))).tolist())
        self.set_fast(True)
        del model.embedding.forward
        return t_train, (self.clock() - t0) * self.n_rows / n_timed

    def warm_up(self) -> None:
        """Allocator, lazily built caches, compilation (and the CUDA graph's capture), not timed."""
        torch, dev, bs = self.torch, self.dev, self.batch_size
        self.set_fast(True)
        self.model.train()
        for b in list(self.split.subset(torch.arange(4 * bs, device=dev)).batches(bs)):
            self.our_step(self.fast_model, b)
        if self.graphed is not None:
            for idx in torch.arange(6 * bs, device=dev).split(bs):
                self.graphed(idx)
