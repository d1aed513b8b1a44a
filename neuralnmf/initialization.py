"""Initial nonnegative dictionaries: uniform random, NNDSVD (Boutsidis & Gallopoulos 2008), flat NMF by exact
alternating NNLS, and the hierarchical start of Neural NMF built from flat NMFs.

Data is batch first here, like the models: ``x`` is (samples, features), dense or sparse (COO/CSR, never
densified); dictionaries are (features, rank), one topic per column.

Why the default start of :class:`neuralnmf.NeuralNMF` is :func:`hierarchical_nmf_init`: on real corpora a
hierarchy trained from NNDSVD of each layer's codes ends in poor local minima at the top levels, and random starts
are worse. Starting every level at the flat NMF of its rank puts each composed dictionary A_0 ⋯ A_l at the best
fit one can expect at that rank before any training step, and training then only has to make the levels agree.
"""

from __future__ import annotations

import torch

from . import sparse_products
from ._checks import check_data
from .threads import loop_threads, step_work
from .ops import nnls, nnls_from_products
from .tree_start import (DEFAULT_MIN_CHILDREN, MAX_SHARE, group_topics, topic_codes, topic_profiles, topic_shares,
                         tree_nmf)

__all__ = ["nndsvd", "nndsvd_factors", "uniform", "flat_nmf", "semi_supervised_nmf", "FlatNMF", "hierarchical_nmf_init",
           "tree_levels", "INIT_METHODS", "LAYER_INIT_METHODS"]

LAYER_INIT_METHODS = ("uniform", "nndsvd", "nndsvda", "nndsvdar")
"""Initializations of a single :class:`neuralnmf.NNLSLayer`."""

INIT_METHODS = ("nmf", *LAYER_INIT_METHODS)
"""Initializations of a :class:`neuralnmf.NeuralNMF`: "nmf" (the default, :func:`hierarchical_nmf_init`) or a
layer initialization applied layer by layer."""

DENSE_SVD_LIMIT = 4_000_000
"""A dense matrix with at most this many entries gets a full SVD for NNDSVD; larger or sparse ones a randomized
truncated SVD (Halko, Martinsson & Tropp 2011), which only needs products with the matrix."""


def uniform(rows: int, cols: int, *, generator=None, dtype=None, device=None) -> torch.Tensor:
    """U[0, 1) entries, the initialization of the Neural NMF paper. (rows, cols).

    Drawn in float64 on the generator's device (the CPU for torch's global RNG), then cast and moved, so one seed
    gives the same start in float32 and float64, on every device.
    """
    gen_device = generator.device if generator is not None else torch.device("cpu")
    draw = torch.rand(rows, cols, generator=generator, dtype=torch.float64, device=gen_device)
    return draw.to(dtype=dtype or torch.get_default_dtype(), device=device)


POWER_ITERATIONS = 4
"""Power iterations of the randomized SVD behind NNDSVD. More bring its singular vectors closer to the exact
ones (20 Newsgroups' tf-idf at rank 50: a mean cosine of 0.64 with 4, 0.81 with 7, 0.93 with 12) but not a
better NMF: flat NMF from 4, 7 or 12 ends with the same error and equally coherent topics (40 seeds,
docs/topic_quality.md), so the default keeps the cheaper start."""


