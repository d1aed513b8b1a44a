"""Label heads of Neural NMF: the classifier of one labeled level of a hierarchy.

A head reads the codes of some levels, (M, k_l) each, and returns logits (M, num_classes). Two forms:

* ``"logistic"`` (the default of :class:`neuralnmf.NeuralNMF`): multinomial logistic regression,
  ``logits = (features / scale) W^T + b`` with free-signed W, a bias b and softmax cross-entropy. The features are
  the codes of the head's level and of every finer level below it (all of which the level is computed from), each
  divided by a fixed scale (its RMS over the training documents at the start), so that one weight decay suits every
  level and corpus. It starts at the L2-regularised logistic regression of the start's codes, with the weight decay
  chosen on held-out labeled documents: the two-step pipeline "NMF, then logistic regression" is where training
  begins, and backpropagation through the NNLS layers improves on it.
* ``"papers"``: the SSNMF/Neural NMF papers' ``logits = S_l B^T`` with B >= 0 (unless ``nonnegative=False``), no
  bias, no scaling, least squares on one-hot labels, on the codes of its level only. Kept for the reproductions.

docs/supervision.md has the measurements behind the default.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_labels, check_level
from .initialization import uniform
from .ops import nnls

__all__ = ["LabelHead", "HEAD_FORMS", "WEIGHT_DECAYS", "labels_by_level", "check_class_labels"]

HEAD_FORMS = ("logistic", "papers")

WEIGHT_DECAYS = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
"""The weight decays a logistic head's start chooses from, by the cross-entropy of held-out labeled documents
(features have unit RMS)."""


class LabelHead(nn.Module):
    """Classifier of one level. ``forward(codes)``: codes, a list of (M, k_l) per level -> logits (M, num_classes).

    Args:
        level: the labeled level.
        sizes: the ranks of every level of the model (k_0, k_1, ...).
        num_classes: number of classes (>= 2).
        form: "logistic" or "papers" (see the module docstring).
        nonnegative: for "papers", keep B >= 0 (the SSNMF objective). Ignored for "logistic".
        reads: the levels whose codes the head reads (default: 0..level for "logistic", (level,) for "papers").
    """

    def __init__(self, level: int, sizes, num_classes: int, *, form: str = "logistic", nonnegative: bool = True,
                 reads=None, generator=None, dtype=None, device=None):
        super().__init__()
        if form not in HEAD_FORMS:
            raise ValueError(f"LabelHead: form must be one of {HEAD_FORMS}, got {form!r}")
        self.level, self.num_classes, self.form = int(level), int(num_classes), form
        self.reads = tuple(range(level + 1)) if reads is None and form == "logistic" else tuple(reads or (level,))
        features = sum(int(sizes[l]) for l in self.reads)
        if form == "logistic":
            self.weight = nn.Parameter(torch.zeros(num_classes, features, dtype=dtype, device=device))
            self.bias = nn.Parameter(torch.zeros(num_classes, dtype=dtype, device=device))
            self.nonnegative = False
        else:
            # the one uniform draw (float64 on the generator's device, then cast): one seed, one start in every dtype
            B = uniform(num_classes, features, generator=generator, dtype=dtype, device=device)
            if not nonnegative:
                B = (2 * B - 1) / features ** 0.5  # nn.Linear's scale
            self.weight = nn.Parameter(B)
            self.register_parameter("bias", None)
            self.nonnegative = bool(nonnegative)
        self._nonnegative = ("weight",) if self.nonnegative else ()
        self.register_buffer("scale", torch.ones(features, dtype=self.weight.dtype, device=device))
        # wd of a logistic head's regulariser wd/2 ||W||^2 per labeled sample: set by its start, used by neuralnmf.fit
        self.register_buffer("decay", torch.zeros((), dtype=self.weight.dtype, device=device))

    @property
    def weight_decay(self) -> float:
        return float(self.decay)

    @property
    def loss_kind(self) -> str:
        """The label loss this head is trained with: "ce" (logistic) or "l2" (papers)."""
        return "ce" if self.form == "logistic" else "l2"

    def features(self, codes) -> torch.Tensor:
        """The codes the head reads, concatenated: (M, sum of their ranks)."""
        return codes[self.reads[0]] if len(self.reads) == 1 else torch.cat([codes[l] for l in self.reads], -1)

    def forward(self, codes) -> torch.Tensor:
        f = self.features(codes)
        if self.form == "logistic":
            f = f / self.scale
        return F.linear(f, self.weight, self.bias)

    def penalty(self) -> torch.Tensor:
        """wd/2 ||W||^2: the head's regularizer per labeled sample (zero for the papers' form)."""
        return 0.5 * self.decay * (self.weight * self.weight).sum()

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities (M, c): softmax for "logistic"; for "papers", the scores clipped at 0 and
        normalised (uniform where all are <= 0), since least squares on one-hot labels gives no likelihood."""
        if self.form == "logistic":
            return logits.softmax(-1)
        scores = logits.clamp_min(0)
        total = scores.sum(-1, keepdim=True)
        return torch.where(total > 0, scores / total.clamp_min(torch.finfo(scores.dtype).tiny),
                           torch.full_like(scores, 1.0 / scores.shape[-1]))

    @torch.no_grad()
    def start(self, codes, y: torch.Tensor, mask: torch.Tensor | None = None, *, holdout: torch.Tensor | None = None,
              weight_decays=WEIGHT_DECAYS) -> dict:
        """Fit the head alone to the codes of the labeled samples (the dictionaries stay as they are).

        codes: list of (M, k_l); y: (M,) class indices; mask: (M,) bool, True = labeled; holdout: (M,) bool, labeled
        samples to choose the weight decay on, by their cross-entropy (a logistic head; without it, the middle of
        ``weight_decays``). Returns what was chosen: {"weight_decay": ..., "holdout_loss": {wd: mean
        cross-entropy}, "holdout_accuracy": {wd: accuracy}}.
        """
        f = self.features(codes).detach()
        keep = torch.ones(f.shape[0], dtype=torch.bool, device=f.device) if mask is None else mask.bool()
        if self.form == "papers":
            Y = F.one_hot(y[keep].long(), self.num_classes).to(f.dtype)
            if self.nonnegative:
                B = nnls(Y, f[keep]).mT  # each class column of Y by the code columns: (k, c) -> (c, k)
            else:
                B = torch.linalg.lstsq(f[keep], Y, driver="gelsd" if f.device.type == "cpu" else None).solution.mT
            self.weight.copy_(B.to(self.weight.dtype))
            return {}
        scale = f[keep].pow(2).mean(0).sqrt()
        self.scale.copy_(torch.where(scale > 0, scale, torch.ones_like(scale)))
        f = f / self.scale
        y = y.long()
        holdout = None if holdout is None else holdout & keep
        train = keep if holdout is None else keep & ~holdout
        losses, accuracies = {}, {}
        if holdout is not None and bool(holdout.any()) and len(weight_decays) > 1:
            for wd in weight_decays:  # scored by the held-out cross-entropy: far less noisy than the accuracy
                W, b = _logistic(f[train], y[train], self.num_classes, wd)
                logits = F.linear(f[holdout], W, b)
                losses[wd] = float(F.cross_entropy(logits.double(), y[holdout]))
                accuracies[wd] = float((logits.argmax(-1) == y[holdout]).double().mean())
            wd = min(losses, key=losses.get)
        else:
            wd = weight_decays[len(weight_decays) // 2]
        W, b = _logistic(f[train], y[train], self.num_classes, wd)
        self.weight.copy_(W)
        self.bias.copy_(b)
        self.decay.fill_(wd)
        return {"weight_decay": float(wd), "holdout_loss": losses, "holdout_accuracy": accuracies}

    def extra_repr(self) -> str:
        return f"level={self.level}, reads={self.reads}, num_classes={self.num_classes}, form={self.form!r}"


def _logistic(f: torch.Tensor, y: torch.Tensor, num_classes: int, wd: float, max_iter: int = 500):
    """argmin_{W, b} mean CE(f W^T + b, y) + wd/2 ||W||^2 (multinomial, L-BFGS in float64): (W, b)."""
    f64 = f.double()
    W = torch.zeros(num_classes, f.shape[1], dtype=torch.float64, device=f.device, requires_grad=True)
    b = torch.zeros(num_classes, dtype=torch.float64, device=f.device, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], max_iter=max_iter, line_search_fn="strong_wolfe", tolerance_grad=1e-9,
                            tolerance_change=1e-12)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(F.linear(f64, W, b), y) + 0.5 * wd * (W * W).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return W.detach().to(f.dtype), b.detach().to(f.dtype)


