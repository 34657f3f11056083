"""Protocol flags (chapter 08): each flag does what config.PROTOCOL_FLAGS says, and the rungs are a ladder."""
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.preprocessing import LabelEncoder, MinMaxScaler

from emm_lib import checkpoint, config
from emm_lib.study.replay import protocol
from emm_lib.data import census
from emm_lib.emm import EMM
from emm_lib.study.replay.protocol import PublishedEMM
from emm_lib.models import SingleTaskMLP
from emm_lib.train import evaluate, fit

from helpers import train_tiny_models, make_tiny_dataset

FIT = dict(batch_size=64, lr=1e-2, seed=0)


@pytest.fixture(scope="module")
def ds():
    return make_tiny_dataset(2, 400)


def _trained(ds, **kw):
    return train_tiny_models(ds, **kw)


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------ registry and rungs


def test_registry_documents_every_flag():
    for name, entry in config.PROTOCOL_FLAGS.items():
        assert entry["touches"] in ("data", "training", "model_init", "single_task", "emm"), name
        assert len(entry["doc"]) > 40, name


def test_every_flag_changes_some_setting():
    ours = protocol.settings_for([])
    assert (ours.fit, ours.emm, ours.data, ours.single_task, ours.init, ours.flags) == ({}, {}, {}, {}, {}, ())
    for flag in config.PROTOCOL_FLAGS:
        ps = protocol.settings_for([flag])
        assert ps.flags == (flag,)
        part = {"data": ps.data, "training": ps.fit, "single_task": ps.single_task, "emm": ps.emm,
                "model_init": ps.init}
        assert part[config.PROTOCOL_FLAGS[flag]["touches"]], flag  # the part it claims to touch changes
        assert protocol.settings_for([flag]).touches(config.PROTOCOL_FLAGS[flag]["touches"]) == (flag,)


def test_rungs_are_a_cumulative_ladder():
    names = [n for n, _ in config.RUNGS]
    flags = dict(config.RUNGS)
    assert names[:2] == ["paper", "published"] and names[-1] == "ours" and len(set(names)) == len(names)
    assert set(flags["paper"]) == set(flags["published"]) | {"final_epoch_weights"}
    assert set(flags["paper"]) == set(config.PROTOCOL_FLAGS)  # every flag is on somewhere
    assert flags["ours"] == ()
    for (_, prev), (_, cur) in zip(config.RUNGS[1:], config.RUNGS[2:]):
        assert set(cur) < set(prev)  # each rung turns flags off, none on
    for _, f in config.RUNGS:
        assert list(f) == sorted(f)


def test_apply_and_record():
    ps = protocol.apply("published")
    assert ps.record() == {"rung": "published", "flags": sorted(dict(config.RUNGS)["published"])}
    assert ps.fit == {"patience": config.PUBLISHED_CODE["patience"], "restore_best": True}
    assert ps.emm == {"bn_drift": True, "fusion": "hard", "mtm_activation": "none", "frozen_features": ("sex",)}
    assert ps.init == {"mtm_bias": False, "embedding_std": config.PUBLISHED_CODE["embedding_std"]}
    assert ps.data == {"preprocessing": "published"} and ps.single_task == {"block3_skipped": True}
    paper = protocol.apply("paper")
    assert paper.fit == {"patience": None, "restore_best": False}  # final_epoch_weights wins
    syn = protocol.apply("published", dataset="synthetic")
    assert syn.data == {} and "frozen_features" not in syn.emm
    assert syn.dropped == ("frozen_sex_embedding", "published_preprocessing")
    with pytest.raises(ValueError, match="Unknown rung"):
        protocol.apply("nope")
    with pytest.raises(ValueError, match="Unknown protocol flag"):
        protocol.settings_for(["bn_drift", "nope"])
    with pytest.raises(ValueError, match="list of flag names"):
        protocol.settings_for("bn_drift")


