"""The book's glossary: every internal name a table shows, with the words a reader sees instead.

One place for each label. :data:`COLUMNS` maps a column name of the library's DataFrames to its
header and its *kind*; the kind fixes how its values are written (:data:`KINDS`: the number of
decimals, a signed difference, a p-value, a model or task name). :data:`VALUES` and
:func:`value_label` turn internal values (model ids, data-set keys, protocol flags) into words.
:func:`emm_lib.study.shared.present.table` applies all of it, and the browser check
(``tests/browser_check.py``) fails when a page's text shows a left-hand name of :data:`COLUMNS`
or :data:`VALUES`.
"""
from __future__ import annotations

import re

from emm_lib.data.census import TASK_NAMES

__all__ = ["COLUMNS", "KINDS", "VALUES", "MODELS", "TASKS", "EXPERIMENTS", "SHAPES", "FLAGS",
           "INTERNAL_PATTERNS", "named", "feature_label", "column_label", "column_kind", "value_label", "dataset_label", "internal_names"]

# Fixed model names; ``tm1:<task>`` and ``tm2:<task>`` are derived in emm_lib.study.shared.present.display_name().
MODELS: dict[str, str] = {
    "shared_bottom": "SharedBottom",
    "mmoe": "MMoE",
    "ple": "PLE",
    "aitm": "AITM",
    "aitm:calibrated": "AITM (calibrated)",
    "adatt": "AdaTT",
    "emm": "EMM (paper's arg-max gate)",
    "emm:soft": "EMM (soft gate, ours)",
    "emm:hard-gate": "EMM (hard gate)",
    "emm:baseline": "EMM baseline",
    "emm:+mtm": "EMM +MTM",
    "emm:+p": "EMM +p",
    "emm:reused-embeddings": "EMM (reused embeddings)",
}
TASKS: dict[str, str] = dict(TASK_NAMES)
EXPERIMENTS: dict[str, str] = {"table1": "Table I", "table2": "Table II", "figure3": "Figure 3",
                               "leak_free": "Table I leak-free", "single_task": "single-task",
                               "synthetic_tasks": "synthetic"}
# The trained-model pairs of the synthetic sweep (emm_lib.config.SYNTHETIC_SWEEPS, axis "shapes").
SHAPES: dict[str, str] = {"widths": "the paper's two widths", "identical": "two identical shapes",
                          "depth_width": "different depth and width"}
# The protocol replay's flags (emm_lib.config.PROTOCOL_FLAGS), as a reader names them.
FLAGS: dict[str, str] = {
    "tm_block3_skipped": "trained model skips block 3",
    "bn_drift": "BatchNorm statistics drift",
    "hard_gate": "arg-max fusion gate",
    "linear_mtm": "linear MTM",
    "frozen_sex_embedding": "copied 'sex' embedding",
    "published_embedding_init": "published embedding initialisation",
    "published_training_loop": "published training loop",
    "final_epoch_weights": "last epoch's weights",
    "published_preprocessing": "published preprocessing",
}

# Number formats per kind of value; "text" values go through value_label().
KINDS: dict[str, str] = {
    "auc": "{:.4f}",       # AUC: four decimals everywhere
    "diff": "diff",        # a signed AUC difference, four decimals, real minus sign
    "p": "p",              # p-values: 0.048 or < 0.001
    "rate": "{:.3f}",      # a share of rows (positive rate)
    "percent": "{:.0%}",   # a share of runs
    "yes/no": "yes/no",    # a flag
    "weight": "{:.3f}",    # a gate or attention weight
    "corr": "{:.2f}",      # a correlation set by the experiment
    "count": "{:,.0f}",    # rows, parameters, seeds, tasks
    "seconds": "{:,.1f}",  # wall time in seconds
    "text": "text",
    "model": "model",
    "task": "task",
    "dataset": "dataset",
}

