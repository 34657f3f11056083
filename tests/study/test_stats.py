"""emm_lib.study.shared.stats against scikit-learn, scipy, a bootstrap and hand computations."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats as st
from sklearn.metrics import roc_auc_score

from emm_lib import config
from emm_lib.study.shared import stats


def _scores(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.3
    a = y * 1.0 + rng.normal(size=n)
    b = a + rng.normal(scale=0.8, size=n)  # correlated with a, weaker
    return y, a, b


def test_delong_auc_matches_sklearn_with_ties():
    y, a, b = _scores()
    a = np.round(a, 1)  # many ties
    aucs, cov = stats.delong(y, np.stack([a, b]))
    assert aucs[0] == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    assert aucs[1] == pytest.approx(roc_auc_score(y, b), abs=1e-12)
    assert cov.shape == (2, 2) and cov[0, 1] == pytest.approx(cov[1, 0])


def test_delong_hand_computation():
    # positives 0.9, 0.4; negatives 0.5, 0.1: pairs (0.9>0.5, 0.9>0.1, 0.4<0.5, 0.4>0.1) -> AUC 3/4
    y = np.array([1, 1, 0, 0])
    s = np.array([0.9, 0.4, 0.5, 0.1])
    aucs, cov = stats.delong(y, s)
    assert aucs[0] == pytest.approx(0.75)
    # V10 = (1, 0.5) per positive, V01 = (0.5, 1) per negative: var = 0.125/2 + 0.125/2
    assert cov[0, 0] == pytest.approx(0.125)


def test_delong_paired_variance_matches_a_bootstrap():
    y, a, b = _scores(n=3000, seed=1)
    _, _, var = stats.delong_paired(y, a, b)
    rng = np.random.default_rng(2)
    diffs = []
    for _ in range(400):
        i = rng.integers(0, len(y), len(y))
        diffs.append(roc_auc_score(y[i], a[i]) - roc_auc_score(y[i], b[i]))
    assert var == pytest.approx(np.var(diffs), rel=0.25)
    # pairing matters: the paired variance is far below the sum of the two variances
    aucs, cov = stats.delong(y, np.stack([a, b]))
    assert var < 0.7 * (cov[0, 0] + cov[1, 1])


def test_holm_matches_hand_computation():
    p = [0.01, 0.04, 0.03, np.nan]
    # sorted 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.03, 0.06, 0.06
    assert stats.holm(p)[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert np.isnan(stats.holm(p)[3])
    assert stats.holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])


def _rows(model, task, test, val, dataset="d"):
    out = []
    for s, (t, v) in enumerate(zip(test, val)):
        out += [{"dataset": dataset, "model": model, "task": task, "seed": s, "metric": "test_auc", "value": t},
                {"dataset": dataset, "model": model, "task": task, "seed": s, "metric": "val_auc", "value": v}]
    return out


def test_comparator_is_chosen_on_validation_not_test():
    df = pd.DataFrame(_rows("a", "x", [0.90, 0.91, 0.92], [0.80, 0.80, 0.80])
                      + _rows("b", "x", [0.80, 0.81, 0.82], [0.85, 0.85, 0.85]))
    assert stats.choose_comparator(df, ["a", "b"], "d", "x") == "b"  # best on val, worse on test


def test_compare_ci_p_holm_and_verdict_match_scipy():
    emm_t = [0.900, 0.903, 0.899, 0.905, 0.902]
    base_t = [0.910, 0.911, 0.908, 0.913, 0.909]
    df = pd.DataFrame(_rows("emm", "x", emm_t, [0.9] * 5) + _rows("mmoe", "x", base_t, [0.91] * 5)
                      + _rows("emm", "y", [0.5] * 5, [0.9] * 5) + _rows("mmoe", "y", [0.5] * 5, [0.91] * 5))
    out = stats.compare(df, "emm", ["mmoe"], experiment="t").set_index("task")
    d = np.subtract(emm_t, base_t)
    r = out.loc["x"]
    assert r.comparator == "mmoe" and r.n_seeds == 5
    assert r.mean_diff == pytest.approx(d.mean())
    lo, hi = st.t.interval(0.95, 4, loc=d.mean(), scale=st.sem(d))
    assert (r.ci_low, r.ci_high) == pytest.approx((lo, hi))
    assert r.p_value == pytest.approx(st.ttest_1samp(d, 0).pvalue)
    assert np.isnan(out.loc["y", "p_value"])  # zero spread: no test
    assert r.p_holm == pytest.approx(r.p_value)  # the other task has no p-value
    assert r.verdict == "worse" and out.loc["y", "verdict"] == "no detectable difference"


def test_test_set_variance_widens_the_interval_and_can_flip_the_verdict():
    emm_t = [0.900, 0.903, 0.899, 0.905, 0.902]
    base_t = [0.910, 0.911, 0.908, 0.913, 0.909]
    df = pd.DataFrame(_rows("emm", "x", emm_t, [0.9] * 5) + _rows("mmoe", "x", base_t, [0.91] * 5))
    pv = pd.DataFrame([{"dataset": "d", "seed": s, "task": "x", "model_a": "mmoe", "model_b": "emm",
                        "var_diff": 0.006 ** 2} for s in range(5)])
    r = stats.compare(df, "emm", ["mmoe"], pair_var=pv).iloc[0]
    d = np.subtract(emm_t, base_t)
    se = np.sqrt(d.var(ddof=1) / 5 + config.TEST_SET_TERM["factor"] * 0.006 ** 2)  # the file-level term
    assert r.ci_high_test - r.ci_low_test == pytest.approx(2 * st.t.ppf(0.975, 4) * se)
    assert r.ci_low_test < r.ci_low and r.verdict == "no detectable difference"


def test_missing_validation_rows_raise_a_clear_error():
    df = pd.DataFrame([{"dataset": "d", "model": "a", "task": "x", "seed": 0, "metric": "test_auc", "value": 0.5}])
    with pytest.raises(ValueError, match="No validation AUC"):
        stats.choose_comparator(df, ["a"], "d", "x")


def test_one_seed_is_not_tested():
    df = pd.DataFrame(_rows("emm", "x", [0.90], [0.9]) + _rows("mmoe", "x", [0.91], [0.91]))
    r = stats.compare(df, "emm", ["mmoe"]).iloc[0]
    assert r.n_seeds == 1 and r.verdict == stats.UNTESTED


def test_bounded_ci_stays_in_bounds_and_matches_the_t_interval_in_the_middle():
    # chapter 08's tiny run had [0.7102, 1.0534]: mean 0.8818, half-width 0.1716
    lo, hi = stats.bounded_ci(0.8818, 0.1716, 1.0)
    assert 0 < lo < 0.8818 < hi < 1
    lo, hi = stats.bounded_ci(np.array([0.999, 0.001]), np.array([0.05, 0.05]), 12.7)
    assert np.all(lo >= 0) and np.all(hi <= 1)
    # near 0.5 with a small se the logit interval is the symmetric one
    lo, hi = stats.bounded_ci(0.5, 0.001, 1.96)
    assert (lo, hi) == (pytest.approx(0.5 - 1.96e-3, abs=1e-6), pytest.approx(0.5 + 1.96e-3, abs=1e-6))
    # other bounds, the degenerate and the missing case
    lo, hi = stats.bounded_ci(0.9, 0.2, 2.0, lo=-1.0, hi=1.0)
    assert -1 <= lo < 0.9 < hi <= 1
    assert stats.bounded_ci(1.0, 0.1, 2.0) == (1.0, 1.0)
    assert np.isnan(stats.bounded_ci(0.9, np.nan, 2.0)[0])


def test_difference_intervals_are_clipped_to_their_bounds():
    rows = [dict(dataset="d", model=m, task="t", seed=s, metric=k, value=v)
            for s, (a, b) in enumerate([(0.99, 0.01), (0.98, 0.5), (0.97, 0.02)])
            for m, v in (("x", a), ("y", b)) for k in ("val_auc", "test_auc")]
    out = stats.compare(pd.DataFrame(rows), "x", ["y"])
    assert out.ci_high.iloc[0] <= 1.0 and out.ci_low.iloc[0] >= -1.0


def test_split_spread_of_fixed_scores_is_half_the_delong_variance_of_a_half():
    """The calibration behind the test-set term: for fixed scores on one file, redrawing the 1:1
    halves spreads the difference by about v/2 (v: paired DeLong variance of a half), and the
    file's own DeLong variance is about v/2 as well (twice the rows)."""
    y, a, b = _scores(n=4000, seed=3)
    out = stats.split_spread(y, a, b, n_draws=300)
    assert out["n_draws"] == 300 and out["v_half"] > 0
    # the variance of 300 draws has a relative SE of about sqrt(2/299) ~ 0.08
    assert 0.35 < out["split_share"] < 0.65
    assert out["file_share"] == pytest.approx(0.5, abs=0.08)


def test_the_file_level_factor_is_the_committed_measurement():
    """config.TEST_SET_TERM is what scripts/test_set_term.py measured on Census with fixed models:
    the split noise of every pair and task is about half of v, and so is the whole file's variance."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / config.TEST_SET_TERM["calibration"]
    m = pd.read_csv(path)
    assert len(m) >= 4 and set(m.task) == {"income", "marital"} and (m.n_draws >= 500).all()
    f = config.TEST_SET_TERM["factor"]
    se = np.sqrt(2 / (m.n_draws - 1))  # relative SE of a variance from n draws
    assert (abs(m.split_share - (1 - f)) < 3 * se).all()
    assert (abs(m.file_share - f) < 0.05).all()
    assert {"git_commit", "torch_version", "settings"} <= set(m.columns)