def _truncated_svd(x: torch.Tensor, q: int, generator, randomized: bool | None = None,
                   power_iterations: int = POWER_ITERATIONS):
    """Leading q singular triplets of x (M, N): U (M, q), s (q,), V (N, q).

    ``randomized`` None: a full SVD for a small dense x, else a randomized range finder with ``power_iterations``
    power iterations and 10 extra columns drawn from ``generator`` (float64 on the CPU, so a seed gives the same
    start everywhere).
    """
    M, N = x.shape
    if randomized is None:
        randomized = x.layout != torch.strided or M * N > DENSE_SVD_LIMIT
    if not randomized:
        U, s, Vh = torch.linalg.svd(x, full_matrices=False)
        return U[:, :q], s[:q], Vh[:q].mT
    width = min(q + 10, M, N)
    omega = torch.randn(N, width, generator=generator, dtype=torch.float64).to(dtype=x.dtype, device=x.device)
    Q = torch.linalg.qr(sparse_products.matmul(x, omega)).Q  # (M, width)
    for _ in range(power_iterations):
        Q = torch.linalg.qr(sparse_products.matmul_t(x, Q)).Q  # (N, width)
        Q = torch.linalg.qr(sparse_products.matmul(x, Q)).Q  # (M, width)
    Bt = sparse_products.matmul_t(x, Q)  # (N, width) = (Q^T x)^T
    Vb, s, UbT = torch.linalg.svd(Bt, full_matrices=False)  # Bt = Vb diag(s) Ub^T
    return (Q @ UbT.mT)[:, :q], s[:q], Vb[:, :q]


def nndsvd_factors(x: torch.Tensor, rank: int, variant: str = "nndsvda", generator=None, *,
                   randomized: bool | None = None, power_iterations: int = POWER_ITERATIONS):
    """NNDSVD of x (samples M, features N) >= 0, batch first: W (N, rank) and H (M, rank) with x ~ H W^T.

    Vectorised; a sparse x is never densified. ``variant`` as in :func:`nndsvd`. ``randomized``: the SVD used
    (default: exact for a small dense x, randomized for a sparse or large one). ``power_iterations``: of the
    randomized SVD (:data:`POWER_ITERATIONS`).
    """
    if isinstance(power_iterations, bool) or not isinstance(power_iterations, int):
        raise TypeError(f"nndsvd_factors: power_iterations must be an integer, got {power_iterations!r}")
    if power_iterations < 0:
        raise ValueError(f"nndsvd_factors: power_iterations must be >= 0, got {power_iterations}")
    M, N = x.shape
    q = min(rank, M, N)
    U, s, V = _truncated_svd(x, q, generator, randomized, power_iterations)
    up, un, vp, vn = U.clamp_min(0), (-U).clamp_min(0), V.clamp_min(0), (-V).clamp_min(0)
    nup, nun = torch.linalg.vector_norm(up, dim=0), torch.linalg.vector_norm(un, dim=0)
    nvp, nvn = torch.linalg.vector_norm(vp, dim=0), torch.linalg.vector_norm(vn, dim=0)
    pos = nup * nvp >= nun * nvn
    u, v = torch.where(pos, up, un), torch.where(pos, vp, vn)
    nu, nv = torch.where(pos, nup, nun), torch.where(pos, nvp, nvn)
    tiny = torch.finfo(x.dtype).tiny
    scale = (s * nu * nv).sqrt()
    W = v * (scale / nv.clamp_min(tiny))
    H = u * (scale / nu.clamp_min(tiny))
    total = sparse_products.csr_pair(x).x.values().sum() if x.layout != torch.strided else x.sum()
    mean = total / (M * N)
    if rank > q:  # more topics than singular pairs: U[0, 1) draws scaled to the data, W's first, then H's
        W = torch.cat([W, uniform(N, rank - q, generator=generator, dtype=x.dtype, device=x.device) * mean.sqrt()], 1)
        H = torch.cat([H, uniform(rank - q, M, generator=generator, dtype=x.dtype, device=x.device).mT * mean.sqrt()],
                      1)
    if variant == "nndsvda":
        W, H = torch.where(W == 0, mean, W), torch.where(H == 0, mean, H)
    elif variant == "nndsvdar":
        noise = uniform(*W.shape, generator=generator, dtype=x.dtype, device=x.device) * mean / 100
        W = torch.where(W == 0, noise, W)
    return W.contiguous(), H.contiguous()


