"""A multi-task trainer: Adam, BCE on logits per task, early stopping on validation mean AUC.

Paper Sec. IV-A: Adam, batch 1024, lr 1e-3, weight decay 1e-6 (Census). Model selection
uses the validation split only; the test split is evaluated once by the caller.
"""
from __future__ import annotations

import contextlib
import copy
import math
import numbers
import os
import sys
import threading
import time
from dataclasses import dataclass, field

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from .checks import check_device, check_fit_inputs, check_split
from .data.types import Batch, Dataset, Split
from .graphed import GraphedTrainStep
from .metrics import auc
from .models.base import MultiTaskModel
from .train_state import TrainState, fingerprint
from .utils import resolve_device, seed_everything

__all__ = ["FitResult", "fit", "evaluate", "predict", "train_step", "flush_denormals", "set_threads"]


@dataclass
class FitResult:
    """What :func:`fit` returns: per-epoch history, the selected epoch and its validation AUC."""

    history: pd.DataFrame
    best_epoch: int
    best_val_auc: dict[str, float]
    seconds: float
    device: str
    settings: dict = field(default_factory=dict)


_flushing = threading.local()  # how deep this thread is in flush_denormals (the CPU flag is per thread)


@contextlib.contextmanager
def flush_denormals(dev: torch.device):
    """On CPU, subnormal floats (below 1.2e-38) flushed to zero inside (FTZ/DAZ); yields whether it is on.

    Late in a long run, weights that the data no longer move and their Adam moments decay into the
    subnormal range. CPUs that handle subnormals in microcode slow every matrix product touching them:
    measured on a 2-core Intel Xeon (AVX-512), a 10^7-row TM-1's epochs went from 81 s to ~1,400 s once
    most of its units had died (``benchmarks/bench_denormals.py``: 4.8x per step). Flushing changes only
    values below 1.2e-38. It applies to the calling thread, which runs every op at fit()'s default of
    one CPU thread; afterwards it is off again (torch's default). With more threads, torch's OpenMP
    threads keep the flag they started with: :func:`set_threads`, which fit()'s ``cpu_threads`` and the
    study use, starts them flushed (the benchmark's docstring has the measurement)."""
    depth = getattr(_flushing, "depth", 0)  # nested (fit's validation calls predict): the outermost resets
    if dev.type != "cpu" or (depth == 0 and not torch.set_flush_denormal(True)):
        yield False
        return
    _flushing.depth = depth + 1
    try:
        yield True
    finally:
        _flushing.depth = depth
        if depth == 0:
            torch.set_flush_denormal(False)


