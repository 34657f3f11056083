"""The paper's settings, model sizes, run profiles and the study's experiments and verdict rule.

Paper: Sec. IV ("Experimental settings"); authors' code: EMM-method.md Sec. 6.
Notebooks and benchmarks read these; nothing else repeats the numbers.
"""
from __future__ import annotations

import copy
from typing import Any

__all__ = ["DATASETS", "TRAINING", "MODEL_SIZES", "PROFILES", "model_settings", "profile", "PAPER_TABLES", "BASELINES", "VARIANTS", "TM_SHAPES", "EXPERIMENTS", "HEADLINE_FAMILY", "TEST_SET_TERM"]

DATASETS = ("census", "aliexpress", "ali-ccp", "synthetic", "synthetic-ali")

# Optimiser settings of the paper (Sec. IV-A): Adam.
TRAINING: dict[str, dict[str, Any]] = {
    "census": dict(batch_size=1024, lr=1e-3, weight_decay=1e-6, epochs=100),
    "aliexpress": dict(batch_size=32768, lr=1e-3, weight_decay=1e-5, epochs=10),
    "ali-ccp": dict(batch_size=32768, lr=1e-3, weight_decay=1e-5, epochs=10),
    "synthetic": dict(batch_size=1024, lr=1e-3, weight_decay=1e-6, epochs=20),
}

_CENSUS = {
    "embedding_dim": 4,
    # Trained single-task models: 3 MLP blocks each, tower [8] (authors' notebooks).
    "tm1": dict(block=(8, 8), n_blocks=3, tower=(8,)),
    "tm2": dict(block=(16, 8), n_blocks=3, tower=(8,)),
    # EMM: one level per component (3), two trained models per task, towers [8].
    "emm": dict(n_levels=3, tower=(8,), component_shapes=((8, 8), (16, 8))),
    # Baselines sized to match 12 components (paper Sec. IV-A).
    "shared_bottom": dict(bottom=(16,), tower=(8,)),
    "mmoe": dict(n_experts=12, expert=(16,), tower=(8,)),
    # 2 CGC levels x (2 specific experts per task x 2 tasks + 2 shared) = 12 experts.
    "ple": dict(n_levels=2, n_specific=2, n_shared=2, expert=(16,), tower=(8,)),
    # AITM: one bottom per task (AITM paper); calibrator alpha=0.6 is the model's default.
    "aitm": dict(bottom=(16,), tower=(8,)),
    # AdaTT with a shared fusion unit (the paper's general AdaTT; n_shared=0 is AdaTT-sp):
    # 2 fusion levels x (2 specific per task x 2 tasks + 2 shared) = 12 experts.
    "adatt": dict(n_levels=2, n_specific=2, n_shared=2, expert=(16,), tower=(8,)),
}

_ALI = {
    "tm1": dict(block=(128, 64), n_blocks=3, tower=(32,)),
    "tm2": dict(block=(256, 64), n_blocks=3, tower=(32,)),
    "emm": dict(n_levels=3, tower=(32,), component_shapes=((128, 64), (256, 64))),
    "shared_bottom": dict(bottom=(128, 64), tower=(32,)),
    "mmoe": dict(n_experts=12, expert=(128, 64), tower=(32,)),
    "ple": dict(n_levels=2, n_specific=2, n_shared=2, expert=(128, 64), tower=(32,)),
    "aitm": dict(bottom=(128, 64), tower=(32,)),
    "adatt": dict(n_levels=2, n_specific=2, n_shared=2, expert=(128, 64), tower=(32,)),
}

MODEL_SIZES: dict[str, dict[str, Any]] = {
    "census": _CENSUS,
    "synthetic": _CENSUS,
    "ali-ccp": {"embedding_dim": 4, **_ALI},
    "aliexpress": {"embedding_dim": 5, **_ALI},
}

