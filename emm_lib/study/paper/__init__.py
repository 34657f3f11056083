"""The paper grid: Table I, Table II and Figure 3 on real data (the results chapter's discussion and the
method chapter's picture of EMM)."""
