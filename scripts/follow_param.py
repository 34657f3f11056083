"""Follow one parameter through the calls of a real run: which functions of ``emm_lib`` take it,
in how many modules, and how often a call climbs back up the import graph's layers.

    python scripts/follow_param.py [--name seed] -- table1 --profile tiny --dataset synthetic --seeds 0 ...

The arguments after ``--`` go to ``python -m emm_lib.study`` (run in this process under a profiler).
A *stop* is a distinct ``emm_lib`` function with a parameter of that name (``seed``, ``seeds``,
``init_seed`` … for ``--name seed``) that the run calls. A *climb* is a call between two such stops
whose callee lives in a higher layer than its caller (layer = the longest import path below a
module, from :mod:`import_graph`): a low-level module calling back up into the code above it.
The seed also travels inside objects (a run's settings, a ``Run``), which this does not follow:
it counts the functions that take the parameter by name. A developer's measure of coupling, not
part of ``make test``.
"""
from __future__ import annotations

import argparse
import runpy
import sys
from functools import lru_cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import import_graph  # noqa: E402


def layers(edges: dict[str, set[str]]) -> dict[str, int]:
    """Layer of each module: 0 when it imports no module of the package, else 1 + its deepest import
    (modules in a cycle share the cycle's layer)."""
    done: dict[str, int] = {}

    def depth(m: str, seen: frozenset) -> int:
        if m in done:
            return done[m]
        below = [depth(d, seen | {m}) for d in edges.get(m, ()) if d not in seen and d != m]
        done[m] = 1 + max(below) if below else 0
        return done[m]

    for m in sorted(edges):
        depth(m, frozenset())
    return done


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", default="seed", help="the parameter to follow (a name fragment)")
    a = ap.parse_args(argv[:split])
    layer = layers(import_graph.graph()[0])

    @lru_cache(maxsize=None)
    def takes(code) -> bool:
        n = code.co_argcount + code.co_kwonlyargcount
        return any(a.name in v for v in code.co_varnames[:n])

    stops: dict[tuple[str, str], int] = {}
    climbs = [0]

    def module_of(frame) -> str | None:
        m = frame.f_globals.get("__name__", "")
        return m if m.startswith(import_graph.PACKAGE) and m in layer else None

    def profile(frame, event, _arg):
        if event != "call" or not takes(frame.f_code) or frame.f_code.co_qualname.startswith("__create_fn__"):
            return  # (dataclasses' generated __init__ is not a function of the module it lands in)
        m = module_of(frame)
        if m is None:
            return
        stops[(m, frame.f_code.co_qualname)] = stops.get((m, frame.f_code.co_qualname), 0) + 1
        up = frame.f_back
        while up is not None and not (module_of(up) and takes(up.f_code)):
            up = up.f_back
        if up is not None and layer[m] > layer[module_of(up)]:
            climbs[0] += 1

    sys.argv = ["emm_lib.study", *argv[split + 1:]]
    sys.setprofile(profile)
    try:
        runpy.run_module("emm_lib.study", run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        sys.setprofile(None)
    mods = sorted({m for m, _ in stops})
    print(f"parameter '{a.name}': {len(stops)} stops (functions) in {len(mods)} modules, "
          f"{sum(stops.values())} calls, {climbs[0]} calls climbing to a higher layer; "
          f"{max(layer.values()) + 1} layers")
    for m in mods:
        print(f"  L{layer[m]:<2d} {m}: " + ", ".join(sorted(f for mm, f in stops if mm == m)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
