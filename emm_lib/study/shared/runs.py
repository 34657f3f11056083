"""One run of the study, start to finish: its identity, its claim, its training and its files.

A *run* is one (experiment, model label, seed, task count, feature set). Its *identity* is
every setting that changes what it measures (optimiser, epochs, split seed, feature set,
model sizes and flags); a run counts as done only when rows with the same identity are in
the results table. Before training, a run is *claimed* with an exclusive file
(:mod:`emm_lib.study.shared.claims`), so two study processes (or Ray drivers) on one results directory never
train or write it twice. The
artifacts are computed by :func:`execute` (in this process or a Ray worker) and written by
:func:`write` in the driver: history, checkpoint and test predictions first, the result rows
last, each file atomically.

Recorded rows are never lost or silently replaced. Rows of other settings stay until the rerun
(``--on-change rerun``) writes their replacement, in the same atomic write of the table. Checkpoints
are not committed, so a fresh clone has recorded trained-model rows without their models: such a
model is trained again for its checkpoint, and kept only when it reproduces the recorded rows bit for
bit (the recorded rows and history stay as they are). When it does not (another machine, another
commit), nothing is written and :class:`RecordedRowsDiffer` names both values and the choice:
restore the checkpoint, or ``--on-change rerun`` to replace the rows with the retrained model's.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emm_lib.study.shared import claims, results
from emm_lib.study.shared.claims import CLAIM_GRACE_SECONDS, CLAIM_STALE_SECONDS, claim  # noqa: F401 (the runs' claims)
from emm_lib.config import AUTHORS_PROTOCOL, TM_SHAPES
from emm_lib.utils import atomic_write

__all__ = ["Run", "Artifacts", "TRAINED_EXPERIMENTS", "SettingsChanged", "RecordedRowsDiffer",
           "identity_mismatch", "is_done", "claim", "write",
           "predictions_path", "split_seed", "write_gates"]


#: The protocol replay's experiment name (chapter 08).
AUTHORS_EXPERIMENT: str = AUTHORS_PROTOCOL["experiment"]


def split_seed(seed: int) -> int:
    """The val/test split (and synthetic data) seed of a run: drawn anew per run seed."""
    return int(seed)


#: Experiments whose runs are trained single-task models (the Census study's, the synthetic sweep's
#: first and second passes).
TRAINED_EXPERIMENTS = ("single_task", "synthetic_single_task", "synthetic_map_single_task")


@dataclass(frozen=True)
class Run:
    """One training run of the study."""

    experiment: str
    label: str
    seed: int
    n_tasks: int = 2
    features: str = "paper"
    data: str = ""  # a synthetic sweep point (emm_lib.study.sweep.grid), e.g. "synthetic/corr=0.5/rows=100000"

    @property
    def is_trained_model(self) -> bool:
        return self.experiment in TRAINED_EXPERIMENTS or (self.replays_protocol and self.label.split(":")[0] in TM_SHAPES)

    @property
    def slug(self) -> str:
        return f"{self.label.replace(':', '_')}"

    # The protocol rung (config.RUNGS) a run is trained under. Only the replay
    # experiment's runs record it (identity, settings, dataset key); every other run is "ours".
    rung: str = "ours"

    @property
    def replays_protocol(self) -> bool:
        """A run of the protocol replay (``config.AUTHORS_PROTOCOL``): its rung names its data key."""
        return self.experiment == AUTHORS_EXPERIMENT

    def __str__(self) -> str:
        """For progress logs: ``table1: emm (2 tasks, paper) seed 0``, with the rung for the replay."""
        rung = f", rung {self.rung}" if self.replays_protocol else ""
        return f"{self.experiment}: {self.label} ({self.n_tasks} tasks, {self.data or self.features}{rung}) seed {self.seed}"


@dataclass
class Artifacts:
    """What a finished run hands back to the driver."""

    rows: list[dict]
    history: pd.DataFrame
    model: Any
    logits: np.ndarray
    y: np.ndarray
    tasks: tuple[str, ...]
    gates: pd.DataFrame | None = None  # EMM gate weights of a sweep run (emm_lib.study.sweep.grid.gate_weights)


class SettingsChanged(RuntimeError):
    """Rows for this run exist but were made with other settings."""


class RecordedRowsDiffer(SettingsChanged):
    """A run retrained for its missing checkpoint does not reproduce its recorded rows."""


def identity_mismatch(recorded: dict, identity: dict) -> dict[str, tuple[Any, Any]]:
    """``{key: (recorded, now)}`` for every identity key whose recorded value differs."""
    norm = lambda v: json.loads(json.dumps(v, sort_keys=True, default=str))  # noqa: E731 (tuples -> lists)
    return {k: (recorded.get(k, "<not recorded>"), v) for k, v in identity.items()
            if norm(recorded.get(k, "<not recorded>")) != norm(v)}


def _rows_of(path: Path, dataset: str, model: str, seed: int) -> pd.DataFrame:
    if not path.exists():
        return pd.DataFrame(columns=results.COLUMNS)
    df = results.read(path)
    return df[(df.dataset == dataset) & (df.model == model) & (df.seed == seed)]


def is_done(path: Path, dataset: str, model: str, seed: int, identity: dict, on_change: str = "error") -> bool:
    """Whether ``path`` holds this run's rows made with ``identity``.

    Rows with another identity raise :class:`SettingsChanged` naming the settings that changed
    (``on_change="error"``), or count as not done (``"rerun"``): they stay until the run's new rows
    replace them in one write (:func:`write`), so an interrupted rerun loses no row.
    """
    rows = _rows_of(path, dataset, model, seed)
    if rows.empty:
        return False
    diff = identity_mismatch(json.loads(rows.settings.iloc[-1]), identity)
    if not diff:
        return True
    if on_change == "rerun":
        return False
    what = "; ".join(f"{k}: recorded {a!r}, now {b!r}" for k, (a, b) in diff.items())
    raise SettingsChanged(
        f"{path} already holds {model} seed {seed} on {dataset}, made with other settings ({what}). "
        "Use another --results-dir, or --on-change rerun to replace those rows.")


def predictions_path(out_dir: Path, run: Run, dataset: str) -> Path:
    """Test-set logits of a run (gitignored; read by the analysis step for paired DeLong variances)."""
    return out_dir / "predictions" / run.experiment / f"{dataset.replace('/', '_')}__seed{run.seed}__{run.slug}.npz"


def _reproduces(path: Path, recorded: pd.DataFrame, rows: list[dict], identity: dict | None, on_change: str) -> bool:
    """Whether fresh ``rows`` reproduce the run's ``recorded`` rows bit for bit (then those are kept).

    Recorded rows made with the run's ``identity`` are retrained only to rebuild a missing checkpoint.
    When the values differ, they are replaced with ``on_change="rerun"``; otherwise
    :class:`RecordedRowsDiffer` is raised (nothing is written).
    """
    if recorded.empty or (identity and identity_mismatch(json.loads(recorded.settings.iloc[-1]), identity)):
        return False  # no rows, or rows of other settings (--on-change rerun): replaced
    text = pd.DataFrame(rows)[["task", "metric", "value"]].to_csv(index=False)  # read back as the table is
    new = pd.read_csv(io.StringIO(text), dtype={"task": str, "metric": str}).set_index(["task", "metric"]).value
    old = recorded.set_index(["task", "metric"]).value
    if new.sort_index().equals(old.sort_index()):
        return True
    if on_change == "rerun":
        return False
    r = rows[0]
    (task, metric), a = next(((k, v) for k, v in old.items() if new.get(k) != v), (new.index[0], None))
    raise RecordedRowsDiffer(
        f"{path} records {r['model']} seed {r['seed']} on {r['dataset']} ({metric} {task} {a!r}, commit "
        f"{recorded.git_commit.iloc[0]}); its checkpoint is missing or damaged, and training it again here "
        f"(commit {r['git_commit']}) gave {new.get((task, metric))!r}. The recorded rows are kept and nothing "
        "was written. Restore the checkpoint to build on them, or use --on-change rerun to replace them with "
        "the retrained model's (the runs already built on the old model keep theirs).")


def write(out_dir: Path, run: Run, dataset: str, art: Artifacts, *, history: Path, checkpoint: Path,
          identity: dict | None = None, on_change: str = "error") -> bool:
    """Write a run's files in the driver: history, checkpoint, predictions, then its rows; True when
    the recorded rows were kept (the run reproduced them).

    Rows the run already has are replaced in the same atomic write that adds the new ones
    (:func:`emm_lib.study.shared.results.replace_run`). A run retrained only for its missing checkpoint keeps its
    recorded rows and history when it reproduces them bit for bit (:func:`_reproduces`); ``identity``
    tells those apart from rows of other settings (``--on-change rerun``), which are replaced.
    """
    from emm_lib import checkpoint as ckpt

    table = out_dir / f"{run.experiment}.csv"
    recorded = _rows_of(table, dataset, run.label, run.seed)
    keep = _reproduces(table, recorded, art.rows, identity, on_change)
    if not (keep and history.exists()):
        with atomic_write(history) as fh:
            art.history.to_csv(fh, index=False)
    ckpt.save(art.model.cpu(), checkpoint)
    pred = predictions_path(out_dir, run, dataset)
    with atomic_write(pred, "wb") as fh:
        np.savez_compressed(fh, logits=art.logits.astype(np.float32), y=art.y.astype(np.uint8),
                            tasks=np.array(art.tasks), label=np.array(run.label))
    if art.gates is not None:
        write_gates(out_dir / "analysis" / f"{run.experiment}_gates.csv", run, dataset, art.gates)
    if not keep:
        results.replace_run(table, art.rows, expected=recorded)
    return keep


def write_gates(path: Path, run: Run, dataset: str, gates: pd.DataFrame) -> None:
    """Put a run's gate weights into the table at ``path`` atomically, replacing earlier ones of the run."""
    new = gates.assign(dataset=dataset, model=run.label, seed=int(run.seed))
    new = new[["dataset", "model", "seed"] + [c for c in gates.columns]]
    with results._locked(path):
        old = pd.read_csv(path) if path.exists() else new.iloc[:0]
        old = old[~((old.dataset == dataset) & (old.model == run.label) & (old.seed == int(run.seed)))]
        out = pd.concat([old, new], ignore_index=True) if len(old) else new
        with atomic_write(path, "w") as fh:
            out.to_csv(fh, index=False)
