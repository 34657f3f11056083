"""Efficiency measures of a multi-task model (the paper calls EMM "efficient", Sec. I and III).

Three measures, each a small function:

* :func:`parameter_counts`: total, trainable, frozen and embedding parameters (from
  :func:`emm_lib.models.parameter_table`);
* :func:`inference_rows_per_second`: rows per second of a forward pass over a split
  (eval mode, no autograd), the median of a few timed passes;
* :func:`training_wall_time`: seconds to obtain each multi-task model, with and without the
  single-task models' training counted. EMM fuses *trained* single-task models; when they
  exist already (the reuse scenario the method is for) they come for free, otherwise their
  training is part of EMM's cost.
"""
from __future__ import annotations

import sys

import statistics
import time
from typing import Iterable, Mapping

import pandas as pd
import torch
from torch import nn

from . import config
from .data.types import Split
from .models.summary import parameter_table
from .utils import resolve_device

__all__ = ["parameter_counts", "parameter_table", "inference_rows_per_second", "training_wall_time", "REUSING",
           "process_peak_rss_mb"]

# Study labels (emm_lib.study.VARIANTS) whose components start from the trained single-task models.
REUSING = tuple(label for label, (kind, opts) in config.VARIANTS.items()
                if kind == "emm" and opts.get("pretrained", True))

_clock = time.perf_counter  # module attribute, so tests can drive a fake clock


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Total, trainable, frozen, embedding and non-embedding parameters of one model."""
    row = parameter_table({"model": model}).iloc[0]
    return {k: int(row[k]) for k in ("total", "trainable", "frozen", "embedding", "non_embedding")}


def inference_rows_per_second(model: nn.Module, split: Split, batch_size: int = 8192, passes: int = 5,
                              warmup: int = 1, device: str | torch.device = "auto") -> float:
    """Median rows/s of full forward passes over ``split`` in eval mode without autograd.

    ``warmup`` untimed passes come first (allocator, kernel selection). The model is moved to
    ``device`` for the measurement and then back; its train/eval mode is restored.
    """
    if passes < 1 or warmup < 0 or batch_size < 1:
        raise ValueError(f"Need passes >= 1, warmup >= 0, batch_size >= 1; got {passes}, {warmup}, {batch_size}.")
    if len(split) == 0:
        raise ValueError("The split has no rows to time; give a non-empty split.")
    dev = resolve_device(device)
    params = list(model.parameters())
    home = params[0].device if params else torch.device("cpu")
    was_training = model.training
    model.to(dev).eval()
    data = split.to(dev)
    seconds = []
    try:
        with torch.inference_mode():
            for i in range(warmup + passes):
                t0 = _clock()
                for batch in data.batches(batch_size):
                    model(batch)
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                if i >= warmup:
                    seconds.append(_clock() - t0)
    finally:
        model.to(home).train(was_training)
    return len(split) / statistics.median(seconds)


def training_wall_time(runs: pd.DataFrame, single_task: pd.DataFrame,
                       reusing: Iterable[str] = REUSING) -> pd.DataFrame:
    """Seconds to obtain each multi-task model, per (dataset, model, seed).

    ``runs`` and ``single_task`` are result tables (:mod:`emm_lib.study.shared.results` format; a run's
    rows share its ``train_seconds``; a rerun counts once, the last). Columns returned:
    ``seconds_model`` (the multi-task model's own training: the reuse scenario),
    ``seconds_single_task`` (the single-task models of the same dataset and seed, counted
    for the models in ``reusing`` only, else 0) and ``seconds_with_single_task`` (the sum).
    """
    reusing = set(reusing)
    need = {"dataset", "model", "seed", "train_seconds"}
    for name, df in (("runs", runs), ("single_task", single_task)):
        if not need <= set(df.columns):
            raise ValueError(f"{name} lacks columns {sorted(need - set(df.columns))}; pass a results table "
                             "(emm_lib.study.shared.results.read).")
    keys = ["dataset", "model", "seed"]
    mt = runs.drop_duplicates(keys, keep="last")[keys + ["train_seconds"]].rename(
        columns={"train_seconds": "seconds_model"})
    st = (single_task.drop_duplicates(keys, keep="last").groupby(["dataset", "seed"]).train_seconds.sum()
          .rename("seconds_single_task").reset_index())
    out = mt.merge(st, on=["dataset", "seed"], how="left")
    uses = out.model.isin(reusing)
    missing = out[uses & out.seconds_single_task.isna()]
    if len(missing):
        pairs = sorted(set(zip(missing.dataset, missing.seed)))
        raise ValueError(f"No single-task runs for (dataset, seed) {pairs}, which {sorted(set(missing.model))} "
                         "reuse; pass the single_task.csv of the same study.")
    out["seconds_single_task"] = out.seconds_single_task.where(uses, 0.0).astype(float)
    out["seconds_with_single_task"] = out.seconds_model + out.seconds_single_task
    return out.reset_index(drop=True)


def process_peak_rss_mb() -> float | None:
    """The process's memory high-water mark so far (MB; Linux/macOS), data generation included.
    On Linux a child process starts from its parent's mark at fork: start runs from a small parent
    (a shell, ``python -m emm_lib.study``, a Ray worker) for the number to be the run's own."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)
