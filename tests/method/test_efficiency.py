"""Efficiency measures (emm_lib/efficiency.py): parameters, inference throughput, training wall time."""
import pandas as pd
import pytest
import torch

from emm_lib import efficiency
from emm_lib.data.types import FeatureSpec, SparseFeature, Split
from emm_lib.models import build_model
from emm_lib.study.shared.results import make_rows
from helpers import make_tiny_dataset

SPEC = FeatureSpec((SparseFeature("a", 3), SparseFeature("b", 4)), ("d",))


def test_parameter_counts_match_a_hand_count():
    m = build_model("shared_bottom", SPEC, ("t1", "t2"), bottom=(4,), tower=(), embedding_dim=2)
    # embedding (3 + 4) x 2 = 14; bottom Linear(2*2 + 1 -> 4) = 24 + BatchNorm(4) weight, bias = 8;
    # two output heads Linear(4 -> 1) = 2 x 5 = 10
    assert efficiency.parameter_counts(m) == {"total": 56, "trainable": 56, "frozen": 0,
                                              "embedding": 14, "non_embedding": 42}
    m.embedding.requires_grad_(False)
    c = efficiency.parameter_counts(m)
    assert (c["total"], c["trainable"], c["frozen"]) == (56, 42, 14)


class _Clocked(torch.nn.Module):
    """Advances a fake clock by 0.5 s per batch; records grad mode and train mode."""

    def __init__(self, clock: list) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))
        self.clock, self.seen = clock, []

    def forward(self, batch):
        self.clock[0] += 0.5
        self.seen.append((torch.is_grad_enabled(), self.training))
        return batch.dense[:, :1] * self.w


def test_inference_rows_per_second_is_rows_over_the_median_pass(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(efficiency, "_clock", lambda: clock[0])
    split = Split(torch.zeros(1000, 2, dtype=torch.long), torch.ones(1000, 1), torch.zeros(1000, 1), ("t",))
    m = _Clocked(clock).train()
    rate = efficiency.inference_rows_per_second(m, split, batch_size=250, passes=3, warmup=2, device="cpu")
    assert rate == pytest.approx(1000 / 2.0)  # 4 batches x 0.5 s per pass
    assert len(m.seen) == 4 * 5 and all(s == (False, False) for s in m.seen)  # no grad, eval mode
    assert m.training  # restored


def test_inference_rows_per_second_on_a_real_model():
    ds = make_tiny_dataset(2, 300)
    m = build_model("mmoe", ds.spec, ds.tasks, n_experts=2, expert=(8,), tower=(4,))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    rate = efficiency.inference_rows_per_second(m, ds.test, passes=2)
    assert rate > 0 and m.training
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())  # eval: BN statistics untouched
    with pytest.raises(ValueError, match="passes >= 1"):
        efficiency.inference_rows_per_second(m, ds.test, passes=0)
    with pytest.raises(ValueError, match="no rows"):
        efficiency.inference_rows_per_second(m, ds.test.subset(torch.arange(0)))


def _rows(dataset, model, seed, secs, tasks=("a", "b")):
    return make_rows(dataset=dataset, profile="tiny", model=model, seed=seed, train_seconds=secs,
                     metrics={"test_auc": {t: 0.5 for t in tasks}, "val_auc": {t: 0.5 for t in tasks}})


def test_training_wall_time_with_and_without_single_task_models():
    st = pd.DataFrame(_rows("d", "tm1:a", 0, 1.0, ("a",)) + _rows("d", "tm2:a", 0, 2.0, ("a",))
                      + _rows("d", "tm1:b", 0, 3.0, ("b",)) + _rows("d", "tm2:b", 0, 4.0, ("b",))
                      + _rows("d", "tm1:a", 1, 10.0, ("a",)) + _rows("d", "tm1:a", 1, 20.0, ("a",)))  # rerun
    runs = pd.DataFrame(_rows("d", "emm", 0, 5.0) + _rows("d", "mmoe", 0, 6.0) + _rows("d", "emm", 1, 7.0))
    out = efficiency.training_wall_time(runs, st).set_index(["model", "seed"])
    assert out.loc[("emm", 0)].tolist()[1:] == [5.0, 10.0, 15.0]  # 1 + 2 + 3 + 4 single-task seconds
    assert out.loc[("mmoe", 0)].tolist()[1:] == [6.0, 0.0, 6.0]  # a baseline reuses nothing
    assert out.loc[("emm", 1)].tolist()[1:] == [7.0, 20.0, 27.0]  # the rerun counts once, the last
    with pytest.raises(ValueError, match="No single-task runs"):
        efficiency.training_wall_time(runs, st[st.seed == 0])
    with pytest.raises(ValueError, match="lacks columns"):
        efficiency.training_wall_time(runs.drop(columns="train_seconds"), st)


def test_process_peak_rss_grows_with_an_allocation():
    """A fresh process's high-water mark rises by an allocation above it. On Linux a child starts
    from its parent's mark at fork (kept across exec), so the child allocates 500 MB more than that."""
    import subprocess
    import sys

    code = ("from emm_lib.efficiency import process_peak_rss_mb as p; import numpy as np; a = p(); "
            "b = np.ones(int((a + 500) * 2**20) // 8); print(a, p())")
    before, after = map(float, subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                              check=True).stdout.split())
    assert before > 0 and after - before > 300  # what the imports held counts against the 500 MB
