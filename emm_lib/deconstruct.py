"""Algorithm 1: deconstruct trained models into the same number of hierarchical components.

Paper Sec. III-A. Every model is read as a chain of layers (an ``nn.Sequential``, flattened,
or any module ``torch.fx`` traces into a chain). Layers are grouped into *blocks*: a block
starts at a layer with its own weights (Linear, Conv, ...) and takes along the normalisation,
activation and dropout layers that follow it, so a cut never falls between a Linear and its
BatchNorm. A cut after a block has a *signature*: the block's main layer type and the output
shape there, e.g. ``("Linear", (8,))``. The common structural layers of the paper (``c``) are
the signatures that every model has; components at one level then share their input and
output shapes.

The rule that picks the cuts (deterministic, documented in :func:`deconstruct`):

1. The largest possible number of levels is 1 + the length of the longest common
   subsequence (LCS) of the models' boundary signatures (the final boundary, the end of the
   model, is always a cut and must agree across models).
2. ``n_levels`` (default: that largest number) fixes how many internal cuts each model gets.
3. Among all choices of cuts whose signatures agree level by level, take the one whose cuts at
   each level sit at the most similar relative depths across models (smallest sum of squared
   deviations from the level's mean depth; depth = layers before the cut / all layers), then
   the one closest to an even spread (level ``l`` of ``L`` at depth ``l/L``), then the earliest.

On the authors' Census setting (TM-1 body ``[8,8]x3``, TM-2 body ``[16,8]x3``), the common
signature is ``("Linear", (8,))``; TM-2 has it after its blocks 2 and 4 only, so the LCS has
length 2 and both models are cut into their three MLP blocks.

Beyond the paper, ``adapters=True`` lifts the "identical layer structures" assumption the
authors name as future work: models are cut at similar relative depths and small trainable
linear :class:`Adapter` layers map each component's output to a common width.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor, nn

__all__ = ["deconstruct", "Decomposition", "Adapter", "model_layers", "block_boundaries"]

Signature = tuple[str, tuple[int, ...]]

_MAX_CANDIDATES = 20000  # signature sequences examined before asking for cut_points
_NORMS: tuple[type, ...] = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
if hasattr(nn, "RMSNorm"):
    _NORMS = _NORMS + (nn.RMSNorm,)


class Adapter(nn.Linear):
    """A trainable linear map between component widths (``adapters=True``; not in the paper).

    Initialised to the identity on the shared coordinates (zero-padding when widening,
    truncation when narrowing) so that, before training, a model's own components still
    compose to the model itself (up to zero padding of the final output).
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(in_features, out_features)
        with torch.no_grad():
            self.weight.zero_()
            self.bias.zero_()
            k = min(in_features, out_features)
            self.weight[:k, :k] = torch.eye(k)


class _FxOp(nn.Module):
    """A function or method call from an fx-traced chain, applied to the running tensor."""

    def __init__(self, op: str, target: Any, args: tuple, kwargs: dict, slot: int) -> None:
        super().__init__()
        self.op, self.target, self.args, self.kwargs, self.slot = op, target, args, kwargs, slot

    def forward(self, x: Tensor) -> Tensor:
        args = list(self.args)
        args[self.slot] = x
        if self.op == "call_method":
            return getattr(args[0], self.target)(*args[1:], **self.kwargs)
        return self.target(*args, **self.kwargs)

    def extra_repr(self) -> str:
        return getattr(self.target, "__name__", str(self.target))


# --------------------------------------------------------------------------- layer chains


def _flatten(seq: nn.Sequential) -> list[nn.Module]:
    out: list[nn.Module] = []
    for m in seq:
        out.extend(_flatten(m) if isinstance(m, nn.Sequential) else [m])
    return out


