"""Training steps on CPU with subnormal weights, with and without flushing them to zero.

Late in a long run (the map's 10^7-row point), weights that the data no longer move and their Adam
moments decay below float32's smallest normal (1.2e-38). This builds the synthetic funnel's TM-1
(the paper's Ali sizes), makes a share of every hidden layer's units dead the way they were in a
10^7-row TM-1 after 7 epochs (27-68 % of each layer's units with every weight below 1e-20, their
BatchNorm scale and shift subnormal: their activations and gradients are subnormal), and times
forward + backward + Adam steps on a batch of 4,096 rows, with fit()'s flush (``flush_denormals``)
off and on. One process, one CPU thread; the ratio is the result.

    python benchmarks/bench_denormals.py [--steps 20] [--share 0.6] [--threads 1]

On a 2-core Intel Xeon with AVX-512 (2026-12-07, beside two training processes), 10 steps: 37.5 ms
per step with live units, 178.7 ms (4.8x) with 60 % of them dead, 34.9 ms with the flush. The real
10^7-row TM-1 was hit harder (its Adam moments were subnormal too): its epochs went from 81 s to
~1,400 s, and its saved weights' layer products ran 95x slower than with the flush. CPUs that handle
subnormals in hardware show a ratio near 1.

The flag is per thread and fit() sets it on the calling one only. With two threads started by
``torch.set_num_threads`` alone (same machine, 2026-12-07, beside two training processes) this
benchmark showed 117.6 ms (2.9x) dead and unflushed and 43.3 ms (1.07x) flushed, but that did not
carry over: the 10^7-row EMM run with two threads slowed from epoch to epoch, and ``perf`` put 23 % of
its samples in MKL's sgemm kernel on torch's OpenMP worker thread against 7 % on the calling thread
(each product is split between the two), and an elementwise multiply of 4M subnormals kept half of its
results (the worker's half). OpenMP's threads take the flag of the thread that creates them, so the
study sets its threads with ``emm_lib.train.set_threads``, which starts them flushed (a test checks
that none of the multiply's subnormals survive). This benchmark starts them unflushed, so that its
"off" rows are off; its last line measures the share that survives fit()'s flush (0.50 with
``--threads 2``, 0.00 with 1).
"""
import argparse
import contextlib
import copy
import time

import numpy as np
import pandas as pd
import torch

from emm_lib import config
from emm_lib.data import load
from emm_lib.models import SingleTaskMLP
from emm_lib.train import _loss, flush_denormals

SUB = 1e-39


def tm1(share: float) -> tuple[SingleTaskMLP, object]:
    """The funnel's TM-1 for click and a batch of 4,096 rows; ``share`` of each hidden layer's units dead
    as in a long run: their weights decayed to ~1e-30 and their BatchNorm scale and shift subnormal."""
    ds = load("synthetic-ali", tasks=("click", "conversion"), n_train=4_096, seed=0, n_val=1_000, n_test=1_000)
    torch.manual_seed(0)
    model = SingleTaskMLP(ds.spec, "click", **config.model_settings("synthetic-ali", "tm1"))
    gen = torch.Generator().manual_seed(0)
    layers = list(model.body)
    with torch.no_grad():
        for lin, bn in zip(layers, layers[1:]):
            if isinstance(lin, torch.nn.Linear) and isinstance(bn, torch.nn.BatchNorm1d):
                dead = torch.rand(lin.out_features, generator=gen) < share
                lin.weight[dead] *= 1e-30
                lin.bias[dead] *= 1e-30
                bn.weight[dead], bn.bias[dead] = SUB, SUB
    return model, next(iter(ds.train.batches(4_096)))


def step_ms(model, batch, steps: int, flush: bool) -> float:
    model = copy.deepcopy(model).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-9)  # a tiny step keeps the weights where they are
    y = batch.y[:, [0]]
    ctx = flush_denormals(torch.device("cpu")) if flush else contextlib.nullcontext(False)
    with ctx:
        for i in range(steps + 2):
            if i == 2:  # two warm-up steps
                t = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            _loss(model, batch, y).backward()
            opt.step()
    return 1e3 * (time.perf_counter() - t) / steps


def kept_under_flush(n: int = 1 << 22) -> float:
    """Share of the subnormal results of an elementwise multiply that survive while fit()'s flush is on
    (0 when every thread that runs it flushes; 1/threads of them are flushed when only the caller is)."""
    x = torch.from_numpy(np.full(n, SUB, np.float32))
    with flush_denormals(torch.device("cpu")):
        y = x * 1.0
    return float((y.numpy() != 0).mean())  # read with the flag off again


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--share", type=float, default=0.6)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (the flag is set on the calling one)")
    a = ap.parse_args()
    if not 0 <= a.share <= 1 or a.steps < 1 or a.threads < 1:
        raise SystemExit("--share is a fraction in [0, 1], --steps and --threads positive counts.")
    torch.set_num_threads(a.threads)
    rows = []
    for share in (0.0, a.share):
        model, batch = tm1(share)
        for flush in (False, True):
            rows.append({"subnormal share": share, "flush": flush, "ms per step": step_ms(model, batch, a.steps, flush)})
    df = pd.DataFrame(rows)
    base = df.loc[(df["subnormal share"] == 0) & ~df.flush, "ms per step"].iloc[0]
    df["x normal weights"] = df["ms per step"] / base
    print(df.round(2).to_string(index=False))
    print(f"subnormal results of a 4M-element multiply kept under the flush, {a.threads} thread(s): "
          f"{kept_under_flush():.2f}")


if __name__ == "__main__":
    main()
