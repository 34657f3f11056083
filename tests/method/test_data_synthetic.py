"""Synthetic data: the MMoE-style generator (synthetic.py) and the streamed one (synthetic_stream.py)."""
import numpy as np
import pytest
import torch

from emm_lib import config
from emm_lib.data import load
from emm_lib.data.synthetic_stream import BLOCK, funnel_thresholds, make_preset, make_streamed
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


# ---------------------------------------------------------------- streamed generator (chapter 09's data)

SMALL = dict(n_sparse=3, n_dense=3, pilot_rows=1 << 16)


def test_streamed_splits_are_compact_and_shaped():
    ds = make_streamed(n_train=800, n_val=50, n_test=70, cardinality=(2, 5, 9), **SMALL)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (800, 50, 70)
    assert [f.cardinality for f in ds.spec.sparse] == [3, 6, 10] and ds.spec.n_dense == 3
    for s in ds.splits().values():
        assert s.sparse.dtype == torch.int32 and s.dense.dtype == torch.float32 and s.y.dtype == torch.float32
    sp = ds.train.sparse
    assert sp.min() >= 1 and sp.max(0).values.tolist() == [2, 5, 9]  # every code used, 0 stays free
    assert make_streamed(n_train=800, **SMALL).info["rows"] == {"train": 800, "val": 100, "test": 100}


def test_cardinality_buckets_are_equally_likely():
    ds = make_streamed(n_train=40_000, n_val=0, n_test=0, n_sparse=2, n_dense=1, cardinality=(4, 10),
                       pilot_rows=1 << 16)
    for j, k in enumerate((4, 10)):
        freq = np.bincount(ds.train.sparse[:, j].numpy(), minlength=k + 1)[1:] / 40_000
        np.testing.assert_allclose(freq, 1 / k, atol=0.01)


def test_streamed_determinism_and_nested_sizes():
    kw = dict(n_val=300, n_test=300, **SMALL)
    a, b, c = make_streamed(n_train=1000, **kw), make_streamed(n_train=1000, **kw), make_streamed(n_train=1000, seed=1, **kw)
    for s1, s2 in zip(a.splits().values(), b.splits().values()):
        assert torch.equal(s1.sparse, s2.sparse) and torch.equal(s1.dense, s2.dense) and torch.equal(s1.y, s2.y)
    assert not torch.equal(a.train.dense, c.train.dense)
    # a smaller training set is a prefix of a larger one, across a block boundary; val/test are unchanged
    big = make_streamed(n_train=BLOCK + 1000, **kw)
    assert torch.equal(big.train.dense[:1000], a.train.dense) and torch.equal(big.train.y[:1000], a.train.y)
    assert torch.equal(big.test.dense, a.test.dense) and torch.equal(big.val.sparse, a.val.sparse)
    assert not torch.equal(big.train.dense[BLOCK:BLOCK + 1000], a.train.dense)  # the next block is new rows


def test_independent_base_rates():
    ds = make_streamed(n_tasks=3, n_train=100_000, n_val=0, n_test=0, base_rates=(0.5, 0.2, 0.05), **SMALL)
    np.testing.assert_allclose(ds.train.y.mean(0).numpy(), [0.5, 0.2, 0.05], rtol=0.05)
    assert not ds.info["funnel"] and ds.info["positive_rate"]["train"] == ds.train.y.mean(0).tolist()
    y = ds.train.y
    assert ((y[:, 1] == 1) & (y[:, 0] == 0)).any()  # not a funnel: task 2 can be positive alone


def test_funnel_invariant_and_rates():
    rates = (0.04, 0.01, 0.002)
    ds = make_streamed(n_tasks=3, n_train=400_000, n_val=0, n_test=0, funnel=True, base_rates=rates,
                       correlation=0.3, n_sparse=2, n_dense=2, pilot_rows=1 << 20)
    y = ds.train.y
    assert torch.all(y[:, 1] <= y[:, 0]) and torch.all(y[:, 2] <= y[:, 1])  # conversion needs a click
    np.testing.assert_allclose(y.mean(0).numpy(), rates, rtol=0.1)
    assert y[:, 2].sum() > 500  # enough positives for the tolerance to mean something


def test_funnel_thresholds_against_a_hand_computation():
    y = np.column_stack([np.arange(1000.0), np.arange(1000.0)[::-1]])
    q = funnel_thresholds(y, np.array([0.5, 0.1]), funnel=True)
    # task 1: top half (rows 500..999); task 2 among them: y2 = 999 - row, top 20 % of 0..499
    assert q[0] == np.quantile(np.arange(1000.0), 0.5) and q[1] == np.quantile(np.arange(500.0), 0.8)
    lab = (y > q)
    lab[:, 1] &= lab[:, 0]
    assert lab[:, 0].mean() == 0.5 and lab[:, 1].mean() == 0.1


def test_streamed_correlation_knob():
    r = [make_streamed(n_train=100, correlation=p, **SMALL).info["target_correlation"][0][1] for p in (0.0, 0.5, 0.9)]
    assert abs(r[0]) < 0.05 and r[0] < r[1] < r[2]
    ds = make_streamed(n_tasks=4, n_train=100, correlation=0.75, **SMALL)
    np.testing.assert_allclose(ds.info["weight_cosine"], 0.25 * np.eye(4) + 0.75, atol=1e-6)
    assert ds.tasks == ("t1", "t2", "t3", "t4") and ds.train.y.shape[1] == 4


