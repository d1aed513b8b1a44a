"""Pieces shared by the trainable tensor models: first-layer factor matrices as parameters, the output record,
random draws, and the common accessors (reconstruction at a level, CPTensor export)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..initialization import uniform
from . import _checks
from .cp import CPTensor, as_factors, cp_to_tensor, to_cptensor

__all__ = ["FactorMatrices", "TensorModelOutput", "TensorModelMixin", "TensorTopics", "draw"]


@dataclass
class TensorModelOutput:
    """What a tensor model's forward returns.

    Attributes:
        levels: for each level l = 0 .. L, the N CP factor matrices of that level's approximation of the tensor
            (level 0: the first-layer NCPD factors), so ``cp_to_tensor(levels[l])`` is the level-l tensor.
        codes: model-specific intermediate values (Neural NCPD: per mode, the NNLS codes S_l (r_l, r_0) of
            every layer), or None.
        logits: (I_label_mode, num_classes) class scores of the labeled mode's entries, or None.
    """

    levels: list[list[torch.Tensor]]
    codes: list[list[torch.Tensor]] | None = None
    logits: torch.Tensor | None = None


class FactorMatrices(nn.ParameterList):
    """The N first-layer factor matrices (I_n, r_0) as parameters ``0 .. N-1``, all declared nonnegative."""

    def __init__(self, factors, requires_grad: bool):
        super().__init__([nn.Parameter(f, requires_grad=requires_grad) for f in factors])
        self._nonnegative = tuple(str(i) for i in range(len(factors)))


def draw(shape, kind: str, generator, dtype, device) -> torch.Tensor:
    """"uniform" U[0, 1) or "abs_normal" |N(0, 1)| draws, made in float64 on the generator's device then cast
    (so one seed gives the same start in every dtype and on every device)."""
    if kind == "uniform":
        return uniform(*shape, generator=generator, dtype=dtype, device=device)
    if kind != "abs_normal":  # pragma: no cover - callers validate
        raise ValueError(kind)
    g_dev = generator.device if generator is not None else torch.device("cpu")
    out = torch.randn(shape, generator=generator, device=g_dev, dtype=torch.float64).abs()
    return out.to(dtype=dtype, device=device)


def initial_factors(factors, shape, rank, generator, dtype, device, fn) -> list[torch.Tensor]:
    """Validated copies of given factors (dtype/device taken from the model), or U[0, 1) draws mode by mode."""
    if factors is None:
        return [draw((s, rank), "uniform", generator, dtype, device) for s in shape]
    out = as_factors(factors, fn, "factors", shape=shape, rank=rank)
    return [f.to(dtype=dtype if dtype is not None else f.dtype, device=device if device is not None else f.device)
            for f in out]


class TensorModelMixin:
    """Accessors shared by :class:`NeuralNCPD` and :class:`NeuralMultiHNTF` (they define ``forward()``)."""

    shape: tuple[int, ...]
    ranks: tuple[int, ...]

    def _start(self, shape, ranks, factors, train_factors: bool, generator, dtype, device, fn: str):
        """Check shape, ranks (at least two) and generator; set ``shape``, ``ranks`` and the first-layer
        ``factors`` (the given ones, or U[0, 1) draws). Returns the (dtype, device) of the model."""
        self.shape = _checks.check_shape(shape, fn)
        self.ranks = _checks.check_ranks(ranks, fn, min_len=2)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"{fn}: generator must be a torch.Generator, got {type(generator).__name__}")
        if dtype is None and factors is None:
            dtype = torch.get_default_dtype()
        F = initial_factors(factors, self.shape, self.ranks[0], generator, dtype, device, fn)
        self.factors = FactorMatrices(F, requires_grad=bool(train_factors))
        return F[0].dtype, F[0].device

    @property
    def num_levels(self) -> int:
        """L + 1: level 0 is the rank-r_0 NCPD, level l the rank-r_l approximation."""
        return len(self.ranks)

    def _level(self, level) -> int:
        return _checks.check_level(level, self.num_levels, type(self).__name__, "level")

    def reconstruct(self, level: int | None = None, *, output: TensorModelOutput | None = None) -> torch.Tensor:
        """The level-``level`` approximation of the tensor (default: the deepest), (I_1, ..., I_N)."""
        level = self._level(level)
        out = self() if output is None else output
        return cp_to_tensor(out.levels[level])

    def cp_tensor(self, level: int | None = None) -> CPTensor:
        """The level's approximation as a tensorly ``CPTensor`` (detached factors)."""
        level = self._level(level)
        with torch.no_grad():
            return to_cptensor([f.detach() for f in self().levels[level]])

    def factor_parameters(self) -> list[nn.Parameter]:
        """First-layer factors that are trained (empty when they are frozen)."""
        return [p for p in self.factors if p.requires_grad]

    @property
    def train_factors(self) -> bool:
        """Whether the first-layer factors are trained; set it to freeze or release them between fits."""
        return all(p.requires_grad for p in self.factors)

    @train_factors.setter
    def train_factors(self, value: bool) -> None:
        for p in self.factors:
            p.requires_grad_(bool(value))

    def check_tensor(self, tensor, fn: str) -> None:
        """Shape, dtype and device of a data tensor against the model."""
        _checks.check_tensor(tensor, fn)
        if tuple(tensor.shape) != self.shape:
            raise ValueError(f"{fn}: the tensor has shape {tuple(tensor.shape)} but the model was built for "
                             f"{self.shape}")
        ref = self.factors[0]
        if tensor.dtype != ref.dtype:
            raise TypeError(f"{fn}: the tensor has dtype {tensor.dtype} but the model is {ref.dtype}; convert one "
                            f"(e.g. model.to({tensor.dtype}))")
        if tensor.device != ref.device:
            raise ValueError(f"{fn}: the tensor is on {tensor.device} but the model is on {ref.device}")


class TensorTopics:
    """The topics of a hierarchical tensor model, level by level and mode by mode, and how they nest.

    Attributes:
        topics: ``topics[l][n]`` (I_n, k_l): the level-l topics of mode n, one per column, over the mode's
            entries (level 0: the r_0 NCPD components).
        parents: ``parents[n][l]`` (k_l,) long: for each level-l topic of mode n, its parent at level l + 1
            (-1: it feeds none). In a shared hierarchy (Multi-HNTF) every mode holds the same maps.
        shared: whether all modes share one tree (Multi-HNTF, HNTF) or each mode has its own (Neural NCPD,
            Standard HNCPD).
    """

    def __init__(self, topics, parents, shared: bool):
        self.topics, self.parents, self.shared = topics, parents, shared

    @staticmethod
    def parents_from_rows(A: torch.Tensor) -> torch.Tensor:
        """Row i's parent: argmax_j A[i, j] (ties: lowest j), -1 for an all-zero row (A: (k_l, k_{l+1}) >= 0)."""
        A = A.detach()
        p = A.argmax(1)
        return torch.where(A.sum(1) > 0, p, torch.full_like(p, -1))
