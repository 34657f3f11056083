"""A map point too long for one session: its runs carried in git until a world is whole.

The map's 10^7-row point costs ~23,000 CPU s per world (chapter 09's cost table): more than a
2-core session, and the next session may run on another machine. Such a point is run with
``--results-dir results/carry``. The text of its unfinished worlds is committed there (``.gitignore``
lets it in): the rows and histories of finished runs and their test logits (the paired variances
need every model of a world). Weights are not: a trained model that a later fusion run needs is
trained again for its checkpoint and kept only when it reproduces its recorded rows bit for bit
(:mod:`emm_lib.study.shared.runs`), and a run stopped mid-way starts over on a new machine.
:func:`check_data` first confirms that this machine generates the same rows for the world.

A world enters the map (``results/<profile>/``) only when every planned run of it is done:
:func:`merge_world` copies its rows, histories, gates and test logits and adds its paired DeLong
variances; :func:`prune_world` then drops the merged world's binary files from the carry folder.

    python -m emm_lib.study.sweep.carry synthetic-ali/rows=10000000 --seeds 0 1 2 --check-data
    python -m emm_lib.study.sweep.carry synthetic-ali/rows=10000000 --seeds 0 --prune
"""
from __future__ import annotations

import argparse
import hashlib
import platform
from pathlib import Path
from typing import Sequence

import pandas as pd

from emm_lib import config
from emm_lib.study.shared import analysis, results
from emm_lib.study.shared.run_settings import experiment_tasks
from emm_lib.study.sweep.grid import experiments, grid, parse, point_key, points
from emm_lib.utils import atomic_write, repo_root

__all__ = ["CARRY_DIR", "carry_dir", "missing_runs", "merge_world", "prune_world", "progress", "progress_words",
           "data_digest", "check_data"]

#: Where a long point's unfinished worlds live between sessions (committed; relative to the repository).
CARRY_DIR = "results/carry"


def carry_dir() -> Path:
    """:data:`CARRY_DIR` in this checkout."""
    return repo_root() / CARRY_DIR


def _planned(data: str, profile: str, experiment: str) -> tuple[str, int, set[str]]:
    """The point's dataset key, its task count, and every label its world needs (trained models included)."""
    g = grid(profile, experiment)
    found = [(k, labels) for _, d, k, labels in points(g) if d == data]
    if not found:
        known = sorted({d for _, d, _, _ in points(g)})
        raise ValueError(f"{data!r} is not a point of the {experiment} grid of profile {profile!r}; "
                         f"its points are {known}.")
    k, labels = found[0]
    tms = {f"{s}:{t}" for s in config.TM_SHAPES for t in experiment_tasks(parse(data)["generator"], k)}
    return point_key(data, k), k, set(labels) | tms


def _runs(out: Path, names: Sequence[str], key: str, seed: int) -> dict[str, pd.DataFrame]:
    tables = {n: results.read(out / f"{n}.csv") for n in names if (out / f"{n}.csv").exists()}
    return {n: df[(df.dataset == key) & (df.seed == seed)] for n, df in tables.items()}


def missing_runs(carry: Path, data: str, seed: int, profile: str = "paper",
                 experiment: str = "synthetic_map") -> list[str]:
    """The labels of world ``seed`` of point ``data`` that have no rows in ``carry/<profile>`` yet."""
    key, _, need = _planned(data, profile, experiment)
    have = {m for df in _runs(Path(carry) / profile, experiments(experiment), key, seed).values() for m in df.model}
    return sorted(need - have)


def _new_runs(src: pd.DataFrame, path: Path) -> list[pd.DataFrame]:
    """The runs of ``src`` (one world's rows of one table) that ``path`` does not hold yet; a run it holds
    with other values stops the merge before anything is written."""
    old = results.read(path) if path.exists() else pd.DataFrame(columns=results.COLUMNS)
    new = []
    for (dataset, model, seed), rows in src.groupby(["dataset", "model", "seed"], sort=False):
        there = old[(old.dataset == dataset) & (old.model == model) & (old.seed == seed)]
        if len(there) and results._signature(there) != results._signature(rows):
            raise ValueError(f"{path} already holds other rows for {model} seed {seed} on {dataset}; "
                             "the carried world was not merged. Remove one of the two row sets first.")
        if there.empty:
            new.append(rows)
    return new


def _merge_gates(src: Path, dst: Path, key: str, seed: int) -> int:
    if not src.exists():
        return 0
    new = pd.read_csv(src)
    new = new[(new.dataset == key) & (new.seed == seed)]
    if new.empty:
        return 0
    with results._locked(dst):
        old = pd.read_csv(dst) if dst.exists() else new.iloc[:0]
        old = old[~((old.dataset == key) & (old.seed == seed) & old.model.isin(new.model))]
        with atomic_write(dst) as fh:
            pd.concat([old, new], ignore_index=True).to_csv(fh, index=False)
    return len(new)


