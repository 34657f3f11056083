"""Run one notebook with papermill after checking its parameters (unknown names stop the run).

    python -m emm_lib.study.book.run_notebook notebooks/03-fusion-table1.ipynb out.ipynb --cwd notebooks \\
        -p profile tiny -p seeds "[0,1]" -p device cpu

``-p NAME VALUE`` values are read as papermill reads them, plus lists (``[0,1]``); ``-y YAML`` takes
a YAML mapping (``-y "seeds: [0, 1]"``). Every name must be one the notebook's ``parameters`` cell
defines; otherwise the run stops before any kernel starts, listing the known names (papermill alone
only warns and runs the defaults). An output path that is the input notebook (the same file after
resolving links) is refused before anything runs: a failed run would replace the source with its
error outputs.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from emm_lib.params import check_notebook_params, check_output_path, coerce_settings, parse_value

__all__ = ["main", "parse_parameters", "check_output_path", "fold_parameters"]


def parse_parameters(pairs: Sequence[Sequence[str]], yamls: Sequence[str]) -> dict[str, Any]:
    """``-p`` pairs and ``-y`` YAML strings as one parameter dict (later ones win)."""
    import yaml

    params: dict[str, Any] = {}
    for name, value in pairs:
        params[name] = parse_value(value)
    for text in yamls:
        try:
            got = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"-y {text!r} is not valid YAML ({exc}); write it like -y \"seeds: [0, 1]\".") from exc
        if not isinstance(got, dict):
            raise ValueError(f"-y {text!r} must be a YAML mapping such as \"seeds: [0, 1]\".")
        params.update(got)
    return params


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m emm_lib.study.book.run_notebook", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("-p", "--parameters", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    ap.add_argument("-y", "--parameters-yaml", action="append", default=[], metavar="YAML")
    ap.add_argument("--cwd", default=None, help="working directory of the kernel")
    ap.add_argument("-k", "--kernel", default=None, help="kernel name (default: the notebook's)")
    ap.add_argument("--log-level", default="WARNING")
    ap.add_argument("--no-progress-bar", action="store_true")
    a = ap.parse_args(argv)
    try:
        check_output_path(a.input, a.output)
        params = parse_parameters(a.parameters, a.parameters_yaml)
        check_notebook_params(a.input, params)
        typed = coerce_settings({k: v for k, v in params.items() if v is not None})  # bad values stop here too
        if params.get("seeds") is not None:
            params["seeds"] = list(typed["seeds"])  # -p seeds 0 -> [0]
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import logging

    import papermill as pm

    logging.basicConfig(level=getattr(logging, str(a.log_level).upper(), logging.WARNING))
    from emm_lib.study.book.papermill_run import engine_kwargs

    # engine_kwargs: encrypted kernel transport (no "running over TCP without encryption" warning)
    # and no interrupt before the final shutdown (no "KeyboardInterrupt caught in kernel").
    pm.execute_notebook(a.input, a.output, parameters=params, cwd=a.cwd, kernel_name=a.kernel,
                        progress_bar=not a.no_progress_bar, **engine_kwargs())
    fold_parameters(a.output)
    return 0


def fold_parameters(path: str) -> None:
    """Fold the input of the cell papermill injected (as the notebook's own parameters cell is), so the
    book shows it collapsed under its caption; the file is replaced atomically."""
    import nbformat

    from emm_lib.utils import atomic_write

    if not Path(path).is_file():  # nothing was written (a dry run): nothing to fold
        return
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "hide-input" not in tags:
            cell.metadata["tags"] = [*tags, "hide-input"]
    with atomic_write(path) as fh:
        nbformat.write(nb, fh)


if __name__ == "__main__":
    sys.exit(main())
