"""The protocol replay (chapter 08): every rung of :data:`emm_lib.config.RUNGS`, one deviation at a time.

At every rung: TM-1 and TM-2 per task, EMM built from them, and the baselines MMoE and PLE, all
trained with the rung's flags (:func:`emm_lib.study.replay.protocol.apply`). A run that a rung's flags leave
unchanged belongs to the *first* rung of the ladder with the same flags for it
(:func:`owner`: ``ProtocolSettings.trained_model_key`` for the trained models,
``.baseline_key`` for the baselines, every flag for EMM), so it is trained once and reused by
the later rungs; :func:`view` gives every rung its rows back. Rows go to
``results/<profile>/authors_protocol.csv`` with the run's rung and flags in their settings.

    python -m emm_lib.study authors --profile paper                     # Census, the profile's rungs
    python -m emm_lib.study authors --profile paper --dataset synthetic   # the same rungs, synthetic
    python -m emm_lib.study authors --profile paper --rungs paper published --executor ray
    python -m emm_lib.study authors --profile paper --rungs paper --variants table2   # Table II's rows
    python -m emm_lib.study authors --profile paper --rungs paper --task-counts 3      # Figure 3's points

Out of sample: ``variants`` adds the paper's Table II rows (``config.AUTHORS_PROTOCOL
["variants"]``, EMM variants built from the rung's own trained models, so only EMM is trained
again) and ``task_counts`` the Figure 3 task counts (every model of the replay on the first k tasks).
"""
from __future__ import annotations

import itertools
from functools import lru_cache
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from emm_lib import config
from emm_lib.study.replay import protocol
from emm_lib.study.shared import results
from emm_lib.study.shared.runs import AUTHORS_EXPERIMENT, Run
from emm_lib.utils import atomic_write

if TYPE_CHECKING:  # pragma: no cover
    from emm_lib.study.shared.run_settings import StudySettings

__all__ = ["EXPERIMENT", "PAIR_VARIANCES", "settings", "data_options", "rungs_for", "owner", "variants_for", "plan",
           "tm_run", "identity", "build", "emm_options", "run", "read", "view", "pair_variances",
           "write_pair_variances", "read_pair_variances"]

EXPERIMENT = AUTHORS_EXPERIMENT
PAIR_VARIANCES = "analysis/authors_pair_variances.csv"
PARTS = ("trained_model", "baseline", "emm")


def settings(dataset: str = "census", profile: str = "default", **overrides) -> "StudySettings":
    """:func:`emm_lib.study.settings` for the replay: on synthetic data at the paper profile, the
    published loop's epoch budget (``config.AUTHORS_PROTOCOL["synthetic"]["paper"]``) unless
    ``epochs`` is given."""
    from emm_lib.study.shared.run_settings import settings as study_settings

    if dataset == "synthetic" and overrides.get("epochs") is None:
        overrides["epochs"] = _synthetic(profile).get("epochs")
    return study_settings(dataset, profile, **overrides)


def _synthetic(profile: str) -> dict:
    return dict(config.AUTHORS_PROTOCOL["synthetic"].get(profile, {}))


def data_options(dataset: str, profile: str) -> dict:
    """What the replay passes to :func:`emm_lib.data.load` beyond the split seed: on synthetic data the
    section's correlation and, at the paper profile, its Census-like row count; nothing on Census."""
    if dataset != "synthetic":
        return {}
    syn = config.AUTHORS_PROTOCOL["synthetic"]
    return {"correlation": syn["correlation"], **{k: v for k, v in _synthetic(profile).items() if k == "n_rows"}}


def rungs_for(profile: str, rungs: Sequence[str] | None = None) -> tuple[str, ...]:
    """The rungs run at ``profile`` (``config.AUTHORS_PROTOCOL["rungs"]``), or ``rungs``, in ladder order."""
    if rungs is None:
        rungs = config.AUTHORS_PROTOCOL["rungs"].get(profile, protocol.RUNG_NAMES)
    if isinstance(rungs, str):
        rungs = [rungs]
    unknown = [r for r in rungs if r not in protocol.RUNG_NAMES]
    if unknown or not rungs:
        raise ValueError(f"Unknown or no rung(s) {unknown or list(rungs)}. Rungs, in order: {list(protocol.RUNG_NAMES)}.")
    return tuple(r for r in protocol.RUNG_NAMES if r in set(rungs))


@lru_cache(maxsize=None)
def _settings(rung: str, dataset: str) -> protocol.ProtocolSettings:
    return protocol.apply(rung, dataset)


def _part_key(rung: str, part: str, dataset: str) -> tuple[str, ...]:
    ps = _settings(rung, dataset)
    if part == "trained_model":
        return ps.trained_model_key
    if part == "baseline":
        return ps.baseline_key
    if part == "emm":
        return ps.flags
    raise ValueError(f"Unknown part {part!r}; parts: {list(PARTS)}.")


