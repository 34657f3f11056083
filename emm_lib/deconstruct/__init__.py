"""Algorithm 1: deconstruct trained models into the same number of hierarchical components.

Paper Sec. III-A. The package has two halves: :mod:`~emm_lib.deconstruct.trace` reads every
model as a chain of layers and blocks, :mod:`~emm_lib.deconstruct.cuts` searches where to cut;
:mod:`~emm_lib.deconstruct.decomposition` holds the result. Every model is read as a chain of layers (an ``nn.Sequential``, flattened,
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
3. For every sequence of signatures the models share (all are tried), place the cuts by an
   alternating minimisation that seeks cuts sitting at similar relative depths across models
   at each level (small sum of squared deviations from the level's mean depth; depth = layers
   before the cut / all layers): start from an even spread (level ``l`` of ``L`` at depth
   ``l/L``), place each model's cuts nearest the targets, move the targets to the mean depths,
   repeat. This finds a *local* optimum of the spread, not necessarily the global one. Of the
   placements, take the smallest spread, then the closest to an even spread, then the earliest.

On the authors' Census setting (TM-1 body ``[8,8]x3``, TM-2 body ``[16,8]x3``), the common
signature is ``("Linear", (8,))``; TM-2 has it after its blocks 2 and 4 only, so the LCS has
length 2 and both models are cut into their three MLP blocks (at equal relative depths: spread
0, so there the local optimum is the global one).

Beyond the paper, ``adapters=True`` lifts the "identical layer structures" assumption the
authors name as future work: models are cut at similar relative depths and small trainable
linear :class:`Adapter` layers map each component's output to a common width.
"""
from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from .cuts import check_cut_points, search_cuts
from .decomposition import Adapter, Decomposition, build, build_with_adapters
from .trace import block_boundaries, block_signatures, model_layers, trace_models

__all__ = ["deconstruct", "Decomposition", "Adapter", "model_layers", "block_boundaries"]


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
            docstring: same signature per level, similar relative depths across models (a
            local optimum of an alternating minimisation), then an even spread, then the earliest.
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
    layers, shapes = trace_models(models, names, example_input)
    if cut_points is not None:
        cuts = check_cut_points(cut_points, layers, shapes, names, n_levels)
        return build(layers, shapes, names, cuts, rule="cut_points")
    bounds, sigs, depths = block_signatures(layers, shapes)
    cuts, error = search_cuts(shapes, names, bounds, sigs, depths, n_levels)
    if cuts is not None:
        return build(layers, shapes, names, cuts, rule="lcs")
    if not adapters:
        raise ValueError(error + "; or pass adapters=True to insert trainable adapters.")
    return build_with_adapters(layers, shapes, names, bounds, depths, n_levels)
