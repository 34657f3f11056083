"""fit() and predict() flush subnormal floats to zero on CPU, for the whole run, and leave the flag off.

Subnormal weights late in a long run slowed every matrix product ~95x on an AVX-512 Xeon
(``benchmarks/bench_denormals.py``). What is checked here holds on any CPU: whether a subnormal
product survives, inside and after."""
import pytest
import torch

from emm_lib.models import build_model
from emm_lib.train import fit, flush_denormals, predict

SUB = 1e-39  # below float32's smallest normal (1.2e-38)


def _survives() -> bool:
    """Whether a subnormal float32 survives a multiplication on this thread now."""
    return (torch.tensor([SUB]) * torch.tensor([1.0])).item() != 0.0


@pytest.fixture
def can_flush():
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush subnormals (no FTZ/DAZ)")
    torch.set_flush_denormal(False)
    assert _survives()


def test_fit_flushes_in_every_epoch_and_after_validation_then_turns_it_off(tiny_dataset, can_flush):
    torch.manual_seed(0)
    model = build_model("shared_bottom", tiny_dataset.spec, tiny_dataset.tasks)
    seen = []
    model.register_forward_hook(lambda *_: seen.append(_survives()) if model.training else None)
    res = fit(model, tiny_dataset, epochs=3, batch_size=256, patience=None, device="cpu")
    assert seen and not any(seen)  # epochs 2 and 3 come after a validation pass (a nested predict)
    assert res.settings["flush_denormal"] is True
    assert _survives()  # off again afterwards


def test_predict_flushes_and_nesting_restores_the_outer_state(tiny_dataset, can_flush):
    torch.manual_seed(0)
    model = build_model("mmoe", tiny_dataset.spec, tiny_dataset.tasks)
    seen = []
    model.register_forward_hook(lambda *_: seen.append(_survives()))
    predict(model, tiny_dataset.val)
    assert seen and not any(seen) and _survives()
    with flush_denormals(torch.device("cpu")) as outer:
        with flush_denormals(torch.device("cpu")) as inner:
            assert outer and inner and not _survives()
        assert not _survives()  # the inner exit left the outer one's flag on
    assert _survives()


def test_no_flag_is_touched_off_the_cpu():
    with flush_denormals(torch.device("meta")) as on:
        assert on is False
