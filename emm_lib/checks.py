"""Input checks at the library's public boundaries (``fit``, ``evaluate``, ``EMM.from_trained``).

Each check raises a ``ValueError``/``TypeError`` that names what is wrong and what to do, so no
public function returns a result computed from mismatched, empty or non-finite inputs.
"""
from __future__ import annotations

import numbers
from typing import Sequence

import numpy as np
import torch

from .data.types import Dataset, FeatureSpec, Split

__all__ = ["spec_differences", "check_spec", "check_tasks", "check_split", "check_split_values", "check_fit_inputs",
           "check_device", "whole_number", "finite_number", "check_finite_columns", "check_trained_specs",
           "check_specs_stated"]


def spec_differences(model_spec: FeatureSpec, data_spec: FeatureSpec) -> list[str]:
    """Human-readable differences between two feature specs (names, cardinalities, dense names)."""
    out: list[str] = []
    m_names, d_names = [f.name for f in model_spec.sparse], [f.name for f in data_spec.sparse]
    if m_names != d_names:
        only_m = [n for n in m_names if n not in d_names]
        only_d = [n for n in d_names if n not in m_names]
        out.append(f"sparse features differ (model only: {only_m[:5]}, data only: {only_d[:5]}"
                   + (", same names in another order" if not only_m and not only_d else "") + ")")
    else:
        cards = [(f.name, f.cardinality, g.cardinality) for f, g in zip(model_spec.sparse, data_spec.sparse)
                 if f.cardinality != g.cardinality]
        if cards:
            out.append("cardinalities differ (feature: model vs data) "
                       + ", ".join(f"{n}: {a} vs {b}" for n, a, b in cards[:5])
                       + (f" and {len(cards) - 5} more" if len(cards) > 5 else ""))
    if list(model_spec.dense) != list(data_spec.dense):
        out.append(f"dense features differ (model {list(model_spec.dense)[:8]}, data {list(data_spec.dense)[:8]})")
    return out


def check_spec(model_spec: FeatureSpec | None, data_spec: FeatureSpec | None, what: str, fix: str) -> None:
    """Raise a ValueError when two feature specs differ in any name or cardinality."""
    if model_spec is None or data_spec is None:
        return
    diffs = spec_differences(model_spec, data_spec)
    if diffs:
        raise ValueError(f"{what}: the model's feature spec does not match the data's: {'; '.join(diffs)}. {fix}")


def check_tasks(model_tasks: Sequence[str], data_tasks: Sequence[str], what: str) -> None:
    missing = [t for t in model_tasks if t not in data_tasks]
    if missing:
        raise ValueError(f"{what}: the model predicts task(s) {missing} that the data does not have; "
                         f"the data's tasks are {list(data_tasks)}. Load the data with tasks={list(model_tasks)}.")


def check_split(model, split: Split, what: str) -> None:
    """``model`` and ``split`` agree: tasks, feature spec (when the split carries one), column
    counts, index ranges; the split is non-empty and finite."""
    if not isinstance(split, Split):
        raise TypeError(f"{what} needs a Split (e.g. dataset.test), got {type(split).__name__}.")
    check_tasks(model.tasks, split.tasks, what)
    spec = getattr(model, "spec", None)
    check_spec(spec, split.spec, what, "Build (or load) the model for this dataset's spec.")
    if len(split) == 0:
        raise ValueError(f"{what}: the split has 0 rows; a metric of no rows means nothing.")
    if spec is not None and (split.sparse.shape[1], split.dense.shape[1]) != (spec.n_sparse, spec.n_dense):
        raise ValueError(f"{what}: the data has {split.sparse.shape[1]} sparse + {split.dense.shape[1]} dense "
                         f"columns but the model was built for {spec.n_sparse} + {spec.n_dense}.")
    check_split_values(split, spec, model.tasks, what)