# Run profiles. "paper": the paper's optimiser settings, up to its epoch budget with
# early stopping on the validation mean AUC. "default": minutes on a 2-core CPU on the
# full data. "tiny": seconds, for tests and smoke runs (subsampled rows).
# The synthetic funnel (config.synthetic) has the AliExpress shape, sizes and optimiser.
MODEL_SIZES["synthetic-ali"] = MODEL_SIZES["aliexpress"]  # embedding 5, blocks [128,64]/[256,64], towers [32]
TRAINING["synthetic-ali"] = dict(TRAINING["aliexpress"])  # batch 32,768, lr 1e-3, weight decay 1e-5

PROFILES: dict[str, dict[str, Any]] = {
    "paper": dict(epochs=None, patience=5, seeds=(0, 1, 2, 3, 4), max_train_rows=None),
    "default": dict(epochs=3, patience=2, seeds=(0, 1, 2), max_train_rows=None),
    "tiny": dict(epochs=1, patience=1, seeds=(0,), max_train_rows=20000),
}


def model_settings(dataset: str, model: str) -> dict[str, Any]:
    """Size settings of ``model`` on ``dataset`` (a copy), with the dataset's embedding dim."""
    if dataset not in MODEL_SIZES:
        raise ValueError(f"Unknown dataset {dataset!r}. Known datasets: {sorted(MODEL_SIZES)}.")
    sizes = MODEL_SIZES[dataset]
    if model not in sizes or model == "embedding_dim":
        known = sorted(k for k in sizes if k != "embedding_dim")
        raise ValueError(f"No settings for model {model!r} on {dataset!r}. Known: {known}.")
    out = copy.deepcopy(dict(sizes[model]))
    out["embedding_dim"] = sizes["embedding_dim"]
    return out


def profile(name: str, dataset: str = "census") -> dict[str, Any]:
    """A run profile merged with the dataset's optimiser settings (``epochs`` filled in)."""
    if name not in PROFILES:
        raise ValueError(f"Unknown profile {name!r}. Known profiles: {sorted(PROFILES)}.")
    if dataset not in TRAINING:
        raise ValueError(f"Unknown dataset {dataset!r}. Known datasets: {sorted(TRAINING)}.")
    out = dict(TRAINING[dataset])
    for k, v in PROFILES[name].items():
        if v is not None or k not in out:
            out[k] = v
    out["profile"] = name
    out["seeds"] = list(out["seeds"])
    return out


# The paper's reported numbers (single runs), shown only as labelled references.
PAPER_TABLES: dict[str, dict[str, dict[str, float]]] = {
    # Table I, Census-Income: model -> task -> test AUC
    "table1_census": {
        "TM-1": {"income": 0.93009, "marital": 0.99230},
        "TM-2": {"income": 0.90739, "marital": 0.99356},
        "PLE": {"income": 0.92528, "marital": 0.99465},
        "MMoE": {"income": 0.94051, "marital": 0.99437},
        "AITM": {"income": 0.94527, "marital": 0.99436},
        "AdaTT": {"income": 0.94523, "marital": 0.99479},
        "EMM": {"income": 0.94108, "marital": 0.99467},
    },
    # Table II, Census-Income
    "table2_census": {
        "baseline": {"income": 0.94088, "marital": 0.99383},
        "baseline+MTM": {"income": 0.93215, "marital": 0.99376},
        "baseline+p": {"income": 0.92647, "marital": 0.99352},
        "EMM": {"income": 0.94108, "marital": 0.99467},
    },
}


# ---------------------------------------------------------------------------
# The study: model variants by label and the experiments that run them.

BASELINES: tuple[str, ...] = ("shared_bottom", "mmoe", "ple", "aitm", "adatt")

