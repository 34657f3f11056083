"""Census-Income (KDD) loader on the real files from the local mirror (emm_lib/data/census.py).

The expensive part (copy + verify + preprocess, ~6 s) runs once per session into a
tmp data_dir; the facts are checked against an independent plain-Python parse of the
raw files.
"""
import hashlib
import time

import numpy as np
import pandas as pd
import pytest
import torch

from emm_lib.data import load
from emm_lib.data.census import COLUMNS, DENSE, FACTS, TASKS, _check_facts, label_encode, load_census, min_max, \
    stratified_halves
from emm_lib.data.sources import DataSourceError, fetch, sha256_of

SHA = {
    "census-income.data": "3676a81db7d3528f3f8b9f3c699d0f0aa28db45e6e994fa0b8ed38327539ee86",
    "census-income.test": "98402b1ab879573d0a7f38a699a40258080e25e33d3401e7bf9c96d3fa0fab8c",
}


@pytest.fixture(scope="session")
def census(tmp_path_factory, census_mirror):
    """(data_dir, dataset, seconds) of a first, uncached load."""
    data_dir = tmp_path_factory.mktemp("census-data")
    t0 = time.perf_counter()
    ds = load_census(data_dir=data_dir, mirror=census_mirror)
    return data_dir, ds, time.perf_counter() - t0


NEEDED = ("age", "class_of_worker", "detailed_industry_recode", "education", "marital_stat", "year", "income")


@pytest.fixture(scope="session")
def raw(census):
    """A few columns of the raw files read independently of the loader (positional
    columns, no skipinitialspace, manual strip): {column: [values]}."""
    data_dir = census[0]

    def read(name):
        idx = [COLUMNS.index(c) for c in NEEDED]
        df = pd.read_csv(data_dir / "raw" / name, header=None, usecols=idx, dtype=str, keep_default_na=False)
        assert df.shape[1] == len(NEEDED)
        return {c: [v.strip() for v in df[i].tolist()] for c, i in zip(NEEDED, idx)}

    return read("census-income.data"), read("census-income.test")


def test_row_counts_and_split_sizes(census):
    _, ds, _ = census
    assert len(ds.train) == FACTS["train_rows"] == 199_523
    assert len(ds.val) == len(ds.test) == 99_762 // 2 == 49_881
    assert ds.info["rows"] == {"train": 199_523, "val": 49_881, "test": 49_881}
    assert ds.tasks == ("income", "marital") and ds.train.tasks == ds.tasks


def test_checksums_of_raw_files(census):
    data_dir, ds, _ = census
    assert ds.info["sha256"] == SHA
    for name, h in SHA.items():
        assert sha256_of(data_dir / "raw" / name) == h
    assert all(v.startswith("mirror:") for v in ds.info["source"].values())


def test_labels_match_an_independent_parse(census, raw):
    _, ds, _ = census
    train_cols, test_cols = raw
    n_train, n_test = len(train_cols["income"]), len(test_cols["income"])
    assert n_train == 199_523 and n_test == 99_762
    income = sum(v == "50000+." for v in train_cols["income"])
    never = sum(v == "Never married" for v in train_cols["marital_stat"])
    assert ds.train.labels["income"].sum().item() == income
    assert ds.train.labels["marital"].sum().item() == never
    assert round(100 * income / n_train, 2) == 6.21
    assert ds.info["positive_rate"]["train"]["income"] == pytest.approx(income / n_train, abs=1e-6)
    # val and test together are the test file
    test_income = sum(v == "50000+." for v in test_cols["income"])
    assert ds.val.labels["income"].sum().item() + ds.test.labels["income"].sum().item() == test_income


def test_stratified_val_test_split(census):
    _, ds, _ = census
    pv, pt = ds.val.labels["income"].sum().item(), ds.test.labels["income"].sum().item()
    assert abs(pv - pt) <= 1  # income positives split evenly


def test_no_label_column_among_features(census):
    _, ds, _ = census
    names = [f.name for f in ds.spec.sparse] + list(ds.spec.dense)
    for col in ("income", "marital_stat", "instance_weight"):
        assert col not in names
    assert ds.spec.dense == DENSE and ds.spec.n_dense == 7
    # 42 fields - weight - income label - marital label = 39 = 7 dense + 32 sparse
    assert ds.spec.n_sparse == 32 and len(names) == 39
    assert sorted(names) == sorted(c for c in COLUMNS if c not in ("income", "marital_stat", "instance_weight"))
    assert ds.info["label_columns_removed"] == ["income", "marital_stat"]


def test_dense_min_max_on_train(census, raw):
    _, ds, _ = census
    d = ds.train.dense
    assert d.dtype == torch.float32 and d.shape == (199_523, 7)
    assert torch.all(d.min(0).values == 0) and torch.all(d.max(0).values == 1)
    # hand computation for age: (age - min) / (max - min) with train statistics
    age = np.array([float(v) for v in raw[0]["age"]])
    expect = (age - age.min()) / (age.max() - age.min())
    np.testing.assert_allclose(d[:, 0].numpy(), expect, rtol=1e-6, atol=1e-6)


