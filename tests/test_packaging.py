"""environment.yml must pin exactly what pyproject.toml pins (pyproject is the source of truth)."""
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
    assert "python=3.11" in env and "3.11" in meta["requires-python"]
