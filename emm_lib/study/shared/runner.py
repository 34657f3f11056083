"""Plan and execute the study's runs, in this process or as Ray tasks.

:func:`plan` lists the runs of experiments (seed-major, so finished seeds are complete),
with the trained single-task models (TM-1, TM-2 per task) each multi-task run builds on.
:func:`execute_plan` runs what is not done yet: trained models and baselines first, then the
EMM variants whose trained models exist. Local: one run at a time in this process (start a
second process on the same results directory to use another core: claims keep them apart).
Ray (``executor="ray"``): each run is a Ray task with one CPU and one torch thread (and a
fraction of a GPU when there is one); the driver claims each run, gathers the artifacts and
writes them, so a killed driver loses only the runs in flight.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable, Sequence

import torch

from emm_lib import config
from emm_lib.study.shared import results
from emm_lib.study.shared.claims import WaitNotices
from emm_lib.study.shared.runs import Artifacts, Run, claim, is_done, split_seed, write

if TYPE_CHECKING:  # pragma: no cover
    from emm_lib.study.shared.run_settings import StudySettings

__all__ = ["plan", "identity", "execute", "execute_plan"]


def _tm_labels(tasks: Sequence[str]) -> list[str]:
    return [f"{shape}:{t}" for t in tasks for shape in config.TM_SHAPES]


def plan(experiments: Sequence[str], st: "StudySettings", models: Sequence[str] | None = None,
         task_counts: Sequence[int] | None = None) -> list[Run]:
    """Every run of ``experiments`` over ``st.seeds``, trained models first within each seed."""
    from emm_lib.study.shared.run_settings import experiment_tasks

    runs: list[Run] = []
    for seed in st.seeds:
        for name in experiments:
            ex = config.EXPERIMENTS[name]
            counts = tuple(task_counts) if task_counts is not None else ex["task_counts"]
            labels = tuple(models) if models is not None else ex["models"]
            for k in counts:
                tms = [Run("single_task", lab, seed, k, ex["features"])
                       for lab in _tm_labels(experiment_tasks(st.dataset, k))]
                runs += [r for r in tms if r not in runs]
                runs += [Run(name, lab, seed, k, ex["features"]) for lab in labels]
    return runs


def _point(run: Run, st: "StudySettings") -> "StudySettings":
    """``st`` as a run sees it: a synthetic sweep point brings its own data and optimiser settings."""
    if not run.data:
        return st
    from emm_lib.study.sweep.grid import point_settings

    return point_settings(run, st)


def identity(run: Run, st: "StudySettings") -> dict:
    """The settings that change what ``run`` measures (recorded with its rows, checked on resume)."""
    st = _point(run, st)
    if run.is_trained_model:
        shape = run.label.split(":")[0]
        model = {"model": "single_task", "sizes": config.model_settings(st.dataset, shape)}
    else:
        kind, opts = config.VARIANTS[run.label]
        model = {"model": kind, "options": opts, "sizes": config.model_settings(st.dataset, kind)}
    out = {"epochs": st.epochs, "batch_size": st.batch_size, "lr": st.lr, "weight_decay": st.weight_decay,
           "patience": st.patience, "max_train_rows": st.max_train_rows, "split_seed": split_seed(run.seed),
           "features": run.features, "n_tasks": run.n_tasks, **model}
    if run.data:
        from emm_lib.study.sweep import grid as sweep

        out.update(sweep.identity(run, st))  # the point; a sweep trained model's own sizes
    if run.replays_protocol:  # issue 17: the rung, its flags, and what they set
        from emm_lib.study.replay import authors

        out.update(authors.identity(run, st))
    return out


def _build(run: Run, ds, st: "StudySettings", trained: dict | None):
    from emm_lib.models import SingleTaskMLP, build_model

    if run.replays_protocol:  # issue 17: the rung's flags set the models
        from emm_lib.study.replay import authors

        return authors.build(run, ds, st, trained)
    from emm_lib.study.sweep import grid as sweep

    torch.manual_seed(sweep.init_seed(run, st) if run.data else run.seed)
    if run.is_trained_model:
        shape, task = run.label.split(":")
        sizes = sweep.trained_sizes(run, st) if run.data else config.model_settings(st.dataset, shape)
        return SingleTaskMLP(ds.spec, task, **sizes)
    kind, opts = config.VARIANTS[run.label]
    if kind != "emm":
        return build_model(kind, ds.spec, ds.tasks, **{**config.model_settings(st.dataset, kind), **opts})
    from emm_lib.emm import EMM

    sizes = config.model_settings(st.dataset, "emm")
    for k in ("embedding_dim", "component_shapes"):  # both come from the trained models
        sizes.pop(k)
    extra = sweep.emm_options(run, st) if run.data else {}
    return EMM.from_trained(trained, **sizes, **opts, **extra)


def execute(run: Run, st: "StudySettings", trained: dict | None = None) -> Artifacts:
    """Train ``run`` (validation selects the epoch), test once; return its artifacts (writes nothing)."""
    from emm_lib.study.replay import protocol
    from emm_lib.study.sweep import grid as sweep
    from emm_lib.study import dataset_key, load_dataset
    from emm_lib.train import evaluate, fit, predict

    if st.threads:
        torch.set_num_threads(int(st.threads))
    key, st = _key(run, st), _point(run, st)
    rung = run.rung if run.replays_protocol else None  # issue 17: the rung's data and training flags
    ds = load_dataset(st, n_tasks=run.n_tasks, features=run.features, seed=run.seed, data=run.data, rung=rung,
                      experiment=run.experiment)
    model = _build(run, ds, st, trained)
    pfit = protocol.apply(rung, st.dataset).fit if rung else {}
    res = fit(model, ds, seed=sweep.init_seed(run, st) if run.data else run.seed, **{**st.fit_kwargs(), **pfit})
    logits = predict(model, ds.test).cpu()
    y = ds.test.select_tasks(model.tasks).cpu()
    test = evaluate(model, ds.test)
    eff, gates = sweep.measure(run, model, ds, st) if run.data else ({}, None)
    rows = results.make_rows(
        dataset=key if run.data else dataset_key(ds), profile=st.profile, model=run.label, seed=run.seed,
        metrics={"test_auc": test, "val_auc": res.best_val_auc}, best_epoch=res.best_epoch,
        train_seconds=res.seconds, device=res.device,
        settings={**st.record(), **identity(run, st), "tasks": list(model.tasks), "epochs_run": len(res.history),
                  "n_features": ds.spec.n_sparse + ds.spec.n_dense, "experiment": run.experiment,
                  "torch_threads": res.settings.get("threads"),
                  **({"cuda_graph": True} if res.settings.get("cuda_graph") else {}), **eff})
    return Artifacts(rows, res.history, model.cpu(), logits.numpy(), y.numpy(), tuple(model.tasks), gates)


def _key(run: Run, st: "StudySettings") -> str:
    from emm_lib.study.shared.run_settings import dataset_key_of

    if run.data:
        from emm_lib.study.sweep.grid import dataset_key

        return dataset_key(run)
    return dataset_key_of(st.dataset, run.features, run.n_tasks, run.rung if run.replays_protocol else None)


def _done(run: Run, st: "StudySettings") -> bool:
    return is_done(st.out_dir / f"{run.experiment}.csv", _key(run, st), run.label, run.seed,
                   identity(run, st), on_change=st.on_change)


def _checkpoint_ok(run: Run, st: "StudySettings") -> bool:
    """Whether ``run``'s checkpoint loads (a damaged one warns)."""
    from emm_lib import checkpoint
    from emm_lib.study.shared.run_settings import checkpoint_path_of

    path = checkpoint_path_of(st, run.experiment, _key(run, st), run.seed, run.label)
    return checkpoint.load_or_none(path) is not None


