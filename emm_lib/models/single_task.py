"""The trained single-task models that EMM fuses (paper Sec. IV; authors' Census setting)."""
from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from ..data.types import Batch, FeatureSpec
from ..features import FeatureEmbedding
from .base import MultiTaskModel, mlp, register_model

__all__ = ["SingleTaskMLP"]


@register_model("single_task")
class SingleTaskMLP(MultiTaskModel):
    """embedding -> body -> tower -> logit, for one task.

    The body is ``n_blocks`` repetitions of an MLP block of ``block`` widths, as one
    flat ``nn.Sequential`` of Linear/BatchNorm/ReLU(/Dropout) layers, every block used
    (the authors' code skips its third block). TM-1 on Census: ``block=(8, 8)``;
    TM-2: ``block=(16, 8)``; 3 blocks; tower (8,); embedding dim 4.

    ``block3_skipped=True`` replays the authors' defect (protocol flag ``tm_block3_skipped``,
    EMM-method.md Sec. 6): the forward applies the second-to-last block twice and never the
    last, which keeps its initial weights (and is what EMM's last level then reuses).
    """

    def __init__(
        self,
        spec: FeatureSpec,
        tasks: Sequence[str] | str,
        block: Sequence[int] = (16, 8),
        n_blocks: int = 3,
        tower: Sequence[int] = (8,),
        embedding_dim: int = 4,
        dropout: float = 0.0,
        block3_skipped: bool = False,
    ) -> None:
        tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
        if len(tasks) != 1:
            raise ValueError(f"SingleTaskMLP models exactly one task, got {list(tasks)}.")
        super().__init__(spec, tasks)
        if n_blocks < 1 or not block:
            raise ValueError("SingleTaskMLP needs n_blocks >= 1 and a non-empty block width list.")
        if block3_skipped and n_blocks < 3:
            raise ValueError(f"block3_skipped repeats block n_blocks-1 in place of the last; it needs "
                             f"n_blocks >= 3, got {n_blocks}.")
        self.config = dict(block=list(block), n_blocks=n_blocks, tower=list(tower),
                           embedding_dim=embedding_dim, dropout=dropout)
        if block3_skipped:
            self.config["block3_skipped"] = True
        self.embedding = FeatureEmbedding(spec, embedding_dim)
        self.body = mlp(self.embedding.out_features, list(block) * n_blocks, dropout)
        self.body.spec = spec  # what the body reads, so EMM.from_trained can check a body passed alone
        out = block[-1]
        self.tower = nn.Sequential(*mlp(out, tower, dropout), nn.Linear(tower[-1] if tower else out, 1))

    @property
    def task(self) -> str:
        return self.tasks[0]

    def forward(self, batch: Batch) -> Tensor:
        if self.config.get("block3_skipped"):
            per = len(self.body) // self.config["n_blocks"]  # layers per block
            h = self.body[: -per](self.embedding(batch))
            return self.tower(self.body[-2 * per: -per](h))
        return self.tower(self.body(self.embedding(batch)))
