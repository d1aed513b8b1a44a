"""Multi-HNTF (Vendrow, Haddock, Needell, ICASSP 2022): one hierarchy shared by all modes of an NCPD.

    X ~ [[F_1, ..., F_N]] ~ [[F_1 W_1, ..., F_N W_1]] ~ [[F_1 W_1 W_2, ..., F_N W_1 W_2]] ~ ...

F_n (I_n, r_0) are the NCPD factors, W_l (r_{l-1}, r_l) >= 0 is shared by every mode, so component i of level
l - 1 feeds topic j of level l with weight W_l[i, j] in every mode at once: a single topic hierarchy.

* :class:`MultiHNTF` trains it as published: layer by layer, each W_l by the paper's multiplicative updates
  with the factors below fixed (protocols §6.9).
* :class:`NeuralMultiHNTF` is the same model as a torch module trained end to end by backpropagation
  (:func:`neuralnmf.tensor.fit_tensor`), the first-layer factors included (the seeds' future work), with an
  optional classifier on the deepest factors of one mode (supervised Multi-HNTF).
"""

from __future__ import annotations

import torch
from torch import nn

from . import _checks
from .fitted import FittedTensorHierarchy, check_fit
from .ncpd import first_layer
from .trainable import FactorMatrices, TensorModelMixin, TensorModelOutput, TensorTopics, draw
from .cp import cp_norm_sq, cp_to_tensor, khatri_rao, to_cptensor, unfold

__all__ = ["multi_hntf_matrix", "MultiHNTF", "NeuralMultiHNTF", "multi_hntf_layer"]


def multi_hntf_layer(X, factors, W, *, max_iter: int = 800, eps: float = 1e-10, mask=None,
                     iters=_checks.DEPRECATED) -> torch.Tensor:
    """The paper's ``run_single``: fit one shared W (r_prev, r) to X ~ [[F_1 W, ..., F_N W]] with the F fixed.

    Each iteration computes, from the same current W and for every mode i, the multiplicative update of the
    model X_(i) ~ F_i W H_i with H_i = KR({F_j W}_{j != i})^T fixed:

        W_i = W * (F_i^T X_(i) H_i^T) / (eps + F_i^T F_i W H_i H_i^T)

    and then W <- (mean_i W_i + W) / 2. For N = 3 this is the code's (W_0 + W_1 + W_2 + 3 W) / 6; the code
    appends the old W three times whatever N is, the mean form generalizes it to N modes. With a mask,
    X_(i) H_i^T uses the masked data and F_i W H_i H_i^T becomes (M ⊙ [[F W]])_(i) H_i^T (weighted MU).

    Args:
        X: (I_1, ..., I_N) with hidden entries zero; factors: N matrices (I_n, r_prev); W: (r_prev, r) start.
        max_iter: updates (``iters=`` is its deprecated name).
    Returns:
        W (r_prev, r).
    """
    max_iter = _checks.renamed("multi_hntf_layer", "iters", iters, "max_iter", max_iter, 800)
    N = X.dim()
    grams = [F.mT @ F for F in factors]
    for _ in range(max_iter):
        G = [F @ W for F in factors]
        W_sum = torch.zeros_like(W)
        if mask is not None:
            R = mask * cp_to_tensor(G)
        for i in range(N):
            K = khatri_rao(G, skip=i)  # H_i^T: (prod_{j != i} I_j, r)
            num = factors[i].mT @ (unfold(X, i) @ K)
            if mask is None:
                HH = None
                for j in range(N):
                    if j != i:
                        HH = G[j].mT @ G[j] if HH is None else HH * (G[j].mT @ G[j])
                den = grams[i] @ W @ HH
            else:
                den = factors[i].mT @ (unfold(R, i) @ K)
            W_sum = W_sum + W * num / (eps + den)
        W = (W_sum / N + W) / 2
    return W