def test_rungs_before_the_tm_flag_share_trained_models_and_baselines():
    keys = {n: protocol.apply(n) for n in protocol.RUNG_NAMES}
    first = ("published", "no_frozen_sex_embedding", "no_linear_mtm", "no_bn_drift")
    assert len({keys[n].trained_model_key for n in first}) == 1
    assert keys["no_tm_block3_skipped"].trained_model_key != keys["no_bn_drift"].trained_model_key
    assert keys["no_tm_block3_skipped"].baseline_key == keys["published"].baseline_key
    assert keys["no_published_embedding_init"].baseline_key != keys["published"].baseline_key
    assert keys["ours"].baseline_key == ()


# ------------------------------------------------------------------ tm_block3_skipped


def test_tm_block3_skipped_leaves_block3_untrained_and_emm_reuses_it(ds, tmp_path):
    kw = protocol.settings_for(["tm_block3_skipped"]).single_task
    torch.manual_seed(0)
    m = SingleTaskMLP(ds.spec, "a", block=(8, 8), n_blocks=3, **kw)
    per = len(m.body) // 3
    block = lambda i: torch.nn.Sequential(*m.body[i * per:(i + 1) * per])  # noqa: E731
    before = [_state(block(i)) for i in range(3)]
    fit(m, ds, epochs=2, patience=None, **FIT)
    after = [_state(block(i)) for i in range(3)]
    assert _equal(before[2], after[2])  # block 3: weights and BatchNorm buffers bit-identical
    assert not _equal(before[0], after[0]) and not _equal(before[1], after[1])
    b = next(ds.val.batches(50))
    m.eval()
    by_hand = m.tower(block(1)(block(1)(block(0)(m.embedding(b)))))  # block 2 twice, never block 3
    torch.testing.assert_close(m(b), by_hand, rtol=0, atol=0)
    # without the flag block 3 trains
    torch.manual_seed(0)
    ours = SingleTaskMLP(ds.spec, "a", block=(8, 8), n_blocks=3)
    b3 = _state(torch.nn.Sequential(*ours.body[2 * per:]))
    fit(ours, ds, epochs=2, patience=None, **FIT)
    assert not _equal(b3, _state(torch.nn.Sequential(*ours.body[2 * per:])))
    # the flag survives a checkpoint, and EMM's level 3 is the untrained block 3
    checkpoint.save(m, tmp_path / "tm")
    again = checkpoint.load(tmp_path / "tm")
    again.eval()
    torch.testing.assert_close(again(b), m(b), rtol=0, atol=0)
    emm = EMM.from_trained({"a": [m], "b": [SingleTaskMLP(ds.spec, "b", block=(8, 8), **kw)]}, n_levels=3)
    assert _equal(_state(emm.levels[2].components[0][0]), {k: v for k, v in before[2].items()})
    with pytest.raises(ValueError, match="n_blocks >= 3"):
        SingleTaskMLP(ds.spec, "a", n_blocks=2, block3_skipped=True)


# ------------------------------------------------------------------ bn_drift


def _bn_buffers(emm):
    return {k: v.clone() for k, v in emm.state_dict().items()
            if ".components." in k and ("running_" in k or "num_batches" in k)}


@pytest.mark.parametrize("drift", [False, True])
def test_bn_drift_moves_frozen_batchnorm_statistics_only_with_the_flag(ds, drift):
    trained = _trained(ds)
    kw = protocol.settings_for(["bn_drift"] if drift else []).emm
    torch.manual_seed(0)
    emm = protocol.emm_class(kw).from_trained(trained, n_levels=3, **kw)
    before = _bn_buffers(emm)
    frozen = {k: v.clone() for k, v in emm.state_dict().items() if ".components." in k and k not in before}
    assert before and frozen
    fit(emm, ds, epochs=1, patience=None, **FIT)
    after = _bn_buffers(emm)
    assert _equal(before, after) != drift  # buffers move with the flag, are bit-identical without
    assert _equal(frozen, {k: v for k, v in emm.state_dict().items() if k in frozen})  # weights stay frozen
    assert emm.config.get("bn_drift", False) == drift
    with pytest.raises(TypeError):  # a behaviour of the authors' code, not an option of the method's EMM
        EMM.from_trained(trained, n_levels=3, bn_drift=True)


