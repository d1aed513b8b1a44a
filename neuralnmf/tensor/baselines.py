"""The hierarchical tensor baselines of the Neural NCPD and Multi-HNTF papers (protocols §6.6-6.8), in torch. (The
flat one, :class:`neuralnmf.tensor.StandardNCPD`, an independent NCPD at every rank, lives beside ``ncpd``.)

* :class:`StandardHNCPD`: rank-r_0 NCPD, then a hierarchical NMF of every mode's factor matrix, each NMF with
  scikit-learn's multiplicative-update semantics (:func:`nmf_sklearn_mu`, protocols §1.6).
* :class:`HNTF`: Cichocki et al.'s multilayer NTF with the hierarchy on one mode (HNTF-1/2/3 for mode 0/1/2).

All are fitted with ``fit(tensor, factors=None, data_mask=None)``, keep the tensor's dtype and device, and expose
``levels_`` (one tensorly ``CPTensor`` per level) with ``reconstruct(level)`` and ``cp_tensor(level)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from . import _checks
from .fitted import FittedTensorHierarchy, check_fit
from .trainable import TensorTopics
from .cp import cp_to_tensor, to_cptensor
from .ncpd import METHODS, first_layer, ncpd, random_init

__all__ = ["StandardHNCPD", "HNTF", "nmf_sklearn_mu", "sklearn_random_init"]

SKLEARN_EPS = float(torch.finfo(torch.float32).eps)  # scikit-learn's EPSILON, np.finfo(np.float32).eps


def sklearn_random_init(X: torch.Tensor, k: int, generator: torch.Generator | None = None):
    """scikit-learn's ``init='random'`` start (:func:`sklearn_scaled_start`) with torch draws from ``generator``.
    Returns (W (samples, k), H (k, features)) on X's dtype and device."""
    g_dev = generator.device if generator is not None else torch.device("cpu")
    return sklearn_scaled_start(X, k, lambda shape: torch.randn(shape, generator=generator, device=g_dev,
                                                                dtype=torch.float64))


def sklearn_scaled_start(X: torch.Tensor, k: int, normal: Callable):
    """scikit-learn's ``init='random'`` formula, the one copy: avg = sqrt(mean(X) / k), H = |avg N(0,1)|
    (k, features) drawn first, then W = |avg N(0,1)| (samples, k). ``normal(shape)`` gives float64 standard normal
    draws as a tensor (a torch Generator's, or a numpy RandomState's in
    :func:`neuralnmf.tensor.numpy_streams.sklearn_nmf_random_init`). Computed in float64, returned as (W, H) in
    X's dtype and on its device."""
    avg = math.sqrt(float(X.double().mean()) / k)
    H = (avg * normal((k, X.shape[1]))).abs()
    W = (avg * normal((X.shape[0], k))).abs()
    return W.to(dtype=X.dtype, device=X.device), H.to(dtype=X.dtype, device=X.device)


def nmf_sklearn_mu(X: torch.Tensor, k: int, *, init=None, max_iter: int = 200, tol: float = 1e-4,
                   generator: torch.Generator | None = None):
    """NMF X (samples, features) ~ W H with scikit-learn's ``NMF(solver='mu')`` Frobenius semantics.

    Per iteration: W <- W (X H^T) / (W H H^T), then H <- H (W^T X) / (W^T W H); denominator entries equal to
    0 are replaced by float32 eps. Every 10 iterations e = ||X - W H||_F is computed and the run stops when
    (e_prev - e) / e_init < tol, e_init the error of the start (tol = 0: all ``max_iter`` iterations).

    Args:
        X: (samples, features) >= 0.
        k: number of components.
        init: (W (samples, k), H (k, features)) start (copied), or None for :func:`sklearn_random_init`.
    Returns:
        (W, H, n_iter).
    """
    fn = "nmf_sklearn_mu"
    k = _checks.check_rank(k, fn, "k")
    if init is None:
        W, H = sklearn_random_init(X, k, generator)
    else:
        W = _checks.check_matrix(init[0], (X.shape[0], k), fn, "init W", X).clone()
        H = _checks.check_matrix(init[1], (k, X.shape[1]), fn, "init H", X).clone()

    def floor(d):
        return torch.where(d == 0, torch.full_like(d, SKLEARN_EPS), d)

    e_init = e_prev = torch.linalg.vector_norm(X - W @ H)
    n = 0
    for n in range(1, max_iter + 1):
        W = W * (X @ H.mT) / floor(W @ (H @ H.mT))
        H = H * (W.mT @ X) / floor((W.mT @ W) @ H)
        if tol > 0 and n % 10 == 0:
            e = torch.linalg.vector_norm(X - W @ H)
            if bool((e_prev - e) / e_init < tol):
                break
            e_prev = e
    return W, H, n