def model_layers(model: nn.Module, name: str = "model") -> list[nn.Module]:
    """The model as a flat list of its own layer objects, in execution order.

    ``nn.Sequential`` (nested ones flattened); otherwise the module is traced with
    ``torch.fx`` and must be a chain: each step takes only the previous step's output.
    """
    if isinstance(model, nn.Sequential):
        layers = _flatten(model)
        if not layers:
            raise ValueError(f"{name} is an empty nn.Sequential; it has no layers to deconstruct.")
        return layers
    if not isinstance(model, nn.Module):
        raise ValueError(f"{name} is a {type(model).__name__}, not a torch nn.Module.")
    if hasattr(model, "body") and isinstance(getattr(model, "body"), nn.Module) and hasattr(model, "embedding"):
        raise ValueError(f"{name} is a whole {type(model).__name__}; deconstruct takes model bodies: pass model.body.")
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as exc:  # noqa: BLE001 - report any tracing failure the same way
        raise ValueError(
            f"{name} ({type(model).__name__}) is neither an nn.Sequential nor traceable by torch.fx "
            f"({type(exc).__name__}: {exc}); pass an nn.Sequential of its layers."
        ) from exc
    nodes = list(gm.graph.nodes)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise ValueError(f"{name} takes {len(placeholders)} inputs; a chain of layers takes exactly one.")
    layers: list[nn.Module] = []
    prev = placeholders[0]
    for node in nodes:
        if node.op == "placeholder":
            continue
        if node.op == "output":
            if node.args[0] is not prev:
                raise ValueError(f"{name} does not return the output of its last layer; it is not a chain.")
            break
        inputs = node.all_input_nodes
        if inputs != [prev] or len(prev.users) != 1:
            raise ValueError(
                f"{name} is not a chain of layers: step {node.name!r} ({node.op} {node.target}) "
                f"does not simply take the previous step's output (residual or branching paths "
                "cannot be cut into sequential components)."
            )
        if node.op == "call_module":
            layers.append(model.get_submodule(str(node.target)))
        elif node.op in ("call_function", "call_method"):
            slots = [i for i, a in enumerate(node.args) if a is prev]
            if len(slots) != 1:
                raise ValueError(f"{name}: step {node.name!r} uses the running tensor in a way a chain cannot express.")
            args = tuple(None if i == slots[0] else a for i, a in enumerate(node.args))  # no graph refs kept
            layers.append(_FxOp(node.op, node.target, args, dict(node.kwargs), slots[0]))
        else:
            raise ValueError(f"{name}: step {node.name!r} ({node.op}) reads a tensor attribute; not a chain of layers.")
        prev = node
    return layers


def _is_main(layer: nn.Module) -> bool:
    """A block starts at a layer with weights that is not a normalisation or an activation."""
    if isinstance(layer, _NORMS) or isinstance(layer, _FxOp):
        return False
    if type(layer).__module__ == "torch.nn.modules.activation" and not isinstance(layer, nn.MultiheadAttention):
        return False
    return any(True for _ in layer.parameters())


def block_boundaries(layers: Sequence[nn.Module]) -> list[int]:
    """Indices ``k`` where a cut is allowed (a new block starts at layer ``k``), excluding 0."""
    mains = [k for k, layer in enumerate(layers) if _is_main(layer)]
    return mains[1:]


def _main_before(layers: Sequence[nn.Module], k: int) -> nn.Module:
    for j in range(k - 1, -1, -1):
        if _is_main(layers[j]):
            return layers[j]
    return layers[k - 1]


def _default_input(layers: Sequence[nn.Module], name: str) -> Tensor:
    for layer in layers:
        if isinstance(layer, nn.Linear):
            p = layer.weight
            return torch.zeros(2, layer.in_features, dtype=p.dtype, device=p.device)
        if _is_main(layer):
            break
    raise ValueError(
        f"Cannot infer the input shape of {name} (its first weighted layer is "
        f"{type(next((l for l in layers if _is_main(l)), layers[0])).__name__}, not Linear); "
        "pass example_input=<a small batch>."
    )


def _probe_shapes(layers: Sequence[nn.Module], x: Tensor) -> list[tuple[int, ...]]:
    """Feature shape (without the batch dimension) before layer 0 and after every layer.

    Runs in eval mode without gradients (BatchNorm statistics are not touched), then restores
    every module's train/eval flag.
    """
    modes = [(m, m.training) for layer in layers for m in layer.modules()]
    shapes = [tuple(x.shape[1:])]
    try:
        for layer in layers:
            layer.eval()
        with torch.no_grad():
            for layer in layers:
                x = layer(x)
                shapes.append(tuple(x.shape[1:]))
    finally:
        for m, was in modes:
            m.training = was
    return shapes


