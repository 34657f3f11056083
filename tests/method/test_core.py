"""Trainer, AUC, embedding, checkpoints, results table, batching."""
import json

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from emm_lib import checkpoint
from emm_lib.study.shared import results
from emm_lib.data.types import Batch, FeatureSpec, SparseFeature, Split
from emm_lib.features import FeatureEmbedding
from emm_lib.metrics import OneClassError, auc
from emm_lib.models import MODEL_REGISTRY, SingleTaskMLP, build_model
from emm_lib.train import evaluate, fit
from emm_lib.utils import atomic_write, resolve_device


def test_auc_matches_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    s = rng.normal(size=500) + y
    assert auc(torch.tensor(y), torch.tensor(s)) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_auc_one_class_is_a_clear_error():
    with pytest.raises(OneClassError, match="only label"):
        auc(torch.zeros(10), torch.rand(10), task="income")


def test_auc_rejects_nan_scores():
    with pytest.raises(ValueError, match="NaN"):
        auc(torch.tensor([0, 1.0]), torch.tensor([0.1, float("nan")]))


def test_embedding_single_table_equals_per_feature_lookup():
    spec = FeatureSpec((SparseFeature("x", 3), SparseFeature("y", 5)), ("d",))
    emb = FeatureEmbedding(spec, dim=2)
    sparse = torch.tensor([[0, 4], [2, 1]])
    dense = torch.tensor([[0.5], [0.25]])
    out = emb(Batch(sparse, dense, torch.zeros(2, 1)))
    w = emb.table.weight
    expected = torch.cat([w[sparse[:, 0]], w[3 + sparse[:, 1]], dense], 1)
    assert out.shape == (2, 2 * 2 + 1) == (2, emb.out_features)
    assert torch.equal(out, expected)


def test_embedding_wrong_width_is_a_clear_error():
    spec = FeatureSpec((SparseFeature("x", 3),), ("d",))
    emb = FeatureEmbedding(spec, 2)
    with pytest.raises(ValueError, match="build the model from this dataset's spec"):
        emb(Batch(torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 1), torch.zeros(2, 1)))
    with pytest.raises(ValueError, match="outside"):
        emb.check_indices(torch.tensor([[3]]))


def test_batches_cover_every_row_once(tiny_dataset):
    split = tiny_dataset.train
    g = torch.Generator().manual_seed(0)
    seen = torch.cat([b.dense[:, 0] for b in split.batches(64, shuffle=True, generator=g)])
    assert torch.equal(seen.sort().values, split.dense[:, 0].sort().values)
    assert sum(len(b.y) for b in split.batches(64, drop_last=True)) == len(split) // 64 * 64


def test_split_rejects_inconsistent_rows():
    with pytest.raises(ValueError, match="disagree"):
        Split(torch.zeros(3, 1, dtype=torch.long), torch.zeros(2, 1), torch.zeros(3, 1), ("a",))


def test_single_task_mlp_uses_every_block():
    spec = FeatureSpec((SparseFeature("x", 4),), ("d",))
    m = SingleTaskMLP(spec, "a", block=(16, 8), n_blocks=3)
    widths = [l.out_features for l in m.body if isinstance(l, torch.nn.Linear)]
    assert widths == [16, 8, 16, 8, 16, 8]
    # Every Linear of the body takes part in the forward pass: all get gradients.
    b = Batch(torch.randint(0, 4, (8, 1)), torch.rand(8, 1), torch.zeros(8, 1))
    m(b).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.body.parameters())


def test_fit_learns_and_restores_best_epoch(tiny_dataset):
    m = SingleTaskMLP(tiny_dataset.spec, "a")
    before = evaluate(m, tiny_dataset.val)["a"]
    r = fit(m, tiny_dataset, epochs=6, batch_size=64, lr=5e-3, seed=0, patience=None)
    assert list(r.history.columns[:3]) == ["epoch", "train_loss", "val_auc_a"]
    assert len(r.history) == 6
    # The restored model is the best epoch's: its validation AUC is the recorded one.
    assert evaluate(m, tiny_dataset.val)["a"] == pytest.approx(r.best_val_auc["a"], abs=1e-9)
    assert r.best_val_auc["a"] == r.history.val_auc_a.max()
    assert r.best_val_auc["a"] > max(before, 0.75)


def test_fit_is_deterministic_under_a_seed(tiny_dataset):
    runs = []
    for _ in range(2):
        torch.manual_seed(123)
        m = SingleTaskMLP(tiny_dataset.spec, "b")
        r = fit(m, tiny_dataset, epochs=2, batch_size=64, seed=7)
        runs.append(r.history.train_loss.tolist())
    assert runs[0] == runs[1]


def test_fit_early_stopping_stops(tiny_dataset):
    m = SingleTaskMLP(tiny_dataset.spec, "a")
    r = fit(m, tiny_dataset, epochs=50, batch_size=64, lr=1e-1, patience=2)
    assert len(r.history) < 50
    assert r.best_epoch == len(r.history) - 2


