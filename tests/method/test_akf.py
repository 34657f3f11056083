"""AKF (one EMM level): task gate (Eq. 2), fusion gate (Eq. 3), MTM (Eqs. 4-6), hand-checked."""
import math

import pytest
import torch
from torch import nn

from emm_lib.akf import AKF, FusionGate, MultiTaskMerge, TaskGate, TaskLinear
from emm_lib.models import mlp


def test_task_linear_matches_per_task_linear_maps():
    lin = TaskLinear(3, 5, 4)
    x = torch.randn(7, 5)
    xs = torch.randn(3, 7, 5)
    for t in range(3):
        W, b = lin.weight[t].t(), lin.bias[t]
        assert torch.allclose(lin(x)[t], x @ W + b, atol=1e-6)
        assert torch.allclose(lin(xs)[t], xs[t] @ W + b, atol=1e-6)
        assert torch.allclose(lin.task(t, xs[t]), xs[t] @ W + b, atol=1e-6)


def test_task_gate_is_a_softmax_over_each_tasks_own_components():
    gate = TaskGate(6, [2, 1, 3], batch_norm=False)
    x = torch.randn(9, 6)
    g = gate(x)
    assert g.shape == (3, 9, 3)
    for t, m in enumerate([2, 1, 3]):
        expected = torch.softmax(gate.linear.task(t, x)[:, :m], dim=-1)  # hand computation
        assert torch.allclose(g[t, :, :m], expected, atol=1e-6)
        assert torch.all(g[t, :, m:] == 0)  # padded slots get no weight
        assert torch.allclose(g[t].sum(-1), torch.ones(9))
    # Eq. 2: weighted sum of the component outputs.
    h = torch.randn(3, 9, 3, 4)
    H = TaskGate.mix(g, h)
    for t in range(3):
        for b in range(9):
            assert torch.allclose(H[t, b], sum(g[t, b, i] * h[t, b, i] for i in range(3)), atol=1e-6)


def test_task_gate_batchnorm_is_applied_to_the_logits():
    gate = TaskGate(4, [2, 2], batch_norm=True)
    x = torch.randn(32, 4)
    gate.train()
    g = gate(x)
    logits = torch.stack([gate.linear.task(t, x) for t in range(2)], 1).reshape(32, 4)
    z = (logits - logits.mean(0)) / torch.sqrt(logits.var(0, unbiased=False) + 1e-5)
    assert torch.allclose(g, torch.softmax(z.view(32, 2, 2), -1).transpose(0, 1), atol=1e-5)
    # per-task inputs (levels > 1) go through the same gate
    assert gate(torch.randn(2, 32, 4)).shape == (2, 32, 2)


@pytest.mark.parametrize("mode", ["hard", "soft", "gumbel"])
@pytest.mark.parametrize("n_tasks", [2, 3, 4])
def test_fusion_gate_never_picks_the_task_itself(mode, n_tasks):
    torch.manual_seed(0)
    gate = FusionGate(5, n_tasks, mode=mode)
    # Bias every task's scores strongly towards itself: the gate must still pick another task.
    with torch.no_grad():
        for t in range(n_tasks):
            gate.linear.bias[t, t] = 100.0
    for training in (True, False):
        gate.train(training)
        w, scores = gate(torch.randn(64, 5))
        assert w.shape == scores.shape == (n_tasks, 64, n_tasks)
        for t in range(n_tasks):
            assert torch.all(w[t, :, t] == 0)
            assert torch.allclose(w[t].sum(-1), torch.ones(64))
            assert torch.all(scores[t].argmax(-1) == t)  # the raw scores did prefer itself
        if mode != "soft" or n_tasks == 2:  # one partner, weight 1
            assert torch.all((w == 0) | (w == 1))


