"""Input layer shared by every model: sparse embeddings concatenated with dense features.

The fused (feature-major) models read the embedding through :meth:`FeatureEmbedding.feature_major`:
the lookup and the first affine map of the model are one autograd Function
(:class:`EmbeddedAffine`), whose backward writes the table gradient without copying the input
gradient (same values and gradients as the lookup followed by ``addmm``; bit for bit in float32 where
the GEMM kernel sums the same blocks in the same order, as MKL's AVX2 and AVX-512 paths do).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .data.types import Batch, FeatureSpec

__all__ = ["FeatureEmbedding", "EmbeddedBatch", "EmbeddedAffine"]


class FeatureEmbedding(nn.Module):
    """One embedding per sparse feature, concatenated with the dense features.

    All sparse features share one table with per-feature offsets, so the lookup is a
    single ``embedding`` call instead of one per feature (33 on Census).
    Output width: ``n_sparse * dim + n_dense`` (:attr:`out_features`).
    """

    def __init__(self, spec: FeatureSpec, dim: int = 4) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"Embedding dimension must be >= 1, got {dim}.")
        if any(f.cardinality < 1 for f in spec.sparse):
            bad = [f.name for f in spec.sparse if f.cardinality < 1]
            raise ValueError(f"Sparse features {bad} have cardinality < 1.")
        self.spec = spec
        self.dim = dim
        cards = [f.cardinality for f in spec.sparse]
        offsets = torch.tensor([0] + cards[:-1], dtype=torch.long).cumsum(0) if cards else torch.zeros(0, dtype=torch.long)
        self.register_buffer("offsets", offsets, persistent=False)
        self.register_buffer("cardinalities", torch.tensor(cards, dtype=torch.long), persistent=False)
        self.table = nn.Embedding(max(sum(cards), 1), dim)
        nn.init.normal_(self.table.weight, std=0.01)
        self.out_features = spec.n_sparse * dim + spec.n_dense

    def forward(self, batch: Batch) -> Tensor:
        self._check(batch)
        sparse, dense = batch.sparse, batch.dense
        parts = []
        if self.spec.n_sparse:
            # index_select's backward is ~3x cheaper on CPU than nn.Embedding's (same values, same grads).
            idx = (sparse + self.offsets).flatten()
            parts.append(self.table.weight.index_select(0, idx).view(sparse.shape[0], -1))
        if self.spec.n_dense:
            parts.append(dense)
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

    def feature_major(self, batch: Batch) -> "EmbeddedBatch | Tensor":
        """``self(batch).t()`` (D, B), deferred: an :class:`EmbeddedBatch` that a first layer maps with
        :meth:`EmbeddedBatch.affine` (lookup and matmul fused); a plain tensor where that cannot help
        (no sparse features, inputs that need gradients)."""
        self._check(batch)
        if not self.spec.n_sparse or batch.dense.requires_grad:
            return self(batch).t()
        return EmbeddedBatch(self, batch)

    def _check(self, batch: Batch) -> None:
        sparse, dense = batch.sparse, batch.dense
        if sparse.shape[1] != self.spec.n_sparse or dense.shape[1] != self.spec.n_dense:
            raise ValueError(
                f"Batch has {sparse.shape[1]} sparse and {dense.shape[1]} dense columns but the model "
                f"was built for {self.spec.n_sparse} sparse and {self.spec.n_dense} dense; "
                "build the model from this dataset's spec."
            )

    def check_indices(self, sparse: Tensor) -> None:
        """Raise a clear error if any index is outside its feature's range (slow; for input checks)."""
        bad = (sparse < 0) | (sparse >= self.cardinalities)
        if bool(bad.any()):
            col = int(bad.any(0).nonzero()[0])
            f = self.spec.sparse[col]
            raise ValueError(
                f"Sparse feature {f.name!r} has indices outside [0, {f.cardinality}); "
                "the data was encoded with a different spec than the model's."
            )


