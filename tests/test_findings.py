"""emm_lib.findings: the discussion sentences follow the numbers they are computed from."""
import pandas as pd

from emm_lib import findings


def _rows(model, task, values, dataset="census"):
    out = []
    for s, v in enumerate(values):
        for metric in ("test_auc", "val_auc"):
            out.append({"dataset": dataset, "model": model, "task": task, "seed": s, "metric": metric, "value": v})
    return out


def test_emm_below_its_own_models_is_counted_per_seed():
    df = pd.DataFrame(_rows("emm", "income", [0.90, 0.95, 0.91]) + _rows("tm1:income", "income", [0.92, 0.93, 0.92])
                      + _rows("tm2:income", "income", [0.91, 0.94, 0.93]))
    s = findings.emm_vs_own_models(df)
    assert "in 2 of 3 seeds" in s  # seed 1: EMM 0.95 is above both


def test_leakage_reports_both_feature_sets():
    df = pd.DataFrame(_rows("mmoe", "marital", [0.995, 0.994]) + _rows("mmoe", "marital", [0.990, 0.989],
                                                                       dataset="census/leak-free"))
    s = findings.leakage(df)
    assert "0.9945–0.9945" in s and "0.9895–0.9895" in s


def test_paper_gaps_against_a_spread_larger_than_every_gap():
    df = pd.DataFrame(_rows("emm", "income", [0.90, 0.99]))  # std 0.064 > every paper gap
    assert "within our spread" in findings.paper_gaps_vs_spread(df)