# column name -> (header, kind)
COLUMNS: dict[str, tuple[str, str]] = {
    "split": ("Split", "text"),
    "task": ("Task", "task"),
    "partner": ("Partner", "task"),
    "tasks": ("Tasks", "count"),
    "rows": ("Rows", "count"),
    "positive_rate": ("Positive rate", "rate"),
    "rank": ("Rank", "count"),
    "feature": ("Feature", "text"),
    "auc": ("AUC", "auc"),
    "val_auc": ("Validation AUC", "auc"),
    "test_auc": ("Test AUC", "auc"),
    "model": ("Model", "model"),
    "comparator": ("Comparator", "model"),
    "comparator_kind": ("Comparator kind", "text"),
    "level": ("Level", "count"),
    "layers": ("Layers", "text"),
    "layer_range": ("Layers (from:to)", "text"),
    "input_shape": ("Input width", "text"),
    "output_shape": ("Output width", "text"),
    "parameters": ("Parameters", "count"),
    "adapter_parameters": ("Adapter parameters", "count"),
    "trainable": ("Trainable parameters", "count"),
    "n_seeds": ("Seeds", "count"),
    "seeds": ("Seeds", "count"),
    "seeds_planned": ("Seeds planned", "count"),
    "points": ("Points planned", "count"),
    "points_run": ("Points run", "count"),
    "axis": ("Sweep axis", "text"),
    "point": ("Point", "dataset"),
    "mean_diff": ("Difference", "diff"),
    "difference_ci": ("Difference [95% CI]", "text"),
    "ci_low": ("95% CI from", "diff"),
    "ci_high": ("95% CI to", "diff"),
    "lo": ("95% CI from", "diff"),
    "hi": ("95% CI to", "diff"),
    "p_value": ("p", "p"),
    "p_holm": ("p (Holm)", "p"),
    "verdict": ("Verdict", "text"),
    "params_trainable": ("Trainable parameters", "count"),
    "params_total": ("All parameters", "count"),
    "inference_rows_per_s": ("Inference rows/s", "count"),
    "seconds_model": ("Training (s)", "seconds"),
    "seconds_with_single_task": ("With its trained models (s)", "seconds"),
    "peak_rss_mb": ("Peak memory (MB)", "count"),
    "n_rows": ("Training rows", "count"),
    "n_tasks": ("Tasks", "count"),
    "correlation": ("Correlation", "corr"),
    "mtm_partner": ("MTM attention on partner", "weight"),
    "task_gate_model0": ("Task gate on TM-1", "weight"),
    "partner_max": ("Largest partner weight", "weight"),
    "train_seconds_per_seed": ("Training per seed (s)", "count"),
    # The synthetic map (emm_lib.study.sweep.sweep_map)
    "worlds_planned": ("Worlds planned", "count"),
    "worlds_done": ("Worlds done", "count"),
    "worlds": ("Worlds", "count"),
    "init_seeds_per_world": ("Init seeds per world", "count"),
    "complete": ("Complete", "yes/no"),
    "model_kind": ("Model", "model"),
    "at_cap_runs": ("Runs at the epoch cap", "count"),
    "cap_share": ("Runs at the epoch cap", "percent"),
    "epochs_run_median": ("Epochs run (median)", "count"),
    "best_epoch_max": ("Latest best epoch", "count"),
    "epochs_cap": ("Epoch cap", "count"),
    "tm_test_auc": ("Trained models' test AUC", "auc"),
    "learnable": ("Learnable", "text"),
    "regime": ("EMM against its best baseline", "text"),
    "max_run_seconds": ("Longest run (s)", "seconds"),
    "runs": ("Runs", "count"),
    "dataset": ("Data", "dataset"),
    "device": ("Device", "text"),
    "generator": ("Generator", "text"),
    "shape": ("Trained-model shapes", "text"),
    "shapes": ("Trained-model shapes", "text"),
    "rule": ("Rule", "text"),
    "definition": ("Definition", "text"),
    "turns off": ("Turns off", "text"),
    "rung": ("Rung", "text"),
    "multi-task models": ("Multi-task models", "text"),
    "picture": ("Picture", "text"),
    "gain over TM mean": ("Gain over the TM mean", "text"),
    "categories": ("Values", "count"),
    "train": ("Training", "rate"),
    "val": ("Validation", "rate"),
    "test": ("Test", "rate"),
}

