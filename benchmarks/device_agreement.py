"""How far runs on another device (a GPU) land from the committed CPU runs of the same seeds.

Reads two results folders of one profile (default: ``results/h200/paper`` against ``results/paper``),
matches runs by (dataset, model, task, seed), and prints per model and task: the mean test AUC on
each device, the largest per-run difference, and how often both picked the same epoch. Then the
training seconds and wall times recorded in ``wall_times.csv`` beside the device's folder.

    python benchmarks/device_agreement.py
    python benchmarks/device_agreement.py --other results/h200/paper --cpu results/paper --experiments table1 single_task
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's emm_lib

from emm_lib.study.shared import results  # noqa: E402

KEYS = ["dataset", "model", "task", "seed"]


def agreement(other: pd.DataFrame, cpu: pd.DataFrame) -> pd.DataFrame:
    """Per (model, task): runs matched, mean test AUC on each side, the largest |difference| of a run
    and the share of runs whose validation picked the same epoch."""
    a, b = (d[d.metric == "test_auc"] for d in (other, cpu))
    m = a.merge(b, on=KEYS, suffixes=("_other", "_cpu"))
    if m.empty:
        raise SystemExit("No run is in both folders: compare results of the same experiment, profile and seeds.")
    m = m.assign(diff=m.value_other - m.value_cpu, same=(m.best_epoch_other == m.best_epoch_cpu).astype(float))
    return m.assign(abs_diff=m["diff"].abs()).groupby(["model", "task"]).agg(
        runs=("seed", "count"), auc_other=("value_other", "mean"), auc_cpu=("value_cpu", "mean"),
        mean_diff=("diff", "mean"), max_abs_diff=("abs_diff", "max"), same_epoch=("same", "mean")).reset_index()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--other", default="results/h200/paper")
    ap.add_argument("--cpu", default="results/paper")
    ap.add_argument("--experiments", nargs="+", default=["table1", "single_task"])
    a = ap.parse_args()
    root = Path(__file__).resolve().parents[1]
    other, cpu = (root / p if not Path(p).is_absolute() else Path(p) for p in (a.other, a.cpu))
    frames = []
    for e in a.experiments:
        for p in (other / f"{e}.csv", cpu / f"{e}.csv"):
            if not p.exists():
                raise SystemExit(f"{p} does not exist: name a results folder that holds {e}.csv (--other/--cpu).")
        o, c = results.read(other / f"{e}.csv"), results.read(cpu / f"{e}.csv")
        frames.append(agreement(o, c))
        devs = ", ".join(sorted(set(o.device))) + " vs " + ", ".join(sorted(set(c.device)))
        run = ["dataset", "model", "seed"]
        both = o.drop_duplicates(run).merge(c.drop_duplicates(run), on=run, suffixes=("_o", "_c"))
        print(f"{e}: devices {devs}; {len(both)} runs in both (seeds {sorted(int(s) for s in both.seed.unique())}), "
              f"fit seconds summed: {both.train_seconds_o.sum():,.0f} vs {both.train_seconds_c.sum():,.0f}")
    table = pd.concat(frames, ignore_index=True)
    print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    print(f"\nlargest per-run test-AUC difference {table.max_abs_diff.max():.4f}; mean difference over models "
          f"{table.mean_diff.abs().max():.4f} at most")
    wall = other.parent / "wall_times.csv"
    if wall.exists():
        print("\n" + pd.read_csv(wall)[["job", "processes", "runs", "wall_seconds", "fit_seconds_sum", "device"]]
              .to_string(index=False))


if __name__ == "__main__":
    main()
