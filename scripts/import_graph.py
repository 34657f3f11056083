"""The import graph of ``emm_lib``, read from the code with ``ast`` (imports inside functions included,
``if TYPE_CHECKING:`` blocks left out): modules, edges, import cycles, and the largest definitions.

    python scripts/import_graph.py            # a summary table
    python scripts/import_graph.py --cycles   # every cycle, module by module
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "emm_lib"


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    base = module.split(".") if is_package else module.split(".")[:-1]
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            pkg = base[:len(base) - node.level + 1] if node.level else []
            target = ".".join(pkg + ([node.module] if node.module else []))
            out.add(target)
            out.update(f"{target}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    resolved = set()
    for name in out:  # the longest known module that the name starts with
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module:
            resolved.add(name)
    return resolved


def graph() -> tuple[dict[str, set[str]], dict[str, ast.AST]]:
    files = {_module(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}
    trees = {m: ast.parse(p.read_text(), str(p)) for m, p in files.items()}
    known = set(files)
    edges = {m: _imports(t, m, files[m].name == "__init__.py", known) for m, t in trees.items()}
    for m in edges:  # a package's __init__ importing its own submodules is not a dependency on the package
        edges[m] = {d for d in edges[m] if not (d.startswith(m + ".") and files[m].name == "__init__.py")}
    return edges, trees


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            strong(v)
    return out


def sizes(trees: dict[str, ast.AST]) -> list[tuple[str, str, int]]:
    """``(kind, name, lines)`` of every module, class and function, largest first."""
    out = []
    for m, t in trees.items():
        out.append(("module", m, max((getattr(n, "end_lineno", 0) or 0) for n in ast.walk(t)) if t.body else 0))
        for n in ast.walk(t):
            if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                kind = "class" if isinstance(n, ast.ClassDef) else "function"
                out.append((kind, f"{m}.{n.name}", n.end_lineno - n.lineno + 1))
    return sorted(out, key=lambda x: -x[2])


LIMITS = {"module": 400, "class": 200, "function": 60}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", action="store_true", help="list every cycle")
    a = ap.parse_args(argv)
    edges, trees = graph()
    cyc = cycles(edges)
    over = [s for s in sizes(trees) if s[2] > LIMITS[s[0]]]
    print(f"modules {len(edges)}, import edges {sum(map(len, edges.values()))}, "
          f"modules in cycles {sum(map(len, cyc))} ({len(cyc)} cycles)")
    for c in cyc if a.cycles else ():
        print("  cycle: " + " <-> ".join(c))
    print(f"over the size limits ({', '.join(f'{k} {v}' for k, v in LIMITS.items())} lines): {len(over)}")
    for kind, name, n in over:
        print(f"  {kind:8s} {n:4d}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