# ------------------------------------------------------------------ hard_gate, linear_mtm


def test_hard_gate_maps_to_the_arg_max_gate_and_equals_soft_with_two_tasks(ds):
    assert protocol.settings_for(["hard_gate"]).emm == {"fusion": "hard"}
    trained = _trained(ds)
    outs = []
    for fusion in ("hard", "soft"):
        torch.manual_seed(1)
        emm = EMM.from_trained(trained, n_levels=3, fusion=fusion)
        assert emm.levels[0].fusion_gate.mode == fusion
        fit(emm, ds, epochs=1, patience=None, **FIT)
        emm.eval()
        outs.append(emm(next(ds.val.batches(100))))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)  # why the rungs merge hard_gate


def test_linear_mtm_has_no_activation_and_no_bias(ds):
    ps = protocol.settings_for(["linear_mtm"])
    emm = ps.prepare(protocol.emm_class(ps.emm).from_trained(_trained(ds), n_levels=3, **ps.emm))
    assert all(isinstance(lvl.mtm.act, torch.nn.Identity) for lvl in emm.levels)
    fit(emm, ds, epochs=1, patience=None, **FIT)
    for lvl in emm.levels:  # Q, K, V are x @ W.T exactly, after training too
        qkv = lvl.mtm.qkv
        assert not qkv.bias.requires_grad and torch.equal(qkv.bias, torch.zeros_like(qkv.bias))
        x = torch.randn(2, 5, qkv.in_features)
        torch.testing.assert_close(qkv(x), x @ qkv.weight.transpose(1, 2))


def test_published_emm_checkpoints_round_trip_and_old_ones_still_load(ds, tmp_path):
    """PublishedEMM saves under its own registry name; a checkpoint saved when the switches were EMM
    options (model "emm" with bn_drift/frozen_features in its config) loads as a PublishedEMM."""
    import json

    emm = PublishedEMM.from_trained(_trained(ds), n_levels=3, frozen_features=("s1",), bn_drift=True)
    emm.eval()
    b = next(iter(ds.test.batches(64)))
    checkpoint.save(emm, tmp_path / "e")
    again = checkpoint.load(tmp_path / "e")
    assert type(again) is PublishedEMM and again.bn_drift and again.config["frozen_features"] == ["s1"]
    torch.testing.assert_close(again.eval()(b), emm(b), rtol=0, atol=0)
    meta = json.loads((tmp_path / "e.json").read_text())
    assert meta["model"] == "emm_published"
    (tmp_path / "e.json").write_text(json.dumps({**meta, "model": "emm"}))  # as saved before the move
    old = checkpoint.load(tmp_path / "e")
    assert type(old) is PublishedEMM
    torch.testing.assert_close(old.eval()(b), emm(b), rtol=0, atol=0)


def test_published_embedding_init_redraws_every_trainable_table(ds):
    ps = protocol.settings_for(["published_embedding_init", "frozen_sex_embedding"], rung="x")
    assert ps.init == {"embedding_std": config.PUBLISHED_CODE["embedding_std"]}
    torch.manual_seed(0)
    big = torch.nn.ModuleList([SingleTaskMLP(ds.spec, "a"), PublishedEMM(ds.spec, ds.tasks, frozen_features=("s1",))])
    with torch.no_grad():
        big[1].frozen_embedding.tables[0].fill_(3.0)
    ps.prepare(big)
    for table in (big[0].embedding.table.weight, big[1].embedding.table.weight):
        assert table.std().item() == pytest.approx(1e-4, rel=0.3)  # ours: N(0, 0.01)
    assert torch.equal(big[1].frozen_embedding.tables[0], torch.full_like(big[1].frozen_embedding.tables[0], 3.0))
    assert protocol.settings_for([]).prepare(big) is big


# ------------------------------------------------------------------ frozen_sex_embedding


