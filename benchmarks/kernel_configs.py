"""How much the CPU's kernel configuration moves the study's numbers, on this machine.

Runs every experiment at the tiny profile (``tests/bit_identical.py``, seed 0, one thread) once per
kernel configuration, two processes at a time, and counts the values that differ from the run with
this machine's own kernels. A second run of the native configuration checks that the count is not
noise (it must be 0). Prints a table and writes it as CSV:

    python benchmarks/kernel_configs.py [--csv results/bench/kernel_configs_<date>.csv]
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import bit_identical  # noqa: E402

CONFIGS = {
    "native": {},
    "native, again": {},
    "MKL_ENABLE_INSTRUCTIONS=AVX2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "MKL_CBWR=COMPATIBLE": {"MKL_CBWR": "COMPATIBLE"},
    "ATEN_CPU_CAPABILITY=default": {"ATEN_CPU_CAPABILITY": "default"},
    "ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE": {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"},
}


def _run(name: str, extra: dict, out: Path) -> subprocess.Popen:
    env = dict(os.environ, **extra)
    return subprocess.Popen([sys.executable, str(ROOT / "tests" / "bit_identical.py"), str(out)], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def measure(work: Path, parallel: int = 2) -> pd.DataFrame:
    """One tiny-profile study per configuration; the values that differ from the native run."""
    names, tables, seconds = list(CONFIGS), {}, {}
    for i in range(0, len(names), parallel):
        batch = {n: (_run(n, CONFIGS[n], work / f"run{i + j}"), time.perf_counter(), work / f"run{i + j}")
                 for j, n in enumerate(names[i:i + parallel])}
        for n, (proc, t0, out) in batch.items():
            _, err = proc.communicate()
            if proc.returncode:
                raise SystemExit(f"{n} failed:\n{err[-3000:]}")
            seconds[n], tables[n] = time.perf_counter() - t0, bit_identical.collect(out)
    rows = []
    for n in names:
        missing, diff = bit_identical.differences(tables["native"], tables[n])
        rows.append({"configuration": n, "values": len(tables[n]), "differ_from_native": len(diff) + len(missing),
                     "seconds": round(seconds[n], 1)})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--csv", type=Path, help="also write the table here (with the commit and machine)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        table = measure(Path(tmp))
    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    import torch

    table = table.assign(git_commit=commit + ("+dirty" if dirty else ""), torch_version=torch.__version__,
                         cpu=_cpu(), date=date.today().isoformat())
    print(table.to_string(index=False))
    if args.csv:
        from emm_lib.utils import atomic_write

        with atomic_write(args.csv) as fh:
            table.to_csv(fh, index=False)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