def check_split_values(split: Split, spec: FeatureSpec | None, tasks: Sequence[str], what: str) -> None:
    """One pass over each of ``split``'s tensors (never per batch): every sparse code within its feature's
    cardinality (``spec``), finite dense values, labels of ``tasks`` that are 0 or 1. The error names
    ``what`` (the function and split), the feature, column or task, and how many values are bad."""
    if spec is not None and spec.n_sparse and len(split):
        cards = torch.tensor([f.cardinality for f in spec.sparse], device=split.sparse.device)
        # A comparison, not min/max over rows: a reduction down the columns of a row-major tensor is 6x slower.
        bad = ((split.sparse < 0) | (split.sparse >= cards)).any(0).nonzero().flatten().tolist()
        if bad:
            i, f = bad[0], spec.sparse[bad[0]]
            col = split.sparse[:, i]
            lo, hi, n = int(col.min()), int(col.max()), int(((col < 0) | (col >= f.cardinality)).sum())
            others = [spec.sparse[j].name for j in bad[1:4]]
            more = f" (and {len(bad) - 1} more feature(s): {others})" if others else ""
            raise ValueError(f"{what}: sparse feature {f.name!r} holds codes {lo}..{hi} ({n} row(s) out of range) "
                             f"but its cardinality is {f.cardinality} (codes 0..{f.cardinality - 1}){more}. "
                             "The data was encoded with another feature spec than the model's: build the model from "
                             "this dataset's spec, or encode the data with the model's (unseen values -> 0).")
    if split.dense.numel() and not bool(torch.isfinite(split.dense).all()):
        counts = (~torch.isfinite(split.dense)).sum(0)  # only on failure: which columns, how many values
        names = list(spec.dense) if spec is not None else [f"#{j}" for j in range(split.dense.shape[1])]
        cols = counts.nonzero().flatten().tolist()
        raise ValueError(f"{what}: dense feature(s) " + ", ".join(f"{names[j]!r} ({int(counts[j])} values)"
                                                                 for j in cols[:5])
                         + " hold NaN or inf. Fix or drop those rows (the loaders reject them).")
    y = split.select_tasks(list(tasks))
    other = (y != 0) & (y != 1)  # NaN too
    if bool(other.any()):
        j = int(other.any(0).nonzero()[0])
        col = y[:, j][other[:, j]]
        seen = sorted({str(v) for v in col[:1000].tolist()})[:5]
        raise ValueError(f"{what}: the labels of task {tasks[j]!r} must be 0 or 1, but {int(other[:, j].sum())} of "
                         f"{len(y)} are not (e.g. {seen}). Binary classification needs 0/1 labels: map the classes "
                         "to 0/1 (or drop the rows without a label).")


def whole_number(name: str, value, minimum: int | None = None, allow_none: bool = False,
                 strict: bool = False) -> int | None:
    """``value`` as an int (ints, integral floats and digit strings; ``strict``: ints only); else a
    ValueError naming ``name``."""
    if value is None and allow_none:
        return None
    v = value
    if strict and (isinstance(v, bool) or not isinstance(v, numbers.Integral)):
        raise ValueError(f"{name} must be a whole number (int){' or None' if allow_none else ''}, got {value!r}.")
    if isinstance(v, str):
        try:
            v = float(v.strip()) if v.strip() else v
        except ValueError:
            pass
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not float(v).is_integer():
        raise ValueError(f"{name} must be a whole number{' or None' if allow_none else ''}, got {value!r}.")
    v = int(v)
    if minimum is not None and v < minimum:
        raise ValueError(f"Need {name} >= {minimum}, got {value!r}.")
    return v


