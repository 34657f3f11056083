"""Time and peak memory of the streamed synthetic generator (AliExpress-shaped funnel preset).

Each size runs in its own subprocess so that its peak RSS is its own. Prints a table:
training rows, all rows (train + the preset's fixed validation and test), seconds to
generate, peak RSS, the RSS of the bare interpreter with the imports (``base``), the bytes
the split tensors hold per row, and the peak RSS above the base per row.

    python benchmarks/bench_synthetic.py                     # 1e5 and 1e6 training rows
    nice -n 10 python benchmarks/bench_synthetic.py --rows 100000 1000000 10000000

Measured 2026-11-25 with that command on the 2-core development machine (shared with other
jobs, load 3-5): validation and test are 200,000 rows each at every size (the preset).

    train_rows     rows  seconds  peak_rss_mib  base_rss_mib  tensor_bytes_per_row  rss_bytes_per_row
        100000   500000      5.7         572.1         276.6                 324.0              619.7
       1000000  1400000      9.4         825.8         276.7                 324.0              411.3
      10000000 10400000     64.2       3,626.1         276.7                 324.0              337.7
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's emm_lib, not an installed one


def run_one(n_train: int, preset: str, threads: int) -> dict:
    import torch

    from emm_lib.data.synthetic_stream import make_preset

    torch.set_num_threads(threads)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    t0 = time.perf_counter()
    ds = make_preset(preset, n_train=n_train, seed=0)
    secs = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    rows = sum(len(s) for s in ds.splits().values())
    held = sum(t.element_size() * t.nelement() for s in ds.splits().values() for t in (s.sparse, s.dense, s.y))
    return {"train_rows": n_train, "rows": rows, "seconds": secs, "peak_rss_mib": peak / 2**20,
            "base_rss_mib": base / 2**20, "tensor_bytes_per_row": held / rows,
            "rss_bytes_per_row": (peak - base) / rows,
            "positive_rate_train": [round(v, 5) for v in ds.info["positive_rate"]["train"]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000], help="training rows per point")
    ap.add_argument("--preset", default="synthetic-ali")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one is not None:
        print(json.dumps(run_one(a.one, a.preset, a.threads)))
        return
    import pandas as pd

    out = []
    for n in a.rows:
        cmd = [sys.executable, __file__, "--one", str(n), "--preset", a.preset, "--threads", str(a.threads)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(f"  {n:>12,} training rows done in {out[-1]['seconds']:.1f}s", file=sys.stderr, flush=True)
    df = pd.DataFrame(out)
    print(f"Streamed generator, preset {a.preset!r}, {a.threads} torch thread(s):")
    print(df.to_string(index=False, float_format=lambda v: f"{v:,.1f}"))


if __name__ == "__main__":
    main()
