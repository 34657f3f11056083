"""``python -m emm_lib.study EXPERIMENT [options]``: the study's command line (:func:`emm_lib.study.main`)."""
from __future__ import annotations

import sys

from emm_lib.study import main
from emm_lib.study.shared.runs import SettingsChanged

try:
    main(sys.argv[1:])
except SettingsChanged as exc:  # recorded rows that this run would replace: the message names the choice
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)
