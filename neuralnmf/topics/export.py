"""The topic tree as plain data (JSON) and every document's path through the levels.

:func:`topic_tree` builds one dict (lists, str, int, float and None only, so ``json.loads(json.dumps(tree)) ==
tree``); :func:`to_json` writes it; :func:`from_json` reads it back and checks its shape. Its schema
(``"format": "neuralnmf.topic-tree/1"``)::

    {"format", "ranks": [k_0, ..., k_L], "vocabulary_size",
     "levels": [{"level": l, "topics": [{"id": "L{l}.T{t}", "index": t, "words": [[word, weight], ...],
                                          "share", "documents", "parent", "parent_weight", "children": [...]}]}],
     "documents": {"count", "names", "paths": [[t_0, ..., t_L], ...], "weights": [[w_0, ..., w_L], ...]} or None,
     "summary": [...] or None, "quality": [...] or None, "metadata": {...}}

* words: the topic's top words (columns of A_0 ⋯ A_l), each weight relative to the topic's heaviest word (1.0).
* parent: the index of the level-(l+1) topic this one feeds most (argmax of row t of A_(l+1); None on the top
  level, -1 when the row is all zero), parent_weight the share of its weight that goes there; children: the indices
  of the level-(l-1) topics whose parent it is, heaviest link first.
* With documents x: share = the topic's part of all topic weight at its level (its codes' sum times its column's
  sum); documents = how many documents' paths pass through this topic; paths[i][l] = document i's topic at level
  l (:func:`document_paths`: its finest topic, then that topic's ancestors; -1: all its codes are zero),
  weights[i][l] = that topic's share of the document's codes at level l.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch

from ..ops import nnls
from .hierarchy import _check_chain, hierarchy_from_dictionaries, layer_topics, top_words

__all__ = ["FORMAT", "DocumentPaths", "dictionaries_of", "level_codes", "document_paths", "topic_tree", "to_json",
           "from_json"]

FORMAT = "neuralnmf.topic-tree/1"


def dictionaries_of(model_or_dictionaries) -> list[torch.Tensor]:
    """[A_0, ..., A_L] of a NeuralNMF (anything with ``.layers`` holding ``.A``), or the list itself, checked."""
    As = model_or_dictionaries
    if hasattr(As, "layers") and not isinstance(As, (list, tuple)):
        As = [layer.A for layer in As.layers]
    return _check_chain(As, "model_or_dictionaries")


@torch.no_grad()
def level_codes(model_or_dictionaries, x: torch.Tensor) -> list[torch.Tensor]:
    """Every level's codes of the documents x (samples, features), dense or sparse: the model's forward pass, or
    for bare dictionaries the same chain S_0 = q(X, A_0), S_l = q(S_(l-1), A_l) by :func:`neuralnmf.nnls`."""
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise TypeError("x must be a 2-D torch.Tensor (documents, features)")
    if hasattr(model_or_dictionaries, "layers") and callable(model_or_dictionaries):
        return [c.detach() for c in model_or_dictionaries(x).codes]
    As = dictionaries_of(model_or_dictionaries)
    if x.shape[1] != As[0].shape[0]:
        raise ValueError(f"x has {x.shape[1]} features (columns) but A_0 has {As[0].shape[0]} rows")
    codes, h = [], x
    for A in As:
        h = nnls(h.t() if h.layout != torch.strided else h.mT, A.to(x.dtype)).mT
        codes.append(h)
    return codes


def _check_codes(codes, As) -> list[torch.Tensor]:
    if not isinstance(codes, Sequence) or len(codes) != len(As):
        raise ValueError(f"codes must be a list of {len(As)} tensors (one per level)")
    for l, (c, A) in enumerate(zip(codes, As)):
        if not isinstance(c, torch.Tensor) or c.dim() != 2 or c.shape[1] != A.shape[1]:
            raise ValueError(f"codes[{l}] must have shape (documents, {A.shape[1]})")
        if c.shape[0] != codes[0].shape[0]:
            raise ValueError(f"codes[{l}] has {c.shape[0]} documents but codes[0] has {codes[0].shape[0]}")
    return [c.detach() for c in codes]


class DocumentPaths(NamedTuple):
    """Each document's path down the topic tree.

    Attributes:
        topics: (documents, levels) long; topics[i, 0] = argmax_t S_0[i, t] (ties: lowest t), the document's finest
            topic, and topics[i, l] its ancestor at level l (the parent of topics[i, l - 1]); the level's largest
            code where a topic feeds no parent or no dictionaries are given; -1 where the document's level-l codes
            are all zero.
        weights: (documents, levels); that topic's share of the document's level-l codes (0 where all are zero).
    """

    topics: torch.Tensor
    weights: torch.Tensor


def document_paths(model_or_dictionaries=None, x: torch.Tensor | None = None, *, codes=None) -> DocumentPaths:
    """Every document's path through the levels: its finest topic (largest level-0 code), then that topic's
    parent at each level above (:func:`neuralnmf.topics.hierarchy_from_dictionaries`), so that every path is a
    path of the tree that :func:`topic_tree` and the views draw. With ``codes`` alone, each level's largest code.

    Give a model (or dictionaries) and the documents ``x``, or the ``codes`` of a forward pass (one (documents, k_l)
    tensor per level). Tensors stay on the codes' device.
    """
    parents = None
    if codes is None:
        if model_or_dictionaries is None or x is None:
            raise ValueError("document_paths needs a model (or dictionaries) and x, or codes")
        codes = level_codes(model_or_dictionaries, x)
    if model_or_dictionaries is not None:
        As = dictionaries_of(model_or_dictionaries)
        codes = _check_codes(codes, As)
        parents = hierarchy_from_dictionaries([A.detach() for A in As]).parents
    topics, weights = [], []
    for l, c in enumerate(codes):
        c = c.detach()
        best, arg = c.max(1) if c.shape[1] else (c.new_zeros(c.shape[0]), c.new_zeros(c.shape[0], dtype=torch.long))
        if parents is not None and l > 0:  # the parent of the level below's topic, where it has one
            below = topics[-1]
            up = parents[l - 1].to(below.device)[below.clamp_min(0)]
            arg = torch.where((below >= 0) & (up >= 0), up, arg)
        total = c.sum(1)
        nonzero = best > 0
        chosen = c.gather(1, arg[:, None])[:, 0] if c.shape[1] else best
        topics.append(torch.where(nonzero, arg, torch.full_like(arg, -1)))
        weights.append(torch.where(nonzero, chosen / torch.where(nonzero, total, torch.ones_like(total)),
                                   torch.zeros_like(best)))
    return DocumentPaths(torch.stack(topics, 1), torch.stack(weights, 1))


def _plain(value):
    """JSON-safe plain data: NaN/Inf -> None, tensors and numpy scalars -> Python numbers, tuples -> lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _plain(value.tolist())
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
        return None
    return value


