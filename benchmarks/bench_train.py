"""Training throughput and peak memory: our tensor batching vs a per-row DataLoader path.

Each (model, data path) pair runs in its own subprocess so that peak RSS is its own.
The per-row path mimics the authors' pipeline (dict of numpy arrays -> per-row Dataset ->
default collate); ours slices pre-built tensors by a shuffled index. Same model, same
optimiser, same number of rows. Prints a table; compare the ratios within one run.

    python benchmarks/bench_train.py                      # TM-2 and EMM on Census, 1 epoch each
    python benchmarks/bench_train.py --models tm2,emm,mmoe,ple --epochs 2
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

MODELS = ("tm1", "tm2", "emm", "shared_bottom", "mmoe", "ple", "aitm", "adatt")


def build(name: str, spec, tasks):
    from emm_lib import config
    from emm_lib.models import SingleTaskMLP, build_model

    if name in ("tm1", "tm2"):
        return SingleTaskMLP(spec, tasks[0], **config.model_settings("census", name))
    if name == "emm":
        from emm_lib.emm import EMM

        trained = {t: [SingleTaskMLP(spec, t, **config.model_settings("census", k)) for k in ("tm1", "tm2")]
                   for t in tasks}
        return EMM.from_trained(trained, **{k: v for k, v in config.model_settings("census", "emm").items()
                                             if k not in ("embedding_dim", "component_shapes")})
    return build_model(name, spec, tasks, **config.model_settings("census", name))


def run_one(model_name: str, path: str, epochs: int, batch_size: int, threads: int) -> dict:
    import torch

    from emm_lib.data import load

    torch.set_num_threads(threads)
    ds = load("census")
    tasks = ds.tasks[:1] if model_name in ("tm1", "tm2") else ds.tasks
    torch.manual_seed(0)
    model = build(model_name, ds.spec, tasks)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=1e-6,
                           fused=True)  # as emm_lib.train.fit
    tr = ds.train
    y_all = tr.select_tasks(tasks)
    lossf = torch.nn.BCEWithLogitsLoss()
    from emm_lib.data.types import Batch

    def step(b: Batch):
        opt.zero_grad(set_to_none=True)
        loss = lossf(model(b), b.y)
        loss.backward()
        opt.step()

    model.train()
    n_rows = 0
    if path == "ours":
        from emm_lib.data.types import Split

        split = Split(tr.sparse, tr.dense, y_all, tasks)
        g = torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        for _ in range(epochs):
            for b in split.batches(batch_size, shuffle=True, generator=g):
                if len(b.y) > 1:
                    step(b)
                    n_rows += len(b.y)
    else:
        from torch.utils.data import DataLoader, Dataset

        names_s = [f.name for f in ds.spec.sparse]
        names_d = list(ds.spec.dense)
        cols = {n: tr.sparse[:, i].numpy().copy() for i, n in enumerate(names_s)}
        cols.update({n: tr.dense[:, i].numpy().copy() for i, n in enumerate(names_d)})
        ys = y_all.numpy().copy()

        class RowDataset(Dataset):
            def __len__(self):
                return len(ys)

            def __getitem__(self, i):
                return {n: c[i] for n, c in cols.items()}, ys[i]

        loader = DataLoader(RowDataset(), batch_size=batch_size, shuffle=True, num_workers=0)
        t0 = time.perf_counter()
        for _ in range(epochs):
            for feats, y in loader:
                if len(y) < 2:
                    continue
                sparse = torch.stack([feats[n] for n in names_s], 1).long()
                dense = torch.stack([feats[n] for n in names_d], 1).float()
                step(Batch(sparse, dense, y.float()))
                n_rows += len(y)
    secs = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"model": model_name, "path": path, "rows": n_rows, "seconds": secs,
            "rows_per_s": n_rows / secs, "peak_rss_mb": peak_mb}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="tm2,emm")
    ap.add_argument("--paths", default="ours,per_row")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (fit() uses 1 on CPU)")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    models = a.models.split(",")
    bad = [m for m in models if m not in MODELS]
    if bad:
        ap.error(f"unknown model(s) {bad}; choose from {list(MODELS)}")
    if a.one:
        print(json.dumps(run_one(models[0], a.paths, a.epochs, a.batch_size, a.threads)))
        return
    import pandas as pd

    rows = []
    for m in models:
        for p in a.paths.split(","):
            cmd = [sys.executable, __file__, "--one", "--models", m, "--paths", p, "--epochs", str(a.epochs),
                   "--batch-size", str(a.batch_size), "--threads", str(a.threads)]
            out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
            if out.returncode != 0:
                sys.exit(f"benchmark {m}/{p} failed:\n{out.stderr[-3000:]}")
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"  done {m:14s} {p:8s} {rows[-1]['rows_per_s']:>12,.0f} rows/s", file=sys.stderr)
    df = pd.DataFrame(rows)
    base = df[df.path == "per_row"].set_index("model").rows_per_s
    df["speedup_vs_per_row"] = [r.rows_per_s / base.get(r.model, float("nan")) for r in df.itertuples()]
    import torch

    print(f"\nCensus training throughput, batch {a.batch_size}, {a.epochs} epoch(s), "
          f"{a.threads} threads, torch {torch.__version__}, {os.cpu_count()} CPUs")
    print(df.to_string(index=False, float_format=lambda x: f"{x:,.1f}"))


if __name__ == "__main__":
    main()