def owner(rung: str, part: str, dataset: str = "census") -> str:
    """The first rung of the whole ladder whose flags for ``part`` equal ``rung``'s: the rung its runs
    of ``part`` (``trained_model``, ``baseline``, ``emm``) are trained and recorded under."""
    key = _part_key(rung, part, dataset)
    return next(r for r in protocol.RUNG_NAMES if _part_key(r, part, dataset) == key)


def _part_of(label: str) -> str:
    if label.split(":")[0] in config.TM_SHAPES:
        return "trained_model"
    return "emm" if label == "emm" or label.startswith("emm:") else "baseline"


def variants_for(variants: Sequence[str] | str | None) -> tuple[str, ...]:
    """The EMM variants asked for: ``None``/empty = none, ``"table2"`` = the paper's Table II rows
    (``config.AUTHORS_PROTOCOL["variants"]``), else the labels themselves, each one of those."""
    known = tuple(config.AUTHORS_PROTOCOL["variants"])
    if not variants:
        return ()
    if isinstance(variants, str):
        variants = [variants]
    out = [v for name in variants for v in (known if name == "table2" else (name,))]
    unknown = [v for v in out if v not in known]
    if unknown:
        raise ValueError(f"Unknown replay variant(s) {unknown}; variants: {list(known)} (or 'table2' for all).")
    return tuple(dict.fromkeys(out))


def _labels(dataset: str, n_tasks: int) -> list[str]:
    from emm_lib.study.shared.run_settings import experiment_tasks

    tms = [f"{shape}:{t}" for t in experiment_tasks(dataset, n_tasks) for shape in config.TM_SHAPES]
    return tms + list(config.AUTHORS_PROTOCOL["baselines"]) + ["emm"]


def plan(st: "StudySettings", rungs: Sequence[str] | None = None, n_tasks: int = 2,
         variants: Sequence[str] | str | None = None, task_counts: Sequence[int] | None = None,
         models: Sequence[str] | None = None) -> list[Run]:
    """Every run of the replay over ``st.seeds`` and ``rungs`` (default: the profile's), each shared run
    once, under its :func:`owner` rung; trained models before the models that use them. ``task_counts``
    (default ``(n_tasks,)``): the replay on the first k tasks for each k; ``variants``
    (:func:`variants_for`): EMM variants added on 2 tasks, seed by seed, after the seed's models;
    ``models``: only these multi-task labels (the trained models are always planned: the rest build on them)."""
    extra = variants_for(variants)
    known = set(config.AUTHORS_PROTOCOL["baselines"]) | {"emm"}
    unknown = sorted(set(models or ()) - known)
    if unknown:
        raise ValueError(f"Unknown replay model(s) {unknown} (--models); the replay's models: {sorted(known)} "
                         "(trained models are always run; Table II's rows come with --variants).")
    counts = tuple(task_counts or (n_tasks,))
    if any(not isinstance(k, (int, np.integer)) or k < 2 for k in counts):
        raise ValueError(f"Task counts must be integers >= 2, got {list(counts)}.")
    out: list[Run] = []
    for seed in st.seeds:
        for rung in rungs_for(st.profile, rungs):
            for k in counts:
                for label in _labels(st.dataset, k) + (list(extra) if k == 2 else []):
                    if models is not None and _part_of(label) != "trained_model" and label in known \
                            and label not in models:
                        continue
                    r = Run(EXPERIMENT, label, seed, int(k), rung=owner(rung, _part_of(label), st.dataset))
                    if r not in out:
                        out.append(r)
    return out


def tm_run(run: Run, shape: str, task: str, dataset: str) -> Run:
    """The trained model ``shape`` for ``task`` that the replay's EMM run ``run`` is built from."""
    return Run(EXPERIMENT, f"{shape}:{task}", run.seed, run.n_tasks, run.features,
               rung=owner(run.rung, "trained_model", dataset))


def emm_options(ps: protocol.ProtocolSettings, label: str = "emm", tasks: Sequence[str] = ()) -> dict:
    """EMM's options at a rung: our differentiable gate unless the flags say otherwise; a Table II
    variant ``label`` adds its own ``pretrained`` and ``use_mtm`` (the rung's gate is kept). A frozen
    feature that is one of the ``tasks`` (Census's 4th task is ``sex``) is a label, not an input:
    nothing to freeze, so it is left out (:func:`identity` records the flag as dropped)."""
    own = {} if label == "emm" else {k: v for k, v in config.VARIANTS[label][1].items()
                                      if k in ("pretrained", "use_mtm")}
    out = {**config.VARIANTS["emm:soft"][1], **ps.emm, **own}
    kept = tuple(f for f in out.get("frozen_features", ()) if f not in tasks)
    if "frozen_features" in out and kept != tuple(out["frozen_features"]):
        out.pop("frozen_features")
        if kept:
            out["frozen_features"] = kept
    return out


