"""Packaging facts: environment.yml pins exactly what pyproject.toml pins (pyproject is the source of
truth), and the README's map of the code names every module."""
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _pyproject_pins() -> dict[str, str]:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"]) + [r for extra in meta["optional-dependencies"].values() for r in extra]
    return dict(r.split("==") for r in reqs)


def _environment_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "environment.yml").read_text().splitlines():
        m = re.match(r"^\s+-\s+([A-Za-z0-9_.\-]+)==([^\s#]+)", line)
        if m:
            pins[m.group(1)] = m.group(2)
    return pins


def test_every_dependency_is_pinned_exactly():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"]) + [r for e in meta["optional-dependencies"].values() for r in e]
    assert all("==" in r for r in reqs), [r for r in reqs if "==" not in r]


def test_environment_yml_matches_pyproject():
    assert _environment_pins() == _pyproject_pins()


def test_python_version_agrees():
    env = (REPO / "environment.yml").read_text()
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert meta["requires-python"] == ">=3.11,<3.14"
    assert "python>=3.11,<3.14" in env


def test_the_readme_map_names_every_module():
    """README's "A map of the code" lists every module of emm_lib (a new module gets its line)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("## A map of the code")
    section = text[start:text.index("\n## ", start + 1)]
    method, study = section.split("**`emm_lib.study`", 1)
    modules = [p for p in (REPO / "emm_lib").rglob("*.py") if p.stem not in ("__init__", "__main__")]
    in_study = (REPO / "emm_lib" / "study")
    # the method's modules under the method; the study's with their folder (shared/runner, sweep/grid, ...)
    missing = [str(p.relative_to(REPO / "emm_lib")) for p in modules
               if (f"`{p.parent.name}/{p.stem}`" not in study if p.is_relative_to(in_study)
                   else f"`{p.stem}`" not in method and f"`{p.parent.name}/{p.stem}`" not in method)]
    assert not missing, f"README's map of the code does not name {missing}"