def multi_hntf_matrix(x: torch.Tensor, A: torch.Tensor, S: torch.Tensor, W: torch.Tensor, *, max_iter: int = 800,
                      y: torch.Tensor | None = None, label_mask: torch.Tensor | None = None,
                      B: torch.Tensor | None = None, lam: float = 1.0, mask_unlabeled: bool = True,
                      eps: float = 1e-10, iters=_checks.DEPRECATED):
    """The paper's second Multi-HNTF layer of a matrix: X ~ (A W)(W^T S), A and S fixed, W (k, r) >= 0 learned.

    ``run_HNMF_unsupervised_single`` (protocols §6.9): per iteration, from the same W,
    W1 = W ⊙ (A^T X S^T W) / (eps + A^T A W W^T S S^T W) and
    W2 = W ⊙ [(W^T A^T X S^T) / (eps + W^T A^T A W W^T S S^T)]^T, then W <- (2 W + W1 + W2) / 4.
    With labels, ``run_HNMF_supervised_single``: W2 gains lam B^T Y S^T above and lam B^T B W^T S S^T below, and
    after W, B <- B ⊙ (Y S^T W) / (eps + B W^T S S^T W), for ||X - A W W^T S||^2 + lam ||Y - B W^T S||^2
    with Y the one-hot labels, unlabeled columns zero. The paper passes ``Y ⊙ L`` with no mask, so unlabeled
    documents are fitted towards the zero label vector (``mask_unlabeled=False``, protocols §5.5); the default
    masks them out of the label term (S S^T below becomes S_L S_L^T over the labeled documents), as SSNMF does.

    Every product goes through k x k Gram matrices (A^T X S^T, A^T A, S S^T) formed once, so an iteration costs
    O(k^3) whatever the data's size; the iterates equal the paper's to round-off. Float64 recommended.

    Args:
        x: (M, N) data batch first (X = x^T), dense or sparse; A: (N, k) first-layer topics; S: (k, M) codes.
        W: (k, r) start (the paper: ``np.random.rand(k, r)``); max_iter: updates (the paper: 800; ``iters=`` is
            its deprecated name).
        y: (M,) class indices in [0, c); label_mask: (M,) bool, True = labeled (default: all).
        B: (c, r) classifier start, needed with y (the paper: ``np.random.rand(r, r)``, drawn after W).
        lam: label weight (the paper: 1). eps: added to every denominator (the paper: 1e-10).

    Returns:
        (W, B): B is None without labels.
    """
    max_iter = _checks.renamed("multi_hntf_matrix", "iters", iters, "max_iter", max_iter, 800)
    with torch.no_grad():
        xs = x if x.layout == torch.strided else (x.coalesce() if x.layout == torch.sparse_coo
                                                   else x.to_sparse_coo().coalesce())
        xA = xs @ A if x.layout == torch.strided else torch.sparse.mm(xs, A)  # (M, k)
        P = (S @ xA).mT  # A^T X S^T, (k, k)
        GA, GS = A.mT @ A, S @ S.mT
        Q = GSL = None
        if y is not None:
            if B is None:
                raise ValueError("multi_hntf_matrix: labels need a classifier start B (c, r)")
            c = B.shape[0]
            y, mask, _ = _checks.check_labels(y, label_mask, c, x.shape[0], S.device, "multi_hntf_matrix")
            Y = torch.nn.functional.one_hot(y, c).to(S.dtype).mT * mask.to(S.dtype)
            Q = Y @ S.mT  # (c, k)
            GSL = (S * mask.to(S.dtype)) @ S.mT if mask_unlabeled else GS
        for _ in range(max_iter):
            WS = W.mT @ GS  # W^T S S^T, (r, k)
            W1 = W * (P @ W) / (eps + GA @ W @ (WS @ W))
            num, den = W.mT @ P, (W.mT @ GA @ W) @ WS
            if Q is not None:
                num = num + lam * (B.mT @ Q)
                den = den + lam * (B.mT @ B) @ (W.mT @ GSL)
            W2 = W * (num / (eps + den)).mT
            W = (2 * W + W1 + W2) / 4
            if Q is not None:
                B = B * (Q @ W) / (eps + B @ (W.mT @ GSL @ W))
    return W, B


def _shared_topics(levels, Ws) -> TensorTopics:
    parents = [TensorTopics.parents_from_rows(W) for W in Ws]
    topics = [[f.detach() for f in level] for level in levels]
    return TensorTopics(topics, [parents] * len(levels[0]), shared=True)


def _rescaled(factors, Ws):
    """Scale W_1, W_2, ... in turn so that ||[[F W_1 ... W_l]]|| = ||[[F]]|| (one positive number per W)."""
    target = cp_norm_sq(factors).sqrt()
    cur, out = list(factors), []
    N = len(factors)
    for W in Ws:
        nxt = [F @ W for F in cur]
        norm = cp_norm_sq(nxt).sqrt()
        c = (target / norm) ** (1.0 / N) if float(norm) > 0 else torch.ones((), dtype=W.dtype, device=W.device)
        W = W * c
        out.append(W)
        cur = [F @ W for F in cur]
    return out


