"""The single home of the paper's settings, model sizes and run profiles.

Paper: Sec. IV ("Experimental settings"); authors' code: EMM-method.md Sec. 6.
Notebooks and benchmarks read these; nothing else repeats the numbers.
"""
from __future__ import annotations

import copy
from typing import Any

__all__ = ["TRAINING", "MODEL_SIZES", "PROFILES", "model_settings", "profile", "DATASETS", "PAPER_TABLES"]

DATASETS = ("census", "aliexpress", "ali-ccp", "synthetic")

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
PROFILES: dict[str, dict[str, Any]] = {
    "paper": dict(epochs=None, patience=5, seeds=(0, 1, 2), max_train_rows=None),
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


# ---------------------------------------------------------------- synthetic benchmark (issue 12)
# Beyond the paper: an AliExpress-shaped synthetic funnel (click -> conversion) with the paper's
# AliExpress shape (Sec. IV: 16 sparse and 63 dense features) and model sizes, generated by
# emm_lib.data.synthetic_stream.make_preset. Cardinalities are log-spaced from 2 to 1e5; base
# rates: CTR 3 %, CVR 0.3 % of impressions (a tenth of the clicks). Validation and test have a
# fixed size at every training size, so the data-size axis is judged on the same test rows.
SYNTHETIC_PRESETS: dict[str, dict[str, Any]] = {
    "synthetic-ali": dict(
        tasks=("click", "conversion"), n_sparse=16, n_dense=63,
        cardinality=(2, 4, 8, 17, 36, 74, 152, 312, 641, 1320, 2714, 5584, 11487, 23630, 48611, 100000),
        funnel=True, base_rates=(0.03, 0.003), correlation=0.5, n_val=200_000, n_test=200_000,
    ),
}
MODEL_SIZES["synthetic-ali"] = MODEL_SIZES["aliexpress"]  # embedding 5, blocks [128,64]/[256,64], towers [32]
TRAINING["synthetic-ali"] = dict(TRAINING["aliexpress"])  # batch 32,768, lr 1e-3, weight decay 1e-5
__all__ += ["SYNTHETIC_PRESETS"]
