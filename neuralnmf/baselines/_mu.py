"""NMF and SSNMF by multiplicative updates: models 1 and 3 of the ssnmf package (Haddock et al.), in torch.

Math in the papers' orientation: X (N features x M samples) ~ A S, A (N, k), S (k, M); labels Y (c, M) one-hot
with unlabeled columns zero, B (c, k). The public functions take batch-first data x (M, N) = X^T.

Why the updates never increase the objective (exact arithmetic). Each update has the form
``F <- F * P / (Q + eps)``. For the block F with the others fixed, the objective is a quadratic
``f(G) = <G, H G> - 2 <P, G> + const`` whose linear map H has nonnegative entries (the other factors and the
masks are >= 0), and Q = H F. Lee & Seung's lemma: for F > 0 the diagonal K = diag((H F) / F) satisfies
K >= H (as quadratic forms), hence so does K' = diag((H F + eps) / F). So

    g(G) = f(F) + 2 eps sum(F) + <grad f(F) + 2 eps, G - F> + <G - F, K' (G - F)>

majorizes ``f(G) + 2 eps sum(G)`` and touches it at G = F; its minimizer is exactly ``F * P / (Q + eps)``.
Every block update is therefore a majorize-minimize step of

    Phi = ||W (X - A S)||^2 + lam ||L (Y - B S)||^2 + 2 eps (sum A + lam sum B + sum S)

and Phi never increases (entries at 0 stay at 0; the same argument holds on the others). This is why eps > 0
is required. The eps term (1e-10 x the sum of the factors) is far below the objective's scale, so the recorded
objective ``||W (X - A S)||^2 + lam ||L (Y - B S)||^2`` is non-increasing up to that term and round-off.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import sparse_products
from . import _checks
from ._init import uniform

__all__ = ["NMFResult", "nmf_mu", "ssnmf_mu"]


@dataclass(frozen=True)
class NMFResult:
    """Factors of x (M, N) ~ codes @ A^T, i.e. X = x^T ~ A S in the papers' orientation.

    Attributes:
        A: (N, k) dictionary; its columns are topics over the features.
        S: (k, M) representation in the papers' orientation (``codes`` is its batch-first transpose).
        history: (n_iter,) objective after each iteration, on the data's device: ||W (X - A S)||_F^2, plus
            lam ||L (Y - B S)||_F^2 for SSNMF.
        B: (num_classes, k) classifier (SSNMF only; None for NMF): class scores of sample j are B S[:, j].
    """

    A: torch.Tensor
    S: torch.Tensor
    history: torch.Tensor
    B: torch.Tensor | None = None

    @property
    def n_iter(self) -> int:
        """Iterations run (fewer than requested when the early stop fired)."""
        return self.history.shape[0]

    @property
    def codes(self) -> torch.Tensor:
        """(M, k) batch-first codes, S^T."""
        return self.S.mT

    def reconstruct(self) -> torch.Tensor:
        """(M, N) approximation of x, (A S)^T."""
        return self.S.mT @ self.A.mT

    def predict(self) -> torch.Tensor:
        """(M,) predicted class per sample, argmax_c (B S)[c, j] (SSNMF only)."""
        if self.B is None:
            raise ValueError("NMFResult.predict: this result has no classifier B (fit with ssnmf_mu)")
        return (self.B @ self.S).argmax(0)


class EarlyStop:
    """ssnmf's relative-decrease rule, evaluated every ``check_every`` iterations (one host sync per check).

    With e_i the stopping error after iteration i (i = 0, 1, ...), the run stops at the first i > 0 with
    (e_{i-1} - e_i) / e_0 < tol, which also fires when the error rises. ssnmf uses e = ||W (X - A S)||_F
    (not squared) for model 1 and the squared objective for model 3; ``sqrt`` selects the first. The rule is
    checked for all iterations since the last check, so the run ends at most check_every - 1 iterations after
    ssnmf would (check_every=1 stops exactly where ssnmf stops). tol = 0 disables it. When e_0 = 0 (an exact
    fit after one iteration) it stops at the first check, where ssnmf would divide by zero.
    """

    def __init__(self, tol: float, check_every: int, iters: int, sqrt: bool):
        self.tol, self.check_every, self.iters, self.sqrt = tol, check_every, iters, sqrt
        self.checked = 1  # first iteration index not yet tested (index 0 only defines e_0)

    def __call__(self, history: torch.Tensor, i: int) -> bool:
        """True if the run should stop after iteration i (history[: i + 1] is filled)."""
        if self.tol <= 0 or ((i + 1) % self.check_every and i + 1 != self.iters):
            return False
        lo, self.checked = self.checked, i + 1
        if lo > i:
            return False
        e = history[: i + 1].sqrt() if self.sqrt else history[: i + 1]
        fired = (e[lo - 1 : i] - e[lo : i + 1]) < self.tol * e[0]
        return bool(fired.any() | (e[0] <= 0))


def label_step(S, num, den, B, Y, Lc, lam: float, eps: float):
    """The multiplicative step of the codes S (k, M) given the data parts of its ratio (``num``/``den``), with the
    SSNMF label term when there is a classifier: first B <- B (L Y) S^T / ((L (B S)) S^T + eps) with the old S,
    then S <- S (num + lam B^T L Y) / (den + lam B^T (L (B S)) + eps). Returns (S, B)."""
    if B is not None:
        B = B * (Y @ S.mT) / (((B @ S) * Lc) @ S.mT + eps)
        num = num + lam * (B.mT @ Y)
        den = den + lam * (B.mT @ ((B @ S) * Lc))
    return S * num / (den + eps), B


def class_term(obj, S, B, Y, Lc, lam: float):
    """obj + lam ||L (Y - B S)||^2 with a classifier, obj without."""
    if B is not None:
        C = Y - (B @ S) * Lc
        obj = obj + lam * (C * C).sum()
    return obj


def objective(R, S, B, Y, Lc, lam: float):
    """||R||^2 (+ lam ||L (Y - B S)||^2 with a classifier), R the masked residual of the data."""
    return class_term((R * R).sum(), S, B, Y, Lc, lam)


def _fit_mu(X, A, S, *, W, B, Y, Lc, lam, iters, stop: EarlyStop, eps):
    """Run the updates on X (N, M) (masked entries already zero); returns (A, S, B, history)."""
    history = torch.empty(iters, dtype=X.dtype, device=X.device)
    AS = None if W is None else A @ S
    n = 0
    for i in range(iters):
        # A <- A (W X) S^T / ((W (A S)) S^T + eps); without a mask (A S) S^T = A (S S^T).
        den = A @ (S @ S.mT) if W is None else (W * AS) @ S.mT
        A = A * (X @ S.mT) / (den + eps)
        # S <- S (A^T W X + lam B^T L Y) / (A^T (W (A S)) + lam B^T (L (B S)) + eps), with the new A and B
        # (B first, with the old S).
        num = A.mT @ X
        den = (A.mT @ A) @ S if W is None else A.mT @ (W * (A @ S))
        S, B = label_step(S, num, den, B, Y, Lc, lam, eps)
        AS = A @ S
        history[i] = objective(X - AS if W is None else X - W * AS, S, B, Y, Lc, lam)
        n = i + 1
        if stop(history, i):
            break
    return A, S, B, history[:n]


def _fit_mu_sparse(x, A, S, *, B, Y, Lc, lam, iters, stop: EarlyStop, eps):
    """:func:`_fit_mu` for a sparse x (M, N) = X^T (no mask), through sparse-dense products only, X never dense:
    X S^T = x^T S^T, A^T X = (x A)^T, and ||X - A S||^2 = ||X||^2 - 2 <A^T X, S> + <A^T A, S S^T>.
    The same updates as the dense path (equal in exact arithmetic; round-off differs)."""
    values = sparse_products.csr_pair(x).x.values()
    xx = (values * values).sum()
    history = torch.empty(iters, dtype=A.dtype, device=A.device)
    n = 0
    for i in range(iters):
        A = A * sparse_products.matmul_t(x, S.mT) / (A @ (S @ S.mT) + eps)
        AtX = sparse_products.matmul(x, A).mT  # (k, M)
        AtA = A.mT @ A
        S, B = label_step(S, AtX, AtA @ S, B, Y, Lc, lam, eps)
        fit = (xx - 2 * (AtX * S).sum() + (AtA * (S @ S.mT)).sum()).clamp_min(0)
        history[i] = class_term(fit, S, B, Y, Lc, lam)
        n = i + 1
        if stop(history, i):
            break
    return A, S, B, history[:n]


def _run(X, A, S, *, W, B, Y, Lc, lam, iters, stop, eps):
    if X.layout != torch.strided:
        return _fit_mu_sparse(X, A, S, B=B, Y=Y, Lc=Lc, lam=lam, iters=iters, stop=stop, eps=eps)
    return _fit_mu(X, A, S, W=W, B=B, Y=Y, Lc=Lc, lam=lam, iters=iters, stop=stop, eps=eps)


def _check_init(init, shapes, names, x, fn):
    out = []
    for t, shape, name in zip(init, shapes, names):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{fn}: init {name} must be a torch.Tensor, got {type(t).__name__}")
        if tuple(t.shape) != shape:
            raise ValueError(f"{fn}: init {name} must have shape {shape}, got {tuple(t.shape)}")
        if t.dtype != x.dtype:
            raise TypeError(f"{fn}: init {name} has dtype {t.dtype} but x has {x.dtype}; they must match")
        if t.device != x.device:
            raise ValueError(f"{fn}: init {name} is on {t.device} but x is on {x.device}")
        if not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
            raise ValueError(f"{fn}: init {name} must be finite and nonnegative")
        out.append(t.detach().clone())
    return out


def _prepare(x, rank, data_mask, iters, tol, check_every, eps, seed, generator, fn):
    _checks.check_data(x, fn, allow_sparse=True)
    mask = _checks.check_data_mask(data_mask, x, fn)
    _checks.check_values(x, mask, fn)
    rank = _checks.check_rank(rank, fn)
    iters = _checks.check_int(iters, fn, "max_iter", minimum=0)
    tol = _checks.check_real(tol, fn, "tol")
    check_every = _checks.check_int(check_every, fn, "check_every", minimum=1)
    eps = _checks.check_real(eps, fn, "eps", positive=True)
    gen = _checks.check_generator(seed, generator, fn)
    if x.layout != torch.strided:
        # a sparse x stays (M, N) and sparse: returned as is (X = x^T is only ever used through products)
        return x.detach(), None, (x.shape[1], x.shape[0]), rank, iters, tol, check_every, eps, gen
    X, W = _checks.to_papers_orientation(x, mask)
    return X, W, tuple(X.shape), rank, iters, tol, check_every, eps, gen


def nmf_mu(
    x: torch.Tensor,
    rank: int,
    *,
    max_iter: int = 10000,
    tol: float = 0.0,
    check_every: int = 10,
    data_mask: torch.Tensor | None = None,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    eps: float = 1e-10,
    iters=_checks.DEPRECATED,
) -> NMFResult:
    """NMF by Lee-Seung multiplicative updates: min_{A, S >= 0} ||W (X - A S)||_F^2, as ssnmf's modelNum=1.

    Per iteration, A first, then S with the new A (papers' orientation, X = x^T):
    A <- A (W X) S^T / ((W (A S)) S^T + eps);  S <- S A^T (W X) / (A^T (W (A S)) + eps).
    Without a mask the products are grouped through the Gram matrices (A (S S^T), (A^T A) S): the same update.

    Args:
        x: (M, N) nonnegative data, samples first, float32 or float64 (kept end to end, on any device); dense,
            or sparse COO/CSR, which is never densified: the updates and the recorded objective go through
            sparse-dense products (x^T S^T, x A) and ||X - A S||^2 = ||X||^2 - 2 <A^T X, S> + <A^T A, S S^T>
            (equal to the dense path in exact arithmetic; no data_mask with a sparse x).
        rank: k, number of topics.
        max_iter: maximum number of iterations (0 returns the initial factors); ``iters=`` is its deprecated name.
        tol: ssnmf's relative-decrease early stop (see :class:`EarlyStop`): 0 (default) runs all ``max_iter``;
            ``tol=1e-4`` reproduces ssnmf's silent default, which ends "10000 iterations" after a few dozen.
        check_every: test the stopping rule every this many iterations (each test syncs with the device once).
        data_mask: (M, N) bool or {0, 1}, True = observed. Unobserved entries of x are ignored entirely (they may
            hold anything, NaN included) and only the observed ones are fitted.
        init: (A (N, k), S (k, M)) initial factors (same dtype and device as x); copied, never modified.
            Default: U[0, 1) draws, A then S, as ssnmf.
        seed, generator: where the random init comes from (at most one): a seed, or a torch.Generator whose
            state advances. Neither: torch's global RNG, like ``torch.rand``. Draws are float64 on the
            generator's device, then cast, so a seed gives the same start for float32/float64 and any device.
        eps: added to every denominator (> 0), as ssnmf (1e-10). The iteration then provably never increases
            ||W (X - A S)||^2 + 2 eps (sum A + sum S) (module docstring).

    Returns:
        :class:`NMFResult` with A (N, k), S (k, M) (``.codes`` = S^T, (M, k)), history (n_iter,) of
        ||W (X - A S)||_F^2 after each iteration, and B = None.

    Raises:
        TypeError: non-tensor or non-float data, non-integer rank/max_iter, init of another dtype.
        ValueError: negative or non-finite (observed) data, rank < 1, shape or device mismatches, bad mask, a
            data_mask with a sparse x.
    """
    fn = "nmf_mu"
    X, W, (N, M), rank, iters, tol, check_every, eps, gen = _prepare(
        x, rank, data_mask, _checks.renamed(fn, "iters", iters, "max_iter", max_iter, 10000), tol, check_every, eps,
        seed, generator, fn)
    with torch.no_grad():
        if init is None:
            A = uniform((N, rank), gen, X)
            S = uniform((rank, M), gen, X)
        else:
            if not isinstance(init, (tuple, list)) or len(init) != 2:
                raise TypeError(f"{fn}: init must be a pair (A, S), got {type(init).__name__}")
            A, S = _check_init(init, [(N, rank), (rank, M)], ["A", "S"], X, fn)
        stop = EarlyStop(tol, check_every, iters, sqrt=True)
        A, S, _, history = _run(X, A, S, W=W, B=None, Y=None, Lc=None, lam=0.0, iters=iters, stop=stop, eps=eps)
    return NMFResult(A, S, history)


def ssnmf_mu(
    x: torch.Tensor,
    rank: int,
    y: torch.Tensor,
    *,
    label_mask: torch.Tensor | None = None,
    num_classes: int | None = None,
    lam: float = 1.0,
    max_iter: int = 10000,
    tol: float = 0.0,
    check_every: int = 10,
    data_mask: torch.Tensor | None = None,
    init: tuple[torch.Tensor, ...] | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    eps: float = 1e-10,
    iters=_checks.DEPRECATED,
) -> NMFResult:
    """(Semi-)supervised NMF, ssnmf's modelNum=3: min_{A, B, S >= 0} ||W (X - A S)||^2 + lam ||L (Y - B S)||^2.

    Y (c, M) is the one-hot matrix of ``y`` and L its label mask: column j of L is all ones when sample j is
    labeled and all zeros otherwise, so unlabeled samples contribute nothing to the class term (their ``y`` is
    never read). Per iteration, in this order (papers' orientation, X = x^T):

        A <- A (W X) S^T / ((W (A S)) S^T + eps)
        B <- B (L Y) S^T / ((L (B S)) S^T + eps)                                   (old S)
        S <- S (A^T (W X) + lam B^T (L Y)) / (A^T (W (A S)) + lam B^T (L (B S)) + eps)   (new A, B)

    Args:
        x: (M, N) nonnegative data, samples first, float32 or float64; dense or sparse COO/CSR (never
            densified, no data_mask; see :func:`nmf_mu`).
        rank: k, number of topics.
        y: (M,) integer class indices; entries of unlabeled samples are ignored (any value, e.g. -1).
        label_mask: (M,) bool, True = labeled. None: all labeled (supervised).
        num_classes: c. None: 1 + the largest labeled class.
        lam: weight of the class term (>= 0). ssnmf's default 1; the Neural NMF toy demo used 1e-5.
        max_iter, tol, check_every, data_mask, seed, generator, eps: as :func:`nmf_mu`. The early stop uses the
            squared objective, as ssnmf's model 3.
        init: (A (N, k), S (k, M)) or (A, S, B (c, k)); B is drawn from U[0, 1) when absent. Default: U[0, 1)
            draws in ssnmf's order A, S, B.

    Returns:
        :class:`NMFResult` with A, S, B, and history (n_iter,) of the objective above after each iteration.
        ``result.predict()`` gives argmax_c (B S)[c, j].

    Raises:
        TypeError / ValueError: as :func:`nmf_mu`, plus labels that are not integers, out of [0, c) for
        labeled samples, or of the wrong shape; label_mask of the wrong shape or values; negative lam.
    """
    fn = "ssnmf_mu"
    X, W, (N, M), rank, iters, tol, check_every, eps, gen = _prepare(
        x, rank, data_mask, _checks.renamed(fn, "iters", iters, "max_iter", max_iter, 10000), tol, check_every, eps,
        seed, generator, fn)
    lam = _checks.check_real(lam, fn, "lam")
    Y, Lc, c = _checks.check_labels(y, label_mask, num_classes, M, X, fn)
    with torch.no_grad():
        if init is None:
            A = uniform((N, rank), gen, X)
            S = uniform((rank, M), gen, X)
            B = uniform((c, rank), gen, X)
        else:
            if not isinstance(init, (tuple, list)) or len(init) not in (2, 3):
                raise TypeError(f"{fn}: init must be (A, S) or (A, S, B), got {type(init).__name__}")
            shapes, names = [(N, rank), (rank, M), (c, rank)], ["A", "S", "B"]
            factors = _check_init(init, shapes[: len(init)], names[: len(init)], X, fn)
            A, S = factors[:2]
            B = factors[2] if len(factors) == 3 else uniform((c, rank), gen, X)
        stop = EarlyStop(tol, check_every, iters, sqrt=False)
        A, S, B, history = _run(X, A, S, W=W, B=B, Y=Y, Lc=Lc, lam=lam, iters=iters, stop=stop, eps=eps)
    return NMFResult(A, S, history, B)