class MultiHNTF(FittedTensorHierarchy):
    """Multi-HNTF trained by the paper's multiplicative updates, layer by layer (protocols §6.9).

    Args:
        ranks: (r_0, r_1, ..., r_L), e.g. (7, 4, 2).
        max_iter: multiplicative updates per layer (the paper: 800; ``iters=`` is its deprecated name).
        eps: added to the denominators (the paper: 1e-10).
        init: None (U[0, 1) draws of W_1, W_2, ... in order from ``generator``/``seed``, as the paper's
            ``np.random.rand``) or a list of L starting matrices (r_{l-1}, r_l) >= 0.
        ncpd: first-layer solver when ``fit`` gets no factors: "mu" (tensorly 0.4.3, the paper) or "als";
            ``ncpd_kwargs`` go to it (default: SVD init, 100 iterations).
        seed, generator: source of the random W starts (at most one).

    Attributes (after ``fit``):
        factors_: N matrices (I_n, r_0); W_: L matrices (r_{l-1}, r_l); levels_: L + 1 ``CPTensor`` with
        level-l factors F_n W_1 ... W_l.
    """

    def __init__(self, ranks, *, max_iter: int = 800, eps: float = 1e-10, init=None, ncpd: str = "mu",
                 ncpd_kwargs: dict | None = None, seed: int | None = None, generator: torch.Generator | None = None,
                 iters=_checks.DEPRECATED):
        fn = "MultiHNTF"
        self.ranks = _checks.check_ranks(ranks, fn, min_len=2)
        max_iter = _checks.renamed(fn, "iters", iters, "max_iter", max_iter, 800)
        self.max_iter = _checks.check_int(max_iter, fn, "max_iter", minimum=0)
        self.eps = _checks.check_real(eps, fn, "eps", positive=True)
        if init is not None and (not isinstance(init, (list, tuple)) or len(init) != len(self.ranks) - 1):
            raise ValueError(f"{fn}: init must be None or a list of {len(self.ranks) - 1} matrices (r_(l-1), r_l)")
        self.init, self.ncpd, self.ncpd_kwargs = init, ncpd, ncpd_kwargs
        self.generator = _checks.check_generator(seed, generator, fn)
        self.factors_ = self.W_ = self.levels_ = None

    def fit(self, tensor: torch.Tensor, factors=None, *, data_mask: torch.Tensor | None = None,
            mask=_checks.DEPRECATED) -> "MultiHNTF":
        """Fit to ``tensor`` (I_1, ..., I_N) >= 0; ``factors``: the rank-r_0 first layer (CPTensor or list),
        computed by NCPD when None; ``data_mask``: 1 = observed (``mask=`` is its deprecated name). Returns self."""
        fn = "MultiHNTF.fit"
        X, M = check_fit(tensor, _checks.renamed(fn, "mask", mask, "data_mask", data_mask), fn)
        with torch.no_grad():
            F = first_layer(X, M, self.ranks[0], factors, self.ncpd, self.ncpd_kwargs, fn)
            Ws, levels, cur = [], [to_cptensor(F)], F
            for l, (r_prev, r) in enumerate(zip(self.ranks[:-1], self.ranks[1:])):
                if self.init is None:
                    W0 = draw((r_prev, r), "uniform", self.generator, X.dtype, X.device)
                else:
                    W0 = _checks.check_matrix(self.init[l], (r_prev, r), fn, f"init[{l}]", X).clone()
                W = multi_hntf_layer(X, cur, W0, max_iter=self.max_iter, eps=self.eps, mask=M)
                cur = [Fn @ W for Fn in cur]
                Ws.append(W)
                levels.append(to_cptensor(cur))
        self.factors_, self.W_, self.levels_ = F, Ws, levels
        return self

    def hierarchy(self, mode: int = 0) -> list[torch.Tensor]:
        """The chain [F_mode, W_1, ..., W_L] (its tree is the same for every mode; only the entries differ)."""
        self._require_fit("hierarchy")
        mode = _checks.check_mode(mode, len(self.factors_), "MultiHNTF.hierarchy")
        return [self.factors_[mode], *self.W_]

    def topic_hierarchy(self) -> TensorTopics:
        """One tree for all modes: level-l topics of mode n are the columns of F_n W_1 ... W_l; topic i of level
        l feeds topic argmax_j W_{l+1}[i, j] of level l + 1."""
        self._require_fit("topic_hierarchy")
        return _shared_topics([list(cp[1]) for cp in self.levels_], self.W_)


