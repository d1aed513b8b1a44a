"""Deep NMF (Trigeorgis et al., ICML 2014 / TPAMI 2017), all factors nonnegative (protocols section 6.3)."""

from __future__ import annotations

import torch

from . import _checks
from .._fitted import RenamedAttribute
from .fitted import FittedHierarchy, check_fit_inputs
from ._hierarchical import sequential_fit
from ._init import INITS
from ._mu import EarlyStop, label_step, objective

__all__ = ["DeepNMF"]


class DeepNMF(FittedHierarchy):
    """Deep NMF X ~ Z_0 Z_1 ... Z_L H_L with every factor >= 0: layer-wise pretraining, then joint fine-tuning.

    Papers' orientation (X = x^T, N x M); layers are 0-based, Psi_l = Z_0 ... Z_l, Psi_{-1} = I.

    **Pretraining** is :class:`HierarchicalNMF` with ``pretrain_max_iter`` Lee-Seung iterations per layer
    (X ~ Z_0 H_0, H_0 ~ Z_1 H_1, ...) started from NNDSVD of each layer's input, as the reference ``nmf.m``.
    The default ``pretrain_init="nndsvda"`` fills NNDSVD's exact zeros with the input's mean, because
    multiplicative updates can never move an entry away from zero; "nndsvd" keeps them, "random" uses U[0, 1).

    **Fine-tuning** (``finetune_max_iter`` sweeps) minimizes the single objective

        E = ||W (X - Psi_L H_L)||^2 + lam ||L (Y - B H_L)||^2          (the class term only with labels)

    Each sweep: H~_L = H_L and H~_l = Z_{l+1} H~_{l+1}; then for l = 0..L, in order,

        Z_l <- Z_l (Psi_{l-1}^T (W X) H~_l^T) / (Psi_{l-1}^T (W (Psi_{l-1} Z_l H~_l)) H~_l^T + eps)
        H_l <- H_l (Psi_l^T (W X)) / (Psi_l^T (W (Psi_l H_l)) + eps)                         (l < L)

    and at the last layer, after all Z's: B with the old H_L, then H_L with the SSNMF ratio terms:

        B   <- B (L Y) H_L^T / ((L (B H_L)) H_L^T + eps)
        H_L <- H_L (Psi_L^T (W X) + lam B^T (L Y)) / (Psi_L^T (W (Psi_L H_L)) + lam B^T (L (B H_L)) + eps)

    These are the multiplicative updates of section 6.3 (Lee-Seung for X ~ Psi_{l-1} Z_l H~_l and
    X ~ Psi_l H_l), with ssnmf's eps added to the denominators and the masks W (data) and L (labels).
    When Z_l is updated, Z_{l+1}, ..., Z_L and H_L have not moved yet in this sweep, so H~_l is current and
    Psi_{l-1} Z_l H~_l = Psi_L H_L: each Z, B and H_L update is a majorize-minimize step of
    E + 2 eps (sum_l sum Z_l + lam sum B + sum H_L) (the argument of :mod:`neuralnmf.baselines._mu`), which
    therefore never increases in exact arithmetic. The H_l of the inner layers do not enter E: they are each
    layer's representation, re-fitted every sweep to the current Psi_l (as in Trigeorgis's reference code), and
    are what ``codes(l)`` and ``reconstruct(l)`` use.

    **(Semi-)supervised variant (our decision; the Neural NMF paper does not specify it):** option (a) of the
    protocols: the class term lam ||L (Y - B H_L)||^2 of SSNMF model 3 on the deepest representation. B and
    H_L get the SSNMF-type ratio terms above; unlabeled samples (``label_mask`` False) have zero columns in L
    and Y, so they contribute nothing (semi-supervised). Pretraining is then the supervised
    :class:`HierarchicalNMF` (last layer SSNMF model 3 with the same lam), which also initializes B
    (U[0, 1) draw, then pretrained).

    Args:
        ranks: k_0, ..., k_L (an int for one layer).
        pretrain_max_iter: Lee-Seung iterations per pretraining layer (reference: 300).
        finetune_max_iter: fine-tuning sweeps (reference: 500, no early stop). ``pretrain_iters=`` and
            ``finetune_iters=`` are their deprecated names.
        pretrain_tol, finetune_tol: ssnmf's relative-decrease early stop (0 = off, the default); for
            fine-tuning it is applied to E.
        check_every: iterations between tests of the stopping rules (one host sync each).
        pretrain_init: "nndsvda" (default), "nndsvd" or "random".
        eps: added to every denominator (> 0).
        seed, generator: source of the random draws (B, U[0, 1) inits, NNDSVD components beyond min(N, M));
            at most one. ``seed`` makes every ``fit`` identical; neither uses torch's global RNG.

    Attributes (after ``fit``; papers' orientation; the names without the underscore are deprecated):
        A_: the Z's, list of (k_{l-1}, k_l), A_[0] is (N, k_0).
        S_: the H's, list of (k_l, M).
        B_: (num_classes, k_L) classifier or None.
        pretrain_histories_: per-layer objective histories of the pretraining.
        history_: E after each fine-tuning sweep.
        num_classes_: c, or None.
    """

    pretrain_histories, history = RenamedAttribute("pretrain_histories_"), RenamedAttribute("history_")

    def __init__(self, ranks, *, pretrain_max_iter: int = 300, finetune_max_iter: int = 500,
                 pretrain_tol: float = 0.0, finetune_tol: float = 0.0, check_every: int = 10,
                 pretrain_init: str = "nndsvda", eps: float = 1e-10, seed: int | None = None,
                 generator: torch.Generator | None = None, pretrain_iters=_checks.DEPRECATED,
                 finetune_iters=_checks.DEPRECATED):
        fn = "DeepNMF"
        self.ranks = _checks.check_ranks(ranks, fn)
        pretrain_max_iter = _checks.renamed(fn, "pretrain_iters", pretrain_iters, "pretrain_max_iter",
                                            pretrain_max_iter, 300)
        finetune_max_iter = _checks.renamed(fn, "finetune_iters", finetune_iters, "finetune_max_iter",
                                            finetune_max_iter, 500)
        self.pretrain_max_iter = _checks.check_int(pretrain_max_iter, fn, "pretrain_max_iter", minimum=0)
        self.finetune_max_iter = _checks.check_int(finetune_max_iter, fn, "finetune_max_iter", minimum=0)
        self.pretrain_tol = _checks.check_real(pretrain_tol, fn, "pretrain_tol")
        self.finetune_tol = _checks.check_real(finetune_tol, fn, "finetune_tol")
        self.check_every = _checks.check_int(check_every, fn, "check_every", minimum=1)
        if pretrain_init not in INITS:
            raise ValueError(f"{fn}: pretrain_init must be one of {INITS}, got {pretrain_init!r}")
        self.pretrain_init = pretrain_init
        self.eps = _checks.check_real(eps, fn, "eps", positive=True)
        self.seed, self.generator = _checks.check_seed_or_generator(seed, generator, fn)
        self.A_ = self.S_ = self.B_ = self.pretrain_histories_ = self.history_ = self.num_classes_ = None

    def fit(self, x: torch.Tensor, y: torch.Tensor | None = None, label_mask: torch.Tensor | None = None,
            lam: float = 1.0, data_mask: torch.Tensor | None = None, *, num_classes: int | None = None):
        """Pretrain and fine-tune on x (M, N) >= 0, samples first; returns self.

        Args:
            x: (M, N) nonnegative data, float32 or float64, any device (kept throughout).
            y: (M,) integer class indices (supervises the deepest layer); None: unsupervised.
            label_mask: (M,) bool, True = labeled (unlabeled samples contribute nothing). None: all labeled.
            lam: weight of the class term (>= 0).
            data_mask: (M, N) bool or {0, 1}, True = observed; hidden entries are ignored.
            num_classes: c; None: 1 + the largest labeled class.
        """
        fn = "DeepNMF.fit"
        X, W, labels, lam = check_fit_inputs(x, y, label_mask, num_classes, lam, data_mask, fn)
        gen = _checks.check_generator(self.seed, self.generator, fn)
        Z, H, B, pre = sequential_fit(X, W, labels, lam, self.ranks, iters=self.pretrain_max_iter,
                                      tol=self.pretrain_tol, check_every=self.check_every,
                                      init=self.pretrain_init, eps=self.eps, gen=gen)
        Y, Lc = (None, None) if labels is None else labels[:2]
        stop = EarlyStop(self.finetune_tol, self.check_every, self.finetune_max_iter, sqrt=False)
        with torch.no_grad():
            B, history = finetune(X, W, Z, H, B, Y, Lc, lam, iters=self.finetune_max_iter, stop=stop, eps=self.eps)
        self.A_, self.S_, self.B_, self.pretrain_histories_, self.history_ = Z, H, B, pre, history
        self.num_classes_ = None if labels is None else labels[2]
        return self

    def __repr__(self) -> str:
        return (f"DeepNMF(ranks={self.ranks}, pretrain_max_iter={self.pretrain_max_iter}, "
                f"finetune_max_iter={self.finetune_max_iter}, pretrain_init={self.pretrain_init!r})")


