"""Nonnegative CP decomposition (NCPD): tensorly-0.4.3 multiplicative updates, and alternating exact NNLS.

    min_{F_n >= 0} ||M ⊙ (X - [[F_1, ..., F_N]])||_F^2        X: (I_1, ..., I_N),  F_n: (I_n, r),  M: mask

* :func:`ncpd_mu` is ``tensorly.decomposition.non_negative_parafac`` as it was in tensorly 0.4.3, the version
  every published hierarchical-tensor experiment ran (protocols §1.5): SVD init |U|, Gauss-Seidel
  multiplicative updates ``F_n <- F_n max(X_(n) KR, eps) / max(F_n G, eps)``, stop when the relative error
  changes by less than ``tol``. Later tensorly versions give other numbers (docs/tensor_table.md).
* :func:`ncpd_als` updates one factor at a time by the *exact* NNLS solution with the others fixed
  (:func:`neuralnmf.nnls` on an r x r square root of the normal equations), so every sweep is a block
  coordinate minimization and fits better than the same number of multiplicative updates.

Both take and return tensorly ``CPTensor`` objects (weights all ones), accept masks with 1 = observed (as
tensorly does), keep the input's dtype and device, and draw random starts from a ``torch.Generator``.
"""

from __future__ import annotations

import torch

from ..initialization import uniform
from ..ops import nnls
from . import _checks
from .cp import as_factors, cp_to_tensor, khatri_rao, to_cptensor, unfold
from .fitted import FittedTensorHierarchy, check_fit

__all__ = ["ncpd", "ncpd_mu", "ncpd_als", "svd_init", "random_init", "METHODS", "StandardNCPD", "first_layer"]

METHODS = ("mu", "als")


