"""Metrics: relative error, accuracy, the papers' least-squares "classifier" accuracy, and recovery scores against a
known topic hierarchy.

Tensor-valued metrics return 0-d tensors on the inputs' device (no host synchronisation). The matching-based scores
(:func:`match_topics`, :func:`topic_recovery_score`, :func:`hierarchy_recovery`) solve an assignment problem with
scipy on the host and return Python floats.

Conventions: codes are batch first, (samples, k); labels are (samples,) integer class indices; masks are (samples,)
bool with True = use this sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

__all__ = [
    "relative_error",
    "accuracy",
    "least_squares_fit",
    "least_squares_accuracy",
    "TopicMatching",
    "match_topics",
    "topic_recovery_score",
    "HierarchyRecovery",
    "hierarchy_recovery",
]


# --- validation helpers -------------------------------------------------------------------------------------------


def _tensor(t, name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    return t


def _floating(t, name: str) -> torch.Tensor:
    _tensor(t, name)
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
    return t


def _labels(y, name: str = "y") -> torch.Tensor:
    _tensor(y, name)
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class indices (e.g. torch.long), got {y.dtype}")
    return y


def _same_device(a: torch.Tensor, b: torch.Tensor, na: str, nb: str) -> None:
    if a.device != b.device:
        raise ValueError(f"{na} is on {a.device} but {nb} is on {b.device}")


def _sample_mask(mask, n: int, device, name: str) -> torch.Tensor | None:
    if mask is None:
        return None
    _tensor(mask, name)
    if mask.dtype != torch.bool:
        raise TypeError(f"{name} must be a bool tensor (True = use the sample), got {mask.dtype}")
    if mask.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one entry per sample), got {tuple(mask.shape)}")
    if mask.device != device:
        raise ValueError(f"{name} is on {mask.device} but the data is on {device}")
    return mask


# --- reconstruction and classification ----------------------------------------------------------------------------


def relative_error(x: torch.Tensor, x_hat: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Relative reconstruction error ``||x - x_hat||_F / ||x||_F`` over all entries (protocols §1.1).

    Args:
        x: the reference data, any shape (e.g. (samples, features)), floating point.
        x_hat: the approximation, same shape.
        mask: optional, broadcastable to ``x``: bool (True = observed entry; only those count) or nonnegative
            float weights W (then ``||W ⊙ (x - x_hat)|| / ||W ⊙ x||``).

    Returns:
        0-d tensor on ``x``'s device, in the promoted dtype of the inputs. Differentiable in ``x_hat``. A reference
        of zero norm gives inf (or nan when ``x_hat`` matches it), by IEEE division; NaN inputs propagate.
    """
    _floating(x, "x")
    _floating(x_hat, "x_hat")
    if x.shape != x_hat.shape:
        raise ValueError(f"x_hat must have the shape of x {tuple(x.shape)}, got {tuple(x_hat.shape)}")
    _same_device(x, x_hat, "x_hat", "x")
    diff, ref = x - x_hat, x
    if mask is not None:
        _tensor(mask, "mask")
        _same_device(mask, x, "mask", "x")
        try:
            if torch.broadcast_shapes(mask.shape, x.shape) != x.shape:
                raise RuntimeError
        except RuntimeError:
            raise ValueError(
                f"mask of shape {tuple(mask.shape)} does not broadcast to x's shape {tuple(x.shape)}"
            ) from None
        if mask.dtype == torch.bool:
            diff = torch.where(mask, diff, torch.zeros((), dtype=diff.dtype, device=diff.device))
            ref = torch.where(mask, ref, torch.zeros((), dtype=ref.dtype, device=ref.device))
        elif mask.is_floating_point():
            diff, ref = mask * diff, mask * ref
        else:
            raise TypeError(f"mask must be bool or floating point, got {mask.dtype}")
    return torch.linalg.vector_norm(diff) / torch.linalg.vector_norm(ref)


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


# --- recovery of a known hierarchy --------------------------------------------------------------------------------


class TopicMatching(NamedTuple):
    """Result of :func:`match_topics`.

    Attributes:
        accuracy: fraction of samples whose topic is matched to their true class.
        assignment: for each learned topic, the true class it is matched to, or -1 when unmatched.
        confusion: (k, c) long counts, confusion[t, c] = #samples with topic t and class c (on the input device).
    """

    accuracy: float
    assignment: list[int]
    confusion: torch.Tensor


def _linear_sum_assignment_max(weights: torch.Tensor) -> tuple[list[int], list[int]]:
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(weights.detach().cpu().double().numpy(), maximize=True)
    return rows.tolist(), cols.tolist()