# Internal values of "text" columns -> words (models, tasks and data sets have their own functions).
VALUES: dict[str, str] = {
    **SHAPES, **FLAGS,
    "relatedness": "task relatedness", "task_count": "task count", "data_size": "data size",
    "shapes": "trained-model shapes",
    "synthetic": "synthetic", "synthetic-ali": "synthetic (AliExpress-shaped)", "aliexpress": "AliExpress",
    "ali-ccp": "Ali-CCP",
    "single-task": "a trained model", "multi-task": "a multi-task model",
    "train": "training", "val": "validation",
    **{f"no_{flag}": f"no {label}" for flag, label in FLAGS.items()},  # the replay's rungs
}


def column_label(name: str) -> str:
    return COLUMNS[name][0] if name in COLUMNS else str(name)


def column_kind(name: str, dtype=None) -> str:
    """The kind of a column: from :data:`COLUMNS`, else integers are counts, floats weights (3 decimals)."""
    if name in COLUMNS:
        return COLUMNS[name][1]
    kind = getattr(dtype, "kind", "")
    return "count" if kind in "iu" and kind else ("weight" if kind == "f" else "text")


_KEY_PARTS = {"corr": "correlation {}"}
_KEY_WORDS = {"leak-free": "leak-free features", "fixed-features": "fixed features"}
#: Internal names a pattern finds (model ids per task, data-set keys): the browser check uses them too.
INTERNAL_PATTERNS: tuple[str, ...] = (r"\btm\d:\w+", r"\b[\w-]+/(?:corr|rows|shape)=\S*", r"\bemm:[\w+-]+")


def named(value) -> str:
    """A name in running text, in words and quotes: a rung ``no_bn_drift`` -> "‘no BatchNorm statistics
    drift’", a flag ``final_epoch_weights`` -> "‘last epoch's weights’", ``paper`` -> "‘paper’"."""
    return f"\u2018{value_label(value)}\u2019"


def feature_label(name: str) -> str:
    """A raw data column in words: ``detailed_household_and_family_stat`` -> "detailed household and family stat"."""
    return str(name).replace("_", " ")


def dataset_label(key: str) -> str:
    """A data-set key in words: ``synthetic/corr=0.5/rows=100000/shape=identical`` ->
    "synthetic, correlation 0.5, 100,000 rows, two identical shapes"; ``census/3-tasks`` ->
    "Census-Income, 3 tasks"."""
    parts = str(key).split("/")
    words = ["Census-Income" if parts[0] == "census" else VALUES.get(parts[0], parts[0])]
    for p in parts[1:]:
        m = re.fullmatch(r"(\d+)-tasks", p)
        if m:
            words.append(f"{m.group(1)} tasks")
        elif "=" in p:
            k, v = p.split("=", 1)
            if k == "rows" and v.isdigit():
                words.append(f"{int(v):,} rows")
            elif k == "shape":
                words.append(SHAPES.get(v, v))
            else:
                words.append(_KEY_PARTS.get(k, k + " {}").format(v))
        else:
            words.append(_KEY_WORDS.get(p, p.replace("-", " ")))
    return ", ".join(words)


def value_label(value) -> str:
    """An internal text value in words (a flag, a shape, a sweep axis); other values unchanged."""
    if isinstance(value, str):
        if value in VALUES:
            return VALUES[value]
        if "," in value and all(v.strip() in VALUES for v in value.split(",")):
            return ", ".join(VALUES[v.strip()] for v in value.split(","))
    return value


def internal_names() -> list[str]:
    """The glossary's left-hand names that can only be internal (they hold ``_``, ``:``, ``=`` or
    ``/``, or are model ids such as ``emm`` and ``mmoe``): a page whose text shows one printed a raw
    table or label (the browser check)."""
    names = set(COLUMNS) | set(VALUES)
    return sorted({n for n in names if re.search(r"[_:=/]", n)} | set(MODELS))  # model ids: all internal
