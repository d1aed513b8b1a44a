"""Synthetic tensors with a planted topic hierarchy: the papers' 40 x 40 x 40 block tensor (protocols §3.1)
and a general generator of nested diagonal blocks for N-way tests.

A *block* is a box, one half-open index range per mode; a block tensor assigns values to boxes in order (later
boxes overwrite earlier ones). A topic hierarchy is a list of parent maps: ``hierarchy[l][i]`` is the level-(l+1)
topic that topic i of level l belongs to (level 0 is the finest).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .. import _checks

__all__ = ["TensorHierarchy", "make_block_tensor", "make_synthetic_tensor", "make_hierarchical_tensor",
           "PAPER_BLOCKS", "PAPER_VALUES"]

# (value, boxes) in assignment order; each box is 3 (start, stop) ranges.
PAPER_VALUES = (0.75, 2.0, 3.5)
PAPER_BLOCKS = (
    # 2 supertopics (a)
    (((0, 20), (0, 20), (0, 20)), ((20, 40), (20, 40), (20, 40))),
    # 4 topics (b)
    (((0, 12), (0, 12), (0, 8)), ((12, 20), (12, 20), (8, 20)), ((20, 27), (20, 34), (20, 27)),
     ((27, 40), (34, 40), (27, 40))),
    # 6 subtopics (c)
    (((0, 12), (0, 6), (0, 4)), ((0, 12), (6, 12), (4, 8)), ((12, 17), (12, 20), (8, 13)),
     ((17, 20), (12, 20), (13, 20)), ((20, 23), (20, 27), (20, 27)), ((23, 27), (27, 34), (20, 27))),
)
# The 7 finest topics: the 6 c-blocks, then the b-block [27:40, 34:40, 27:40] that has no c sub-block.
_PAPER_FINEST = PAPER_BLOCKS[2] + (PAPER_BLOCKS[1][3],)
_PAPER_HIERARCHY = ((0, 0, 1, 1, 2, 2, 3), (0, 0, 1, 1))


@dataclass
class TensorHierarchy:
    """A noisy tensor, its noise-free version and the planted hierarchy.

    Attributes:
        X: (I_1, ..., I_N) the data (clean + noise).
        X_clean: the noise-free tensor; the papers measure errors against it.
        hierarchy: parent maps, level 0 (finest) upwards, e.g. [7 -> 4 map, 4 -> 2 map].
        boxes: per level, the boxes of its topics (a tuple of (start, stop) per mode): level 0 is the finest.
    """

    X: torch.Tensor
    X_clean: torch.Tensor
    hierarchy: list[list[int]]
    boxes: list[list[tuple[tuple[int, int], ...]]] = field(default_factory=list)

    @property
    def ranks(self) -> tuple[int, ...]:
        """Number of topics per level, finest first, e.g. (7, 4, 2)."""
        return tuple(len(b) for b in self.boxes)

    def factors(self, level: int = 0) -> list[torch.Tensor]:
        """Indicator factor matrices of the level's topics: N matrices (I_n, k), column t = 1 on box t's range."""
        out = []
        for n, size in enumerate(self.X.shape):
            F = torch.zeros(size, len(self.boxes[level]), dtype=self.X.dtype, device=self.X.device)
            for t, box in enumerate(self.boxes[level]):
                F[box[n][0] : box[n][1], t] = 1
            out.append(F)
        return out


def make_block_tensor(shape, blocks, values, *, dtype=torch.float64, device=None) -> torch.Tensor:
    """Zeros of ``shape`` with ``values[g]`` assigned on every box of ``blocks[g]``, groups in order.

    Args:
        shape: (I_1, ..., I_N).
        blocks: one sequence of boxes per value; a box is N (start, stop) half-open ranges.
        values: one value per group.
    """
    shape = _checks.check_shape(shape, "make_block_tensor")
    if len(blocks) != len(values):
        raise ValueError(f"make_block_tensor: blocks has {len(blocks)} groups but values has {len(values)}")
    X = torch.zeros(shape, dtype=dtype, device=device)
    for group, value in zip(blocks, values):
        for box in group:
            if len(box) != len(shape):
                raise ValueError(f"make_block_tensor: box {box} has {len(box)} ranges for a {len(shape)}-way tensor")
            X[tuple(slice(a, b) for a, b in box)] = value
    return X


def _half_normal(shape, seed, generator, dtype, device) -> torch.Tensor:
    if generator is not None:
        g_dev = generator.device
        return torch.randn(shape, generator=generator, device=g_dev, dtype=torch.float64).abs().to(dtype).to(device)
    # numpy's legacy stream: np.random.seed(seed); np.random.randn(*shape), C order, as the papers drew it
    draws = np.random.RandomState(seed).randn(*shape)
    return torch.from_numpy(np.abs(draws)).to(dtype=dtype, device=device)


def _extend(box, ndim):
    """A 3-mode box extended to ``ndim`` modes: modes beyond the third repeat the third mode's range."""
    return tuple(box) + (box[2],) * (ndim - 3)


