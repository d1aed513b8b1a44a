"""Products of a sparse data matrix with dense factors, x @ W and x^T @ W, differentiable in W.

Every sparse product in the library goes through here: the right-hand sides of the first NNLS layer, the
backward of those, and the sparse reconstruction losses. Each product runs on CSR copies of x and of x^T with
32-bit indices where they fit (MKL / cuSPARSE kernels; 4x to 30x faster than torch's COO product here), built
once per data tensor and kept while that tensor is in use:

* the copy of x shares the column indices and values of a coalesced COO x; the copy of x^T costs one 32-bit
  index and one value per nonzero, less than half the COO tensor (two 64-bit indices and a value per nonzero);
* the backward of ``x @ W`` is ``x^T @ G`` on the second copy, so x is never transposed or coalesced per step.

The cache holds the pairs of the last few sparse tensors seen (by identity, alive, unmodified), which covers
full-batch training (one data tensor, every epoch) and minibatches (a new tensor each step).
"""

from __future__ import annotations

import warnings
import weakref
from collections import OrderedDict
from typing import NamedTuple

import torch

__all__ = ["CSRPair", "csr_pair", "all_finite", "rows", "matmul", "matmul_t", "clear_cache"]

_CACHE_SIZE = 4
_INT32_MAX = 2**31 - 1


class CSRPair(NamedTuple):
    """x as CSR (rows, cols) and x^T as CSR (cols, rows), same dtype and device as x."""

    x: torch.Tensor
    xt: torch.Tensor


_cache: OrderedDict[int, list] = OrderedDict()


def _state(x: torch.Tensor) -> tuple:
    """What must not change for a cached pair to stay valid (in-place edits bump the version)."""
    return (x.layout, tuple(x.shape), x.dtype, x.device, x._version)


def _csr(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, shape, *, narrow: bool) -> torch.Tensor:
    """A CSR tensor on these arrays; ``narrow``: with 32-bit indices where they fit (a copy unless they are)."""
    if narrow and values.numel() <= _INT32_MAX and max(shape) <= _INT32_MAX:
        crow, col = crow.to(torch.int32), col.to(torch.int32)
    else:
        crow, col = crow.to(torch.int64), col.to(torch.int64)
    with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


def _build(x: torch.Tensor) -> CSRPair:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if x.layout == torch.sparse_coo:
            x = x.coalesce()
        # x itself: a coalesced COO converts to CSR on its own column indices and values (no copy)
        csr = x if x.layout == torch.sparse_csr else x.to_sparse_csr()
        crow, col, values = csr.crow_indices(), csr.col_indices(), csr.values()
        if x.device.type == "cpu":  # scipy's counting-sort transpose: ~10x faster than a sort on the CPU
            import scipy.sparse

            rows = scipy.sparse.csr_matrix((values.numpy(), col.numpy(), crow.numpy()), shape=tuple(x.shape))
            t = rows.T.tocsr()
            t.sort_indices()
            xt = _csr(torch.from_numpy(t.indptr), torch.from_numpy(t.indices), torch.from_numpy(t.data), t.shape,
                      narrow=True)
        else:  # a device sort, supported everywhere
            t = csr.to_sparse_coo().t().coalesce().to_sparse_csr()
            xt = _csr(t.crow_indices(), t.col_indices(), t.values(), tuple(t.shape), narrow=True)
    return CSRPair(_csr(crow, col, values, tuple(x.shape), narrow=False), xt)


def _entry(x: torch.Tensor) -> list:
    """[weakref to x, state of x, CSRPair, finite (None until asked)], from the cache or built."""
    if x.layout not in (torch.sparse_coo, torch.sparse_csr, torch.sparse_csc) or x.dim() != 2:
        raise ValueError(f"csr_pair: x must be a 2-D sparse tensor, got layout {x.layout}, shape {tuple(x.shape)}")
    key = id(x)
    entry = _cache.get(key)
    if entry is not None and entry[0]() is x and entry[1] == _state(x):
        _cache.move_to_end(key)
        return entry
    entry = [weakref.ref(x, lambda _, key=key: _cache.pop(key, None)), _state(x), _build(x.detach()), None]
    _cache[key] = entry
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return entry


