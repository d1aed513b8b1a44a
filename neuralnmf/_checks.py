"""The argument checks every part of the library shares: integers, ranks, real numbers, random generators, levels
of a hierarchy, data tensors and class labels. Clear errors that name the function, the argument and the fix.

One error type per kind of mistake, everywhere (ops, layers, models, ``fit``, ``fit_tensor``, the baselines, the
CLI):

* ``TypeError``: the argument has the wrong type: not a tensor (a numpy array, a list, a string), a dtype the
  operation cannot take (integers, float16/bfloat16, complex), a layout it cannot take, a float where an integer is
  needed.
* ``ValueError``: the type is right but the value is not: a shape, an empty dimension, a negative, NaN or Inf
  entry, a number out of range, a device that does not match (or ``meta``, which holds no values).

This module imports nothing from the package, so every layer may use it, the ops included. The data checks of each
model family build on it (``baselines/_checks.py`` for matrices, ``tensor/_checks.py`` for tensors).
"""

from __future__ import annotations

import math
import numbers
import warnings

import torch

__all__ = ["check_int", "check_rank", "check_ranks", "check_real", "check_generator", "check_seed_or_generator",
           "check_level", "check_shape", "int_sequence", "check_max_iter", "check_batch_size", "check_tensor",
           "check_dtype", "check_float", "check_has_values", "check_finite_nonnegative", "check_data", "check_observed", "check_labels",
           "warn_about_ranks", "renamed", "DEPRECATED", "FLOAT_DTYPES", "UNLABELED"]

FLOAT_DTYPES = (torch.float32, torch.float64)

UNLABELED = -1
"""The class index of an unlabeled sample, in ``y`` of every function that takes labels and in the CLI's label
files (scikit-learn's convention for semi-supervised labels). ``label_mask`` says the same thing explicitly."""


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


def check_seed_or_generator(seed, generator, fn: str) -> tuple[int | None, torch.Generator | None]:
    """The one rule for randomness: ``seed`` (an integer >= 0) or ``generator`` (a torch.Generator), not both;
    returns them checked, for models that draw a fresh generator from the seed at every start."""
    if seed is not None and generator is not None:
        raise ValueError(f"{fn}: pass seed or generator, not both")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{fn}: generator must be a torch.Generator, got {type(generator).__name__}")
    return (None if seed is None else check_int(seed, fn, "seed", minimum=0)), generator


def check_generator(seed, generator, fn: str) -> torch.Generator | None:
    """The generator to draw from: ``generator``, a fresh one seeded with ``seed``, or None (torch's global RNG)."""
    seed, generator = check_seed_or_generator(seed, generator, fn)
    return torch.Generator().manual_seed(seed) if seed is not None else generator


def warn_about_ranks(ranks, features: int, classes: dict[int, int], fn: str) -> None:
    """Ranks the data or the labels cannot support (the call still runs): a first rank above the number of
    features, a labeled level (``classes``: {level: number of classes}) with fewer topics than classes."""
    if ranks[0] > features:
        warnings.warn(f"{fn}: ranks[0] = {ranks[0]} topics exceed the {features} features: the codes are not unique, "
                      f"some topics are redundant and the fit can get worse during training; use at most {features} "
                      "topics at level 0", UserWarning, stacklevel=3)
    for level, c in classes.items():
        if ranks[level] < c:
            warnings.warn(f"{fn}: level {level} is labeled with {c} classes but has only {ranks[level]} topics: so "
                          f"few codes cannot tell {c} classes apart and the accuracy will be poor; give level "
                          f"{level} at least {c} topics (or label a finer level)", UserWarning, stacklevel=3)


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


def _positive_or_none(value, fn: str, name: str, none_means: str) -> int | None:
    """None, or a positive integer (TypeError for a non-integer, ValueError for <= 0)."""
    if value is None:
        return None
    expected = f"{fn}: {name} must be a positive integer or None ({none_means}), got"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{expected} {value!r} ({type(value).__name__})")
    if value <= 0:
        raise ValueError(f"{expected} {value}")
    return int(value)


def check_max_iter(max_iter, fn: str) -> int:
    """None (the solver's default bound) or a positive integer; returned as the kernels take it (0 = default)."""
    return _positive_or_none(max_iter, fn, "max_iter", "the default bound") or 0


def check_batch_size(batch_size, fn: str) -> int | None:
    """None (full batch) or a positive integer."""
    return _positive_or_none(batch_size, fn, "batch_size", "full batch")


