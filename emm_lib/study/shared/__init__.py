"""What every experiment of the study shares: run storage and claims (:mod:`.runs`, :mod:`.claims`),
run settings, the runner and its executors, result tables, statistics and verdicts, test-set variances,
and the book's presentation (names, tables, figures, provenance)."""
