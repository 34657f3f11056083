"""Reading a trained model as a chain of layers, grouped into blocks (Algorithm 1's input).

A model is an ``nn.Sequential`` (nested ones flattened) or a module ``torch.fx`` traces into a
chain: each step takes only the previous step's output. A *block* starts at a layer with its own
weights (Linear, Conv, ...) and takes along the normalisation, activation and dropout layers after
it, so a cut never falls between a Linear and its BatchNorm. :func:`probe_shapes` runs a small
batch through the chain (eval mode, no gradients) to learn the feature shape at every boundary.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

__all__ = ["model_layers", "block_boundaries", "main_before", "default_input", "probe_shapes", "trace_models",
           "block_signatures", "check_supported", "SUPPORTED"]

_NORMS: tuple[type, ...] = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
if hasattr(nn, "RMSNorm"):
    _NORMS = _NORMS + (nn.RMSNorm,)



#: What a chain may hold, for messages: layers that take one tensor and return one tensor.
SUPPORTED = ("layers that each take one tensor and return one tensor, with at least one weighted layer: Linear "
             "(or Conv), normalisations (BatchNorm1d, LayerNorm), activations (ReLU, GELU, ...), Dropout")
#: Layers that return tuples or take several inputs: no chain of single tensors runs through them.
_UNSUPPORTED: tuple[type, ...] = (nn.RNNBase, nn.MultiheadAttention, nn.Transformer, nn.TransformerEncoder,
                                  nn.TransformerDecoder, nn.Bilinear)


def _kinds(layers: Sequence[nn.Module]) -> str:
    names = [type(layer).__name__ for layer in layers]
    return ", ".join(names[:8]) + (f", ... ({len(names)} layers)" if len(names) > 8 else "")


def check_supported(layers: Sequence[nn.Module], name: str) -> None:
    """A ValueError naming what deconstruct supports and what ``name`` holds instead."""
    if not layers:
        raise ValueError(f"{name} has no layers (e.g. nn.Identity); deconstruct needs {SUPPORTED}.")
    bad = [(k, layer) for k, layer in enumerate(layers) if isinstance(layer, _UNSUPPORTED)]
    if bad:
        k, layer = bad[0]
        raise ValueError(f"{name}: layer {k} is {type(layer).__name__}, which deconstruct cannot cut (it returns "
                         f"a tuple or takes several inputs); deconstruct needs {SUPPORTED}. Found: {_kinds(layers)}.")
    if not any(_is_main(layer) for layer in layers):
        raise ValueError(f"{name} has no weighted layer to cut at (found: {_kinds(layers)}); deconstruct needs "
                         f"{SUPPORTED}.")


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


def main_before(layers: Sequence[nn.Module], k: int) -> nn.Module:
    for j in range(k - 1, -1, -1):
        if _is_main(layers[j]):
            return layers[j]
    return layers[k - 1]


def default_input(layers: Sequence[nn.Module], name: str) -> Tensor:
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


def probe_shapes(layers: Sequence[nn.Module], x: Tensor, name: str = "model") -> list[tuple[int, ...]]:
    """Feature shape (without the batch dimension) before layer 0 and after every layer.

    Runs in eval mode without gradients (BatchNorm statistics are not touched), then restores
    every module's train/eval flag. A layer that fails on the running tensor, or returns anything
    but one tensor, is a ValueError naming it.
    """
    modes = [(m, m.training) for layer in layers for m in layer.modules()]
    shapes = [tuple(x.shape[1:])]
    try:
        for layer in layers:
            layer.eval()
        with torch.no_grad():
            for k, layer in enumerate(layers):
                x = _step(layer, x, k, name, layers)
                shapes.append(tuple(x.shape[1:]))
    finally:
        for m, was in modes:
            m.training = was
    return shapes


def _step(layer: nn.Module, x: Tensor, k: int, name: str, layers: Sequence[nn.Module]) -> Tensor:
    try:
        out = layer(x)
    except Exception as exc:  # noqa: BLE001 - any failure of a layer on the running tensor is reported alike
        what = "the output of the layer before it" if k else "the input (example_input or a default batch)"
        raise ValueError(f"{name}: layer {k} ({type(layer).__name__}) fails on {what}, "
                         f"shape {tuple(x.shape)} ({type(exc).__name__}: {str(exc)[:160]}); deconstruct needs "
                         f"{SUPPORTED}. Found: {_kinds(layers)}.") from None
    if not isinstance(out, Tensor):
        raise ValueError(f"{name}: layer {k} ({type(layer).__name__}) returns a {type(out).__name__}, not a tensor; "
                         f"deconstruct needs {SUPPORTED}. Found: {_kinds(layers)}.")
    return out


def trace_models(models: Sequence[nn.Module], names: Sequence[str], example_input: Tensor | None = None
                 ) -> tuple[list[list[nn.Module]], list[list[tuple[int, ...]]]]:
    """Every model's layers and the feature shapes at its layer boundaries; all must take the same input."""
    layers = [model_layers(m, n) for m, n in zip(models, names)]
    for ls, n in zip(layers, names):
        check_supported(ls, n)
    shapes = []
    for ls, n in zip(layers, names):
        x = example_input if example_input is not None else default_input(ls, n)
        shapes.append(probe_shapes(ls, x, n))
    for i in range(1, len(models)):
        if shapes[i][0] != shapes[0][0]:
            raise ValueError(
                f"{names[0]} and {names[i]} cannot be aligned: {names[0]} takes input of shape "
                f"{shapes[0][0]} but {names[i]} takes {shapes[i][0]}; level-1 components must "
                "accept the same input (build the models on the same features and embedding size)."
            )
    return layers, shapes


def block_signatures(layers: Sequence[Sequence[nn.Module]], shapes: Sequence[Sequence[tuple[int, ...]]]):
    """Per model: the block boundaries, their signatures ``(main layer type, shape)`` and their
    relative depths (layers before the boundary / all layers)."""
    bounds = [block_boundaries(ls) for ls in layers]
    sigs = [[(type(main_before(ls, k)).__name__, shapes[i][k]) for k in bounds[i]] for i, ls in enumerate(layers)]
    depths = [[k / len(ls) for k in bounds[i]] for i, ls in enumerate(layers)]
    return bounds, sigs, depths