def check_finite_nonnegative(values: torch.Tensor, fn: str, name: str, *, where: str = "",
                             need: str = "NMF requires nonnegative data") -> None:
    """Every entry of ``values`` finite and >= 0 (two reads from the device); ``where`` qualifies the entries
    (e.g. " (observed entries)")."""
    if not bool(torch.isfinite(values).all()):
        raise ValueError(f"{fn}: {name} contains NaN or Inf{where}")
    if bool((values < 0).any()):
        raise ValueError(f"{fn}: {name} has negative entries (min {float(values.min()):.4g}); {need}")


def check_tensor(value, fn: str, name: str) -> torch.Tensor:
    """A torch.Tensor; anything else is a TypeError that says how to convert it."""
    if isinstance(value, torch.Tensor):
        return value
    kind = type(value).__name__
    if type(value).__module__ == "numpy" or hasattr(value, "__array__"):
        how = f"convert it with torch.from_numpy({name}) (or torch.as_tensor({name}))"
    elif isinstance(value, (list, tuple)):
        how = f"convert it with torch.tensor({name})"
    else:
        how = "pass a torch.Tensor"
    raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {kind}; {how}")


def check_dtype(dtype, fn: str, name: str = "dtype") -> torch.dtype:
    """torch.float32 or torch.float64, the dtypes of the library's data and models (the argument itself is a dtype)."""
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"{fn}: {name} must be torch.float32 or torch.float64, got {dtype!r}")
    return dtype


def check_float(t: torch.Tensor, fn: str, name: str) -> torch.Tensor:
    """A float32/float64 tensor; the TypeError says how to convert."""
    if t.dtype not in FLOAT_DTYPES:
        if t.is_complex():
            how = "NMF needs real data"
        else:
            how = f"convert it with {name}.float() or {name}.double()"
            if torch.is_autocast_enabled() and t.dtype in (torch.float16, torch.bfloat16):
                how += " (or run outside torch.autocast, which turns the products into low precision)"
        raise TypeError(f"{fn}: {name} must be float32 or float64, got {t.dtype}; {how}")
    return t


def check_has_values(t: torch.Tensor, fn: str, name: str) -> torch.Tensor:
    """Not on the meta device, where nothing can be read (the ops themselves trace meta tensors' shapes)."""
    if t.device.type == "meta":
        raise ValueError(f"{fn}: {name} is on the meta device, which holds no values; pass a tensor with data "
                         "(meta tensors only trace shapes)")
    return t


def check_data(x, fn: str, name: str = "x", *, features: int | None = None, sparse: bool = True,
               values: bool = True) -> torch.Tensor:
    """Data (samples, features): a 2-D float32/float64 tensor, dense or (with ``sparse``) COO/CSR, with at least
    one sample and one feature (``features`` of them when given), finite and nonnegative (with ``values``; a sparse
    x is checked on its stored values). Returns x, a sparse x as it came."""
    x = check_float(check_tensor(x, fn, name), fn, name)
    if x.layout != torch.strided and not (sparse and x.layout in (torch.sparse_coo, torch.sparse_csr)):
        allowed = "a dense (strided) or sparse COO/CSR" if sparse else "a dense (strided)"
        raise TypeError(f"{fn}: {name} must be {allowed} tensor, got layout {x.layout}"
                        + ("; pass x.to_dense()" if not sparse else "; pass x.to_sparse_csr()"))
    expect = f"(samples, {features})" if features is not None else "(samples, features)"
    if x.dim() != 2 or (features is not None and x.shape[1] != features):
        raise ValueError(f"{fn}: {name} must be 2-D with shape {expect}, got {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{fn}: {name} is empty, shape {tuple(x.shape)}: it needs at least one sample and one "
                         "feature")
    check_has_values(x, fn, name)
    if values:
        stored = x if x.layout == torch.strided else (x.coalesce().values() if x.layout == torch.sparse_coo
                                                      else x.values())
        check_finite_nonnegative(stored, fn, name)
    return x


def check_observed(mask, x: torch.Tensor, fn: str, name: str, what: str = "x") -> torch.Tensor | None:
    """None, or a mask of ``x``'s shape and device, bool or {0, 1} (1 = observed), as a float tensor of x's dtype.
    ``what`` names x in the messages."""
    if mask is None:
        return None
    check_tensor(mask, fn, name)
    if tuple(mask.shape) != tuple(x.shape):
        raise ValueError(f"{fn}: {name} must have the shape of {what} {tuple(x.shape)}, got {tuple(mask.shape)}")
    if mask.device != x.device:
        raise ValueError(f"{fn}: {name} is on {mask.device} but {what} is on {x.device}; they must be on the same "
                         "device")
    if mask.dtype == torch.bool:
        return mask.to(x.dtype)
    if mask.is_complex():
        raise TypeError(f"{fn}: {name} must be bool or hold real 0/1 values (True = observed), got {mask.dtype}")
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"{fn}: {name} must hold only 0 and 1 (1 = observed), found other values")
    return mask.to(x.dtype)