def test_sparse_codes_and_cardinalities(census, raw):
    _, ds, _ = census
    cards = {f.name: f.cardinality for f in ds.spec.sparse}
    for col in ("education", "class_of_worker", "year", "detailed_industry_recode"):
        assert cards[col] == len(set(raw[0][col])) + 1, col
    assert cards["education"] == 18 and cards["year"] == 3
    s = ds.train.sparse
    assert s.dtype == torch.int64 and s.min().item() >= 1  # 0 is only for values unseen in train
    upper = torch.tensor([f.cardinality for f in ds.spec.sparse])
    for split in (ds.train, ds.val, ds.test):
        assert torch.all(split.sparse >= 0) and torch.all(split.sparse < upper)
    # sorted-order encoding: year 94 -> 1, 95 -> 2
    year = ds.train.sparse[:, [f.name for f in ds.spec.sparse].index("year")]
    assert year[0].item() == 2 and year[1].item() == 1  # first rows are 95, 94


def test_cached_load_is_fast_and_identical(census):
    data_dir, first, first_seconds = census
    t0 = time.perf_counter()
    again = load("census", data_dir=data_dir)
    cached_seconds = time.perf_counter() - t0
    assert again.info["cache_hit"] is True and first.info["cache_hit"] is False
    assert again.spec == first.spec and again.tasks == first.tasks
    for a, b in zip(again.splits().values(), first.splits().values()):
        assert torch.equal(a.sparse, b.sparse) and torch.equal(a.dense, b.dense) and torch.equal(a.y, b.y)
    assert again.info["positive_rate"] == first.info["positive_rate"]
    assert cached_seconds < 2.0 and cached_seconds < first_seconds
    print(f"\ncensus first load {first_seconds:.2f}s, cached load {cached_seconds:.3f}s")


def test_four_tasks_remove_every_label_column(census):
    data_dir, two, _ = census
    ds = load_census(tasks=("income", "marital", "education", "sex"), data_dir=data_dir)
    assert ds.info["cache_hit"] is False  # the cache key depends on the tasks
    names = [f.name for f in ds.spec.sparse]
    assert "education" not in names and "sex" not in names and "marital_stat" not in names
    assert ds.spec.n_sparse == 30 and ds.spec.n_dense == 7
    rates = ds.info["positive_rate"]["train"]
    assert rates["education"] == pytest.approx(0.3358, abs=1e-3)
    assert rates["sex"] == pytest.approx(0.5212, abs=1e-3)
    assert torch.equal(ds.train.y[:, :2], two.train.y)  # same rows, same order
    assert torch.equal(ds.val.y[:, :2], two.val.y)  # same split seed


def test_unknown_task_lists_known_ones(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown Census task.*income.*marital.*education.*sex"):
        load_census(tasks=("income", "age"), data_dir=tmp_path)


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="Unknown dataset 'censu'.*census"):
        load("censu")


def test_wrong_checksum_in_mirror(tmp_path, census_mirror):
    bad = tmp_path / "mirror"
    bad.mkdir()
    (bad / "census-income.data").write_bytes(b"42, Not in universe\n")  # a corrupted copy
    (bad / "census-income.test.gz").symlink_to(census_mirror / "census-income.test.gz")
    with pytest.raises(DataSourceError) as e:
        fetch("census", data_dir=tmp_path / "data", mirror=bad, sources=["mirror"])
    msg = str(e.value)
    assert "census-income.data" in msg and SHA["census-income.data"] in msg
    assert hashlib.sha256(b"42, Not in universe\n").hexdigest() in msg
    assert not (tmp_path / "data" / "raw" / "census-income.data").exists()


def test_facts_are_checked():
    good = pd.DataFrame({"income": ["- 50000."] * 9 + ["50000+."]})
    with pytest.raises(ValueError, match="train_rows"):
        _check_facts(good, good)


def test_stratified_halves_by_hand():
    labels = np.array([0] * 7 + [1] * 5)  # both class sizes odd
    a, b = stratified_halves(labels, seed=3)
    assert len(a) == len(b) == 6 and sorted(np.concatenate([a, b]).tolist()) == list(range(12))
    assert abs(labels[a].sum() - labels[b].sum()) <= 1
    a2, _ = stratified_halves(labels, seed=3)
    assert np.array_equal(a, a2)
    assert any(not np.array_equal(stratified_halves(labels, seed=s)[0], a) for s in range(4, 10))


def test_label_encode_and_min_max_by_hand():
    (tr, te), k = label_encode(pd.Series(["b", "a", "c", "a"]), pd.Series(["c", "z", "a"]))
    assert tr.tolist() == [2, 1, 3, 1] and te.tolist() == [3, 0, 1] and k == 4
    a, b = min_max(np.array([[1.0, 5.0], [3.0, 5.0]]), np.array([[4.0, 5.0]]))
    assert a.tolist() == [[0.0, 0.0], [1.0, 0.0]] and b.tolist() == [[1.5, 0.0]]  # not clipped


def test_task_table_rules():
    s = pd.Series(["Never married", "Divorced"])
    assert TASKS["marital"].rule(s).tolist() == [True, False]
    assert TASKS["income"].rule(pd.Series(["50000+.", "- 50000."])).tolist() == [True, False]
    assert TASKS["education"].rule(pd.Series(["Some college but no degree", "High school graduate",
                                              "Doctorate degree(PhD EdD)", "Children"])).tolist() == [
        True, False, True, False]