def _pairs(src: Path, names: Sequence[str], key: str, seed: int) -> pd.DataFrame:
    """The world's paired DeLong variances, from the carried test logits (they must share test labels)."""
    pv = analysis.pair_variances(src, names)
    return pv[(pv.key == key.replace("/", "_")) & (pv.seed == seed)]


def _write_pairs(pv: pd.DataFrame, dst: Path, names: Sequence[str]) -> None:
    path = dst / "analysis" / f"{names[0]}_pair_variances.csv"
    out = analysis.merge_pair_variances(pd.read_csv(path) if path.exists() else None, pv)
    with atomic_write(path) as fh:
        out.to_csv(fh, index=False)


def _world_files(out: Path, sub: str, names: Sequence[str], key: str, seed: int) -> list[Path]:
    stem = f"{key.replace('/', '_')}__seed{seed}__"
    return [f for n in names for f in sorted((out / sub / n).glob(f"{stem}*"))]


def merge_world(carry: str | Path, dest: str | Path, data: str, seed: int, profile: str = "paper",
                experiment: str = "synthetic_map") -> dict[str, int]:
    """Copy world ``seed`` of point ``data`` from ``carry/<profile>`` into ``dest/<profile>``: rows, histories,
    gates, test logits and paired variances. Refuses a world with runs still to do (naming them)."""
    src, dst = Path(carry) / profile, Path(dest) / profile
    todo = missing_runs(Path(carry), data, seed, profile, experiment)
    if todo:
        raise ValueError(f"World {seed} of {data} in {src} is not whole yet: no rows for {', '.join(todo)}. "
                         "Finish it first (rerun the study with --results-dir pointing at the carry folder).")
    key, _, _ = _planned(data, profile, experiment)
    names = experiments(experiment)
    pv = _pairs(src, names, key, seed)  # checked before anything is written, as are the rows below
    new = [(n, r) for n, df in _runs(src, names, key, seed).items() for r in _new_runs(df, dst / f"{n}.csv")]
    for n, rows in new:
        results.append(dst / f"{n}.csv", rows[results.COLUMNS].to_dict("records"))
    files = _world_files(src, "histories", names, key, seed) + _world_files(src, "predictions", names, key, seed)
    for f in files:
        target = dst / f.relative_to(src)
        with atomic_write(target, "wb") as fh:
            fh.write(f.read_bytes())
    gates = _merge_gates(src / "analysis" / f"{names[0]}_gates.csv", dst / "analysis" / f"{names[0]}_gates.csv",
                         key, seed)
    _write_pairs(pv, dst, names)
    return {"runs_added": len(new), "files_copied": len(files), "gate_rows": gates, "pairs": len(pv)}


def prune_world(carry: str | Path, data: str, seed: int, profile: str = "paper",
                experiment: str = "synthetic_map") -> int:
    """Delete a whole world's binary files (checkpoints and resume states, test logits) from the carry folder;
    its rows, histories and gates stay there, so the carried study still counts its runs as done."""
    if missing_runs(Path(carry), data, seed, profile, experiment):
        raise ValueError(f"World {seed} of {data} is not whole; its carried files are still needed.")
    src = Path(carry) / profile
    key, _, _ = _planned(data, profile, experiment)
    names = experiments(experiment)
    gone = _world_files(src, "predictions", names, key, seed)
    for n in names:
        folder = src / "checkpoints" / n / key.replace("/", "_") / f"seed{seed}"
        gone += [f for f in sorted(folder.rglob("*")) if f.is_file()]
    for f in gone:
        f.unlink()
    return len(gone)


def progress(carry: str | Path, profile: str = "paper", experiment: str = "synthetic_map",
             skip: Sequence[tuple[str, int]] = ()) -> pd.DataFrame:
    """Per world in the carry folder (but those in ``skip``: (dataset, seed), e.g. merged ones): its point,
    the runs done of those planned, and the runs under way (stopped mid-way, with a resume state saved)."""
    src, names = Path(carry) / profile, experiments(experiment)
    cols = ["dataset", "world", "runs_done", "runs_planned", "under_way"]
    if not src.is_dir():
        return pd.DataFrame(columns=cols)
    data_of = {point_key(d, k).replace("/", "_"): d for _, d, k, _ in points(grid(profile, experiment))}
    done: dict[tuple[str, int], set[str]] = {}
    for n in names:
        if (src / f"{n}.csv").exists():
            for (key, seed), df in results.read(src / f"{n}.csv").groupby(["dataset", "seed"]):
                done.setdefault((key, int(seed)), set()).update(df.model)
    moving: dict[tuple[str, int], list[str]] = {}
    for f in sorted(src.glob("checkpoints/*/*/seed*/*.resume.pt")):
        data = data_of.get(f.parent.parent.name)
        if data is not None:
            moving.setdefault((_planned(data, profile, experiment)[0], int(f.parent.name[4:])), []).append(
                f.name[: -len(".resume.pt")])
    rows = []
    for key, seed in sorted(set(done) | set(moving)):
        data = data_of.get(key.replace("/", "_"))
        if (key, seed) in set(skip) or data is None:
            continue
        need = _planned(data, profile, experiment)[2]
        under = sorted(lab for lab in need if lab.replace(":", "_") in moving.get((key, seed), []))
        rows.append({"dataset": key, "world": seed, "runs_done": len(done.get((key, seed), set()) & need),
                     "runs_planned": len(need), "under_way": under})
    return pd.DataFrame(rows, columns=cols)


