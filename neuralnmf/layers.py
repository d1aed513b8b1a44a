"""NNLSLayer: the nonnegative least-squares codes of samples against a learned nonnegative dictionary."""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_float, check_rank, check_tensor
from .initialization import LAYER_INIT_METHODS, nndsvd_factors, uniform
from .ops import nnls, nnls_sparse_rows, transforms_active

__all__ = ["NNLSLayer", "SupportCache"]


class SupportCache:
    """Remembers the support of the last solution and the identity of the data it was computed for.

    A warm start never changes the answer of :func:`neuralnmf.nnls`, only the work; the cache offers the
    previous support when the same data tensor (same storage, shape, strides and version) comes back, as it
    does across the epochs of full-batch training.
    """

    def __init__(self):
        self.key = None
        self.supports: list[torch.Tensor] | None = None

    @staticmethod
    def key_of(x: torch.Tensor):
        if x.layout == torch.strided:
            return (x.data_ptr(), tuple(x.shape), tuple(x.stride()), x._version, x.device, x.dtype)
        values = x._values() if x.layout == torch.sparse_coo else x.values()
        return (x.layout, values.data_ptr(), values.numel(), tuple(x.shape), x._version, x.device, x.dtype)

    def lookup(self, x: torch.Tensor) -> list[torch.Tensor] | None:
        if self.key is None or transforms_active():
            return None
        return self.supports if self.key == self.key_of(x) else None

    def store(self, x: torch.Tensor, supports: list[torch.Tensor]) -> None:
        # Under torch.func transforms (vmap over stacked models, grad) x may have no storage and the supports are
        # the transform's wrapped tensors, which must not outlive it: nothing is cached there.
        if not transforms_active():
            self.key, self.supports = self.key_of(x), supports

    def clear(self) -> None:
        self.key, self.supports = None, None


