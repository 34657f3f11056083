"""The benchmark scripts' own logic and their errors (their timings are not tested: they print tables)."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _rows(values, epochs, device):
    return pd.DataFrame({"dataset": "census", "model": "emm", "task": "income", "seed": range(len(values)),
                         "metric": "test_auc", "value": values, "best_epoch": epochs, "device": device})


def test_device_agreement_matches_runs_by_seed():
    agreement = _load("device_agreement").agreement
    gpu = _rows([0.90, 0.92, 0.95], [3, 4, 5], "cuda")
    cpu = _rows([0.91, 0.92, 0.94], [3, 2, 5], "cpu").iloc[::-1]  # order does not matter
    (row,) = agreement(gpu, cpu).to_dict("records")
    assert row["runs"] == 3 and row["same_epoch"] == pytest.approx(2 / 3)
    assert row["max_abs_diff"] == pytest.approx(0.01) and row["mean_diff"] == pytest.approx(0.0)
    with pytest.raises(SystemExit, match="No run is in both"):
        agreement(gpu, cpu.assign(seed=cpu.seed + 10))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
@pytest.mark.parametrize("args, message", [
    (["--device", "cuda"], "CUDA is not available here"),
    (["--amp"], "--amp is bfloat16 autocast on CUDA"),
    (["--cuda-graph"], "--cuda-graph replays the step as a CUDA graph"),
])
def test_bench_train_names_a_device_it_cannot_use(args, message):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_train.py"), *args],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


def test_device_agreement_reads_the_committed_gpu_runs():
    """The numbers the reproduce chapter quotes come from this command on the committed files."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "device_agreement.py")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "table1: devices cuda vs cpu; 35 runs in both" in out.stdout
    assert "largest per-run test-AUC difference 0.0017" in out.stdout


def test_device_agreement_reads_the_cuda_graph_grid():
    """The reproduce chapter's numbers for the grid run with --cuda-graph on the GPU."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "device_agreement.py"), "--other",
                          "results/h200/cuda_graph/paper", "--experiments", "single_task", "table1", "table2",
                          "figure3", "leak_free"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "largest per-run test-AUC difference 0.0047; mean difference over models 0.0016" in out.stdout
    assert "fit seconds summed: 1,146 vs 2,077" in out.stdout  # single_task: 56 runs on both devices
    assert "--cuda-graph, stopped at a deadline          8   140           506" in out.stdout


def test_the_chapter_quotes_the_recorded_cpu_bench():
    """The reproduce chapter's 2026-11-26 CPU ratios are those of the committed bench table."""
    t = pd.read_csv(ROOT / "results" / "bench" / "cpu_2026-11-26.csv").set_index(["model", "path"])
    r = {m: t.loc[(m, "ours")] for m in ("emm", "mmoe", "ple")}
    quoted = (f"{r['emm']['train ratio']:.1f}× and {r['emm']['infer ratio']:.1f}× for EMM, "
              f"{r['mmoe']['train ratio']:.1f}× for MMoE, {r['ple']['train ratio']:.1f}× for PLE")
    assert quoted in " ".join((ROOT / "book" / "reproduce.md").read_text().split())
    assert set(t.device) == {"cpu"} and t.git_commit.notna().all() and not t.git_commit.str.endswith("dirty").any()


def test_bench_denormals_refuses_a_share_outside_zero_to_one():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_denormals.py"), "--share", "2"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode != 0 and "--share is a fraction in [0, 1]" in out.stderr


def test_bench_denormals_kills_the_share_of_units_it_is_asked_for():
    model, batch = _load("bench_denormals").tm1(0.5)
    lin = [m for m in model.body if isinstance(m, torch.nn.Linear)]
    dead = [(m.weight.abs().amax(1) < 1e-20).float().mean().item() for m in lin]
    assert all(0.2 < d < 0.8 for d in dead) and batch.sparse.shape[0] == 4_096