def topic_tree(model_or_dictionaries, vocabulary: Sequence[str], x: torch.Tensor | None = None, *, codes=None,
               n_words: int = 10, document_names: Sequence[str] | None = None, summary=None, quality=None,
               metadata: dict | None = None) -> dict:
    """The topic tree as plain data (see the module's schema).

    Args:
        model_or_dictionaries: a NeuralNMF or [A_0, ..., A_L].
        vocabulary: one word per feature.
        x: documents (samples, features), dense or sparse: gives shares, document counts and paths. Or ``codes``.
        n_words: top words per topic.
        document_names: one name per document (e.g. file names), stored beside the paths.
        summary, quality: per-level results to embed (:func:`neuralnmf.metrics.tree_summary`,
            :func:`neuralnmf.metrics.topic_quality`).
        metadata: anything JSON-serializable to keep with the tree (source, settings).
    """
    As = [A.detach().cpu().double() for A in dictionaries_of(model_or_dictionaries)]
    if codes is None and x is not None:
        codes = level_codes(model_or_dictionaries, x)
    hier = hierarchy_from_dictionaries(As)
    topics = layer_topics(As)
    paths = None
    if codes is not None:
        codes = [c.detach().cpu().double() for c in _check_codes(codes, As)]
        paths = document_paths(As, codes=codes)
        if document_names is not None and len(document_names) != codes[0].shape[0]:
            raise ValueError(f"document_names has {len(document_names)} names for {codes[0].shape[0]} documents")
    levels = []
    for l, T in enumerate(topics):
        words = top_words(T, vocabulary, n_words, normalize="max")
        k = T.shape[1]
        share = counts = None
        if codes is not None:
            mass = codes[l].sum(0) * T.sum(0)
            share = (mass / mass.sum()).tolist() if float(mass.sum()) > 0 else [0.0] * k
            col = paths.topics[:, l]
            counts = torch.bincount(col[col >= 0], minlength=k).tolist()
        entries = []
        for t in range(k):
            parent = weight = None
            if l < len(As) - 1:
                parent = int(hier.parents[l][t])
                weight = float(hier.weights[l][t, parent]) if parent >= 0 else 0.0
            children = []
            if l > 0:
                w = hier.weights[l - 1][:, t]
                children = sorted((i for i, p in enumerate(hier.parents[l - 1].tolist()) if p == t),
                                  key=lambda i: -float(w[i]))
            entries.append({"id": f"L{l}.T{t}", "index": t, "words": [[w, v] for w, v in words[t]],
                            "share": None if share is None else share[t],
                            "documents": None if counts is None else counts[t],
                            "parent": parent, "parent_weight": weight, "children": children})
        levels.append({"level": l, "topics": entries})
    documents = None
    if paths is not None:
        documents = {"count": int(paths.topics.shape[0]),
                     "names": None if document_names is None else [str(n) for n in document_names],
                     "paths": paths.topics.tolist(), "weights": [[round(v, 4) for v in r] for r in
                                                                 paths.weights.tolist()]}
    return _plain({"format": FORMAT, "ranks": [A.shape[1] for A in As], "vocabulary_size": As[0].shape[0],
                   "levels": levels, "documents": documents, "summary": summary, "quality": quality,
                   "metadata": metadata or {}})


