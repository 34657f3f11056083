"""The teaching path's callbacks are plain functions: the cut figure and the gate trace, no browser."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from emm_lib.study.book import explore, teach  # noqa: E402
from emm_lib.deconstruct import deconstruct  # noqa: E402


def _small():
    return explore.synthetic_trained(0.5, 0, n_tasks=2, n_rows=1500, epochs=1, device="cpu")


def test_cut_figure_marks_every_cut_algorithm_1_chose():
    trained, _ = _small()
    bodies = [m.body for m in trained["t1"]]
    d = deconstruct(bodies, n_levels=3, names=["TM-1", "TM-2"])
    t = teach.cut_table(d)
    assert set(t.level) == {1, 2, 3} and list(dict.fromkeys(t.model)) == ["TM-1", "TM-2"]
    fig = teach.cut_figure(d)
    cuts = [x.get_text() for x in fig.axes[0].texts if x.get_text().startswith("cut ")]
    assert sorted(cuts) == ["cut 1|2", "cut 1|2", "cut 2|3", "cut 2|3"]  # two cuts per model
    plt.close(fig)


def test_gate_trace_calls_back_after_every_epoch():
    trained, ds = _small()
    emm = explore.fresh_emm(trained, seed=0)
    seen = []
    trace = teach.gate_trace(emm, ds, epochs=2, on_epoch=lambda tr: seen.append(int(tr.epoch.max())),
                             batch_size=512, device="cpu")
    assert seen == [0, 1, 2]
    assert set(trace.gate) >= {"task gate on TM-1", "task gate on TM-2", "MTM on partner"}
    assert trace.weight.between(0, 1).all()
    fig = teach.gate_trace_figure(trace)
    assert all(ax.get_ylim() == (0, 1) for ax in fig.axes)
    plt.close(fig)
