"""End to end on the real Census-Income data: a single-task model learns income."""
import pytest

from emm_lib import config
from emm_lib.data import load
from emm_lib.models import SingleTaskMLP
from emm_lib.train import evaluate, fit


@pytest.fixture(scope="module")
def census(tmp_path_factory, census_mirror):
    return load("census", data_dir=tmp_path_factory.mktemp("census"), mirror=census_mirror)


@pytest.mark.slow
def test_single_task_income_auc_on_real_census(census):
    m = SingleTaskMLP(census.spec, "income", **config.model_settings("census", "tm2"))
    r = fit(m, census, epochs=2, batch_size=1024, lr=1e-3, weight_decay=1e-6, seed=0, device="cpu")
    test = evaluate(m, census.test)
    print("history:\n", r.history.to_string(), "\ntest AUC:", test)
    assert test["income"] > 0.85
    assert r.best_val_auc["income"] > 0.85
