"""The synthetic sweep (chapter 09): when does fusing trained models help?

A *sweep point* is one synthetic data variant: its generator (``synthetic``: the MMoE-style
data of :mod:`emm_lib.data.synthetic`, Census model sizes; ``synthetic-ali``: the
AliExpress-shaped funnel preset, the paper's Ali model sizes, Sec. IV), its rows, its task
``correlation`` and, on the ``shapes`` axis, the shapes of the trained models EMM fuses. A run
carries its point as a string in :attr:`emm_lib.study.shared.runs.Run.data`
(``synthetic/corr=0.5/rows=100000``, ``synthetic/corr=0.5/rows=100000/shape=identical``,
``synthetic-ali/rows=1000000``), which is also the run's dataset key (with ``/3-tasks`` after
the generator for more than two tasks), so points never share rows, files or resume checks.

The grid is data (:data:`emm_lib.config.SYNTHETIC_SWEEPS`, one per run profile); this module
plans its runs, gives each run its point's settings and data, and measures what the chapter
needs beyond AUC: parameters and inference rows/s per run, and, for EMM, the gates' weights
averaged over the validation split (Eq. 2 task gate, Eq. 3 fusion gate, MTM attention).

    python -m emm_lib.study synthetic --profile paper [--axes relatedness task_count]

The second pass (:data:`emm_lib.config.SYNTHETIC_MAPS`) is the same machinery under its own
experiment names (``synthetic_map``, ``synthetic_map_single_task``): a run's experiment picks its
grid (:func:`grid`), so the passes never share rows, checkpoints or resume checks. A point of the map
has its worlds (data seeds; every model of a world trains on the same rows) and one stopping rule:

    python -m emm_lib.study synthetic_map --profile paper --axes relatedness task_count
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd
import torch

from emm_lib import config
from emm_lib.study.shared.runs import Run, split_seed

if TYPE_CHECKING:  # pragma: no cover
    from emm_lib.data import Dataset
    from emm_lib.study.shared.run_settings import StudySettings

__all__ = ["AXES", "PASSES", "EXPERIMENT", "TM_EXPERIMENT", "MAP_EXPERIMENT", "GATES", "grid", "experiments", "worlds", "point_data", "parse", "dataset_key",
           "points", "plan", "point_settings", "load_point", "trained_sizes", "init_seed", "identity",
           "emm_options", "measure", "gate_weights", "run_sweep", "read"]

AXES = ("relatedness", "task_count", "data_size", "shapes")
EXPERIMENT = "synthetic"                 # results/<profile>/synthetic.csv
TM_EXPERIMENT = "synthetic_single_task"  # the sweep's trained single-task models
GATES = "analysis/synthetic_gates.csv"           # per-run gate weights of the EMM runs
MAP_EXPERIMENT = config.SYNTHETIC_MAP["experiment"]  # the second pass (the map)
_PASSES = {EXPERIMENT: ("SYNTHETIC_SWEEPS", TM_EXPERIMENT),
           MAP_EXPERIMENT: ("SYNTHETIC_MAPS", config.SYNTHETIC_MAP["tm_experiment"])}
PASSES = tuple(_PASSES)  # the multi-task experiment of each pass
_EVAL_ROWS = 32_768                      # rows for the inference timing and the gate averages


def _pass(experiment: str) -> str:
    """The multi-task experiment of the pass ``experiment`` belongs to (its trained models' included)."""
    for exp, (_, tm) in _PASSES.items():
        if experiment in (exp, tm):
            return exp
    raise ValueError(f"Not a synthetic sweep experiment: {experiment!r}; known: {sorted(_PASSES)}.")


def grid(profile: str, experiment: str = EXPERIMENT) -> dict[str, Any]:
    """The grid of a run profile for the pass of ``experiment``: :data:`emm_lib.config.SYNTHETIC_SWEEPS`
    (the first pass), :data:`emm_lib.config.SYNTHETIC_MAPS` (``synthetic_map``, the second)."""
    name = _PASSES[_pass(experiment)][0]
    grids = getattr(config, name)
    if profile not in grids:
        raise ValueError(f"No synthetic sweep for profile {profile!r}; known: {sorted(grids)} "
                         f"(add one to config.{name}).")
    return grids[profile]


def experiments(experiment: str = EXPERIMENT) -> tuple[str, str]:
    """``(multi-task experiment, trained-model experiment)`` of the pass of ``experiment``."""
    exp = _pass(experiment)
    return exp, _PASSES[exp][1]


def _grid_of(run: Run, st: "StudySettings") -> dict[str, Any]:
    return grid(st.profile, run.experiment)


def worlds(g: dict, axis: str, data: str) -> tuple[int, ...]:
    """The worlds (data seeds) planned at a point: the grid's seeds, or the first k of them where
    the data-size axis sets ``worlds`` per size."""
    per = g[axis].get("worlds", {}) if axis == "data_size" else {}
    n = per.get(parse(data)["n_rows"])
    return tuple(g["seeds"])[:n] if n is not None else tuple(g["seeds"])


def point_data(generator: str, n_rows: int, correlation: float | None = None, shape: str | None = None) -> str:
    """The point string of :attr:`Run.data`: ``synthetic/corr=0.5/rows=100000[/shape=...]``."""
    parts = [generator] + ([f"corr={float(correlation):g}"] if correlation is not None else [])
    return "/".join(parts + [f"rows={int(n_rows)}"] + ([f"shape={shape}"] if shape else []))


def parse(data: str) -> dict[str, Any]:
    """``{"generator", "correlation", "n_rows", "shape"}`` of a point string (inverse of :func:`point_data`)."""
    gen, *kv = data.split("/")
    if gen not in ("synthetic", "synthetic-ali") or not kv:
        raise ValueError(f"Not a sweep point: {data!r}; expected e.g. 'synthetic/corr=0.5/rows=100000'.")
    out: dict[str, Any] = {"generator": gen, "correlation": None, "n_rows": None, "shape": None}
    for item in kv:
        k, _, v = item.partition("=")
        if k == "corr":
            out["correlation"] = float(v)
        elif k == "rows":
            out["n_rows"] = int(v)
        elif k == "shape":
            out["shape"] = v
        else:
            raise ValueError(f"Unknown sweep point field {k!r} in {data!r}; known: corr, rows, shape.")
    return out


def dataset_key(run: Run) -> str:
    """The ``dataset`` column of a sweep run (:func:`point_key` of its point and task count)."""
    return point_key(run.data, run.n_tasks)


def point_key(data: str, n_tasks: int) -> str:
    """The ``dataset`` column of a point: its data, with ``/<k>-tasks`` for k != 2 tasks."""
    gen, _, rest = data.partition("/")
    return "/".join([gen] + ([f"{n_tasks}-tasks"] if n_tasks != 2 else []) + [rest])


def _models(g: dict, n_tasks: int, models: Sequence[str]) -> list[str]:
    out = [m for m in models if m not in config.TM_SHAPES]
    return [m for m in out if not (m == "emm:soft" and n_tasks < g["soft_gate_from_tasks"])]


def points(g: dict, axes: Sequence[str] | None = None) -> list[tuple[str, str, int, list[str]]]:
    """``(axis, point data, n_tasks, multi-task model labels)`` of every point on ``axes`` (default:
    the grid's ``axes``, else every axis)."""
    axes = tuple(g.get("axes", AXES)) if axes is None else axes
    bad = [a for a in axes if a not in AXES or a not in g]
    if bad:
        raise ValueError(f"Unknown sweep axis {bad[0]!r}; known: {[a for a in AXES if a in g]}.")
    out = []
    for axis in axes:
        a = g[axis]
        if axis == "relatedness":
            out += [(axis, point_data(a["dataset"], a["n_rows"], c), a["n_tasks"], _models(g, a["n_tasks"], g["models"]))
                    for c in a["correlation"]]
        elif axis == "task_count":
            out += [(axis, point_data(a["dataset"], a["n_rows"], a["correlation"]), k, _models(g, k, g["models"]))
                    for k in a["n_tasks"]]
        elif axis == "data_size":
            out += [(axis, point_data(a["dataset"], n), 2, _models(g, 2, a.get("models", g["models"])))
                    for n in a["n_train"]]
        else:  # shapes: "widths" is the relatedness points' own pair of trained models
            for c in a["correlation"]:
                for name, v in a["variants"].items():
                    shape = None if tuple(v["trained"]) == config.TM_SHAPES and not v["adapters"] else name
                    out.append((axis, point_data(a["dataset"], a["n_rows"], c, shape), a["n_tasks"],
                                _models(g, a["n_tasks"], a["models"])))
    return out


def plan(st: "StudySettings", axes: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
         rows: Sequence[int] | None = None, experiment: str = EXPERIMENT) -> list[Run]:
    """Every run of the sweep on ``axes`` (seed-major; per world, its trained models, the runs that
    fuse them, then the baselines: the longest chain starts first);
    ``rows``: only the points with these training rows (e.g. the 10^7-row point, on a GPU);
    ``experiment``: the pass (``synthetic``, ``synthetic_map``); a point runs its own worlds only."""
    from emm_lib.study.shared.run_settings import experiment_tasks

    g = grid(st.profile, experiment)
    exp, tm_exp = experiments(experiment)
    pts = points(g, axes)
    planned: dict[tuple, set] = {}  # a point on two axes (relatedness 0.5 = 2 tasks) runs both axes' worlds
    for axis, data, k, _ in pts:
        planned.setdefault((data, k), set()).update(worlds(g, axis, data))
    if rows is not None:
        want, have = set(rows), sorted({parse(d)["n_rows"] for _, d, _, _ in pts})
        if not want <= set(have):
            raise ValueError(f"No sweep point with {sorted(want - set(have))} training rows on axes "
                             f"{list(axes)} of profile {st.profile!r}; the points have {have}.")
        pts = [p for p in pts if parse(p[1])["n_rows"] in want]
    runs: list[Run] = []
    seen: set[Run] = set()
    for seed in (seeds if seeds is not None else g["seeds"]):
        for _, data, k, labels in pts:
            if seed not in planned[(data, k)]:  # --seeds picks among the point's worlds
                continue
            tasks = experiment_tasks(parse(data)["generator"], k)
            new = [Run(tm_exp, f"{s}:{t}", seed, k, "paper", data) for t in tasks for s in config.TM_SHAPES]
            fuse_first = sorted(labels, key=lambda lab: config.VARIANTS.get(lab, (lab,))[0] != "emm")
            new += [Run(exp, lab, seed, k, "paper", data) for lab in fuse_first]
            for r in new:
                if r not in seen:
                    seen.add(r)
                    runs.append(r)
    return runs


def _epochs(g: dict, p: dict) -> int:
    if p["generator"] == "synthetic-ali":
        e = g["data_size"]["epochs"]
        return int(e[p["n_rows"]] if isinstance(e, dict) else e)
    if g["task_count"]["epochs"] != g["relatedness"]["epochs"]:
        raise ValueError("The sweep grid's relatedness and task_count axes share points (same generator and rows), "
                         f"so they need the same epochs; got {g['relatedness']['epochs']} and "
                         f"{g['task_count']['epochs']}. Fix config.SYNTHETIC_SWEEPS.")
    return int(g["shapes" if p["shape"] else "relatedness"]["epochs"])


def _batch_size(g: dict, p: dict) -> int:
    """The data-size axis's batch per point where the grid sets one (equal Adam steps across points),
    else the generator's (``config.TRAINING``)."""
    per_point = g["data_size"].get("batch_size", {}) if p["generator"] == "synthetic-ali" else {}
    if not isinstance(per_point, dict):  # one batch at every size (the map)
        return int(per_point)
    return int(per_point.get(p["n_rows"], config.TRAINING[p["generator"]]["batch_size"]))


def point_settings(run: Run, st: "StudySettings") -> "StudySettings":
    """``st`` for a sweep run: the point's generator, its optimiser settings (``config.TRAINING``; the
    data-size axis's batch per point) and the grid's epoch budget; the point's rows are all used
    (no ``max_train_rows``)."""
    p, g = parse(run.data), _grid_of(run, st)
    opt = config.TRAINING[p["generator"]]
    return dataclasses.replace(st, dataset=p["generator"], epochs=_epochs(g, p), batch_size=_batch_size(g, p),
                               lr=opt["lr"], weight_decay=opt["weight_decay"], max_train_rows=None)


def _overrides(g: dict, p: dict) -> dict:
    return dict(g["data_size"].get("overrides", {})) if p["generator"] == "synthetic-ali" else {}


@functools.lru_cache(maxsize=1)  # the runs of one point follow each other in the plan
def _generate(data: str, n_tasks: int, seed: int, overrides: tuple) -> "Dataset":
    from emm_lib.data import load
    from emm_lib.study.shared.run_settings import experiment_tasks

    p = parse(data)
    tasks = experiment_tasks(p["generator"], n_tasks)
    if p["generator"] == "synthetic":
        return load("synthetic", tasks=tasks, n_rows=p["n_rows"], correlation=p["correlation"], seed=seed)
    return load("synthetic-ali", tasks=tasks, n_train=p["n_rows"], seed=seed, **dict(overrides))


def load_point(data: str, st: "StudySettings", n_tasks: int, seed: int, experiment: str = EXPERIMENT) -> "Dataset":
    """The data of a sweep point for run ``seed`` (generator seed = the run's split seed: the world)."""
    p = parse(data)
    over = _overrides(grid(st.profile, experiment), p)
    return _generate(data, n_tasks, split_seed(seed), tuple(sorted((k, _hashable(v)) for k, v in over.items())))


def _hashable(v):
    return tuple(v) if isinstance(v, list) else v


def _variant(g: dict, p: dict) -> dict:
    if not p["shape"]:
        return {"trained": config.TM_SHAPES, "adapters": False}
    variants = g["shapes"]["variants"]
    if p["shape"] not in variants:
        raise ValueError(f"Unknown trained-model shape variant {p['shape']!r}; known: {sorted(variants)}.")
    return variants[p["shape"]]


def trained_sizes(run: Run, st: "StudySettings") -> dict:
    """Sizes of a sweep trained model (``tm1``/``tm2`` = first/second of the point's pair)."""
    p = parse(run.data)
    i = config.TM_SHAPES.index(run.label.split(":")[0])
    shape = _variant(_grid_of(run, st), p)["trained"][i]
    if isinstance(shape, str):
        return config.model_settings(p["generator"], shape)
    return {**shape, "embedding_dim": config.MODEL_SIZES[p["generator"]]["embedding_dim"]}


def init_seed(run: Run, st: "StudySettings") -> int:
    """Init and shuffle seed: a pair of identically shaped trained models differ by seed only."""
    if not run.is_trained_model:
        return run.seed
    trained = _variant(_grid_of(run, st), parse(run.data))["trained"]
    same = len(trained) > 1 and all(t == trained[0] for t in trained)
    return run.seed + (1000 * config.TM_SHAPES.index(run.label.split(":")[0]) if same else 0)


def identity(run: Run, st: "StudySettings") -> dict:
    """What a sweep point adds to a run's identity: the point and the settings that make its data."""
    p = parse(run.data)
    g = _grid_of(run, st)
    out: dict[str, Any] = {"data": run.data, "generator": p["generator"], "correlation": p["correlation"],
                           "n_rows": p["n_rows"], "overrides": _overrides(g, p)}
    if run.is_trained_model:
        out.update(sizes=trained_sizes(run, st), init_seed=init_seed(run, st))
    elif config.VARIANTS[run.label][0] == "emm":
        v = _variant(g, p)
        out.update(shape=p["shape"] or "widths", adapters=bool(v["adapters"]),
                   trained=[t if isinstance(t, str) else dict(t) for t in v["trained"]])
    return out


def emm_options(run: Run, st: "StudySettings") -> dict:
    """Extra :meth:`EMM.from_trained` options of a sweep point (``adapters`` on the shapes axis)."""
    return {"adapters": True} if _variant(_grid_of(run, st), parse(run.data))["adapters"] else {}


def _head(split, n: int = _EVAL_ROWS):
    return split if len(split) <= n else split.subset(torch.arange(n))


def measure(run: Run, model, ds: "Dataset", st: "StudySettings") -> tuple[dict, pd.DataFrame | None]:
    """Efficiency settings of a run (parameters, inference rows/s on test rows) and, for EMM,
    its gate weights on the validation split (:func:`gate_weights`)."""
    from emm_lib.efficiency import inference_rows_per_second, parameter_counts, process_peak_rss_mb

    counts = parameter_counts(model)
    rate = inference_rows_per_second(model, _head(ds.test), passes=5, warmup=1, device=st.device)
    eff = {"params_total": counts["total"], "params_trainable": counts["trainable"],
           "inference_rows_per_s": round(float(rate), 1), "inference_rows": min(len(ds.test), _EVAL_ROWS),
           "process_peak_rss_mb": process_peak_rss_mb()}
    gates = None if run.is_trained_model or config.VARIANTS[run.label][0] != "emm" else gate_weights(model, ds.val)
    return eff, gates


@torch.no_grad()
def gate_weights(model, split, batch_size: int = 8192) -> pd.DataFrame:
    """Mean gate weights of an EMM over (the first rows of) ``split``, in eval mode.

    One row per (level, task, kind, index): ``task_gate`` (Eq. 2, weight of each of the task's
    trained models), ``partner`` (Eq. 3 partner weights over tasks; with two tasks the other
    task always has weight 1), ``fusion_score`` (Eq. 3 scores F) and ``mtm`` (the Multi-Task
    Merge attention on [own, partner]).
    """
    was = model.training
    model.eval()
    sums: dict[tuple, np.ndarray] = {}
    n = 0
    device = next(model.parameters()).device  # the rows go where the model is (CUDA after fit on a GPU)
    try:
        for batch in _head(split).to(device).batches(batch_size):
            levels = model.explain(batch)["levels"]
            for lv in levels:
                for kind, key in (("task_gate", "task_gate"), ("partner", "partner_weights"),
                                  ("fusion_score", "fusion_scores"), ("mtm", "mtm")):
                    for task, w in lv.get(key, {}).items():
                        s = w.float().sum(0).cpu().numpy()
                        k = (lv["level"], task, kind)
                        sums[k] = sums.get(k, 0) + s
            n += int(batch.y.shape[0])
    finally:
        model.train(was)
    tasks = list(model.tasks)
    rows = []
    for (level, task, kind), s in sums.items():
        for i, v in enumerate(s / n):
            name = tasks[i] if kind in ("partner", "fusion_score") else (("own", "partner")[i] if kind == "mtm"
                                                                        else f"model {i}")
            rows.append({"level": level, "task": task, "kind": kind, "index": i, "name": name, "weight": float(v)})
    return pd.DataFrame(rows)


def run_sweep(st: "StudySettings", axes: Sequence[str] | None = None, seeds: Sequence[int] | None = None, *,
              executor: str = "local", address: str | None = None, log=None,
              rows: Sequence[int] | None = None, experiment: str = EXPERIMENT) -> dict[str, pd.DataFrame]:
    """Run (or resume) the sweep of pass ``experiment`` (``rows``: only the points with these training
    rows); returns :func:`read` of its results."""
    from emm_lib.study.shared.runner import execute_plan
    from emm_lib.study.shared.run_settings import logger as _logger

    execute_plan(plan(st, axes, seeds, rows, experiment), st, executor=executor, address=address,
                 log=_logger(st, log))
    return read(st.out_dir, experiment)


def read(out_dir: str | Path, experiment: str = EXPERIMENT) -> dict[str, pd.DataFrame]:
    """The tables of pass ``experiment``: ``runs`` (multi-task and trained models, with point columns),
    ``gates``."""
    from emm_lib.study.shared import results

    out_dir = Path(out_dir)
    names = experiments(experiment)
    parts = [results.read(out_dir / f"{n}.csv") for n in names if (out_dir / f"{n}.csv").exists()]
    runs = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=results.COLUMNS)
    gpath = out_dir / "analysis" / f"{names[0]}_gates.csv"
    gates = pd.read_csv(gpath) if gpath.exists() else pd.DataFrame()
    return {"runs": _with_point(runs), "gates": _with_point(gates)}


def _with_point(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    if "dataset" not in df.columns:
        return df
    keys = df.dataset.astype(str)
    df["n_tasks"] = [int(p.split("-")[0]) if (p := k.split("/")[1]).endswith("-tasks") else 2 for k in keys]
    parsed = [parse("/".join(x for x in k.split("/") if not x.endswith("-tasks"))) for k in keys]
    for col in ("generator", "correlation", "n_rows", "shape"):
        df[col] = [q[col] for q in parsed]
    df["shape"] = df["shape"].fillna("widths")
    return df
