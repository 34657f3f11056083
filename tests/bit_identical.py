"""Every experiment at the tiny profile, seeded, on CPU: the metric values of its CSVs.

``tests/test_bit_identical.py`` runs this in a fresh process and compares the values bit for bit
with ``tests/fixtures/tiny_reference.csv``, which this script wrote at commit 661efa4 (main before
the architecture pass, issue 16). Provenance columns (train_seconds, git_commit, torch_version,
device, settings, timestamp) differ by design and are left out; identity columns and values are kept.

    python tests/bit_identical.py OUT_DIR [FIXTURE]     # run; write FIXTURE (default: print a summary)

Regenerate the fixture only when a change is *meant* to change the numbers, and say so in the commit.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
#: The columns compared: identity, then values (``value`` bit for bit).
RESULT_KEY = ["file", "dataset", "profile", "model", "task", "seed", "metric"]
RESULT_VALUES = ["value", "best_epoch"]
GATE_KEY = ["file", "dataset", "model", "seed", "level", "task", "kind", "index", "name"]


def run_all(out: Path) -> None:
    """Every experiment of the study at the tiny profile, seed 0, on CPU, into ``out/tiny``."""
    import torch

    sys.path.insert(0, str(ROOT))
    from emm_lib import authors, config, study, sweep

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


if __name__ == "__main__":
    out = Path(sys.argv[1])
    run_all(out)
    table = collect(out)
    if len(sys.argv) > 2:
        table.to_csv(sys.argv[2], index=False)
    print(f"{len(table)} values from {table.file.nunique()} files")