def progress_words(prog: pd.DataFrame, where: str = CARRY_DIR) -> str:
    """One sentence on the carried worlds (empty when there are none)."""
    from emm_lib.study.shared.glossary import dataset_label

    if prog.empty:
        return ""
    parts = [f"{dataset_label(r.dataset)}, world {r.world}: {r.runs_done} of {r.runs_planned} runs done"
             + (f", {len(r.under_way)} under way" if r.under_way else "") for r in prog.itertuples()]
    return (f"In progress, carried between sessions in `{where}/` and in no verdict until a world is whole: "
            + "; ".join(parts) + ".")


def data_digest(data: str, seed: int, profile: str = "paper", experiment: str = "synthetic_map") -> dict[str, str]:
    """sha256 per split (sparse codes, dense features, labels) of world ``seed`` of point ``data``, generated here."""
    from emm_lib.study.shared.run_settings import settings
    from emm_lib.study.sweep.grid import load_point

    _, k, _ = _planned(data, profile, experiment)
    ds = load_point(data, settings("synthetic", profile), k, seed, experiment)
    out = {}
    for name in ("train", "val", "test"):
        split, h = getattr(ds, name), hashlib.sha256()
        for t in (split.sparse, split.dense, split.y):
            h.update(t.contiguous().numpy().tobytes())
        out[name] = h.hexdigest()
    return out


def _machine() -> str:
    """The CPU, and whether it has AVX-512 (numpy's and the BLAS's vector paths differ with it)."""
    try:
        info = open("/proc/cpuinfo").read().splitlines()
        cpu = next(ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name"))
        flags = next((ln for ln in info if ln.startswith("flags")), "").split()
        cpu += ", AVX-512" if "avx512f" in flags else ", no AVX-512"
    except (OSError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
    return f"{cpu}, {platform.machine()}"


def check_data(carry: str | Path, data: str, seed: int, profile: str = "paper",
               experiment: str = "synthetic_map") -> pd.DataFrame:
    """Generate world ``seed`` of ``data`` here and compare its digests with those the carry folder
    recorded on earlier machines (``data_digests.csv``; recorded when new). A world's runs may train on
    several machines; they must see the same rows. Raises naming the split when they would not."""
    path = Path(carry) / profile / "data_digests.csv"
    key, _, _ = _planned(data, profile, experiment)
    now = data_digest(data, seed, profile, experiment)
    cols = ["dataset", "seed", "split", "sha256", "machine"]
    old = pd.read_csv(path, dtype=str) if path.exists() else pd.DataFrame(columns=cols)
    mine = old[(old.dataset == key) & (old.seed == str(seed))]
    for split, digest in now.items():
        rec = mine[mine.split == split]
        if len(rec) and set(rec.sha256) != {digest}:
            raise ValueError(f"World {seed} of {data}: its {split} split generated here ({_machine()}) differs from "
                             f"the one recorded in {path} on {rec.machine.iloc[0]}. Its carried runs would "
                             "mix two datasets: finish them on a machine that generates the recorded data.")
    new = pd.DataFrame([{"dataset": key, "seed": str(seed), "split": sp, "sha256": d, "machine": _machine()}
                        for sp, d in now.items()])
    out = pd.concat([old, new], ignore_index=True).drop_duplicates(cols)
    with atomic_write(path) as fh:
        out.to_csv(fh, index=False)
    return out[(out.dataset == key) & (out.seed == str(seed))]


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m emm_lib.study.sweep.carry", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("point", help="the point's data, e.g. synthetic-ali/rows=10000000")
    ap.add_argument("--seeds", type=int, nargs="+", required=True, help="the worlds to merge")
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--carry", default=CARRY_DIR, help=f"the carry folder (default {CARRY_DIR})")
    ap.add_argument("--dest", default="results", help="where the map's tables are (default results)")
    ap.add_argument("--prune", action="store_true", help="then drop the merged worlds' binary files from --carry")
    ap.add_argument("--check-data", action="store_true",
                    help="instead of merging: generate the worlds here and compare them with the recorded digests")
    a = ap.parse_args(argv)
    root = repo_root()
    carry, dest = (p if Path(p).is_absolute() else root / p for p in (a.carry, a.dest))
    try:
        for seed in a.seeds:
            if a.check_data:
                print(check_data(carry, a.point, seed, a.profile).to_string(index=False))
                continue
            done = merge_world(carry, dest, a.point, seed, a.profile)
            print(f"world {seed} of {a.point}: {done}")
            if a.prune:
                print(f"  pruned {prune_world(carry, a.point, seed, a.profile)} binary files from {carry}")
    except ValueError as e:
        raise SystemExit(f"error: {e}")


if __name__ == "__main__":
    main()
