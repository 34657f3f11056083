"""Baselines: SharedBottom, MMoE, PLE, AITM, AdaTT.

Each model is checked against an independent loop-over-experts reference written here from
the paper's equations (so a wiring mistake in the batched implementation fails), plus shapes,
gradients, parameter counts, config round trips, the AITM calibrator and a short training run.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from helpers import make_tiny_dataset

from emm_lib import checkpoint, config
from emm_lib.data.types import Batch, FeatureSpec, SparseFeature
from emm_lib.models import (AITM, MODEL_REGISTRY, PLE, AdaTT, MMoE, SharedBottom, build_model, count_parameters,
                            mlp, parameter_table)
from emm_lib.models.aitm import calibrator_loss
from emm_lib.models.experts import ExpertGroup, GroupedLinear, TaskTowers, mix, softmax
from emm_lib.train import evaluate, fit

BASELINES = ("shared_bottom", "mmoe", "ple", "aitm", "adatt")
SMALL = {  # small sizes so the reference loops stay fast
    "shared_bottom": dict(bottom=[6, 5], tower=[4]),
    "mmoe": dict(n_experts=3, expert=[6, 5], tower=[4]),
    "ple": dict(n_levels=2, n_specific=2, n_shared=1, expert=[5], tower=[4]),
    "aitm": dict(bottom=[6, 5], tower=[4]),
    "adatt": dict(n_levels=2, n_specific=2, n_shared=1, expert=[5], tower=[4]),
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one intra-op thread is faster and immune to spin-waiting on a shared 2-core box."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _batch(ds, n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds.train), generator=g)[:n]
    return Batch(ds.train.sparse[idx], ds.train.dense[idx], ds.train.y[idx])


def _perturb_bn(model, seed=0):
    """Give every BatchNorm non-trivial affine parameters and running statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model


# ---------------------------------------------------------------- batched building blocks


def test_grouped_linear_equals_separate_linears():
    torch.manual_seed(0)
    gl = GroupedLinear(3, 5, 4)
    x = torch.randn(7, 5)
    xs = torch.randn(7, 3, 5)
    for i in range(3):
        assert torch.allclose(gl(x)[:, i], F.linear(x, gl.weight[i].T, gl.bias[i]), atol=1e-6)
        assert torch.allclose(gl(xs)[:, i], F.linear(xs[:, i], gl.weight[i].T, gl.bias[i]), atol=1e-6)
    with pytest.raises(ValueError, match="needs input"):
        gl(torch.randn(7, 2, 5))


@pytest.mark.parametrize("shared_input", [True, False])
def test_expert_group_is_exactly_independent_mlps(shared_input):
    """One BatchNorm over n*w channels == n BatchNorms: outputs and running stats agree."""
    torch.manual_seed(0)
    group = ExpertGroup(3, 5, [4, 6])
    x = torch.randn(16, 5) if shared_input else torch.randn(16, 3, 5)
    experts = [group.expert_as_mlp(i) for i in range(3)]
    out = group(x)  # train mode: batch statistics, running stats updated
    assert out.shape == (16, 3, 6)
    for i, e in enumerate(experts):
        ref = e(x if shared_input else x[:, i])
        assert torch.allclose(out[:, i], ref, atol=1e-5)
        again = group.expert_as_mlp(i)  # the updated running statistics match too
        for a, b in zip(again.state_dict().values(), e.state_dict().values()):
            assert torch.allclose(a.float(), b.float(), atol=1e-6)
    assert [type(m).__name__ for m in experts[0]] == [type(m).__name__ for m in mlp(5, [4, 6])]


def test_softmax_helper_equals_torch_softmax():
    x = torch.randn(50, 3, 7, dtype=torch.float64, requires_grad=True) * 30
    y = torch.randn(50, 3, 7, dtype=torch.float64)
    ours, = torch.autograd.grad((softmax(x) * y).sum(), x)
    ref, = torch.autograd.grad((torch.softmax(x, -1) * y).sum(), x)
    assert torch.allclose(softmax(x), torch.softmax(x, -1), atol=1e-12) and torch.allclose(ours, ref, atol=1e-12)


def test_mix_is_the_gate_weighted_sum():
    g, e = torch.rand(5, 3, 4), torch.randn(5, 4, 6)
    assert torch.allclose(mix(g, e), torch.bmm(g, e), atol=1e-6)