class NNLSLayer(nn.Module):
    """Nonnegative codes of the inputs: ``forward(x)[j] = argmin_{s >= 0} ||x[j] - A s||_2``.

    Batch first like ``nn.Linear``: (*, in_features) -> (*, rank); a sparse (COO/CSR) input (M, in_features) is
    solved through sparse-dense products without being densified. The dictionary ``A`` (in_features, rank)
    holds one topic per column, as in the papers, and is declared nonnegative (see
    :class:`neuralnmf.NonnegativeProjection`). Codes are exact and differentiable in ``x`` and ``A``.

    Args:
        in_features: size of each input sample.
        rank: number of topics (columns of A).
        init: "uniform" (U[0, 1), the papers' choice and the default of a lone layer, which has no data to start
            from), "nndsvd"/"nndsvda"/"nndsvdar" (need ``data``), or a tensor (in_features, rank) >= 0 that is
            copied. :class:`neuralnmf.NeuralNMF` starts its layers from data by default.
        data: (samples, in_features) data for the NNDSVD initializations, dense or sparse (never densified).
        generator: torch.Generator for the random initializations.
        warm_start: reuse the previous support when called again on the same data tensor.
    """

    _nonnegative = ("A",)

    def __init__(self, in_features: int, rank: int, *, init="uniform", data=None, generator=None,
                 warm_start: bool = True, dtype=None, device=None):
        super().__init__()
        self.in_features = check_rank(in_features, "NNLSLayer", "in_features")
        self.rank = check_rank(rank, "NNLSLayer")
        self.warm_start = warm_start
        self.A = nn.Parameter(torch.empty(in_features, rank, dtype=dtype, device=device))
        self._cache = SupportCache()
        self.register_buffer("parents", None)  # (in_features,) long: A's one nonzero per row, for a tree level
        self.reset_parameters(init, data=data, generator=generator)

    @torch.no_grad()
    def reset_parameters(self, init="uniform", *, data=None, generator=None) -> None:
        """Re-initialize A (and drop a tree, :meth:`keep_tree_`); see the class docstring for the options."""
        self._cache.clear()
        self.parents = None
        if isinstance(init, torch.Tensor):
            if init.shape != self.A.shape:
                raise ValueError(f"NNLSLayer: init tensor must have shape {tuple(self.A.shape)}, got {tuple(init.shape)}")
            if not bool(torch.isfinite(init).all()) or bool((init < 0).any()):
                raise ValueError("NNLSLayer: init tensor must be finite and nonnegative")
            self.A.copy_(init)
        elif init == "uniform":
            self.A.copy_(uniform(*self.A.shape, generator=generator, dtype=self.A.dtype, device=self.A.device))
        elif init in LAYER_INIT_METHODS:
            if data is None:
                raise ValueError(f"NNLSLayer: init={init!r} needs data=(samples, in_features)")
            data = torch.as_tensor(data)
            if data.dim() != 2 or data.shape[-1] != self.in_features:
                raise ValueError(f"NNLSLayer: data must have shape (samples, {self.in_features}), got {tuple(data.shape)}")
            W, _ = nndsvd_factors(data.detach().to(self.A.dtype), self.rank, init, generator)  # sparse stays sparse
            self.A.copy_(W.to(self.A.device))
        else:
            raise ValueError(f"NNLSLayer: init must be one of {LAYER_INIT_METHODS} or a tensor, got {init!r}")

    def forward(self, x: torch.Tensor, *, init: torch.Tensor | None = None) -> torch.Tensor:
        """x: (*, in_features) -> codes (*, rank). ``init``: a previous code tensor (or its support)."""
        check_float(check_tensor(x, "NNLSLayer", "x"), "NNLSLayer", "x")
        if x.shape[-1:] != (self.in_features,):
            raise ValueError(f"NNLSLayer: input must have shape (*, {self.in_features}), got {tuple(x.shape)}")
        if x.dtype != self.A.dtype:
            raise TypeError(f"NNLSLayer: input has dtype {x.dtype} but the layer's dictionary is {self.A.dtype}; "
                            f"convert the input (x.to({self.A.dtype})) or the model (model.to({x.dtype}))")
        flat = x.dim() == 2  # (M, in_features): no reshapes, which would add autograd nodes for nothing
        sparse = x.layout != torch.strided
        if sparse and not flat:
            raise ValueError(f"NNLSLayer: sparse input must be 2-D (samples, {self.in_features}), got {tuple(x.shape)}")
        if init is None and self.warm_start:
            cached = self._cache.lookup(x)
            init = cached[0] if cached is not None else None
        init_op = None if init is None else (init if init.dim() == 2 else init.reshape(-1, self.rank)).mT
        if sparse:  # (M, in_features) sparse: A^T X = (x A)^T, a sparse-dense product; x is never densified
            S = nnls_sparse_rows(x, self.A, init=init_op).mT  # (M, rank)
        else:
            X = (x if flat else x.reshape(-1, self.in_features)).mT  # (in_features, M): columns are samples
            S = nnls(X, self.A, init=init_op).mT  # (M, rank)
        if self.warm_start:
            self._cache.store(x, [S.detach() > 0])
        return S if flat else S.reshape(*x.shape[:-1], self.rank)

    @torch.no_grad()
    def keep_tree_(self) -> None:
        """Zero every entry of A off its tree: with ``parents`` set (a tree level of :class:`neuralnmf.NeuralNMF`),
        input topic i feeds output topic parents[i] only. :class:`neuralnmf.NonnegativeProjection` calls it."""
        if self.parents is not None:
            index = self.parents[:, None].to(self.A.device)
            kept = self.A.gather(1, index)
            self.A.zero_().scatter_(1, index, kept)

    @torch.no_grad()
    def share_tree_(self, dist) -> None:
        """Take process 0's tree (or its absence) under torch.distributed, as its parameters are broadcast."""
        has = torch.tensor([self.parents is not None], dtype=torch.long, device=self.A.device)
        dist.broadcast(has, src=0)
        tree = self.parents if self.parents is not None else torch.zeros(self.in_features, dtype=torch.long,
                                                                          device=self.A.device)
        if int(has.item()):
            dist.broadcast(tree, src=0)
        self.parents = tree if int(has.item()) else None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        tree = state_dict.get(prefix + "parents")  # a tree level's state sets the tree; any other clears it
        self.parents = None if tree is None else tree.detach().clone().to(self.A.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, rank={self.rank}"
