"""Neural NCPD (Vendrow, Haddock, Needell, Asilomar 2021): a Neural NMF hierarchy on every factor matrix of an NCPD.

    X ~ [[F_1, ..., F_N]]                           rank r_0 NCPD, F_n: (I_n, r_0)
    S_n^(1) = q(F_n, W_n^(1)),  S_n^(l) = q(S_n^(l-1), W_n^(l))     W_n^(1): (I_n, r_1), W_n^(l): (r_{l-1}, r_l)
    level l:  X ~ [[W_1^(1) ... W_1^(l) S_1^(l), ..., W_N^(1) ... W_N^(l) S_N^(l)]]

q is the exact NNLS operator (:func:`neuralnmf.nnls`), so the S are functions of the W (and of the F), and the
hierarchy of every mode is trained by backpropagation. Level l is still an r_0-term CP tensor, but every factor
has rank <= r_l. Each mode has its own hierarchy (its own W's); Multi-HNTF shares one.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import NNLSLayer
from ..ops import nnls
from . import _checks
from .trainable import TensorModelMixin, TensorModelOutput, TensorTopics, draw

__all__ = ["NeuralNCPD"]

INITS = ("abs_normal", "uniform")


class NeuralNCPD(TensorModelMixin, nn.Module):
    """Hierarchical NCPD trained by backpropagation through exact NNLS layers, one Neural NMF per mode.

    Args:
        shape: (I_1, ..., I_N) of the tensor, N >= 2.
        ranks: (r_0, r_1, ..., r_L), L >= 1: r_0 is the NCPD rank, r_l the rank of level l (e.g. (7, 4, 2)).
        factors: the first-layer factors (a ``CPTensor`` or N tensors (I_n, r_0), weights absorbed), e.g. from
            :func:`neuralnmf.tensor.ncpd`; copied. None: U[0, 1) draws (then train them, or load a state dict).
        train_factors: train the first-layer factors jointly with the hierarchy (the seeds' future work);
            False keeps them fixed, as in the paper (``lr1 = 0``).
        init: initial dictionaries W: "abs_normal" |N(0, 1)| (the Neural NCPD code's choice) or "uniform"
            U[0, 1) (Neural NMF's). Draws go mode by mode, level by level, as the paper's code drew them. Some
            starts reach a poor local minimum or a long plateau; :func:`neuralnmf.tensor.fit_tensor_restarts`
            keeps the best of several by training loss.
        generator: torch.Generator for the random draws (the factors first when ``factors`` is None).
        warm_start: start each NNLS solve from the previous call's support (same answer, less work).

    Shape:
        forward() -> :class:`TensorModelOutput` with ``levels[l]`` = N matrices (I_n, r_0) and ``codes[n][l]``
        = S_n^(l+1), (r_{l+1}, r_0).

    Attributes:
        factors: N parameters (I_n, r_0), nonnegative (frozen unless ``train_factors``).
        layers: ``layers[n][l]`` is the :class:`neuralnmf.NNLSLayer` of mode n, level l + 1; its ``A`` is
            W_n^(l+1), (I_n, r_1) for l = 0 and (r_l, r_{l+1}) above, nonnegative.
    """

    def __init__(self, shape, ranks, *, factors=None, train_factors: bool = False, init: str = "abs_normal",
                 generator: torch.Generator | None = None, warm_start: bool = True, dtype=None, device=None):
        super().__init__()
        fn = "NeuralNCPD"
        if init not in INITS:
            raise ValueError(f"{fn}: init must be one of {INITS}, got {init!r}")
        dtype, device = self._start(shape, ranks, factors, train_factors, generator, dtype, device, fn)
        self.warm_start = warm_start
        self.layers = nn.ModuleList()
        for n, I in enumerate(self.shape):
            sizes = (I, *self.ranks[1:])
            mode_layers = nn.ModuleList(
                NNLSLayer(sizes[l], sizes[l + 1], init=torch.zeros(sizes[l], sizes[l + 1], dtype=dtype),
                          warm_start=False, dtype=dtype, device=device)
                for l in range(len(sizes) - 1))
            for layer in mode_layers:
                layer.reset_parameters(draw(tuple(layer.A.shape), init, generator, dtype, device))
            self.layers.append(mode_layers)
        # modes of equal size share one batched NNLS call per level
        groups: dict[int, list[int]] = {}
        for n, I in enumerate(self.shape):
            groups.setdefault(I, []).append(n)
        self._groups = list(groups.values())
        self._supports: dict[tuple[int, int], torch.Tensor] = {}

    def dictionary(self, mode: int, level: int | None = None) -> torch.Tensor:
        """Topics of ``mode`` at ``level`` >= 1 over the mode's entries: W^(1) ... W^(level), (I_mode, r_level)."""
        mode = _checks.check_mode(mode, len(self.shape), "NeuralNCPD.dictionary")
        level = self._level(level)
        if level == 0:
            return self.factors[mode]
        D = self.layers[mode][0].A
        for layer in self.layers[mode][1:level]:
            D = D @ layer.A
        return D

    def hierarchy(self, mode: int) -> list[torch.Tensor]:
        """The chain [W^(1), ..., W^(L)] of ``mode`` (for :func:`neuralnmf.topics.format_hierarchy_tree`)."""
        mode = _checks.check_mode(mode, len(self.shape), "NeuralNCPD.hierarchy")
        return [layer.A for layer in self.layers[mode]]

    def forward(self) -> TensorModelOutput:
        N, L = len(self.shape), len(self.ranks) - 1
        codes: list[list[torch.Tensor]] = [[None] * L for _ in range(N)]
        levels = [list(self.factors)] + [[None] * N for _ in range(L)]
        for g, modes in enumerate(self._groups):
            h = torch.stack([self.factors[n] for n in modes])  # (G, I, r_0): columns are the CP components
            D = None
            for l in range(L):
                A = torch.stack([self.layers[n][l].A for n in modes])  # (G, rows, r_{l+1})
                init = self._supports.get((g, l)) if self.warm_start else None
                if init is not None and init.shape != (len(modes), A.shape[-1], h.shape[-1]):
                    init = None
                h = nnls(h, A, init=init)  # (G, r_{l+1}, r_0)
                if self.warm_start:
                    self._supports[(g, l)] = h.detach() > 0
                D = A if D is None else D @ A  # (G, I, r_{l+1}): W^(1) ... W^(l+1)
                level = D @ h  # (G, I, r_0)
                for i, n in enumerate(modes):
                    codes[n][l] = h[i]
                    levels[l + 1][n] = level[i]
        return TensorModelOutput(levels, codes)

    @torch.no_grad()
    def topic_hierarchy(self) -> TensorTopics:
        """Per-mode trees: level-l topics of mode n are the columns of W_n^(1) ... W_n^(l); NCPD component c
        belongs to the level-1 topic argmax_j S_n^(1)[j, c], topic i of level l to argmax_j W_n^(l+1)[i, j]."""
        out = self()
        N, L = len(self.shape), len(self.ranks) - 1
        topics = [[f.detach() for f in self.factors]]
        topics += [[self.dictionary(n, l).detach() for n in range(N)] for l in range(1, L + 1)]
        parents = [[TensorTopics.parents_from_rows(out.codes[n][0].mT)]
                   + [TensorTopics.parents_from_rows(self.layers[n][l].A) for l in range(1, L)] for n in range(N)]
        return TensorTopics(topics, parents, shared=False)

    def hierarchy_parameters(self) -> list[nn.Parameter]:
        """The dictionaries W of every mode and level."""
        return [layer.A for mode_layers in self.layers for layer in mode_layers]

    def _apply(self, fn, *args, **kwargs):  # .to()/.cuda()/.double(): cached supports live on the old device
        self._supports = {}
        return super()._apply(fn, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"shape={self.shape}, ranks={self.ranks}, train_factors={self.train_factors}"