def _towers_ref(towers: TaskTowers, h):
    """Tower t = mlp(hidden) -> Linear(., 1), on h[:, t]."""
    cols = []
    for t in range(towers.out.n):
        z = h[:, t] if h.dim() == 3 else h
        if towers.hidden is not None:
            z = towers.hidden.expert_as_mlp(t)(z)
        cols.append(F.linear(z, towers.out.weight[t].T, towers.out.bias[t]))
    return torch.cat(cols, 1)


# ---------------------------------------------------------------- references from the papers' equations


def _reference(model, batch):
    """Loop-over-experts forward pass, eval mode, written from each paper's equations."""
    x = model.embedding(batch)
    T = len(model.tasks)
    if isinstance(model, SharedBottom):
        return _towers_ref(model.towers, model.bottom(x))
    if isinstance(model, MMoE):  # f_k(x) = sum_i softmax(W_gk x)_i f_i(x)
        outs = [model.experts.expert_as_mlp(i)(x) for i in range(model.experts.n)]
        mixed = []
        for k in range(T):
            g = torch.softmax(x @ model.gates.weight[k], -1)
            mixed.append(sum(g[:, i:i + 1] * outs[i] for i in range(len(outs))))
        return _towers_ref(model.towers, torch.stack(mixed, 1))
    if isinstance(model, PLE):
        inputs = [x] * (T + 1)  # tasks..., shared
        for lv in model.levels:
            ns, nsh = lv.n_specific, lv.n_shared
            outs = [lv.experts.expert_as_mlp(e)(inputs[min(e // ns, T)] if e < T * ns else inputs[T])
                    for e in range(T * ns + nsh)]
            new = []
            for k in range(T):  # task gate: own experts + shared experts
                sel = outs[k * ns:(k + 1) * ns] + outs[T * ns:]
                g = torch.softmax(inputs[k] @ lv.task_gates.weight[k], -1)
                new.append(sum(g[:, j:j + 1] * sel[j] for j in range(len(sel))))
            if lv.shared_gate is not None:  # shared gate: all experts
                g = torch.softmax(inputs[T] @ lv.shared_gate.weight.T, -1)
                new.append(sum(g[:, j:j + 1] * outs[j] for j in range(len(outs))))
            inputs = new
        return _towers_ref(model.towers, torch.stack(inputs[:T], 1))
    if isinstance(model, AdaTT):
        inputs = [x] * (T + 1)
        for lv in model.levels:
            ns, nsh = lv.n_specific, lv.n_shared
            owner = [e // ns if e < T * ns else T for e in range(T * ns + nsh)]
            outs = [lv.experts.expert_as_mlp(e)(inputs[owner[e]]) for e in range(T * ns + nsh)]
            units = T + int(lv.shared_unit)
            new = []
            for k in range(units):
                g = torch.softmax(inputs[k] @ lv.gates.weight[k], -1)
                fused = sum(g[:, e:e + 1] * outs[e] for e in range(len(outs)))  # AllExpertGF
                own = [e for e in range(len(outs)) if owner[e] == k]
                v = lv.task_residual[k] if k < T else lv.shared_residual
                new.append(fused + sum(v[j] * outs[e] for j, e in enumerate(own)))  # NativeExpertLF
            inputs = new
        return _towers_ref(model.towers, torch.stack(inputs[:T], 1))
    if isinstance(model, AITM):
        order = model.order
        q = [model.bottoms.expert_as_mlp(i)(x) for i in range(T)]  # funnel order
        z = [q[0]]
        for t in range(1, T):
            p = model.transfer[t - 1](z[-1])
            ait = model.ait[t - 1]
            w = torch.stack([(ait.query(u) * ait.key(u)).sum(-1) / math.sqrt(u.shape[1]) for u in (p, q[t])], 1)
            w = torch.softmax(w, 1)
            z.append(w[:, :1] * ait.value(p) + w[:, 1:] * ait.value(q[t]))
        logits_funnel = _towers_ref(model.towers, torch.stack(z, 1))
        out = torch.empty_like(logits_funnel)
        for pos, col in enumerate(order):
            out[:, col] = logits_funnel[:, pos]
        return out
    raise AssertionError(type(model))


CASES = [(n, 2) for n in BASELINES] + [(n, 3) for n in BASELINES] + [(n, 4) for n in BASELINES]


@pytest.mark.parametrize("name,n_tasks", CASES)
def test_forward_matches_loop_reference(name, n_tasks):
    ds = make_tiny_dataset(n_tasks, 200)
    torch.manual_seed(1)
    model = _perturb_bn(build_model(name, ds.spec, ds.tasks, **SMALL[name])).eval()
    b = _batch(ds)
    with torch.no_grad():
        assert torch.allclose(model(b), _reference(model, b), atol=1e-5)


@pytest.mark.parametrize("name,extra", [("ple", dict(n_levels=1)), ("ple", dict(n_levels=3)),
                                        ("adatt", dict(n_levels=1)), ("adatt", dict(n_levels=3)),
                                        ("adatt", dict(n_shared=0)), ("adatt", dict(n_shared=0, n_levels=3)),
                                        ("adatt", dict(n_specific=1, n_shared=1)),
                                        ("adatt", dict(residual_init="uniform")),
                                        ("adatt", dict(residual_init="sum")),
                                        ("aitm", dict(task_order=["c", "a", "b"]))])
def test_variants_match_loop_reference(name, extra):
    ds = make_tiny_dataset(3, 200)
    torch.manual_seed(2)
    model = _perturb_bn(build_model(name, ds.spec, ds.tasks, **{**SMALL[name], **extra})).eval()
    b = _batch(ds)
    with torch.no_grad():
        assert torch.allclose(model(b), _reference(model, b), atol=1e-5)


# ---------------------------------------------------------------- shapes and gradients

GRAD_CASES = CASES + [("ple", 2, dict(n_levels=1)), ("ple", 3, dict(n_levels=2)),
                      ("adatt", 2, dict(n_levels=1)), ("adatt", 3, dict(n_levels=2)),
                      ("adatt", 2, dict(n_shared=0, n_levels=2))]


@pytest.mark.parametrize("case", GRAD_CASES, ids=lambda c: "-".join(map(str, c[:2])) + (str(c[2]) if c[2:] else ""))
def test_shapes_and_every_parameter_gets_a_gradient(case):
    name, n_tasks, extra = (*case, {}) if len(case) == 2 else case
    ds = make_tiny_dataset(n_tasks, 200)
    torch.manual_seed(0)
    sizes = {**config.model_settings("census", name), **extra}
    model = build_model(name, ds.spec, ds.tasks, **sizes)
    b = _batch(ds, 64)
    for mode in ("train", "eval"):
        model.train(mode == "train")
        model.zero_grad()
        logits = model(b)
        assert logits.shape == (64, n_tasks) and torch.isfinite(logits).all()
        loss = F.binary_cross_entropy_with_logits(logits, b.y)
        aux = model.auxiliary_loss(logits, b)
        (loss + aux if aux is not None else loss).backward()
        for pname, p in model.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), pname
            if mode == "eval":  # with fixed BN statistics every parameter moves the loss (pre-BN biases too)
                assert p.grad.abs().sum() > 0, f"{pname} has an all-zero gradient: unused?"


# ---------------------------------------------------------------- build_model, config, sizes


def test_every_baseline_builds_from_every_dataset_setting():
    ds = make_tiny_dataset(2, 60)
    b = _batch(ds, 16)
    for dataset in config.MODEL_SIZES:
        for name in BASELINES:
            m = build_model(name, ds.spec, ds.tasks, **config.model_settings(dataset, name))
            assert m.name == name and MODEL_REGISTRY[name] is type(m)
            assert m(b).shape == (16, 2)


@pytest.mark.parametrize("name", BASELINES)
def test_config_rebuilds_the_same_model(name):
    ds = make_tiny_dataset(3, 60)
    m = build_model(name, ds.spec, ds.tasks, **SMALL[name]).eval()
    twin = build_model(name, ds.spec, ds.tasks, **m.config).eval()
    twin.load_state_dict(m.state_dict())
    b = _batch(ds, 16)
    with torch.no_grad():
        assert torch.equal(m(b), twin(b))


@pytest.mark.parametrize("name", BASELINES)
def test_checkpoint_round_trip(name, tmp_path):
    ds = make_tiny_dataset(2, 60)
    extra = dict(task_order=["b", "a"], alpha=0.3) if name == "aitm" else {}
    m = _perturb_bn(build_model(name, ds.spec, ds.tasks, **{**SMALL[name], **extra})).eval()
    checkpoint.save(m, tmp_path / name)
    back = checkpoint.load(tmp_path / name).eval()
    b = _batch(ds, 16)
    with torch.no_grad():
        assert type(back) is type(m) and back.config == m.config and torch.equal(m(b), back(b))


def test_unknown_model_name_lists_known_names():
    ds = make_tiny_dataset(2, 30)
    with pytest.raises(ValueError, match="Known models") as exc:
        build_model("mmeo", ds.spec, ds.tasks)
    assert all(n in str(exc.value) for n in BASELINES)


@pytest.mark.parametrize("name", BASELINES)
def test_unknown_size_key_is_a_clear_error(name):
    ds = make_tiny_dataset(2, 30)
    with pytest.raises(ValueError, match=r"Unknown setting\(s\) \['n_expert'\].*accepts"):
        build_model(name, ds.spec, ds.tasks, n_expert=3)


@pytest.mark.parametrize("name,bad", [("mmoe", dict(n_experts=0)), ("ple", dict(n_levels=0)),
                                      ("ple", dict(n_shared=0)), ("adatt", dict(n_shared=-1)),
                                      ("adatt", dict(residual_init="zero")), ("mmoe", dict(expert=[])),
                                      ("shared_bottom", dict(bottom=[0])), ("aitm", dict(alpha=-1.0)),
                                      ("aitm", dict(task_order=["a", "a"]))])
def test_bad_sizes_are_clear_errors(name, bad):
    ds = make_tiny_dataset(2, 30)
    with pytest.raises(ValueError, match=name):
        build_model(name, ds.spec, ds.tasks, **bad)


def test_parameter_counts_match_hand_computation():
    spec = FeatureSpec((SparseFeature("x", 10), SparseFeature("y", 6)), ("d1", "d2", "d3"))
    D, T, E, w, t = 2 * 4 + 3, 2, 3, 16, 8
    emb = 16 * 4
    lin_bn = lambda i, o: i * o + o + 2 * o  # Linear + BatchNorm affine
    towers = T * (lin_bn(w, t) + t + 1)
    mmoe = build_model("mmoe", spec, ("a", "b"), n_experts=E, expert=[w], tower=[t])
    assert count_parameters(mmoe)["total"] == emb + E * lin_bn(D, w) + T * D * E + towers
    sb = build_model("shared_bottom", spec, ("a", "b"), bottom=[w], tower=[t])
    # PLE, 1 level, 2 specific per task, 1 shared: experts, task gates over 3 experts, no shared gate
    ple1 = build_model("ple", spec, ("a", "b"), n_levels=1, n_specific=2, n_shared=1, expert=[w], tower=[t])
    assert count_parameters(ple1)["total"] == emb + 5 * lin_bn(D, w) + T * D * 3 + towers
    # AdaTT, 1 level: experts, one gate per task over all 5 experts, residual weights 2x2
    ada1 = build_model("adatt", spec, ("a", "b"), n_levels=1, n_specific=2, n_shared=1, expert=[w], tower=[t])
    assert count_parameters(ada1)["total"] == emb + 5 * lin_bn(D, w) + T * D * 5 + T * 2 + towers
    table = parameter_table({"sb": sb, "mmoe": mmoe})
    assert list(table.model) == ["sb", "mmoe"]
    assert (table.embedding == emb).all()
    assert table.set_index("model").loc["sb", "non_embedding"] == lin_bn(D, w) + towers
    assert (table.total == table.trainable).all() and (table.frozen == 0).all()


# ---------------------------------------------------------------- model-specific behaviour


def test_ple_shared_gate_only_below_the_last_level():
    ds = make_tiny_dataset(2, 30)
    m = build_model("ple", ds.spec, ds.tasks, n_levels=3, n_specific=1, n_shared=2, expert=[4], tower=[3])
    assert [lv.shared_gate is not None for lv in m.levels] == [True, True, False]
    assert [lv.experts.n for lv in m.levels] == [4, 4, 4]


def test_adatt_variants_and_single_expert_residual():
    ds = make_tiny_dataset(2, 30)
    sp = build_model("adatt", ds.spec, ds.tasks, n_levels=2, n_shared=0, expert=[4], tower=[3])
    assert sp.variant == "AdaTT-sp" and not any(lv.shared_unit for lv in sp.levels)
    g = build_model("adatt", ds.spec, ds.tasks, n_levels=2, n_shared=1, expert=[4], tower=[3])
    assert [lv.shared_unit for lv in g.levels] == [True, False]
    one = build_model("adatt", ds.spec, ds.tasks, n_levels=1, n_specific=1, n_shared=0, expert=[4], tower=[3])
    # One expert per task: the residual is the plain "+ E_k" (no learnable weight).
    assert "levels.0.task_residual" not in dict(one.named_parameters())
    assert torch.equal(one.levels[0].task_residual, torch.ones(2, 1))
    mean = build_model("adatt", ds.spec, ds.tasks, n_specific=4)  # default: the mean of the native experts
    assert torch.allclose(mean.levels[0].task_residual, torch.full((2, 4), 0.25))
    total = build_model("adatt", ds.spec, ds.tasks, n_specific=4, residual_init="sum")
    assert torch.equal(total.levels[0].task_residual, torch.ones(2, 4))


def test_aitm_first_task_of_the_funnel_ignores_the_transfer_chain():
    ds = make_tiny_dataset(3, 60)
    torch.manual_seed(0)
    m = build_model("aitm", ds.spec, ds.tasks, bottom=[5], tower=[3], task_order=["b", "c", "a"]).eval()
    b = _batch(ds, 16)
    before = m(b).detach()
    with torch.no_grad():
        for p in list(m.ait.parameters()) + list(m.transfer.parameters()):
            p.add_(torch.randn_like(p))
    after = m(b).detach()
    assert torch.equal(before[:, 1], after[:, 1])  # "b" is first: z_b = q_b
    assert not torch.allclose(before[:, 0], after[:, 0]) and not torch.allclose(before[:, 2], after[:, 2])


def test_calibrator_hand_values_and_zero_on_a_funnel():
    logits = torch.tensor([[0.0, 1.0, -1.0], [2.0, 0.0, 3.0]])
    p = torch.sigmoid(logits)
    expected = 0.6 * ((p[0, 1] - p[0, 0]) + (p[1, 2] - p[1, 1])) / 2
    assert torch.allclose(calibrator_loss(logits, [0, 1, 2], 0.6), expected)
    # A funnel: p_t <= p_{t-1} on every row -> exactly zero.
    funnel = torch.sort(torch.randn(100, 4), dim=1, descending=True).values
    assert calibrator_loss(funnel, [0, 1, 2, 3], 0.6).item() == 0.0
    assert calibrator_loss(torch.randn(100, 4), [0, 1, 2, 3], 0.6).item() > 0.0
    assert (calibrator_loss(torch.randn(100, 4) * 5, [2, 0, 3, 1], 0.6) >= 0)


def test_aitm_auxiliary_loss_follows_task_order_and_alpha():
    ds = make_tiny_dataset(2, 30)
    b = _batch(ds, 4)
    logits = torch.tensor([[0.0, 1.0]] * 4)  # p_b > p_a
    default = build_model("aitm", ds.spec, ds.tasks)  # funnel a -> b: violated
    violation = torch.sigmoid(torch.tensor(1.0)).item() - 0.5
    assert default.auxiliary_loss(logits, b).item() == pytest.approx(0.6 * violation)
    reverse = build_model("aitm", ds.spec, ds.tasks, task_order=["b", "a"])  # funnel b -> a: satisfied
    assert reverse.auxiliary_loss(logits, b).item() == 0.0
    assert build_model("aitm", ds.spec, ds.tasks, alpha=0.0).auxiliary_loss(logits, b) is None
    assert reverse.config["task_order"] == ["b", "a"] and default.config["alpha"] == 0.6


# ---------------------------------------------------------------- learning


@pytest.mark.parametrize("name", BASELINES)
def test_beats_chance_on_related_tasks(name):
    """Census-sized model, 3 epochs on 2,000 rows of two related tasks: test AUC > 0.9 on both."""
    ds = make_tiny_dataset(2, 2000, seed=1)
    torch.manual_seed(0)
    model = build_model(name, ds.spec, ds.tasks, **config.model_settings("census", name))
    fit(model, ds, epochs=3, batch_size=128, lr=1e-2, patience=None, seed=0, device="cpu")
    aucs = evaluate(model, ds.test)
    assert min(aucs.values()) > 0.9, aucs
