"""The processed-tensor cache of a dataset loader: the splits as one ``.pt`` file plus a JSON
sidecar that records the settings (tasks, feature spec, info) and a sha256 of the tensors, and a
sha256 of its own content; a cache whose tensors or sidecar do not match their hashes is reported
and rebuilt (used by :mod:`emm_lib.data.census`)."""
from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import torch

from ..utils import atomic_write
from .types import FeatureSpec, Split

__all__ = ["tensors_sha256", "sidecar_sha256", "save", "load"]


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the cache's tensors (names, dtypes, shapes and bytes; ~20 MB for Census, ~0.05 s)."""
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def sidecar_sha256(meta: dict) -> str:
    """sha256 over the sidecar's content as JSON reads it back (every key but this hash, sorted)."""
    body = {k: v for k, v in meta.items() if k != "sidecar_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def save(path: Path, splits: dict[str, Split], meta: dict) -> None:
    """Write the processed cache (tensors + a JSON sidecar holding their hash); a folder where it
    cannot be written (read-only, shared) gives a warning: the data itself is usable."""
    tensors = {f"{s}_{part}": getattr(sp, part) for s, sp in splits.items() for part in ("sparse", "dense", "y")}
    for s in splits:  # codes are small: store them as int16 (4x smaller on disk), widened again on load
        if tensors[f"{s}_sparse"].numel() == 0 or int(tensors[f"{s}_sparse"].max()) < 2**15:
            tensors[f"{s}_sparse"] = tensors[f"{s}_sparse"].to(torch.int16)
    meta = json.loads(json.dumps(dict(meta, tensors_sha256=tensors_sha256(tensors))))  # as load() will read it
    meta["sidecar_sha256"] = sidecar_sha256(meta)
    try:
        with atomic_write(path, "wb") as fh:
            torch.save(tensors, fh)
        with atomic_write(path.with_suffix(".json"), "w") as fh:
            json.dump(meta, fh, indent=1, sort_keys=True)
    except OSError as exc:
        warnings.warn(f"Cannot write the processed cache {path} ({exc}); the data loaded fine but will be "
                      "preprocessed again next time. Pass data_dir= a writable folder to keep a cache.",
                      stacklevel=3)


def load(path: Path, tasks: tuple[str, ...]) -> tuple[dict, dict[str, Split]] | None:
    """The cached splits, if the cache is there, its sidecar matches its own hash (feature names,
    dense columns, info) and the tensors match the sidecar (tasks, spec, row counts, tensor hash); a
    cache that does not match is reported and rebuilt."""
    side = path.with_suffix(".json")
    if not (path.is_file() and side.is_file()):
        return None
    try:
        meta = json.loads(side.read_text())
        tensors = torch.load(path, map_location="cpu", weights_only=True)
        spec = FeatureSpec.from_dict(meta["spec"])
        problem = None
        if meta.get("sidecar_sha256") != sidecar_sha256(meta):
            problem = (f"its sidecar {side.name} does not hash to the value it records (edited or damaged, or "
                       "written before sidecars were hashed)")
        elif tuple(meta.get("tasks", ())) != tasks:
            problem = f"it holds tasks {meta.get('tasks')}, not {list(tasks)}"
        elif meta.get("tensors_sha256") != tensors_sha256(tensors):
            problem = "its tensors do not hash to the value in its sidecar (edited or damaged)"
        else:
            splits = {s: Split(tensors[f"{s}_sparse"].long(), tensors[f"{s}_dense"], tensors[f"{s}_y"], tasks)
                      for s in ("train", "val", "test")}
            rows = {s: len(sp) for s, sp in splits.items()}
            cols = {(sp.sparse.shape[1], sp.dense.shape[1]) for sp in splits.values()}
            if rows != meta["info"]["rows"] or cols != {(spec.n_sparse, spec.n_dense)}:
                problem = f"its tensors ({rows}, columns {cols}) do not match its sidecar"
    except Exception as exc:  # noqa: BLE001 -- a damaged cache is rebuilt
        problem = f"it cannot be read ({type(exc).__name__}: {str(exc)[:120]})"
    if problem:
        warnings.warn(f"Ignoring the processed cache {path}: {problem}. Rebuilding it from the raw files.",
                      stacklevel=3)
        return None
    return meta, splits
