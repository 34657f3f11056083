"""The fast paths compute the same model as the readable reference paths.

EMM: the fused feature-major levels (``model.fast = True``, :mod:`emm_lib.akf_fused`) against the
component-by-component reference (``model.fast = False``); baselines likewise. Compared in float64
to 1e-6 (float32 to 1e-4: the reordered sums round differently, ~1e-5): outputs in train and eval
mode, every gradient, BatchNorm running statistics; for 2-4 tasks, hard/soft/gumbel fusion gates,
and the pretrained / use_mtm / reuse_embeddings switches. Plus: the training loop does no
per-batch host synchronisation, and shuffled batches are the rows of one permutation.
"""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from emm_lib.data.types import Split
from emm_lib.emm import EMM
from emm_lib.models import SingleTaskMLP, build_model
from emm_lib.train import fit

from helpers import make_tiny_dataset

ATOL64, ATOL32 = 1e-6, 1e-4  # float32: the fused sums round differently (~1e-5)


def _trained(ds, blocks, seed=0):
    """Single-task models with random weights and random BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    out = {}
    for t in ds.tasks:
        out[t] = []
        for block in blocks[t] if isinstance(blocks, dict) else blocks:
            m = SingleTaskMLP(ds.spec, t, block=block, n_blocks=3)
            for bn in (x for x in m.modules() if isinstance(x, nn.BatchNorm1d)):
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 2.0)
                nn.init.uniform_(bn.weight, 0.5, 1.5)
                nn.init.uniform_(bn.bias, -0.2, 0.2)
            out[t].append(m.eval())
    return out


def _as(batch, dtype):
    return type(batch)(batch.sparse, batch.dense.to(dtype), batch.y.to(dtype))


def _run(model, batch, train: bool, seed: int = 0):
    """Logits, gradients of every trainable parameter, and all buffers after one forward/backward."""
    model.train(train)
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)  # same random draws (dropout, Gumbel noise) for both paths
    logits = model(batch)
    grads = {}
    if train:
        F.binary_cross_entropy_with_logits(logits, batch.y).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}
    return logits.detach(), grads, {n: b.clone() for n, b in model.named_buffers()}


def assert_same_model(model, batch, dtype=torch.float64, atol=ATOL64):
    """Fast and reference paths of (copies of) ``model`` agree on values, gradients and buffers."""
    fast, ref = copy.deepcopy(model).to(dtype), copy.deepcopy(model).to(dtype)
    fast.fast, ref.fast = True, False
    assert fast.fast and not ref.fast
    assert not any(getattr(m, "batched", False) for m in ref.modules())  # experts/tasks one by one
    batch = _as(batch, dtype)
    for train in (True, False):
        lf, gf, bf = _run(fast, batch, train)
        lr, gr, br = _run(ref, batch, train)
        assert lf.shape == lr.shape == (len(batch.y), len(model.tasks))
        assert torch.allclose(lf, lr, atol=atol, rtol=0), (train, (lf - lr).abs().max())
        assert gf.keys() == gr.keys()
        for n in gr:
            assert torch.allclose(gf[n], gr[n], atol=atol, rtol=0), (n, (gf[n] - gr[n]).abs().max())
        for n in br:
            assert torch.equal(bf[n], br[n]) if br[n].dtype == torch.long else \
                torch.allclose(bf[n], br[n], atol=atol, rtol=0), n
    return fast, ref


@pytest.fixture(scope="module")
def datasets():
    return {T: make_tiny_dataset(T, 300, seed=T) for T in (2, 3, 4)}


# ----------------------------------------------------------------- EMM


@pytest.mark.parametrize("n_tasks", [2, 3, 4])
@pytest.mark.parametrize("fusion", ["soft", "hard", "gumbel"])
@pytest.mark.parametrize("use_mtm", [True, False])
def test_emm_fused_equals_reference_pretrained(datasets, n_tasks, fusion, use_mtm):
    ds = datasets[n_tasks]
    emm = EMM.from_trained(_trained(ds, ((8, 8), (16, 8))), fusion=fusion, use_mtm=use_mtm)
    assert emm.levels[0]._folded() is not None  # the folded components are what is tested
    batch = next(ds.train.batches(128))
    assert_same_model(emm, batch)
    assert_same_model(emm, batch, torch.float32, ATOL32)


@pytest.mark.parametrize("n_tasks", [2, 3, 4])
@pytest.mark.parametrize("fusion", ["soft", "hard"])
@pytest.mark.parametrize("use_mtm", [True, False])
def test_emm_fused_equals_reference_from_scratch(datasets, n_tasks, fusion, use_mtm):
    """Table II's baseline variants: trainable components in train mode (not folded)."""
    ds = datasets[n_tasks]
    torch.manual_seed(1)
    emm = EMM(ds.spec, ds.tasks, fusion=fusion, use_mtm=use_mtm, dropout=0.2)  # dropout: same masks
    assert emm.levels[0]._folded() is None
    assert_same_model(emm, next(ds.train.batches(128)))