def test_hard_fusion_picks_the_best_other_task_and_passes_no_gradient():
    gate = FusionGate(5, 3, mode="hard")
    x = torch.randn(20, 5)
    w, _ = gate(x)
    for t in range(3):
        s = gate.linear.task(t, x).clone()
        s[:, t] = -float("inf")
        assert torch.equal(w[t].argmax(-1), s.argmax(-1))
    assert not w.requires_grad  # the arg max cuts the graph: the gate never learns
    H = torch.randn(3, 20, 4, requires_grad=True)
    FusionGate.partner(w, H).sum().backward()
    assert gate.linear.weight.grad is None


@pytest.mark.parametrize("mode", ["soft", "gumbel"])
def test_differentiable_fusion_gate_learns(mode):
    torch.manual_seed(0)
    gate = FusionGate(5, 3, mode=mode)
    gate.train()
    H = torch.randn(3, 20, 4)
    w, _ = gate(torch.randn(20, 5))
    (FusionGate.partner(w, H) * torch.randn(3, 20, 4)).sum().backward()
    assert gate.linear.weight.grad is not None and gate.linear.weight.grad.abs().sum() > 0


def test_soft_partner_is_the_softmax_over_the_other_tasks():
    gate = FusionGate(5, 3, mode="soft")
    x, H = torch.randn(6, 5), torch.randn(3, 6, 4)
    w, _ = gate(x)
    P = FusionGate.partner(w, H)
    for t in range(3):
        others = [u for u in range(3) if u != t]
        p = torch.softmax(gate.linear.task(t, x)[:, others], dim=-1)
        expected = sum(p[:, j : j + 1] * H[u] for j, u in enumerate(others))
        assert torch.allclose(P[t], expected, atol=1e-6)


def test_unknown_fusion_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown fusion mode"):
        FusionGate(4, 2, mode="argmax")


@pytest.mark.parametrize("activation", ["relu", "tanh", "none"])
def test_mtm_matches_a_hand_computation(activation):
    torch.manual_seed(1)
    mtm = MultiTaskMerge(2, 4, 4, activation=activation)
    own, partner = torch.randn(2, 5, 4), torch.randn(2, 5, 4)
    with torch.no_grad():
        z, c = mtm(own, partner)
    act = {"relu": torch.relu, "tanh": torch.tanh, "none": lambda v: v}[activation]
    d = mtm.d_k
    for t in range(2):
        W, b = mtm.qkv.weight.detach()[t].t(), mtm.qkv.bias.detach()[t]
        Wq, Wk, Wv = W[:, :d], W[:, d : 2 * d], W[:, 2 * d :]
        bq, bk, bv = b[:d], b[d : 2 * d], b[2 * d :]
        for row in range(5):
            pair = [own[t, row], partner[t, row]]  # [p^x, p^y]
            scores = []
            for w in pair:  # Eq. 6: <Q(w), K(w)> / sqrt(d)
                q, k = act(w @ Wq + bq), act(w @ Wk + bk)
                scores.append(float((q * k).sum()) / math.sqrt(d))
            e = [math.exp(s - max(scores)) for s in scores]
            cw = [v / sum(e) for v in e]  # softmax over the pair
            zt = sum(cw[i] * act(pair[i] @ Wv + bv) for i in range(2))  # Eq. 5
            assert torch.allclose(z[t, row], zt, atol=1e-5)
            assert c[t, row].tolist() == pytest.approx(cw, abs=1e-6)


def _components(n_tasks, n_comp, d_in, d_out, seed=0):
    torch.manual_seed(seed)
    return [[mlp(d_in, [d_in + 2 * k + 1, d_out]) for k in range(n_comp)] for _ in range(n_tasks)]