def set_threads(n: int) -> None:
    """torch's CPU threads for this process. With several, the subnormal flush (:func:`flush_denormals`)
    is set while torch's OpenMP threads are started, so they keep it for good: a thread takes the flag
    of the one that creates it, and fit() sets it on the calling thread only. The calling thread's flag
    is left as it was. Threads started earlier in the process keep theirs."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"CPU threads must be a positive whole number, e.g. 1 or 2; got {n!r}.")
    was = torch.tensor([1e-39]).mul(1.0).item() == 0.0  # flushed now (a one-element op runs here)
    torch.set_num_threads(int(n))
    if n > 1 and torch.set_flush_denormal(True):
        torch.ones(1 << 20).mul_(1.0)  # a parallel op: the pool exists, every thread flushed
        torch.set_flush_denormal(was)


@torch.no_grad()
def predict(model: MultiTaskModel, split: Split, batch_size: int = 8192) -> Tensor:
    """Logits (N, n_tasks) for a whole split, in eval mode, batched (subnormals flushed on CPU)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    split = split.to(device)
    with flush_denormals(device):
        out = [model(b).float() for b in split.batches(batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, len(model.tasks))


def evaluate(model: MultiTaskModel, split: Split, batch_size: int = 8192) -> dict[str, float]:
    """AUC per task of ``model`` on ``split``."""
    check_split(model, split, "evaluate()")  # tasks, feature spec, index ranges, finite values
    logits = predict(model, split, batch_size)
    y = split.select_tasks(model.tasks)
    return {t: auc(y[:, i], logits[:, i].cpu(), task=t) for i, t in enumerate(model.tasks)}


def _loss(model: MultiTaskModel, batch: Batch, y: Tensor) -> Tensor:
    logits = model(batch)
    # Sum over tasks of the per-task mean BCE.
    loss = F.binary_cross_entropy_with_logits(logits.float(), y, reduction="none").mean(0).sum()
    extra = model.auxiliary_loss(logits, batch)
    return loss + extra if extra is not None else loss


def _adam_step(opt: torch.optim.Adam) -> None:
    """``opt.step()`` for fit()'s fused Adam: the same ``torch._fused_adam_`` call with the same
    arguments as ``Adam.step`` (one device and dtype, no AMSGrad, no hooks), without its per-step
    Python (option checks, grouping tensors by device and dtype): ~0.1 ms less per step on CPU,
    bit-identical. Falls back to ``opt.step()`` on the first step (state not yet created) and
    for any other setting."""
    (group,) = opt.param_groups
    params = [p for p in group["params"] if p.grad is not None]
    states = [opt.state.get(p) for p in params]
    plain = group["fused"] and not (group["amsgrad"] or group["maximize"] or group["capturable"]
                                    or group["differentiable"] or group["decoupled_weight_decay"])
    if not (params and plain and all(states) and isinstance(group["lr"], float)
            and len({(p.device, p.dtype) for p in params}) == 1 and not any(p.is_complex() for p in params)):
        opt.step()
        return
    steps = [s["step"] for s in states]
    torch._foreach_add_(steps, 1)
    beta1, beta2 = group["betas"]
    torch._fused_adam_(params, [p.grad for p in params], [s["exp_avg"] for s in states],
                       [s["exp_avg_sq"] for s in states], [], steps, amsgrad=False, lr=group["lr"],
                       beta1=float(beta1), beta2=float(beta2), weight_decay=group["weight_decay"],
                       eps=group["eps"], maximize=False, grad_scale=None, found_inf=None)


def train_step(model: MultiTaskModel, opt: torch.optim.Adam, batch: Batch, amp: bool = False) -> Tensor:
    """One optimisation step of :func:`fit` on ``batch`` (``amp``: bfloat16 autocast, CUDA); returns the loss."""
    opt.zero_grad(set_to_none=True)
    # No cast cache: a CUDA graph capture (``graphed``) must not keep casts made outside it.
    with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=amp, cache_enabled=False):
        loss = _loss(model, batch, batch.y)
    loss.backward()
    _adam_step(opt)
    return loss


def fit(
    model: MultiTaskModel,
    dataset: Dataset,
    *,
    epochs: int = 10,
    batch_size: int = 1024,
    lr: float = 1e-3,
    weight_decay: float = 1e-6,
    patience: int | None = 5,
    seed: int = 0,
    device: str | torch.device = "auto",
    amp: bool = False,
    progress: bool = False,
    max_train_rows: int | None = None,
    eval_batch_size: int = 8192,
    cpu_threads: int | None = 1,
    restore_best: bool = True,
    cuda_graph: bool = False,
    resume_path: str | os.PathLike | None = None,
    resume_tag: str = "",
    resume_every_s: float = 300.0,
) -> FitResult:
    """Train ``model`` on ``dataset.train``; select the epoch with the best validation mean AUC.

    The best weights are restored into ``model`` at the end. ``amp`` uses bfloat16 autocast on
    CUDA only (ignored on CPU). ``max_train_rows`` subsamples the training split (seeded), for
    quick runs. ``cpu_threads`` (default 1) caps torch's threads while training on CPU: these
    models are small, and intra-op threads cost more than they give (and collapse when another
    process holds the other core); ``None`` keeps torch's setting. ``restore_best=False`` keeps
    the last epoch's weights instead (protocol flag ``final_epoch_weights``; ``best_epoch`` is
    then the last epoch, the one returned). ``cuda_graph`` replays the training step as one CUDA
    graph (:class:`~emm_lib.graphed.GraphedTrainStep`: the same training, several times faster
    for these launch-bound models; CUDA only, ignored on CPU). On CPU, subnormal floats are flushed to
    zero (:func:`flush_denormals`; recorded in the result's settings). ``resume_path`` keeps the run's state
    there between epochs (:class:`~emm_lib.train_state.TrainState`, written at most every
    ``resume_every_s`` seconds): a call that finds a state of the same run (same settings, model shapes,
    split sizes and ``resume_tag``) continues after its epoch; the file is removed when the run ends.
    Returns a :class:`FitResult`; the test split is left for the caller.
    """
    check_device(device)
    dev = resolve_device(device)
    with _cpu_threads(dev, cpu_threads), flush_denormals(dev) as flushed:
        # Settings, model against data, and one pass over the training and validation tensors.
        check_fit_inputs(model, dataset, batch_size, max_train_rows, epochs, patience)
        if epochs < 1 or batch_size < 1 or lr <= 0 or weight_decay < 0:
            raise ValueError(f"Need epochs >= 1, batch_size >= 1, lr > 0, weight_decay >= 0; got "
                             f"epochs={epochs}, batch_size={batch_size}, lr={lr}, weight_decay={weight_decay}.")
        gen = seed_everything(seed)
        run = _prepare(model, dataset, dev, gen, lr, weight_decay, batch_size, max_train_rows,
                       amp and dev.type == "cuda", cuda_graph and dev.type == "cuda")
        used = dict(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, patience=patience,
                    seed=seed, amp=run.amp, max_train_rows=max_train_rows)
        saver = TrainState(resume_path, fingerprint(model, {**used, "restore_best": restore_best}, len(run.train),
                                                    len(run.val), resume_tag), resume_every_s)
        t_start = time.perf_counter()
        history, stop, before = _epochs(run, epochs, patience, eval_batch_size, progress, saver)
        saver.clear()
        return _result(run, history, stop, restore_best, used, before + time.perf_counter() - t_start, dev, flushed)