@pytest.mark.parametrize("n_tasks", [2, 3])
def test_emm_fused_equals_reference_reuse_embeddings_and_unequal_models(datasets, n_tasks):
    ds = datasets[n_tasks]
    blocks = {t: [(8, 8), (16, 8), (4, 8)][: 1 + i % 3] for i, t in enumerate(ds.tasks)}  # 1, 2, 3 models
    batch = next(ds.train.batches(128))
    for reuse in (True, False):
        emm = EMM.from_trained(_trained(ds, blocks), reuse_embeddings=reuse, tower=(8, 4))
        assert emm.levels[0].task_gate.padded
        assert_same_model(emm, batch)


def test_emm_fused_follows_changed_frozen_weights(datasets):
    """The folded weights are rebuilt after load_state_dict / in-place edits of a component."""
    ds = datasets[2]
    emm = EMM.from_trained(_trained(ds, ((8, 8), (16, 8))))
    batch = next(ds.train.batches(64))
    emm.eval()
    before = emm(batch)
    other = EMM.from_trained(_trained(ds, ((8, 8), (16, 8)), seed=5))
    emm.load_state_dict(other.state_dict())
    other.eval()
    assert not torch.allclose(emm(batch), before)
    assert torch.allclose(emm(batch), other(batch), atol=1e-6)
    with torch.no_grad():
        emm.levels[1].components[0][1][4].running_var.mul_(3)
    emm.fast = False
    ref = emm(batch)
    emm.fast = True
    assert torch.allclose(emm(batch), ref, atol=1e-5)


def test_frozen_components_stay_bit_identical_on_the_fused_path(datasets):
    ds = datasets[3]
    emm = EMM.from_trained(_trained(ds, ((8, 8), (16, 8))))
    frozen = {k: v.clone() for k, v in emm.state_dict().items() if ".components." in k}
    fit(emm, ds, epochs=2, batch_size=64, patience=None)
    after = emm.state_dict()
    assert all(torch.equal(v.cpu(), after[k].cpu()) for k, v in frozen.items())  # fit may move emm to CUDA


def test_frozen_and_trainable_linear_gradcheck():
    from emm_lib.akf_fused import FrozenAndTrainableLinear

    g = torch.Generator().manual_seed(0)
    W0, b0 = torch.randn(5, 6, generator=g, dtype=torch.float64), torch.randn(5, 1, generator=g, dtype=torch.float64)
    W1 = torch.randn(3, 6, generator=g, dtype=torch.float64, requires_grad=True)
    b1 = torch.randn(3, 1, generator=g, dtype=torch.float64, requires_grad=True)
    x = torch.randn(7, 6, generator=g, dtype=torch.float64, requires_grad=True)
    for inp in (x.t(), torch.randn(6, 7, generator=g, dtype=torch.float64, requires_grad=True)):  # both layouts
        assert torch.autograd.gradcheck(lambda a, w, c: FrozenAndTrainableLinear.apply(a, W0, b0, w, c), (inp, W1, b1))
    y = FrozenAndTrainableLinear.apply(x.t(), W0, b0, W1, b1)
    assert torch.allclose(y, torch.cat([W0, W1]) @ x.t() + torch.cat([b0, b1]))


# ----------------------------------------------------------------- baselines


