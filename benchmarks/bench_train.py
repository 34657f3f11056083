"""Training and inference throughput, and peak memory: our pipeline vs one that mimics the published one.

Two paths train the same model (same weights, same Adam, batch 1024, same rows):

* ``ours``: the split held as tensors, batches sliced by a shuffled index
  (:meth:`emm_lib.data.types.Split.batches`), the fused model (``model.fast = True``), and
  :func:`emm_lib.train.fit`'s step (:func:`emm_lib.train.train_step`);
  inference as :func:`emm_lib.train.predict` (batches of 8192, no per-row work).
* ``per_row``: mimics the authors' published pipeline (torch-rechub): a dict of numpy
  columns -> a per-row ``Dataset`` -> ``DataLoader`` default collate; the published input layer
  (one embedding lookup per sparse feature, one column per dense feature, concatenated); and the
  model's readable reference implementation (``model.fast = False``: EMM components, experts,
  gates and towers one by one, as the published code runs them). Same weights, same values.
  Inference through the same per-row loader at batch 1024 with ``.tolist()`` of the predictions
  (as the published ``evaluate``).

Each model runs in its own subprocess: passes of ``--batches`` training batches (and the same rows
for inference) alternate between the two paths, ``--passes`` times; the table shows the median
rows/s of each path and the ratio of medians. Time is the process's CPU time by default (one
torch thread and ``num_workers=0``, so on an idle machine it equals the wall time, and on a
shared machine it is steadier); ``--wall`` times by the wall clock. Peak RSS: the process's high-water mark during the
path's first pass (reset before it, Linux ``clear_refs``), so it includes the loaded dataset and
torch itself. The machine is shared: compare ratios within one run.

    python benchmarks/bench_train.py                         # EMM, MMoE, PLE: ~2-3 min (make bench)
    python benchmarks/bench_train.py --models emm --passes 5 --batches 100
    python benchmarks/bench_train.py --models emm --compile  # ours through torch.compile
    python benchmarks/bench_train.py --device cuda --csv out.csv   # on a GPU (wall clock); --amp: bf16
    python benchmarks/bench_train.py --device cuda --cuda-graph    # our step replayed as a CUDA graph

On an NVIDIA H200 (2026-11-26, ``results/h200/bench_train*.csv``): training 5.4x (EMM), 16.5x
(MMoE), 8.1x (PLE); inference 46x, 120x, 71x. bf16 autocast slowed EMM (0.75x); torch.compile
(default mode) trained it at 6.5x the per-row path (eager 5.4x) after a minute of compiling;
``--compile-mode reduce-overhead`` (CUDA graphs) fails in the training step (an output is
overwritten by the next replay). Our step replayed as one CUDA graph (``--cuda-graph``,
``fit(cuda_graph=True)``; a second H200, ``results/h200/cuda_graph/bench_train.csv``): training
74.7x (EMM), 175x (MMoE), 115x (PLE); inference 60x, 94x, 87x.

torch.compile on CPU (torch 2.13, measured 2026-11-25 on the fused EMM, batch 1024): 0.59x the
eager speed after about 3 minutes of compilation on the shared 2-core machine, so it stays off
(measured again 2026-11-26 on the idle machine, ``results/bench/cpu_compile_2026-11-26.csv``: EMM
trained at 3.4x the per-row path compiled, against 6.6x eager in ``results/bench/cpu_2026-11-26.csv``).

Measured 2026-11-25 (2-core AMD EPYC, two study processes on the cores, CPU time, default
settings; three runs each of the code before and after commit "Fused input", alternated;
median of the three ratios, the speed-up targets in brackets; inference varies most run to run):

    model  training ratio              inference ratio
    EMM    5.8x -> 6.7x  [10x]         13.3x -> 14.4x  [30x]
    MMoE   5.8x -> 6.4x  [8x]           7.3x -> 12.6x
    PLE    6.2x -> 6.6x  [8x]          13.7x -> 14.0x

What a step costs and what was done (EMM, profiled with torch.profiler and cProfile): forward
and backward ~45% each, the optimizer ~7%, gathering a batch ~7%. Kept, all bit-identical
(the same weights after training for every model; ``tests/method/test_fast_paths.py``): the split held
row-major (the Census dense block was column-major: gathering a batch 3x slower; +5% per step),
the embedding lookup and the first matmul as one autograd Function whose backward adds the
table gradient without copying a column slice (+2.5%), Adam's fused kernel called directly
(+2%). Measured and dropped: a hand-written backward for the MTM attention (the same kernels
without the autograd engine: no faster, so the engine is not the cost; the kernels are, and in
a step they run 3-8x slower than alone, from cache misses), ReLU in place (+-1%), pre-shuffling
the split once per epoch (slower than gathering per batch), a uint8 copy of the sparse columns
(+0.3%), ``torch.inference_mode`` in predict (0.9x of ``no_grad``), other predict batch
sizes (4096-8192 best). No per-batch host synchronisation remains (tested).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

MODELS = ("tm1", "tm2", "emm", "shared_bottom", "mmoe", "ple", "aitm", "adatt")
# Targets: training and inference speed-up over the per-row path.
TARGETS = {"emm": {"train": 10.0, "infer": 30.0}, "mmoe": {"train": 8.0}, "ple": {"train": 8.0}}

from train_paths import Paths, build  # noqa: E402  (this folder is on the path when run as a script)


def _reset_peak() -> None:
    """Reset the process's peak RSS (Linux >= 4.0); elsewhere the peak stays the process-wide one."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _peak_mb() -> float:
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_model(name: str, passes: int, n_batches: int, batch_size: int, threads: int, compile_: bool,
              wall: bool = False, only_ours: bool = False, device: str = "cpu", amp: bool = False,
              compile_mode: str | None = None, cuda_graph: bool = False) -> list[dict]:
    """All passes of both paths for one model, interleaved; one row per (path, pass).

    On CUDA both paths run on the GPU (the per-row path copies each collated batch to it, as the
    published training loop does), time is the wall clock after a synchronise, and ``amp`` runs
    our training step under bfloat16 autocast; ``cuda_graph`` replays our step as one CUDA graph
    (:class:`emm_lib.graphed.GraphedTrainStep`, as ``fit(cuda_graph=True)``)."""
    b = Paths(name, n_batches, batch_size, threads, compile_, wall, device, amp, compile_mode, cuda_graph)
    b.warm_up()
    out = []
    for p in range(passes):
        for path, fn in (("ours", b.ours), ("per_row", b.per_row))[: 1 if only_ours else 2]:
            _reset_peak()
            t_train, t_infer = fn()
            out.append({"model": name, "path": path, "pass": p, "train_rows_per_s": n_batches * batch_size / t_train,
                        "infer_rows_per_s": b.n_rows / t_infer, "peak_rss_mb": _peak_mb()})
    return out


