"""The cut-point search of Algorithm 1: where to cut every model so that levels align.

A cut after a block has a *signature*: the block's main layer type and the output shape there,
e.g. ``("Linear", (8,))``. The paper's common structural layers ``c`` are the signatures every
model has, in order; :func:`lcs_length` gives the largest number of levels (1 + the length of
their longest common subsequence), :func:`candidate_sequences` every common signature sequence of
a given length, and :func:`choose` places one cut per level in every model.

:func:`choose` is an *alternating minimisation*: targets start at an even spread (level ``l`` of
``L`` at relative depth ``l/L``); each model's cuts are placed closest to the targets
(:func:`place`, exact for fixed targets, by dynamic programming), the targets move to the mean
depth of the chosen cuts, and the two steps repeat until nothing changes (at most 10 rounds). It
finds a *local* optimum of the squared spread of depths at each level, not necessarily the global
one. On the paper's two Census models it reaches spread 0 (cuts at equal relative depths), which
is the global optimum there. A case where it is not (``tests/method/test_deconstruct.py``): boundaries
at depths k/6 and k/5, two cuts each; it keeps (2/6, 4/6) and (2/5, 3/5), spread 0.0044, while
(1/6, 5/6) and (1/5, 4/5) would spread 0.0011.
"""
from __future__ import annotations

import itertools
from typing import Sequence

__all__ = ["Signature", "search_cuts", "lcs_length", "place", "choose", "candidate_sequences", "too_many_levels",
           "check_cut_points"]

Signature = tuple[str, tuple[int, ...]]

_MAX_CANDIDATES = 20000  # signature sequences examined before asking for cut_points


def search_cuts(shapes: Sequence[Sequence[tuple[int, ...]]], names: Sequence[str], bounds: list[list[int]],
                sigs: list[list[Signature]], depths: list[list[float]], n_levels: int | None
                ) -> tuple[list[list[int]] | None, str | None]:
    """``(cuts, None)``: the layer indices where every model's components 2..L start, by the rule of
    :mod:`emm_lib.deconstruct` (``n_levels`` default: the most levels there can be); or
    ``(None, why)`` when the models cannot be aligned exactly."""
    if any(s[-1] != shapes[0][-1] for s in shapes):
        j = next(j for j in range(1, len(shapes)) if shapes[j][-1] != shapes[0][-1])
        return None, (f"{names[0]} and {names[j]} cannot be aligned: {names[0]} ends with output shape "
                      f"{shapes[0][-1]} but {names[j]} ends with {shapes[j][-1]}; the last component must end "
                      "at the end of each model, so the final shapes must agree")
    max_levels = 1 + lcs_length(sigs)
    L = n_levels if n_levels is not None else max_levels
    if L > max_levels:
        return None, too_many_levels(L, max_levels, sigs, list(names))
    K = L - 1
    best = None
    for seq in candidate_sequences(sigs, K):  # every common signature sequence; a local placement for each
        res = choose(depths, sigs, seq, K)
        if res is not None and (best is None or (res[0], res[1]) < (best[0], best[1])):
            best = res
    assert best is not None
    return [[bounds[i][q] for q in best[1][i]] for i in range(len(shapes))], None


def lcs_length(seqs: list[list[Signature]]) -> int:
    """Length of the longest common subsequence of several sequences (memoised, greedy-leftmost)."""
    alphabet = sorted(set.intersection(*(set(s) for s in seqs))) if seqs else []
    memo: dict[tuple[int, ...], int] = {}

    def nxt(s: list[Signature], p: int, a: Signature) -> int | None:
        for q in range(p, len(s)):
            if s[q] == a:
                return q
        return None

    def rec(pos: tuple[int, ...]) -> int:
        if pos in memo:
            return memo[pos]
        best = 0
        for a in alphabet:
            qs = [nxt(s, p, a) for s, p in zip(seqs, pos)]
            if all(q is not None for q in qs):
                best = max(best, 1 + rec(tuple(q + 1 for q in qs)))
        memo[pos] = best
        return best

    return rec(tuple(0 for _ in seqs))


def place(depths: list[float], sigs: list[Signature] | None, seq: Sequence[Signature] | None,
           targets: list[float]) -> tuple[float, tuple[int, ...]] | None:
    """Choose one boundary per level (increasing, signature ``seq[j]`` if given) closest to
    ``targets`` (sum of squared depth deviations); ties go to the earliest boundaries.
    Returns (cost, boundary positions) or None if impossible."""
    K = len(targets)
    if K == 0:
        return 0.0, ()
    n = len(depths)
    # best[q] = (cost, path) for levels 0..j with level j at boundary q
    prev: list[tuple[float, tuple[int, ...]] | None] = [None] * n
    for j in range(K):
        cur: list[tuple[float, tuple[int, ...]] | None] = [None] * n
        run: tuple[float, tuple[int, ...]] | None = None  # best of prev[0..q-1]
        for q in range(n):
            ok = seq is None or sigs[q] == seq[j]
            if ok:
                base = (0.0, ()) if j == 0 else run
                if base is not None:
                    cur[q] = (base[0] + (depths[q] - targets[j]) ** 2, base[1] + (q,))
            if j > 0 and prev[q] is not None and (run is None or _key(prev[q]) < _key(run)):
                run = prev[q]
        prev = cur
    finals = [c for c in prev if c is not None]
    return min(finals, key=_key) if finals else None