class StandardHNCPD(FittedTensorHierarchy):
    """Hierarchical NCPD by sequential NMF of each factor matrix (protocols §6.7).

    Layer 0: NCPD of rank r_0, F_n (I_n, r_0). For every mode independently: F_n ~ A_n^(1) S_n^(1)
    (I_n x r_1, r_1 x r_0), then S_n^(l-1) ~ A_n^(l) S_n^(l), each by :func:`nmf_sklearn_mu`. Level l is
    [[A_1^(1) ... A_1^(l) S_1^(l), ..., A_N^(1) ... A_N^(l) S_N^(l)]], an r_0-term CP tensor.

    Args:
        ranks: (r_0, r_1, ..., r_L).
        max_iter, tol: of every NMF (the synthetic table: 300 and scikit-learn's 1e-4).
        init: None (:func:`sklearn_random_init` from ``generator``: one fresh Generator seeded with ``seed``
            per NMF when ``seed`` is given, mirroring ``random_state=seed`` on every call), or a callable
            ``init(mode, layer, X, k) -> (W, H)`` (e.g. :func:`neuralnmf.tensor.numpy_streams.sklearn_nmf_random_init`).
        ncpd, ncpd_kwargs: the first-layer solver when ``fit`` gets no factors.

    Attributes (after ``fit``): factors_, A_ (per mode, the L dictionaries), S_ (per mode, the L codes), levels_.
    """

    def __init__(self, ranks, *, max_iter: int = 300, tol: float = 1e-4, init: Callable | None = None,
                 ncpd: str = "mu", ncpd_kwargs: dict | None = None, seed: int | None = None,
                 generator: torch.Generator | None = None):
        fn = "StandardHNCPD"
        self.ranks = _checks.check_ranks(ranks, fn, min_len=2)
        self.max_iter = _checks.check_int(max_iter, fn, "max_iter", minimum=0)
        self.tol = _checks.check_real(tol, fn, "tol")
        if init is not None and not callable(init):
            raise TypeError(f"{fn}: init must be None or a callable init(mode, layer, X, k) -> (W, H)")
        self.seed, self.generator = _checks.check_seed_or_generator(seed, generator, fn)
        self.init, self.ncpd, self.ncpd_kwargs = init, ncpd, ncpd_kwargs
        self.factors_ = self.A_ = self.S_ = self.levels_ = None

    def _start(self, mode, layer, X, k):
        if self.init is not None:
            return self.init(mode, layer, X, k)
        gen = _checks.check_generator(self.seed, self.generator, type(self).__name__)  # a fresh one per start
        return sklearn_random_init(X, k, gen)

    def fit(self, tensor: torch.Tensor, factors=None, *, data_mask: torch.Tensor | None = None,
            mask=_checks.DEPRECATED) -> "StandardHNCPD":
        """Fit to ``tensor`` (I_1, ..., I_N) >= 0; ``factors``: the rank-r_0 layer (computed when None);
        ``data_mask``: 1 = observed (``mask=`` is its deprecated name)."""
        fn = "StandardHNCPD.fit"
        X, M = check_fit(tensor, _checks.renamed(fn, "mask", mask, "data_mask", data_mask), fn)
        with torch.no_grad():
            F = first_layer(X, M, self.ranks[0], factors, self.ncpd, self.ncpd_kwargs, fn)
            As, Ss = [], []
            for n, Fn in enumerate(F):
                A_n, S_n, inp = [], [], Fn
                for l, k in enumerate(self.ranks[1:]):
                    W, H, _ = nmf_sklearn_mu(inp, k, init=self._start(n, l, inp, k), max_iter=self.max_iter,
                                             tol=self.tol)
                    A_n.append(W)
                    S_n.append(H)
                    inp = H
                As.append(A_n)
                Ss.append(S_n)
            levels = [to_cptensor(F)]
            for l in range(len(self.ranks) - 1):
                level = []
                for n in range(len(F)):
                    D = As[n][0]
                    for A in As[n][1 : l + 1]:
                        D = D @ A
                    level.append(D @ Ss[n][l])
                levels.append(to_cptensor(level))
        self.factors_, self.A_, self.S_, self.levels_ = F, As, Ss, levels
        return self

    def hierarchy(self, mode: int = 0) -> list[torch.Tensor]:
        """The chain [A^(1), ..., A^(L)] of ``mode``."""
        self._require_fit("hierarchy")
        return list(self.A_[_checks.check_mode(mode, len(self.A_), "StandardHNCPD.hierarchy")])

    def topic_hierarchy(self) -> TensorTopics:
        """Per-mode trees: level-l topics of mode n are the columns of A_n^(1) ... A_n^(l); component c belongs
        to the level-1 topic argmax_j S_n^(1)[j, c], topic i of level l to argmax_j A_n^(l+1)[i, j]."""
        self._require_fit("topic_hierarchy")
        N, L = len(self.factors_), len(self.ranks) - 1
        topics = [list(self.factors_)]
        for l in range(1, L + 1):
            level = []
            for n in range(N):
                D = self.A_[n][0]
                for A in self.A_[n][1:l]:
                    D = D @ A
                level.append(D)
            topics.append(level)
        parents = [[TensorTopics.parents_from_rows(self.S_[n][0].mT)]
                   + [TensorTopics.parents_from_rows(self.A_[n][l]) for l in range(1, L)] for n in range(N)]
        return TensorTopics(topics, parents, shared=False)


