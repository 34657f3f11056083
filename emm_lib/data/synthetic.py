"""Synthetic multi-task data with controlled task relatedness (MMoE, Ma et al. 2018, Sec. 4).

MMoE's construction for two regression tasks: orthogonal unit vectors
:math:`u_1, u_2`, weights :math:`w_1 = c u_1`, :math:`w_2 = c(p u_1 + \\sqrt{1-p^2} u_2)`,
input :math:`x \\sim N(0, I_d)` and

.. math:: y_i = w_i^\\top x + \\sum_{j=1}^m \\sin(\\alpha_j w_i^\\top x + \\beta_j) + \\epsilon_i,

with :math:`\\alpha_j, \\beta_j \\sim N(0, 1)` shared by the tasks, :math:`m = 10`,
:math:`c = 1` and :math:`\\epsilon_i \\sim N(0, 0.01)`. The cosine of the two
weight vectors, :math:`p`, controls how related the tasks are.

Generalised here to ``T`` tasks with every pairwise cosine equal to ``correlation``:
the weights are :math:`W = c\\,U L^\\top` with :math:`U` a random ``d x T`` matrix with
orthonormal columns and :math:`L L^\\top = (1-p) I + p \\mathbf{1}\\mathbf{1}^\\top`, so
:math:`w_i^\\top w_j = c^2 p`. For ``T = 2`` this is MMoE's construction up to a
rotation of :math:`\\mathbb{R}^d`, which leaves :math:`x \\sim N(0, I)` unchanged.
It needs :math:`-1/(T-1) \\le p \\le 1`.

Adapted to this project's inputs and binary tasks:

* :math:`x` has ``d = n_sparse + n_dense`` coordinates; the last ``n_dense`` are the
  dense features as they are; each of the first ``n_sparse`` is cut into
  ``cardinality`` equal-probability buckets (normal quantiles) and given as a
  categorical feature (codes 1..cardinality, 0 reserved for unseen values, as in the
  real loaders), so the model sees a coarsened view of what the labels depend on;
* each regression target is thresholded at its median: label = 1 above it (50 %
  positives per task).
"""
from __future__ import annotations

from statistics import NormalDist
from typing import Sequence

import numpy as np

from ..checks import finite_number, whole_number
from .types import Dataset, FeatureSpec, SparseFeature, Split

__all__ = ["make_synthetic", "task_weights", "check_generator_args"]

#: Generator arguments that are counts (ints only), with their minimum where no later check sets one.
_COUNTS = {"n_tasks": None, "n_rows": None, "n_train": None, "n_val": None, "n_test": None, "n_sparse": None,
           "n_dense": None, "cardinality": None, "seed": 0, "n_sines": 0, "pilot_rows": None}
#: Generator arguments that are real numbers (finite), with their bounds where no later check sets them.
_REALS = {"correlation": (None, None), "noise": (0.0, None), "val_frac": (None, None), "test_frac": (None, None)}


def check_generator_args(**args) -> dict:
    """The generators' numeric arguments, checked before anything is drawn: counts are ints (not
    ``1000.5`` or ``'1000'``), seeds and ``n_sines`` >= 0, reals finite (a NaN noise gives all-zero
    labels, an infinite one an all-zero task) and ``noise`` >= 0. Returns them as ints and floats;
    ``cardinality`` may be one int or one per feature."""
    out = {}
    for k, v in args.items():
        if k == "cardinality" and isinstance(v, (list, tuple, np.ndarray)):
            out[k] = [whole_number(f"cardinality[{i}]", c, strict=True) for i, c in enumerate(v)]
        elif k in _COUNTS:
            out[k] = whole_number(k, v, minimum=_COUNTS[k], strict=True)
        elif k in _REALS:
            out[k] = finite_number(k, v, *_REALS[k])
        else:
            raise KeyError(f"check_generator_args: unknown argument {k!r}")
    return out


def task_weights(
    n_tasks: int, dim: int, correlation: float, rng: np.random.Generator, scale: float = 1.0
) -> np.ndarray:
    """``(dim, n_tasks)`` weights with norm ``scale`` and pairwise cosine ``correlation``."""
    if n_tasks < 1:
        raise ValueError(f"n_tasks must be >= 1, got {n_tasks}.")
    if dim < n_tasks:
        raise ValueError(f"Need at least as many input coordinates as tasks: n_sparse + n_dense = {dim} < "
                         f"{n_tasks} tasks; add features.")
    lo = -1.0 / (n_tasks - 1) if n_tasks > 1 else -1.0
    if not lo <= correlation <= 1.0:
        raise ValueError(f"correlation must be in [{lo:.3g}, 1] for {n_tasks} tasks (all pairwise cosines equal), "
                         f"got {correlation}.")
    gram = (1.0 - correlation) * np.eye(n_tasks) + correlation * np.ones((n_tasks, n_tasks))
    vals, vecs = np.linalg.eigh(gram)
    root = vecs * np.sqrt(np.clip(vals, 0.0, None))  # root @ root.T == gram
    u, _ = np.linalg.qr(rng.standard_normal((dim, n_tasks)))  # orthonormal columns
    return scale * u @ root.T


