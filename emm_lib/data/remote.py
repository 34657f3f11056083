"""Reading remote data without running anything from it: download a URL to a file (with its
sha256), find a source distribution through a package index's simple API (the index pip is
configured to use), and read archive members as streams (never extracted, no links, no path
tricks). :mod:`emm_lib.data.sources` checks every byte against its table.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import sys
import tarfile
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import BinaryIO, Iterator

__all__ = ["download", "walk_archive", "package_index_url", "find_sdist", "MAX_MEMBER_BYTES"]

CHUNK = 1 << 20


def _progress(total: int | None, desc: str, quiet: bool):
    from tqdm.auto import tqdm

    disable = quiet or not sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, disable=disable, leave=False)


def download(url: str, dest: Path, timeout: float, quiet: bool = True) -> str:
    """Download ``url`` to ``dest`` with a progress bar; return the sha256 of the bytes written."""
    req = urllib.request.Request(url, headers={"User-Agent": "emm-study data fetch"})
    h = hashlib.sha256()
    with urllib.request.urlopen(req, timeout=timeout) as resp, open(dest, "wb") as out:
        total = resp.headers.get("Content-Length")
        with _progress(int(total) if total else None, dest.name, quiet) as bar:
            for chunk in iter(lambda: resp.read(CHUNK), b""):
                out.write(chunk)
                h.update(chunk)
                bar.update(len(chunk))
    return h.hexdigest()


#: Largest archive member read (or nested archive buffered); the Census files are ~100 MB.
MAX_MEMBER_BYTES = 1 << 30
_ARCHIVES = (".zip", ".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")


def _safe_name(name: str) -> bool:
    """A member name we are willing to look at: relative, no ``..`` (nothing is ever written under a
    member's name; this just refuses archives that try path tricks)."""
    parts = name.replace("\\", "/").split("/")
    return bool(name) and not name.startswith("/") and ".." not in parts


def walk_archive(fh: BinaryIO, name: str, nested: bool = True) -> Iterator[tuple[str, BinaryIO]]:
    """Yield (base name, readable stream) for every regular member of a zip / tar archive (and,
    with ``nested``, of archives inside it). Members are read as streams, never extracted; links,
    devices, unsafe names and members over :data:`MAX_MEMBER_BYTES` are skipped."""
    lname = name.lower()
    if lname.endswith(".zip"):
        with zipfile.ZipFile(fh) as zf:
            for info in zf.infolist():
                if info.is_dir() or not _safe_name(info.filename) or info.file_size > MAX_MEMBER_BYTES:
                    continue
                with zf.open(info) as member:
                    yield from _member(member, info.filename, nested)
    elif lname.endswith(_ARCHIVES):
        with tarfile.open(fileobj=fh, mode="r:*") as tf:
            for info in tf:
                if not info.isreg() or not _safe_name(info.name) or info.size > MAX_MEMBER_BYTES:
                    continue
                member = tf.extractfile(info)
                if member is not None:
                    yield from _member(member, info.name, nested)


def _member(stream: BinaryIO, name: str, nested: bool) -> Iterator[tuple[str, BinaryIO]]:
    base = name.rsplit("/", 1)[-1]
    if nested and base.lower().endswith(_ARCHIVES):
        # nested archive: buffer it (zip needs seeking), then walk it
        yield from walk_archive(io.BytesIO(stream.read(MAX_MEMBER_BYTES)), base, nested)
    else:
        yield base, stream


def package_index_url() -> str:
    """The simple index pip would use: ``PIP_INDEX_URL``, else pip's configuration files
    (``pip config set global.index-url ...``), else pip's built-in default."""
    env = os.environ.get("PIP_INDEX_URL")
    if env:
        return env
    try:
        from pip._internal.configuration import Configuration

        conf = Configuration(isolated=False)
        conf.load()
        for key in ("download.index-url", "global.index-url"):
            with contextlib.suppress(Exception):
                return str(conf.get_value(key))
    except Exception:  # noqa: BLE001 -- pip's internals move; fall through to its default
        pass
    try:
        from pip._internal.models.index import PyPI

        return PyPI.simple_url
    except Exception as exc:  # noqa: BLE001
        raise LookupError("cannot tell which package index to use: set PIP_INDEX_URL") from exc


def find_sdist(index_url: str, package: str, version: str, timeout: float) -> tuple[str, str | None]:
    """The sdist URL (and the index's sha256 for it) of ``package==version``, from the simple API
    (PEP 691 JSON, else the PEP 503 HTML page). Raises OSError (unreachable) or LookupError."""
    url = f"{index_url.rstrip('/')}/{package}/"
    req = urllib.request.Request(url, headers={
        "Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1", "User-Agent": "emm-study data fetch"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            ctype = resp.headers.get("Content-Type", "")
            body = resp.read(16 << 20)
    except OSError as exc:
        raise OSError(f"cannot read the package index page {url} ({type(exc).__name__}: {exc}); set "
                      "PIP_INDEX_URL to an index you can reach") from exc
    if "json" in ctype:
        links = [(f.get("filename", ""), f.get("url", ""), f.get("hashes", {}).get("sha256"))
                 for f in json.loads(body).get("files", [])]
    else:
        links = []
        for href in re.findall(r'href="([^"]+)"', body.decode("utf-8", "replace")):
            href = href.replace("&amp;", "&")
            target, _, frag = href.partition("#")
            digest = frag.split("=", 1)[1] if frag.startswith("sha256=") else None
            links.append((urllib.parse.unquote(target.rsplit("/", 1)[-1]), href, digest))
    wanted = {f"{package}-{version}{ext}" for ext in (".tar.gz", ".zip")}
    wanted |= {w.replace("-", "_", package.count("-")) for w in wanted}
    for fn, href, digest in links:
        if fn in wanted:
            return urllib.parse.urljoin(url, href.split("#")[0]), digest
    raise LookupError(f"no sdist of {package}=={version} in {url}")
