"""Statistics of the study: comparator on validation, paired differences, test-set error, Holm.

The verdict rule (one rule, used everywhere and stated in the book):

1. **Comparator.** For each task, the comparator of a model is the candidate with the best
   mean *validation* AUC over seeds (never test).
2. **Difference.** Per seed ``d_s = AUC_test(model) - AUC_test(comparator)``; the estimate is
   the mean over seeds.
3. **Uncertainty.** The seed-level 95% CI is ``mean ± t_{n-1} s/sqrt(n)``. The CI with test-set
   error adds the file-level part of the paired DeLong variance ``v`` of the difference on one
   test half (mean over seeds): the halves of different seeds are drawn from one test file, so
   the file's error does not average out over seeds, while the split noise (which rows form the
   half) is already in the seed spread. Measured with fixed models
   (``config.TEST_SET_TERM``, scripts/test_set_term.py): the split noise is ``v/2``, the
   file's ``v/2``, so ``mean ± t_{n-1} sqrt(s^2/n + v/2)``, clipped to a difference's bounds [−1, 1]. An AUC's own
   interval (a level in [0, 1]) is built on the logit scale instead (:func:`bounded_ci`).
4. **Test.** ``p`` from ``t = mean / sqrt(s^2/n + v/2)`` with ``n-1`` degrees of freedom, Holm-
   corrected across the tasks of one comparison; the book's headline verdicts are Holm-corrected
   once over the whole declared family instead (:mod:`emm_lib.study.shared.verdicts`,
   ``config.HEADLINE_FAMILY``). Verdict: "better"/"worse" when the Holm
   p-value is below 0.05, else "no detectable difference"; with one seed, "not tested".

DeLong et al. (1988) with the fast midrank algorithm of Sun & Xu (2014).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as _st

from emm_lib import config
from emm_lib.study.shared import results

__all__ = ["ALPHA", "UNTESTED", "bounded_ci", "midrank", "delong", "delong_paired", "holm", "choose_comparator",
           "seed_differences", "compare", "VERDICT_RULE", "split_spread"]

ALPHA = 0.05
_FILE_TERM = config.TEST_SET_TERM["factor"]  # the file-level share of a half's DeLong variance (measured)
VERDICT_RULE = ("Comparator chosen on mean validation AUC; difference = mean over seeds of the paired "
                "test-AUC difference; 95% CI and p from a t distribution with n−1 df over the seed spread "
                "plus the file-level part of the paired DeLong test-set variance (half of it, as measured "
                "with fixed models); Holm correction over the declared family "
                "(the headline: all experiments × tasks × comparators at once, duplicates dropped); "
                "\"better\"/\"worse\" when the Holm p < 0.05, else \"no detectable difference\".")


def bounded_ci(mean, se, q, lo: float = 0.0, hi: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A ``mean ± q·se`` interval for a metric bounded by ``[lo, hi]`` (an AUC: [0, 1]), built on the
    logit scale of ``(mean - lo) / (hi - lo)`` (delta method: ``se / (p (1 - p))`` there) and mapped
    back, so it never leaves the bounds and is asymmetric near them. Where ``se`` is not finite the
    bounds are NaN; a mean on a bound gives the degenerate interval at that bound."""
    mean, se, q = (np.asarray(x, dtype=float) for x in (mean, se, q))
    p = np.clip((mean - lo) / (hi - lo), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        z = np.log(p) - np.log1p(-p)
        h = q * se / ((hi - lo) * p * (1 - p))
        low, high = (lo + (hi - lo) / (1 + np.exp(-(z + sgn * h))) for sgn in (-1, 1))
    edge = (p == 0) | (p == 1)
    low, high = np.where(edge, mean, low), np.where(edge, mean, high)
    bad = ~np.isfinite(se)
    return np.where(bad, np.nan, low), np.where(bad, np.nan, high)


def midrank(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (``scipy.stats.rankdata(method='average')``)."""
    return _st.rankdata(x, method="average")


def _placements(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUCs (k,) and DeLong placements V10 (k, m positives) and V01 (k, n negatives) of k scores."""
    y = np.asarray(y).astype(bool)
    pos, neg = scores[:, y], scores[:, ~y]
    m, n = pos.shape[1], neg.shape[1]
    if m == 0 or n == 0:
        raise ValueError("DeLong needs both classes in the labels.")
    aucs, v10, v01 = [], [], []
    for p, q in zip(pos, neg):
        tz = midrank(np.concatenate([p, q]))
        tx, ty = midrank(p), midrank(q)
        aucs.append((tz[:m].sum() - m * (m + 1) / 2) / (m * n))
        v10.append((tz[:m] - tx) / n)
        v01.append(1.0 - (tz[m:] - ty) / m)
    return np.array(aucs), np.array(v10), np.array(v01)


def delong(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs (k,) and their DeLong covariance (k, k) for ``scores`` of shape (k, N) on labels ``y``."""
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    aucs, v10, v01 = _placements(y, scores)
    m, n = v10.shape[1], v01.shape[1]
    cov = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return aucs, cov


def delong_paired(y: np.ndarray, score_a: np.ndarray, score_b: np.ndarray) -> tuple[float, float, float]:
    """``(auc_a, auc_b, var(auc_a - auc_b))`` of two scorings of the same rows (paired DeLong)."""
    aucs, cov = delong(y, np.stack([np.asarray(score_a), np.asarray(score_b)]))
    return float(aucs[0]), float(aucs[1]), float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1); NaN stays NaN."""
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    q = p[ok]
    order = np.argsort(q)
    k = len(q)
    adj = np.maximum.accumulate((k - np.arange(k)) * q[order])
    res = np.empty(k)
    res[order] = np.minimum(adj, 1.0)
    out[ok] = res
    return out


def _dedup(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run and metric; disagreeing repeats or mixed profiles raise (results.one_row_per_run)."""
    return results.one_row_per_run(df, "stats")


def choose_comparator(df: pd.DataFrame, candidates: Sequence[str], dataset: str, task: str) -> str:
    """The candidate with the best mean validation AUC on ``task`` (ties: the first listed)."""
    d = _dedup(df)
    v = d[(d.metric == "val_auc") & (d.dataset == dataset) & (d.task == task) & d.model.isin(candidates)]
    if v.empty:
        raise ValueError(f"No validation AUC for any of {list(candidates)} on {dataset}/{task}: "
                         "run them first.")
    means = v.groupby("model").value.mean()
    return max((c for c in candidates if c in means.index), key=lambda c: means[c])


def seed_differences(df: pd.DataFrame, model: str, other: str, dataset: str, task: str,
                     metric: str = "test_auc") -> pd.Series:
    """Per-seed ``metric(model) - metric(other)`` over the seeds both have."""
    d = _dedup(df)
    d = d[(d.metric == metric) & (d.dataset == dataset) & (d.task == task)]
    a = d[d.model == model].set_index("seed").value
    b = d[d.model == other].set_index("seed").value
    seeds = sorted(set(a.index) & set(b.index))
    return (a.loc[seeds] - b.loc[seeds]).rename(f"{model} - {other}")


def _test_var(pair_var: pd.DataFrame | None, model: str, other: str, dataset: str, task: str,
              seeds: Sequence[int]) -> float:
    """Mean over ``seeds`` of the paired DeLong variance of the difference; NaN when not recorded."""
    if pair_var is None or pair_var.empty:
        return float("nan")
    pv = pair_var[(pair_var.dataset == dataset) & (pair_var.task == task) & pair_var.seed.isin(seeds)]
    fwd = pv[(pv.model_a == model) & (pv.model_b == other)]
    rev = pv[(pv.model_a == other) & (pv.model_b == model)]
    got = pd.concat([fwd, rev]).drop_duplicates("seed")
    return float(got.var_diff.mean()) if len(got) == len(seeds) else float("nan")


def compare(df: pd.DataFrame, model: str, candidates: Sequence[str], *, experiment: str = "",
            datasets: Sequence[str] | None = None, pair_var: pd.DataFrame | None = None,
            alpha: float = ALPHA) -> pd.DataFrame:
    """``model`` against its validation-chosen comparator, per (dataset, task): the verdict rule above.

    Columns: experiment, dataset, task, model, comparator, n_seeds, mean_diff, sd_diff, ci_low,
    ci_high, test_var, ci_low_test, ci_high_test, p_value, p_holm, verdict. ``pair_var`` is the
    table of paired DeLong variances written by the study's analysis step (columns dataset,
    seed, task, model_a, model_b, var_diff); without it the test-set columns are NaN and the
    verdict uses the seed-level test.
    """
    d = _dedup(df)
    rows = []
    for dataset in (datasets or d.dataset.unique()):
        sub = d[d.dataset == dataset]
        for task in sub[sub.model == model].task.unique():
            cands = [c for c in candidates if c != model and ((sub.model == c) & (sub.task == task)).any()]
            if not cands:
                continue
            comp = choose_comparator(sub, cands, dataset, task)
            diff = seed_differences(sub, model, comp, dataset, task)
            n = len(diff)
            mean = float(diff.mean()) if n else float("nan")
            sd = float(diff.std(ddof=1)) if n > 1 else float("nan")
            v = _test_var(pair_var, model, comp, dataset, task, list(diff.index))
            row = dict(experiment=experiment, dataset=dataset, task=task, model=model, comparator=comp,
                       n_seeds=n, mean_diff=mean, sd_diff=sd, test_var=v)
            if n > 1:
                q = _st.t.ppf(1 - alpha / 2, n - 1)
                se = sd / np.sqrt(n)
                se_all = np.sqrt(se ** 2 + _FILE_TERM * v) if np.isfinite(v) else float("nan")
                row.update(ci_low=max(mean - q * se, -1.0), ci_high=min(mean + q * se, 1.0),
                           ci_low_test=max(mean - q * se_all, -1.0), ci_high_test=min(mean + q * se_all, 1.0))
                se_test = se_all if np.isfinite(se_all) else se
                row["p_value"] = float(2 * _st.t.sf(abs(mean) / se_test, n - 1)) if se_test > 0 else float("nan")
            rows.append(row)
    cols = ["experiment", "dataset", "task", "model", "comparator", "n_seeds", "mean_diff", "sd_diff", "ci_low",
            "ci_high", "test_var", "ci_low_test", "ci_high_test", "p_value", "p_holm", "verdict"]
    out = pd.DataFrame(rows).reindex(columns=cols)
    if out.empty:
        return out
    for _, idx in out.groupby("dataset").groups.items():
        out.loc[idx, "p_holm"] = holm(out.loc[idx, "p_value"].to_numpy(dtype=float))
    out["verdict"] = [_verdict(m, p, alpha, n) for m, p, n in zip(out.mean_diff, out.p_holm, out.n_seeds)]
    return out


UNTESTED = "not tested (fewer than 2 seeds)"


def _verdict(mean: float, p: float, alpha: float, n_seeds: int = 2) -> str:
    if n_seeds < 2:
        return UNTESTED
    if not np.isfinite(p) or p >= alpha:
        return "no detectable difference"
    return "better" if mean > 0 else "worse"


def split_spread(y: np.ndarray, score_a: np.ndarray, score_b: np.ndarray, n_draws: int,
                 halves=None) -> dict[str, float]:
    """How much of the paired DeLong variance ``v`` of a half is split noise, for fixed scores.

    ``y``, ``score_a``, ``score_b``: labels and two models' scores on a whole test file. Each of
    ``n_draws`` draws splits the file 1:1 (``halves(y, draw)`` -> (first, second) row indices;
    default :func:`emm_lib.data.census.stratified_halves`) and takes the AUC difference and its
    ``v`` on the second half. Returns the file's difference and DeLong variance (``v_file``), the
    mean ``v`` of a half, the empirical variance of the difference over draws (``var_split``)
    and ``split_share = var_split / v``. The file-level term that the redrawn halves leave out of
    the seed spread is ``v - var_split``: about ``v / 2`` when ``split_share`` is about 1/2.
    """
    if halves is None:
        from emm_lib.data.census import stratified_halves as halves
    y = np.asarray(y)
    a_file, b_file, v_file = delong_paired(y, score_a, score_b)
    diffs, vs = [], []
    for draw in range(n_draws):
        idx = halves(y, draw)[1]
        a, b, v = delong_paired(y[idx], score_a[idx], score_b[idx])
        diffs.append(a - b), vs.append(v)
    v_half, var_split = float(np.mean(vs)), float(np.var(diffs, ddof=1))
    return dict(diff_file=a_file - b_file, v_file=v_file, v_half=v_half, var_split=var_split,
                split_share=var_split / v_half, file_share=v_file / v_half, n_draws=n_draws)