def make_synthetic_tensor(noise: float = 0.4, seed: int = 14, *, ndim: int = 3,
                          generator: torch.Generator | None = None, dtype=torch.float64,
                          device=None) -> TensorHierarchy:
    """The synthetic tensor of the Neural NCPD and Multi-HNTF papers (protocols §3.1), 40 x ... x 40.

    Zeros, then 0.75 on the 2 supertopic boxes, 2 on the 4 topic boxes, 3.5 on the 6 subtopic boxes (later
    assignments overwrite earlier ones), plus ``noise * |N(0, 1)|`` (half-normal, so the noise has mean
    0.32 at noise 0.4 and the data sits above the clean tensor). The table setting is ``noise=0.4, seed=14``.
    Ground truth: 7 finest topics (the 6 subtopic boxes and the topic box [27:40, 34:40, 27:40] that has no
    subtopic), 4 topics, 2 supertopics, with the 7 -> 4 map (0, 0, 1, 1, 2, 2, 3) and 4 -> 2 map (0, 0, 1, 1).

    Args:
        noise: scale of the half-normal noise (>= 0); 0 gives the clean tensor.
        seed: the papers' noise: numpy's legacy stream ``RandomState(seed).randn`` drawn in C order, the same
            numbers as their ``np.random.seed(seed); np.random.randn(...)`` (a local RandomState: numpy's
            global RNG is untouched).
        ndim: N >= 3 modes; modes beyond the third repeat the third mode's ranges (40^N entries).
        generator: draw the noise from this torch.Generator instead (then ``seed`` is ignored).
    """
    fn = "make_synthetic_tensor"
    noise = _checks.check_real(noise, fn, "noise")
    seed = _checks.check_int(seed, fn, "seed", minimum=0)
    ndim = _checks.check_int(ndim, fn, "ndim", minimum=3)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{fn}: generator must be a torch.Generator, got {type(generator).__name__}")
    shape = (40,) * ndim
    blocks = [[_extend(b, ndim) for b in group] for group in PAPER_BLOCKS]
    X_clean = make_block_tensor(shape, blocks, PAPER_VALUES, dtype=dtype, device=device)
    X = X_clean + noise * _half_normal(shape, seed, generator, dtype, device) if noise > 0 else X_clean.clone()
    boxes = [[_extend(b, ndim) for b in _PAPER_FINEST], blocks[1], blocks[0]]
    return TensorHierarchy(X, X_clean, [list(h) for h in _PAPER_HIERARCHY], boxes)


def make_hierarchical_tensor(block_sizes, groups, *, ndim: int = 3, values=(1.0, 3.0), noise: float = 0.1,
                             seed: int = 0, generator: torch.Generator | None = None, dtype=torch.float64,
                             device=None) -> TensorHierarchy:
    """Nested diagonal blocks with a planted two-level hierarchy, for any number of modes.

    Topic t owns the index range R_t (consecutive, of length ``block_sizes[t]``) in every mode; supertopic g
    owns the union of its children's ranges. The tensor is ``values[0]`` on every supertopic box, overwritten
    by ``values[1]`` on every topic box, plus ``noise * |N(0, 1)|`` from ``generator``.

    Args:
        block_sizes: size of each finest topic's range, e.g. (3, 3, 3, 3); I_n = sum(block_sizes).
        groups: number of consecutive topics per supertopic, e.g. (2, 2) (must add up to len(block_sizes)).
        ndim: N >= 2.
        seed, generator: the noise comes from ``generator`` when given, else from a torch.Generator seeded
            with ``seed``.
    Returns:
        :class:`TensorHierarchy` with ranks (len(block_sizes), len(groups)).
    """
    fn = "make_hierarchical_tensor"
    sizes = _checks.check_ranks(block_sizes, fn)
    groups = tuple(_checks.check_rank(g, fn, f"groups[{i}]") for i, g in enumerate(groups))
    if sum(groups) != len(sizes):
        raise ValueError(f"{fn}: groups {groups} must add up to the number of topics {len(sizes)}")
    ndim = _checks.check_int(ndim, fn, "ndim", minimum=2)
    noise = _checks.check_real(noise, fn, "noise")
    gen = _checks.check_generator(None, generator, fn) or torch.Generator().manual_seed(
        _checks.check_int(seed, fn, "seed", minimum=0))
    if len(values) != 2:
        raise ValueError(f"{fn}: values must be (supertopic value, topic value), got {values!r}")
    starts = np.cumsum((0,) + sizes)
    topic_boxes = [((int(starts[t]), int(starts[t + 1])),) * ndim for t in range(len(sizes))]
    parents, super_boxes, t = [], [], 0
    for g, count in enumerate(groups):
        super_boxes.append(((int(starts[t]), int(starts[t + count])),) * ndim)
        parents += [g] * count
        t += count
    shape = (int(starts[-1]),) * ndim
    X_clean = make_block_tensor(shape, [super_boxes, topic_boxes], values, dtype=dtype, device=device)
    X = X_clean + noise * _half_normal(shape, 0, gen, dtype, device) if noise > 0 else X_clean.clone()
    return TensorHierarchy(X, X_clean, [parents], [topic_boxes, super_boxes])
