"""One run, whatever its experiment: its identity, training and test, whether it is done, the trained
models it needs, and writing its files. The local loop (:mod:`.runner`) and the Ray executor
(:mod:`.ray_executor`) both build on these; what differs between experiments comes from the run's
family (:func:`.experiment.family_of`)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from emm_lib import config
from emm_lib.study.shared import results
from emm_lib.study.shared.experiment import family_of
from emm_lib.study.shared.runs import Artifacts, Run, is_done, split_seed, write

if TYPE_CHECKING:  # pragma: no cover
    from emm_lib.study.shared.run_settings import StudySettings

# How often a training run writes its state for resuming (seconds): long runs (the map's largest
# point trains for hours) lose at most this much when their process is stopped.
RESUME_EVERY_S = 300.0

__all__ = ["identity", "execute", "run_key", "done", "complete", "trained_for", "write_run"]


def identity(run: Run, st: "StudySettings") -> dict:
    """The settings that change what ``run`` measures (recorded with its rows, checked on resume)."""
    family = family_of(run)
    st = family.settings(run, st)
    if run.is_trained_model:
        shape = run.label.split(":")[0]
        model = {"model": "single_task", "sizes": config.model_settings(st.dataset, shape)}
    else:
        kind, opts = config.VARIANTS[run.label]
        model = {"model": kind, "options": opts, "sizes": config.model_settings(st.dataset, kind)}
    out = {"epochs": st.epochs, "batch_size": st.batch_size, "lr": st.lr, "weight_decay": st.weight_decay,
           "patience": st.patience, "max_train_rows": st.max_train_rows, "split_seed": split_seed(run.seed),
           "features": run.features, "n_tasks": run.n_tasks, **model}
    out.update(family.identity(run, st))  # a sweep point, a protocol rung: what the family adds
    return out


def execute(run: Run, st: "StudySettings", trained: dict | None = None) -> Artifacts:
    """Train ``run`` (validation selects the epoch), test once; return its artifacts (writes nothing)."""
    from emm_lib.train import evaluate, fit, predict, set_threads

    if st.threads:
        set_threads(int(st.threads))
    family = family_of(run)
    key, st = run_key(run, st), family.settings(run, st)
    ds = family.dataset(run, st)
    model = family.build(run, ds, st, trained)
    res = fit(model, ds, seed=family.init_seed(run, st), **{**st.fit_kwargs(), **family.fit_options(run, st)},
              **resume_options(run, st))
    logits = predict(model, ds.test).cpu()
    y = ds.test.select_tasks(model.tasks).cpu()
    test = evaluate(model, ds.test)
    eff, gates = family.measure(run, model, ds, st)
    rows = results.make_rows(
        dataset=family.row_key(run, key, ds), profile=st.profile, model=run.label, seed=run.seed,
        metrics={"test_auc": test, "val_auc": res.best_val_auc}, best_epoch=res.best_epoch,
        train_seconds=res.seconds, device=res.device,
        settings={**st.record(), **identity(run, st), "tasks": list(model.tasks), "epochs_run": len(res.history),
                  "n_features": ds.spec.n_sparse + ds.spec.n_dense, "experiment": run.experiment,
                  "torch_threads": res.settings.get("threads"),
                  **({"flush_denormal": True} if res.settings.get("flush_denormal") else {}),
                  **({"cuda_graph": True} if res.settings.get("cuda_graph") else {}), **eff})
    return Artifacts(rows, res.history, model.cpu(), logits.numpy(), y.numpy(), tuple(model.tasks), gates)


def resume_options(run: Run, st: "StudySettings") -> dict:
    """Where ``run`` keeps its training state between epochs, so that a stopped run resumes
    (:class:`emm_lib.train_state.TrainState`; next to its checkpoint, gitignored), and the tag that ties
    the state to the run's identity."""
    import hashlib
    import json

    from emm_lib.study.shared.run_settings import checkpoint_path_of

    ck = checkpoint_path_of(st, run.experiment, run_key(run, st), run.seed, run.label)
    tag = hashlib.sha256(json.dumps(identity(run, st), sort_keys=True, default=str).encode()).hexdigest()
    return {"resume_path": ck.with_name(ck.name + ".resume.pt"), "resume_tag": tag, "resume_every_s": RESUME_EVERY_S}


def run_key(run: Run, st: "StudySettings") -> str:
    """The dataset key ``run``'s rows, checkpoint and claim are filed under."""
    return family_of(run).key(run, st)


def done(run: Run, st: "StudySettings") -> bool:
    """Whether ``run``'s rows exist with its identity (rows made otherwise: ``st.on_change``)."""
    return is_done(st.out_dir / f"{run.experiment}.csv", run_key(run, st), run.label, run.seed,
                   identity(run, st), on_change=st.on_change)


def _checkpoint_ok(run: Run, st: "StudySettings") -> bool:
    """Whether ``run``'s checkpoint loads (a damaged one warns)."""
    from emm_lib import checkpoint
    from emm_lib.study.shared.run_settings import checkpoint_path_of

    path = checkpoint_path_of(st, run.experiment, run_key(run, st), run.seed, run.label)
    return checkpoint.load_or_none(path) is not None


def complete(run: Run, st: "StudySettings", rebuild: set[Run]) -> bool:
    """Done, and for a trained model an EMM run needs (in ``rebuild``), with a usable checkpoint."""
    return done(run, st) and (run not in rebuild or _checkpoint_ok(run, st))


def trained_for(run: Run, st: "StudySettings") -> tuple[dict | None, list[Run]]:
    """The trained models an EMM run needs, from their checkpoints, and the ones still missing.

    A trained model with rows but no usable checkpoint is missing too: it is trained again, and its
    recorded rows stay unless that training reproduces them (:func:`emm_lib.study.shared.runs.write`).
    """
    from emm_lib import checkpoint
    from emm_lib.study.shared.run_settings import checkpoint_path_of, experiment_tasks

    if run.is_trained_model or config.VARIANTS[run.label][0] != "emm":
        return {}, []
    family = family_of(run)
    out: dict[str, list] = {}
    missing: list[Run] = []
    for task in experiment_tasks(family.settings(run, st).dataset, run.n_tasks):
        out[task] = []
        for shape in config.TM_SHAPES:
            tm = family.trained_model(run, shape, task, st)
            ck = checkpoint_path_of(st, tm.experiment, run_key(tm, st), tm.seed, tm.label)
            is_done_now = done(tm, st)  # asked once: another process may finish tm between two asks
            model = checkpoint.load_or_none(ck) if is_done_now else None
            if model is None:
                missing.append(tm)
            out[task].append(model)
    return (None if missing else out), missing


def write_run(run: Run, st: "StudySettings", art: Artifacts) -> str:
    """Write ``run``'s files; a note for the progress log when its recorded rows were kept."""
    from emm_lib.study.shared.run_settings import checkpoint_path_of, history_path_of

    key = run_key(run, st)
    kept = write(st.out_dir, run, key, art, history=history_path_of(st, run.experiment, key, run.seed, run.label),
                 checkpoint=checkpoint_path_of(st, run.experiment, key, run.seed, run.label),
                 identity=identity(run, st), on_change=st.on_change)
    return " (checkpoint rebuilt; it reproduces the recorded rows, which are kept)" if kept else ""
