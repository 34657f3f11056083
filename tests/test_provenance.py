"""Every results block of the book says where its numbers come from; chapters end with a computed conclusion."""
from __future__ import annotations

import numpy as np
import pandas as pd

from emm_lib import present, provenance


def _runs(seeds=(0, 1, 2)) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for seed in seeds:
        for model, base in (("emm", 0.940), ("ple", 0.945), ("mmoe", 0.930)):
            for task, off in (("income", 0.0), ("marital", 0.05)):
                for metric, shift in (("test_auc", 0.0), ("val_auc", 0.001)):
                    rows.append(dict(dataset="census", profile="paper", model=model, task=task, seed=seed,
                                     metric=metric, value=base + off + shift + rng.normal(0, 1e-4),
                                     git_commit="abc123", device="cpu"))
    return pd.DataFrame(rows)


def test_seeds_text():
    assert provenance.seeds_text([0, 1, 2, 3, 4]) == "seeds 0\u20134"
    assert provenance.seeds_text([2]) == "seed 2"
    assert provenance.seeds_text([0, 2]) == "seeds 0, 2"


def test_label_says_committed_or_short_run_with_seeds_and_commit():
    runs = _runs()
    committed = provenance.label(runs, "paper", committed=True, where="results/paper/")
    assert "committed `paper`-profile runs" in committed and "seeds 0\u20132" in committed and "`abc123`" in committed
    short = provenance.label(runs[runs.seed == 0], "tiny", committed=False)
    assert "short run" in short and "not the study's numbers" in short and "seed 0" in short
    assert "No committed runs" in provenance.label(runs.iloc[:0], "paper", committed=True)


def test_conclusion_is_computed_from_the_runs():
    text = provenance.conclusion(_runs(), "emm", ["ple", "mmoe"], "table1", what="EMM against its best baseline")
    assert text.startswith("**In the committed runs, EMM against its best baseline:**")
    assert "income: EMM (paper's arg-max gate) \u2212 PLE \u22120.0050" in text and "worse" in text


def test_dropdown_collapses_tables():
    t = present.dropdown("Every point (3 rows)", present.table(pd.DataFrame({"n_tasks": [2, 3, 4]})))
    html = t._repr_html_()
    assert html.startswith('<details class="emm-dropdown"><summary>Every point (3 rows)</summary>')
    assert html.count("<table") == 1 and "open" not in html.split(">")[0]
