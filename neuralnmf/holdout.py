"""Supervised training that generalizes: held-out labeled samples choose the epoch.

The label term of Neural NMF reaches the codes through the dictionaries, and over a large vocabulary the
dictionaries can fit the labeled documents through their rare words: training accuracy keeps rising while the
accuracy on documents never seen falls (docs/supervision.md). :func:`neuralnmf.fit` therefore holds out a slice
of the labeled samples (stratified by class), leaves it out of the label term, reads its label loss from every
epoch's forward pass (no extra solve: the held-out samples stay in the data term like unlabeled ones), keeps the
parameters of the epoch with the lowest, stops once ``patience`` epochs pass without a lower one, and restores
them. The loss, not the accuracy: with a hundred held-out documents the accuracy moves in steps of 1% and its
maximum over hundreds of epochs is mostly noise (20 Newsgroups with 10% labels: the accuracy picked an epoch that
classified new documents at 0.449, against 0.509 at the start; docs/supervision.md).
"""

from __future__ import annotations

import torch

__all__ = ["DEFAULT_VALIDATION", "DEFAULT_VALIDATION_PATIENCE", "MIN_HOLDOUT", "draw_holdout", "BestEpoch"]

DEFAULT_VALIDATION = 0.1
"""Share of the labeled samples held out to choose the epoch and the classifiers' weight decay."""

DEFAULT_VALIDATION_PATIENCE = 100
"""Epochs without a lower held-out label loss before training stops."""

MIN_HOLDOUT = 10
"""Fewer held-out samples than this say nothing: the hold-out is skipped (all labels train)."""


def draw_holdout(labels: dict, fraction: float, samples: int, generator=None) -> torch.Tensor | None:
    """(M,) bool, True = held out: ``fraction`` of the labeled samples of each class, drawn per class (so every
    class keeps its share), from the labels of the deepest labeled level ({level: (y, mask)}). None when the
    fraction gives fewer than :data:`MIN_HOLDOUT` samples."""
    if not labels or not fraction:
        return None
    y, mask = labels[max(labels)]
    device = y.device
    labeled = torch.ones(samples, dtype=torch.bool) if mask is None else mask.cpu()
    y = y.cpu()
    if int(round(fraction * int(labeled.sum()))) < MIN_HOLDOUT:
        return None
    held = torch.zeros(samples, dtype=torch.bool)
    for c in torch.unique(y[labeled]).tolist():
        members = torch.nonzero(labeled & (y == c)).flatten()
        take = int(round(fraction * members.numel()))
        if take and take < members.numel():  # a class keeps at least one training sample
            held[members[torch.randperm(members.numel(), generator=generator)[:take]]] = True
    return held.to(device) if bool(held.any()) else None


class BestEpoch:
    """Keeps the parameters of the epoch with the best held-out score, and says when to stop.

    Call :meth:`before_step` just before each optimizer step (it copies the parameters the epoch's forward pass
    used), :meth:`end_of_epoch` with the epoch's score, and :meth:`restore` at the end.
    """

    def __init__(self, params, patience: int):
        self.params = list(params)
        self.patience = patience
        self.previous = [p.detach().clone() for p in self.params]
        self.best_state = None
        self.best, self.best_epoch, self.wait = float("-inf"), -1, 0

    @torch.no_grad()
    def before_step(self) -> None:
        torch._foreach_copy_(self.previous, [p.detach() for p in self.params])

    @torch.no_grad()
    def end_of_epoch(self, epoch: int, score: float) -> bool:
        """Record the score of the parameters of this epoch's forward pass; True when training should stop."""
        if score > self.best:
            self.best, self.best_epoch, self.wait = score, epoch, 0
            if self.best_state is None:
                self.best_state = [t.clone() for t in self.previous]
            else:
                torch._foreach_copy_(self.best_state, self.previous)
        else:
            self.wait += 1
        return self.wait >= self.patience

    @torch.no_grad()
    def restore(self) -> None:
        if self.best_state is not None:
            torch._foreach_copy_([p.data for p in self.params], self.best_state)
