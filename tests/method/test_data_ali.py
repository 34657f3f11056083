"""AliExpress / Ali-CCP loaders (emm_lib/data/ali.py): files in each format written by the tests
(and the shared format samples where present), and small CSVs for the bad-input cases."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from emm_lib.data import load
from emm_lib.data.ali import ALI_CCP, ALIEXPRESS, _group_holdout, load_ali_ccp, load_aliexpress

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def write_layout(folder: Path, layout, n=60, seed=0, suffix="", tweak=None) -> Path:
    """Random files in ``layout``'s CSV format; ``tweak(split, df)`` may corrupt a frame."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split in layout.files:
        df = pd.DataFrame({"search_id": np.repeat(np.arange(n // 3), 3)[:n]} if layout.ids else {})
        for c in layout.sparse:
            df[c] = rng.integers(0, 6, n)
        for c in layout.dense:
            df[c] = rng.random(n).round(4)
        for c in layout.labels:
            df[c] = rng.integers(0, 2, n)
        if tweak is not None:
            df = tweak(split, df)
        df.to_csv(folder / f"{layout.prefix}_{split}{suffix}.csv", index=False)
    return folder


def _rows(folder: Path, layout, split: str) -> int:
    return len(pd.read_csv(next(folder.glob(f"{layout.prefix}_{split}*.csv"))))


@pytest.fixture(params=["generated"] + (["shared"] if SHARED.is_dir() else []))
def source(request, tmp_path):
    """Files in each format: written here by the test (every machine), and, only where ``../shared/data``
    sits beside the clone, its format samples too (an extra check of the real files' layout, not a skip)."""
    def folder(layout, name: str) -> Path:
        if request.param == "generated":
            return write_layout(tmp_path / name, layout, n=300, seed=7, suffix="_sample")
        return SHARED / name
    return folder


def test_aliexpress_layout(source):
    folder = source(ALIEXPRESS, "aliexpress-sample")
    ds = load("aliexpress", path=folder)
    assert ds.tasks == ("conversion", "click")  # Table I order
    assert ds.spec.n_sparse == 16 and ds.spec.n_dense == 63
    assert [f.name for f in ds.spec.sparse] == [f"categorical_{i}" for i in range(1, 17)]
    assert len(ds.train) + len(ds.val) == _rows(folder, ALIEXPRESS, "train") and len(ds.val) > 0
    assert len(ds.test) == _rows(folder, ALIEXPRESS, "test")
    for s in ds.splits().values():
        assert set(torch.unique(s.y).tolist()) <= {0.0, 1.0}
        assert s.dense.dtype == torch.float32 and s.sparse.dtype == torch.int64
    # raw values read back: the dense block of the test file equals its numerical columns
    raw = pd.read_csv(next(folder.glob("aliexpress_test*.csv")))
    np.testing.assert_allclose(ds.test.dense.numpy(), raw[list(ALIEXPRESS.dense)].to_numpy(np.float32))
    np.testing.assert_array_equal(ds.test.labels["click"].numpy(), raw["click"].to_numpy())


def test_ali_ccp_layout(source):
    folder = source(ALI_CCP, "ali-ccp-sample")
    ds = load_ali_ccp(folder)
    assert ds.tasks == ("purchase", "click")
    assert ds.spec.n_sparse == 23 and ds.spec.n_dense == 8
    assert all(n.startswith("D") for n in ds.spec.dense)
    assert ds.info["rows"] == {k: _rows(folder, ALI_CCP, k) for k in ("train", "val", "test")}
    assert ds.info["validation"] == "the val file"


def test_categorical_re_encoding_by_hand(tmp_path):
    def tweak(split, df):
        df["categorical_1"] = [7, 3, 3, 9] * (len(df) // 4) if split == "train" else [3, 5, 9, 7] * (len(df) // 4)
        return df

    folder = write_layout(tmp_path, ALIEXPRESS, n=60, tweak=tweak)
    ds = load_aliexpress(folder, val_frac=0.2, seed=1)
    f = ds.spec.sparse[0]
    assert f.name == "categorical_1" and f.cardinality == 4  # {3, 7, 9} + the unseen slot
    assert ds.test.sparse[:4, 0].tolist() == [1, 0, 3, 2]  # 3->1, 5 unseen->0, 9->3, 7->2


def test_aliexpress_validation_is_held_out_sessions(tmp_path):
    folder = write_layout(tmp_path, ALIEXPRESS, n=300)
    ds = load_aliexpress(folder, val_frac=0.1, seed=5)
    assert len(ds.train) + len(ds.val) == 300 and len(ds.test) == 300
    assert len(ds.val) == 30  # 10 of the 100 search sessions, 3 rows each
    again = load_aliexpress(folder, val_frac=0.1, seed=5)
    assert torch.equal(again.val.dense, ds.val.dense)
    groups = np.repeat(np.arange(100), 3)
    held = _group_holdout(groups, 0.1, seed=5)
    assert held.sum() == 30 and not set(groups[held]) & set(groups[~held])


def test_real_and_sample_file_names(tmp_path):
    write_layout(tmp_path / "real", ALI_CCP)
    write_layout(tmp_path / "sample", ALI_CCP, suffix="_sample")
    a, b = load_ali_ccp(tmp_path / "real"), load_ali_ccp(tmp_path / "sample")
    assert torch.equal(a.train.dense, b.train.dense)
    write_layout(tmp_path / "sample", ALI_CCP, suffix="_other")
    with pytest.raises(ValueError, match="Several train files"):
        load_ali_ccp(tmp_path / "sample")


def test_tasks_select_and_order(tmp_path):
    folder = write_layout(tmp_path, ALI_CCP)
    ds = load_ali_ccp(folder, tasks=["click"])
    raw = pd.read_csv(folder / "ali_ccp_val.csv")
    assert ds.tasks == ("click",)
    assert torch.equal(ds.val.y[:, 0], torch.tensor(raw["click"].to_numpy(), dtype=torch.float32))
    with pytest.raises(ValueError, match=r"Known tasks: \['click', 'purchase'\]"):
        load_ali_ccp(folder, tasks=("ctr",))


def test_missing_column_is_named(tmp_path):
    folder = write_layout(tmp_path, ALIEXPRESS, tweak=lambda s, df: df.drop(columns=["numerical_7"]))
    with pytest.raises(ValueError, match=r"missing column\(s\) \['numerical_7'\]"):
        load_aliexpress(folder)


def test_extra_column_is_named(tmp_path):
    folder = write_layout(tmp_path, ALI_CCP, tweak=lambda s, df: df.assign(ctcvr=0))
    with pytest.raises(ValueError, match=r"unexpected column\(s\) \['ctcvr'\]"):
        load_ali_ccp(folder)


def test_nan_is_named_with_row_count(tmp_path):
    def tweak(split, df):
        if split == "test":
            df.loc[[1, 4, 9], "D508"] = np.nan
        return df

    folder = write_layout(tmp_path, ALI_CCP, tweak=tweak)
    with pytest.raises(ValueError, match=r"ali_ccp_test.csv: missing values \(NaN\) in column 'D508' \(3 rows\)"):
        load_ali_ccp(folder)


def test_non_binary_label(tmp_path):
    def tweak(split, df):
        df.loc[0, "conversion"] = 2
        return df

    folder = write_layout(tmp_path, ALIEXPRESS, tweak=tweak)
    with pytest.raises(ValueError, match=r"label column 'conversion' must be 0/1 but has 1 rows"):
        load_aliexpress(folder)


def test_non_numeric_dense(tmp_path):
    def tweak(split, df):
        df["numerical_3"] = df["numerical_3"].astype(object)
        df.loc[2, "numerical_3"] = "high"
        return df

    folder = write_layout(tmp_path, ALIEXPRESS, tweak=tweak)
    with pytest.raises(ValueError, match="non-numeric"):
        load_aliexpress(folder)


def test_missing_files_say_what_and_where(tmp_path):
    write_layout(tmp_path, ALI_CCP)
    (tmp_path / "ali_ccp_val.csv").unlink()
    with pytest.raises(FileNotFoundError) as e:
        load_ali_ccp(tmp_path)
    msg = str(e.value)
    assert "ali_ccp_train.csv, ali_ccp_val.csv, ali_ccp_test.csv" in msg and str(tmp_path) in msg
    assert "tianchi" in msg.lower()
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        load_aliexpress(tmp_path / "nowhere")


def test_path_is_required():
    with pytest.raises(ValueError, match="pass path=.*cannot be downloaded"):
        load("aliexpress")