def labels_by_level(y, label_mask, heads, depth: int, samples: int, device, fn: str = "fit", *,
                    warn: bool = True) -> dict:
    """Labels as {level: (y (M,) long, mask (M,) bool or None)}, checked against the classifiers ``heads``.

    ``y``: (M,) class indices for the deepest labeled level, or a dict {level: (M,) labels} (a level may be
    negative, counted from the deepest of the model's ``depth`` levels); ``label_mask``: (M,) bool (True = labeled;
    with a dict of labels it applies to every level) or a dict {level: mask}. Unlabeled entries of y are set to 0
    (never read); a mask is None when every sample is labeled. Raises ValueError naming the problem: labels for a
    level without a classifier, a shape, a class out of range, no labeled sample.
    """
    if y is None:
        if label_mask is not None:
            raise ValueError(f"{fn}: label_mask given without labels y")
        return {}
    if not heads:
        raise ValueError(f"{fn}: labels y were given but the model has no classifier: build it with num_classes")
    levels = sorted(int(l) for l in heads)
    per_level = isinstance(y, Mapping)
    ys = {_resolve_level(level, levels, depth, fn): labels for level, labels in y.items()} if per_level \
        else {levels[-1]: y}
    if isinstance(label_mask, Mapping):
        masks = {_resolve_level(level, levels, depth, fn): m for level, m in label_mask.items()}
        extra = sorted(set(masks) - set(ys))
        if extra:
            raise ValueError(f"{fn}: label_mask names level(s) {extra} that have no labels in y")
    else:
        masks = {l: label_mask for l in ys}
    out = {}
    for l, labels in ys.items():
        where = f"level {l}: " if per_level else ""
        out[l] = check_class_labels(labels, masks.get(l), heads[str(l)].num_classes, samples, device, f"{fn}: {where}",
                                    warn=warn)
    return dict(sorted(out.items()))