@pytest.mark.parametrize("n_tasks", [2, 3])
@pytest.mark.parametrize("name,sizes", [
    ("mmoe", dict(n_experts=5, expert=(6, 4), tower=(3,))),
    ("mmoe", dict(n_experts=3, expert=(4,), tower=(), dropout=0.3)),
    ("ple", dict(n_levels=1, n_specific=2, n_shared=1, expert=(5,), tower=(3,))),
    ("ple", dict(n_levels=3, n_specific=1, n_shared=2, expert=(6, 4), tower=(3,), dropout=0.3)),
    ("adatt", dict(n_levels=2, n_specific=2, n_shared=0, expert=(5,), tower=(3,))),
    ("adatt", dict(n_levels=3, n_specific=1, n_shared=2, expert=(6, 4), tower=(3,), residual_init="uniform",
                   dropout=0.3)),
])
def test_baseline_fused_equals_reference(datasets, n_tasks, name, sizes):
    ds = datasets[n_tasks]
    torch.manual_seed(2)
    model = build_model(name, ds.spec, ds.tasks, **sizes)
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm1d)):  # non-trivial running stats
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    batch = next(ds.train.batches(128))
    assert_same_model(model, batch)
    assert_same_model(model, batch, torch.float32, ATOL32)


# ----------------------------------------------------------------- training loop and data path