def check_labels(y, label_mask, num_classes, samples: int, device, fn: str, *, name: str = "y",
                 require_labeled: bool = True):
    """The one check of class labels: ``y`` (samples,) integer class indices in [0, num_classes), with -1
    (:data:`UNLABELED`) for an unlabeled sample; ``label_mask`` (samples,) bool or {0, 1}, True = labeled (None:
    every sample whose label is not -1). A tensor, numpy array or list is taken, moved to ``device``.

    ``num_classes`` None: 1 + the largest label. Returns (y long on ``device`` with unlabeled entries 0, mask
    (samples,) bool, num_classes). ``require_labeled``: no labeled sample at all is an error (else it is allowed
    when ``num_classes`` is given).
    """
    if isinstance(y, torch.Tensor):
        y = y.to(device)
    else:
        try:
            y = torch.as_tensor(y, device=device) if not isinstance(y, (str, bytes)) else None
        except (TypeError, ValueError, RuntimeError):
            y = None
        if y is None:
            raise TypeError(f"{fn}: {name} must be integer class indices (a tensor, array or list of ints 0..c-1, -1 "
                            "= unlabeled); map class names to indices first, e.g. "
                            "names, y = numpy.unique(labels, return_inverse=True)")
    if y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
        raise TypeError(f"{fn}: {name} must hold integer class indices (e.g. torch.long), got {y.dtype}; "
                        f"convert it with {name}.long()")
    if y.dim() != 1 or y.shape[0] != samples:
        raise ValueError(f"{fn}: {name} must have shape ({samples},), integer class indices one per sample, got "
                         f"{tuple(y.shape)}")
    y = y.long()
    if label_mask is None:
        mask = y != UNLABELED
    else:
        mask = label_mask.to(device) if isinstance(label_mask, torch.Tensor) else torch.as_tensor(label_mask,
                                                                                                  device=device)
        if mask.shape != (samples,):
            raise ValueError(f"{fn}: label_mask must have shape ({samples},), one flag per sample (True = labeled), "
                             f"got {tuple(mask.shape)}")
        if mask.dtype != torch.bool:
            if mask.is_complex() or not bool(((mask == 0) | (mask == 1)).all()):
                raise ValueError(f"{fn}: label_mask must be bool (True = labeled) or hold only 0 and 1")
            mask = mask != 0
        both = mask & (y == UNLABELED)
        if bool(both.any()):
            raise ValueError(f"{fn}: {name} is -1 (unlabeled) at {int(both.sum())} samples that label_mask marks "
                             "as labeled; give their class or set label_mask False there")
    labeled = y[mask]
    if labeled.numel() == 0 and (require_labeled or num_classes is None):
        why = "so num_classes cannot be inferred; pass num_classes, or " if num_classes is None else ""
        raise ValueError(f"{fn}: label_mask (or y = -1) marks no sample as labeled; {why}pass y=None to train "
                         "without labels")
    lo, hi = (int(labeled.min()), int(labeled.max())) if labeled.numel() else (0, 0)
    if num_classes is None:
        num_classes = hi + 1
    num_classes = check_int(num_classes, fn, "num_classes", minimum=1)
    if lo < 0 or hi >= num_classes:
        hint = ""
        if lo < 0:
            hint = "; mark unlabeled samples with -1 or with label_mask=False"
        elif hi == num_classes and lo >= 1:
            hint = f"; numbered from 1? pass {name} - 1"
        raise ValueError(f"{fn}: labels must be in [0, {num_classes}) (num_classes={num_classes}), got values in "
                         f"[{lo}, {hi}]{hint}")
    return torch.where(mask, y, torch.zeros((), dtype=y.dtype, device=y.device)), mask, num_classes


class _Deprecated:
    """The default of a renamed argument's old name: tells "not passed" apart from any value."""

    def __repr__(self) -> str:
        return "<deprecated>"


DEPRECATED = _Deprecated()


def renamed(fn: str, old: str, old_value, new: str, new_value, new_default=None):
    """The value of argument ``new``, still accepted under its deprecated name ``old`` (with a DeprecationWarning);
    both at once is a TypeError. ``old_value`` is :data:`DEPRECATED` when the old name was not passed."""
    if old_value is DEPRECATED:
        return new_value
    if not (new_value is new_default or (isinstance(new_value, (int, float, str)) and new_value == new_default)):
        raise TypeError(f"{fn}: got both {new}= and its deprecated name {old}=; pass {new}= only")
    warnings.warn(f"{fn}: {old}= is deprecated and will be removed; use {new}= (the same meaning)",
                  DeprecationWarning, stacklevel=3)
    return old_value