def nndsvd(X: torch.Tensor, rank: int, *, variant: str = "nndsvd", generator=None) -> torch.Tensor:
    """Nonnegative dictionary W (N, rank) from the leading singular pairs of X (N, M) >= 0 (columns are samples).

    Each singular pair contributes the dominant of its positive or negative parts, scaled as in NNDSVD.
    ``variant``: "nndsvd" leaves exact zeros (multiplicative updates cannot leave them), "nndsvda" fills them
    with the mean of X, "nndsvdar" with small random values. Columns beyond min(N, M) are uniform random
    scaled to the data. A sparse X is never densified (randomized SVD from products with X).
    """
    if variant not in ("nndsvd", "nndsvda", "nndsvdar"):
        raise ValueError(f"nndsvd: variant must be 'nndsvd', 'nndsvda' or 'nndsvdar', got {variant!r}")
    if X.dim() != 2:
        raise ValueError(f"nndsvd: X must be 2-D (N, M), got shape {tuple(X.shape)}")
    x = X.mT if X.layout == torch.strided else X.t().coalesce() if X.layout == torch.sparse_coo else X.t()
    check_data(x, "nndsvd", "X")
    return nndsvd_factors(x, rank, variant, generator)[0]


class FlatNMF:
    """Result of :func:`flat_nmf`: x ~ codes @ dictionary^T.

    Attributes:
        dictionary: (features, rank) >= 0, one topic per column.
        codes: (samples, rank) >= 0, the exact NNLS codes of the samples against ``dictionary``.
        relative_error: ||x - codes dictionary^T|| / ||x||.
        iterations: alternating steps taken.
    """

    def __init__(self, dictionary, codes, relative_error: float, iterations: int):
        self.dictionary, self.codes = dictionary, codes
        self.relative_error, self.iterations = relative_error, iterations

    def __repr__(self) -> str:
        return (f"FlatNMF(dictionary {tuple(self.dictionary.shape)}, codes {tuple(self.codes.shape)}, "
                f"relative_error={self.relative_error:.4f}, iterations={self.iterations})")


@torch.no_grad()
def flat_nmf(x: torch.Tensor, rank: int, *, max_iter: int = 200, tol: float = 1e-5, generator=None,
             init: torch.Tensor | None = None) -> FlatNMF:
    """Flat NMF x ~ H W^T by alternating exact NNLS (ANLS) on the library's operator, from NNDSVD.

    Args:
        x: (samples, features) >= 0, dense or sparse (COO/CSR; never densified: every step uses the products
            x W and x^T H).
        rank: number of topics.
        max_iter: bound on alternating steps (each: codes given topics, then topics given codes, both exact).
        tol: stop when the relative error decreases by less than ``tol`` (relative) in one step.
        generator: seeds the randomized SVD of the NNDSVD start (default: a fixed seed, so the same data always
            gives the same result; randomized for dense data too, so that dense and sparse copies start alike).
        init: (features, rank) >= 0, a dictionary to start from instead of NNDSVD (a warm start, or another
            method's start: examples/coherence_diagnostics.py).

    Returns:
        :class:`FlatNMF` with the dictionary W (features, rank) and the codes H (samples, rank) solved last.
    """
    check_data(x, "flat_nmf", "x")
    if init is not None:
        check_data(init, "flat_nmf", "init", sparse=False)
        if tuple(init.shape) != (x.shape[1], rank):
            raise ValueError(f"flat_nmf: init must have shape (features, rank) = ({x.shape[1]}, {rank}), got "
                             f"{tuple(init.shape)}")
    if generator is None:  # deterministic by default: the same data always gives the same start
        generator = torch.Generator().manual_seed(0)
    energy = sparse_products.squared_norm(x).clamp_min(torch.finfo(x.dtype).tiny)
    # plain NNDSVD: exact NNLS steps move entries off zero freely, and the mean that NNDSVDa fills zeros with
    # smears every topic (on the papers' toy table ANLS from NNDSVDa stalls at 0.108 instead of 0.0236)
    if init is None:
        W, _ = nndsvd_factors(x, rank, "nndsvd", generator, randomized=True)  # the same start, dense or sparse
    else:
        W = init.to(dtype=x.dtype, device=x.device)
    previous, error, steps = None, float("nan"), 0
    for steps in range(1, max_iter + 1):
        H = topic_codes(x, W)  # (M, k): codes of the samples
        xtH = sparse_products.matmul_t(x, H)  # (N, k)
        W = nnls_from_products(xtH.mT, H).mT  # (N, k): topics given the codes
        gram = ((H.mT @ H) * (W.mT @ W)).sum()
        error = float(((energy - 2 * (W * xtH).sum() + gram).clamp_min(0) / energy).sqrt())
        if previous is not None and previous - error <= tol * previous:
            break
        previous = error
    H = topic_codes(x, W)
    return FlatNMF(W, H, error, steps)


