"""emm_lib.study.paper.findings: the discussion sentences follow the numbers they are computed from."""
import pandas as pd

from emm_lib.study.paper import findings


def _rows(model, task, values, dataset="census"):
    out = []
    for s, v in enumerate(values):
        for metric in ("test_auc", "val_auc"):
            out.append({"dataset": dataset, "model": model, "task": task, "seed": s, "metric": metric, "value": v})
    return out


def test_emm_against_its_own_models_is_tested_against_the_validation_choice():
    df = pd.DataFrame(_rows("emm", "income", [0.90, 0.95, 0.91]) + _rows("tm1:income", "income", [0.92, 0.93, 0.92])
                      + _rows("tm2:income", "income", [0.91, 0.94, 0.93]))
    s = findings.emm_vs_own_models(df)
    # tm2 has the better mean validation AUC (0.9267 > 0.9233); EMM is below it in seeds 0 and 2
    assert "vs TM-2 (income)" in s and "in 2 of 3 seed-level comparisons" in s
    assert "no detectable difference" in s and "Holm over its tasks" in s


def test_leakage_reports_both_feature_sets():
    df = pd.DataFrame(_rows("mmoe", "marital", [0.995, 0.994]) + _rows("mmoe", "marital", [0.990, 0.989],
                                                                       dataset="census/leak-free"))
    s = findings.leakage(df)
    assert "0.9945–0.9945" in s and "0.9895–0.9895" in s


def test_paper_gaps_against_a_spread_larger_than_every_gap():
    df = pd.DataFrame(_rows("emm", "income", [0.90, 0.99]))  # std 0.064 > every paper gap
    assert "within our spread" in findings.paper_gaps_vs_spread(df)


def test_code_versions_states_the_commits_and_the_measured_difference():
    df = pd.DataFrame(_rows("emm", "income", [0.90, 0.92]) + _rows("tm1:income", "income", [0.91, 0.93]))
    df["git_commit"] = ["aaa"] * 4 + ["bbb"] * 4  # emm at one commit, tm1 at the other
    assert findings.code_versions(df[df.git_commit == "aaa"]) == ""  # one commit: nothing to say
    assert "No run was repeated" in findings.code_versions(df)
    assert findings.code_versions(df).startswith("**2 code versions.** The runs were made by 2 versions")
    check = pd.DataFrame({"dataset": "census", "model": ["emm", "tm1:income"], "task": "income", "seed": 0,
                          "metric": "test_auc", "difference": [-0.0007, 0.0], "git_commit_new": "ccc"})
    s = findings.code_versions(df, check)
    assert "`aaa` (2 runs), `bbb` (2 runs)" in s and "single-task models are bit-identical" in s
    assert "differ by up to 0.0007" in s and "standard deviation over seeds is 0.0141–0.0141" in s


def test_training_cost_compares_emm_with_the_baselines_from_the_cost_table():
    cost = pd.DataFrame({"dataset": ["census"] * 4 + ["census/leak-free", "census/3-tasks"],
                         "model": ["emm", "mmoe", "ple", "tm1:income", "emm", "emm"],
                         "runs": [5, 5, 5, 5, 5, 5], "seconds_total": [450.0, 200.0, 600.0, 50.0, 550.0, 5000.0]})
    s = findings.training_cost(cost)  # as the cost table's 2-task column: census and leak-free pooled
    assert "One EMM run with 2 tasks took 100 s" in s and "40–120 s" in s and "1 of 2 baselines trained faster" in s
    assert "not both in the results" in findings.training_cost(cost[cost.model != "emm"])
