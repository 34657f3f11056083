"""Containers for multi-task tabular data: feature spec, splits, batches, datasets.

A split is converted to tensors once; training takes batches by slicing a
shuffled index (no per-row Python, no collate), see :meth:`Split.batches`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Mapping, NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = ["SparseFeature", "FeatureSpec", "Batch", "Split", "Dataset"]


@dataclass(frozen=True)
class SparseFeature:
    """A label-encoded categorical column; index 0 is reserved for unseen values."""

    name: str
    cardinality: int


@dataclass(frozen=True)
class FeatureSpec:
    """What a model's embedding layer needs to know about the input columns."""

    sparse: tuple[SparseFeature, ...]
    dense: tuple[str, ...]

    @property
    def n_sparse(self) -> int:
        return len(self.sparse)

    @property
    def n_dense(self) -> int:
        return len(self.dense)

    def to_dict(self) -> dict:
        return {
            "sparse": [[f.name, f.cardinality] for f in self.sparse],
            "dense": list(self.dense),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "FeatureSpec":
        return cls(
            sparse=tuple(SparseFeature(str(n), int(c)) for n, c in d["sparse"]),
            dense=tuple(str(x) for x in d["dense"]),
        )


class Batch(NamedTuple):
    """One mini-batch: ``sparse`` (B, n_sparse) long, ``dense`` (B, n_dense) float,
    ``y`` (B, n_tasks) float 0/1 in the split's task order."""

    sparse: Tensor
    dense: Tensor
    y: Tensor


@dataclass
class Split:
    """One split (train, val or test) held as tensors, row-major (made contiguous).

    ``y`` holds one column per task, in the order of ``tasks``.
    """

    sparse: Tensor
    dense: Tensor
    y: Tensor
    tasks: tuple[str, ...]
    spec: FeatureSpec | None = None  # set by Dataset: lets evaluate() check a model against the data

    def __post_init__(self) -> None:
        self.tasks = tuple(self.tasks)
        # Row-major: a batch gathers whole rows (a column-major split, as from a Fortran-ordered
        # numpy array, made each shuffled batch ~3x slower to gather). Same values.
        self.sparse, self.dense, self.y = (t.contiguous() for t in (self.sparse, self.dense, self.y))
        n = self.sparse.shape[0]
        if self.sparse.dim() != 2 or self.dense.dim() != 2 or self.y.dim() != 2:
            raise ValueError("Split tensors must be 2-D: sparse (N, S), dense (N, D), y (N, T).")
        if self.dense.shape[0] != n or self.y.shape[0] != n:
            raise ValueError(
                f"Split tensors disagree on the number of rows: sparse {n}, "
                f"dense {self.dense.shape[0]}, y {self.y.shape[0]}."
            )
        if self.y.shape[1] != len(self.tasks):
            raise ValueError(f"y has {self.y.shape[1]} columns but {len(self.tasks)} tasks were named.")

    def __len__(self) -> int:
        return int(self.sparse.shape[0])

    @property
    def labels(self) -> dict[str, Tensor]:
        """Task name -> 1-D tensor of 0/1 labels."""
        return {t: self.y[:, i] for i, t in enumerate(self.tasks)}

    @property
    def device(self) -> torch.device:
        return self.sparse.device

    def to(self, device: torch.device | str) -> "Split":
        device = torch.device(device)
        if self.device == device:
            return self
        return Split(self.sparse.to(device), self.dense.to(device), self.y.to(device), self.tasks, self.spec)

    def select_tasks(self, tasks: tuple[str, ...] | list[str]) -> Tensor:
        """The label columns of ``tasks`` (in that order) as a (N, len(tasks)) tensor."""
        missing = [t for t in tasks if t not in self.tasks]
        if missing:
            raise ValueError(f"Task(s) {missing} are not in this split; it has {list(self.tasks)}.")
        idx = [self.tasks.index(t) for t in tasks]
        if idx == list(range(len(self.tasks))):
            return self.y
        return self.y[:, idx]

    def subset(self, index: Tensor) -> "Split":
        return Split(self.sparse[index], self.dense[index], self.y[index], self.tasks, self.spec)

    def batches(
        self,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
    ) -> Iterator[Batch]:
        """Yield batches by slicing a (shuffled) index, no per-row work.

        Shuffled batches gather their rows from the split by their slice of one permutation (the
        split is never copied whole: peak memory stays one batch above the split itself).
        """
        if not shuffle:
            for i in range(0, self._stop(batch_size, drop_last), batch_size):
                yield Batch(self.sparse[i : i + batch_size], self.dense[i : i + batch_size], self.y[i : i + batch_size])
            return
        for idx in self.batch_indices(batch_size, generator, drop_last):
            yield self.gather(idx)

    def batch_indices(self, batch_size: int, generator: torch.Generator | None = None,
                      drop_last: bool = False) -> Iterator[Tensor]:
        """The row indices of :meth:`batches` with ``shuffle=True``: slices of one permutation
        (drawn on the CPU with ``generator``, then moved to the split's device)."""
        stop = self._stop(batch_size, drop_last)
        perm = torch.randperm(len(self), generator=generator, device="cpu").to(self.device)
        for i in range(0, stop, batch_size):
            yield perm[i : i + batch_size]

    def _stop(self, batch_size: int, drop_last: bool) -> int:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        return len(self) - (len(self) % batch_size) if drop_last else len(self)

    def gather(self, idx: Tensor) -> Batch:
        """The rows ``idx`` as a :class:`Batch`."""
        return Batch(self.sparse.index_select(0, idx), self.dense.index_select(0, idx), self.y.index_select(0, idx))

    @classmethod
    def from_numpy(
        cls, sparse: np.ndarray, dense: np.ndarray, y: np.ndarray, tasks: tuple[str, ...]
    ) -> "Split":
        """Build from numpy arrays (copied, so read-only pandas arrays are fine)."""
        return cls(
            torch.from_numpy(np.array(sparse, dtype=np.int64, copy=True)),
            torch.from_numpy(np.array(dense, dtype=np.float32, copy=True)),
            torch.from_numpy(np.array(y, dtype=np.float32, copy=True)),
            tuple(tasks),
        )


@dataclass
class Dataset:
    """A multi-task dataset: three splits, its feature spec and facts about it."""

    name: str
    tasks: tuple[str, ...]
    spec: FeatureSpec
    train: Split
    val: Split
    test: Split
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tasks = tuple(self.tasks)
        for name in ("train", "val", "test"):
            sp: Split = getattr(self, name)
            if sp.tasks != self.tasks:
                raise ValueError(f"Dataset {self.name!r}: the {name} split has tasks {list(sp.tasks)} but the "
                                 f"dataset names {list(self.tasks)}.")
            if (sp.sparse.shape[1], sp.dense.shape[1]) != (self.spec.n_sparse, self.spec.n_dense):
                raise ValueError(f"Dataset {self.name!r}: the {name} split has {sp.sparse.shape[1]} sparse + "
                                 f"{sp.dense.shape[1]} dense columns but the spec names {self.spec.n_sparse} + "
                                 f"{self.spec.n_dense}.")
            if sp.spec != self.spec:
                setattr(self, name, Split(sp.sparse, sp.dense, sp.y, sp.tasks, self.spec))

    def splits(self) -> dict[str, Split]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def to(self, device: torch.device | str) -> "Dataset":
        return Dataset(
            self.name, self.tasks, self.spec,
            self.train.to(device), self.val.to(device), self.test.to(device), dict(self.info),
        )

    def summary(self):
        """Rows and positive rate per split and task, as a DataFrame."""
        import pandas as pd

        rows = []
        for sname, s in self.splits().items():
            for t, lab in s.labels.items():
                rows.append({"split": sname, "task": t, "rows": len(s),
                             "positive_rate": float(lab.float().mean()) if len(s) else float("nan")})
        return pd.DataFrame(rows)