def match_topics(
    codes_or_topics: torch.Tensor, labels: torch.Tensor, *, num_classes: int | None = None
) -> TopicMatching:
    """Match learned topics to true classes one to one by the Hungarian method.

    Every sample goes to its dominant topic, t = argmax_j codes[sample, j] (ties: lowest index); a sample whose
    code is all zero goes to no topic and counts as wrong. With confusion[t, c] the number of samples of class c
    sent to topic t, the one-to-one matching (``scipy.optimize.linear_sum_assignment``) maximises the matched
    counts, and accuracy = (sum of matched counts) / (number of samples). With more topics than classes the extra
    topics stay unmatched (their samples count as wrong); with fewer, some classes do.

    The same works for dictionaries: pass topics in input space, (features, k) = A_0 ⋯ A_l, with the true class of
    every feature (e.g. ``HierarchicalCorpus.word_labels[l]``); each word then goes to the topic it weighs most in.

    Args:
        codes_or_topics: (samples, k) nonnegative scores, or (samples,) integer topic assignments.
        labels: (samples,) class indices.
        num_classes: c; default max(labels) + 1.
    """
    y = _labels(labels, "labels")
    if y.dim() != 1 or y.numel() == 0:
        raise ValueError(f"labels must have shape (samples,) with samples > 0, got {tuple(y.shape)}")
    _tensor(codes_or_topics, "codes_or_topics")
    _same_device(codes_or_topics, y, "codes_or_topics", "labels")
    c = _num_classes(y, num_classes)
    if codes_or_topics.is_floating_point():
        if codes_or_topics.dim() != 2 or codes_or_topics.shape[0] != y.shape[0]:
            raise ValueError(
                f"codes_or_topics must have shape ({y.shape[0]}, k) (one row per label), got "
                f"{tuple(codes_or_topics.shape)}"
            )
        scores = codes_or_topics.detach()
        k = scores.shape[1]
        pred = scores.argmax(1)
        valid = (scores != 0).any(1)
    else:
        if codes_or_topics.shape != y.shape:
            raise ValueError(f"codes_or_topics: integer assignments must have shape {tuple(y.shape)}, got "
                             f"{tuple(codes_or_topics.shape)}")
        pred = codes_or_topics.long()
        if int(pred.min()) < -1:
            raise ValueError("codes_or_topics: integer assignments must be >= 0 (or -1 for none)")
        k = int(pred.max()) + 1
        valid = pred >= 0
    if k == 0:
        raise ValueError("codes_or_topics has no topics (k = 0)")
    idx = (pred.clamp_min(0) * c + y.long())[valid]
    confusion = torch.bincount(idx, minlength=k * c).reshape(k, c)
    rows, cols = _linear_sum_assignment_max(confusion)
    assignment = [-1] * k
    conf_cpu = confusion.cpu()
    matched = 0
    for r, col in zip(rows, cols):
        assignment[r] = col
        matched += int(conf_cpu[r, col])
    return TopicMatching(matched / y.shape[0], assignment, confusion)


def topic_recovery_score(codes: torch.Tensor, labels: torch.Tensor, *, num_classes: int | None = None) -> float:
    """Matched accuracy of :func:`match_topics`: the fraction of samples whose dominant topic is the one matched
    (Hungarian, one to one) to their true class. 1.0 means the topics recover the classes up to relabeling."""
    return match_topics(codes, labels, num_classes=num_classes).accuracy


class HierarchyRecovery(NamedTuple):
    """Result of :func:`hierarchy_recovery`.

    Attributes:
        score: recovered true links / all true links, over all levels.
        per_level: the same per level pair (level l -> l + 1), for l = 0 .. L - 1.
        matchings: the matching used at every level 0 .. L (learned index -> true index, -1 unmatched).
    """

    score: float
    per_level: list[float]
    matchings: list[list[int]]


def _int_list(v, name: str) -> list[int]:
    if isinstance(v, torch.Tensor):
        if v.is_floating_point() or v.dim() != 1:
            raise ValueError(f"{name} must be a 1-D integer tensor or a list of ints")
        return [int(i) for i in v.tolist()]
    if isinstance(v, (str, bytes)) or not isinstance(v, Sequence):
        raise TypeError(f"{name} must be a sequence of ints, got {type(v).__name__}")
    out = []
    for i in v:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"{name} must contain ints, got {i!r}")
        out.append(int(i))
    return out


