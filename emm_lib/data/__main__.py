"""Fetch, verify and preprocess a dataset, then print its facts: ``python -m emm_lib.data census``."""
from __future__ import annotations

import argparse
import time

from . import DATASETS, load
from .fetching import DataSourceError

ALI = ("aliexpress", "ali-ccp")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m emm_lib.data", description=__doc__)
    ap.add_argument("name", choices=list(DATASETS))
    ap.add_argument("--path", help="folder with your downloaded CSVs (aliexpress, ali-ccp)")
    a = ap.parse_args(argv)
    if a.path and a.name not in ALI:
        ap.error(f"--path names the folder of your AliExpress / Ali-CCP CSVs; {a.name!r} does not read one "
                 "(Census is fetched and verified by itself; EMM_DATA_MIRROR may name a folder with its raw files). "
                 "Drop --path.")
    if a.name in ALI and not a.path:
        ap.error(f"{a.name} needs --path: the folder holding your downloaded CSVs (they cannot be downloaded "
                 "automatically; see the data chapter).")
    t0 = time.perf_counter()
    try:
        ds = load(a.name, path=a.path) if a.path else load(a.name, **({"quiet": False} if a.name == "census" else {}))
    except (ValueError, OSError, DataSourceError) as exc:  # the loaders' errors name the file and the fix
        ap.exit(1, f"{ap.prog}: error: {exc}\n")
    print(f"{ds.name}: tasks {list(ds.tasks)}, {ds.spec.n_sparse} sparse + {ds.spec.n_dense} dense features, "
          f"loaded in {time.perf_counter() - t0:.1f}s")
    print(ds.summary().to_string(index=False))


if __name__ == "__main__":
    main()