def to_json(model_or_dictionaries, vocabulary: Sequence[str] | None = None, x: torch.Tensor | None = None, *,
            path=None, indent: int | None = None, **kwargs) -> str:
    """The topic tree (:func:`topic_tree`, whose keyword arguments it takes) as JSON text, written to ``path`` when
    given. A tree dict already built by :func:`topic_tree` may be passed instead of the model."""
    tree = model_or_dictionaries if isinstance(model_or_dictionaries, dict) else topic_tree(
        model_or_dictionaries, vocabulary, x, **kwargs)
    text = json.dumps(_plain(tree), indent=indent, allow_nan=False, ensure_ascii=False)
    if path is not None:
        Path(path).write_text(text + "\n", encoding="utf-8")
    return text


def from_json(source) -> dict:
    """A topic tree read back from JSON text, a path, or a dict; its shape is checked (ValueError if wrong)."""
    if isinstance(source, dict):
        tree = source
    else:
        text = str(source)
        if not text.lstrip().startswith("{"):
            text = Path(source).read_text(encoding="utf-8")
        tree = json.loads(text)
    if not isinstance(tree, dict) or tree.get("format") != FORMAT:
        raise ValueError(f"not a topic tree: expected 'format': {FORMAT!r}")
    levels, ranks = tree.get("levels"), tree.get("ranks")
    if not isinstance(levels, list) or not isinstance(ranks, list) or len(levels) != len(ranks):
        raise ValueError("a topic tree needs 'levels' and 'ranks' of the same length")
    for l, (level, k) in enumerate(zip(levels, ranks)):
        ts = level.get("topics")
        if not isinstance(ts, list) or len(ts) != k:
            raise ValueError(f"level {l} must hold {k} topics")
        for t in ts:
            if l + 1 < len(ranks) and t["parent"] is not None and not -1 <= t["parent"] < ranks[l + 1]:
                raise ValueError(f"{t['id']}: parent {t['parent']} is not a level-{l + 1} topic")
            if any(not 0 <= c < ranks[l - 1] for c in t["children"]) if l else t["children"]:
                raise ValueError(f"{t['id']}: children must be level-{l - 1} topics")
    return tree
