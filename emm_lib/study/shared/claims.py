"""Claims: the exclusive file a process holds on a run while it trains it.

A claim file (``<results>/<profile>/.claims/<experiment>/<run>.claim``) names its holder: pid, host,
start time and a random token. While the claim is held, a thread of the holder refreshes the file's
modification time every :data:`HEARTBEAT_SECONDS` (its *heartbeat*). A claim is *stale*, and taken
over by the next process that wants the run, when

* its heartbeat is older than :data:`CLAIM_STALE_SECONDS`, whatever its pid and host (a killed
  holder on another machine, a holder whose pid now belongs to another process);
* its holder is a dead process on this host;
* it names this process's pid but not one of its tokens (a container restarted with the same pids,
  a wrapper script that ``exec``-ed Python);
* it cannot be read and is older than :data:`CLAIM_GRACE_SECONDS` (a claim is written whole before
  it appears, so an unreadable one is garbage).

A process that waits on claims says which runs, claim files and holders it waits for, and how to
clear them (:class:`WaitNotices`): on stderr, once, then every :data:`NOTICE_SECONDS`.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from emm_lib.study.shared.runs import Run

__all__ = ["CLAIM_GRACE_SECONDS", "CLAIM_STALE_SECONDS", "HEARTBEAT_SECONDS", "NOTICE_SECONDS", "claim",
           "claim_path", "describe", "WaitNotices"]

#: An unreadable claim file older than this is garbage (a claim is written whole before it appears).
CLAIM_GRACE_SECONDS = 60.0
#: How often a holder refreshes its claim's modification time.
HEARTBEAT_SECONDS = 30.0
#: A claim whose heartbeat is older than this is stale, even when its pid is alive or on another host.
CLAIM_STALE_SECONDS = 600.0
#: How often a waiting process repeats what it waits for.
NOTICE_SECONDS = 60.0

_OWN_TOKENS: set[str] = set()  # the tokens of the claims this process holds (or is making)


def claim_path(out_dir: Path, run: "Run", dataset: str) -> Path:
    """The claim file of ``run`` on ``dataset`` under ``out_dir``."""
    return out_dir / ".claims" / run.experiment / f"{dataset.replace('/', '_')}__seed{run.seed}__{run.slug}.claim"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _create_claim(path: Path, me: dict) -> bool:
    """Make ``path`` hold ``me`` in one step: written to a private file, then hard-linked into place
    (atomic, and it fails when the claim exists), so no process ever reads a half-written claim.
    Where the file system has no hard links, ``O_EXCL`` creation and a write."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    tmp.write_text(json.dumps(me))
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError:  # no hard links here
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _read_claim(path: Path) -> tuple[dict | None, str]:
    """The claim's holder and raw text (``None``: unreadable or gone)."""
    try:
        text = path.read_text()
        got = json.loads(text)
        return (got if isinstance(got, dict) else None), text
    except (OSError, ValueError):
        return None, ""


def _age(path: Path) -> float:
    """Seconds since the claim's last heartbeat (infinite when the file is gone)."""
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return float("inf")


def _stale(path: Path, other: dict | None, host: str) -> bool:
    """Whether the claim at ``path`` held by ``other`` may be taken over (see the module docstring)."""
    age = _age(path)
    if other is None:
        return age > CLAIM_GRACE_SECONDS
    if age > CLAIM_STALE_SECONDS:
        return True
    if other.get("host") != host:
        return False
    try:
        pid = int(other.get("pid", -1))
    except (TypeError, ValueError):
        return True
    if pid == os.getpid():
        return other.get("token") not in _OWN_TOKENS
    return not _alive(pid)


def _heartbeat(path: Path, token: str, stop: threading.Event) -> None:
    """Refresh the claim's modification time while it holds ``token``, until ``stop`` is set."""
    while not stop.wait(HEARTBEAT_SECONDS):
        holder, _ = _read_claim(path)
        if holder is not None and holder.get("token") == token:
            try:
                os.utime(path)
            except OSError:
                pass


@contextmanager
def _held(path: Path, token: str) -> Iterator[None]:
    """Keep the claim's heartbeat while the block runs; then remove the claim if it is still ours."""
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(path, token, stop), daemon=True, name=f"claim {path.name}")
    beat.start()
    try:
        yield
    finally:
        stop.set()
        other, _ = _read_claim(path)
        if other is not None and other.get("token") == token:
            path.unlink(missing_ok=True)
        _OWN_TOKENS.discard(token)


@contextmanager
def claim(out_dir: Path, run: "Run", dataset: str) -> Iterator[bool]:
    """Claim ``run`` with an exclusive file; yields False when another live holder has it.

    A stale claim (module docstring) is taken over. The file is complete when it appears
    (:func:`_create_claim`), so a claim being made is never mistaken for a dead one; racing claims
    have one winner.
    """
    path = claim_path(out_dir, run, dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(), "token": token}
    _OWN_TOKENS.add(token)  # before the file exists: a racing thread of ours never sees it as foreign
    mine = False
    try:
        for _ in range(2):
            mine = _create_claim(path, me)
            if mine:
                break
            other, text = _read_claim(path)
            if not _stale(path, other, me["host"]):
                break
            if _read_claim(path)[1] == text:  # still the stale claim we judged (not a fresh one)
                path.unlink(missing_ok=True)
    except BaseException:
        _OWN_TOKENS.discard(token)
        raise
    if not mine:
        _OWN_TOKENS.discard(token)
        yield False
        return
    with _held(path, token):
        yield True


def describe(out_dir: Path, run: "Run", dataset: str) -> str | None:
    """What holds ``run``'s claim and how to clear it, or None when nothing (else) holds it."""
    path = claim_path(out_dir, run, dataset)
    other, _ = _read_claim(path)
    age = _age(path)
    if age == float("inf") or (other and other.get("token") in _OWN_TOKENS):
        return None
    if other is None:
        who = "an unreadable claim"
        bound = CLAIM_GRACE_SECONDS
    else:
        since = _dt.datetime.fromtimestamp(float(other.get("since", 0)), _dt.timezone.utc)
        who = f"pid {other.get('pid')} on host {other.get('host')} since {since:%Y-%m-%d %H:%M:%S} UTC"
        bound = CLAIM_STALE_SECONDS
    return (f"waiting for {run}: claimed by {who} (last heartbeat {age:.0f}s ago) in {path}. It is taken over "
            f"when its heartbeat is {bound:.0f}s old; if that process is gone, delete the file to go on now.")


class WaitNotices:
    """Say on stderr what a study waits for: at the first wait, then every :data:`NOTICE_SECONDS`."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir, self.last = out_dir, None

    def waiting(self, runs: Sequence[tuple["Run", str]]) -> None:
        """``runs``: the (run, dataset key) pairs left; those claimed by others are described."""
        now = time.monotonic()
        if self.last is not None and now - self.last < NOTICE_SECONDS:
            return
        self.last = now
        lines = [d for r, key in runs if (d := describe(self.out_dir, r, key))]
        if not lines:
            lines = [f"waiting for {len(runs)} run(s) that wait on runs in progress elsewhere."]
        for line in lines:
            print(line, file=sys.stderr, flush=True)