def hierarchy_recovery(hierarchy_pred, hierarchy_true, *, matchings=None) -> HierarchyRecovery:
    """How many parent links of a known hierarchy a learned hierarchy recovers.

    A hierarchy is a list of parent maps: ``h[l][i]`` is the parent, at level l + 1, of topic i of level l
    (learned maps come from :func:`neuralnmf.topics.hierarchy_from_dictionaries` ``(As).parents``, where -1 marks
    a topic that feeds no parent; true maps e.g. ``HierarchicalCorpus.hierarchy``). Learned topics carry arbitrary
    indices, so each level l is matched to the true classes by ``m_l`` (learned -> true, one to one, -1 unmatched).

    For every true child class c at level l (l = 0 .. L - 1) the link c -> true parent is *recovered* iff some
    learned topic i has m_l[i] = c and its learned parent p = h_pred[l][i] satisfies m_{l+1}[p] = h_true[l][c].
    ``per_level[l]`` = recovered / (number of true classes at level l); ``score`` = all recovered / all true links
    (for the toy corpus 9 + 4 = 13 links). Unmatched extra learned topics are not penalised.

    Matchings: ``matchings[l]`` for l = 0 .. L may be given (e.g. ``match_topics(codes_l, labels[l]).assignment``
    or ``match_topics(A_0⋯A_l, word_labels[l]).assignment``) or None. A missing ``m_0`` is the identity (the
    learned leaves are taken as aligned with the true classes). A missing ``m_{l+1}`` is chosen, bottom up, by the
    Hungarian method to maximise the links recovered at level l given ``m_l``; so a learned hierarchy that equals
    the true one up to relabeling of its upper levels scores 1 without any data.

    Args:
        hierarchy_pred: L learned parent maps (lists or 1-D integer tensors), or an object with ``.parents``.
        hierarchy_true: L true parent maps.
        matchings: None, or a list of L + 1 entries, each None or a list of learned -> true indices.

    Returns:
        :class:`HierarchyRecovery` (score, per_level, matchings used).
    """
    if hasattr(hierarchy_pred, "parents"):
        hierarchy_pred = hierarchy_pred.parents
    if isinstance(hierarchy_true, (str, bytes)) or not isinstance(hierarchy_true, Sequence) or not hierarchy_true:
        raise TypeError("hierarchy_true must be a non-empty list of parent maps")
    if isinstance(hierarchy_pred, (str, bytes)) or not isinstance(hierarchy_pred, Sequence):
        raise TypeError("hierarchy_pred must be a list of parent maps")
    L = len(hierarchy_true)
    if len(hierarchy_pred) != L:
        raise ValueError(f"hierarchy_pred has {len(hierarchy_pred)} levels but hierarchy_true has {L}")
    true = [_int_list(h, f"hierarchy_true[{l}]") for l, h in enumerate(hierarchy_true)]
    pred = [_int_list(h, f"hierarchy_pred[{l}]") for l, h in enumerate(hierarchy_pred)]

    if matchings is None:
        matchings = [None] * (L + 1)
    if isinstance(matchings, (str, bytes)) or not isinstance(matchings, Sequence) or len(matchings) != L + 1:
        raise ValueError(f"matchings must be a list of L + 1 = {L + 1} entries (levels 0 .. L), each None or a list")
    m = [None if mm is None else _int_list(mm, f"matchings[{l}]") for l, mm in enumerate(matchings)]

    # level sizes
    c_sizes = [len(t) for t in true] + [max(true[-1], default=-1) + 1]
    k_sizes = [len(p) for p in pred] + [max([*pred[-1], -1]) + 1]
    if m[L] is not None:
        k_sizes[L] = max(k_sizes[L], len(m[L]))
    for l in range(L):
        for i, p in enumerate(true[l]):
            if not 0 <= p < c_sizes[l + 1]:
                raise ValueError(f"hierarchy_true[{l}][{i}] = {p} is outside range(0, {c_sizes[l + 1]})")
        for i, p in enumerate(pred[l]):
            if not -1 <= p < k_sizes[l + 1]:
                raise ValueError(f"hierarchy_pred[{l}][{i}] = {p} is outside [-1, {k_sizes[l + 1]})")
    for l, mm in enumerate(m):
        if mm is None:
            continue
        if len(mm) != k_sizes[l]:
            raise ValueError(f"matchings[{l}] has {len(mm)} entries but level {l} has {k_sizes[l]} learned topics")
        used = [j for j in mm if j != -1]
        if any(not 0 <= j < c_sizes[l] for j in used):
            raise ValueError(f"matchings[{l}] must map into range(0, {c_sizes[l]}) or -1, got {mm}")
        if len(set(used)) != len(used):
            raise ValueError(f"matchings[{l}] must be one to one, got {mm}")

    if m[0] is None:
        m[0] = [i if i < c_sizes[0] else -1 for i in range(k_sizes[0])]
    per_level, recovered = [], 0
    for l in range(L):
        if m[l + 1] is None:
            K = torch.zeros(k_sizes[l + 1], c_sizes[l + 1], dtype=torch.float64)
            for i, p in enumerate(pred[l]):
                if p >= 0 and m[l][i] >= 0:
                    K[p, true[l][m[l][i]]] += 1
            m[l + 1] = [-1] * k_sizes[l + 1]
            if K.numel():
                for r, col in zip(*_linear_sum_assignment_max(K)):
                    m[l + 1][r] = col
        learned_of = {c: i for i, c in enumerate(m[l]) if c >= 0}
        ok = 0
        for c in range(c_sizes[l]):
            i = learned_of.get(c)
            if i is not None and pred[l][i] >= 0 and m[l + 1][pred[l][i]] == true[l][c]:
                ok += 1
        per_level.append(ok / c_sizes[l] if c_sizes[l] else float("nan"))
        recovered += ok
    total = sum(c_sizes[:L])
    return HierarchyRecovery(recovered / total if total else float("nan"), per_level, m)
