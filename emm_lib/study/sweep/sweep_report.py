"""The synthetic sweep's findings as tables and words (chapter 09; no training here).

* :func:`comparisons`: EMM (the paper's gate, and ours where it differs) against its best
  baseline per sweep point and task, by the study's verdict rule (:func:`emm_lib.study.shared.stats.compare`:
  comparator chosen on validation AUC, paired seed differences, 95% CIs, Holm).
* :func:`axis_view`: the comparison rows of one axis of the grid, with the axis value as ``x``.
* :func:`efficiency`: parameters, inference rows/s and training time with and without the
  trained single-task models (:func:`emm_lib.efficiency.training_wall_time`).
* :func:`gate_recovery`: the gates' mean weights per run against the known ``correlation``.
* :func:`recommendation`: a plain-words summary computed from those tables.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as _st

from emm_lib.study.shared import analysis, stats
from emm_lib import config
from emm_lib.efficiency import training_wall_time
from emm_lib.study.shared.runs import Run
from emm_lib.study.sweep.grid import EXPERIMENT, dataset_key, experiments, point_key, points

__all__ = ["BASELINES", "pair_variances", "comparisons", "axis_view", "view_table", "efficiency", "gate_recovery",
           "recommendation", "abstract"]

#: Multi-task baselines of the sweep (besides the trained single-task models of each point).
BASELINES = ("shared_bottom", "mmoe", "ple")
_X = {"relatedness": "correlation", "task_count": "n_tasks", "data_size": "n_rows", "shapes": "shape"}


def pair_variances(out_dir: str | Path, runs: pd.DataFrame, refresh: bool = True,
                   experiment: str = EXPERIMENT) -> pd.DataFrame:
    """Paired DeLong variances of the runs of pass ``experiment`` (``<experiment>_pair_variances.csv``).

    With ``refresh`` and saved test logits present (``predictions/``, gitignored), they are
    recomputed and written atomically; otherwise the committed file is read. Model names are
    the results' labels (``emm:soft``), datasets the results' keys.
    """
    from emm_lib.utils import atomic_write

    out_dir = Path(out_dir)
    names = experiments(experiment)
    path = out_dir / "analysis" / f"{names[0]}_pair_variances.csv"
    have = [p for e in names for p in (out_dir / "predictions" / e).glob("*.npz")]
    if refresh and have:  # merged: the committed pairs of runs whose logits are not here keep their rows
        pv = analysis.pair_variances(out_dir, names)
        pv = analysis.merge_pair_variances(pd.read_csv(path) if path.exists() else None,
                                           pv[pv.key.str.startswith("synthetic")])
        with atomic_write(path) as fh:
            pv.to_csv(fh, index=False)
    if not path.exists():
        return pd.DataFrame(columns=["dataset", "seed", "task", "model_a", "model_b", "var_diff"])
    pv = pd.read_csv(path)
    names = {d.replace("/", "_"): d for d in runs.dataset.unique()}
    labels = {k: m for m in runs.model.unique() for k in (m, m.replace(":", "_"))}  # files: the label, or its slug
    pv["dataset"] = pv.key.map(names)
    pv["model_a"], pv["model_b"] = pv.model_a.map(labels), pv.model_b.map(labels)
    return pv.dropna(subset=["dataset", "model_a", "model_b"])


def comparisons(runs: pd.DataFrame, pair_var: pd.DataFrame | None = None,
                models: Sequence[str] = ("emm", "emm:soft"), experiment: str = EXPERIMENT) -> pd.DataFrame:
    """Each EMM variant against its validation-chosen comparator (multi-task baselines, AITM with its
    calibrator where it ran, and the point's own trained models), per point and task; the point's
    columns added."""
    tms = sorted(m for m in runs.model.unique() if m.split(":")[0] in config.TM_SHAPES)
    aitm = sorted(m for m in runs.model.unique() if m.split(":")[0] == "aitm")
    out = []
    for m in models:
        if (runs.model == m).any():
            out.append(stats.compare(runs, m, [*BASELINES, *aitm, *tms], experiment=experiment, pair_var=pair_var))
    if not out:
        return pd.DataFrame()
    cmp = pd.concat(out, ignore_index=True)
    point = runs.drop_duplicates("dataset").set_index("dataset")[["generator", "correlation", "n_rows", "n_tasks", "shape"]]
    cmp = cmp.join(point, on="dataset")
    cmp["comparator_kind"] = np.where(cmp.comparator.str.split(":").str[0].isin(config.TM_SHAPES),
                                      "single-task", "multi-task")
    # The CI that counts: with the test-set variance where it was computed, else over seeds.
    test = cmp.ci_low_test.notna()
    cmp["lo"] = cmp.ci_low_test.where(test, cmp.ci_low)
    cmp["hi"] = cmp.ci_high_test.where(test, cmp.ci_high)
    return cmp


def coverage(runs: pd.DataFrame, g: dict, axes: Sequence[str]) -> pd.DataFrame:
    """Per axis: the grid's points, how many have every planned model, and the fewest seeds among them
    (a sweep in progress shows what is in so far)."""

    have = runs.groupby("dataset").agg(models=("model", set), seeds=("seed", "nunique"))
    rows = []
    for axis in axes:
        pts, seeds = points(g, [axis]), []
        for _, data, k, labels in pts:
            key = point_key(data, k)
            if key in have.index and set(labels) <= have.at[key, "models"]:
                seeds.append(int(have.at[key, "seeds"]))
        rows.append({"axis": axis, "points": len(pts), "points_run": len(seeds),
                     "seeds": min(seeds) if seeds else 0, "seeds_planned": len(g["seeds"])})
    return pd.DataFrame(rows)


def axis_view(cmp: pd.DataFrame, g: dict, axis: str) -> pd.DataFrame:
    """The rows of ``cmp`` on one axis of grid ``g``, with the axis value as column ``x``."""
    keys = {dataset_key(Run(EXPERIMENT, "emm", 0, k, "paper", data)) for _, data, k, _ in points(g, [axis])}
    view = cmp[cmp.dataset.isin(keys)].copy()
    view["x"] = view[_X[axis]]
    return view.sort_values(["x", "model", "task"]).reset_index(drop=True)


def view_table(view: pd.DataFrame, axis: str, extra: Sequence[str] = ()) -> pd.DataFrame:
    """An :func:`axis_view` as the rows a reader needs: the point (named by the axis's own column),
    ``extra`` columns, model (when several), task, comparator, seeds, the difference with its
    95% CI in one cell, Holm's p and the verdict (show it with :func:`emm_lib.study.shared.present.table`); the
    seeds only when they differ between rows."""
    from emm_lib.study.shared.present import fmt_diff

    ci = [f"{fmt_diff(m)} [{fmt_diff(lo)}, {fmt_diff(hi)}]" for m, lo, hi in zip(view.mean_diff, view.lo, view.hi)]
    out = view.drop(columns=_X[axis]).assign(difference_ci=ci).rename(columns={"x": _X[axis]})
    models = ["model"] if out.model.nunique() > 1 else []
    seeds = ["n_seeds"] if out.n_seeds.nunique() > 1 else []  # one seed count for all: say it once, outside
    cols = [*extra, _X[axis], *models, "task", "comparator", *seeds, "difference_ci", "p_holm", "verdict"]
    return out[[c for c in dict.fromkeys(cols) if c in out]].reset_index(drop=True)


def _settings(runs: pd.DataFrame, key: str) -> pd.Series:
    import json

    return runs.settings.map(lambda s: json.loads(s).get(key, np.nan))


def _device_type(s: pd.Series) -> pd.Series:
    """``cuda:0`` -> ``cuda``: the kind of device a run trained on."""
    return s.astype(str).str.split(":").str[0]


def _devices(s: pd.Series) -> str:
    """The devices a group of runs trained on (``cpu``, ``cuda``), as one label."""
    return ", ".join(sorted(set(_device_type(s))))


def efficiency(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (generator, rows, tasks, shape, model), means over seeds and correlations: trainable and
    total parameters, inference rows/s, and seconds to obtain the model without and with the
    trained single-task models (which EMM reuses); the largest process memory high-water mark seen
    at the end of such a run (recorded from this commit on; data generation included); and the
    device the runs trained on (times on a GPU and on a CPU are not comparable)."""
    r = runs.drop_duplicates(["dataset", "model", "seed"], keep="last").copy()
    for k in ("params_total", "params_trainable", "inference_rows_per_s", "process_peak_rss_mb"):
        r[k] = pd.to_numeric(_settings(r, k), errors="coerce")
    single = r[r.model.str.split(":").str[0].isin(config.TM_SHAPES)]
    multi = r[~r.index.isin(single.index)]
    wall = training_wall_time(multi, single)
    multi = multi.merge(wall, on=["dataset", "model", "seed"])
    group = ["generator", "n_rows", "n_tasks", "shape", "model"]
    out = multi.groupby(group, sort=True).agg(
        params_trainable=("params_trainable", "mean"), params_total=("params_total", "mean"),
        inference_rows_per_s=("inference_rows_per_s", "mean"), seconds_model=("seconds_model", "mean"),
        seconds_with_single_task=("seconds_with_single_task", "mean"),
        peak_rss_mb=("process_peak_rss_mb", "max"), runs=("seed", "count"), device=("device", _devices)).reset_index()
    tm = (single.assign(model="single-task models (all)").groupby(["dataset", "seed"] + group[:-1] + ["model"])
          .agg(params_trainable=("params_trainable", "sum"), params_total=("params_total", "sum"),
               seconds_model=("train_seconds", "sum"), device=("device", _devices)).reset_index()
          .groupby(group).agg(params_trainable=("params_trainable", "mean"), params_total=("params_total", "mean"),
                              seconds_model=("seconds_model", "mean"), runs=("seed", "count"),
                              device=("device", _devices)).reset_index())
    tm["seconds_with_single_task"] = tm.seconds_model
    return pd.concat([out, tm], ignore_index=True).sort_values(group, ignore_index=True)


def point_cost(runs: pd.DataFrame) -> pd.DataFrame:
    """What each point cost, per device it ran on: seeds, runs (trained models included), training
    seconds per seed (``fit`` time summed over the seed's runs, mean over seeds; data generation
    excluded) and the longest single run."""
    r = runs.drop_duplicates(["dataset", "model", "seed"], keep="last").assign(device=lambda d: _device_type(d.device))
    per_seed = r.groupby(["generator", "n_rows", "n_tasks", "dataset", "device", "seed"]).agg(
        runs=("model", "count"), seconds=("train_seconds", "sum"), longest=("train_seconds", "max")).reset_index()
    return (per_seed.groupby(["generator", "n_rows", "n_tasks", "dataset", "device"], sort=True)
            .agg(seeds=("seed", "nunique"), runs=("runs", "sum"), train_seconds_per_seed=("seconds", "mean"),
                 max_run_seconds=("longest", "max")).reset_index())


def gate_recovery(gates: pd.DataFrame) -> pd.DataFrame:
    """Per EMM run: the mean over tasks (and levels, and a per-level column) of the MTM attention on
    the partner, the task gate's weight on the first trained model, and the largest mean partner
    weight of the fusion gate (1/(T-1) = no preference, 1 = one partner always)."""
    if gates.empty:
        return pd.DataFrame()
    keys = ["dataset", "model", "seed", "generator", "correlation", "n_rows", "n_tasks", "shape"]
    g = gates
    mtm = g[(g.kind == "mtm") & (g.name == "partner")].groupby(keys + ["level"]).weight.mean().rename("mtm_partner")
    tg = g[(g.kind == "task_gate") & (g["index"] == 0)].groupby(keys + ["level"]).weight.mean().rename("task_gate_model0")
    pw = (g[g.kind == "partner"].groupby(keys + ["level", "task"]).weight.max().groupby(keys + ["level"]).mean()
          .rename("partner_max"))
    return pd.concat([mtm, tg, pw], axis=1).reset_index()


def _num(x) -> str:
    """An axis value in words: 0.25, 6, 1,000,000 (row counts with separators, not 1e+06)."""
    if not isinstance(x, (int, float, np.integer, np.floating)):
        return str(x)
    return f"{int(x):,}" if float(x).is_integer() and abs(x) >= 1000 else f"{x:g}"


def _fmt(xs: Sequence) -> str:
    xs = [_num(x) for x in xs]
    return ", ".join(xs) if xs else "none"


def _regimes(view: pd.DataFrame, model: str) -> dict[str, list]:
    """Axis values where ``model`` is better (some task better, none worse), worse (some task
    worse, none better), mixed, or not detectably different from its comparator."""
    out: dict[str, list] = {"better": [], "worse": [], "mixed": [], "no detectable difference": []}
    for x, v in view[view.model == model].groupby("x", sort=True):
        better, worse = (v.verdict == "better").any(), (v.verdict == "worse").any()
        out["mixed" if better and worse else "better" if better else "worse" if worse
            else "no detectable difference"].append(x)
    return out


def headroom(runs: pd.DataFrame) -> str:
    """How close to a perfect AUC the grid's models are, per generator (small room, small differences)."""
    t = runs[runs.metric == "test_auc"]
    if t.empty:
        return ""
    t = t.groupby(["generator", "dataset", "model", "task"]).value.mean().groupby(level="generator")
    from emm_lib.study.shared.glossary import value_label

    parts = [f"between {r['min']:.3f} and {r['max']:.3f} on {value_label(g)} data (median {r['median']:.3f})"
             for g, r in t.agg(["min", "median", "max"]).iterrows()]
    return ("Headroom: the mean test AUC of every model, task and point lies " + "; ".join(parts)
            + ". The closer to 1, the less any model can gain over another.")


def _cost(eff: pd.DataFrame, model: str, name: str) -> list[str]:
    """The recommendation's cost sentence: ``model`` against the baselines, medians over points (none without rows)."""
    e = eff[(eff.model == model)].merge(eff[eff.model.isin(BASELINES)], on=["generator", "n_rows", "n_tasks", "shape"],
                                        suffixes=("", "_b"))
    if not len(e):
        return []
    ratio_p = float(np.median(e.params_trainable / e.params_trainable_b))
    ratio_t = float(np.median(e.seconds_model / e.seconds_model_b))
    ratio_tt = float(np.median(e.seconds_with_single_task / e.seconds_model_b))
    ratio_i = float(np.median(e.inference_rows_per_s / e.inference_rows_per_s_b))
    return [f"Cost (median over points and baselines): {name} trains {ratio_p:.2g}x the baselines' trainable "
            f"parameters and takes {ratio_t:.2g}x their training time when the trained models are given "
            f"(reuse), {ratio_tt:.2g}x when their training is counted; it serves {ratio_i:.2g}x their "
            "inference rows/s."]


def recommendation(views: dict[str, pd.DataFrame], eff: pd.DataFrame, gate_rec: pd.DataFrame,
                   model: str = "emm") -> str:
    """Plain words, computed from the tables: where EMM beats its best baseline and where not,
    what it costs, and whether its gates follow the known relatedness."""
    from emm_lib.study.shared.present import display_name, fmt_diff

    what = {"relatedness": "task correlation", "task_count": "number of tasks", "data_size": "training rows",
            "shapes": "trained-model shapes"}
    name = display_name(model)
    lines = []
    seeds = {axis: int(v[v.model == model].n_seeds.min()) for axis, v in views.items() if len(v[v.model == model])}
    if seeds and max(seeds.values()) < 2:
        lines.append(f"With {min(seeds.values())} seed(s) per point there is no confidence interval, so no regime "
                     "can be called better or worse: run the sweep with three or more seeds (the paper profile) "
                     "before reading a recommendation from this page.")
    worth, not_worth = [], []
    for axis, view in views.items():
        v = view[view.model == model]
        if v.empty:
            continue
        mean = v.groupby("x").mean_diff.mean()
        span = f"mean test-AUC difference over tasks from {fmt_diff(mean.min())} to {fmt_diff(mean.max())}"
        if seeds[axis] < 2 <= max(seeds.values()):  # this axis only: the others can be read
            lines.append(f"Along {what[axis]}: {seeds[axis]} seed per point so far ({_fmt(sorted(mean.index))}), "
                         f"so no confidence interval and no verdict yet ({span}).")
            continue
        r = _regimes(v, model)
        said = "; ".join(f"{k} at {_fmt(v)}" for k, v in
                         (("better than its best baseline", r["better"]), ("worse", r["worse"]),
                          ("better on some tasks and worse on others", r["mixed"]),
                          ("not detectably different", r["no detectable difference"])) if v)
        lines.append(f"Along {what[axis]}: {name} is {said} ({span}).")
        worth += [f"{what[axis]} = {_num(x)}" for x in r["better"]]
        not_worth += [f"{what[axis]} = {_num(x)}" for x in r["worse"]]
    if worth:
        lines.append("Use EMM for accuracy where it was better: " + "; ".join(worth) + ".")
    if not_worth:
        lines.append("Do not use EMM for accuracy where it was worse: " + "; ".join(not_worth) + ".")
    if not worth and not not_worth and seeds and max(seeds.values()) >= 2:
        lines.append("Nowhere on this grid was EMM detectably better or worse than the best baseline: its case "
                     "rests on cost, not accuracy.")
    lines += _cost(eff, model, name)
    rel = gate_rec[(gate_rec.model == model) & (gate_rec.n_tasks == 2) & (gate_rec["shape"] == "widths")
                   & (gate_rec.generator == "synthetic")] if len(gate_rec) else gate_rec
    if len(rel) and rel.correlation.nunique() >= 3:
        per_run = rel.groupby(["dataset", "seed", "correlation"]).mtm_partner.mean().reset_index()
        rho, p = _st.spearmanr(per_run.correlation, per_run.mtm_partner)
        lines.append(f"Gates: the Multi-Task Merge attention on the partner task {'rises' if rho > 0 else 'falls'} "
                     f"with the known correlation (Spearman {fmt_diff(rho, 2)}, p = {p:.2g}, {len(per_run)} runs)"
                     + (" — the gate follows the structure." if p < 0.05 and rho > 0 else
                        " — no evidence that the gate follows the structure."))
    return "\n\n".join(lines)


def abstract(views: dict[str, pd.DataFrame], model: str = "emm") -> str:
    """The landing page's one-line answer of the synthetic map, in plain words: at how many of the grid's
    settings EMM beat its best baseline, at how many it lost, and the rest not detectably different."""
    what = {"relatedness": "task relatedness", "task_count": "number of tasks", "data_size": "training rows",
            "shapes": "trained-model shapes"}
    counts = {"better": 0, "worse": 0, "mixed": 0, "no detectable difference": 0}
    axes = []
    for axis, view in views.items():
        v = view[view.model == model]
        if len(v) and int(v.n_seeds.min()) >= 2:
            axes.append(what.get(axis, axis))
            for k, xs in _regimes(v, model).items():
                counts[k] += len(xs)
    n = sum(counts.values())
    if not n:
        return "Not answered yet: the synthetic map has fewer than two seeds per setting."
    mixed = f", mixed at {counts['mixed']}" if counts["mixed"] else ""
    said = axes[0] if len(axes) == 1 else ", ".join(axes[:-1]) + " and " + axes[-1]
    return (f"On synthetic data varying {said}, EMM beat the best multi-task baseline at "
            f"{counts['better']} of {n} settings and lost at {counts['worse']}{mixed}; elsewhere no difference "
            "was detectable.")