def finite_number(name: str, value, minimum: float | None = None, maximum: float | None = None) -> float:
    """``value`` as a float: a real number (not a bool or a string), finite, within the bounds; else a
    ValueError naming ``name`` (a NaN would pass every ``<``/``>`` check and poison what follows)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r} ({type(value).__name__}).")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        lo = "-inf" if minimum is None else f"{minimum:g}"
        hi = "inf" if maximum is None else f"{maximum:g}"
        raise ValueError(f"{name} must lie in [{lo}, {hi}], got {value!r}.")
    return v


def check_device(device) -> torch.device:
    """A device this machine has (``"auto"``, ``"cpu"``, ``"cuda[:N]"``, ``"mps"`` when present)."""
    from .utils import resolve_device

    try:
        dev = resolve_device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"Unknown device {device!r}: use 'auto', 'cpu' or 'cuda'.") from exc
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device={device!r}: this machine has {torch.cuda.device_count()} CUDA device(s); "
                             "use device='auto'.")
        return dev
    backend = getattr(torch.backends, dev.type, None)
    available = getattr(backend, "is_available", lambda: False)()
    if not available:
        raise ValueError(f"device={device!r} is not available on this machine; use device='auto' "
                         "(CUDA when present, else CPU) or 'cpu'.")
    return dev


def check_fit_inputs(model, dataset: Dataset, batch_size, max_train_rows, epochs, patience=None) -> None:
    """What ``fit`` needs: a model matching the data (tasks, spec), whole-number settings, at least
    one training batch of >= 2 rows (BatchNorm cannot train on one row), and training and validation
    data the model can read (:func:`check_split_values`)."""
    from .models.base import MultiTaskModel

    if not isinstance(model, MultiTaskModel):
        raise TypeError(f"fit() needs an emm_lib MultiTaskModel, got {type(model).__name__}.")
    if not isinstance(dataset, Dataset):
        raise TypeError(f"fit() needs a Dataset (from emm_lib.data.load), got {type(dataset).__name__}.")
    check_tasks(model.tasks, dataset.tasks, f"fit() on dataset {dataset.name!r}")
    check_spec(getattr(model, "spec", None), dataset.spec, f"fit() on dataset {dataset.name!r}",
               "Build the model from dataset.spec.")
    whole_number("epochs", epochs, minimum=1, strict=True)
    whole_number("batch_size", batch_size, minimum=2, strict=True)
    rows = whole_number("max_train_rows", max_train_rows, minimum=2, allow_none=True, strict=True)
    if patience is not None and (isinstance(patience, bool) or not isinstance(patience, numbers.Integral)
                                 or patience < 1):
        raise ValueError(f"fit(patience={patience!r}): patience is how many epochs without a better validation AUC "
                         "end training, so it must be a whole number >= 1; pass patience=None to train every epoch.")
    n = len(dataset.train) if rows is None else min(rows, len(dataset.train))
    if n < 2:
        raise ValueError(f"fit(): the training split of {dataset.name!r} has {len(dataset.train)} rows"
                         f"{f' (max_train_rows={rows})' if rows is not None else ''}; training needs at least 2.")
    if len(dataset.val) == 0:
        raise ValueError(f"fit(): the validation split of {dataset.name!r} is empty; the epoch cannot be selected.")
    spec = getattr(model, "spec", None) or dataset.spec
    for name, split in (("training", dataset.train), ("validation", dataset.val)):
        check_split_values(split, spec, model.tasks, f"fit(): the {name} split of {dataset.name!r}")


def check_finite_columns(values: np.ndarray, columns: Sequence[str], where: str,
                         max_abs: float | None = None) -> None:
    """Raise naming ``where`` and the column when a dense column holds NaN/inf (or ``|x| > max_abs``)."""
    values = np.asarray(values)
    if values.size == 0:
        return
    bad = ~np.isfinite(values)
    if bad.any():
        col = int(np.flatnonzero(bad.any(0))[0])
        raise ValueError(f"{where}: dense column {columns[col]!r} holds {int(bad[:, col].sum())} non-finite "
                         "value(s) (inf or NaN); fix or drop those rows before loading.")
    if max_abs is not None:
        big = np.abs(values) > max_abs
        if big.any():
            col = int(np.flatnonzero(big.any(0))[0])
            raise ValueError(f"{where}: dense column {columns[col]!r} holds values up to "
                             f"{float(np.abs(values[:, col]).max()):.3g}, beyond {max_abs:g}; these files should "
                             "hold normalised values. Scale the column before loading.")


def check_trained_specs(models: Sequence, names: Sequence[str], spec: FeatureSpec) -> None:
    """``EMM.from_trained``: every trained model that carries a spec was built for exactly ``spec``
    (same features, cardinalities and dense columns), else its components read other inputs."""
    for m, n in zip(models, names):
        ms = getattr(m, "spec", None)
        if isinstance(ms, FeatureSpec):
            check_spec(ms, spec, f"from_trained(): trained model {n}",
                       "Train the single-task models on the same dataset (same tasks, hence same columns) "
                       "as the EMM, or pass the spec they were trained with.")


def check_specs_stated(models: Sequence, names: Sequence[str], spec: FeatureSpec) -> None:
    """``EMM.from_trained``: every trained model states the features it was trained for (a
    :class:`~emm_lib.models.SingleTaskMLP` and its ``body`` carry ``.spec``); a hand-made body of the
    right input width could otherwise have been trained on any other data set's features."""
    bare = [n for m, n in zip(models, names) if not isinstance(getattr(m, "spec", None), FeatureSpec)]
    if bare:
        raise ValueError(
            f"from_trained(): trained model(s) {bare} carry no feature spec, so nothing shows that they were "
            f"trained on this spec's features ({spec.n_sparse} sparse, e.g. {[f.name for f in spec.sparse[:3]]}, "
            f"and {spec.n_dense} dense); a model trained on another data set's features of the same input width "
            "would be fused silently. Pass the SingleTaskMLP models (or their .body: it carries their spec), or "
            "state what a hand-made body was trained on with body.spec = <its FeatureSpec>.")
