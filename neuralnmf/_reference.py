"""Pure-torch NNLS and its backward solve: the fallback on devices without a compiled kernel, and the oracle
the compiled kernels are tested against.

Same contract as the compiled ops ``neuralnmf::nnls`` and ``neuralnmf::support_solve`` (shapes below), same
method (block principal pivoting with the backup rule on the Jacobi-scaled Gram matrix, float64 inside), but
vectorised over columns with masked batched solves instead of per-column factorizations: simple, any device,
slow (it solves a k x k system per column per iteration).

Shapes: X (N, M) or (B, N, M); A (N, k) or (B, N, k); S, init, grad (..., k, M); info (..., M).
"""

from __future__ import annotations

import torch

_CHUNK = 4096  # columns per batched solve: bounds the (chunk, k, k) masked systems
_BACKUP_CHANCES = 3


def _check_finite(t: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"nnls: {name} contains NaN or Inf")


def _scaled_gram(A: torch.Tensor):
    """Jacobi-scaled Gram of A (N, k): returns (G, d, keep) with G unit-diagonal over the nonzero columns."""
    A64 = A.to(torch.float64)
    amax = A64.abs().max() if A64.numel() else A64.new_zeros(())
    a_scale = torch.where(amax > 0, torch.exp2(-torch.ceil(torch.log2(amax.clamp_min(1e-300)))), amax.new_ones(()))
    As = A64 * a_scale
    norms = torch.linalg.vector_norm(As, dim=0)
    keep = norms > 0
    d = torch.where(keep, 1.0 / norms.clamp_min(1e-300), torch.zeros_like(norms)) * a_scale
    Ad = A64 * d  # zero columns stay zero
    G = Ad.T @ Ad
    return G, d, keep, Ad