def svd_init(tensor: torch.Tensor, rank: int, *, generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """tensorly 0.4.3's ``init='svd'``: F_n = |U_n|, U_n the ``rank`` leading left singular vectors of X_(n).

    The vectors come from the eigendecomposition of X_(n) X_(n)^T (or of X_(n)^T X_(n) when I_n is the larger
    side, then U = X_(n) V / sigma), as scipy's ``eigsh`` gave them in 0.4.3, or from a full SVD when ``rank``
    is not below min(X_(n).shape). The absolute value removes the sign ambiguity, so the start is
    deterministic; only when I_n < rank are the missing ``rank - I_n`` columns drawn from U[0, 1) with
    ``generator``.

    Args:
        tensor: (I_1, ..., I_N), float32/float64 (masked entries should already be zero).
        rank: r.
    Returns:
        N factor matrices (I_n, r), on the tensor's device and dtype.
    """
    factors = []
    for n in range(tensor.dim()):
        M = unfold(tensor, n)
        I, P = M.shape
        if rank < min(I, P):
            if I < P:
                _, vecs = torch.linalg.eigh(M @ M.mT)  # ascending eigenvalues
                U = vecs[:, -rank:].flip(-1)
            else:
                vals, vecs = torch.linalg.eigh(M.mT @ M)
                V, s = vecs[:, -rank:].flip(-1), vals[-rank:].flip(-1).clamp_min(0).sqrt()
                U = (M @ V) / torch.where(s > 0, s, torch.ones_like(s))
        else:
            U = torch.linalg.svd(M, full_matrices=rank > min(I, P))[0][:, :rank]
        if I < rank:
            extra = uniform(I, rank - I, generator=generator, dtype=tensor.dtype, device=tensor.device)
            U = torch.cat([U, extra], dim=1)
        factors.append(U.abs().contiguous())
    return factors


def random_init(shape, rank: int, *, generator: torch.Generator | None = None, dtype=torch.float64,
                device=None) -> list[torch.Tensor]:
    """U[0, 1) factors (I_n, rank), drawn mode by mode (tensorly's ``init='random'`` distribution).

    Draws are float64 on the generator's device, then cast, so a seed gives the same start in every dtype.
    """
    device = torch.device("cpu") if device is None else device
    return [uniform(int(s), rank, generator=generator, dtype=dtype, device=device) for s in shape]


def _initial_factors(X, rank, init, generator, fn):
    if isinstance(init, str):
        if init == "svd":
            return svd_init(X, rank, generator=generator)
        if init == "random":
            return random_init(X.shape, rank, generator=generator, dtype=X.dtype, device=X.device)
        raise ValueError(f"{fn}: init must be 'svd', 'random', a CPTensor or a list of factors, got {init!r}")
    return as_factors(init, fn, "init", shape=X.shape, rank=rank, like=X)


def _prepare(tensor, rank, mask, n_iter_max, tol, seed, generator, fn):
    X, M = _checks.check_data(tensor, mask, fn, mask_name="data_mask")
    rank = _checks.check_rank(rank, fn)
    n_iter_max = _checks.check_int(n_iter_max, fn, "max_iter", minimum=0)
    tol = _checks.check_real(tol, fn, "tol")
    gen = _checks.check_generator(seed, generator, fn)
    return X, M, rank, n_iter_max, tol, gen


class _Stopper:
    """Relative errors per iteration on the device, and tensorly's rule: stop at iteration it > 1 when
    |err_{it-1} - err_it| < tol (tol = 0: never test, never read the device)."""

    def __init__(self, X, M, n_iter_max, tol):
        self.X, self.M, self.tol = X, M, tol
        self.norm = torch.linalg.vector_norm(X)  # hidden entries of X are zero already
        self.errors = torch.empty(n_iter_max, dtype=X.dtype, device=X.device)
        self.n = 0

    def __call__(self, factors) -> bool:
        R = self.X - cp_to_tensor(factors)
        if self.M is not None:
            R = R * self.M
        it = self.n
        self.errors[it] = torch.linalg.vector_norm(R) / self.norm
        self.n += 1
        return it > 1 and self.tol > 0 and bool((self.errors[it - 1] - self.errors[it]).abs() < self.tol)

    def history(self) -> torch.Tensor:
        return self.errors[: self.n]


def _finish(factors, stopper, return_errors):
    cp = to_cptensor(factors)
    return (cp, stopper.history()) if return_errors else cp


def ncpd_mu(
    tensor: torch.Tensor,
    rank: int,
    *,
    init="svd",
    max_iter: int = 100,
    tol: float = 1e-6,
    epsilon: float = 1e-11,
    data_mask: torch.Tensor | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    return_errors: bool = False,
    n_iter_max=_checks.DEPRECATED,
    mask=_checks.DEPRECATED,
):
    """NCPD by multiplicative updates with tensorly-0.4.3 semantics (protocols §1.5).

    Per iteration, for n = 1..N in order (Gauss-Seidel), with G = ⊙_{m != n} F_m^T F_m:
    ``F_n <- F_n * max(X_(n) KR_n, epsilon) / max(F_n G, epsilon)``, KR_n the Khatri-Rao product of the other
    factors. With a mask the products use the masked residual: numerator (M ⊙ X)_(n) KR_n and denominator
    (M ⊙ [[F]])_(n) KR_n (the weighted multiplicative update; without a mask it equals F_n G).

    Args:
        tensor: (I_1, ..., I_N) >= 0, float32/float64, any device. Never modified.
        rank: r.
        init: "svd" (0.4.3's deterministic |U| start, :func:`svd_init`), "random" (U[0, 1) from ``generator``),
            or the starting factors as a ``CPTensor`` / list of (I_n, r) tensors (copied).
        max_iter: iterations (0 returns the start); ``n_iter_max=`` (tensorly's name) is its deprecated name.
        tol: stop after iteration it > 1 (0-based) once |err_{it-1} - err_it| < tol, err the relative error;
            0 runs all iterations without reading the device.
        epsilon: floor of numerator and denominator (0.4.3: 10e-12).
        data_mask: (I_1, ..., I_N) bool or {0, 1}, 1 = observed; hidden entries are ignored (any value, NaN too);
            as in :func:`neuralnmf.fit` (``mask=``, tensorly's name, is its deprecated name).
        seed, generator: source of random draws (at most one): the random init, or the extra SVD columns.
        return_errors: also return the relative error after each iteration, a (n_iter,) tensor on the device.

    Returns:
        ``CPTensor`` (weights ones, factors (I_n, r)); ``(CPTensor, errors)`` with ``return_errors``.
    """
    fn = "ncpd_mu"
    max_iter = _checks.renamed(fn, "n_iter_max", n_iter_max, "max_iter", max_iter, 100)
    data_mask = _checks.renamed(fn, "mask", mask, "data_mask", data_mask)
    X, M, rank, n_iter_max, tol, gen = _prepare(tensor, rank, data_mask, max_iter, tol, seed, generator, fn)
    epsilon = _checks.check_real(epsilon, fn, "epsilon")
    with torch.no_grad():
        F = _initial_factors(X, rank, init, gen, fn)
        stop = _Stopper(X, M, n_iter_max, tol)
        N = X.dim()
        for _ in range(n_iter_max):
            for n in range(N):
                K = khatri_rao(F, skip=n)
                num = (unfold(X, n) @ K).clamp_min(epsilon)
                if M is None:
                    G = None
                    for m in range(N):
                        if m != n:
                            G = F[m].mT @ F[m] if G is None else G * (F[m].mT @ F[m])
                    den = F[n] @ G
                else:
                    den = unfold(M * cp_to_tensor(F), n) @ K
                F[n] = F[n] * num / den.clamp_min(epsilon)
            if stop(F):
                break
    return _finish(F, stop, return_errors)


def _nnls_rows(G: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """F (I, r) >= 0 minimizing each row's f^T G f - 2 b^T f, for G (r, r) or (I, r, r) PSD and B (I, r).

    That is the NNLS min ||x - K f|| known only through G = K^T K and b = K^T x. With the Cholesky factor
    G = R^T R (R upper triangular, r x r) it is the r-row problem min ||R^{-T} b - R f||, which
    :func:`neuralnmf.nnls` solves exactly. A ridge of r * eps * max diag(G) keeps the factor defined when a
    component has died (a zero column); it shifts the solution by O(eps).
    """
    r = G.shape[-1]
    eye = torch.eye(r, dtype=G.dtype, device=G.device)
    scale = torch.diagonal(G, dim1=-2, dim2=-1).amax(-1, keepdim=True).unsqueeze(-1)
    ridge = r * torch.finfo(G.dtype).eps * torch.where(scale > 0, scale, torch.ones_like(scale))
    L = torch.linalg.cholesky(G + ridge * eye)  # G = L L^T, R = L^T
    if G.dim() == 2:
        Xp = torch.linalg.solve_triangular(L, B.mT, upper=False)  # (r, I): columns R^{-T} b_i
        return nnls(Xp, L.mT).mT
    Xp = torch.linalg.solve_triangular(L, B.unsqueeze(-1), upper=False)  # (I, r, 1)
    return nnls(Xp, L.mT).squeeze(-1)


def ncpd_als(
    tensor: torch.Tensor,
    rank: int,
    *,
    init="svd",
    max_iter: int = 100,
    tol: float = 1e-6,
    warmup: int = 10,
    data_mask: torch.Tensor | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    return_errors: bool = False,
    n_iter_max=_checks.DEPRECATED,
    mask=_checks.DEPRECATED,
):
    """NCPD by alternating nonnegative least squares, each block solved exactly by :func:`neuralnmf.nnls`.

    Per iteration, for n = 1..N in order: F_n <- argmin_{F >= 0} ||M ⊙ (X - [[F_1, .., F, .., F_N]])||, the
    exact minimizer with the other factors fixed. Without a mask every row of F_n shares the Gram matrix
    G = ⊙_{m != n} F_m^T F_m and the right-hand side is X_(n) KR_n, so one r x r NNLS problem per row is
    solved in a single batched call; with a mask each row i has its own Gram KR^T diag(m_i) KR. The objective
    never increases (each block update is a minimization).

    An exact sweep from a poor start can set a whole column of a factor to zero, and a component that is zero
    in one mode never comes back (its rows of the normal equations vanish). ``warmup`` multiplicative updates
    (:func:`ncpd_mu`, which only scales entries) therefore run first: from the SVD start of a tensor with
    nested blocks, the plain sweeps lost half of the components, the warmed-up ones none.

    Args and returns: as :func:`ncpd_mu` (no ``epsilon``; the same ``tol`` rule on the relative error, whose
    history covers the ALS sweeps only). ``warmup``: multiplicative updates before the first sweep (0: none).
    """
    fn = "ncpd_als"
    max_iter = _checks.renamed(fn, "n_iter_max", n_iter_max, "max_iter", max_iter, 100)
    data_mask = _checks.renamed(fn, "mask", mask, "data_mask", data_mask)
    X, M, rank, n_iter_max, tol, gen = _prepare(tensor, rank, data_mask, max_iter, tol, seed, generator, fn)
    warmup = _checks.check_int(warmup, fn, "warmup", minimum=0)
    with torch.no_grad():
        F = _initial_factors(X, rank, init, gen, fn)
        if warmup:
            F = list(ncpd_mu(X, rank, init=F, max_iter=warmup, tol=0.0, data_mask=M)[1])
        stop = _Stopper(X, M, n_iter_max, tol)
        N = X.dim()
        for _ in range(n_iter_max):
            for n in range(N):
                K = khatri_rao(F, skip=n)
                B = unfold(X, n) @ K
                if M is None:
                    G = None
                    for m in range(N):
                        if m != n:
                            G = F[m].mT @ F[m] if G is None else G * (F[m].mT @ F[m])
                else:
                    G = torch.einsum("pr,ip,ps->irs", K, unfold(M, n), K)
                F[n] = _nnls_rows(G, B)
            if stop(F):
                break
    return _finish(F, stop, return_errors)


def ncpd(tensor: torch.Tensor, rank: int, *, method: str = "mu", **kwargs):
    """NCPD of ``tensor`` at ``rank`` by ``method``: "mu" (:func:`ncpd_mu`, tensorly 0.4.3) or "als"
    (:func:`ncpd_als`, exact alternating NNLS). Keyword arguments go to the solver; returns a ``CPTensor``."""
    if method == "mu":
        return ncpd_mu(tensor, rank, **kwargs)
    if method == "als":
        return ncpd_als(tensor, rank, **kwargs)
    raise ValueError(f"ncpd: method must be one of {METHODS}, got {method!r}")


def first_layer(X, M, rank, factors, method, kwargs, fn):
    """The rank-r_0 factors: the given ones (CPTensor or list, checked) or an NCPD of X (``method``, ``kwargs``)."""
    if factors is not None:
        return as_factors(factors, fn, "factors", shape=X.shape, rank=rank, like=X)
    if method not in METHODS:
        raise ValueError(f"{fn}: ncpd must be one of {METHODS}, got {method!r}")
    cp = ncpd(X, rank, method=method, data_mask=M, **(kwargs or {}))
    return list(cp[1])


class StandardNCPD(FittedTensorHierarchy):
    """An NCPD of the tensor at every rank, independently: ``levels_[l]`` is the rank-``ranks[l]`` NCPD.

    Args:
        ranks: (r_0, r_1, ...), e.g. (7, 4, 2).
        method: "mu" (tensorly 0.4.3 semantics) or "als" (exact alternating NNLS).
        **ncpd_kwargs: passed to the solver (init, max_iter, tol, seed/generator ...).
    """

    def __init__(self, ranks, *, method: str = "mu", **ncpd_kwargs):
        self.ranks = _checks.check_ranks(ranks, "StandardNCPD")
        if method not in METHODS:
            raise ValueError(f"StandardNCPD: method must be one of {METHODS}, got {method!r}")
        self.method, self.ncpd_kwargs = method, ncpd_kwargs
        self.levels_ = None

    def fit(self, tensor: torch.Tensor, *, data_mask: torch.Tensor | None = None,
            mask=_checks.DEPRECATED) -> "StandardNCPD":
        """Fit every rank to ``tensor`` (I_1, ..., I_N) >= 0 (``data_mask``: 1 = observed; ``mask=`` is its
        deprecated name). Returns self."""
        fn = "StandardNCPD.fit"
        X, M = check_fit(tensor, _checks.renamed(fn, "mask", mask, "data_mask", data_mask), fn)
        self.levels_ = [ncpd(X, r, method=self.method, data_mask=M, **self.ncpd_kwargs) for r in self.ranks]
        return self
