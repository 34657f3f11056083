"""Algorithm 1 (deconstruct): exact composition, shared interfaces, the cut rule, clear errors."""
import random

import pandas as pd
import pytest
import torch
from torch import nn

from emm_lib.data.types import FeatureSpec, SparseFeature
from emm_lib.deconstruct import Adapter, Decomposition, block_boundaries, deconstruct, model_layers
from emm_lib.models import SingleTaskMLP, mlp

CENSUS_SPEC = FeatureSpec(tuple(SparseFeature(f"s{i}", 10) for i in range(33)), tuple(f"d{i}" for i in range(7)))


def _randomise_bn(model: nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial running statistics and affine parameters."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.num_features, generator=g))
                m.bias.copy_(torch.randn(m.num_features, generator=g))


def _check_decomposition(models, dec: Decomposition, in_width: int, seed: int = 0) -> None:
    """The two properties of Algorithm 1: exact composition and shared per-level interfaces."""
    x = torch.randn(16, in_width, generator=torch.Generator().manual_seed(seed))
    assert len(dec.components) == len(models)
    for i, m in enumerate(models):
        m.eval()
        assert len(dec.components[i]) == dec.n_levels
        h = x
        for comp in dec.components[i]:
            comp.eval()
            h = comp(h)
        with torch.no_grad():
            assert torch.equal(h, m(x)), f"model {i}: composed components differ from the model"
    for lvl in range(dec.n_levels):
        ins, outs = set(), set()
        for i in range(len(models)):
            h = x
            for comp in dec.components[i][:lvl]:
                h = comp(h)
            ins.add(tuple(h.shape[1:]))
            outs.add(tuple(dec.components[i][lvl](h).shape[1:]))
        assert len(ins) == 1 and len(outs) == 1, f"level {lvl}: inputs {ins}, outputs {outs}"
        assert ins.pop() == dec.input_shapes[lvl] and outs.pop() == dec.output_shapes[lvl]


# ----------------------------------------------------------------- the authors' Census setting


def test_census_setting_gives_the_three_blocks_of_each_model():
    tm1 = SingleTaskMLP(CENSUS_SPEC, "income", block=(8, 8), n_blocks=3)
    tm2 = SingleTaskMLP(CENSUS_SPEC, "income", block=(16, 8), n_blocks=3)
    for n_levels in (3, None):  # 3 is also the largest possible number of levels here
        dec = deconstruct([tm1.body, tm2.body], n_levels=n_levels)
        assert dec.n_levels == 3
        assert dec.cut_points == [[6, 12], [6, 12]]
        for body, comps in zip([tm1.body, tm2.body], dec.components):
            for lvl, comp in enumerate(comps):
                # The model's own layer objects, block by block (not copies).
                assert [id(m) for m in comp] == [id(m) for m in list(body)[6 * lvl: 6 * lvl + 6]]
        assert dec.input_shapes == [(139,), (8,), (8,)] and dec.output_shapes == [(8,), (8,), (8,)]
    _randomise_bn(tm1.body)
    _randomise_bn(tm2.body, 1)
    _check_decomposition([tm1.body, tm2.body], dec, 139)


def test_components_hold_the_models_own_parameters():
    body = mlp(5, [8, 8, 8])
    dec = deconstruct([body, mlp(5, [16, 8])])
    with torch.no_grad():
        body[0].weight.add_(1.0)  # a change in the model shows in its component
    assert dec.components[0][0][0].weight is body[0].weight
    assert dec.components[0][0][0].weight.data_ptr() == body[0].weight.data_ptr()


def test_never_cut_between_linear_and_its_batchnorm():
    models = [mlp(6, [8, 8, 8, 8], dropout=0.1), mlp(6, [8, 12, 8])]
    dec = deconstruct(models)
    for comps in dec.components:
        for comp in comps:
            assert isinstance(comp[0], nn.Linear)  # every component starts a block
            assert isinstance(comp[-1], (nn.ReLU, nn.Dropout))  # ... and ends after its activation


def test_ambiguity_rule_prefers_similar_relative_depths():
    a, b = mlp(4, [8] * 6), mlp(4, [16, 8] * 3)
    # 2 levels: TM-2's width-8 cuts sit at 1/3 and 2/3 of its depth, equally far from 1/2;
    # the earliest wins and TM-1 is cut at the same relative depth (1/3), not at 1/2.
    assert deconstruct([a, b], n_levels=2).cut_points == [[6], [6]]
    # Identical models: evenly spread cuts.
    assert deconstruct([mlp(4, [8] * 6), mlp(4, [8] * 6)], n_levels=3).cut_points == [[6, 12], [6, 12]]
    assert deconstruct([mlp(4, [8] * 6), mlp(4, [8] * 6)], n_levels=2).cut_points == [[9], [9]]
    # Deterministic: same answer every time.
    assert deconstruct([a, b]).cut_points == deconstruct([a, b]).cut_points


def test_n_levels_one_gives_whole_models():
    a, b = mlp(4, [8, 3]), mlp(4, [5, 7, 3])
    dec = deconstruct([a, b], n_levels=1)
    assert dec.cut_points == [[], []] and dec.n_levels == 1
    _check_decomposition([a, b], dec, 4)


# ----------------------------------------------------------------- random models


def _random_models(seed: int):
    """2-4 random MLP bodies sharing a planted chain of widths (plus random extra blocks)."""
    rng = random.Random(seed)
    in_width = rng.randint(3, 12)
    planted = [rng.choice([4, 6, 8, 10]) for _ in range(rng.randint(0, 3))]
    final = rng.choice([2, 3, 5])
    models = []
    for _ in range(rng.randint(2, 4)):
        widths = []
        for w in planted + [final]:
            widths += [rng.randint(2, 20) for _ in range(rng.randint(0, 2))] + [w]
        bn = rng.random() < 0.7
        drop = rng.choice([0.0, 0.0, 0.2])
        models.append(mlp(in_width, widths, dropout=drop, batch_norm=bn))
    for i, m in enumerate(models):
        _randomise_bn(m, seed * 10 + i)
    return models, in_width, len(planted) + 1


@pytest.mark.parametrize("seed", range(25))
def test_random_models_compose_exactly_with_shared_interfaces(seed):
    models, in_width, planted_levels = _random_models(seed)
    dec = deconstruct(models)
    assert dec.n_levels >= planted_levels
    _check_decomposition(models, dec, in_width, seed)
    # Any smaller number of levels works too.
    for n in range(1, dec.n_levels + 1):
        _check_decomposition(models, deconstruct(models, n_levels=n), in_width, seed)


def test_fx_traced_chain_is_cut_like_a_sequential():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.bn1 = nn.Linear(5, 8), nn.BatchNorm1d(8)
            self.fc2 = nn.Linear(8, 8)
            self.inner = nn.Sequential(nn.Linear(8, 4), nn.Tanh())

        def forward(self, x):
            x = torch.relu(self.bn1(self.fc1(x)))
            x = self.fc2(x).relu()
            return self.inner(x)

    net = Net()
    _randomise_bn(net)
    layers = model_layers(net)
    assert len(layers) == 7 and layers[0] is net.fc1 and layers[5] is net.inner[0]
    assert block_boundaries(layers) == [3, 5]
    other = mlp(5, [8, 8, 4])
    dec = deconstruct([net, other])
    assert dec.n_levels == 3
    x = torch.randn(7, 5)
    net.eval()
    with torch.no_grad():
        h = x
        for comp in dec.components[0]:
            h = comp(h)
        assert torch.equal(h, net(x))


def test_non_chain_model_is_a_clear_error():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return x + self.fc(x)

    with pytest.raises(ValueError, match="not a chain"):
        deconstruct([Residual(), mlp(4, [4])])


def test_whole_single_task_model_is_refused_with_a_hint():
    m = SingleTaskMLP(CENSUS_SPEC, "income")
    with pytest.raises(ValueError, match="pass model.body"):
        deconstruct([m, m])


# ----------------------------------------------------------------- errors


def test_different_final_widths_name_the_pair_and_the_reason():
    models = [mlp(4, [8, 8]), mlp(4, [8, 8]), mlp(4, [8, 6])]
    with pytest.raises(ValueError, match=r"model 0 and model 2 cannot be aligned.*ends with output shape \(8,\).*\(6,\)"):
        deconstruct(models)


def test_different_inputs_name_the_pair():
    with pytest.raises(ValueError, match=r"model 0 and model 1 cannot be aligned.*input"):
        deconstruct([mlp(4, [8]), mlp(5, [8])])


def test_too_many_levels_names_the_limiting_pair():
    models = [mlp(4, [8, 8, 8, 3]), mlp(4, [8, 8, 8, 3]), mlp(4, [6, 8, 3])]
    assert deconstruct(models).n_levels == 2
    with pytest.raises(ValueError, match=r"model 0 and model 2 cannot be aligned at 4 levels.*at most 2"):
        deconstruct(models, n_levels=4, names=None)
    with pytest.raises(ValueError, match="n_levels must be a positive integer"):
        deconstruct(models, n_levels=0)
    with pytest.raises(ValueError, match="at least one model"):
        deconstruct([])


def test_cut_points_override_the_rule_and_are_checked():
    a, b = mlp(4, [8] * 6), mlp(4, [16, 8] * 3)
    dec = deconstruct([a, b], cut_points=[[3, 15], [6, 12]])
    assert dec.cut_points == [[3, 15], [6, 12]] and dec.rule == "cut_points"
    _check_decomposition([a, b], dec, 4)
    with pytest.raises(ValueError, match="level 1"):
        deconstruct([a, b], cut_points=[[3], [3]])  # TM-2 outputs 16 after its first block
    with pytest.raises(ValueError, match="increasing"):
        deconstruct([a, b], cut_points=[[6, 3], [6, 12]])
    with pytest.raises(ValueError, match="same number of cuts"):
        deconstruct([a, b], cut_points=[[6], [6, 12]])


# ----------------------------------------------------------------- adapters (beyond the paper)


def test_adapters_align_models_without_common_structure():
    a, b = mlp(5, [7, 9, 3]), mlp(5, [12, 6, 10, 4])
    with pytest.raises(ValueError, match="adapters=True"):
        deconstruct([a, b])  # off by default
    _randomise_bn(a)
    _randomise_bn(b, 1)
    dec = deconstruct([a, b], n_levels=3, adapters=True)
    assert dec.adapters and dec.n_levels == 3
    x = torch.randn(10, 5)
    for lvl in range(3):  # shared interfaces at every level
        outs = set()
        for comps in dec.components:
            h = x
            for comp in comps[: lvl + 1]:
                comp.eval()
                h = comp(h)
            outs.add(tuple(h.shape[1:]))
        assert outs == {dec.output_shapes[lvl]}
    assert dec.output_shapes[-1] == (4,)
    adapters = [m for comps in dec.components for c in comps for m in c if isinstance(m, Adapter)]
    assert adapters and all(p.requires_grad for m in adapters for p in m.parameters())
    # Identity-initialised: each model's own components still compute the model (zero-padded).
    for model, comps in zip([a, b], dec.components):
        model.eval()
        h = x
        for comp in comps:
            h = comp(h)
        with torch.no_grad():
            y = model(x)
        assert torch.equal(h[:, : y.shape[1]], y) and torch.all(h[:, y.shape[1]:] == 0)
    assert dec.describe()["adapter_parameters"].sum() == sum(p.numel() for m in adapters for p in m.parameters())


def test_adapters_are_not_used_when_exact_alignment_exists():
    dec = deconstruct([mlp(4, [8, 8]), mlp(4, [16, 8])], adapters=True)
    assert not dec.adapters and dec.rule == "lcs"


# ----------------------------------------------------------------- describe()


def test_describe_census_table():
    tm1 = SingleTaskMLP(CENSUS_SPEC, "income", block=(8, 8))
    tm2 = SingleTaskMLP(CENSUS_SPEC, "income", block=(16, 8))
    dec = deconstruct([tm1.body, tm2.body], n_levels=3, names=["TM-1", "TM-2"])
    df = dec.describe()
    assert isinstance(df, pd.DataFrame) and len(df) == 6
    assert list(df.columns[:7]) == ["model", "level", "layers", "layer_range", "input_shape", "output_shape", "parameters"]
    assert df.groupby("model")["parameters"].sum().to_dict() == {
        "TM-1": sum(p.numel() for p in tm1.body.parameters()),
        "TM-2": sum(p.numel() for p in tm2.body.parameters()),
    }
    row = df[(df.model == "TM-2") & (df.level == 1)].iloc[0]
    assert row.layers == "Linear(139->16) -> BatchNorm1d(16) -> ReLU -> Linear(16->8) -> BatchNorm1d(8) -> ReLU"
    assert row.parameters == 139 * 16 + 16 + 2 * 16 + 16 * 8 + 8 + 2 * 8
    assert row.input_shape == (139,) and row.output_shape == (8,)


def test_the_cut_rule_finds_a_local_optimum_not_always_the_global_one():
    """As documented (emm_lib.deconstruct.cuts): two models with block boundaries at k/6 and k/5,
    two cuts each. The alternating minimisation starts at the even spread (1/3, 2/3) and stays at
    (2/6, 4/6) and (2/5, 3/5); cutting at (1/6, 5/6) and (1/5, 4/5) would spread less."""
    import itertools

    from emm_lib.deconstruct.cuts import choose

    depths = [[k / 6 for k in range(1, 6)], [k / 5 for k in range(1, 5)]]

    def spread(chosen):
        targets = [sum(d[c[j]] for d, c in zip(depths, chosen)) / 2 for j in range(2)]
        return sum((d[c[j]] - targets[j]) ** 2 for d, c in zip(depths, chosen) for j in range(2))

    (local, _), chosen = choose(depths, None, None, 2)
    assert chosen == [(1, 3), (1, 2)] and local == pytest.approx(spread(chosen))
    best = min(itertools.product(*[itertools.combinations(range(len(d)), 2) for d in depths]), key=spread)
    assert best == ((0, 4), (0, 3)) and spread(best) < local / 3
