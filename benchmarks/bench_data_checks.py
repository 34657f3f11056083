"""What the data checks cost on Census: re-hashing the raw files at every fetch (instead of trusting
a size + mtime stamp), hashing the processed cache's tensors at every cache hit, and the input
checks of ``evaluate``. Prints one table (median of ``--repeat`` runs).

    EMM_DATA_MIRROR=/path/to/census-income-kdd python benchmarks/bench_data_checks.py
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def _time(fn, repeat: int) -> float:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(1)
    from emm_lib.checks import check_split
    from emm_lib.data import census, load
    from emm_lib.data.sources import SOURCES, fetch, sha256_of
    from emm_lib.models import SingleTaskMLP

    with tempfile.TemporaryDirectory() as td:
        t0 = time.perf_counter()
        ds = load("census", data_dir=td)  # fetch from the mirror, preprocess, write the cache
        first = time.perf_counter() - t0
        raw = Path(td) / "raw"
        size_mb = sum((raw / f.name).stat().st_size for f in SOURCES["census"].files) / 1e6
        rows = [
            ("first load (fetch + preprocess + cache)", first),
            (f"sha256 of both raw files ({size_mb:.0f} MB)",
             _time(lambda: [sha256_of(raw / f.name) for f in SOURCES["census"].files], a.repeat)),
            ("fetch() with files in data/raw (re-hashed, no stamp)", _time(lambda: fetch("census", data_dir=td), a.repeat)),
            ("cache hit: load('census') incl. tensor hash", _time(lambda: load("census", data_dir=td), a.repeat)),
        ]
        cache = next((Path(td) / "processed").glob("census-*.pt"))
        tensors = torch.load(cache, weights_only=True)
        rows.append(("  of which: sha256 of the cached tensors", _time(lambda: census._tensors_sha256(tensors), a.repeat)))
        model = SingleTaskMLP(ds.spec, "income")
        rows.append((f"evaluate() input check on test ({len(ds.test):,} rows)",
                     _time(lambda: check_split(model, ds.test, "evaluate()"), a.repeat)))
    width = max(len(r[0]) for r in rows)
    print(f"{'step':<{width}}  seconds")
    for name, secs in rows:
        print(f"{name:<{width}}  {secs:7.3f}")


if __name__ == "__main__":
    main()