def _result(run: "_Run", history: pd.DataFrame, stop: "_EarlyStopping", restore_best: bool, used: dict,
            seconds: float, dev: torch.device, flushed: bool = False) -> FitResult:
    """The best epoch's weights restored into the model (unless ``restore_best`` is off), as a FitResult."""
    model = run.model
    if restore_best:
        model.load_state_dict(stop.best_state)
    best_epoch = stop.best_epoch if restore_best else int(history.epoch.iloc[-1])
    best_row = history.loc[history.epoch == best_epoch].iloc[0]
    return FitResult(
        history=history, best_epoch=best_epoch,
        best_val_auc={t: float(best_row[f"val_auc_{t}"]) for t in model.tasks},
        seconds=seconds, device=str(dev),
        settings=dict(**used, threads=torch.get_num_threads() if dev.type == "cpu" else None,
                      **({} if restore_best else {"restore_best": False}),
                      **({"cuda_graph": True} if run.graphed is not None else {}),
                      **({"flush_denormal": True} if flushed else {})),
    )


@contextlib.contextmanager
def _cpu_threads(dev: torch.device, threads: int | None):
    """torch's intra-op threads set to ``threads`` while training on CPU (``None``: left alone)."""
    if dev.type != "cpu" or threads is None:
        yield
        return
    old = torch.get_num_threads()
    set_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@dataclass
class _Run:
    """What one :func:`fit` trains with: the model, its optimiser and the splits on the device."""

    model: MultiTaskModel
    opt: torch.optim.Adam
    train: Split
    val: Split
    gen: torch.Generator
    batch_size: int
    amp: bool
    graphed: GraphedTrainStep | None


def _prepare(model: MultiTaskModel, dataset: Dataset, dev: torch.device, gen: torch.Generator, lr: float,
             weight_decay: float, batch_size: int, max_train_rows: int | None, amp: bool, graph: bool) -> _Run:
    model.to(dev)
    train, val = _training_split(model, dataset, gen, max_train_rows).to(dev), dataset.val.to(dev)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("The model has no trainable parameters.")
    # Fused Adam: one kernel for all parameters (4x cheaper step than the for-loop on CPU).
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    graphed = GraphedTrainStep(model, opt, train, batch_size, amp, step=train_step) if graph else None
    return _Run(model, opt, train, val, gen, batch_size, amp, graphed)