def _complete(run: Run, st: "StudySettings", rebuild: set[Run]) -> bool:
    """Done, and for a trained model an EMM run needs (in ``rebuild``), with a usable checkpoint."""
    return _done(run, st) and (run not in rebuild or _checkpoint_ok(run, st))


def _trained(run: Run, st: "StudySettings") -> tuple[dict | None, list[Run]]:
    """The trained models an EMM run needs, from their checkpoints, and the ones still missing.

    A trained model with rows but no usable checkpoint is missing too: it is trained again, and its
    recorded rows stay unless that training reproduces them (:func:`emm_lib.study.shared.runs.write`).
    """
    from emm_lib import checkpoint
    from emm_lib.study.shared.run_settings import checkpoint_path_of, experiment_tasks

    if run.is_trained_model or config.VARIANTS[run.label][0] != "emm":
        return {}, []
    out: dict[str, list] = {}
    missing: list[Run] = []
    if run.data:
        from emm_lib.study.sweep.grid import experiments

        tm_experiment = experiments(run.experiment)[1]  # the pass's own trained models
    else:
        tm_experiment = "single_task"
    for task in experiment_tasks(_point(run, st).dataset, run.n_tasks):
        out[task] = []
        for shape in config.TM_SHAPES:
            tm = Run(tm_experiment, f"{shape}:{task}", run.seed, run.n_tasks, run.features, run.data)
            if run.replays_protocol:  # issue 17: the rung's trained models (shared between rungs)
                from emm_lib.study.replay.authors import tm_run

                tm = tm_run(run, shape, task, st.dataset)
            ck = checkpoint_path_of(st, tm.experiment, _key(tm, st), tm.seed, tm.label)
            done = _done(tm, st)  # asked once: another process may finish tm between two asks
            model = checkpoint.load_or_none(ck) if done else None
            if model is None:
                missing.append(tm)
            out[task].append(model)
    return (None if missing else out), missing


