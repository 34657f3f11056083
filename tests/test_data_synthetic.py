"""MMoE-style synthetic data (emm_lib/data/synthetic.py)."""
import numpy as np
import pytest
import torch

from emm_lib.data import load
from emm_lib.data.synthetic import make_synthetic, task_weights


def test_shapes_spec_and_splits():
    ds = make_synthetic(n_rows=1000, n_sparse=3, n_dense=5, cardinality=7, seed=1)
    assert ds.tasks == ("t1", "t2") and ds.name == "synthetic"
    assert [f.cardinality for f in ds.spec.sparse] == [8, 8, 8] and ds.spec.dense == ("d1", "d2", "d3", "d4", "d5")
    assert (len(ds.train), len(ds.val), len(ds.test)) == (800, 100, 100)
    for s in ds.splits().values():
        assert s.sparse.shape[1] == 3 and s.dense.shape[1] == 5 and s.y.shape[1] == 2
        assert s.sparse.min() >= 1 and s.sparse.max() <= 7
    y = torch.cat([s.y for s in ds.splits().values()])
    assert torch.all(y.mean(0) == 0.5)  # median threshold: exactly half positive (even N, no ties)


def test_determinism_under_seed():
    a, b, c = make_synthetic(n_rows=500, seed=3), make_synthetic(n_rows=500, seed=3), make_synthetic(n_rows=500, seed=4)
    for s1, s2 in zip(a.splits().values(), b.splits().values()):
        assert torch.equal(s1.sparse, s2.sparse) and torch.equal(s1.dense, s2.dense) and torch.equal(s1.y, s2.y)
    assert not torch.equal(a.train.dense, c.train.dense)


def test_weights_have_the_asked_cosines():
    rng = np.random.default_rng(0)
    for t, p in ((2, 0.8), (3, 0.5), (4, -0.3), (4, 1.0), (2, -1.0)):
        w = task_weights(t, 16, p, rng)
        gram = w.T @ w  # unit norm (c = 1): the Gram matrix is the cosine matrix
        np.testing.assert_allclose(gram, (1 - p) * np.eye(t) + p * np.ones((t, t)), atol=1e-12)


def test_higher_correlation_gives_more_correlated_labels():
    r = [make_synthetic(n_rows=20000, correlation=p, seed=0).info["label_correlation"][0][1]
         for p in (0.0, 0.5, 0.9)]
    assert abs(r[0]) < 0.05  # independent projections: labels uncorrelated
    assert r[0] < r[1] < r[2]
    # the same on the labels themselves, not just the reported number
    ds = make_synthetic(n_rows=20000, correlation=0.9, seed=0)
    y = ds.train.y.numpy()
    assert np.corrcoef(y.T)[0, 1] > 0.5


def test_task_names_and_counts():
    ds = load("synthetic", tasks=["ctr", "cvr", "stay"], n_rows=300)
    assert ds.tasks == ("ctr", "cvr", "stay") and ds.train.y.shape[1] == 3
    assert make_synthetic(n_tasks=4, n_rows=300).tasks == ("t1", "t2", "t3", "t4")
    with pytest.raises(ValueError, match="n_tasks"):
        make_synthetic(tasks=["a", "b", "c"], n_tasks=4)


def test_bad_settings():
    with pytest.raises(ValueError, match="correlation must be in"):
        make_synthetic(n_tasks=3, correlation=-0.7)
    with pytest.raises(ValueError, match="correlation must be in"):
        make_synthetic(correlation=1.2)
    with pytest.raises(ValueError, match="at least as many input coordinates"):
        make_synthetic(n_tasks=4, n_sparse=1, n_dense=2)
    with pytest.raises(ValueError, match="val_frac"):
        make_synthetic(val_frac=0.6, test_frac=0.5)
