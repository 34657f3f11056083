"""Notebook parameters: read a notebook's ``parameters`` cell, reject unknown names, and turn what a
user types (``-p seeds 0``, ``-p seeds "[0,1]"``, ``-y "seeds: [0, 1]"``) into the values the study
expects. papermill itself only warns about an unknown name and runs the defaults, so
:mod:`emm_lib.study.book.run_notebook` checks with these functions before executing anything.
"""
from __future__ import annotations

import ast
import difflib
import json
import os
from pathlib import Path
from typing import Any, Mapping

from .checks import whole_number

#: The largest seed a run takes (torch's generators and the int64 ``seed`` column of results).
MAX_SEED = 2**63 - 1

__all__ = ["MAX_SEED", "notebook_parameters", "check_notebook_params", "parse_value", "coerce_seeds", "coerce_float",
           "check_output_path"]


def notebook_parameters(notebook: str | os.PathLike) -> dict[str, Any]:
    """Names and default values assigned in the cell tagged ``parameters`` (papermill's convention)."""
    path = Path(notebook)
    try:
        nb = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the notebook ({exc}).") from exc
    for cell in nb.get("cells", []):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            out: dict[str, Any] = {}
            for node in ast.parse(src).body:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
                    if isinstance(node, ast.AnnAssign) else []
                for t in targets:
                    if isinstance(t, ast.Name):
                        try:
                            out[t.id] = ast.literal_eval(node.value)
                        except (ValueError, SyntaxError):
                            out[t.id] = None
            return out
    raise ValueError(f"{path} has no cell tagged 'parameters'; it cannot take papermill parameters.")


def check_notebook_params(notebook: str | os.PathLike, params: Mapping[str, Any]) -> None:
    """Raise a ValueError naming every parameter ``notebook`` does not define, with the known names."""
    known = notebook_parameters(notebook)
    unknown = [k for k in params if k not in known]
    if unknown:
        hints = [f"{k!r} (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(k, known, 1)) else repr(k)
                 for k in unknown]
        raise ValueError(f"Unknown parameter(s) {', '.join(hints)} for {notebook}. Known parameters: "
                         f"{', '.join(known)}. Nothing was run.")


def parse_value(text: str) -> Any:
    """A ``-p NAME VALUE`` string as a Python value: ``None``/``True``/``False``, an int, a float, a
    list (``[0,1]``, YAML or Python syntax), else the string itself."""
    t = text.strip()
    if t in ("None", "null", "~"):
        return None
    if t in ("True", "False"):
        return t == "True"
    for conv in (int, float):
        try:
            return conv(t)
        except ValueError:
            pass
    if t[:1] in "[(" and t[-1:] in "])":
        items = [x.strip() for x in t[1:-1].split(",") if x.strip()]
        try:
            return [ast.literal_eval(x) for x in items]
        except (ValueError, SyntaxError):
            return [x.strip("'\"") for x in items]  # YAML-style bare strings: [income, marital]
    return text


def coerce_seeds(value: Any) -> tuple[int, ...] | None:
    """Seeds as a tuple of ints from an int (``0``), a list (``[0, 1]``) or a string (``"0"``,
    ``"[0,1]"``, ``"0,1"``, ``"0 1"``); ``None`` stays ``None``. Anything else: a ValueError."""
    if value is None:
        return None
    expected = "seeds must be a whole number or a list of them, e.g. 0 or [0, 1, 2]"
    if isinstance(value, str):
        text = value.strip()
        parsed = parse_value(text)
        if isinstance(parsed, str):
            parsed = [p for p in text.replace(",", " ").split() if p]
        value = parsed
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{expected}; got {value!r}.")
    try:
        seeds = tuple(whole_number("seed", v, minimum=0) for v in value)
    except ValueError as exc:
        raise ValueError(f"{expected}; got {value!r} ({exc})") from None
    big = [s for s in seeds if s > MAX_SEED]
    if big:
        raise ValueError(f"seed {big[0]} is too large: seeds go to torch and to int64 result columns, so each must "
                         f"be at most 2**63 - 1 ({MAX_SEED}); use a smaller seed, e.g. 0 or [0, 1, 2].")
    return seeds


def coerce_float(name: str, value: Any, positive: bool = False) -> float | None:
    """A float from a number or numeric string (``"1e-3"``); ``None`` stays ``None``."""
    if value is None:
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}.") from None
    if v != v or v in (float("inf"), float("-inf")) or (positive and v <= 0) or v < 0:
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}.")
    return v


def coerce_settings(kw: Mapping[str, Any]) -> dict[str, Any]:
    """Study settings as typed values, or a ValueError saying what is expected (used by
    :func:`emm_lib.study.settings`): whole numbers stay whole (``batch_size=2.5`` is an error),
    seeds accept what :func:`coerce_seeds` accepts, the device must exist on this machine."""
    from .checks import check_device

    out = dict(kw)
    if "seeds" in out:
        out["seeds"] = coerce_seeds(out["seeds"])
    limits = {"epochs": (1, False), "batch_size": (2, False), "patience": (1, True),
              "max_train_rows": (2, True), "threads": (1, True)}
    for k, (lo, none_ok) in limits.items():
        if k in out:
            out[k] = whole_number(k, out[k], minimum=lo, allow_none=none_ok)
    for k, positive in (("lr", True), ("weight_decay", False)):
        if k in out:
            out[k] = coerce_float(k, out[k], positive)
    if "device" in out:
        check_device(out["device"])
    return out


def check_output_path(notebook: str | os.PathLike, output: str | os.PathLike) -> None:
    """Raise a ValueError when ``output`` is the file ``notebook`` (same path after resolving links,
    or a hard link to it): executing would overwrite the source notebook."""
    src, out = Path(notebook), Path(output)
    same = src.resolve() == out.resolve()
    if not same and src.exists() and out.exists():
        same = os.path.samefile(src, out)
    if same:
        raise ValueError(f"the output {str(output)!r} is the input notebook {str(notebook)!r}; executing would "
                         "overwrite it. Name another output file (e.g. notebooks/executed/<name>.ipynb).")
