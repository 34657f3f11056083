"""The study's runs as Ray tasks (``python -m emm_lib.study ... --executor ray``).

Locally, Ray starts one worker per core; ``address`` joins an existing cluster (``ray start
--head`` on one machine, ``ray start --address=HEAD:6379`` on the others, then
``--address HEAD:6379``). Each run is a task with one CPU and one torch thread, and a fraction
of a GPU (:data:`GPU_PER_RUN`) when the cluster has GPUs, so several small runs share one GPU.
The driver claims a run before submitting it and writes its artifacts when it returns, so no
run is trained or written twice and a killed driver loses only the runs in flight (their
claims go stale, :mod:`emm_lib.study.shared.claims`, and are taken over by the next driver).
"""
from __future__ import annotations

import os
import time
from contextlib import ExitStack
from typing import TYPE_CHECKING, Callable, Sequence

from emm_lib.study.shared.claims import WaitNotices
from emm_lib.study.shared.execution import complete, execute, run_key, trained_for, write_run
from emm_lib.study.shared.runs import Run, claim

if TYPE_CHECKING:  # pragma: no cover
    from emm_lib.study.shared.run_settings import StudySettings

__all__ = ["GPU_PER_RUN", "run_on_ray"]

#: GPU share of one run: the study's models are small, four runs share one GPU.
GPU_PER_RUN = 0.25


def _remote_execute(run: Run, st: "StudySettings", trained: dict | None):
    from emm_lib.train import set_threads

    set_threads(int(st.threads or 1))
    return execute(run, st, trained)


def run_on_ray(todo: Sequence[Run], st: "StudySettings", *, address: str | None = None,
               log: Callable[[str], None] = lambda m: None, poll_seconds: float = 2.0,
               num_cpus: int | None = None, rebuild: set[Run] | None = None) -> int:
    """Execute ``todo`` on Ray (a local instance unless ``address``); returns how many runs were trained.
    ``rebuild``: trained models that need a usable checkpoint (:func:`emm_lib.study.shared.runner.execute_plan`).
    A ConnectionError when nothing answers at ``address``."""
    try:
        import ray
    except ImportError as e:  # pragma: no cover - ray is a pinned dependency
        raise ImportError("--executor ray needs Ray: pip install 'ray==2.60.0' (or pip install -e .[test]).") from e
    started = False
    if not ray.is_initialized():
        from emm_lib.study.cli import check_ray_address

        check_ray_address(address)  # one line in seconds, not ray.init's retries and a long trace
        kw = dict(address=address) if address else dict(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False)
        _init(ray, kw, log)
        started = True
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        remote = ray.remote(num_cpus=1, num_gpus=GPU_PER_RUN if gpus else 0, max_retries=0)(_remote_execute)
        return _loop(list(todo), st, remote, ray, log, poll_seconds, set(rebuild or ()))
    finally:
        if started:
            ray.shutdown()


def _init(ray, kw: dict, log: Callable[[str], None], attempts: int = 3) -> None:
    """``ray.init``, again when a local instance did not register within Ray's fixed 30 s (it happens on a
    machine whose cores are all busy); the last failure is raised with what to do."""
    for attempt in range(1, attempts + 1):
        try:
            ray.init(log_to_driver=False, configure_logging=False, **kw)
            return
        except Exception as e:  # noqa: BLE001 -- Ray raises a bare Exception for this
            if "timed out during startup" not in str(e) or "address" in kw:
                raise
            ray.shutdown()
            if attempt == attempts:
                raise RuntimeError(f"A local Ray instance did not start in {attempts} tries of 30 s (the machine "
                                   "is too busy): run again when it is idler, or use --executor local.") from e
            log(f"Ray did not start within 30 s (try {attempt} of {attempts}); starting it again")


def _loop(waiting: list[Run], st: "StudySettings", remote, ray, log, poll_seconds: float, rebuild: set[Run]) -> int:
    """Claim and submit what can run, write what returns; ``rebuild`` grows as EMM runs ask for checkpoints."""
    pending: dict = {}
    running: list[Run] = []
    notices = WaitNotices(st.out_dir)
    trained_count = 0
    with ExitStack() as claims:
        while waiting or pending:
            found = False  # runs found missing in this pass: submitted in the next, without a wait
            for run in list(waiting):
                if complete(run, st, rebuild):
                    waiting.remove(run)
                    continue
                trained, missing = trained_for(run, st)
                if trained is None:
                    rebuild.update(missing)
                    new = [m for m in missing if m not in waiting and m not in running]
                    waiting += new
                    found |= bool(new)
                    continue
                stack = ExitStack()
                if not stack.enter_context(claim(st.out_dir, run, run_key(run, st))) or complete(run, st, rebuild):
                    stack.close()
                    continue
                claims.callback(stack.close)
                pending[remote.remote(run, st, trained)] = (run, stack, time.perf_counter())
                waiting.remove(run)
            if found:  # submit them before waiting on the runs in flight
                continue
            if not pending:  # what is left is claimed by another process, or waits on it
                notices.waiting([(r, run_key(r, st)) for r in waiting])
                time.sleep(poll_seconds)
                continue
            running = [r for r, _, _ in pending.values()]
            ready, _ = ray.wait(list(pending), num_returns=1)
            run, stack, t0 = pending.pop(ready[0])
            try:
                note = write_run(run, st, ray.get(ready[0]))
                trained_count += 1
                log(f"  {run} in {time.perf_counter() - t0:.1f}s (ray){note}")
            finally:
                stack.close()
    return trained_count
