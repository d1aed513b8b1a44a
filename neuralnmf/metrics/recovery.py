"""Recovery of a known topic hierarchy: topics matched one to one with true classes (Hungarian method, scipy on
the host), and the share of true parent links a learned hierarchy recovers. Python floats."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from .._checks import int_sequence
from ._inputs import _labels, _same_device, _tensor
from .classification import _num_classes

__all__ = ["TopicMatching", "match_topics", "topic_recovery_score", "HierarchyRecovery", "hierarchy_recovery"]


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
    true = [int_sequence(h, f"hierarchy_true[{l}]") for l, h in enumerate(hierarchy_true)]
    pred = [int_sequence(h, f"hierarchy_pred[{l}]") for l, h in enumerate(hierarchy_pred)]

    if matchings is None:
        matchings = [None] * (L + 1)
    if isinstance(matchings, (str, bytes)) or not isinstance(matchings, Sequence) or len(matchings) != L + 1:
        raise ValueError(f"matchings must be a list of L + 1 = {L + 1} entries (levels 0 .. L), each None or a list")
    m = [None if mm is None else int_sequence(mm, f"matchings[{l}]") for l, mm in enumerate(matchings)]

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