def summarise(rows: list[dict]):
    import pandas as pd

    df = pd.DataFrame(rows)
    first = df[df["pass"] == 0].set_index(["model", "path"]).peak_rss_mb
    med = df.groupby(["model", "path"], sort=False)[["train_rows_per_s", "infer_rows_per_s"]].median()
    table = []
    for (model, path), r in med.iterrows():
        base = med.loc[(model, "per_row")]
        tr, inf = r.train_rows_per_s / base.train_rows_per_s, r.infer_rows_per_s / base.infer_rows_per_s
        target = TARGETS.get(model, {})
        verdict = ""
        if path == "ours" and target:
            ok = tr >= target["train"] and inf >= target.get("infer", 0)
            want = f"train >= {target['train']:g}x" + (f", infer >= {target['infer']:g}x" if "infer" in target else "")
            verdict = f"{'PASS' if ok else 'FAIL'} ({want})"
        table.append({"model": model, "path": path, "train rows/s": r.train_rows_per_s, "train ratio": tr,
                      "infer rows/s": r.infer_rows_per_s, "infer ratio": inf,
                      "peak RSS MB": first.loc[(model, path)], "target": verdict})
    return pd.DataFrame(table)


def _args() -> tuple[argparse.Namespace, list[str], object]:
    """The command line, checked: (arguments, models, device)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="emm,mmoe,ple")
    ap.add_argument("--passes", type=int, default=3, help="interleaved repeats per path (median reported)")
    ap.add_argument("--batches", type=int, default=50, help="training batches per pass")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (fit() uses 1 on CPU)")
    ap.add_argument("--compile", action="store_true", help="run the 'ours' path through torch.compile")
    ap.add_argument("--compile-mode", choices=["default", "reduce-overhead", "max-autotune"],
                    help="torch.compile's mode (implies --compile)")
    ap.add_argument("--wall", action="store_true",
                    help="time by the wall clock (default: the process's CPU time, steadier on a shared machine)")
    ap.add_argument("--device", default="cpu",
                    help="cpu (default), cuda or auto; on CUDA the time is the wall clock after a synchronise")
    ap.add_argument("--amp", action="store_true", help="bfloat16 autocast in our training step (CUDA only)")
    ap.add_argument("--cuda-graph", action="store_true",
                    help="replay our training step as one CUDA graph (CUDA only; fit(cuda_graph=True))")
    ap.add_argument("--csv", help="also write the table here (with the device, torch version and settings)")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.compile = a.compile or a.compile_mode is not None
    from emm_lib.checks import check_device

    try:
        dev = check_device(a.device)
    except (ValueError, TypeError) as exc:
        ap.error(str(exc))
    if a.amp and dev.type != "cuda":
        ap.error("--amp is bfloat16 autocast on CUDA; this run is on the CPU (use --device cuda)")
    if a.cuda_graph and dev.type != "cuda":
        ap.error("--cuda-graph replays the step as a CUDA graph; this run is on the CPU (use --device cuda)")
    if a.cuda_graph and a.compile:
        ap.error("--cuda-graph and --compile are exclusive (use --compile-mode reduce-overhead for compiled graphs)")
    models = a.models.split(",")
    bad = [m for m in models if m not in MODELS]
    if bad:
        ap.error(f"unknown model(s) {bad}; choose from {list(MODELS)}")
    return a, models, dev


def _each_in_its_own_process(a: argparse.Namespace, models: list[str]) -> list[dict]:
    """Every model's rows, each model benchmarked in a fresh process (no allocator or cache carried over)."""
    rows = []
    t0 = time.perf_counter()
    for m in models:
        cmd = [sys.executable, __file__, "--one", "--models", m, "--passes", str(a.passes), "--batches",
               str(a.batches), "--batch-size", str(a.batch_size), "--threads", str(a.threads), "--device", a.device]
        flags = [f for f, on in (("--compile", a.compile), ("--wall", a.wall), ("--amp", a.amp),
                                 ("--cuda-graph", a.cuda_graph)) if on]
        flags += ["--compile-mode", a.compile_mode] if a.compile_mode else []
        out = subprocess.run(cmd + flags, capture_output=True, text=True, env=os.environ)
        if out.returncode != 0:
            sys.exit(f"benchmark {m} failed:\n{out.stderr[-3000:]}")
        rows += json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  done {m} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return rows