def _masked_solve(G: torch.Tensor, rhs: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
    """x[j] solves G[F_j, F_j] x = rhs[j, F_j], zero off F_j. G (k, k); rhs, F (m, k). Min-norm if singular."""
    f = F.to(G.dtype)
    eye = torch.eye(G.shape[-1], dtype=G.dtype, device=G.device)
    Gm = G * (f.unsqueeze(-1) * f.unsqueeze(-2)) + eye * (1 - f).unsqueeze(-1)
    r = (rhs * f).unsqueeze(-1)
    L, info = torch.linalg.cholesky_ex(Gm)
    x = torch.cholesky_solve(r, L).squeeze(-1)
    bad = info != 0
    if bool(bad.any()):
        x[bad] = (torch.linalg.pinv(Gm[bad], hermitian=True) @ r[bad]).squeeze(-1)
    return x * f


def _bpp(G: torch.Tensor, b: torch.Tensor, F: torch.Tensor, max_iter: int):
    """Block principal pivoting for all columns at once. b, F: (m, k), b scaled to max |b| = 1."""
    m, k = b.shape
    eps = torch.finfo(torch.float64).eps
    best = torch.full((m,), k + 1, dtype=torch.long, device=b.device)
    chances = torch.full((m,), _BACKUP_CHANCES, dtype=torch.long, device=b.device)
    order = torch.arange(1, k + 1, device=b.device)
    x = torch.zeros_like(b)
    done = torch.zeros(m, dtype=torch.bool, device=b.device)
    for _ in range(max_iter):
        todo = ~done
        if not bool(todo.any()):
            break
        xt = _masked_solve(G, b[todo], F[todo])
        Ft = F[todo]
        y = (xt @ G - b[todo]) * (~Ft)
        tol = 4 * k * eps * (k * xt.abs().amax(1, keepdim=True) + 1)
        V = (Ft & (xt < 0)) | (~Ft & (y < -tol))
        nv = V.sum(1)
        x[todo] = xt
        ok = nv == 0
        improve = (nv < best[todo]) & ~ok
        spare = ~improve & ~ok & (chances[todo] > 0)
        backup = ~improve & ~ok & ~spare
        best[todo] = torch.where(improve, nv, best[todo])
        chances[todo] = torch.where(improve, _BACKUP_CHANCES, torch.where(spare, chances[todo] - 1, chances[todo]))
        full = improve | spare
        Fn = torch.where(full.unsqueeze(1), Ft ^ V, Ft)
        last = (V * order).argmax(1)
        rows = torch.nonzero(backup).squeeze(1)
        Fn[rows, last[rows]] = ~Fn[rows, last[rows]]
        F[todo] = Fn
        done[todo] = ok
    return x.clamp_min(0), done


def _solve_products(products, A: torch.Tensor, M: int, init, max_iter: int):
    """Solves M columns whose scaled right-hand sides ``products(c0, c1, Ad, d)`` -> (m, k) come in chunks."""
    k = A.shape[1]
    G, d, keep, Ad = _scaled_gram(A)
    S = torch.zeros(k, M, dtype=torch.float64, device=A.device)
    info = torch.zeros(M, dtype=torch.int32, device=A.device)
    iters = max_iter if max_iter > 0 else 5 * k + 10
    for c0 in range(0, M, _CHUNK):
        Bt = products(c0, c0 + _CHUNK, Ad, d) * keep  # (m, k)
        scale = Bt.abs().amax(1, keepdim=True)
        b = Bt / torch.where(scale > 0, scale, torch.ones_like(scale))
        if init is None:
            F = keep.expand_as(b).clone()
        else:
            F = init[:, c0 : c0 + _CHUNK].T.to(torch.bool) & keep
        x, done = _bpp(G, b, F, iters)
        S[:, c0 : c0 + _CHUNK] = (x * scale * d).T
        info[c0 : c0 + _CHUNK] = torch.where(done, 0, -1).to(torch.int32)
    return S, info


def _solve_item(X: torch.Tensor, A: torch.Tensor, init, max_iter: int):
    S, info = _solve_products(lambda c0, c1, Ad, d: X[:, c0:c1].to(torch.float64).T @ Ad, A, X.shape[1], init, max_iter)
    return S.to(X.dtype), info


def _solve_item_products(AtX: torch.Tensor, A: torch.Tensor, init, max_iter: int):
    S, info = _solve_products(lambda c0, c1, Ad, d: AtX[:, c0:c1].to(torch.float64).T * d, A, AtX.shape[1], init, max_iter)
    return S.to(AtX.dtype), info


def _per_item(solve, data: torch.Tensor, A: torch.Tensor, init, max_iter: int):
    """Applies solve(data_b, A_b, init_b, max_iter) over a leading batch dimension of data (3-D) or once (2-D)."""
    if data.dim() == 2:
        return solve(data, A, init, max_iter)
    outs = [solve(data[i], A if A.dim() == 2 else A[i], None if init is None else init[i], max_iter)
            for i in range(data.shape[0])]
    if not outs:
        k, M = A.shape[-1], data.shape[-1]
        return data.new_zeros(0, k, M), torch.zeros(0, M, dtype=torch.int32, device=data.device)
    return torch.stack([s for s, _ in outs]), torch.stack([i for _, i in outs])


def nnls_reference(X: torch.Tensor, A: torch.Tensor, init: torch.Tensor | None = None, max_iter: int = 0):
    """Reference for ``neuralnmf::nnls``: returns (S, info); see the module docstring for shapes."""
    _check_finite(A, "A")
    _check_finite(X, "X")
    return _per_item(_solve_item, X, A, init, max_iter)


def nnls_rhs_reference(AtX: torch.Tensor, A: torch.Tensor, init: torch.Tensor | None = None, max_iter: int = 0):
    """Reference for ``neuralnmf::nnls_rhs``: the same solve from the products AtX = A^T X, (..., k, M)."""
    _check_finite(A, "A")
    if not bool(torch.isfinite(AtX).all()):
        raise ValueError("nnls_rhs: AtX contains NaN or Inf")
    return _per_item(_solve_item_products, AtX, A, init, max_iter)


def _support_solve_item(grad: torch.Tensor, A: torch.Tensor, S: torch.Tensor) -> torch.Tensor:
    A64 = A.to(torch.float64)
    G = A64.T @ A64
    V = torch.zeros(S.shape, dtype=torch.float64, device=S.device)
    for c0 in range(0, S.shape[1], _CHUNK):
        P = S[:, c0 : c0 + _CHUNK].T > 0
        r = grad[:, c0 : c0 + _CHUNK].T.to(torch.float64)
        V[:, c0 : c0 + _CHUNK] = _masked_solve(G, r, P).T
    return V.to(S.dtype)


def support_solve_reference(grad: torch.Tensor, A: torch.Tensor, S: torch.Tensor) -> torch.Tensor:
    """Reference for ``neuralnmf::support_solve``: V[P, j] = (A_P^T A_P)^{-1} grad[P, j], P = {S[:, j] > 0}."""
    if S.dim() == 2:
        return _support_solve_item(grad, A, S)
    if S.shape[0] == 0:
        return torch.zeros_like(S)
    return torch.stack([_support_solve_item(grad[i], A if A.dim() == 2 else A[i], S[i]) for i in range(S.shape[0])])