def test_streamed_bad_settings():
    with pytest.raises(ValueError, match="needs base_rates"):
        make_streamed(funnel=True, **SMALL)
    with pytest.raises(ValueError, match="non-increasing"):
        make_streamed(funnel=True, base_rates=(0.01, 0.03), **SMALL)
    with pytest.raises(ValueError, match="base_rates must lie in"):
        make_streamed(base_rates=(0.5, 1.0), **SMALL)
    with pytest.raises(ValueError, match="one per task"):
        make_streamed(base_rates=(0.5, 0.2, 0.1), **SMALL)
    with pytest.raises(ValueError, match="one per sparse feature"):
        make_streamed(cardinality=(3, 4), **SMALL)
    with pytest.raises(ValueError, match="too few rows"):
        make_streamed(funnel=True, base_rates=(0.01, 0.0001), **SMALL)
    with pytest.raises(ValueError, match="correlation must be in"):
        make_streamed(n_tasks=3, correlation=-0.6, **SMALL)
    with pytest.raises(ValueError, match="Unknown synthetic preset"):
        make_preset("synthetic-nope")


def test_ali_preset_shape_and_model_sizes():
    ds = make_preset("synthetic-ali", n_train=2000, n_val=500, n_test=500, pilot_rows=1 << 18)
    assert ds.name == "synthetic-ali" and ds.tasks == ("click", "conversion")
    assert ds.spec.n_sparse == 16 and ds.spec.n_dense == 63
    assert max(f.cardinality for f in ds.spec.sparse) == 100_001 and ds.info["funnel"]
    assert torch.all(ds.train.y[:, 1] <= ds.train.y[:, 0])
    assert config.model_settings("synthetic-ali", "tm2") == config.model_settings("aliexpress", "tm2")
    assert config.model_settings("synthetic-ali", "mmoe")["embedding_dim"] == 5
    assert config.profile("paper", "synthetic-ali")["batch_size"] == 32768
    # tasks=None keeps the preset's names; overrides and a name pass through
    small = make_preset(tasks=None, n_train=100, n_val=10, n_test=10, n_dense=5, name="ali-100", pilot_rows=1 << 17)
    assert small.tasks == ("click", "conversion") and small.spec.n_dense == 5 and small.name == "ali-100"
    assert make_preset(tasks=["c", "v"], n_train=100, n_val=10, n_test=10, pilot_rows=1 << 17).tasks == ("c", "v")


def test_models_train_on_int32_codes():
    from emm_lib.models import build_model
    from emm_lib.train import evaluate, fit

    ds = make_streamed(n_train=600, n_val=200, n_test=200, base_rates=0.3, **SMALL)
    model = build_model("mmoe", ds.spec, ds.tasks, n_experts=2, expert=(8,), tower=(4,), embedding_dim=3)
    res = fit(model, ds, epochs=1, batch_size=128, seed=0, device="cpu")
    assert res.best_epoch == 1 and set(evaluate(model, ds.test)) == set(ds.tasks)


def test_sweep_grid_covers_the_issue_and_builds():
    from emm_lib.emm import EMM
    from emm_lib.models import SingleTaskMLP

    sw = config.SYNTHETIC_SWEEP
    assert set(sw["relatedness"]["correlation"]) == {0.0, 0.25, 0.5, 0.75, 0.9, 1.0}
    assert tuple(sw["task_count"]["n_tasks"]) == (2, 3, 4, 6) and len(sw["seeds"]) >= 3
    ds_axis = sw["data_size"]
    assert ds_axis["dataset"] in config.SYNTHETIC_PRESETS and max(ds_axis["n_train"]) >= 10**7
    assert set(ds_axis["epochs"]) == set(ds_axis["n_train"]) and min(ds_axis["epochs"].values()) >= 1
    ds = make_synthetic(n_rows=400)
    emm_sizes = {k: v for k, v in config.model_settings("synthetic", "emm").items()
                 if k not in ("embedding_dim", "component_shapes")}
    for name, v in sw["shapes"]["variants"].items():
        shapes = [config.model_settings("synthetic", s) if isinstance(s, str) else {"embedding_dim": 4, **s}
                  for s in v["trained"]]
        trained = {t: [SingleTaskMLP(ds.spec, t, **s) for s in shapes] for t in ds.tasks}
        emm = EMM.from_trained(trained, adapters=v["adapters"], **emm_sizes)
        assert emm(next(ds.train.batches(8))).shape == (8, 2), name


def test_the_maps_funnel_is_learnable_in_every_world():
    """The synthetic map's funnel (config.SYNTHETIC_MAP's data-size overrides): in every planned world the
    generator's own latent index scores click and conversion at AUC >= 0.95, so a trained model can learn
    both; the first pass's preset (10 sine terms) makes world 1's click label a band the index misses."""
    from emm_lib.data.synthetic_stream import _Latent, _labels, funnel_thresholds
    from emm_lib.study.shared.stats import delong

    pre, over = config.SYNTHETIC_PRESETS["synthetic-ali"], config.SYNTHETIC_MAP["data_size"]["overrides"]

    def index_auc(n_sines, rates, world):
        lat = _Latent(2, pre["n_sparse"] + pre["n_dense"], pre["correlation"], world, n_sines, 0.1)
        x, y = lat.draw(np.random.default_rng([world, 99]), 60_000)
        lab = _labels(y[30_000:], funnel_thresholds(y[:30_000], np.asarray(rates), True), True)
        s = x[30_000:] @ lat.w32
        return delong(lab[:, 0], s[:, 0])[0][0], delong(lab[:, 1], s[:, 0] + s[:, 1])[0][0]

    for world in config.SYNTHETIC_MAP["seeds"]:
        assert min(index_auc(over["n_sines"], over["base_rates"], world)) >= 0.95, world
    assert index_auc(10, pre["base_rates"], 1)[0] < 0.5
