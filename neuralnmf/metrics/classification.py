"""Classification metrics: accuracy of scores or predictions, and the papers' least-squares "classifier" on codes
(protocols §1.8). 0-d tensors on the inputs' device (no host synchronisation)."""

from __future__ import annotations

import torch

from ._inputs import _floating, _labels, _same_device, _sample_mask, _tensor

__all__ = ["accuracy", "least_squares_fit", "least_squares_accuracy", "protocol_accuracy"]


def _predictions(pred_or_logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    _tensor(pred_or_logits, "pred_or_logits")
    if pred_or_logits.is_floating_point():
        if pred_or_logits.shape[:-1] != y.shape or pred_or_logits.dim() != y.dim() + 1:
            raise ValueError(
                f"pred_or_logits: floating-point scores must have shape y.shape + (num_classes,) = "
                f"{tuple(y.shape)} + (c,), got {tuple(pred_or_logits.shape)}"
            )
        return pred_or_logits.argmax(-1)
    if pred_or_logits.dtype == torch.bool or pred_or_logits.is_complex():
        raise TypeError(f"pred_or_logits must be integer predictions or floating scores, got {pred_or_logits.dtype}")
    if pred_or_logits.shape != y.shape:
        raise ValueError(
            f"pred_or_logits: integer predictions must have y's shape {tuple(y.shape)}, "
            f"got {tuple(pred_or_logits.shape)}"
        )
    return pred_or_logits


def accuracy(pred_or_logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Fraction of samples whose predicted class equals ``y``.

    Args:
        pred_or_logits: integer predictions (samples,), or floating scores / logits (samples, num_classes) whose
            argmax over the last dimension is the prediction (ties go to the lowest class index).
        y: (samples,) integer class indices.
        mask: optional (samples,) bool, True = evaluate this sample.

    Returns:
        0-d tensor on ``y``'s device: float dtype of the scores, or the default dtype for integer predictions. An
        empty selection gives nan (0 / 0).
    """
    y = _labels(y)
    if y.dim() != 1:
        raise ValueError(f"y must have shape (samples,), got {tuple(y.shape)}")
    pred = _predictions(pred_or_logits, y)
    _same_device(pred, y, "pred_or_logits", "y")
    out_dtype = pred_or_logits.dtype if pred_or_logits.is_floating_point() else torch.get_default_dtype()
    correct = (pred == y).to(out_dtype)
    mask = _sample_mask(mask, y.shape[0], y.device, "mask")
    if mask is None:
        return correct.sum() / y.shape[0]
    m = mask.to(out_dtype)
    return (correct * m).sum() / m.sum()


def _num_classes(y: torch.Tensor, num_classes: int | None) -> int:
    if y.numel() and int(y.min()) < 0:
        raise ValueError(f"y must hold class indices >= 0, got {int(y.min())}")
    top = int(y.max()) + 1 if y.numel() else 0
    if num_classes is None:
        return top
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes <= 0:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if top > num_classes:
        raise ValueError(f"y holds class {top - 1} but num_classes={num_classes}")
    return num_classes


def least_squares_fit(
    codes: torch.Tensor,
    y: torch.Tensor,
    *,
    num_classes: int | None = None,
    fit_mask: torch.Tensor | None = None,
    masked_fit: str = "drop",
) -> torch.Tensor:
    """The papers' post-hoc linear classifier on codes (protocols §1.8), batch first.

    In the papers' orientation (S: k x n codes, Y: c x n one-hot) it is ``B = Y_fit pinv(S)``; here codes are
    (samples, k), and the returned W = B^T = pinv(codes) @ Y_fit has shape (k, c), so that scores = codes @ W.

    Args:
        codes: (samples, k) codes, floating point (detached: this is a metric, not a training loss).
        y: (samples,) class indices.
        num_classes: c; default max(y) + 1.
        fit_mask: (samples,) bool, True = labeled; default: fit on all samples (the Table 1 protocol).
        masked_fit: how ``fit_mask`` is used: ``"drop"`` (default) fits on the labeled samples only,
            W = pinv(codes[L]) @ Y[L]; ``"zero"`` is the 20 Newsgroups protocol: the unlabeled rows of Y are set to
            zero but kept, W = pinv(codes) @ (Y ⊙ L), i.e. unlabeled samples are fitted towards the zero vector.

    Returns:
        W: (k, c) in the dtype and on the device of ``codes``. ``torch.linalg.pinv`` with its default tolerance.
        (Checking that ``y`` fits ``num_classes`` reads min/max of ``y`` on the host: a metric, not for a loop.)
    """
    _floating(codes, "codes")
    y = _labels(y)
    if codes.dim() != 2:
        raise ValueError(f"codes must have shape (samples, k), got {tuple(codes.shape)}")
    if y.shape != (codes.shape[0],):
        raise ValueError(f"y must have shape ({codes.shape[0]},) (one label per row of codes), got {tuple(y.shape)}")
    _same_device(y, codes, "y", "codes")
    if masked_fit not in ("drop", "zero"):
        raise ValueError(f"masked_fit must be 'drop' or 'zero', got {masked_fit!r}")
    c = _num_classes(y, num_classes)
    codes = codes.detach()
    Y = torch.nn.functional.one_hot(y.long(), c).to(codes.dtype)
    mask = _sample_mask(fit_mask, codes.shape[0], codes.device, "fit_mask")
    if mask is not None:
        if masked_fit == "drop":
            codes, Y = codes[mask], Y[mask]
        else:
            Y = Y * mask.to(Y.dtype)[:, None]
    return torch.linalg.pinv(codes) @ Y


def least_squares_accuracy(
    codes: torch.Tensor,
    y: torch.Tensor,
    *,
    num_classes: int | None = None,
    fit_mask: torch.Tensor | None = None,
    eval_mask: torch.Tensor | None = None,
    masked_fit: str = "drop",
) -> torch.Tensor:
    """Accuracy of the papers' least-squares classifier on codes (protocols §1.8).

    Fits W = pinv(codes[fit]) @ onehot(y[fit]) (see :func:`least_squares_fit`), predicts argmax(codes @ W) and
    scores it on the ``eval_mask`` samples.

    The defaults are the Neural NMF paper's Table 1 protocol: fit on all samples and evaluate on all samples, which
    is a training accuracy of a post-hoc classifier even for "semi-supervised" rows. The honest version fits on the
    labeled samples and evaluates on the others: ``fit_mask=L, eval_mask=~L``. Note that ``eval_mask`` defaults to
    all samples even when ``fit_mask`` is given.

    Returns:
        0-d tensor on ``codes``' device, in its dtype.
    """
    W = least_squares_fit(codes, y, num_classes=num_classes, fit_mask=fit_mask, masked_fit=masked_fit)
    return accuracy(codes.detach() @ W, y, eval_mask)


def protocol_accuracy(codes: torch.Tensor, y: torch.Tensor, label_mask: torch.Tensor,
                      num_classes: int | None = None) -> torch.Tensor:
    """The accuracy of the Multi-HNTF paper's 20 Newsgroups table (protocols §1.8): B = (Y ⊙ L) pinv(S) over all
    documents, the unlabeled ones fitted towards zero, predictions argmax_c (B S)[c, j], scored on the unlabeled
    documents only.

    codes (M, k) batch first; y (M,) class indices; label_mask (M,) bool, True = labeled. The notebook scores every
    layer on the 6 superclasses, its rank-10 first layers included. Returns a 0-d tensor.
    """
    mask = label_mask.bool()
    return least_squares_accuracy(codes.detach(), y, num_classes=num_classes, fit_mask=mask, eval_mask=~mask,
                                  masked_fit="zero")
