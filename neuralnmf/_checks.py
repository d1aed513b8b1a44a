"""The argument checks every part of the library shares: integers, ranks, real numbers, random generators and
levels of a hierarchy. Clear errors that name the function, the argument and the problem.

The data checks of each model family live with it (``baselines/_checks.py`` for matrices, ``tensor/_checks.py`` for
tensors); both build on these.
"""

from __future__ import annotations

import math
import numbers

import torch

__all__ = ["check_int", "check_rank", "check_ranks", "check_real", "check_generator", "check_level", "check_shape",
           "int_sequence"]


def check_int(value, fn: str, name: str, *, minimum: int) -> int:
    """A Python/numpy integer (not bool) >= minimum."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{fn}: {name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if value < minimum:
        kind = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{fn}: {name} must be {kind}, got {value}")
    return value


def check_rank(rank, fn: str, name: str = "rank") -> int:
    return check_int(rank, fn, name, minimum=1)


def check_ranks(ranks, fn: str, *, min_len: int = 1) -> tuple[int, ...]:
    """An int or a sequence of at least ``min_len`` positive ints (r_0, r_1, ...)."""
    if isinstance(ranks, numbers.Integral) and not isinstance(ranks, bool):
        ranks = (ranks,)
    if isinstance(ranks, (str, bytes)) or not hasattr(ranks, "__iter__"):
        raise TypeError(f"{fn}: ranks must be a positive integer or a sequence of them (r_0, r_1, ...), got "
                        f"{ranks!r}")
    ranks = tuple(ranks)
    if len(ranks) < min_len:
        count = "one positive integer" if min_len == 1 else f"{min_len} positive integers"
        raise ValueError(f"{fn}: ranks must hold at least {count} (r_0, r_1, ...), got {ranks}")
    return tuple(check_rank(r, fn, f"ranks[{i}]") for i, r in enumerate(ranks))


def check_real(value, fn: str, name: str, *, positive: bool = False) -> float:
    """A finite real number >= 0 (> 0 when ``positive``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{fn}: {name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{fn}: {name} must be a finite number {'> 0' if positive else '>= 0'}, got {value}")
    return value


def check_generator(seed, generator, fn: str) -> torch.Generator | None:
    """The generator to draw from: ``generator``, a fresh one seeded with ``seed``, or None (torch's global RNG)."""
    if seed is not None and generator is not None:
        raise ValueError(f"{fn}: pass seed or generator, not both")
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"{fn}: generator must be a torch.Generator, got {type(generator).__name__}")
        return generator
    if seed is not None:
        return torch.Generator().manual_seed(check_int(seed, fn, "seed", minimum=0))
    return None


def check_level(level, count: int, fn: str, name: str = "depth") -> int:
    """A level of a hierarchy with ``count`` levels: None (the last), 0 .. count-1, or -count .. -1 from the last.

    Returns the level in 0 .. count-1.
    """
    if level is None:
        return count - 1
    if isinstance(level, bool) or not isinstance(level, numbers.Integral) or not -count <= level < count:
        raise ValueError(f"{fn}: {name} must be an integer in 0..{count - 1} (or -{count}..-1 counted from the "
                         f"deepest), got {level!r}")
    return int(level) % count


def check_shape(shape, fn: str, name: str = "shape") -> tuple[int, ...]:
    """(I_1, ..., I_N), N >= 2, positive ints; a torch.Size or tensor shape also works."""
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
        raise TypeError(f"{fn}: {name} must be a sequence of positive integers (I_1, ..., I_N), got {shape!r}")
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError(f"{fn}: {name} must have at least 2 modes, got {shape}")
    return tuple(check_rank(s, fn, f"{name}[{i}]") for i, s in enumerate(shape))


def int_sequence(value, name: str, *, positive: bool = False) -> list[int]:
    """A sequence of Python/numpy ints (not bools), or a 1-D integer tensor, as a list of ints (> 0 with
    ``positive``)."""
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() or value.is_complex() or value.dim() != 1:
            raise ValueError(f"{name} must be a 1-D integer tensor or a list of ints")
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be a sequence of ints, got {type(value).__name__}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name} must contain ints, got {v!r}")
        if positive and v <= 0:
            raise ValueError(f"{name} must contain positive ints, got {v}")
        out.append(int(v))
    return out