def identity(run: Run, st: "StudySettings") -> dict:
    """What a replay run adds to its identity: the rung, its flags and what they set for this model."""
    ps = _settings(run.rung, st.dataset)
    out = {**ps.record(), "dropped_flags": list(ps.dropped), "protocol_fit": dict(ps.fit),
           "protocol_init": dict(ps.init), "protocol_data": dict(ps.data)}
    if st.dataset == "synthetic":  # the generator's settings (Census rows keep their identity)
        out["synthetic_data"] = data_options(st.dataset, st.profile)
    part = _part_of(run.label)
    if part == "trained_model":
        out["options"] = dict(ps.single_task)
    elif part == "emm":
        from emm_lib.study.shared.run_settings import experiment_tasks

        tasks = experiment_tasks(st.dataset, run.n_tasks)
        out["options"] = emm_options(ps, run.label, tasks)
        if "frozen_features" in ps.emm and "frozen_features" not in out["options"]:
            out["dropped_flags"] = sorted(out["dropped_flags"] + ["frozen_sex_embedding"])
    return out


def build(run: Run, ds, st: "StudySettings", trained: dict | None):
    """A freshly built model of ``run`` with its rung's flags (``ProtocolSettings.prepare`` applied)."""
    from emm_lib.models import SingleTaskMLP, build_model

    ps = _settings(run.rung, st.dataset)
    torch.manual_seed(run.seed)
    part = _part_of(run.label)
    if part == "trained_model":
        shape, task = run.label.split(":")
        model = SingleTaskMLP(ds.spec, task, **config.model_settings(st.dataset, shape), **ps.single_task)
    elif part == "emm":
        sizes = config.model_settings(st.dataset, "emm")
        for k in ("embedding_dim", "component_shapes"):  # both come from the trained models
            sizes.pop(k)
        options = emm_options(ps, run.label, ds.tasks)
        model = protocol.emm_class(options).from_trained(trained, **sizes, **options)
    else:
        kind, opts = config.VARIANTS[run.label]
        model = build_model(kind, ds.spec, ds.tasks, **{**config.model_settings(st.dataset, kind), **opts})
    return ps.prepare(model)


def run(st: "StudySettings", rungs: Sequence[str] | None = None, *, executor: str = "local",
        address: str | None = None, log: Callable[[str], None] | None = None,
        variants: Sequence[str] | str | None = None, task_counts: Sequence[int] | None = None,
        models: Sequence[str] | None = None) -> pd.DataFrame:
    """Run (or resume) the replay at ``st`` (its dataset, profile and seeds), with :func:`plan`'s
    ``variants``, ``task_counts`` and ``models``; returns its results table."""
    from emm_lib.study.shared.runner import execute_plan
    from emm_lib.study.shared.run_settings import logger as _logger

    execute_plan(plan(st, rungs, variants=variants, task_counts=task_counts, models=models), st,
                 executor=executor, address=address, log=_logger(st, log))
    return read(st)


def read(st: "StudySettings", seeds: Sequence[int] | None = None) -> pd.DataFrame:
    """The replay's results table at ``st.out_dir`` (empty when it has not run): every model at ``seeds``
    (default ``st.seeds``), and Table II's variants at every seed they ran. (A variant needs its seed's
    trained-model checkpoints; where a CPU cannot rebuild them bit for bit, the variants run at new seeds,
    whose Table I rows are recorded but stay out of Table I's seeds.)"""
    path = st.out_dir / f"{EXPERIMENT}.csv"
    if not path.exists():
        return pd.DataFrame(columns=results.COLUMNS)
    df = results.read(path)
    keep = (df.seed.isin([int(s) for s in (st.seeds if seeds is None else seeds)])
            | df.model.isin(list(config.AUTHORS_PROTOCOL["variants"])))
    return df[keep].reset_index(drop=True)


# ------------------------------------------------------------------------------------- per-rung views


def _key(dataset: str, rung: str) -> str:
    from emm_lib.study.shared.run_settings import dataset_key_of

    return dataset_key_of(dataset, rung=rung)


