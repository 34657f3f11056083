"""The result of Algorithm 1: :class:`Decomposition`, and the trainable :class:`Adapter` layers
of ``adapters=True`` (beyond the paper)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .cuts import choose
from .trace import _FxOp

__all__ = ["Adapter", "Decomposition", "short_name", "build", "build_with_adapters"]


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
                    "layers": " -> ".join(short_name(m) for m in comp),
                    "layer_range": f"{a}:{b}",
                    "input_shape": self.input_shapes[lvl],
                    "output_shape": self.output_shapes[lvl],
                    "parameters": n_params,
                    "adapter_parameters": sum(p.numel() for m in comp if isinstance(m, Adapter) for p in m.parameters()),
                })
        return pd.DataFrame(rows)


def short_name(m: nn.Module) -> str:
    """A layer in a few characters, e.g. ``Linear(39->8)``."""
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


def build(layers, shapes, names, cuts, rule: str) -> Decomposition:
    comps, spans = [], []
    for ls, c in zip(layers, cuts):
        edges = [0] + list(c) + [len(ls)]
        spans.append([(a, b) for a, b in zip(edges, edges[1:])])
        comps.append([nn.Sequential(*ls[a:b]) for a, b in zip(edges, edges[1:])])
    edges0 = [0] + list(cuts[0]) + [len(layers[0])]
    ins = [shapes[0][a] for a in edges0[:-1]]
    outs = [shapes[0][b] for b in edges0[1:]]
    return Decomposition(comps, [list(c) for c in cuts], layers, names, ins, outs, False, rule, spans)


def build_with_adapters(layers, shapes, names, bounds, depths, n_levels) -> Decomposition:
    n_blocks = [len(b) + 1 for b in bounds]
    L = n_levels if n_levels is not None else min(n_blocks)
    K = L - 1
    if K > min(len(b) for b in bounds):
        i = min(range(len(bounds)), key=lambda i: len(bounds[i]))
        raise ValueError(f"{names[i]} has only {n_blocks[i]} block(s), so it cannot be cut into {L} levels.")
    res = choose(depths, None, None, K)
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