def _masked_gram_apply(Psi, F, W, G):
    """Psi^T (W (Psi F)) with Psi None = identity; without a mask, G F with G = Psi^T Psi."""
    if W is None:
        return F if G is None else G @ F
    R = F if Psi is None else Psi @ F
    R = W * R
    return R if Psi is None else Psi.mT @ R


def finetune(X, W, Z, H, B, Y, Lc, lam, *, iters, stop, eps):
    """Fine-tuning sweeps on X (N, M) (hidden entries zero); Z and H are lists updated in place.

    Returns (B, history (n,) of E after each sweep). Without a mask the products go through Gram matrices.
    """
    L = len(Z)
    history = torch.empty(iters, dtype=X.dtype, device=X.device)
    n = 0
    for t in range(iters):
        Ht = [None] * L
        Ht[-1] = H[-1]
        for l in range(L - 2, -1, -1):
            Ht[l] = Z[l + 1] @ Ht[l + 1]
        PX, Psi, G = X, None, None  # Psi_{l-1}^T (W X), Psi_{l-1} (None = I), Psi_{l-1}^T Psi_{l-1}
        for l in range(L):
            Hl = Ht[l]
            if W is None:
                den = _masked_gram_apply(Psi, Z[l], None, G) @ (Hl @ Hl.mT)
            else:
                den = _masked_gram_apply(Psi, Z[l] @ Hl, W, None) @ Hl.mT
            Z[l] = Z[l] * (PX @ Hl.mT) / (den + eps)
            Psi = Z[l] if Psi is None else Psi @ Z[l]
            G = Psi.mT @ Psi
            PX = Z[l].mT @ PX
            if l < L - 1:
                H[l] = H[l] * PX / (_masked_gram_apply(Psi, H[l], W, G) + eps)
        H[-1], B = label_step(H[-1], PX, _masked_gram_apply(Psi, H[-1], W, G), B, Y, Lc, lam, eps)
        R = Psi @ H[-1]
        history[t] = objective(X - R if W is None else X - W * R, H[-1], B, Y, Lc, lam)
        n = t + 1
        if stop(history, t):
            break
    return B, history[:n]
