"""Measure the test-set term of the verdict rule: how much of a half's DeLong variance is
split noise that the seed spread already holds.

The study redraws the validation/test halves of the one official Census test file with every seed.
Here the trained models are held fixed: TM-1 and TM-2 of each task and MMoE, trained once with a
fixed seed (``--epochs`` epochs, validation selects the epoch). Their scores on the whole test file
(both halves) give, per task and pair, the file's paired DeLong variance and, over ``--draws``
redraws of the 1:1 halves (``emm_lib.data.census.stratified_halves``, draws 0..n-1), the
empirical variance of the AUC difference on the test half, against the mean DeLong variance ``v``
of a half (:func:`emm_lib.study.shared.stats.split_spread`). A ``split_share`` near 1/2 means that half of
``v`` is split noise, already in the seed spread, and the file-level term is ``v / 2``; near 0, ``v``.

    EMM_DATA_MIRROR=/path/to/census-income-kdd python scripts/test_set_term.py \
        [--epochs 5] [--draws 500] [--seed 0] [--out results/paper/analysis/test_set_term.csv]

Cost: about two minutes of one core. The output records the code commit, torch version and settings.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from emm_lib import config
from emm_lib.study.shared import stats
from emm_lib.data.census import load_census, stratified_halves
from emm_lib.models import SingleTaskMLP, build_model
from emm_lib.train import fit, predict

ROOT = Path(__file__).resolve().parents[1]


def _models(ds, seed: int) -> dict:
    torch.manual_seed(seed)
    out = {f"{shape}:{t}": SingleTaskMLP(ds.spec, t, **config.model_settings("census", shape))
           for t in ds.tasks for shape in config.TM_SHAPES}
    out["mmoe"] = build_model("mmoe", ds.spec, ds.tasks, **config.model_settings("census", "mmoe"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "results" / "paper" / "analysis" / "test_set_term.csv"))
    a = ap.parse_args()
    t0 = time.perf_counter()
    ds = load_census(("income", "marital"), seed=a.seed)
    whole = {"sparse": torch.cat([ds.val.sparse, ds.test.sparse]), "dense": torch.cat([ds.val.dense, ds.test.dense])}
    file_split = type(ds.test)(sparse=whole["sparse"], dense=whole["dense"], y=torch.cat([ds.val.y, ds.test.y]),
                               tasks=ds.test.tasks, spec=ds.test.spec)
    scores = {}
    for name, model in _models(ds, a.seed).items():
        fit(model, ds, epochs=a.epochs, patience=None, seed=a.seed, device="cpu")
        logits = predict(model, file_split).numpy()
        scores[name] = {t: logits[:, i] for i, t in enumerate(model.tasks)}
    rows = []
    for i, task in enumerate(ds.tasks):
        y = file_split.y[:, i].numpy()
        income = file_split.y[:, ds.tasks.index("income")].numpy()  # the study's halves: stratified on income
        for ma, mb in ((f"tm1:{task}", f"tm2:{task}"), ("mmoe", f"tm1:{task}")):
            r = stats.split_spread(y, scores[ma][task], scores[mb][task], a.draws,
                                   halves=lambda _y, d: stratified_halves(income, d))
            rows.append(dict(task=task, model_a=ma, model_b=mb, n_rows_file=len(y), **r))
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    settings = dict(epochs=a.epochs, patience=None, seed=a.seed, split_seed=a.seed, draws=a.draws,
                    batch_size=1024, lr=1e-3, weight_decay=1e-6, device="cpu", data="census, features 'paper'")
    df = pd.DataFrame(rows).assign(git_commit=commit, torch_version=torch.__version__,
                                   settings=json.dumps(settings), seconds=round(time.perf_counter() - t0))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(a.out, index=False)
    print(df[["task", "model_a", "model_b", "diff_file", "v_half", "var_split", "split_share", "file_share"]]
          .to_string(index=False))


if __name__ == "__main__":
    main()
