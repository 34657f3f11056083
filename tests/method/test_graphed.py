"""fit(cuda_graph=True): the training step replayed as one CUDA graph trains the same model.

On the CPU: the graphed epoch's batches are the eager epoch's, the option is ignored, and a CPU
split gets a clear error. On a GPU (skipped without one): eager and graphed training of every
architecture from the same start give the same parameters, optimiser state and losses.
"""
from __future__ import annotations

import copy

import pytest
import torch

from emm_lib.emm import EMM
from emm_lib.graphed import GraphedTrainStep
from emm_lib.models import build_model
from emm_lib.train import fit, train_step

from helpers import make_tiny_dataset, train_tiny_models

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_batch_indices_gather_the_shuffled_batches():
    split = make_tiny_dataset(2, 250).train
    eager = list(split.batches(64, shuffle=True, generator=torch.Generator().manual_seed(3)))
    idx = list(split.batch_indices(64, generator=torch.Generator().manual_seed(3)))
    assert [len(i) for i in idx] == [64, 64, 64, 58]
    for b, i in zip(eager, idx, strict=True):
        g = split.gather(i)
        assert torch.equal(b.sparse, g.sparse) and torch.equal(b.dense, g.dense) and torch.equal(b.y, g.y)
    assert [len(i) for i in split.batch_indices(64, drop_last=True)] == [64, 64, 64]
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        next(split.batch_indices(0))


def test_graphed_step_needs_a_cuda_split():
    ds = make_tiny_dataset(2, 100)
    model = build_model("mmoe", ds.spec, ds.tasks, n_experts=2, expert=(8,), tower=(4,))
    opt = torch.optim.Adam(model.parameters())
    with pytest.raises(ValueError, match="on a CUDA device; it is on cpu"):
        GraphedTrainStep(model, opt, ds.train, 32, step=train_step)


def test_cuda_graph_is_ignored_on_cpu():
    ds = make_tiny_dataset(2, 300)
    runs = []
    for graph in (False, True):
        torch.manual_seed(0)
        model = build_model("mmoe", ds.spec, ds.tasks, n_experts=2, expert=(8,), tower=(4,))
        runs.append((model, fit(model, ds, epochs=2, batch_size=64, device="cpu", cuda_graph=graph)))
    (m0, r0), (m1, r1) = runs
    assert "cuda_graph" not in r1.settings
    assert r0.history.drop(columns="seconds").equals(r1.history.drop(columns="seconds"))
    assert all(torch.equal(p, q) for p, q in zip(m0.state_dict().values(), m1.state_dict().values()))


def _models(ds):
    trained = train_tiny_models(ds)  # on the CPU
    yield "emm", EMM.from_trained(trained)
    yield "emm:soft", EMM.from_trained(trained, fusion="soft")
    for name in ("shared_bottom", "mmoe", "ple", "aitm", "adatt"):
        torch.manual_seed(0)
        kw = dict(tower=(4,)) | ({"bottom": (8,)} if name in ("shared_bottom", "aitm") else {"expert": (8,)})
        yield name, build_model(name, ds.spec, ds.tasks, **kw)


@cuda
@pytest.mark.parametrize("n_tasks", [2, 3])
def test_graphed_training_equals_eager_on_cuda(n_tasks):
    """Ten epochs' worth of steps (warm-up, capture, replays, a short last batch) from one start."""
    on_cpu = make_tiny_dataset(n_tasks, 700)
    ds = on_cpu.to("cuda")
    for name, model in _models(on_cpu):
        model.cuda().train()
        twins = [model, copy.deepcopy(model)]
        opts = [torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-2, fused=True) for m in twins]
        graphed = GraphedTrainStep(twins[1], opts[1], ds.train, 128, step=train_step)
        losses = ([], [])
        for epoch in range(10):
            gens = [torch.Generator().manual_seed(epoch) for _ in twins]
            for idx in ds.train.batch_indices(128, generator=gens[0]):
                losses[0].append(float(train_step(twins[0], opts[0], ds.train.gather(idx))))
            for idx in ds.train.batch_indices(128, generator=gens[1]):
                losses[1].append(float(graphed(idx)))
        assert graphed.replays >= 40, name
        assert losses[0] == pytest.approx(losses[1], abs=1e-5), name
        for (k, p), q in zip(twins[0].state_dict().items(), twins[1].state_dict().values()):
            assert torch.allclose(p.float(), q.float(), atol=1e-5, rtol=1e-5), (name, k, (p - q).abs().max())


@cuda
def test_fit_with_cuda_graph_on_cuda():
    ds = make_tiny_dataset(2, 700)
    emm = EMM.from_trained(train_tiny_models(ds))
    res = [fit(copy.deepcopy(emm), ds, epochs=3, batch_size=128, device="cuda", cuda_graph=g) for g in (False, True)]
    assert res[1].settings["cuda_graph"] and "cuda_graph" not in res[0].settings
    cols = [c for c in res[0].history if c != "seconds"]
    assert res[0].history[cols].to_numpy() == pytest.approx(res[1].history[cols].to_numpy(), abs=1e-5)


def test_study_passes_cuda_graph_to_fit():
    from emm_lib.study.shared.run_settings import settings
    from emm_lib.study import _parser

    assert _parser().parse_args(["table1", "--cuda-graph"]).cuda_graph
    st = settings("census", "tiny", cuda_graph=True)
    assert st.fit_kwargs()["cuda_graph"] is True
    assert "cuda_graph" not in st.record()  # rows record it from fit(), where a graph was used
    assert settings("census", "tiny").fit_kwargs()["cuda_graph"] is False
