import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from helpers import make_tiny_dataset  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def tiny_dataset():
    return make_tiny_dataset()


@pytest.fixture(scope="session")
def census_mirror() -> Path:
    """The Census raw files: EMM_DATA_MIRROR, else ../shared/data beside the repo, else the
    verified copies `make data` (``python -m emm_lib.data census``) fetched into data/raw/.

    Skips when none exists, unless EMM_REQUIRE_DATA is set (``make test`` sets it after
    fetching the data): then a missing copy is an error, never a silent skip.
    """
    env = os.environ.get("EMM_DATA_MIRROR")
    cands = [Path(env)] if env else []
    cands += [REPO.parent / "shared" / "data" / "census-income-kdd", REPO / "data" / "raw"]
    for c in cands:
        if (c / "census-income.data.gz").exists() or (c / "census-income.data").exists():
            return c
    msg = "no Census data found (set EMM_DATA_MIRROR, or run `make data` to fetch it into data/raw/)"
    if os.environ.get("EMM_REQUIRE_DATA", "").strip() not in ("", "0", "false", "no"):
        pytest.fail(f"EMM_REQUIRE_DATA is set but {msg}")
    pytest.skip(msg)


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """The models are tiny: intra-op threads cost more than they give, and spin-wait badly on a
    loaded 2-core machine. The trainer does the same by default (``fit(cpu_threads=1)``)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
