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
    """The local Census mirror (EMM_DATA_MIRROR, else ../shared/data beside the repo)."""
    env = os.environ.get("EMM_DATA_MIRROR")
    cands = [Path(env)] if env else []
    cands.append(REPO.parent / "shared" / "data" / "census-income-kdd")
    for c in cands:
        if (c / "census-income.data.gz").exists() or (c / "census-income.data").exists():
            return c
    pytest.skip("no Census mirror found (set EMM_DATA_MIRROR)")