def _epochs(run: _Run, epochs: int, patience: int | None, eval_batch_size: int, progress: bool,
            saver: TrainState) -> tuple[pd.DataFrame, "_EarlyStopping", float]:
    """Train epoch by epoch, validating after each, until ``epochs`` or early stopping; from the
    saved state's next epoch when ``saver`` has one. Also returns the seconds spent before resuming."""
    rows, stop, first, before = [], _EarlyStopping(patience), 1, 0.0
    state = saver.load()
    if state is not None:
        TrainState.restore(state, run.model, run.opt, run.gen)
        rows, first, before = list(state["rows"]), state["epoch"] + 1, state["seconds"]
        stop.set_record(state["best"])
    t_start = time.perf_counter()
    bar = _progress_bar(run.model, epochs) if progress else None
    if bar is not None and first > 1:
        bar.update(first - 1)
    for epoch in range(first, epochs + 1):
        t0 = time.perf_counter()
        train_loss = _train_epoch(run.model, run.opt, run.train, run.batch_size, run.gen, run.amp, epoch,
                                  run.graphed)
        val_auc = evaluate(run.model, run.val, eval_batch_size)
        mean_auc = sum(val_auc.values()) / len(val_auc)
        rows.append({"epoch": epoch, "train_loss": train_loss,
                     **{f"val_auc_{t}": a for t, a in val_auc.items()},
                     "val_auc_mean": mean_auc, "seconds": time.perf_counter() - t0})
        done = stop.update(epoch, mean_auc, run.model)
        if not done and epoch < epochs:
            saver.save(epoch, run.model, run.opt, run.gen, rows, stop.record(),
                       before + time.perf_counter() - t_start)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{train_loss:.4f}", val_auc=f"{mean_auc:.4f}")
        if done:
            break
    if bar is not None:
        bar.close()
    return pd.DataFrame(rows), stop, before


def _training_split(model: MultiTaskModel, dataset: Dataset, gen: torch.Generator,
                    max_train_rows: int | None) -> Split:
    """The training rows (a seeded subsample when ``max_train_rows``) with the model's tasks' labels."""
    train = dataset.train
    if max_train_rows is not None and max_train_rows < len(train):
        train = train.subset(torch.randperm(len(train), generator=gen)[:max_train_rows])
    return Split(train.sparse, train.dense, train.select_tasks(model.tasks), model.tasks)


def _train_epoch(model: MultiTaskModel, opt: torch.optim.Adam, train: Split, batch_size: int,
                 gen: torch.Generator, amp: bool, epoch: int, graphed: GraphedTrainStep | None = None) -> float:
    """One pass over shuffled batches; the mean training loss (one host sync per epoch)."""
    model.train()
    total, n_batches = torch.zeros((), device=train.dense.device), 0
    for idx in train.batch_indices(batch_size, generator=gen):
        if idx.shape[0] < 2:  # BatchNorm cannot train on a single row
            continue
        loss = graphed(idx) if graphed is not None else train_step(model, opt, train.gather(idx), amp)
        total += loss.detach()
        n_batches += 1
    loss = float(total) / max(n_batches, 1)
    if not math.isfinite(loss):
        raise FloatingPointError(f"Training loss became {loss} at epoch {epoch}; lower the learning rate.")
    return loss


class _EarlyStopping:
    """Keeps the weights of the epoch with the best mean validation AUC; says when to stop."""

    def __init__(self, patience: int | None):
        self.patience, self.best, self.best_epoch, self.bad, self.best_state = patience, -float("inf"), 0, 0, None

    def update(self, epoch: int, mean_auc: float, model: MultiTaskModel) -> bool:
        if mean_auc > self.best:
            self.best, self.best_epoch, self.bad = mean_auc, epoch, 0
            self.best_state = copy.deepcopy(model.state_dict())
        else:
            self.bad += 1
        return self.patience is not None and self.bad >= self.patience

    def record(self) -> dict:
        """What a resumed run needs to go on deciding (for :class:`~emm_lib.train_state.TrainState`)."""
        return {"best": self.best, "best_epoch": self.best_epoch, "bad": self.bad, "best_state": self.best_state}

    def set_record(self, rec: dict) -> None:
        self.best, self.best_epoch, self.bad = float(rec["best"]), int(rec["best_epoch"]), int(rec["bad"])
        self.best_state = rec["best_state"]


def _progress_bar(model: MultiTaskModel, epochs: int):
    from tqdm.auto import tqdm

    return tqdm(total=epochs, desc=f"{getattr(model, 'name', 'model')}", file=sys.stderr)