class NeuralMultiHNTF(TensorModelMixin, nn.Module):
    """Multi-HNTF as a torch module, trained end to end by backpropagation (:func:`neuralnmf.tensor.fit_tensor`).

    Level l of mode n is F_n W_1 ... W_l: the shared W's and (with ``train_factors``) the first-layer factors F
    are parameters, all kept >= 0 by the projection hook. With ``num_classes`` a nonnegative classifier B
    (num_classes, r_L) reads the deepest factor of ``label_mode``: logits = (F_m W_1 ... W_L) B^T, one row per
    entry of that mode (e.g. documents), for supervised or semi-supervised Multi-HNTF.

    Args:
        shape: (I_1, ..., I_N), N >= 2.
        ranks: (r_0, r_1, ..., r_L), L >= 1.
        factors: first-layer factors (``CPTensor`` or N tensors (I_n, r_0)), e.g. an NCPD; None: U[0, 1) draws.
        train_factors: train F jointly (default True); False keeps them fixed as in the paper.
        init: starting W's: "uniform" U[0, 1) draws (the paper's), a list of L matrices (r_{l-1}, r_l) >= 0
            (e.g. ``MultiHNTF(...).fit(X).W_`` to fine-tune the multiplicative-update solution).
        rescale: with "uniform", scale each drawn W_l by one positive number so that the level-l CP tensor has
            the norm of the level-0 one. U[0, 1) draws make F W_1 several times larger than F (a 7 x 4 W sums
            about 3.5 components per topic, a factor 3.5^3 in the tensor of a 3-way model), and training
            from that start spends its first thousand steps shrinking it and lands in a poor minimum far more
            often (docs/tensor_table.md).
        num_classes, label_mode: add the classifier on that mode.
        generator: torch.Generator for the random draws (factors when None, then W's, then B).

    Shape:
        forward() -> :class:`TensorModelOutput`: ``levels[l]`` = N matrices (I_n, r_l); ``logits``
        (I_label_mode, num_classes) or None.
    """

    def __init__(self, shape, ranks, *, factors=None, train_factors: bool = True, init="uniform",
                 rescale: bool = True, num_classes: int | None = None, label_mode: int = 0,
                 generator: torch.Generator | None = None,
                 dtype=None, device=None):
        super().__init__()
        fn = "NeuralMultiHNTF"
        dtype, device = self._start(shape, ranks, factors, train_factors, generator, dtype, device, fn)
        pairs = list(zip(self.ranks[:-1], self.ranks[1:]))
        if isinstance(init, str):
            if init != "uniform":
                raise ValueError(f"{fn}: init must be 'uniform' or a list of {len(pairs)} matrices, got {init!r}")
            Ws = [draw(p, "uniform", generator, dtype, device) for p in pairs]
        else:
            if not isinstance(init, (list, tuple)) or len(init) != len(pairs):
                raise ValueError(f"{fn}: init must be 'uniform' or a list of {len(pairs)} matrices (r_(l-1), r_l)")
            Ws = [_checks.check_matrix(w, p, fn, f"init[{l}]").detach().to(dtype=dtype, device=device).clone()
                  for l, (w, p) in enumerate(zip(init, pairs))]
        if isinstance(init, str) and rescale:
            Ws = _rescaled([f.detach() for f in self.factors], Ws)
        self.W = FactorMatrices(Ws, requires_grad=True)
        self.num_classes = None if num_classes is None else _checks.check_rank(num_classes, fn, "num_classes")
        self.label_mode = _checks.check_mode(label_mode, len(self.shape), fn, "label_mode")
        if self.num_classes is not None:
            self.B = nn.Parameter(draw((self.num_classes, self.ranks[-1]), "uniform", generator, dtype, device))
        else:
            self.register_parameter("B", None)
        self._nonnegative = ("B",)

    def forward(self) -> TensorModelOutput:
        cur = list(self.factors)
        levels = [cur]
        for W in self.W:
            cur = [F @ W for F in cur]
            levels.append(cur)
        logits = cur[self.label_mode] @ self.B.mT if self.B is not None else None
        return TensorModelOutput(levels, None, logits)

    def hierarchy_parameters(self) -> list[nn.Parameter]:
        """The shared hierarchy matrices W_1 .. W_L."""
        return list(self.W)

    def hierarchy(self, mode: int = 0) -> list[torch.Tensor]:
        """The chain [F_mode, W_1, ..., W_L] (same tree for every mode)."""
        mode = _checks.check_mode(mode, len(self.shape), "NeuralMultiHNTF.hierarchy")
        return [self.factors[mode], *self.W]

    @torch.no_grad()
    def topic_hierarchy(self) -> TensorTopics:
        """One tree for all modes (see :meth:`MultiHNTF.topic_hierarchy`)."""
        return _shared_topics(self().levels, list(self.W))

    def extra_repr(self) -> str:
        extra = f", num_classes={self.num_classes}, label_mode={self.label_mode}" if self.num_classes else ""
        return f"shape={self.shape}, ranks={self.ranks}, train_factors={self.train_factors}{extra}"