class HNTF(FittedTensorHierarchy):
    """Cichocki et al.'s multilayer NTF with the hierarchy on ``mode`` (protocols §6.8): HNTF-(mode + 1).

    Layer 0: NCPD of rank r_0, (A_0 of ``mode``, and the other factors G_0 in ``order``). Layer l >= 1: the
    tensor T_l = [[I_{r_{l-1}}, G_{l-1}]] (r_{l-1} x the other modes' sizes) gets an NCPD of rank r_l,
    giving A_l (r_{l-1}, r_l) and new factors G_l of the other modes. Level l is [[A_0 A_1 ... A_l, G_l]]
    (modes put back in their order). Only ``mode`` carries the hierarchy; the other modes are re-learned.

    Args:
        ranks: (r_0, r_1, ..., r_L).
        mode: the hierarchical mode p (0-based: HNTF-1 is mode 0).
        order: the order of the other modes inside T_l (default increasing); the paper averages the two
            orders of a 3-way tensor, which changes the draws and the update order of the layer NCPDs.
        method: NCPD solver of every layer, "mu" (tensorly 0.4.3, the paper) or "als".
        max_iter, tol: of the layer NCPDs (the paper: 100 and 1e-6); ``n_iter_max=`` is max_iter's deprecated name.
        init: start of the layer NCPDs: "random" (U[0, 1), a fresh Generator seeded with ``seed`` per layer
            when ``seed`` is given, mirroring the paper's ``random_state=i`` at every layer; else ``generator``),
            "svd", or a callable ``init(layer, shape, rank) -> factors`` in T_l's mode order (e.g. with
            :func:`neuralnmf.tensor.numpy_streams.tensorly_random_factors`).
        ncpd, ncpd_kwargs: the first-layer solver when ``fit`` gets no factors.
    """

    def __init__(self, ranks, mode: int = 0, *, order=None, method: str = "mu", max_iter: int = 100,
                 tol: float = 1e-6, init="random", ncpd: str = "mu", ncpd_kwargs: dict | None = None,
                 seed: int | None = None, generator: torch.Generator | None = None, n_iter_max=_checks.DEPRECATED):
        fn = "HNTF"
        self.ranks = _checks.check_ranks(ranks, fn, min_len=2)
        mode = _checks.check_int(mode, fn, "mode", minimum=0)
        self.mode, self.order = mode, None if order is None else tuple(order)
        if method not in METHODS:
            raise ValueError(f"{fn}: method must be one of {METHODS}, got {method!r}")
        self.method = method
        max_iter = _checks.renamed(fn, "n_iter_max", n_iter_max, "max_iter", max_iter, 100)
        self.max_iter = _checks.check_int(max_iter, fn, "max_iter", minimum=0)
        self.tol = _checks.check_real(tol, fn, "tol")
        if not callable(init) and init not in ("random", "svd"):
            raise ValueError(f"{fn}: init must be 'random', 'svd' or a callable init(layer, shape, rank), got {init!r}")
        self.seed, self.generator = _checks.check_seed_or_generator(seed, generator, fn)
        self.init, self.ncpd, self.ncpd_kwargs = init, ncpd, ncpd_kwargs
        self.factors_ = self.A_ = self.levels_ = None

    def _layer_init(self, layer, shape, rank):
        if callable(self.init):
            return self.init(layer, shape, rank)
        if self.init == "svd":
            return "svd"
        gen = _checks.check_generator(self.seed, self.generator, type(self).__name__)  # a fresh one per start
        return random_init(shape, rank, generator=gen)

    def fit(self, tensor: torch.Tensor, factors=None, *, data_mask: torch.Tensor | None = None,
            mask=_checks.DEPRECATED) -> "HNTF":
        """Fit to ``tensor`` (I_1, ..., I_N) >= 0; ``factors``: the rank-r_0 layer (computed when None);
        ``data_mask``: 1 = observed (``mask=`` is its deprecated name)."""
        fn = "HNTF.fit"
        X, M = check_fit(tensor, _checks.renamed(fn, "mask", mask, "data_mask", data_mask), fn)
        N = X.dim()
        p = _checks.check_mode(self.mode, N, fn)
        others = tuple(m for m in range(N) if m != p) if self.order is None else self.order
        if sorted(others) != [m for m in range(N) if m != p]:
            raise ValueError(f"{fn}: order must list the modes other than {p} once each, got {self.order}")
        with torch.no_grad():
            F = first_layer(X, M, self.ranks[0], factors, self.ncpd, self.ncpd_kwargs, fn)
            A_chain, G = F[p], [F[m] for m in others]
            As, levels = [F[p]], [to_cptensor(F)]
            for l, (r_prev, r) in enumerate(zip(self.ranks[:-1], self.ranks[1:]), start=1):
                eye = torch.eye(r_prev, dtype=X.dtype, device=X.device)
                T = cp_to_tensor([eye, *G])  # (r_prev, sizes of the other modes)
                init = self._layer_init(l, tuple(T.shape), r)
                if not isinstance(init, str):
                    init = [f.to(dtype=X.dtype, device=X.device) for f in init]
                cp = ncpd(T, r, method=self.method, init=init, max_iter=self.max_iter, tol=self.tol)
                A_l, G = cp[1][0], list(cp[1][1:])
                As.append(A_l)
                A_chain = A_chain @ A_l
                level = [None] * N
                level[p] = A_chain
                for m, g in zip(others, G):
                    level[m] = g
                levels.append(to_cptensor(level))
        self.factors_, self.A_, self.levels_ = F, As, levels
        return self

    def hierarchy(self) -> list[torch.Tensor]:
        """The chain [A_0, A_1, ..., A_L] of the hierarchical mode."""
        self._require_fit("hierarchy")
        return list(self.A_)

    def topic_hierarchy(self) -> TensorTopics:
        """One tree (the hierarchical mode's): level-l topics are the columns of the level's factors (A_0 ...
        A_l for the hierarchical mode, the re-learned G_l for the others); topic i of level l feeds topic
        argmax_j A_{l+1}[i, j]."""
        self._require_fit("topic_hierarchy")
        parents = [TensorTopics.parents_from_rows(A) for A in self.A_[1:]]
        topics = [list(cp[1]) for cp in self.levels_]
        return TensorTopics(topics, [parents] * len(topics[0]), shared=True)
