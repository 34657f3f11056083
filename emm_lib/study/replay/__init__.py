"""The protocol replay: the authors' published protocol rung by rung (:mod:`.protocol`, :mod:`.authors`),
its ladder, the consistency and out-of-sample checks, and its figures."""