def _key(c: tuple[float, tuple[int, ...]]) -> tuple[float, tuple[int, ...]]:
    return (round(c[0], 12), c[1])


def choose(depths: list[list[float]], sigs: list[list[Signature]] | None, seq: Sequence[Signature] | None,
            K: int) -> tuple[tuple[float, float], list[tuple[int, ...]]] | None:
    """Place K cuts in every model: targets start evenly spread (l/L) and move to the per-level
    mean depth of the chosen cuts until nothing changes (alternating minimisation of the
    squared spread of depths at each level)."""
    L = K + 1
    even = [(j + 1) / L for j in range(K)]
    targets = list(even)
    chosen: list[tuple[int, ...]] | None = None
    for _ in range(10):
        placed = [place(d, None if sigs is None else sigs[i], seq, targets) for i, d in enumerate(depths)]
        if any(p is None for p in placed):
            return None
        new = [p[1] for p in placed]
        if new == chosen:
            break
        chosen = new
        targets = [sum(depths[i][chosen[i][j]] for i in range(len(depths))) / len(depths) for j in range(K)]
    assert chosen is not None
    spread = sum((depths[i][chosen[i][j]] - targets[j]) ** 2 for i in range(len(depths)) for j in range(K))
    evenness = sum((depths[i][chosen[i][j]] - even[j]) ** 2 for i in range(len(depths)) for j in range(K))
    return (round(spread, 12), round(evenness, 12)), chosen


def candidate_sequences(seqs: list[list[Signature]], K: int) -> list[tuple[Signature, ...]]:
    """All signature sequences of length K that are common subsequences of every model's."""
    alphabet = sorted(set.intersection(*(set(s) for s in seqs)))
    out: list[tuple[Signature, ...]] = []

    def rec(pos: list[int], prefix: tuple[Signature, ...]) -> None:
        if len(out) > _MAX_CANDIDATES:
            return
        if len(prefix) == K:
            out.append(prefix)
            return
        for a in alphabet:
            qs = []
            for s, p in zip(seqs, pos):
                q = next((q for q in range(p, len(s)) if s[q] == a), None)
                if q is None:
                    break
                qs.append(q + 1)
            else:
                rec(qs, prefix + (a,))

    rec([0] * len(seqs), ())
    if len(out) > _MAX_CANDIDATES:
        raise ValueError(
            f"More than {_MAX_CANDIDATES} ways to align these models at {K + 1} levels; "
            "pass cut_points=[...] (one list of layer indices per model) or a smaller n_levels."
        )
    return out


def _fmt_sig(s: Signature) -> str:
    return f"{s[0]}{list(s[1])}"


def too_many_levels(L: int, max_levels: int, sigs: list[list[Signature]], names: list[str]) -> str:
    for i, j in itertools.combinations(range(len(sigs)), 2):
        pair_max = 1 + lcs_length([sigs[i], sigs[j]])
        if pair_max < L:
            common = sorted(set(sigs[i]) & set(sigs[j]))
            return (f"{names[i]} and {names[j]} cannot be aligned at {L} levels: they share only "
                    f"{pair_max - 1} common cut point(s) in order (common block signatures: "
                    f"{[_fmt_sig(s) for s in common] or 'none'}), so at most {pair_max} levels")
    return (f"These models cannot be aligned at {L} levels: jointly they share only {max_levels - 1} "
            f"common cut point(s) in order, so at most {max_levels} levels; pass n_levels<={max_levels}")


def check_cut_points(cut_points, layers, shapes, names, n_levels) -> list[list[int]]:
    cuts = [list(map(int, c)) for c in cut_points]
    if len(cuts) != len(layers):
        raise ValueError(f"cut_points has {len(cuts)} lists but there are {len(layers)} models; give one per model.")
    for c, ls, n in zip(cuts, layers, names):
        if any(b <= a for a, b in zip(c, c[1:])) or any(k <= 0 or k >= len(ls) for k in c):
            raise ValueError(f"cut_points for {n} must be increasing layer indices in 1..{len(ls) - 1}, got {c}.")
    if len({len(c) for c in cuts}) != 1:
        raise ValueError(f"cut_points must give every model the same number of cuts, got {[len(c) for c in cuts]}.")
    if n_levels is not None and len(cuts[0]) + 1 != n_levels:
        raise ValueError(f"cut_points make {len(cuts[0]) + 1} levels but n_levels={n_levels}.")
    for i in range(1, len(cuts)):
        for lvl, (a, b) in enumerate(zip(cuts[0] + [len(layers[0])], cuts[i] + [len(layers[i])])):
            if shapes[0][a] != shapes[i][b]:
                raise ValueError(
                    f"{names[0]} and {names[i]} cannot be aligned at these cut_points: at level {lvl + 1} "
                    f"{names[0]} outputs shape {shapes[0][a]} but {names[i]} outputs {shapes[i][b]}."
                )
    return cuts