def _report(a: argparse.Namespace, rows: list[dict], dev) -> None:
    """Print the table (and write it to ``--csv`` with the run's settings)."""
    import torch

    gpu = torch.cuda.get_device_name(dev) if dev.type == "cuda" else ""
    wall = a.wall or bool(gpu)
    ours_via = [text for text, on in (
        (f"GPU {gpu} (both paths)", bool(gpu)), ("ours with bf16 autocast", a.amp),
        (f"ours via torch.compile ({a.compile_mode or 'default'})", a.compile),
        ("ours as a CUDA graph", a.cuda_graph)) if on]
    print(f"\nCensus, batch {a.batch_size}, {a.batches} training batches x {a.passes} interleaved passes per path "
          f"(median), {a.threads} torch thread(s), torch {torch.__version__}, {os.cpu_count()} CPUs"
          + "".join(f", {t}" for t in ours_via) + f"; rows per {'wall' if wall else 'CPU'} second"
          + ("" if wall else " of the process (the machine is shared; --wall for wall-clock)"))
    print("per_row = per-row DataLoader + the reference model (mimics the published pipeline); "
          "ratio = ours / per_row")
    table = summarise(rows)
    print(table.to_string(index=False, float_format=lambda x: f"{x:,.1f}"))
    if a.csv:
        from emm_lib.study.shared.results import git_commit
        from emm_lib.utils import atomic_write

        meta = dict(device=gpu or "cpu", torch=torch.__version__, cpus=os.cpu_count(), batch_size=a.batch_size,
                    batches=a.batches, passes=a.passes, threads=a.threads, amp=a.amp, compile=a.compile_mode or a.compile,
                    cuda_graph=a.cuda_graph,
                    clock="wall" if wall else "cpu", date=time.strftime("%Y-%m-%d"), git_commit=git_commit())
        with atomic_write(a.csv) as fh:
            table.assign(**meta).to_csv(fh, index=False)


def main() -> None:
    a, models, dev = _args()
    if a.one:
        print(json.dumps(run_model(models[0], a.passes, a.batches, a.batch_size, a.threads, a.compile, a.wall,
                                   device=a.device, amp=a.amp, compile_mode=a.compile_mode,
                                   cuda_graph=a.cuda_graph)))
        return
    _report(a, _each_in_its_own_process(a, models), dev)


if __name__ == "__main__":
    main()
