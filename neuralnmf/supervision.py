"""The label terms of a training step of Neural NMF: one per labeled level, weighed by ``lam``, and the held-out
accuracy read from the same forward pass.

Each labeled level's term is its classifier's loss summed over the samples whose labels train (plus, for a
"logistic" classifier, its weight decay wd/2 ||W||^2 per such sample, the objective its start minimised); fit
divides every term by the data term's normalizer, so ``lam`` weighs summed label losses against summed squared
errors as in the papers.
"""

from __future__ import annotations

from ._checks import check_real
from .losses import supervision_loss

__all__ = ["DEFAULT_LAM", "label_weights", "term_name", "label_terms"]

DEFAULT_LAM = {"logistic": 1.0, "papers": 0.3}
"""The label weight of the papers' sums ||X - A S||^2 + lam (label loss summed over the labeled samples), per
classifier form. "logistic" (summed cross-entropy): 1.0, the best held-out accuracy on 20 Newsgroups with the
epoch chosen on held-out labels (docs/supervision.md). "papers" (||L (Y - B S)||^2): 0.3, which classified held-out
documents better than the SSNMF default of 1 and kept every level within 1% of flat NMF (docs/real_corpus.md)."""


def label_weights(model, lam) -> dict[int, float]:
    """lam per labeled level: a number for every level, {level: number}, or None (each classifier form's default)."""
    heads = getattr(model, "heads", {})
    if lam is None:
        return {int(l): DEFAULT_LAM[h.form] for l, h in heads.items()}
    values = lam if isinstance(lam, dict) else {int(l): lam for l in heads}
    out = {}
    for level, value in values.items():
        value = check_real(value, "fit", "lam" if not isinstance(lam, dict) else f"lam[{level}]")
        if str(level) not in heads:
            raise ValueError(f"fit: lam names level {level}, which has no classifier (labeled levels: "
                             f"{[int(l) for l in heads]})")
        out[int(level)] = value
    for level, head in heads.items():  # levels the dict leaves out keep their form's default
        out.setdefault(int(level), DEFAULT_LAM[head.form])
    return out


def term_name(model, level: int) -> str:
    """The history's name of a level's label term: "supervision", or "supervision_<level>" with several."""
    return "supervision" if len(model.heads) == 1 else f"supervision_{level}"


def label_terms(model, out, labels: dict, holdout: dict, classification, weights: dict, sums: dict,
                held: dict) -> dict[str, float]:
    """Add each labeled level's term to ``sums`` and its held-out (right, summed loss, count) to ``held``; returns
    the weight of each term by name. labels: {level: (y (M,), training mask (M,) or None)}; holdout: {level: (M,) bool}."""
    scale = {}
    for level, (y, mask) in labels.items():
        head, name = model.heads[str(level)], term_name(model, level)
        logits = out.level_logits[level]
        sums[name] = supervision_loss(logits, y, mask, classification or head.loss_kind, reduction="sum")
        if head.form == "logistic":  # the head's regulariser, per labeled sample, as in its start's objective
            count = y.shape[0] if mask is None else mask.to(logits.dtype).sum()
            sums[name] = sums[name] + count * head.penalty()
        scale[name] = weights[level]
        if level in holdout:  # held-out: correct predictions, summed label loss, count
            hold = holdout[level].to(logits.dtype)
            right = ((logits.detach().argmax(-1) == y).to(logits.dtype) * hold).sum()
            loss = supervision_loss(logits.detach(), y, holdout[level], head.loss_kind, reduction="sum")
            previous = held.get(level, (0.0, 0.0, 0.0))
            held[level] = (previous[0] + right, previous[1] + loss, previous[2] + hold.sum())
    return scale
