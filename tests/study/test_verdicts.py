"""emm_lib.study.shared.verdicts: the headline family (duplicates dropped, Holm over all of it, the direction count)."""
import numpy as np
import pandas as pd
import pytest

from emm_lib import config
from emm_lib.study.shared import stats, verdicts


def _runs(seed=0, n_seeds=5):
    rng = np.random.default_rng(seed)
    rows = []
    for dataset, tasks in (("census", ("income", "marital")), ("census/fixed-features/3-tasks",
                                                                ("income", "marital", "education"))):
        for task in tasks:
            for s in range(n_seeds):
                base = 0.9 + 0.01 * rng.normal()
                vals = {"mmoe": base, "ple": base - 0.001, f"tm1:{task}": base - 0.0005,
                        f"tm2:{task}": base + 0.0002, "emm": base - 0.002 + 0.0005 * rng.normal()}
                # with two tasks the soft gate is the same function as the arg-max gate
                vals["emm:soft"] = vals["emm"] if "3-tasks" not in dataset else base - 0.001 + 0.0005 * rng.normal()
                for m, v in vals.items():
                    for metric, shift in (("val_auc", 0.0), ("test_auc", 0.0001)):
                        rows.append(dict(dataset=dataset, model=m, task=task, seed=s, metric=metric,
                                         value=v + shift))
    return pd.DataFrame(rows)


def _family():
    runs = _runs()
    return runs, verdicts.headline(lambda e: runs, runs, None, dict(
        config.HEADLINE_FAMILY, experiments=("table1",)))


def test_the_family_is_declared_in_config():
    fam = config.HEADLINE_FAMILY
    assert set(fam["comparators"]) == {"multi-task baseline", "trained model"}
    assert "emm" in fam["models"] and "table1" in fam["experiments"]


def test_trained_model_comparators_are_the_single_task_models():
    runs = _runs()
    assert set(verdicts.comparators(runs, "trained model")) == {
        f"tm{k}:{t}" for k in (1, 2) for t in ("income", "marital", "education")}
    assert verdicts.comparators(runs, "multi-task baseline") == ["mmoe", "ple"]


def test_duplicates_are_dropped_and_holm_runs_over_the_whole_family():
    runs, fam = _family()
    # 2 comparators x (2 + 3 tasks) x 2 models = 20, minus emm:soft's 2 two-task rows per comparator
    assert len(fam) == 16 and (fam.duplicates_dropped == 4).all() and (fam.family_size == 16).all()
    assert not ((fam.model == "emm:soft") & (fam.dataset == "census")).any()
    assert np.allclose(fam.p_holm, stats.holm(fam.p_value))
    # the comparators are chosen on validation: tm2 (higher) among the trained models, mmoe among baselines
    assert set(fam[fam.against == "trained model"].comparator.str[:3]) == {"tm2"}
    assert set(fam[fam.against == "multi-task baseline"].comparator) == {"mmoe"}


def test_direction_counts_seed_level_differences():
    runs, fam = _family()
    below, total = verdicts.direction(fam, runs)
    assert total == 16 * 5
    expected = sum(int((stats.seed_differences(runs, r.model, r.comparator, r.dataset, r.task) < 0).sum())
                   for r in fam.itertuples())
    assert below == expected


def test_summary_names_the_family_and_its_correction():
    runs, fam = _family()
    text = verdicts.summary(fam, runs, "synthetic check")
    assert "Holm over the 16 comparisons of the headline family" in text
    assert "after dropping 4" in text and "seed-level comparisons" in text
    assert "best trained model" in text and "best multi-task baseline" in text


def test_own_models_tests_against_the_validation_chosen_trained_model():
    runs = _runs()
    out = verdicts.own_models(runs[runs.dataset == "census"], ["emm"], "table2")
    assert list(out.comparator) == ["tm2:income", "tm2:marital"]
    assert out.verdict.isin(["better", "worse", "no detectable difference"]).all()
    assert out.p_holm.to_numpy() == pytest.approx(stats.holm(out.p_value))


def test_abstract_says_in_plain_words_that_emm_does_not_beat_its_comparators():
    fam = pd.DataFrame({"against": ["multi-task baseline", "trained model"], "mean_diff": [-0.005, -0.001],
                        "verdict": ["no detectable difference"] * 2, "n_seeds": [5, 5]})
    text = verdicts.abstract(fam)
    assert text.startswith("EMM does not beat") and "none of the 2 differences detectable after Holm (5 seeds)" in text
    assert "below the best trained model" in text and "_" not in text
    assert "beats its comparator in 1 of 2" in verdicts.abstract(fam.assign(verdict=["better", "worse"]))
