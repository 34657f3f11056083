"""fit()'s training step as one CUDA graph: captured once, then replayed for every full batch.

On a GPU these models are launch-bound: an EMM step at batch 1024 is ~1,500 small kernels, each
launched by Python and the dispatcher, so the GPU mostly waits for the host (measured on an
H200: the eager step trains EMM *slower* than two CPU cores). A CUDA graph records the whole
step once -- the batch's gather from the split (which lives on the device), forward, backward
and the fused Adam -- and one ``replay()`` launches all of it. The replay runs the same kernels on
the same memory, so training is the same as with :func:`emm_lib.train.train_step`
(``tests/method/test_graphed.py``, CUDA only). The rows of a batch enter through a static index buffer;
a batch of another size (the epoch's last) runs eagerly.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .data.types import Split
from .models.base import MultiTaskModel

__all__ = ["GraphedTrainStep"]


class GraphedTrainStep:
    """``step(model, opt, split.gather(idx), amp)`` for row indices ``idx`` of ``split``, where ``step`` is
    :func:`emm_lib.train.train_step` (passed in: this module sits below ``train``).

    The first ``warmup`` full batches run eagerly on a side stream (they create Adam's state and
    the lazily built caches, as capture requires); the next one is captured, and every later full
    batch is a replay. The returned loss of a replay is the graph's output buffer: read it (e.g.
    add it to a running total) before the next call overwrites it.
    """

    def __init__(self, model: MultiTaskModel, opt: torch.optim.Optimizer, split: Split, batch_size: int,
                 amp: bool = False, warmup: int = 3, *, step: Callable[..., Tensor]) -> None:
        if split.device.type != "cuda":
            raise ValueError(f"CUDA graphs need the training split on a CUDA device; it is on {split.device}. "
                             "Move it with split.to('cuda'), or train without cuda_graph=True.")
        if batch_size < 2:
            raise ValueError(f"A graphed step needs batch_size >= 2 (BatchNorm), got {batch_size}.")
        self._train_step = step
        self.model, self.opt, self.split, self.amp = model, opt, split, amp
        self.batch_size, self._warmup = batch_size, warmup
        self._idx = torch.zeros(batch_size, dtype=torch.long, device=split.device)
        self._graph: torch.cuda.CUDAGraph | None = None
        self._loss: Tensor | None = None
        self.replays = 0

    def _step(self, idx: Tensor) -> Tensor:
        # Detached: a loss kept alive keeps its autograd graph, whose AccumulateGrad nodes then sit
        # on the warm-up's side stream when the next step runs.
        return self._train_step(self.model, self.opt, self.split.gather(idx), self.amp).detach()

    def _capture(self) -> None:
        self.opt.zero_grad(set_to_none=True)  # the graph's backward allocates the gradients in its own pool
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self._loss = self._step(self._idx)
        except RuntimeError as exc:
            raise RuntimeError(f"{type(self.model).__name__}'s training step could not be captured as a CUDA "
                               f"graph ({exc}). Train it without cuda_graph=True.") from exc
        self._graph = graph

    def __call__(self, idx: Tensor) -> Tensor:
        """One optimisation step on the rows ``idx`` of the split; returns the loss."""
        if idx.shape[0] != self.batch_size:
            return self._step(idx)
        self._idx.copy_(idx)
        if self._graph is None:
            if self._warmup > 0:
                self._warmup -= 1
                side = torch.cuda.Stream(device=self._idx.device)
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    loss = self._step(self._idx)
                torch.cuda.current_stream().wait_stream(side)
                return loss
            self._capture()
        self._graph.replay()
        self.replays += 1
        return self._loss