@torch.no_grad()
def semi_supervised_nmf(x: torch.Tensor, rank: int, y: torch.Tensor, label_mask: torch.Tensor | None = None, *,
                        num_classes: int | None = None, lam: float = 1.0, max_iter: int = 200, tol: float = 1e-5,
                        generator=None) -> FlatNMF:
    """(Semi-)supervised NMF by exact alternating NNLS, from :func:`flat_nmf`: the SSNMF objective

        min_{W, H, B >= 0} ||x - H W^T||^2 + lam ||L (Y - H B^T)||^2

    (Y one-hot labels, L the labeled rows), the papers' SSNMF solved by exact steps: B given H, then each
    document's codes given W and B (labeled documents against the stacked [W; sqrt(lam) B]), then W given H. The
    labels pull each topic towards documents of one class, which is what the published supervised models owe
    their accuracy to (docs/supervision.md).

    Args:
        x: (samples, features) >= 0, dense or sparse (never densified).
        rank: number of topics.
        y: (samples,) class indices (entries of unlabeled samples are not read).
        label_mask: (samples,) bool, True = labeled (default: all).
        num_classes: default 1 + the largest labeled class.
        lam: weight of the label term, in the papers' units (ssnmf's default 1).
        max_iter, tol, generator: as in :func:`flat_nmf` (``tol`` on the objective's relative decrease).

    Returns:
        :class:`FlatNMF` with the dictionary W (features, rank), the codes H (samples, rank) of the samples by
        exact NNLS against W alone (what the documents get once the labels are gone), ``classifier`` B
        (num_classes, rank) and ``labeled_codes`` (samples, rank), the codes of the objective's last step (with
        the label term for labeled samples).
    """
    start = flat_nmf(x, rank, max_iter=max_iter, tol=tol, generator=generator)
    W, H = start.dictionary, start.codes
    lab = torch.ones(x.shape[0], dtype=torch.bool, device=W.device) if label_mask is None else label_mask.bool()
    c = int(y[lab].max()) + 1 if num_classes is None else int(num_classes)
    Y = torch.nn.functional.one_hot(y[lab].long(), c).to(W.dtype)  # (labeled, c)
    energy = sparse_products.squared_norm(x).clamp_min(torch.finfo(x.dtype).tiny)
    previous, steps = None, 0
    for steps in range(1, max_iter + 1):
        B = nnls(Y, H[lab]).mT  # (c, k): the labels by the labeled codes
        XW = sparse_products.matmul(x, W)  # (M, k)
        H = nnls_from_products(XW.mT, W).mT
        stacked = torch.cat([W, lam ** 0.5 * B], 0)  # Gram W^T W + lam B^T B
        H[lab] = nnls_from_products((XW[lab] + lam * Y @ B).mT, stacked).mT
        xtH = sparse_products.matmul_t(x, H)
        W = nnls_from_products(xtH.mT, H).mT
        data = (energy - 2 * (W * xtH).sum() + ((H.mT @ H) * (W.mT @ W)).sum()).clamp_min(0)
        objective = float(data + lam * ((Y - H[lab] @ B.mT) ** 2).sum())
        if previous is not None and previous - objective <= tol * previous:
            break
        previous = objective
    labeled_codes = H
    H = topic_codes(x, W)
    gram = ((H.mT @ H) * (W.mT @ W)).sum()
    error = float(((energy - 2 * (W * sparse_products.matmul_t(x, H)).sum() + gram).clamp_min(0) / energy).sqrt())
    result = FlatNMF(W, H, error, steps)
    result.classifier, result.labeled_codes = B, labeled_codes
    return result