# --------------------------------------------------------------------------- the result


@dataclass
class Decomposition:
    """The output of :func:`deconstruct`.

    ``components[i][l]`` is model ``i``'s component at level ``l`` (0-based), an
    ``nn.Sequential`` holding the model's own layer objects (not copies), plus
    :class:`Adapter` layers when ``adapters=True`` needed them. ``cut_points[i]`` lists the
    layer indices where model ``i``'s components 2..L start (slicing convention:
    component ``l`` is ``layers[cuts[l-1]:cuts[l]]``).
    """

    components: list[list[nn.Sequential]]
    cut_points: list[list[int]]
    layers: list[list[nn.Module]]
    names: list[str]
    input_shapes: list[tuple[int, ...]]   # per level, shared by all models
    output_shapes: list[tuple[int, ...]]  # per level, shared by all models
    adapters: bool = False
    rule: str = "lcs"
    _spans: list[list[tuple[int, int]]] = field(default_factory=list, repr=False)

    @property
    def n_levels(self) -> int:
        return len(self.input_shapes)

    @property
    def n_models(self) -> int:
        return len(self.components)

    def compose(self, i: int) -> nn.Sequential:
        """Model ``i`` rebuilt from its components, in order."""
        return nn.Sequential(*self.components[i])

    def describe(self):
        """One row per (model, level): layers, layer range, input/output shape, parameters."""
        import pandas as pd

        rows = []
        for i, comps in enumerate(self.components):
            for lvl, comp in enumerate(comps):
                a, b = self._spans[i][lvl]
                n_params = sum(p.numel() for p in comp.parameters())
                rows.append({
                    "model": self.names[i],
                    "level": lvl + 1,
                    "layers": " -> ".join(_short(m) for m in comp),
                    "layer_range": f"{a}:{b}",
                    "input_shape": self.input_shapes[lvl],
                    "output_shape": self.output_shapes[lvl],
                    "parameters": n_params,
                    "adapter_parameters": sum(p.numel() for m in comp if isinstance(m, Adapter) for p in m.parameters()),
                })
        return pd.DataFrame(rows)


def _short(m: nn.Module) -> str:
    if isinstance(m, Adapter):
        return f"Adapter({m.in_features}->{m.out_features})"
    if isinstance(m, nn.Linear):
        return f"Linear({m.in_features}->{m.out_features})"
    if isinstance(m, nn.modules.batchnorm._NormBase):
        return f"{type(m).__name__}({m.num_features})"
    if isinstance(m, nn.Dropout):
        return f"Dropout({m.p})"
    if isinstance(m, _FxOp):
        return f"fx:{m.extra_repr()}"
    return type(m).__name__


# --------------------------------------------------------------------------- alignment


def _lcs_length(seqs: list[list[Signature]]) -> int:
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


