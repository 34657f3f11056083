"""Fetch, verify and preprocess a dataset, then print its facts: ``python -m emm_lib.data census``."""
from __future__ import annotations

import argparse
import time

from . import DATASETS, load


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m emm_lib.data", description=__doc__)
    ap.add_argument("name", choices=[d for d in DATASETS if d != "aliexpress" and d != "ali-ccp"] +
                    ["aliexpress", "ali-ccp"])
    ap.add_argument("--path", help="folder with your downloaded CSVs (aliexpress, ali-ccp)")
    a = ap.parse_args()
    t0 = time.perf_counter()
    ds = load(a.name, path=a.path) if a.path else load(a.name, **({"quiet": False} if a.name == "census" else {}))
    print(f"{ds.name}: tasks {list(ds.tasks)}, {ds.spec.n_sparse} sparse + {ds.spec.n_dense} dense features, "
          f"loaded in {time.perf_counter() - t0:.1f}s")
    print(ds.summary().to_string(index=False))


if __name__ == "__main__":
    main()
