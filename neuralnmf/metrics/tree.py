"""Measures of a topic tree that say whether it is worth reading: do parents group several children, does one topic
hold most of the corpus (issue 19's "a tree worth reading")."""

from __future__ import annotations

import torch

from ..topics.export import dictionaries_of, document_paths, level_codes
from ..topics.hierarchy import hierarchy_from_dictionaries, layer_topics

__all__ = ["tree_summary"]


def tree_summary(model_or_dictionaries, x: torch.Tensor | None = None, *, codes=None) -> list[dict]:
    """Per level (0 = finest): how the level's topics group the level below, and how the documents spread over them.

    Args:
        model_or_dictionaries: a NeuralNMF or [A_0, ..., A_L]. A topic's parent is the level-(l+1) topic it feeds
            most (argmax of its row of A_(l+1), :func:`neuralnmf.topics.hierarchy_from_dictionaries`).
        x: documents (samples, features), dense or sparse, or ``codes`` (one (documents, k_l) tensor per level):
            for the document measures.

    Returns:
        One dict per level with ``level``, ``topics``; on levels >= 1 (parents): ``children`` (per topic),
        ``one_child_share`` (share of the level's topics with exactly one child), ``childless_share``,
        ``children_mean``; with documents: ``documents`` (per topic: documents whose path passes through it,
        :func:`neuralnmf.topics.document_paths`: their finest topic is it or one of its descendants),
        ``largest_documents_share`` (the largest of these over all documents), ``largest_code_share`` (the largest
        share of documents whose largest code at the level is one topic, the tree aside), ``largest_weight_share``
        (the largest topic's part of all topic weight at the level: its codes' sum times its column's sum).
    """
    As = [A.detach().cpu().double() for A in dictionaries_of(model_or_dictionaries)]
    hier = hierarchy_from_dictionaries(As)
    if codes is None and x is not None:
        codes = level_codes(model_or_dictionaries, x)
    paths = None if codes is None else document_paths(model_or_dictionaries, codes=codes)
    largest = None if codes is None else document_paths(codes=codes)  # each level's largest code, the tree aside
    out = []
    for l, T in enumerate(layer_topics(As)):
        k = T.shape[1]
        entry: dict = {"level": l, "topics": k}
        if l > 0:
            parents = hier.parents[l - 1]
            children = torch.bincount(parents[parents >= 0], minlength=k)
            entry.update(children=children.tolist(), one_child_share=float((children == 1).sum()) / k,
                         childless_share=float((children == 0).sum()) / k,
                         children_mean=float(children.double().mean()))
        if paths is not None:
            col, loose = paths.topics[:, l].cpu(), largest.topics[:, l].cpu()
            counts = torch.bincount(col[col >= 0], minlength=k)
            m = max(col.shape[0], 1)
            entry["largest_code_share"] = float(torch.bincount(loose[loose >= 0], minlength=k).max()) / m if k else 0.0
            mass = codes[l].detach().cpu().double().sum(0) * T.sum(0)
            entry.update(documents=counts.tolist(), largest_documents_share=float(counts.max()) / m,
                         largest_weight_share=float(mass.max() / mass.sum()) if float(mass.sum()) > 0 else 0.0)
        out.append(entry)
    return out