def check_class_labels(y, label_mask, num_classes: int, samples: int, device, prefix: str = "", *, warn: bool = True):
    """One level's labels: y (M,) integer class indices in [0, num_classes), -1 = unlabeled; label_mask (M,) bool
    (True = labeled; default: every sample whose label is not -1). The checks are
    :func:`neuralnmf._checks.check_labels`'s. Returns (y long with unlabeled entries 0, mask or None when all are
    labeled); a class without a labeled sample gets a warning that names it."""
    y, mask, _ = check_labels(y, label_mask, num_classes, samples, device, prefix.rstrip(": ") or "labels")
    if warn:
        present = torch.unique(y[mask]).tolist()
        if len(present) < num_classes:
            absent = sorted(set(range(num_classes)) - set(present))
            warnings.warn(f"{prefix}{len(absent)} of {num_classes} classes have no labeled sample (classes "
                          f"{absent[:10]}{' ...' if len(absent) > 10 else ''}): the classifier will not learn them",
                          UserWarning, stacklevel=3)
    return y, (None if bool(mask.all()) else mask)


def _resolve_level(level, levels: list[int], depth: int, fn: str) -> int:
    l = check_level(level, depth, fn, "label level")  # 0..depth-1, or negative from the deepest
    if l not in levels:
        raise ValueError(f"{fn}: labels for level {level}, but the model has classifiers at levels {levels} only "
                         "(build it with num_classes={level: classes, ...})")
    return l
