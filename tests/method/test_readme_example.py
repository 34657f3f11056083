"""The README's "Fuse your own trained models" example runs as written (the method library alone)."""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pandas as pd

README = Path(__file__).resolve().parents[2] / "README.md"


def _example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Fuse your own trained models", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the section holds one python block"
    return blocks[0]


def test_the_readme_fuses_trained_models_as_written():
    code = _example()
    assert "emm_lib.study" not in code and "config" not in code  # the method library only
    out, scope = io.StringIO(), {}
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), scope)
    emm, ds = scope["emm"], scope["ds"]
    assert set(scope["trained"]) == set(ds.tasks) and emm.pretrained
    auc = eval("evaluate(emm, ds.test)", scope)
    assert set(auc) == set(ds.tasks) and all(0.0 <= a <= 1.0 for a in auc.values())
    p = scope["probabilities"]
    assert p.shape == (len(ds.test), len(ds.tasks)) and float(p.min()) >= 0 and float(p.max()) <= 1
    printed = out.getvalue()
    assert "level" in printed and str(auc) in printed  # the cut table and the AUCs were printed
    assert isinstance(scope["deconstruct"](scope["bodies"]).describe(), pd.DataFrame)