def view(df: pd.DataFrame, dataset: str, rungs: Sequence[str]) -> pd.DataFrame:
    """Every rung's rows, shared runs included, with ``dataset`` = the rung's key (``census/rung-ours``),
    a ``rung`` column, and a ``tm_mean`` model per task (the mean of TM-1 and TM-2 per seed: the paper's
    reference for its gain column)."""
    parts = []
    for rung in rungs:
        for part in PARTS:
            src = df[(df.dataset == _key(dataset, owner(rung, part, dataset)))
                     & (df.model.map(_part_of) == part)]
            parts.append(src.assign(dataset=_key(dataset, rung), rung=rung))
    out = pd.concat(parts, ignore_index=True) if parts else df.iloc[:0].assign(rung=[])
    tms = out[out.model.map(_part_of) == "trained_model"]
    if len(tms):
        mean = (tms.groupby(["dataset", "rung", "task", "seed", "metric"], as_index=False)
                .agg(value=("value", "mean"), n=("value", "size")))
        mean = mean[mean.n == len(config.TM_SHAPES)].drop(columns="n").assign(model="tm_mean")
        out = pd.concat([out, mean], ignore_index=True)
    return out


# ------------------------------------------------------------------------- test-set variances (DeLong)


def _prediction(st: "StudySettings", label: str, seed: int, rung: str) -> dict | None:
    from emm_lib.study.shared.runs import predictions_path

    r = Run(EXPERIMENT, label, seed, rung=owner(rung, _part_of(label), st.dataset))
    path = predictions_path(st.out_dir, r, _key(st.dataset, r.rung))
    if not path.exists():
        return None
    with np.load(path) as z:
        return {"logits": z["logits"], "y": z["y"], "tasks": list(z["tasks"])}


def pair_variances(st: "StudySettings", rungs: Sequence[str] | None = None) -> pd.DataFrame:
    """Per rung, seed and task: the paired DeLong variance of every pair of models' test AUCs, of EMM
    against the TM mean (``model_b="tm_mean"``), and of each AUC itself (``model_b=""``)."""
    from emm_lib.study.shared.stats import delong

    rows = []
    for rung, seed in itertools.product(rungs_for(st.profile, rungs), st.seeds):
        labels2 = _labels(st.dataset, 2) + list(config.AUTHORS_PROTOCOL["variants"])
        preds = {lab: p for lab in labels2 if (p := _prediction(st, lab, seed, rung))}
        for task in sorted({t for p in preds.values() for t in p["tasks"]}):
            have = [(lab, p["logits"][:, p["tasks"].index(task)], p["y"][:, p["tasks"].index(task)])
                    for lab, p in preds.items() if task in p["tasks"]]
            if any(not np.array_equal(h[2], have[0][2]) for h in have):
                raise ValueError(f"Rung {rung} seed {seed}: the models disagree on the {task} test labels; "
                                 "their splits differ, so rerun them.")
            labels = [h[0] for h in have]
            _, cov = delong(have[0][2], np.stack([h[1] for h in have]))
            key = dict(dataset=_key(st.dataset, rung), seed=seed, task=task)
            for i, a in enumerate(labels):
                rows.append({**key, "model_a": a, "model_b": "", "var_diff": cov[i, i]})
            for i, j in itertools.combinations(range(len(labels)), 2):
                rows.append({**key, "model_a": labels[i], "model_b": labels[j],
                             "var_diff": cov[i, i] + cov[j, j] - 2 * cov[i, j]})
            tms = [labels.index(f"{s}:{task}") for s in config.TM_SHAPES if f"{s}:{task}" in labels]
            if "emm" in labels and len(tms) == len(config.TM_SHAPES):
                c = np.zeros(len(labels))
                c[labels.index("emm")] = 1.0
                c[tms] = -1.0 / len(tms)
                rows.append({**key, "model_a": "emm", "model_b": "tm_mean", "var_diff": float(c @ cov @ c)})
    return pd.DataFrame(rows, columns=["dataset", "seed", "task", "model_a", "model_b", "var_diff"])


def write_pair_variances(st: "StudySettings", rungs: Sequence[str] | None = None) -> str:
    """Merge :func:`pair_variances` into ``<out_dir>/authors_pair_variances.csv`` (committed beside the
    results; the logits are not), atomically; returns its path. A recorded pair whose predictions are not
    here (a run made elsewhere) keeps its row."""
    path = st.out_dir / PAIR_VARIANCES
    new = pair_variances(st, rungs)
    if path.exists():
        old = pd.read_csv(path, keep_default_na=False, dtype={"model_b": str})
        cols = ["dataset", "seed", "task", "model_a", "model_b"]
        keep = ~old.set_index(cols).index.isin(new.set_index(cols).index)
        new = pd.concat([old[keep], new], ignore_index=True)
    with atomic_write(path) as fh:
        new.to_csv(fh, index=False)
    return str(path)


def read_pair_variances(st: "StudySettings") -> pd.DataFrame:
    """The committed variances (empty when absent), ``model_b`` "" for a single AUC's variance."""
    path = st.out_dir / PAIR_VARIANCES
    if not path.exists():
        return pd.DataFrame(columns=["dataset", "seed", "task", "model_a", "model_b", "var_diff"])
    return pd.read_csv(path, keep_default_na=False, dtype={"model_b": str})
