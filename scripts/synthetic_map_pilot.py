"""Pilot of the synthetic map's epoch cap (chapter 09): how many epochs early stopping needs.

One world (data seed) of one sweep point, every model of the point trained with the paper profile's
stopping rule (early stopping on the mean validation AUC, patience 5, best epoch restored) under a
high cap, one torch thread. Per model: best epoch, epochs run, whether it stopped at the cap, CPU
seconds (``time.process_time``, this process only) and wall seconds, test AUC per task. ``--budget``
stops a model after that many CPU seconds (its epochs run are then a lower bound: ``cut=True``).

    nice -n 10 python scripts/synthetic_map_pilot.py --point synthetic/corr=0.5/rows=100000 --cap 100
    nice -n 10 python scripts/synthetic_map_pilot.py --point synthetic-ali/rows=100000 --cap 100 --budget 300

The numbers chosen from it are recorded in ``emm_lib.config`` (the synthetic map's comment).
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from emm_lib import config
from emm_lib.study.sweep import grid as sweep
from emm_lib.data import load
from emm_lib.study.shared.run_settings import experiment_tasks


def _data(point: str, seed: int, overrides: dict):
    p = sweep.parse(point)
    tasks = experiment_tasks(p["generator"], 2)
    if p["generator"] == "synthetic":
        return load("synthetic", tasks=tasks, n_rows=p["n_rows"], correlation=p["correlation"], seed=seed)
    return load("synthetic-ali", tasks=tasks, n_train=p["n_rows"], seed=seed, **overrides)


class _Budget(Exception):
    pass


def _fit(model, ds, gen: str, cap: int, batch: int, budget: float | None, seed: int):
    from emm_lib import train

    opt = config.TRAINING[gen]
    t0, w0 = time.process_time(), time.perf_counter()
    real = train._train_epoch

    def timed(*a, **k):  # stop a model that has used its CPU budget (the epochs it ran are a lower bound)
        if budget is not None and time.process_time() - t0 > budget:
            raise _Budget
        return real(*a, **k)

    train._train_epoch = timed
    try:
        res, cut = train.fit(model, ds, epochs=cap, batch_size=batch, lr=opt["lr"], weight_decay=opt["weight_decay"],
                             patience=5, seed=seed, device="cpu", cpu_threads=1), False
    except _Budget:
        res, cut = None, True
    finally:
        train._train_epoch = real
    return res, cut, time.process_time() - t0, time.perf_counter() - w0


def main() -> None:
    from emm_lib.emm import EMM
    from emm_lib.models import SingleTaskMLP, build_model

    ap = argparse.ArgumentParser()
    ap.add_argument("--point", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cap", type=int, default=100)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--budget", type=float, help="CPU seconds per model (then epochs run is a lower bound)")
    ap.add_argument("--models", nargs="+", default=["tm1", "tm2", "shared_bottom", "mmoe", "ple", "emm"])
    ap.add_argument("--overrides", default="{}", help="JSON keyword overrides of the synthetic-ali preset")
    a = ap.parse_args()
    torch.set_num_threads(1)
    gen = sweep.parse(a.point)["generator"]
    t0 = time.process_time()
    ds = _data(a.point, a.seed, json.loads(a.overrides))
    print(json.dumps({"point": a.point, "data_cpu_s": round(time.process_time() - t0, 1),
                      "positive_rate": ds.info.get("positive_rate")}), flush=True)
    batch = a.batch or config.TRAINING[gen]["batch_size"]
    trained = {t: [] for t in ds.tasks}
    for m in a.models:
        torch.manual_seed(a.seed)
        if m in config.TM_SHAPES:
            todo = [(f"{m}:{t}", SingleTaskMLP(ds.spec, t, **config.model_settings(gen, m))) for t in ds.tasks]
        elif m == "emm":
            if any(len(v) < 2 for v in trained.values()):
                continue
            sizes = {k: v for k, v in config.model_settings(gen, "emm").items()
                     if k not in ("embedding_dim", "component_shapes")}
            todo = [(m, EMM.from_trained(trained, **sizes))]
        else:
            kind, opts = config.VARIANTS[m]
            todo = [(m, build_model(kind, ds.spec, ds.tasks, **{**config.model_settings(gen, kind), **opts}))]
        for label, model in todo:
            res, cut, cpu, wall = _fit(model, ds, gen, a.cap, batch, a.budget, a.seed)
            from emm_lib.train import evaluate

            out = {"model": label, "cpu_s": round(cpu, 1), "wall_s": round(wall, 1), "cut": cut}
            if res is not None:
                out.update(best_epoch=res.best_epoch, epochs_run=len(res.history),
                           at_cap=len(res.history) == a.cap,
                           test_auc={k: round(v, 4) for k, v in evaluate(model, ds.test).items()})
                if label.split(":")[0] in config.TM_SHAPES:
                    trained[label.split(":")[1]].append(model)
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