def test_fit_does_not_synchronise_per_batch(monkeypatch):
    """A few host syncs per epoch (loss, AUCs, input checks), never one per batch."""
    ds = make_tiny_dataset(2, 2000)
    model = build_model("mmoe", ds.spec, ds.tasks, n_experts=3)
    calls = []
    for name in ("item", "tolist", "cpu", "__float__", "__bool__", "__int__"):
        orig = getattr(torch.Tensor, name)

        def spy(self, *a, _orig=orig, _name=name, **k):
            calls.append(_name)
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, spy)
    n_batches = -(-len(ds.train) // 32)
    fit(model, ds, epochs=2, batch_size=32, patience=None)
    assert n_batches > 50 and len(calls) < n_batches, calls  # 2 epochs: one sync per batch would be 2x n_batches


def test_shuffled_batches_are_the_rows_of_one_permutation():
    ds = make_tiny_dataset(2, 203)
    s = ds.train
    perm = torch.randperm(len(s), generator=torch.Generator().manual_seed(3))
    got = list(s.batches(50, shuffle=True, generator=torch.Generator().manual_seed(3)))
    assert [len(b.y) for b in got] == [50, 50, 50, 50, 3]
    assert torch.equal(torch.cat([b.sparse for b in got]), s.sparse[perm])
    assert torch.equal(torch.cat([b.dense for b in got]), s.dense[perm])
    assert torch.equal(torch.cat([b.y for b in got]), s.y[perm])
    assert sum(len(b.y) for b in s.batches(50, shuffle=True, drop_last=True)) == 200


# ----------------------------------------------------------------- fused input, optimizer step (bit for bit)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n_dense", [3, 0])
@pytest.mark.parametrize("const_rows,bias", [(False, True), (True, True), (False, False)])
def test_embedded_affine_equals_lookup_then_addmm_bit_for_bit(dtype, n_dense, const_rows, bias):
    """EmbeddedAffine: the values and gradients of FeatureEmbedding + addmm, exactly in float32."""
    from emm_lib.data.types import FeatureSpec
    from emm_lib.features import EmbeddedBatch, FeatureEmbedding

    ds = make_tiny_dataset(2, 300)
    b = next(ds.train.batches(128, shuffle=True, generator=torch.Generator().manual_seed(0)))
    b = type(b)(b.sparse, b.dense[:, :n_dense].to(dtype), b.y)
    torch.manual_seed(0)
    emb = FeatureEmbedding(FeatureSpec(ds.spec.sparse, ds.spec.dense[:n_dense]), 4).to(dtype)
    g = torch.Generator().manual_seed(1)
    D = emb.out_features
    W1 = torch.randn(6, D, generator=g, dtype=dtype, requires_grad=True)
    b1 = torch.randn(6, 1, generator=g, dtype=dtype, requires_grad=True) if bias else None
    W0 = torch.randn(5, D, generator=g, dtype=dtype) if const_rows else None
    b0 = torch.randn(5, 1, generator=g, dtype=dtype) if const_rows and bias else None
    gy = torch.randn(6 + (5 if const_rows else 0), 128, generator=g, dtype=dtype)
    lazy = emb.feature_major(b)
    assert isinstance(lazy, EmbeddedBatch) and lazy.shape == (D, 128) and lazy.dim() == 2

    def grads(y):
        emb.zero_grad(set_to_none=True)
        W1.grad = None
        if b1 is not None:
            b1.grad = None
        y.backward(gy)
        return [t.grad.clone() for t in (emb.table.weight, W1, b1) if t is not None]

    y_new = lazy.affine(W1, b1, W0, b0)
    g_new = grads(y_new)
    x = emb(b).t()
    W = W1 if W0 is None else torch.cat([W0, W1])
    bb = None if b1 is None else (b1 if b0 is None else torch.cat([b0, b1]))
    y_ref = torch.mm(W, x) if bb is None else torch.addmm(bb, W, x)
    g_ref = grads(y_ref)
    assert torch.equal(y_new, y_ref)
    if dtype == torch.float32 and not const_rows:  # the training dtype, one GEMM shape: bit for bit
        assert [torch.equal(a, r) for a, r in zip(g_new, g_ref)] == [True] * len(g_ref)
    else:
        # With constant rows the reference's weight gradient is a slice of [W0; W1]'s, a GEMM of
        # another shape; a kernel that blocks by shape (MKL's compatible path, MKL_CBWR=COMPATIBLE)
        # sums it in another order. float64: dgemm may do so on any path.
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        assert all(torch.allclose(a, r, rtol=tol, atol=tol) for a, r in zip(g_new, g_ref))
    if dtype == torch.float64:
        table = emb.table.weight.detach().clone().requires_grad_()
        idx = b.sparse + emb.offsets
        f = lambda t, w, c: EmbeddedAffine_apply(t, idx, b.dense, W0, b0, w, c)  # noqa: E731
        assert torch.autograd.gradcheck(f, (table, W1, b1))


def EmbeddedAffine_apply(*args):
    from emm_lib.features import EmbeddedAffine

    return EmbeddedAffine.apply(*args)


def _fit_state(model, ds, **kw):
    fit(model, ds, epochs=2, batch_size=64, patience=None, **kw)
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", ["emm", "mmoe", "ple", "adatt"])
def test_fused_input_trains_bit_identically(monkeypatch, name):
    """The fused lookup + first matmul changes no trained number: fit() with and without it gives
    the same weights and BatchNorm statistics, bit for bit."""
    from emm_lib.features import FeatureEmbedding

    ds = make_tiny_dataset(2, 500)
    torch.manual_seed(3)
    model = EMM.from_trained(_trained(ds, ((8, 8), (16, 8)))) if name == "emm" else build_model(name, ds.spec, ds.tasks)
    other = copy.deepcopy(model)
    new = _fit_state(model, ds)
    monkeypatch.setattr(FeatureEmbedding, "feature_major", lambda self, batch: self(batch).t())
    old = _fit_state(other, ds)
    assert new.keys() == old.keys() and all(torch.equal(new[k], old[k]) for k in new)


def test_adam_step_equals_adam_step_bit_for_bit():
    from emm_lib.train import _adam_step

    ds = make_tiny_dataset(2, 400)
    torch.manual_seed(0)
    models = [build_model("mmoe", ds.spec, ds.tasks, n_experts=3)]
    models.append(copy.deepcopy(models[0]))
    opts = [torch.optim.Adam(m.parameters(), lr=1e-2, weight_decay=1e-4, fused=True) for m in models]
    for b in ds.train.batches(64):
        for m, o, step in zip(models, opts, (lambda o: o.step(), _adam_step)):
            o.zero_grad(set_to_none=True)
            F.binary_cross_entropy_with_logits(m(b), b.y).backward()
            step(o)
    for p, q in zip(models[0].parameters(), models[1].parameters()):
        assert torch.equal(p, q)
        s, t = opts[0].state[p], opts[1].state[q]
        assert all(torch.equal(s[k], t[k]) for k in ("step", "exp_avg", "exp_avg_sq"))


def test_split_is_row_major():
    s = make_tiny_dataset(2, 50).train
    col_major = Split(s.sparse, s.dense.t().contiguous().t(), s.y, s.tasks)
    assert not s.dense.t().contiguous().t().is_contiguous() and col_major.dense.is_contiguous()
    assert torch.equal(col_major.dense, s.dense)


# ----------------------------------------------------------------- GPU


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fast_equals_reference_on_cuda(datasets):
    ds = datasets[3]
    emm = EMM.from_trained(_trained(ds, ((8, 8), (16, 8)))).cuda()
    b = next(ds.train.batches(256))
    batch = type(b)(b.sparse.cuda(), b.dense.cuda(), b.y.cuda())
    assert_same_model(emm, batch)
    assert_same_model(emm, batch, torch.float32, 1e-4)
    res = fit(EMM.from_trained(_trained(ds, ((8, 8), (16, 8)))), ds, epochs=1, batch_size=64, device="auto", amp=True)
    assert res.device.startswith("cuda") and res.settings["amp"]