def _write(run: Run, st: "StudySettings", art: Artifacts) -> str:
    """Write ``run``'s files; a note for the progress log when its recorded rows were kept."""
    from emm_lib.study.shared.run_settings import checkpoint_path_of, history_path_of

    key = _key(run, st)
    kept = write(st.out_dir, run, key, art, history=history_path_of(st, run.experiment, key, run.seed, run.label),
          checkpoint=checkpoint_path_of(st, run.experiment, key, run.seed, run.label), identity=identity(run, st),
          on_change=st.on_change)
    return " (checkpoint rebuilt; it reproduces the recorded rows, which are kept)" if kept else ""


def execute_plan(runs: Sequence[Run], st: "StudySettings", *, executor: str = "local", address: str | None = None,
                 log: Callable[[str], None] = lambda m: None, require_trained: bool = False,
                 poll_seconds: float = 5.0, need_checkpoints: bool = False) -> int:
    """Run every run of ``runs`` that is not done; returns how many this call trained.

    ``need_checkpoints``: a trained model counts as done only with a usable checkpoint (else it is
    trained again, keeping its rows when it reproduces them: :func:`emm_lib.study.shared.runs.write`).
    """
    rebuild = {r for r in runs if r.is_trained_model} if need_checkpoints else set()
    todo = [r for r in runs if not _complete(r, st, rebuild)]
    if not todo:
        return 0
    results.git_commit()  # pinned for this process: every row it writes names the code it loaded
    if require_trained:
        missing = [r for r in todo if r.is_trained_model]
        if missing:
            r = missing[0]
            raise FileNotFoundError(
                f"No trained {r.label} model for seed {r.seed} ({_key(r, st)}) under {st.out_dir}. "
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
    ``rebuild``: the trained models that need a usable checkpoint (it grows as EMM runs ask)."""
    trained_count = 0
    notices = WaitNotices(st.out_dir)
    while todo:
        progressed, waiting = False, []
        for run in todo:
            if _complete(run, st, rebuild):
                progressed = True
                continue
            trained, missing = _trained(run, st)
            if trained is None:
                rebuild.update(missing)
                found = [m for m in missing if m not in todo and m not in waiting]
                waiting += found + [run]
                progressed |= bool(found)  # runs to train next: nothing to wait for yet
                continue
            with claim(st.out_dir, run, _key(run, st)) as mine:
                if not mine or _complete(run, st, rebuild):
                    waiting.append(run) if not mine else None
                    continue
                t0 = time.perf_counter()
                note = _write(run, st, execute(run, st, trained))
                trained_count += 1
                progressed = True
                log(f"  {run} in {time.perf_counter() - t0:.1f}s{note}")
        todo = waiting
        if todo and not progressed:  # everything left is claimed by another process, or waits on it
            notices.waiting([(r, _key(r, st)) for r in todo])
            _pause(poll_seconds)
    return trained_count