def _unit_columns(D: torch.Tensor) -> torch.Tensor:
    """Column norms of D, with 1 for zero columns (so that dividing by them leaves those columns alone)."""
    norms = torch.linalg.vector_norm(D, dim=0)
    return torch.where(norms > 0, norms, torch.ones_like(norms))


@torch.no_grad()
def hierarchical_nmf_init(x: torch.Tensor, ranks, *, max_iter: int = 200, tol: float = 1e-5,
                          generator=None, labels: dict | None = None, tree=False,
                          min_children: int = DEFAULT_MIN_CHILDREN) -> list[torch.Tensor]:
    """Dictionaries [A_0 (features, k_0), A_1 (k_0, k_1), ...] that start every level at the flat NMF of its rank,
    or (``tree``) every unlabeled level above the first as a tree over the level below.

    W_l is the flat NMF dictionary of x at rank k_l (:func:`flat_nmf`). Then A_0 = W_0 and
    A_l = argmin_{A >= 0} ||W_l - A_0 ⋯ A_{l-1} A||_F (exact NNLS, one column per topic), so each composed dictionary
    A_0 ⋯ A_l is the closest the hierarchy can come to W_l. Every composed dictionary gets unit-norm columns (the
    scale is free: A S = (A D)(D^-1 S)), which keeps the levels' codes on one scale.

    Args:
        x: (samples, features) >= 0, dense or sparse (never densified).
        ranks: topics per level, e.g. (64, 16, 4).
        max_iter, tol, generator: as in :func:`flat_nmf`.
        labels: {level: (y (samples,), label_mask (samples,) bool or None, num_classes)}: W_l is then the
            :func:`semi_supervised_nmf` of x at rank k_l with the labels of the nearest labeled level at or above l
            (the deepest level's labels shape every level beneath it), so that supervised levels start at the
            supervised NMF of their rank.
        tree: True: the levels of :func:`tree_levels` (l >= 1, no labeled level at or above l), or a collection
            of levels >= 1, start as a tree: the level-(l-1) topics grouped by similarity into k_l parents of at least ``min_children``
            (:func:`neuralnmf.tree_start.group_topics`), each child's weight fitted to x
            (:func:`neuralnmf.tree_start.tree_nmf`); A_l then has one nonzero per row.
    """
    ranks = [int(r) for r in ranks]
    As: list[torch.Tensor] = []
    D = None
    structured = tree_levels(len(ranks), labels) if tree is True else tuple(tree or ())
    with loop_threads(step_work(x, max(ranks))):  # one thread for a small problem (neuralnmf.threads)
        for l, k in enumerate(ranks):
            above = [level for level in (labels or {}) if level >= l]
            if l in structured:
                H = topic_codes(x, D)
                groups = group_topics(topic_profiles(D, H), k, min_children, shares=topic_shares(H, D).cpu(),
                                      max_share=MAX_SHARE / k)
                A = tree_nmf(x, D, groups, k, max_iter=max_iter, tol=tol)
                D = D @ A
                As.append(A.contiguous())
                continue
            if above:
                y, mask, c = labels[min(above)]
                W = semi_supervised_nmf(x, k, y, mask, num_classes=c, max_iter=max_iter, tol=tol,
                                        generator=generator).dictionary
            else:
                W = flat_nmf(x, k, max_iter=max_iter, tol=tol, generator=generator).dictionary
            if D is None:
                A = W / _unit_columns(W)
                D = A
            else:
                A = nnls(W, D)  # (k_prev, k)
                A = A / _unit_columns(D @ A)
                D = D @ A
            As.append(A.contiguous())
    return As


def tree_levels(levels: int, labels=None) -> tuple[int, ...]:
    """The levels that the tree start structures: l >= 1 with no labeled level at or above l (labels: a dict or
    collection of labeled levels). Supervised levels keep the soft dictionaries of the supervised start."""
    labeled = list(labels or ())
    return tuple(l for l in range(1, levels) if not any(level >= l for level in labeled))
