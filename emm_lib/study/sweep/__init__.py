"""The synthetic benchmark: the sweep over data-generating axes (:mod:`.grid`), its second pass, the map
(:mod:`.sweep_map`), the chapter's report sentences and its figures."""