class EmbeddedBatch:
    """A batch not yet embedded, standing for the feature-major input ``embedding(batch).t()`` (D, B).

    ``shape`` and ``dim()`` answer as that tensor would; :meth:`affine` maps it through the first
    layer without building it in autograd; :meth:`tensor` builds it (for any other use).
    """

    def __init__(self, embedding: FeatureEmbedding, batch: Batch) -> None:
        self.embedding, self.batch = embedding, batch
        self.shape = torch.Size((embedding.out_features, batch.sparse.shape[0]))

    def dim(self) -> int:
        return 2

    def tensor(self) -> Tensor:
        return self.embedding(self.batch).t()

    def affine(self, W1: Tensor, b1: Tensor | None, W0: Tensor | None = None, b0: Tensor | None = None) -> Tensor:
        """``[W0; W1] x + [b0; b1]`` (R, B) for x = :meth:`tensor`; ``W0``, ``b0`` (optional): constant
        rows (no gradient). Biases are (rows, 1) or None (then ``mm``, as without a bias)."""
        emb = self.embedding
        idx = self.batch.sparse + emb.offsets
        return EmbeddedAffine.apply(emb.table.weight, idx, self.batch.dense, W0, b0, W1, b1)


def _stack(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    return b if a is None else torch.cat([a, b])


class EmbeddedAffine(torch.autograd.Function):
    """``W x^T + b`` (R, B) for ``x = [table[idx] (B, S*d) | dense]``, the output of
    :meth:`FeatureEmbedding.forward`, and ``W = [W0; W1]``, ``b = [b0; b1]`` (W0, b0 constant).

    Forward: the same ops as the lookup, concatenation and ``addmm`` (same values). Backward: the
    gradients autograd would give, computed by the same kernels in the same summation order, so
    equal bit for bit in float32 on MKL's AVX2/AVX-512 paths (``tests/method/test_fast_paths.py``; with
    constant rows W0, a kernel that blocks by GEMM shape may round W1's gradient in another order, and
    in float64 the last bit may differ):
    ``gW1 = g1 x``, ``gb1 = g1`` summed over the
    batch, and the table gradient, the ``index_add`` of the input gradient ``g^T W`` in each table
    row's batch order. But only the embedded columns of ``g^T W`` are computed, contiguous, so the
    ``index_add`` reads them in place (no copy of a column slice), and it runs over the transposed
    table gradient, ~1.6x faster on CPU. Weight gradients only for the trainable rows W1, b1.
    """

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")
    def forward(ctx, table: Tensor, idx: Tensor, dense: Tensor, W0, b0, W1: Tensor, b1) -> Tensor:
        B = idx.shape[0]
        e = table.index_select(0, idx.flatten()).view(B, -1)
        x = torch.cat([e, dense], dim=1) if dense.shape[1] else e
        W, b = _stack(W0, W1), _stack(b0, b1)
        ctx.save_for_backward(idx, x, W)
        ctx.n0, (ctx.n_rows, ctx.dim), ctx.has_bias = 0 if W0 is None else W0.shape[0], table.shape, b is not None
        return torch.mm(W, x.t()) if b is None else torch.addmm(b, W, x.t())

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, gy: Tensor):
        idx, x, W = ctx.saved_tensors
        B, S = idx.shape
        g_table = gW1 = gb1 = None
        if ctx.needs_input_grad[0]:
            d = ctx.dim
            gx = torch.mm(gy.t(), W[:, : S * d])  # the embedded columns only, (B, S*d) contiguous
            gx = gx.to(x.dtype)  # under CUDA autocast: summed in the table's precision, as autograd would
            g_table = torch.zeros(ctx.n_rows, d, dtype=gx.dtype, device=gx.device)
            g_table.t().index_add_(1, idx.flatten(), gx.view(B * S, d).t())  # per table row, in batch order
        g1 = gy[ctx.n0:]
        if ctx.needs_input_grad[5]:
            gW1 = torch.mm(g1, x)
        if ctx.needs_input_grad[6] and ctx.has_bias:
            gb1 = g1.sum(1, keepdim=True)
        return g_table, None, None, None, None, gW1, gb1
