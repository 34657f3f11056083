"""fit() and predict() flush subnormal floats to zero on CPU, for the whole run, and leave the flag off.

Subnormal weights late in a long run slowed every matrix product ~95x on an AVX-512 Xeon
(``benchmarks/bench_denormals.py``). What is checked here holds on any CPU: whether a subnormal
product survives, inside and after."""
import subprocess
import sys

import pytest
import torch

from emm_lib.models import build_model
from emm_lib.train import fit, flush_denormals, predict, set_threads
from emm_lib.utils import repo_root

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


def test_set_threads_starts_torchs_other_threads_flushed_and_leaves_the_callers_flag_as_it_was(can_flush):
    """With 2 threads and torch.set_num_threads alone, fit()'s flush covers the calling thread's half of
    a parallel multiply only (0.5 of the subnormals survive on a 2-core Xeon). A fresh process: a pool
    started earlier keeps its flag."""
    code = ("import torch\nfrom emm_lib.train import flush_denormals, set_threads\nset_threads(2)\n"
            "x = torch.full((1 << 22,), 1e-39)\nwith flush_denormals(torch.device('cpu')):\n    y = x * 1.0\n"
            "survives = (torch.tensor([1e-39]) * 1.0).item() != 0.0\n"
            "with flush_denormals(torch.device('cpu')):\n    set_threads(3)\n"
            "    flushed = (torch.tensor([1e-39]) * 1.0).item() == 0.0\n"
            "print(float((y != 0).float().mean()), survives, flushed)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo_root(), timeout=120)
    assert out.returncode == 0, out.stderr
    kept, off_outside, on_inside = out.stdout.split()
    assert float(kept) == 0.0
    assert off_outside == on_inside == "True"  # the caller's flag as it was, off or on


@pytest.mark.parametrize("bad", [0, -2, 1.5, "2", True])
def test_set_threads_names_a_bad_count(bad):
    with pytest.raises(ValueError, match="positive whole number"):
        set_threads(bad)


def test_set_threads_takes_a_numpy_count():
    import numpy as np
    set_threads(np.int64(1))
    assert torch.get_num_threads() == 1
