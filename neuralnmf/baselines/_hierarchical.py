"""Hierarchical NMF: sequential NMF, one layer at a time, no feedback between layers (protocols section 6.1)."""

from __future__ import annotations

import torch

from . import _checks
from .._fitted import RenamedAttribute
from .fitted import FittedHierarchy, check_fit_inputs
from ._init import INITS, initial_factors, uniform
from ._mu import EarlyStop, _fit_mu

__all__ = ["HierarchicalNMF"]


def sequential_fit(X, W, labels, lam, ranks, *, iters, tol, check_every, init, eps, gen):
    """Layer-by-layer (SS)NMF of X (N, M) (hidden entries zero, mask W or None); (As, Ss, B, histories)."""
    As, Ss, hists, B = [], [], [], None
    inp, mask = X, W
    with torch.no_grad():
        for l, k in enumerate(ranks):
            A, S = initial_factors(inp, k, init, gen)
            if labels is not None and l == len(ranks) - 1:
                Y, Lc, c = labels
                B = uniform((c, k), gen, X)
                stop = EarlyStop(tol, check_every, iters, sqrt=False)  # ssnmf model 3: squared objective
                A, S, B, h = _fit_mu(inp, A, S, W=mask, B=B, Y=Y, Lc=Lc, lam=lam, iters=iters, stop=stop, eps=eps)
            else:
                stop = EarlyStop(tol, check_every, iters, sqrt=True)  # ssnmf model 1: ||X - A S||_F
                A, S, _, h = _fit_mu(inp, A, S, W=mask, B=None, Y=None, Lc=None, lam=0.0, iters=iters,
                                     stop=stop, eps=eps)
            As.append(A)
            Ss.append(S)
            hists.append(h)
            inp, mask = S, None
    return As, Ss, B, hists


class HierarchicalNMF(FittedHierarchy):
    """Sequential hierarchical NMF by multiplicative updates, the "Hier. NMF" baseline of the Neural NMF paper.

    Layer 0 factorizes X ~ A_0 S_0, layer l >= 1 factorizes S_{l-1} ~ A_l S_l, each with :func:`nmf_mu`'s
    updates and never revisited, so X ~ A_0 A_1 ... A_l S_l at depth l (papers' orientation, X = x^T).
    With labels the last layer is SSNMF model 3 (:func:`ssnmf_mu`) on S_{L-1} (on X when there is one layer):
    supervised when every sample is labeled, semi-supervised when ``label_mask`` has False entries.
    Each layer's updates never increase that layer's objective (see :mod:`neuralnmf.baselines._mu`).

    Args:
        ranks: k_0, ..., k_L (an int for one layer), e.g. (9, 4, 2).
        max_iter: maximum iterations per layer (``iters=`` is its deprecated name).
        tol: ssnmf's relative-decrease early stop per layer; 0 (default) runs all ``max_iter``, 1e-4 is ssnmf's
            silent default (see :class:`~neuralnmf.baselines._mu.EarlyStop`).
        check_every: iterations between tests of the stopping rule (one host sync each).
        init: "random" (U[0, 1) draws of A then S, ssnmf's init, default), "nndsvd" or "nndsvda" (NNDSVD of
            each layer's input; "nndsvda" fills NNDSVD's exact zeros with the input's mean, since
            multiplicative updates cannot move a zero). B is always drawn from U[0, 1).
        eps: added to every denominator (> 0).
        seed, generator: source of the random draws (at most one). ``seed`` makes every ``fit`` start from
            the same draws; a ``generator`` advances across fits; neither uses torch's global RNG. Draws are
            made layer by layer in the order A_l, S_l (then B).

    Attributes (after ``fit``; papers' orientation; the names without the underscore are deprecated):
        A_: list of (k_{l-1}, k_l) dictionaries, A_[0] is (N, k_0).
        S_: list of (k_l, M) representations (``codes(l)`` is the batch-first S_[l]^T).
        B_: (num_classes, k_L) classifier, or None without labels.
        histories_: list of per-layer 1-D tensors, the layer's objective after each iteration (its length is
            the number of iterations run).
        num_classes_: c, or None.
    """

    histories = RenamedAttribute("histories_")

    def __init__(self, ranks, *, max_iter: int = 10000, tol: float = 0.0, check_every: int = 10,
                 init: str = "random", eps: float = 1e-10, seed: int | None = None,
                 generator: torch.Generator | None = None, iters=_checks.DEPRECATED):
        fn = "HierarchicalNMF"
        self.ranks = _checks.check_ranks(ranks, fn)
        max_iter = _checks.renamed(fn, "iters", iters, "max_iter", max_iter, 10000)
        self.max_iter = _checks.check_int(max_iter, fn, "max_iter", minimum=0)
        self.tol = _checks.check_real(tol, fn, "tol")
        self.check_every = _checks.check_int(check_every, fn, "check_every", minimum=1)
        if init not in INITS:
            raise ValueError(f"{fn}: init must be one of {INITS}, got {init!r}")
        self.init = init
        self.eps = _checks.check_real(eps, fn, "eps", positive=True)
        self.seed, self.generator = _checks.check_seed_or_generator(seed, generator, fn)
        self.A_ = self.S_ = self.B_ = self.histories_ = self.num_classes_ = None

    def fit(self, x: torch.Tensor, y: torch.Tensor | None = None, label_mask: torch.Tensor | None = None,
            lam: float = 1.0, data_mask: torch.Tensor | None = None, *, num_classes: int | None = None):
        """Fit to x (M, N) >= 0, samples first; returns self.

        Args:
            x: (M, N) nonnegative data, float32 or float64, any device (kept throughout).
            y: (M,) integer class indices for the last layer; None: unsupervised.
            label_mask: (M,) bool, True = labeled; unlabeled samples contribute nothing to the class term and
                their ``y`` is never read. None: all labeled.
            lam: weight of the class term lam ||L (Y - B S_L)||^2 (ssnmf's default 1; the toy demo used 1e-5).
            data_mask: (M, N) bool or {0, 1}, True = observed; applies to layer 0 (the only one that sees x).
            num_classes: c; None: 1 + the largest labeled class.
        """
        fn = "HierarchicalNMF.fit"
        X, W, labels, lam = check_fit_inputs(x, y, label_mask, num_classes, lam, data_mask, fn)
        gen = _checks.check_generator(self.seed, self.generator, fn)
        As, Ss, B, hists = sequential_fit(X, W, labels, lam, self.ranks, iters=self.max_iter, tol=self.tol,
                                          check_every=self.check_every, init=self.init, eps=self.eps, gen=gen)
        self.A_, self.S_, self.B_, self.histories_ = As, Ss, B, hists
        self.num_classes_ = None if labels is None else labels[2]
        return self

    def __repr__(self) -> str:
        extra = "" if self.tol == 0 else f", tol={self.tol}"
        return f"HierarchicalNMF(ranks={self.ranks}, max_iter={self.max_iter}{extra}, init={self.init!r})"