def test_fit_rejects_unknown_task_and_bad_settings(tiny_dataset):
    m = SingleTaskMLP(tiny_dataset.spec, "zzz")
    with pytest.raises(ValueError, match="tasks="):
        fit(m, tiny_dataset, epochs=1)
    with pytest.raises(ValueError, match="epochs >= 1"):
        fit(SingleTaskMLP(tiny_dataset.spec, "a"), tiny_dataset, epochs=0)


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="Unknown device"):
        resolve_device("quantum")


def test_checkpoint_round_trip(tmp_path, tiny_dataset):
    m = SingleTaskMLP(tiny_dataset.spec, "a", block=(8, 8))
    fit(m, tiny_dataset, epochs=1, batch_size=64)
    checkpoint.save(m, tmp_path / "tm1")
    m2 = checkpoint.load(tmp_path / "tm1")
    assert isinstance(m2, SingleTaskMLP) and m2.config == m.config
    for (k, v), (k2, v2) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert k == k2 and torch.equal(v.cpu(), v2.cpu())  # fit leaves m on its device (CUDA when present)
    m.eval(); m2.eval()
    b = next(tiny_dataset.test.batches(32))
    assert torch.equal(m(b), m2(b))
    meta = json.loads((tmp_path / "tm1.json").read_text())
    assert meta["model"] == "single_task" and meta["tasks"] == ["a"]


def test_checkpoint_missing_file_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        checkpoint.load(tmp_path / "nothing")


def test_build_model_unknown_name():
    spec = FeatureSpec((SparseFeature("x", 4),), ())
    with pytest.raises(ValueError, match="Known models"):
        build_model("transformer9000", spec, ("a",))
    assert "single_task" in MODEL_REGISTRY


def test_results_append_is_tidy_and_atomic(tmp_path):
    path = tmp_path / "r" / "results.csv"
    rows = results.make_rows(dataset="tiny", profile="tiny", model="single_task", seed=0,
                             metrics={"test_auc": {"a": 0.9}, "val_auc": {"a": 0.8}}, best_epoch=3,
                             train_seconds=1.5, device="cpu", settings={"lr": 1e-3})
    results.append(path, rows[:1])
    results.append(path, rows[1:])
    df = results.read(path)
    assert list(df.columns) == results.COLUMNS and len(df) == 2
    assert set(df.metric) == {"test_auc", "val_auc"}
    with pytest.raises(ValueError, match="make_rows"):
        results.append(path, [{"model": "x"}])
    with pytest.raises(results.DuplicateRun):
        results.append(path, rows[:1])
    assert len(results.read(path)) == 2  # the failed appends changed nothing


@pytest.mark.parametrize("commit", ["3263898569e9", "012345678901", "1e5"])
def test_results_keep_text_columns_verbatim_across_appends(tmp_path, commit):
    """A commit hash that looks like a number ("3263898569e9" -> 3.263898569e+18) or has a leading
    zero is kept as written, also for the rows an append rewrites."""
    path = tmp_path / "results.csv"
    for seed in (0, 1, 2):
        rows = results.make_rows(dataset="tiny", profile="tiny", model="single_task", seed=seed,
                                 metrics={"test_auc": {"a": 0.9}}, best_epoch=3, train_seconds=1.5, device="cpu",
                                 settings={"lr": 1e-3})
        results.append(path, [{**r, "git_commit": commit, "task": "0"} for r in rows])
    df = results.read(path)
    assert list(df.git_commit) == [commit] * 3 and list(df.task) == ["0"] * 3
    assert path.read_text().count(f",{commit},") == 3


def test_atomic_write_leaves_old_content_on_failure(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(p) as fh:
            fh.write("half")
            raise RuntimeError("interrupted")
    assert p.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["f.txt"]


def test_build_model_unknown_setting_is_a_clear_error():
    spec = FeatureSpec((SparseFeature("x", 4),), ())
    with pytest.raises(ValueError, match="Unknown setting"):
        build_model("single_task", spec, ("a",), widht=3)


def test_study_tables_reads_the_census_experiments_only(tmp_path):
    """Chapter 7's tables: the replay, the sweep and the published code's CSV have their own chapters."""
    from emm_lib.study.shared import tables

    for name in ("table1", "authors_protocol", "synthetic"):
        results.append(tmp_path / f"{name}.csv", results.make_rows(
            dataset=f"census/{name}", profile="paper", model="emm", seed=0, metrics={"test_auc": {"income": 0.9}}))
    (tmp_path / "published_code.csv").write_text("commit,seed,model,task,test_auc\nabc,0,EMM,income,0.94\n")
    got = tables.study_tables(tmp_path)
    assert list(got) == ["table1"] and got["table1"].value.tolist() == [0.9]