def _place(depths: list[float], sigs: list[Signature] | None, seq: Sequence[Signature] | None,
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


def _choose(depths: list[list[float]], sigs: list[list[Signature]] | None, seq: Sequence[Signature] | None,
            K: int) -> tuple[tuple[float, float], list[tuple[int, ...]]] | None:
    """Place K cuts in every model: targets start evenly spread (l/L) and move to the per-level
    mean depth of the chosen cuts until nothing changes (alternating minimisation of the
    squared spread of depths at each level)."""
    L = K + 1
    even = [(j + 1) / L for j in range(K)]
    targets = list(even)
    chosen: list[tuple[int, ...]] | None = None
    for _ in range(10):
        placed = [_place(d, None if sigs is None else sigs[i], seq, targets) for i, d in enumerate(depths)]
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


def _candidate_sequences(seqs: list[list[Signature]], K: int) -> list[tuple[Signature, ...]]:
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


# --------------------------------------------------------------------------- main entry


def deconstruct(
    models: Sequence[nn.Module],
    n_levels: int | None = None,
    cut_points: Sequence[Sequence[int]] | None = None,
    adapters: bool = False,
    *,
    names: Sequence[str] | None = None,
    example_input: Tensor | None = None,
) -> Decomposition:
    """Algorithm 1: cut every model into the same number of components at common layers.

    Args:
        models: trained model bodies (``nn.Sequential`` or fx-traceable chains), e.g.
            ``[tm1.body, tm2.body]``; depth and width may differ.
        n_levels: number of levels (components per model). Default: the largest possible
            (1 + LCS of the boundary signatures). Cuts are chosen by the rule in the module
            docstring: same signature per level, similar relative depths across models, then
            an even spread, then the earliest.
        cut_points: overrides the rule: one list of layer indices per model, where components
            2..L start (``[[6, 12], [6, 12]]`` cuts two 18-layer bodies into thirds). Shapes
            must still agree per level.
        adapters: if the models cannot be aligned exactly, cut them at similar relative depths
            (block boundaries) and insert trainable :class:`Adapter` layers mapping each
            component's output to the level's common (largest) width, and back at the start
            of the next component. Off by default (the paper's method has none).
        names: model names for messages and :meth:`Decomposition.describe` (default
            ``model 0``, ``model 1``, ...).
        example_input: a small input batch, needed only when the first layer is not Linear.

    Returns:
        a :class:`Decomposition`. Composing a model's components in order gives exactly the
        model's output (same layer objects, same order).

    Raises:
        ValueError naming the first pair of models that cannot be aligned and why.
    """
    models = list(models)
    if not models:
        raise ValueError("deconstruct() needs at least one model; got an empty list.")
    names = list(names) if names is not None else [f"model {i}" for i in range(len(models))]
    if len(names) != len(models):
        raise ValueError(f"Got {len(names)} names for {len(models)} models.")
    if n_levels is not None and (not isinstance(n_levels, int) or n_levels < 1):
        raise ValueError(f"n_levels must be a positive integer or None, got {n_levels!r}.")
    layers = [model_layers(m, n) for m, n in zip(models, names)]
    shapes = []
    for ls, n in zip(layers, names):
        x = example_input if example_input is not None else _default_input(ls, n)
        shapes.append(_probe_shapes(ls, x))

    # The interfaces every decomposition needs: same input, same final output.
    for i in range(1, len(models)):
        if shapes[i][0] != shapes[0][0]:
            raise ValueError(
                f"{names[0]} and {names[i]} cannot be aligned: {names[0]} takes input of shape "
                f"{shapes[0][0]} but {names[i]} takes {shapes[i][0]}; level-1 components must "
                "accept the same input (build the models on the same features and embedding size)."
            )
    final_ok = all(s[-1] == shapes[0][-1] for s in shapes)

    if cut_points is not None:
        cuts = _check_cut_points(cut_points, layers, shapes, names, n_levels)
        return _build(layers, shapes, names, cuts, rule="cut_points")

    bounds = [block_boundaries(ls) for ls in layers]
    sigs = [[(type(_main_before(ls, k)).__name__, shapes[i][k]) for k in bounds[i]] for i, ls in enumerate(layers)]
    depths = [[k / len(ls) for k in bounds[i]] for i, ls in enumerate(layers)]

    error: str | None = None
    if not final_ok:
        j = next(j for j in range(1, len(models)) if shapes[j][-1] != shapes[0][-1])
        error = (f"{names[0]} and {names[j]} cannot be aligned: {names[0]} ends with output shape "
                 f"{shapes[0][-1]} but {names[j]} ends with {shapes[j][-1]}; the last component must end "
                 "at the end of each model, so the final shapes must agree")
    else:
        max_levels = 1 + _lcs_length(sigs)
        L = n_levels if n_levels is not None else max_levels
        if L > max_levels:
            error = _too_many_levels(L, max_levels, sigs, names)
        else:
            K = L - 1
            best = None
            for seq in _candidate_sequences(sigs, K):
                res = _choose(depths, sigs, seq, K)
                if res is not None and (best is None or (res[0], res[1]) < (best[0], best[1])):
                    best = res
            assert best is not None
            cuts = [[bounds[i][q] for q in best[1][i]] for i in range(len(models))]
            return _build(layers, shapes, names, cuts, rule="lcs")
    if not adapters:
        raise ValueError(error + "; or pass adapters=True to insert trainable adapters.")
    return _build_with_adapters(layers, shapes, names, bounds, depths, n_levels)


def _too_many_levels(L: int, max_levels: int, sigs: list[list[Signature]], names: list[str]) -> str:
    for i, j in itertools.combinations(range(len(sigs)), 2):
        pair_max = 1 + _lcs_length([sigs[i], sigs[j]])
        if pair_max < L:
            common = sorted(set(sigs[i]) & set(sigs[j]))
            return (f"{names[i]} and {names[j]} cannot be aligned at {L} levels: they share only "
                    f"{pair_max - 1} common cut point(s) in order (common block signatures: "
                    f"{[_fmt_sig(s) for s in common] or 'none'}), so at most {pair_max} levels")
    return (f"These models cannot be aligned at {L} levels: jointly they share only {max_levels - 1} "
            f"common cut point(s) in order, so at most {max_levels} levels; pass n_levels<={max_levels}")


def _check_cut_points(cut_points, layers, shapes, names, n_levels) -> list[list[int]]:
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


def _build(layers, shapes, names, cuts, rule: str) -> Decomposition:
    comps, spans = [], []
    for ls, c in zip(layers, cuts):
        edges = [0] + list(c) + [len(ls)]
        spans.append([(a, b) for a, b in zip(edges, edges[1:])])
        comps.append([nn.Sequential(*ls[a:b]) for a, b in zip(edges, edges[1:])])
    edges0 = [0] + list(cuts[0]) + [len(layers[0])]
    ins = [shapes[0][a] for a in edges0[:-1]]
    outs = [shapes[0][b] for b in edges0[1:]]
    return Decomposition(comps, [list(c) for c in cuts], layers, names, ins, outs, False, rule, spans)


def _build_with_adapters(layers, shapes, names, bounds, depths, n_levels) -> Decomposition:
    n_blocks = [len(b) + 1 for b in bounds]
    L = n_levels if n_levels is not None else min(n_blocks)
    K = L - 1
    if K > min(len(b) for b in bounds):
        i = min(range(len(bounds)), key=lambda i: len(bounds[i]))
        raise ValueError(f"{names[i]} has only {n_blocks[i]} block(s), so it cannot be cut into {L} levels.")
    res = _choose(depths, None, None, K)
    assert res is not None
    cuts = [[bounds[i][q] for q in res[1][i]] for i in range(len(layers))]
    spans, comps = [], []
    widths = []  # per model, per level: output shape
    for i, (ls, c) in enumerate(zip(layers, cuts)):
        edges = [0] + c + [len(ls)]
        spans.append(list(zip(edges, edges[1:])))
        widths.append([shapes[i][b] for b in edges[1:]])
    for i, w in enumerate(widths):
        for lvl, s in enumerate(w):
            if len(s) != 1:
                raise ValueError(f"adapters=True needs 1-D features at the cuts; {names[i]} outputs {s} at level {lvl + 1}.")
    common = [max(w[lvl][0] for w in widths) for lvl in range(L)]
    for i, ls in enumerate(layers):
        row = []
        for lvl, (a, b) in enumerate(spans[i]):
            parts: list[nn.Module] = []
            in_w = shapes[i][a][0]
            if lvl > 0 and in_w != common[lvl - 1]:
                parts.append(Adapter(common[lvl - 1], in_w))
            parts.extend(ls[a:b])
            if widths[i][lvl][0] != common[lvl]:
                parts.append(Adapter(widths[i][lvl][0], common[lvl]))
            row.append(nn.Sequential(*parts))
        comps.append(row)
    ins = [shapes[0][0]] + [(w,) for w in common[:-1]]
    outs = [(w,) for w in common]
    return Decomposition(comps, cuts, layers, names, ins, outs, True, "adapters", spans)