def test_frozen_embedding_is_the_last_trained_models_table_and_stays_frozen(ds, tmp_path):
    trained = _trained(ds)
    torch.manual_seed(0)
    emm = PublishedEMM.from_trained(trained, n_levels=3, frozen_features=("s1",))
    last = trained["b"][-1].embedding
    j, card, dim = 1, ds.spec.sparse[1].cardinality, last.dim
    source = last.table.weight[int(last.offsets[j]):int(last.offsets[j]) + card].detach().clone()
    assert torch.equal(emm.frozen_embedding.tables[0], source)
    b = next(ds.val.batches(100))
    x = emm.frozen_embedding(emm.embedding(b), b)
    assert torch.equal(x[:, j * dim:(j + 1) * dim], source[b.sparse[:, j]])
    assert torch.equal(x[:, :j * dim], emm.embedding(b)[:, :j * dim])  # other features: the EMM's own
    fit(emm, ds, epochs=2, patience=None, **FIT)
    assert torch.equal(emm.frozen_embedding.tables[0], source)  # frozen through training
    # the EMM's own rows of that feature are unused: changing them changes nothing
    emm.eval()
    ref = emm(b)
    with torch.no_grad():
        off = int(emm.embedding.offsets[j])
        emm.embedding.table.weight[off:off + card] += 1.0
    torch.testing.assert_close(emm(b), ref, rtol=0, atol=0)
    checkpoint.save(emm, tmp_path / "emm")
    again = checkpoint.load(tmp_path / "emm")
    again.eval()
    torch.testing.assert_close(again(b), ref, rtol=0, atol=0)
    assert protocol.settings_for(["frozen_sex_embedding"]).emm == {"frozen_features": ("sex",)}
    with pytest.raises(ValueError, match="sparse features"):
        PublishedEMM.from_trained(trained, n_levels=3, frozen_features=("sex",))  # not a feature of this spec


# ------------------------------------------------------------------ training loop flags


def test_published_training_loop_restores_the_best_mean_and_stops_after_patience(ds, monkeypatch):
    monkeypatch.setitem(config.PUBLISHED_CODE, "patience", 3)  # 50 in the published code
    kw = protocol.settings_for(["published_training_loop"]).fit
    assert kw == {"patience": 3, "restore_best": True}
    torch.manual_seed(0)
    m = SingleTaskMLP(ds.spec, "a", block=(8, 8))
    r = fit(m, ds, epochs=40, batch_size=64, lr=1e-1, seed=0, **kw)
    h = r.history
    best = int(h.epoch[h.val_auc_mean == h.val_auc_mean.max()].iloc[0])  # first best mean
    assert r.best_epoch == best
    assert len(h) == 40 or len(h) == best + 3  # stopped after 3 epochs without improvement
    assert evaluate(m, ds.val)["a"] == pytest.approx(h.val_auc_mean.max(), abs=0)


def test_final_epoch_weights_returns_the_last_epochs_model(ds):
    kw = protocol.settings_for(["final_epoch_weights"]).fit
    assert kw == {"patience": None, "restore_best": False}
    runs = []
    for restore in (True, False):
        torch.manual_seed(0)
        m = SingleTaskMLP(ds.spec, "a", block=(8, 8))
        r = fit(m, ds, epochs=10, batch_size=64, lr=1e-1, seed=0, patience=None, restore_best=restore)
        runs.append((m, r))
    (m_best, r_best), (m_last, r_last) = runs
    h = r_last.history
    pd.testing.assert_frame_equal(h.drop(columns="seconds"), r_best.history.drop(columns="seconds"))
    assert h.val_auc_mean.iloc[-1] != h.val_auc_mean.max()  # the last epoch is not the best one here
    assert len(h) == 10 and r_last.best_epoch == 10
    assert evaluate(m_last, ds.val)["a"] == pytest.approx(h.val_auc_mean.iloc[-1], abs=0)
    assert evaluate(m_best, ds.val)["a"] == pytest.approx(h.val_auc_mean.max(), abs=0)
    assert r_last.settings["restore_best"] is False


# ------------------------------------------------------------------ published_preprocessing