def _check_settings(tasks: Sequence[str] | str | None, n_tasks: int, n_rows: int, n_sparse: int, n_dense: int,
                    cardinality: int, val_frac: float, test_frac: float) -> tuple[tuple[str, ...], int, int]:
    """The task names and the validation and test sizes; a clear error for settings that cannot work."""
    if tasks is not None:
        tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
        if not tasks or len(set(tasks)) != len(tasks):
            raise ValueError(f"tasks must be distinct names, got {list(tasks)}.")
        if n_tasks not in (2, len(tasks)):
            raise ValueError(f"tasks names {len(tasks)} tasks but n_tasks={n_tasks}; give one or the other.")
    else:
        tasks = tuple(f"t{i + 1}" for i in range(n_tasks))
    if n_sparse < 0 or n_dense < 0 or n_sparse + n_dense == 0:
        raise ValueError(f"Need n_sparse >= 0, n_dense >= 0 and at least one feature; got {n_sparse}, {n_dense}.")
    if cardinality < 2 and n_sparse:
        raise ValueError(f"cardinality must be >= 2, got {cardinality}.")
    if not (0 <= val_frac < 1 and 0 <= test_frac < 1 and val_frac + test_frac < 1):
        raise ValueError(f"val_frac and test_frac must be in [0, 1) with a sum below 1; got {val_frac}, {test_frac}.")
    n_val, n_test = int(round(val_frac * n_rows)), int(round(test_frac * n_rows))
    if n_rows - n_val - n_test < 2:
        raise ValueError(f"n_rows={n_rows} leaves no training rows; use more rows.")
    return tasks, n_val, n_test


def make_synthetic(
    tasks: Sequence[str] | None = None,
    n_tasks: int = 2,
    n_rows: int = 20000,
    correlation: float = 0.8,
    n_sparse: int = 8,
    n_dense: int = 8,
    cardinality: int = 10,
    seed: int = 0,
    val_frac: float = 0.1,
    test_frac: float = 0.1,
    n_sines: int = 10,
    noise: float = 0.1,
) -> Dataset:
    """A seeded synthetic :class:`Dataset` (see the module docstring).

    ``tasks`` (names) sets the number of tasks; otherwise ``n_tasks`` tasks named
    ``t1..tN``. ``noise`` is the standard deviation of :math:`\\epsilon` (0.1, i.e.
    MMoE's variance 0.01).
    """
    a = check_generator_args(n_tasks=n_tasks, n_rows=n_rows, correlation=correlation, n_sparse=n_sparse,
                             n_dense=n_dense, cardinality=cardinality, seed=seed, val_frac=val_frac,
                             test_frac=test_frac, n_sines=n_sines, noise=noise)
    (n_tasks, n_rows, correlation, n_sparse, n_dense, cardinality, seed, val_frac, test_frac, n_sines,
     noise) = a.values()
    if isinstance(cardinality, list):
        raise ValueError(f"make_synthetic takes one cardinality (an int) for every sparse feature, got {cardinality}; "
                         "make_streamed takes one per feature.")
    tasks, n_val, n_test = _check_settings(tasks, n_tasks, n_rows, n_sparse, n_dense, cardinality, val_frac,
                                           test_frac)
    rng = np.random.default_rng(seed)
    d, t = n_sparse + n_dense, len(tasks)
    w = task_weights(t, d, correlation, rng)
    alpha, beta = rng.standard_normal(n_sines), rng.standard_normal(n_sines)
    x = rng.standard_normal((n_rows, d))
    s = x @ w  # (N, T): w_i^T x
    y = s + np.sin(s[:, :, None] * alpha + beta).sum(-1) + noise * rng.standard_normal((n_rows, t))
    labels = (y > np.median(y, axis=0)).astype(np.float32)

    cuts = np.array([NormalDist().inv_cdf(k / cardinality) for k in range(1, cardinality)]) if n_sparse else None
    sparse = (np.searchsorted(cuts, x[:, :n_sparse]) + 1) if n_sparse else np.zeros((n_rows, 0), np.int64)
    dense = x[:, n_sparse:].astype(np.float32)

    perm = rng.permutation(n_rows)
    parts = {"test": perm[:n_test], "val": perm[n_test:n_test + n_val], "train": perm[n_test + n_val:]}
    splits = {k: Split.from_numpy(sparse[i], dense[i], labels[i], tasks) for k, i in parts.items()}
    spec = FeatureSpec(tuple(SparseFeature(f"s{j + 1}", cardinality + 1) for j in range(n_sparse)),
                       tuple(f"d{j + 1}" for j in range(n_dense)))
    wn = w / np.linalg.norm(w, axis=0)
    info = {
        "rows": {k: len(v) for k, v in splits.items()},
        "correlation": correlation,
        "weight_cosine": np.round(wn.T @ wn, 6).tolist(),
        "target_correlation": np.round(np.corrcoef(y.T), 6).tolist() if t > 1 else [[1.0]],
        "label_correlation": np.round(np.corrcoef(labels.T), 6).tolist() if t > 1 else [[1.0]],
        "settings": {"n_rows": n_rows, "n_sparse": n_sparse, "n_dense": n_dense, "cardinality": cardinality,
                     "seed": seed, "n_sines": n_sines, "noise": noise, "val_frac": val_frac, "test_frac": test_frac},
        "construction": "MMoE Sec. 4, generalised to T tasks; labels = target > median",
    }
    return Dataset("synthetic", tasks, spec, splits["train"], splits["val"], splits["test"], info)
