"""Execute the study's runs, in this process or as Ray tasks, whatever their experiment.

Each experiment family plans its own runs (:mod:`emm_lib.study.shared.experiment`).
:func:`execute_plan` runs what is not done yet, in the plan's order (trained models before the EMM
runs that fuse them); an EMM run whose trained models lack a checkpoint has them trained next. Local:
one run at a time in this process (start a second process on the same results directory to use
another core: claims keep them apart).
Ray (``executor="ray"``): each run is a Ray task with one CPU and one torch thread (and a
fraction of a GPU when there is one); the driver claims each run, gathers the artifacts and
writes them, so a killed driver loses only the runs in flight.
"""
from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Callable, Sequence

from emm_lib.study.shared import results
from emm_lib.study.shared.claims import WaitNotices
from emm_lib.study.shared.execution import complete, execute, identity, run_key, trained_for, write_run
from emm_lib.study.shared.runs import Run, claim

if TYPE_CHECKING:  # pragma: no cover
    from emm_lib.study.shared.run_settings import StudySettings

__all__ = ["identity", "execute", "execute_plan"]


def execute_plan(runs: Sequence[Run], st: "StudySettings", *, executor: str = "local", address: str | None = None,
                 log: Callable[[str], None] = lambda m: None, require_trained: bool = False,
                 poll_seconds: float = 5.0, need_checkpoints: bool = False) -> int:
    """Run every run of ``runs`` that is not done; returns how many this call trained.

    ``need_checkpoints``: a trained model counts as done only with a usable checkpoint (else it is
    trained again, keeping its rows when it reproduces them: :func:`emm_lib.study.shared.runs.write`).
    """
    rebuild = {r for r in runs if r.is_trained_model} if need_checkpoints else set()
    todo = [r for r in runs if not complete(r, st, rebuild)]
    if not todo:
        return 0
    results.git_commit()  # pinned for this process: every row it writes names the code it loaded
    if require_trained:
        missing = [r for r in todo if r.is_trained_model]
        if missing:
            r = missing[0]
            raise FileNotFoundError(
                f"No trained {r.label} model for seed {r.seed} ({run_key(r, st)}) under {st.out_dir}. "
                f"Run notebooks/02-single-task.ipynb first with the same profile ({st.profile!r}) and seeds.")
    if executor == "ray":
        from emm_lib.study.shared.ray_executor import run_on_ray

        return run_on_ray(todo, st, address=address, log=log, rebuild=rebuild)
    if executor != "local":
        raise ValueError(f"Unknown executor {executor!r}; use 'local' or 'ray'.")
    return _local(todo, st, log, poll_seconds, rebuild)


def _pause(seconds: float) -> None:
    """Wait between two looks at the runs claimed elsewhere."""
    time.sleep(seconds)


def _local(todo: list[Run], st: "StudySettings", log: Callable[[str], None], poll_seconds: float,
           rebuild: set[Run]) -> int:
    """Train ``todo`` one run at a time in this process; wait (and say so) on runs claimed elsewhere.
    ``rebuild``: the trained models that need a usable checkpoint (it grows as EMM runs ask).

    An EMM run whose trained models are missing (recorded rows, no checkpoint: a fresh clone) has
    them trained next, then runs, before the runs planned after it: the chain of trained models and
    EMM is the longest, so it starts first rather than after every other run of the plan.
    """
    trained_count = 0
    notices = WaitNotices(st.out_dir)
    queue, waiting, progressed = deque(todo), [], False
    while queue or waiting:
        if not queue:  # a pass is over: what was claimed elsewhere, or waits on it, is tried again
            if not progressed:
                notices.waiting([(r, run_key(r, st)) for r in waiting])
                _pause(poll_seconds)
            queue, waiting, progressed = deque(waiting), [], False
            continue
        run = queue.popleft()
        if complete(run, st, rebuild):
            progressed = True
            continue
        trained, missing = trained_for(run, st)
        if trained is None:
            rebuild.update(missing)
            found = [m for m in missing if m not in queue and m not in waiting]
            if found:  # train them now, then this run
                queue.extendleft(reversed(found + [run]))
                progressed = True
            else:
                waiting.append(run)
            continue
        with claim(st.out_dir, run, run_key(run, st)) as mine:
            if not mine:
                waiting.append(run)
                continue
            if complete(run, st, rebuild):  # finished elsewhere meanwhile
                continue
            t0 = time.perf_counter()
            note = write_run(run, st, execute(run, st, trained))
            trained_count += 1
            progressed = True
            log(f"  {run} in {time.perf_counter() - t0:.1f}s{note}")
    return trained_count