@pytest.mark.parametrize("n_tasks", [2, 3, 4])
@pytest.mark.parametrize("n_comp", [1, 2])
@pytest.mark.parametrize("use_mtm", [True, False])
def test_akf_level_shapes_and_gradients(n_tasks, n_comp, use_mtm):
    akf = AKF(_components(n_tasks, n_comp, 6, 5), 6, 5, use_mtm=use_mtm)
    x = torch.randn(16, 6)
    z, det = akf(x, return_details=True)
    assert z.shape == (n_tasks, 16, 5)
    assert det["task_gate"].shape == (n_tasks, 16, n_comp)
    # Level 2: one input per task.
    z2 = akf(torch.randn(n_tasks, 16, 6))
    assert z2.shape == (n_tasks, 16, 5)
    z.sum().backward()
    assert akf.task_gate.linear.weight.grad is not None
    if use_mtm:
        assert akf.mtm.qkv.weight.grad.abs().sum() > 0
        assert det["mtm"].shape == (n_tasks, 16, 2)
        assert all(torch.all(det["partner_weights"][t, :, t] == 0) for t in range(n_tasks))


def test_akf_without_mtm_is_the_task_gated_mixture():
    akf = AKF(_components(2, 2, 6, 5), 6, 5, use_mtm=False, gate_batch_norm=False)
    akf.eval()
    x = torch.randn(8, 6)
    z = akf(x)
    for t in range(2):
        g = torch.softmax(akf.task_gate.linear.task(t, x), -1)
        expected = sum(g[:, i : i + 1] * akf.components[t][i](x) for i in range(2))
        assert torch.allclose(z[t], expected, atol=1e-6)


def test_akf_with_mtm_uses_the_other_tasks_mixture_as_partner():
    akf = AKF(_components(2, 2, 6, 5), 6, 5, use_mtm=True, gate_batch_norm=False)
    akf.eval()
    x = torch.randn(8, 6)
    H = TaskGate.mix(akf.task_gate(x), akf.component_outputs(x))
    z_expected, _ = akf.mtm(H, H.flip(0))
    assert torch.allclose(akf(x), z_expected, atol=1e-6)


def test_unequal_component_counts_per_task():
    comps = _components(3, 2, 6, 5)
    comps[1] = comps[1][:1]
    akf = AKF(comps, 6, 5)
    z, det = akf(torch.randn(10, 6), return_details=True)
    assert z.shape == (3, 10, 5)
    assert torch.all(det["task_gate"][1, :, 1] == 0)


def test_frozen_fast_path_matches_component_by_component():
    comps = [[mlp(6, [7, 5], dropout=0.1), mlp(6, [3, 5], dropout=0.1)] for _ in range(3)]
    for c in (m for task in comps for m in task):
        for bn in (x for x in c if isinstance(x, nn.BatchNorm1d)):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
        c.requires_grad_(False)
        c.eval()
    akf = AKF(comps, 6, 5)
    assert akf._frozen_path() is not None
    for x in (torch.randn(12, 6), torch.randn(3, 12, 6)):
        fast = akf.component_outputs(x)
        akf.fast = False
        slow = akf.component_outputs(x)
        akf.fast = True
        assert torch.allclose(fast, slow, atol=1e-5)
    # The cache follows in-place weight changes (e.g. load_state_dict).
    with torch.no_grad():
        comps[0][0][0].weight.mul_(2)
    x = torch.randn(12, 6)
    fast = akf.component_outputs(x)
    akf.fast = False
    assert torch.allclose(fast, akf.component_outputs(x), atol=1e-5)
    # Moving the module (new buffer tensors) refreshes the folded weights too.
    akf.fast = True
    akf.double()
    x = torch.randn(12, 6, dtype=torch.float64)
    fast = akf.component_outputs(x)
    akf.fast = False
    assert fast.dtype == torch.float64 and torch.allclose(fast, akf.component_outputs(x), atol=1e-10)
    akf.fast = True
    # Trainable or train-mode components never take the folded path.
    comps[0][0].train()
    assert akf._frozen_path() is None


def test_akf_needs_components():
    with pytest.raises(ValueError, match=">= 1 component"):
        AKF([[], [nn.Linear(2, 2)]], 2, 2)
