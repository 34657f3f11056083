"""emm_lib.study.replay.consistency: chapter 08's question as consistency of one run with a rung (prediction intervals)."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from emm_lib import config
from emm_lib.study.replay import consistency

PAPER = config.PAPER_TABLES["table1_census"]


def _view(levels: dict, sds: dict, n=5, seed=0):
    """A replay view (authors.view's columns) with given mean test AUC per rung and quantity."""
    rng = np.random.default_rng(seed)
    rows = []
    for rung, by in levels.items():
        for s in range(n):
            z = rng.normal(size=len(by))
            vals = {m: mu + sds[rung] * zi for (m, mu), zi in zip(by.items(), z)}
            vals["tm_mean"] = (vals["tm1:income"] + vals["tm2:income"]) / 2
            for m, v in vals.items():
                rows.append(dict(dataset=f"census/rung-{rung}", model=m, task="income", seed=s,
                                 metric="test_auc", value=v))
    return pd.DataFrame(rows)


def _paper_like(shift=0.0):
    return {"tm1:income": PAPER["TM-1"]["income"] + shift, "tm2:income": PAPER["TM-2"]["income"] + shift,
            "emm": PAPER["EMM"]["income"] + shift, "mmoe": PAPER["MMoE"]["income"] + shift,
            "ple": PAPER["PLE"]["income"] + shift}


def _pv():
    return pd.DataFrame(columns=["dataset", "seed", "task", "model_a", "model_b", "var_diff"])


def test_prediction_interval_is_the_t_interval_of_one_new_run():
    x = np.array([0.90, 0.91, 0.92, 0.905, 0.915])
    lo, hi = consistency.prediction_interval(x - 0.9, 0.0, 0.95, bounded=False)
    half = st.t.ppf(0.975, 4) * x.std(ddof=1) * np.sqrt(1 + 1 / 5)
    assert (lo, hi) == (pytest.approx(x.mean() - 0.9 - half), pytest.approx(x.mean() - 0.9 + half))
    # the test-set term widens it; an AUC's interval stays inside [0, 1]
    lo2, hi2 = consistency.prediction_interval(x - 0.9, 1e-4, 0.95, bounded=False)
    assert lo2 < lo and hi2 > hi
    lo3, hi3 = consistency.prediction_interval([0.99, 0.95, 0.999], 0.0, 0.95, bounded=True)
    assert 0 < lo3 and hi3 < 1
    assert np.isnan(consistency.prediction_interval([0.9], 0.0, 0.95, bounded=True)[0])


def test_the_paper_is_consistent_with_a_rung_centred_on_it_and_not_with_a_far_narrow_one():
    v = _view({"paper": _paper_like(), "published": _paper_like(0.03)}, {"paper": 0.002, "published": 0.001})
    t = consistency.table(v, "census", ["paper", "published"], _pv(), tasks=["income"])
    assert set(t.quantity) == set(consistency.QUANTITIES)
    assert (t[t.rung == "paper"].verdict == "consistent").all()
    pub = t[t.rung == "published"].set_index("quantity")
    assert (pub.drop("gain").verdict == "inconsistent").all()  # levels shifted by 0.03
    assert pub.loc["gain", "verdict"] == "consistent"  # the gain is unchanged by a common shift
    assert (t.half_width > 0).all() and np.allclose(t.half_width, (t.hi - t.lo) / 2)


def test_answer_states_the_rule_first_and_the_widths_with_the_verdicts():
    v = _view({"paper": _paper_like(), "published": _paper_like(0.03)}, {"paper": 0.02, "published": 0.001})
    t = consistency.table(v, "census", ["paper", "published"], _pv(), tasks=["income"])
    text = consistency.answer(t)
    assert text.startswith("**The rule**") and config.REPLAY_CONSISTENCY["rule"] in text
    assert "all consistent with one run at \u2018paper\u2019" in text and "\u2018last epoch's weights\u2019" in text
    assert "The published code as it runs (\u2018published\u2019" in text and "times the widest" in text
    assert "±" in text
    head = consistency.headline(t)
    assert "**" not in head and "`" not in head and "5 seeds per rung" in head
    table = consistency.pretty(t, "income")
    assert table.index[0] == "paper's single run" and "✓" in table.loc["paper", "EMM"]