def csr_pair(x: torch.Tensor) -> CSRPair:
    """The CSR copies of a 2-D sparse x (COO, CSR or CSC) and of x^T, from the cache when x was seen unchanged."""
    return _entry(x)[2]


def all_finite(x: torch.Tensor) -> bool:
    """Whether every stored value of the sparse x is finite (checked once per cached x)."""
    entry = _entry(x)
    if entry[3] is None:
        entry[3] = bool(torch.isfinite(entry[2].x.values()).all())
    return entry[3]


def rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The rows ``idx`` (1-D long, in that order, repeats allowed) of a 2-D sparse x: a coalesced COO tensor of
    shape (len(idx), x.shape[1]). Cut from the cached CSR copy in O(nnz of those rows), where ``x.index_select``
    on a COO tensor costs O(nnz of x) per call (a quarter of a minibatch epoch on 10^6 documents)."""
    csr = csr_pair(x).x
    crow, col, values = csr.crow_indices(), csr.col_indices(), csr.values()
    idx = idx.to(device=crow.device, dtype=torch.int64)
    if idx.dim() != 1 or (idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= x.shape[0])):
        raise IndexError(f"rows: idx must be 1-D with entries in [0, {x.shape[0]}), got shape {tuple(idx.shape)}")
    starts = crow[idx]
    lengths = crow[idx + 1] - starts
    out_rows = torch.repeat_interleave(torch.arange(idx.numel(), device=crow.device), lengths)
    # position of each kept nonzero in x's arrays: its row's start plus its rank within the row
    first = torch.cumsum(lengths, 0) - lengths
    take = starts[out_rows] + torch.arange(out_rows.numel(), device=crow.device) - first[out_rows]
    indices = torch.stack([out_rows, col.index_select(0, take).to(torch.int64)])
    return torch.sparse_coo_tensor(indices, values.index_select(0, take), (idx.numel(), x.shape[1]),
                                   is_coalesced=True)


def clear_cache() -> None:
    """Drop every cached CSR pair (they are also dropped when their tensor dies)."""
    _cache.clear()


class _Product(torch.autograd.Function):
    """a @ W with dL/dW = b @ G, for (a, b) = (x, x^T) or (x^T, x) as CSR."""

    @staticmethod
    def forward(ctx, W, a, b):
        ctx.save_for_backward(b)
        return a @ W

    @staticmethod
    def backward(ctx, grad):
        (b,) = ctx.saved_tensors
        # one contiguous copy of the gradient: the sparse kernel would otherwise copy a transposed one twice
        if not ctx.needs_input_grad[0]:
            return None, None, None
        with _exact(b):  # in b's dtype: under torch.autocast the gradient may come back low precision
            return b @ grad.to(b.dtype).contiguous(), None, None


def matmul(x: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """x @ W for a sparse x (M, N) and a dense W (N, k) -> dense (M, k); differentiable in W, not in x. A dense x
    is plain ``x @ W``."""
    if x.layout == torch.strided:
        return x @ W
    pair, W = csr_pair(x), _in_dtype(W, x)
    with _exact(x):
        return _Product.apply(W, pair.x, pair.xt)


def matmul_t(x: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """x^T @ W for a sparse x (M, N) and a dense W (M, k) -> dense (N, k); differentiable in W, not in x. A dense x
    is plain ``x.mT @ W``."""
    if x.layout == torch.strided:
        return x.mT @ W
    pair, W = csr_pair(x), _in_dtype(W, x)
    with _exact(x):
        return _Product.apply(W, pair.xt, pair.x)


def squared_norm(x: torch.Tensor) -> torch.Tensor:
    """||x||_F^2 of a dense or sparse x (a sparse one from its stored values)."""
    values = csr_pair(x).x.values() if x.layout != torch.strided else x
    return (values * values).sum()


def _exact(x: torch.Tensor):
    """The products in x's dtype even under torch.autocast, as the exact NNLS solve they feed is (the sparse
    kernels have no bfloat16, and a bfloat16 product would fail later with a message about an internal tensor)."""
    return torch.autocast(x.device.type, enabled=False)


def _in_dtype(W: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Under torch.autocast, a factor that autocast made low precision goes back to x's dtype (differentiably)."""
    return W.to(x.dtype) if W.dtype != x.dtype and torch.is_autocast_enabled(x.device.type) else W
