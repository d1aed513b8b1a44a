"""Corpora with a planted topic hierarchy, of any size: Poisson word counts, dense or sparse.

The quality tests and the docs use them to check that a model recovers every level of a known hierarchy, on
data of the size of real corpora (tens of thousands of words, well under 1% nonzero), not only on toy matrices.
"""

from __future__ import annotations

import numpy as np
import torch

from .._checks import check_dtype
from .synthetic import HierarchicalCorpus, random_label_mask

__all__ = ["make_planted_corpus"]


def _groups(n: int, k: int) -> np.ndarray:
    """Group index of each of n items split into k contiguous, nearly equal groups."""
    return np.concatenate([np.full(len(part), g) for g, part in enumerate(np.array_split(np.arange(n), k))])


def make_planted_corpus(
    documents: int = 400,
    words: int = 150,
    ranks=(10, 5, 2),
    *,
    values=None,
    doc_length: float | None = None,
    zipf: float = 0.0,
    noise: str = "poisson",
    snr_db: float | None = None,
    sparse: bool = False,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> HierarchicalCorpus:
    """A documents x words matrix of Poisson counts with a planted hierarchy of topics.

    There are ``ranks[0]`` finest topics; the topics of level l are grouped, in contiguous nearly equal groups,
    into the ``ranks[l + 1]`` topics of level l + 1. Document i belongs to finest topic i mod ranks[0]; the words
    are split into one contiguous group per finest topic. A document of topic s uses a word of group g at rate
    ``values[d]`` where d is the first level at which s and g fall in the same topic (``values[-1]`` when they
    never do), times the word's weight: 1, or Zipf-distributed within its group (weight ∝ 1 / rank^zipf in a
    random order) so that topics have head words as real ones do. Counts are Poisson with these rates, scaled
    to ``doc_length`` expected words per document when given. Sampled as a Poisson length per document and a
    multinomial draw of its words, so memory is O(nonzeros), whatever the vocabulary size.

    Args:
        documents, words: the matrix's shape (samples, features).
        ranks: topics per level, finest first, non-increasing, e.g. (10, 5, 2).
        values: len(ranks) + 1 nonnegative rates, decreasing from "same finest topic" to "unrelated"
            (default: 4, 2, 1, ... halving, then a background of 1/4 of the last).
        doc_length: expected words per document (default: the sum of the rates, about ``words`` / ranks[0] * 4).
        zipf: the exponent of the word weights within a group (0: all equal).
        noise: "poisson" (counts, the default) or "gaussian": the expected counts plus i.i.d. Gaussian noise at
            ``snr_db`` decibels (10 log10 of the expected counts' energy over the noise's), clipped at 0.
        snr_db: the signal-to-noise ratio of the Gaussian noise (needed with noise="gaussian").
        sparse: return x as a coalesced sparse COO tensor (it is never dense in memory).
        seed: seeds numpy's generator; the same seed gives the same corpus everywhere.

    Returns:
        :class:`neuralnmf.datasets.HierarchicalCorpus` with ``labels`` (one per level, finest first), the parent
        maps in ``hierarchy``, ``word_labels``, ``clean`` = None, and seeded ``label_masks`` {n: mask} for n in
        0, 10%, 20%, ..., 100% of the documents.
    """
    check_dtype(dtype, "make_planted_corpus")
    ranks = tuple(int(r) for r in ranks)
    if not ranks or any(r <= 0 for r in ranks) or any(b > a for a, b in zip(ranks, ranks[1:])):
        raise ValueError(f"ranks must be positive and non-increasing, got {ranks}")
    if documents < ranks[0] or words < ranks[0]:
        raise ValueError(f"need at least ranks[0] = {ranks[0]} documents and words, got {documents} x {words}")
    if values is None:
        values = [4.0 / 2**d for d in range(len(ranks))]
        values.append(values[-1] / 4)
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (len(ranks) + 1,) or not np.isfinite(values).all() or (values < 0).any():
        raise ValueError(f"values must be {len(ranks) + 1} finite numbers >= 0, got {values.tolist()}")
    if noise not in ("poisson", "gaussian"):
        raise ValueError(f"noise must be 'poisson' or 'gaussian', got {noise!r}")
    if (noise == "gaussian") != (snr_db is not None):
        raise ValueError("snr_db goes with noise='gaussian' (the Gaussian noise's level in dB), and only with it")
    if snr_db is not None and (isinstance(snr_db, bool) or not isinstance(snr_db, (int, float))
                               or not np.isfinite(snr_db)):
        raise ValueError(f"snr_db must be a finite number of decibels, got {snr_db!r}")
    rng = np.random.default_rng(seed)

    k0 = ranks[0]
    topic_of = [np.arange(k0)]  # class of every finest topic at every level
    for k in ranks[1:]:
        topic_of.append(_groups(int(topic_of[-1].max()) + 1, k)[topic_of[-1]])
    level_same = np.full((k0, k0), len(ranks))  # first level where two finest topics meet
    for d in reversed(range(len(ranks))):
        level_same[topic_of[d][:, None] == topic_of[d][None, :]] = d
    table = values[level_same]  # (k0, k0): rate of a document of topic s for a word of group g

    word_group = _groups(words, k0)
    weight = np.ones(words)
    if zipf:
        for g in range(k0):
            idx = np.flatnonzero(word_group == g)
            w = 1.0 / (1.0 + rng.permutation(len(idx))) ** zipf
            weight[idx] = w * len(idx) / w.sum()
    rates = table[:, word_group] * weight  # (k0, words): expected counts of a document of each topic
    if doc_length is not None:
        rates = rates / rates.sum(1, keepdims=True) * float(doc_length)
    doc_topic = np.arange(documents) % k0
    if noise == "gaussian":
        clean = rates[doc_topic]  # (documents, words): the expected counts
        sigma = np.sqrt((clean**2).mean() / 10 ** (snr_db / 10))
        dense = np.clip(clean + sigma * rng.standard_normal(clean.shape), 0, None)
        x = torch.from_numpy(dense).to(dtype=dtype, device=device)
        x = x.to_sparse().coalesce() if sparse else x
        return _corpus(x, documents, ranks, topic_of, doc_topic, word_group, seed, device)
    lengths = rng.poisson(rates.sum(1)[doc_topic])
    probs = rates / rates.sum(1, keepdims=True)
    rows, cols, vals = [], [], []
    for i in range(documents):
        counts = rng.multinomial(lengths[i], probs[doc_topic[i]])
        nz = np.flatnonzero(counts)
        rows.append(np.full(nz.size, i))
        cols.append(nz)
        vals.append(counts[nz])
    rows, cols, vals = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals).astype(np.float64)
    indices = torch.from_numpy(np.vstack([rows, cols]).astype(np.int64))
    x = torch.sparse_coo_tensor(indices, torch.from_numpy(vals), (documents, words), check_invariants=True).coalesce()
    x = x.to(dtype=dtype, device=device)
    if not sparse:
        x = x.to_dense()
    return _corpus(x, documents, ranks, topic_of, doc_topic, word_group, seed, device)


def _corpus(x, documents, ranks, topic_of, doc_topic, word_group, seed, device) -> HierarchicalCorpus:
    gen = torch.Generator().manual_seed(int(seed))
    counts = sorted({round(documents * f / 10) for f in range(11)})
    masks = {n: random_label_mask(documents, n, seed=int(torch.randint(2**31, (1,), generator=gen)), device=device)
             for n in counts}
    parents = []
    for d in range(1, len(ranks)):
        parent = np.zeros(ranks[d - 1], dtype=np.int64)
        parent[topic_of[d - 1]] = topic_of[d]
        parents.append(parent.tolist())
    return HierarchicalCorpus(
        x=x,
        labels=[torch.from_numpy(t[doc_topic]).to(device) for t in topic_of],
        hierarchy=parents,
        vocabulary=[f"w{j}_g{g}" for j, g in enumerate(word_group.tolist())],
        word_labels=[torch.from_numpy(t[word_group]).to(device) for t in topic_of],
        clean=None,
        num_classes=ranks,
        label_masks=masks,
    )
