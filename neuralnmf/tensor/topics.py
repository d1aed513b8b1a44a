"""Topics across modes: the top entries of every mode's topics at every level, and the topic hierarchy as a tree,
shared by all modes (Multi-HNTF, HNTF) or one per mode (Neural NCPD, Standard HNCPD).

Every model (fitted or trainable) gives its :class:`~neuralnmf.tensor.TensorTopics` through
``model.topic_hierarchy()``: ``topics[l][n]`` (I_n, k_l) and the parent maps. For documents x words x time, the
level-1 topics of mode 1 list top words, those of mode 2 top months, and so on.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .trainable import TensorTopics

__all__ = ["top_entries", "format_tensor_hierarchy", "TensorTopics"]


def _hierarchy(model) -> TensorTopics:
    if isinstance(model, TensorTopics):
        return model
    if not hasattr(model, "topic_hierarchy"):
        raise TypeError(f"expected a tensor model with topic_hierarchy() or a TensorTopics, got {type(model).__name__}")
    return model.topic_hierarchy()


def _labels(labels, shape: Sequence[int]) -> list[list[str]]:
    if labels is None:
        return [[str(i) for i in range(s)] for s in shape]
    if isinstance(labels, (str, bytes)) or not isinstance(labels, Sequence) or len(labels) != len(shape):
        raise ValueError(f"labels must be a list of {len(shape)} entries (one per mode), each None or a sequence "
                         "of names")
    out = []
    for n, (lab, s) in enumerate(zip(labels, shape)):
        if lab is None:
            out.append([str(i) for i in range(s)])
            continue
        if isinstance(lab, (str, bytes)) or not isinstance(lab, Sequence):
            raise TypeError(f"labels[{n}] must be a sequence of names, got {type(lab).__name__}")
        if len(lab) != s:
            raise ValueError(f"labels[{n}] has {len(lab)} names but mode {n} has {s} entries")
        out.append([str(x) for x in lab])
    return out


def top_entries(model, labels=None, n: int = 10, *, normalize: bool = True):
    """The ``n`` heaviest entries of every topic, for every level and mode.

    Args:
        model: a tensor model (``topic_hierarchy()``) or a :class:`TensorTopics`.
        labels: one sequence of names per mode (None for a mode: its indices), e.g. [words, months, people].
        n: entries per topic (zero weights are left out).
        normalize: weights as shares of the topic's column sum.

    Returns:
        ``out[l][m][t]``: list of (name, weight) of topic t of mode m at level l, heaviest first.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    h = _hierarchy(model)
    shape = [T.shape[0] for T in h.topics[0]]
    names = _labels(labels, shape)
    out = []
    for level in h.topics:
        per_mode = []
        for m, T in enumerate(level):
            T = T.detach().double().cpu()  # host data: names and floats
            if normalize:
                s = T.sum(0, keepdim=True)
                T = torch.where(s > 0, T / torch.where(s > 0, s, torch.ones_like(s)), torch.zeros_like(T))
            vals, idx = T.sort(dim=0, descending=True, stable=True)
            vals, idx = vals[:n], idx[:n]
            per_mode.append([[(names[m][i], float(v)) for v, i in zip(vals[:, t].tolist(), idx[:, t].tolist())
                              if v != 0] for t in range(T.shape[1])])
        out.append(per_mode)
    return out


def format_tensor_hierarchy(model, labels=None, *, mode_names: Sequence[str] | None = None, n: int = 5,
                            weights: bool = False) -> str:
    """A printable topic tree, deepest level first, every node with the top entries of every mode.

    Nodes are ``L{l}.T{t}`` (level l, topic t; level 0 holds the r_0 NCPD components). Below a node, indented,
    its children at the level beneath (the topics whose parent it is). A shared hierarchy prints one tree in
    which each node lists every mode's top entries; per-mode hierarchies print one tree per mode.

    Args:
        model: a tensor model or a :class:`TensorTopics`.
        labels: names per mode (see :func:`top_entries`).
        mode_names: a title per mode (default "mode 0", "mode 1", ...).
        n: entries shown per topic and mode.
        weights: show each entry's share of the topic.
    """
    h = _hierarchy(model)
    N = len(h.topics[0])
    if mode_names is None:
        mode_names = [f"mode {m}" for m in range(N)]
    if len(mode_names) != N:
        raise ValueError(f"mode_names must have {N} entries, got {len(mode_names)}")
    tops = top_entries(h, labels, n)
    L = len(h.topics) - 1

    def entries(l, m, t):
        items = tops[l][m][t]
        if not items:
            return "(empty)"
        return ", ".join(f"{name} ({w:.2f})" if weights else name for name, w in items)

    lines: list[str] = []

    def node(l, t, depth, modes, parents):
        pad = "  " * depth
        if len(modes) == 1:
            lines.append(f"{pad}L{l}.T{t}: {entries(l, modes[0], t)}")
        else:
            lines.append(f"{pad}L{l}.T{t}")
            for m in modes:
                lines.append(f"{pad}    {mode_names[m]}: {entries(l, m, t)}")
        if l == 0:
            return
        kids = [i for i, p in enumerate(parents[l - 1].tolist()) if p == t]
        for i in kids:
            node(l - 1, i, depth + 1, modes, parents)

    def tree(modes, parents):
        for t in range(h.topics[L][modes[0]].shape[1]):
            node(L, t, 0, modes, parents)
        for l in range(L - 1, -1, -1):
            orphans = [i for i, p in enumerate(parents[l].tolist()) if p == -1]
            if orphans:
                lines.append(f"(feed no level-{l + 1} topic)")
                for i in orphans:
                    node(l, i, 1, modes, parents)

    if h.shared:
        tree(list(range(N)), h.parents[0])
    else:
        for m in range(N):
            lines.append(f"{mode_names[m]}:")
            tree([m], h.parents[m])
    return "\n".join(lines)
