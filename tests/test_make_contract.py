"""The Makefile's contract with a user's machine: which Python creates .venv (3.11-3.13, the newest
that runs), and that `make test` fails when it changed the clone (scripts/clean_tree.sh)."""
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _exe(folder: Path, name: str, body: str) -> None:
    p = folder / name
    p.write_text("#!/bin/sh\n" + body + "\n")
    p.chmod(0o755)


def _find_python(path: str) -> str:
    return subprocess.run(["bash", str(REPO / "scripts" / "find_python.sh")], env=dict(os.environ, PATH=path),
                          capture_output=True, text=True, check=True).stdout.strip()


def test_find_python_takes_the_newest_that_runs(tmp_path):
    _exe(tmp_path, "python3.13", "exit 127")  # a pyenv shim of an inactive version: present, does not run
    _exe(tmp_path, "python3.12", f'exec "{sys.executable}" "$@"')
    _exe(tmp_path, "python3.11", f'exec "{sys.executable}" "$@"')
    assert _find_python(f"{tmp_path}:/usr/bin:/bin") == "python3.12"
    (tmp_path / "python3.12").unlink()
    assert _find_python(f"{tmp_path}:/usr/bin:/bin") == "python3.11"


def test_find_python_refuses_a_version_outside_the_supported_range(tmp_path):
    for name in ("python3.13", "python3.12", "python3.11", "python3"):
        _exe(tmp_path, name, 'case "$*" in *version_info*) exit 1;; esac; exit 0')  # e.g. a Python 3.10
    assert _find_python(f"{tmp_path}:/usr/bin:/bin") == ""


def test_the_supported_range_is_stated_once_in_agreement():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    script = (REPO / "scripts" / "find_python.sh").read_text()
    assert meta["requires-python"] == ">=3.11,<3.14" and "(3, 11) <= sys.version_info[:2] <= (3, 13)" in script
    assert 'python: ["3.11", "3.13"]' in (REPO / ".github" / "workflows" / "test.yml").read_text()


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env=dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
                            GIT_COMMITTER_EMAIL="t@t"))


def _clean_tree(repo: Path, mode: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(repo / "scripts" / "clean_tree.sh"), mode, str(repo / "_build" / "before")],
                          capture_output=True, text=True)


def test_make_test_fails_when_the_run_changed_the_clone(tmp_path):
    repo = tmp_path / "clone"
    (repo / "scripts").mkdir(parents=True)
    (repo / "_build").mkdir()
    shutil.copy(REPO / "scripts" / "clean_tree.sh", repo / "scripts")
    (repo / "figure.png").write_text("committed")
    (repo / ".gitignore").write_text("_build/\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "init")
    assert _clean_tree(repo, "snapshot").returncode == 0
    assert _clean_tree(repo, "check").returncode == 0
    (repo / "figure.png").write_text("rewritten by a notebook")
    res = _clean_tree(repo, "check")
    assert res.returncode == 1 and "M figure.png" in res.stderr and ".gitignore" in res.stderr
    _git(repo, "checkout", "figure.png")
    (repo / "stray.png").write_text("a file nothing ignores")
    res = _clean_tree(repo, "check")
    assert res.returncode == 1 and "?? stray.png" in res.stderr


def test_make_test_runs_the_clean_tree_check_around_everything():
    make = (REPO / "Makefile").read_text()
    recipe = make[make.index("\ntest:") + 1:].split("\n\n")[0]
    lines = [ln.strip() for ln in recipe.splitlines()[1:]]
    assert "clean_tree.sh snapshot" in lines[0] and "clean_tree.sh check" in lines[-1]
    assert "test-unit" in lines[1] and "test-kernels" in lines[1] and "test-book" in lines[1]
