"""The words of every level's topics, the topic hierarchy encoded by a chain of dictionaries, and a printable tree.

A hierarchy is the list of dictionaries ``As = [A_0 (features, k_0), A_1 (k_0, k_1), ..., A_L (k_{L-1}, k_L)]``.
The level-l topics in input space are the columns of A_0 A_1 ⋯ A_l (features, k_l); topic i of level l - 1 feeds
topic j of level l with weight A_l[i, j].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

__all__ = ["layer_topics", "top_words", "TopicHierarchy", "hierarchy_from_dictionaries", "format_hierarchy_tree"]


def _check_chain(As, name: str = "As") -> list[torch.Tensor]:
    if isinstance(As, torch.Tensor):
        As = [As]
    if isinstance(As, (str, bytes)) or not isinstance(As, Sequence) or len(As) == 0:
        raise TypeError(f"{name} must be a non-empty list of 2-D tensors [A_0, A_1, ...]")
    out = []
    for l, A in enumerate(As):
        if not isinstance(A, torch.Tensor):
            raise TypeError(f"{name}[{l}] must be a torch.Tensor, got {type(A).__name__}")
        if not A.is_floating_point():
            raise TypeError(f"{name}[{l}] must be floating point, got {A.dtype}")
        if A.dim() != 2:
            raise ValueError(f"{name}[{l}] must be 2-D, got shape {tuple(A.shape)}")
        if l and A.shape[0] != out[-1].shape[1]:
            raise ValueError(
                f"{name}[{l}] has {A.shape[0]} rows but {name}[{l - 1}] has {out[-1].shape[1]} columns "
                f"(A_l must be (k_(l-1), k_l))"
            )
        if l and A.device != out[0].device:
            raise ValueError(f"{name}[{l}] is on {A.device} but {name}[0] is on {out[0].device}")
        out.append(A.detach())
    return out


def layer_topics(As) -> list[torch.Tensor]:
    """The topics of every level in input space: [A_0, A_0 A_1, ..., A_0 ⋯ A_L], each (features, k_l)."""
    As = _check_chain(As)
    topics = [As[0]]
    for A in As[1:]:
        topics.append(topics[-1] @ A.to(topics[-1].dtype))
    return topics


def top_words(
    topics: torch.Tensor, vocabulary: Sequence[str], n: int = 10, *, normalize: bool | str = False
) -> list[list[tuple[str, float]]]:
    """The ``n`` heaviest words of every topic.

    Args:
        topics: (features, k), one topic per column (e.g. A_0, or A_0 A_1 for the second level).
        vocabulary: one word per feature.
        n: words per topic, ties broken by feature index (fewer when a topic has fewer nonzero weights: zero
            weights are left out).
        normalize: report each weight as its share of the topic's column sum (True or "sum"), or relative to the
            topic's heaviest word ("max": the top word is 1.0, readable whatever the vocabulary size), instead of
            the raw value.

    Returns:
        k lists of (word, weight) pairs, heaviest first.
    """
    if not isinstance(topics, torch.Tensor) or not topics.is_floating_point():
        raise TypeError(f"topics must be a floating-point tensor, got {type(topics).__name__}")
    if topics.dim() != 2:
        raise ValueError(f"topics must have shape (features, k), got {tuple(topics.shape)}")
    if isinstance(vocabulary, (str, bytes)) or not isinstance(vocabulary, Sequence):
        raise TypeError("vocabulary must be a sequence of words")
    if len(vocabulary) != topics.shape[0]:
        raise ValueError(f"vocabulary has {len(vocabulary)} words but topics has {topics.shape[0]} features (rows)")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if normalize not in (False, True, "sum", "max"):
        raise ValueError(f"normalize must be False, True, 'sum' or 'max', got {normalize!r}")
    T = topics.detach().cpu().double()  # the output is host data (str, float)
    if normalize:
        s = T.amax(0, keepdim=True) if normalize == "max" else T.sum(0, keepdim=True)
        T = torch.where(s > 0, T / torch.where(s > 0, s, torch.ones_like(s)), torch.zeros_like(T))
    vals, idx = T.sort(dim=0, descending=True, stable=True)  # ties: lowest feature index first
    vals, idx = vals[:n], idx[:n]
    out = []
    for j in range(T.shape[1]):
        out.append([(str(vocabulary[i]), float(v)) for v, i in zip(vals[:, j].tolist(), idx[:, j].tolist()) if v != 0])
    return out


class TopicHierarchy(NamedTuple):
    """The hierarchy encoded by the dictionaries A_1 .. A_L (see :func:`hierarchy_from_dictionaries`).

    Attributes:
        parents: L long tensors; ``parents[l - 1][i]`` = argmax_j A_l[i, j], the level-l topic that topic i of level
            l - 1 feeds most (-1 when row i of A_l is all zero: it feeds nothing).
        weights: L tensors (k_(l-1), k_l): A_l with every row divided by its sum (all-zero rows stay zero), i.e. the
            share of child i's weight that goes to each parent.
    """

    parents: list[torch.Tensor]
    weights: list[torch.Tensor]


def hierarchy_from_dictionaries(As) -> TopicHierarchy:
    """Read the topic hierarchy off a chain of dictionaries [A_0, A_1, ..., A_L].

    For each consecutive pair of levels (l - 1, l), l = 1 .. L: child topic i of level l - 1 is attached to the
    parent argmax_j A_l[i, j] (ties: lowest j) with the row-normalised weights A_l[i, :] / sum_j A_l[i, j]. A_0 only
    fixes the number of level-0 topics. Tensors stay on the dictionaries' device.

    Raises:
        ValueError: shapes that do not chain, negative or non-finite entries in A_1 .. A_L.
    """
    As = _check_chain(As)
    parents, weights = [], []
    for l, A in enumerate(As[1:], start=1):
        if not bool(torch.isfinite(A).all()):
            raise ValueError(f"As[{l}] contains NaN or Inf")
        if bool((A < 0).any()):
            raise ValueError(f"As[{l}] has negative entries; the hierarchy needs nonnegative dictionaries")
        s = A.sum(1, keepdim=True)
        W = torch.where(s > 0, A / torch.where(s > 0, s, torch.ones_like(s)), torch.zeros_like(A))
        p = A.argmax(1) if A.shape[1] else torch.full((A.shape[0],), -1, dtype=torch.long, device=A.device)
        parents.append(torch.where(s.squeeze(1) > 0, p, torch.full_like(p, -1)))
        weights.append(W)
    return TopicHierarchy(parents, weights)


def format_hierarchy_tree(As, vocabulary: Sequence[str] | None = None, n_words: int = 5, weights: bool = True) -> str:
    """A printable tree of the topic hierarchy, from the top level down.

    Every top-level topic is a root; below it, indented, the topics of the next level down whose dominant parent it
    is (:func:`hierarchy_from_dictionaries`), heaviest link first, and so on to level 0. Nodes are named ``L{l}.T{t}``
    (level l, topic t; level 0 is the finest, the output of A_0). With ``weights``, each child shows in brackets the
    share of its weight that feeds this parent (a row of the normalised A_l). With a ``vocabulary``, each node lists
    its ``n_words`` top words in input space (columns of A_0 ⋯ A_l), with their weight relative to the topic's
    heaviest word (1.00) when ``weights``: readable on any vocabulary, where shares of the total are all ~0. Topics
    that feed no parent (an all-zero row) are listed at the end.

    Example (two levels, vocabulary given)::

        L1.T0: w3_g0 (1.00), w1_g0 (0.92)
          L0.T1 [0.97]: w3_g0 (1.00), w1_g0 (0.95)
    """
    As = _check_chain(As)
    L = len(As) - 1
    hier = hierarchy_from_dictionaries(As)
    parents = [p.tolist() for p in hier.parents]
    shares = [w.detach().cpu().double() for w in hier.weights]
    sizes = [A.shape[1] for A in As]
    words = None
    if vocabulary is not None:
        words = [top_words(T, vocabulary, n_words, normalize="max") for T in layer_topics(As)]

    lines: list[str] = []

    def label(l: int, t: int, share: float | None) -> str:
        text = f"L{l}.T{t}"
        if weights and share is not None:
            text += f" [{share:.2f}]"
        if words is not None:
            ws = words[l][t]
            text += ": " + (", ".join(f"{w} ({v:.2f})" if weights else w for w, v in ws) if ws else "(empty topic)")
        return text

    def node(l: int, t: int, depth: int, share: float | None) -> None:
        lines.append("  " * depth + label(l, t, share))
        if l == 0:
            return
        kids = [i for i, p in enumerate(parents[l - 1]) if p == t]
        kids.sort(key=lambda i: -float(shares[l - 1][i, t]))
        for i in kids:
            node(l - 1, i, depth + 1, float(shares[l - 1][i, t]))

    for t in range(sizes[L]):
        node(L, t, 0, None)
    for l in range(L - 1, -1, -1):
        orphans = [i for i, p in enumerate(parents[l]) if p == -1]
        if orphans:
            lines.append(f"(feed no level-{l + 1} topic)")
            for i in orphans:
                node(l, i, 1, None)
    return "\n".join(lines)
