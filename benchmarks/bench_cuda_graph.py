"""fit() on Census on a GPU, eager vs ``cuda_graph=True``: seconds per epoch, and the same history.

EMM (from untrained TM-1/TM-2 shapes, as ``bench_train.py`` builds it) and MMoE, two epochs each,
batch 1024, from the same start. Needs a CUDA GPU.

    python benchmarks/bench_cuda_graph.py

On an NVIDIA H200 (2026-11-26, ``results/h200/cuda_graph/fit_epochs.txt``): EMM 1.33 s -> 0.22 s
per epoch (second epoch), MMoE 0.70 s -> 0.12 s, histories identical (largest difference 0.0).
"""
import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_train import build  # noqa: E402

from emm_lib.data import load  # noqa: E402
from emm_lib.train import fit  # noqa: E402


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("bench_cuda_graph needs a CUDA GPU (CUDA graphs); this machine has none.")
    ds = load("census")
    for name in ("emm", "mmoe"):
        torch.manual_seed(0)
        start = build(name, ds.spec, ds.tasks)
        hs = []
        for graph in (False, True):
            r = fit(copy.deepcopy(start), ds, epochs=2, batch_size=1024, device="cuda", cuda_graph=graph, patience=None)
            hs.append(r.history)
            print(name, "cuda_graph" if graph else "eager", "epoch s", [round(s, 2) for s in r.history.seconds],
                  "val", [round(v, 6) for v in r.history.val_auc_mean], flush=True)
        cols = [c for c in hs[0] if c != "seconds"]
        print(name, "max history diff", float((hs[0][cols] - hs[1][cols]).abs().to_numpy().max()))


if __name__ == "__main__":
    main()