def _raw(n, rng, extra_value=None):
    df = pd.DataFrame({c: rng.choice(["x", "y", "z"], n) for c in census.COLUMNS})
    for c in census.DENSE:
        df[c] = rng.integers(0, 1000, n).astype(str)
    df[census.INCOME] = rng.choice(["- 50000.", "50000+."], n)
    df["marital_stat"] = rng.choice(["Never married", "Married"], n)
    if extra_value is not None:
        df.loc[0, "race"] = extra_value  # a value only this frame has
    return df


def test_published_preprocessing_fits_on_train_and_test_together():
    rng = np.random.default_rng(0)
    train, test = _raw(60, rng), _raw(40, rng, extra_value="only-in-test")
    spec, splits, _ = census._preprocess_published(train, test, ("income", "marital"), seed=0)
    ours, ours_splits, _ = census._preprocess(train, test, ("income", "marital"), seed=0)
    assert [f.name for f in spec.sparse] == [f.name for f in ours.sparse] and spec.dense == ours.dense
    both = pd.concat([train, test], ignore_index=True)
    val_idx, test_idx = census.stratified_halves(test[census.INCOME].to_numpy(), 0)
    rows = {"train": np.arange(60), "val": 60 + val_idx, "test": 60 + test_idx}
    for j, f in enumerate(spec.sparse):  # sklearn's LabelEncoder on train+test: codes 0..K-1
        codes = LabelEncoder().fit_transform(both[f.name])
        assert f.cardinality == codes.max() + 1
        for name, r in rows.items():
            np.testing.assert_array_equal(splits[name].sparse[:, j].numpy(), codes[r])
    race = [f.name for f in spec.sparse].index("race")
    assert spec.sparse[race].cardinality == 4 and ours.sparse[race].cardinality == 4  # ours: 3 + unseen
    dense = np.round(MinMaxScaler().fit_transform(both[list(spec.dense)].astype(float)), 4)
    for name, r in rows.items():
        np.testing.assert_array_equal(splits[name].dense.numpy(), dense[r].astype(np.float32))
        assert torch.equal(splits[name].y, ours_splits[name].y)  # labels and split unchanged


def test_load_census_rejects_unknown_preprocessing(tmp_path):
    with pytest.raises(ValueError, match="preprocessing"):
        census.load_census(preprocessing="theirs", data_dir=tmp_path)


# ------------------------------------------------------------------ all flags together


def test_every_rung_builds_and_trains_on_the_same_recipe(ds):
    """The whole recipe (protocol.apply -> models -> prepare -> fit) for every rung, on tiny data
    (the 'sex' table stands in as feature s1: the tiny spec has no 'sex')."""
    for rung in protocol.RUNG_NAMES:
        ps = protocol.apply(rung)
        trained = {}
        for t in ds.tasks:
            trained[t] = []
            for block in ((8, 8), (16, 8)):
                torch.manual_seed(0)
                m = ps.prepare(SingleTaskMLP(ds.spec, t, block=block, **ps.single_task))
                r = fit(m, ds, epochs=2, **{**FIT, "patience": 1, **ps.fit})
                assert len(r.history) == 2 and r.best_epoch in (1, 2)
                trained[t].append(m)
        emm_kw = {**ps.emm, **({"frozen_features": ("s1",)} if "frozen_features" in ps.emm else {})}
        emm = ps.prepare(protocol.emm_class(emm_kw).from_trained(trained, n_levels=3, **emm_kw))
        fit(emm, ds, epochs=1, patience=None, **FIT)
        assert emm.config.get("bn_drift", False) == ("bn_drift" in ps.flags)
        assert (emm.config["fusion"] == "hard") == ("hard_gate" in ps.flags)
        assert (getattr(emm, "frozen_embedding", None) is not None) == ("frozen_sex_embedding" in ps.flags)
        assert isinstance(emm, PublishedEMM) == bool({"bn_drift", "frozen_sex_embedding"} & set(ps.flags))
        assert all(t[0].config.get("block3_skipped", False) == ("tm_block3_skipped" in ps.flags)
                   for t in trained.values())
