"""Notebook 06's interactive mode: the widget callbacks are plain functions, tested as such."""
from __future__ import annotations

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from emm_lib.study.book import explore  # noqa: E402

SMALL = dict(n_tasks=3, n_rows=1500, epochs=1)


def test_gate_view_weights_are_distributions_and_no_task_partners_itself():
    v = explore.gate_view(0.5, 0, "t2", 2, **SMALL)
    assert list(v["task_gate"].index) == ["TM-1", "TM-2"]
    assert v["task_gate"].sum() == pytest.approx(1.0, abs=1e-5)
    assert (v["task_gate"] >= 0).all()
    fg = v["fusion_gate"]
    assert list(fg.index) == ["t1", "t2", "t3"]
    assert fg.sum() == pytest.approx(1.0, abs=1e-5)
    assert fg["t2"] == pytest.approx(0.0, abs=1e-6)  # the fusion gate picks among the *other* tasks


def test_fits_are_cached_and_differ_by_correlation():
    a = explore.fit_synthetic_emm(0.5, 0, **SMALL)
    assert explore.fit_synthetic_emm(0.5, 0, **SMALL) is a
    b = explore.gate_view(1.0, 0, "t1", 1, **SMALL)["task_gate"]
    c = explore.gate_view(0.5, 0, "t1", 1, **SMALL)["task_gate"]
    assert not np.allclose(b.values, c.values)


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="level must be between 1 and"):
        explore.gate_view(0.5, 0, "t1", 9, **SMALL)
    with pytest.raises(ValueError, match="Unknown task 'income'"):
        explore.gate_view(0.5, 0, "income", 1, **SMALL)


def test_gate_figure_and_widget():
    fig = explore.gate_figure(0.5, 0, "t1", 2, **SMALL)
    assert [a.get_title() for a in fig.axes] == ["task gate (Eq. 2)", "fusion gate (Eq. 3)"]
    w = explore.widget(levels=3, seeds=(0,), **SMALL)
    names = [c.description for c in w.children[:-1]]
    assert names == ["correlation", "task", "level", "seed"]
    assert list(w.children[1].options) == ["t1", "t2", "t3"]


def test_batch_run_follows_the_environment(monkeypatch):
    monkeypatch.setenv("EMM_NOTEBOOK_BATCH", "1")
    assert explore.batch_run()
    monkeypatch.setenv("EMM_NOTEBOOK_BATCH", "0")
    assert explore.batch_run() is False  # pytest's parent is not papermill


def test_static_fallback_draws_one_row_per_correlation():
    fig = explore.gate_figure([0.0, 1.0], 0, "t1", 2, **SMALL)
    titles = [a.get_title() for a in fig.axes]
    assert titles == ["task gate (Eq. 2), correlation 0.00", "fusion gate (Eq. 3), correlation 0.00",
                      "task gate (Eq. 2), correlation 1.00", "fusion gate (Eq. 3), correlation 1.00"]


def test_task_gate_sentence_states_the_range_and_what_it_means():
    import torch

    from emm_lib.study.book import explore

    even = {"tasks": ["income", "marital"],
            "levels": [{"task_gate": {"income": torch.tensor([[0.49, 0.51], [0.51, 0.49]]),
                                      "marital": torch.tensor([[0.47, 0.53]])}},
                       {"task_gate": {"income": torch.tensor([[0.52, 0.48]]), "marital": torch.tensor([[0.5, 0.5]])}}]}
    text = explore.task_gate_sentence(even)
    assert "income 0.50\u20130.52" in text and "marital 0.47\u20130.50" in text and "even mix" in text
    even["levels"][0]["task_gate"]["income"] = torch.tensor([[0.95, 0.05]])
    assert "clear preference" in explore.task_gate_sentence(even)


def test_task_gate_sentence_says_when_rows_lean_wholly_on_one_model():
    import torch

    from emm_lib.study.book import explore

    # Mean 0.5 per task, but every row's weight is 0.02 or 0.98: the mean hides sharp per-row choices.
    split = {"tasks": ["t1"], "levels": [{"task_gate": {"t1": torch.tensor([[0.02, 0.98], [0.98, 0.02]])}}]}
    text = explore.task_gate_sentence(split)
    assert "even mix" in text and "on average" in text and "100% of the rows' weights" in text
    assert "lean almost wholly on one trained model" in text
