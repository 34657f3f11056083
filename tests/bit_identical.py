"""Every experiment at the tiny profile, seeded, on CPU: the metric values of its CSVs, exactly.

Two checks use it, and neither compares with numbers made on another machine:

* ``tests/study/test_determinism.py`` (in ``make test``) runs it twice in fresh processes on this machine
  and asserts the two tables are equal bit for bit (and again under another kernel configuration).
* ``make refactor-guard REF=<commit>`` (``scripts/refactor_guard.sh``) runs it on a ``git worktree``
  of REF and on the working tree, side by side on this machine, and compares: refactoring changed no
  number.

Why no committed reference: at the tiny profile a last-bit difference in one matmul grows into another
training trajectory. The CPU's kernels decide those bits: MKL picks its GEMM code path from the
processor (an AVX-512 AMD EPYC and an AVX-512/AMX Xeon take different ones; ``MKL_ENABLE_INSTRUCTIONS``
and ``MKL_CBWR`` change the path on one machine), and ATen vectorises reductions and element-wise ops
for the capability it detects (``ATEN_CPU_CAPABILITY``). A reference written on one machine therefore
fails on another (863 of 1,564 values differed on a Xeon), whatever the tolerance.

Provenance columns (train_seconds, git_commit, torch_version, device, settings, timestamp) differ by
design and are left out; identity columns and values are kept.

    python tests/bit_identical.py OUT_DIR [TABLE.csv] [--root CHECKOUT]   # run; write the table
    python tests/bit_identical.py --compare WANT.csv GOT.csv               # exit 1 when they differ
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
#: The columns compared: identity, then values (``value`` bit for bit).
RESULT_KEY = ["file", "dataset", "profile", "model", "task", "seed", "metric"]
RESULT_VALUES = ["value", "best_epoch"]
GATE_KEY = ["file", "dataset", "model", "seed", "level", "task", "kind", "index", "name"]


def run_all(out: Path, root: Path = ROOT) -> None:
    """Every experiment of the study at the tiny profile, seed 0, on CPU, into ``out/tiny``, with the
    ``emm_lib`` of the checkout ``root``."""
    import torch

    sys.path.insert(0, str(root))
    from emm_lib import config, study

    try:  # the experiments' own packages; a checkout from before the study moved under emm_lib.study has them flat
        from emm_lib.study.replay import authors
        from emm_lib.study.sweep import grid as sweep
    except ImportError:
        from emm_lib import authors, sweep

    loaded = Path(study.__file__).resolve()
    if not loaded.is_relative_to(root.resolve()):
        raise SystemExit(f"emm_lib was imported from {loaded}, not from {root}: run with a clean sys.path")
    torch.set_num_threads(1)
    st = study.settings("census", "tiny", results_dir=str(out), device="cpu")
    for name in [n for n in config.EXPERIMENTS if n != "synthetic_tasks"]:
        study.run_experiment(name, st)
    authors.run(st)
    syn = study.settings("synthetic", "tiny", results_dir=str(out), device="cpu")
    study.run_experiment("synthetic_tasks", syn)
    sweep.run_sweep(syn, sweep.AXES)
    authors.run(syn)


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, dtype=str)  # strings: float.hex below is exact


def collect(out: Path) -> pd.DataFrame:
    """One long table of every result row (and gate weight) under ``out/tiny``, as exact strings."""
    tiny = out / "tiny"
    parts = []
    for f in sorted(tiny.glob("*.csv")):
        d = _read(f)
        d.insert(0, "file", f.name)
        d = d[RESULT_KEY + RESULT_VALUES].melt(id_vars=RESULT_KEY, var_name="column", value_name="exact")
        parts.append(d)
    for f in sorted((tiny / "analysis").glob("*gates*.csv")):
        d = _read(f)
        d.insert(0, "file", f"analysis/{f.name}")
        parts.append(d[GATE_KEY + ["weight"]].melt(id_vars=GATE_KEY, var_name="column", value_name="exact"))
    df = pd.concat(parts, ignore_index=True).fillna("")
    key = [c for c in df.columns if c != "exact"]
    # Floats as float.hex: exact, and independent of how a CSV writer rounds.
    df["exact"] = [_exact(v) for v in df["exact"]]
    return df[key + ["exact"]].sort_values(key, kind="stable").reset_index(drop=True)


def _exact(v: str) -> str:
    try:
        return float(v).hex() if v not in ("", "nan") else v
    except ValueError:
        return v


def differences(want: pd.DataFrame, got: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows present in only one table, and rows whose exact value differs."""
    want, got = want.astype(str), got.astype(str)
    key = [c for c in want.columns if c != "exact"]
    if list(got.columns) != list(want.columns):
        raise ValueError(f"the tables have other columns: {list(want.columns)} against {list(got.columns)}")
    merged = want.merge(got, on=key, how="outer", suffixes=("_want", "_got"), indicator=True)
    return merged[merged._merge != "both"], merged[(merged._merge == "both") & (merged.exact_want != merged.exact_got)]


def report(want: pd.DataFrame, got: pd.DataFrame) -> str:
    """'' when the tables agree bit for bit; else what differs (the first 20 rows of each kind)."""
    missing, diff = differences(want, got)
    text = ""
    if len(missing):
        text += f"{len(missing)} rows only in one table, e.g.:\n{missing.head(20).to_string()}\n"
    if len(diff):
        text += f"{len(diff)} of {len(want)} values differ, e.g.:\n{diff.head(20).to_string()}\n"
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", help="OUT_DIR [TABLE.csv], or WANT.csv GOT.csv with --compare")
    ap.add_argument("--root", type=Path, default=ROOT, help="the checkout whose emm_lib runs (default: this one)")
    ap.add_argument("--compare", action="store_true", help="compare two tables written by this script")
    args = ap.parse_args(argv)
    if args.compare:
        if len(args.paths) != 2:
            ap.error("--compare takes two tables: WANT.csv GOT.csv")
        want, got = (pd.read_csv(p, dtype=str, keep_default_na=False) for p in args.paths)
        text = report(want, got)
        print(text or f"all {len(want)} values are bit-identical")
        return 1 if text else 0
    if len(args.paths) > 2:
        ap.error("run mode takes OUT_DIR and an optional TABLE.csv")
    out = Path(args.paths[0])
    run_all(out, args.root)
    table = collect(out)
    if len(args.paths) == 2:
        table.to_csv(args.paths[1], index=False)
    print(f"{len(table)} values from {table.file.nunique()} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