#: label -> (registered model, options on top of MODEL_SIZES). ``emm`` is the paper's method
#: (arg-max fusion gate, Sec. III-C); ``emm:soft`` is our differentiable gate. With two tasks
#: the two gates are the same function (the only other task gets all the weight).
#: AITM's calibrator (weight 0.6 in the AITM paper) assumes a funnel, which Census' tasks are
#: not (it forces p(marital) <= p(income) at base rates 0.43 vs 0.06): ``aitm`` runs without it,
#: ``aitm:calibrated`` with it. The paper's AITM had no calibrator (EMM-method.md Sec. 6).
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "shared_bottom": ("shared_bottom", {}),
    "mmoe": ("mmoe", {}),
    "ple": ("ple", {}),
    "aitm": ("aitm", {"alpha": 0.0}),
    "aitm:calibrated": ("aitm", {"alpha": 0.6}),
    "adatt": ("adatt", {}),
    "emm": ("emm", {"fusion": "hard"}),
    "emm:soft": ("emm", {"fusion": "soft"}),
    # Table II (paper's gate): "baseline" = the same structure, components trained from scratch.
    "emm:baseline": ("emm", {"fusion": "hard", "pretrained": False, "use_mtm": False}),
    "emm:+mtm": ("emm", {"fusion": "hard", "pretrained": False, "use_mtm": True}),
    "emm:+p": ("emm", {"fusion": "hard", "pretrained": True, "use_mtm": False}),
    "emm:reused-embeddings": ("emm", {"fusion": "hard", "reuse_embeddings": True}),
}

#: Trained single-task model shapes (TM-1, TM-2; MODEL_SIZES keys).
TM_SHAPES: tuple[str, ...] = ("tm1", "tm2")

#: experiment -> feature set (emm_lib.data.census.FEATURE_SETS), task counts, model labels.
#: ``figure3`` keeps one feature set at every task count (all four candidate label columns
#: removed), so only the number of tasks varies.
EXPERIMENTS: dict[str, dict[str, Any]] = {
    "table1": dict(features="paper", task_counts=(2,), models=BASELINES + ("aitm:calibrated", "emm")),
    "table2": dict(features="paper", task_counts=(2,),
                   models=("emm:baseline", "emm:+mtm", "emm:+p", "emm:reused-embeddings")),
    "leak_free": dict(features="leak-free", task_counts=(2,), models=BASELINES + ("emm",)),
    "figure3": dict(features="fixed-features", task_counts=(2, 3, 4), models=BASELINES + ("emm", "emm:soft")),
    # Beyond the paper: more tasks on synthetic data of controlled relatedness.
    "synthetic_tasks": dict(features="paper", task_counts=(2, 4, 6), models=("mmoe", "ple", "emm", "emm:soft")),
}

#: The book's headline family (emm_lib.study.shared.verdicts): experiments x tasks x comparators for the EMM
#: variants, each comparator the candidate with the best mean validation AUC on the task (a
#: multi-task baseline; a trained single-task model ``tmK:<task>``). A comparison whose per-seed
#: val and test AUCs equal an earlier one's to ``duplicate_tol`` is the same function (``emm`` and
#: ``emm:soft`` with two tasks) and is counted once. Holm runs over the whole family.
HEADLINE_FAMILY: dict[str, Any] = {
    "experiments": ("table1", "leak_free", "figure3"),
    "models": ("emm", "emm:soft"),
    "comparators": {"multi-task baseline": BASELINES + ("aitm:calibrated",), "trained model": TM_SHAPES},
    "duplicate_tol": 0.0,
}

#: The test-set term of the verdict rule (emm_lib.study.shared.stats.compare), measured, not argued
#: (scripts/test_set_term.py, results/paper/analysis/test_set_term.csv): with fixed trained models,
#: redrawing the 1:1 val/test halves of the one Census test file spreads the AUC difference on a
#: half by 0.47-0.53 of its paired DeLong variance v (500 draws, 4 model pairs, 2 tasks), and the
#: whole file's DeLong variance is 0.50 v. That split noise is already in the seed spread (the
#: halves are redrawn per seed), so the term added for the file itself is ``factor * v``.
TEST_SET_TERM: dict[str, Any] = {"factor": 0.5, "calibration": "results/paper/analysis/test_set_term.csv"}
