"""Axes within the possible: AUC in [0, 1], whole epochs and task counts, no outlier-set scale."""
from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from emm_lib.study.shared import plot_axes, plots  # noqa: E402
from emm_lib.study.sweep import plots_sweep


def test_auc_error_never_crosses_one_or_zero():
    err = plot_axes.auc_error([0.99, 0.02, 0.5], [0.95, -0.03, float("nan")])
    assert np.allclose(err[1], [0.01, 0.05, 0.0])  # upper ends cut at 1; no bar without a CI
    assert np.allclose(err[0], [0.04, 0.02, 0.0])  # lower end cut at 0


def test_an_auc_panel_near_one_stops_at_one():
    summary = pd.DataFrame({"model": ["mmoe", "emm"], "task": ["marital"] * 2, "mean": [0.995, 0.996],
                            "std": [0.01, 0.01], "n": [2, 2]})
    fig = plots.task_panels(summary)  # CIs of ±0.09: unbounded they would reach 1.09
    assert all(0 <= lim <= 1 for ax in fig.axes for lim in ax.get_xlim())
    plt.close(fig)


def test_learning_curves_have_whole_epochs_and_auc_at_most_one():
    h = pd.DataFrame({"epoch": [1, 2, 3, 4, 5], "val_auc_mean": [0.9, 0.95, 0.99, 0.999, 1.0]})
    fig = plots.learning_curves({"emm": h})
    ax = fig.axes[0]
    assert ax.get_ylim()[1] <= 1.0
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    plt.close(fig)


def test_one_outlier_does_not_set_the_scale():
    values = np.array([-0.002, -0.001, 0.0, 0.001, -0.003, -0.1])
    (lo, hi), off = plot_axes.robust_limits(values, (values - 0.002, values + 0.002))
    assert off.tolist() == [False] * 5 + [True]
    assert lo > -0.02 and hi < 0.02


def test_counts_are_written_out():
    assert [plot_axes.count_label(v) for v in (100000, 1000000.0, 0.5, "widths")] == [
        "100,000", "1,000,000", "0.5", "widths"]


def test_gate_recovery_counts_tasks_in_whole_numbers():
    rows = []
    for k in (2, 3, 4, 6):
        for level in (1, 2):
            rows.append(dict(dataset="d", model="emm", seed=0, generator="synthetic", correlation=0.5, n_rows=10,
                             n_tasks=k, shape="widths", level=level, mtm_partner=0.5, task_gate_model0=0.5,
                             partner_max=1 / (k - 1)))
    fig = plots_sweep.gate_recovery(pd.DataFrame(rows))
    ax = fig.axes[1]
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert all(float(t).is_integer() for t in ticks)
    plt.close(fig)


def test_architecture_is_drawn_with_the_codes_names():
    from emm_lib import akf
    from emm_lib.study.paper import plots_architecture

    fig = plots_architecture.architecture(tasks=("a", "b", "c"), n_levels=2)
    text = " ".join(t.get_text() for t in fig.axes[0].texts)
    for cls in (akf.AKF, akf.TaskGate, akf.FusionGate, akf.MultiTaskMerge):
        assert cls.__name__ in text
    assert "deconstruct()" in text and "EMM.towers[2]" in text and "EMM.levels[1]" in text
    assert "EMM.levels[2]" not in text  # two levels drawn
    plt.close(fig)


def test_figures_record_their_auc_axes_in_the_png(tmp_path):
    import io
    import json

    from PIL import Image

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0.9, 0.95])
    ax.set(ylabel="test AUC", xlabel="epoch")
    rec = json.loads(Image.open(io.BytesIO(plot_axes.png_bytes(fig))).text[plot_axes.AXES_KEY])
    assert [r["axis"] for r in rec] == ["y"] and rec[0]["label"] == "test AUC"
    ax.set_ylabel("difference in test AUC")
    assert plot_axes.auc_axes(fig) == []  # a difference is not bounded to [0, 1]
    plt.close(fig)
