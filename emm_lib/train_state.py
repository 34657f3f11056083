"""fit()'s state between epochs, on disk: a long training run that is stopped resumes where it was.

A run of hours (the synthetic map's 10-million-row point trains EMM for about three hours on one
CPU core) would otherwise start again from epoch 1 every time its process is stopped. After an
epoch, :class:`TrainState` writes (atomically, at most every ``every_s`` seconds) what the next
epoch depends on: the weights, Adam's moments, the shuffling generator, torch's global generator
(dropout), the history so far and the early-stopping record. Resumed on the same machine, the run
continues exactly as it would have without the stop. The file holds tensors and plain values only
and is read with ``weights_only=True``; it is removed when the run ends.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from .utils import atomic_write

__all__ = ["TrainState", "fingerprint"]

_FORMAT = 1


def fingerprint(model: torch.nn.Module, settings: dict, n_train: int, n_val: int, tag: str = "") -> str:
    """What must match for a saved state to be resumed: the fit settings, the model's parameter
    names and shapes (trainable or not), the split sizes and the caller's ``tag``."""
    shapes = [(k, list(v.shape), bool(getattr(v, "requires_grad", False)))
              for k, v in model.state_dict(keep_vars=True).items()]
    blob = json.dumps({"settings": settings, "shapes": shapes, "n_train": n_train, "n_val": n_val,
                       "model": type(model).__name__, "tag": tag}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class TrainState:
    """Save and restore fit()'s state at ``path`` (``None``: a no-op that saves nothing)."""

    def __init__(self, path: str | os.PathLike | None, key: str, every_s: float = 300.0):
        if every_s < 0:
            raise ValueError(f"resume_every_s is the seconds between saved training states; it must be >= 0 "
                             f"(0: after every epoch), got {every_s}.")
        self.path = None if path is None else Path(path)
        self.key, self.every_s = key, float(every_s)
        self._last_save = time.monotonic()

    def load(self) -> dict[str, Any] | None:
        """The saved state when there is one for this run (same fingerprint), else ``None``.

        A state of another run (settings changed) or a damaged file is set aside with a warning."""
        if self.path is None or not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # a damaged file: train from the start, and say so
            return self._discard(f"could not be read ({type(err).__name__}: {err})")
        if not isinstance(state, dict) or state.get("format") != _FORMAT or state.get("key") != self.key:
            return self._discard("belongs to a run with other settings")
        return state

    def _discard(self, why: str) -> None:
        import warnings

        warnings.warn(f"The saved training state {self.path} {why}; training starts at epoch 1 "
                      f"(the file is renamed to {self.path.name}.stale).", stacklevel=3)
        self.path.replace(self.path.with_name(self.path.name + ".stale"))
        return None

    def save(self, epoch: int, model: torch.nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator,
             rows: list[dict], best: dict, seconds: float, force: bool = False) -> bool:
        """Write the state after ``epoch`` when ``every_s`` has passed since the last write (or ``force``)."""
        if self.path is None or (not force and time.monotonic() - self._last_save < self.every_s):
            return False
        state = {"format": _FORMAT, "key": self.key, "epoch": int(epoch), "seconds": float(seconds),
                 "model": model.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(),
                 "torch_rng": torch.get_rng_state(), "rows": rows, "best": best}
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.path, "wb") as fh:
            torch.save(state, fh)
        self._last_save = time.monotonic()
        return True

    @staticmethod
    def restore(state: dict, model: torch.nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator) -> None:
        """Put a loaded state back into ``model``, ``opt``, the shuffling generator and torch's generators."""
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])

    def clear(self) -> None:
        """Remove the state once the run has ended."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)
