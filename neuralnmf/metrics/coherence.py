"""Topic coherence (NPMI, C_V, UMass) and topic diversity, computed as gensim's ``CoherenceModel`` computes them.

A topic is a list of words, heaviest first. Coherence is measured on a reference corpus:

* ``"c_npmi"`` (window 10) and ``"c_v"`` (window 110) count words in boolean sliding windows over tokenized
  texts (lists of tokens); ``"u_mass"`` counts documents, from the texts or from a documents x words matrix.
* Only the topics' words are counted: the counts are a sparse (windows or documents) x (topic words) incidence
  matrix P and its product P^T P, never a vocabulary x vocabulary matrix.

What gensim (4.x, ``CoherenceModel(topics=..., texts=..., dictionary=Dictionary(texts), processes=1)``) does, and
this module does the same, to ~1e-12:

* Windows: every run of ``window`` consecutive tokens of a text (``len - window + 1`` of them); a text shorter
  than the window is one window; an empty text counts as one (empty) window. A window holds the words that gensim's
  incremental update leaves in it: sliding one step drops the token that left, *even when the same word is still
  inside the window*, and adds the token that entered (gensim's ``WordOccurrenceAccumulator._slide_window``).
* ``c_npmi``: the mean over ordered pairs of distinct positions (one-one segmentation) of
  NPMI = log((p_ij + eps) / (p_i p_j)) / -log(p_ij + eps), with p the share of windows and eps = 1e-12.
* ``c_v``: one-set segmentation; for each word, the cosine between its vector (NPMI^1 with every topic word,
  itself included) and the sum of the topic words' vectors; the mean over words.
* ``u_mass``: one-preceding segmentation; mean over i > j of log((D(w_i, w_j) / N + eps) / (D(w_j) / N)), D counting
  documents.
* A topic word that never occurs in the reference corpus is left out of the topic (gensim leaves out tokens that are
  not in its dictionary); a topic left with fewer than two words scores NaN (gensim: the mean of no pairs).

gensim's ``processes > 1`` accumulator counts windows differently (it skips texts without a topic word); the serial
one is the reference. Diversity is the share of distinct words among the top ``n`` words of all the topics (1: no
word shared).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.sparse
import torch

from ..topics import layer_topics, top_words

__all__ = ["MEASURES", "DEFAULT_WINDOWS", "EPSILON", "topic_coherence", "topic_diversity", "topic_quality",
           "CooccurrenceCounts", "window_counts", "document_counts"]

MEASURES = ("c_npmi", "c_v", "u_mass")
DEFAULT_WINDOWS = {"c_npmi": 10, "c_v": 110}
EPSILON = 1e-12
_CHUNK_NNZ = 20_000_000  # entries of the window x word incidence matrix built at once


class CooccurrenceCounts:
    """How often a set of words occurs, alone and in pairs, in the windows (or documents) of a reference corpus.

    Attributes:
        words: the counted words, in order.
        total: the number of windows (or documents), empty ones included.
        occurrences: (len(words),) int64, windows holding each word.
        cooccurrences: (len(words), len(words)) int64, windows holding both (the diagonal = occurrences).
    """

    def __init__(self, words: list[str], total: int, occurrences: np.ndarray, cooccurrences: np.ndarray):
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.total = int(total)
        self.occurrences = occurrences
        self.cooccurrences = cooccurrences

    def __repr__(self) -> str:
        return f"CooccurrenceCounts({len(self.words)} words, {self.total} windows or documents)"


def _check_texts(texts) -> list:
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise TypeError("texts must be a list of tokenized documents (each a list of str tokens)")
    if len(texts) == 0:
        raise ValueError("texts is empty: the reference corpus needs at least one document")
    for i, t in enumerate(texts):
        if isinstance(t, (str, bytes)) or not isinstance(t, Sequence):
            raise TypeError(f"texts[{i}] must be a list of tokens, got {type(t).__name__} (tokenize the text first)")
    return texts


def _check_window(window) -> int:
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window must be a positive int, got {window!r}")
    return int(window)


def _unique(words) -> list[str]:
    return list(dict.fromkeys(str(w) for w in words))


def window_counts(texts, words, window: int) -> CooccurrenceCounts:
    """Boolean sliding-window counts of ``words`` over tokenized ``texts``, window by window as gensim counts them
    (see the module's notes)."""
    texts, window, words = _check_texts(texts), _check_window(window), _unique(words)
    index = {w: i for i, w in enumerate(words)}
    r = len(words)
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    ids = np.fromiter((index.get(tok, -1) for t in texts for tok in t), dtype=np.int64, count=int(lengths.sum()))
    n_win = np.where(lengths >= window, lengths - window + 1, 1)  # a short text is one window, an empty one too
    total = int(n_win.sum())
    win_start = np.concatenate(([0], np.cumsum(n_win)[:-1]))
    tok_start = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    pos = np.flatnonzero(ids >= 0)
    occ = np.zeros(r, dtype=np.int64)
    co = np.zeros((r, r), dtype=np.int64)
    if pos.size == 0:
        return CooccurrenceCounts(words, total, occ, co)
    doc = np.searchsorted(tok_start, pos, side="right") - 1
    word = ids[pos]
    p = pos - tok_start[doc]
    nw = n_win[doc]
    add = np.maximum(p - window + 1, 0)  # the window where the token enters ...
    rem = np.minimum(p + 1, nw)  # ... and the one where gensim drops its word (never later than the last window)
    # events per (document, word): at one step the drop comes before the entry, as in gensim's update
    d_ev = np.concatenate((doc, doc))
    w_ev = np.concatenate((word, word))
    s_ev = np.concatenate((add, rem))
    t_ev = np.concatenate((np.ones_like(add), np.zeros_like(rem)))
    order = np.lexsort((t_ev, s_ev, w_ev, d_ev))
    d_ev, w_ev, s_ev, t_ev = d_ev[order], w_ev[order], s_ev[order], t_ev[order]
    first = np.ones(d_ev.size, dtype=bool)
    first[1:] = (d_ev[1:] != d_ev[:-1]) | (w_ev[1:] != w_ev[:-1])
    prev = np.zeros_like(t_ev)
    prev[1:] = t_ev[:-1]
    prev[first] = 0
    starts = np.flatnonzero((t_ev == 1) & (prev == 0))
    ends = np.flatnonzero((t_ev == 0) & (prev == 1))  # a group always ends with a drop, so these pair up
    iv_doc, iv_word = d_ev[starts], w_ev[starts]
    iv_lo = win_start[iv_doc] + s_ev[starts]
    iv_len = s_ev[ends] - s_ev[starts]
    np.add.at(occ, iv_word, iv_len)
    # P^T P over chunks of whole documents (intervals are sorted by document)
    cum = np.cumsum(iv_len)
    bounds = [0]
    while bounds[-1] < iv_len.size:
        done = cum[bounds[-1] - 1] if bounds[-1] else 0
        cut = int(np.searchsorted(cum, done + _CHUNK_NNZ, side="right"))
        cut = max(cut, bounds[-1] + 1)
        if cut < iv_len.size:  # move the cut to the next document boundary
            cut = int(np.searchsorted(iv_doc, iv_doc[cut - 1], side="right"))
        bounds.append(min(cut, iv_len.size))
    for a, b in zip(bounds[:-1], bounds[1:]):
        lo, ln, wd = iv_lo[a:b], iv_len[a:b], iv_word[a:b]
        base = int(lo.min())
        rows = np.repeat(lo - base - np.concatenate(([0], np.cumsum(ln)[:-1])), ln) + np.arange(int(ln.sum()))
        cols = np.repeat(wd, ln)
        P = scipy.sparse.csr_matrix((np.ones(rows.size, dtype=np.int64), (rows, cols)),
                                    shape=(int(rows.max()) + 1, r))
        co += (P.T @ P).toarray()
    return CooccurrenceCounts(words, total, occ, co)


def _presence(x, vocabulary, words):
    """(documents, len(words)) scipy CSR of x != 0 on the words' columns; words not in the vocabulary: empty."""
    if vocabulary is None:
        raise ValueError("u_mass on a documents x words matrix x needs its vocabulary (one word per column)")
    if len(vocabulary) != x.shape[1]:
        raise ValueError(f"vocabulary has {len(vocabulary)} words but x has {x.shape[1]} columns")
    col = {str(w): j for j, w in enumerate(vocabulary)}
    cols = np.array([col.get(w, -1) for w in words], dtype=np.int64)
    if isinstance(x, torch.Tensor):
        if x.dim() != 2:
            raise ValueError(f"x must be (documents, words), got shape {tuple(x.shape)}")
        if x.layout == torch.strided:
            x = scipy.sparse.csr_matrix(x.detach().cpu().numpy())
        else:
            c = x.detach().to_sparse_coo().coalesce().cpu()
            i = c.indices().numpy()
            x = scipy.sparse.csr_matrix((c.values().numpy(), (i[0], i[1])), shape=tuple(c.shape))
    elif scipy.sparse.issparse(x) or isinstance(x, np.ndarray):
        if x.ndim != 2:
            raise ValueError(f"x must be (documents, words), got shape {x.shape}")
        x = scipy.sparse.csr_matrix(x)
    else:
        raise TypeError(f"x must be a torch.Tensor, numpy array or scipy sparse matrix, got {type(x).__name__}")
    sel = scipy.sparse.csc_matrix(x)[:, np.where(cols >= 0, cols, 0)]
    sel = scipy.sparse.csr_matrix(sel != 0, dtype=np.int64)
    return scipy.sparse.csr_matrix(sel @ scipy.sparse.diags((cols >= 0).astype(np.int64), dtype=np.int64))


def document_counts(words, *, texts=None, x=None, vocabulary=None) -> CooccurrenceCounts:
    """Boolean document counts of ``words``: from tokenized ``texts``, or from a documents x words matrix ``x``
    (nonzero = present) with its ``vocabulary``. Every document counts, empty ones included."""
    words = _unique(words)
    if texts is not None:
        texts = _check_texts(texts)
        index = {w: i for i, w in enumerate(words)}
        rows, cols = [], []
        for d, t in enumerate(texts):
            present = {index[tok] for tok in t if tok in index}
            rows += [d] * len(present)
            cols += sorted(present)
        P = scipy.sparse.csr_matrix((np.ones(len(rows), dtype=np.int64), (rows, cols)), shape=(len(texts), len(words)))
    elif x is not None:
        P = _presence(x, vocabulary, words)
    else:
        raise ValueError("give the reference corpus: texts (tokenized documents) or x (documents x words)")
    co = (P.T @ P).toarray().astype(np.int64)
    return CooccurrenceCounts(words, P.shape[0], np.diag(co).copy(), co)


def _npmi(counts: CooccurrenceCounts, ids: np.ndarray) -> np.ndarray:
    """NPMI between every pair of the words ``ids`` (the diagonal: a word with itself, as C_V uses it)."""
    n = float(counts.total)
    p = counts.occurrences[ids] / n
    pij = counts.cooccurrences[np.ix_(ids, ids)] / n
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log((pij + EPSILON) / np.outer(p, p)) / -np.log(pij + EPSILON)


def _score(measure: str, counts: CooccurrenceCounts, topic: Sequence[str]) -> float:
    ids = np.array([counts.index[w] for w in topic if w in counts.index], dtype=np.int64)
    ids = ids[counts.occurrences[ids] > 0]  # absent from the reference corpus: not in gensim's dictionary
    n = ids.size
    if n < 2:
        return math.nan
    if measure == "c_npmi":
        m = _npmi(counts, ids)
        return float(m[~np.eye(n, dtype=bool)].mean())
    if measure == "c_v":
        m = _npmi(counts, ids)
        total = m.sum(0)
        cos = (m @ total) / (np.sqrt((m * m).sum(1)) * np.sqrt(total @ total))
        return float(cos.mean())
    occ = counts.occurrences[ids] / counts.total
    co = counts.cooccurrences[np.ix_(ids, ids)] / counts.total
    i, j = np.tril_indices(n, -1)  # i > j: w_i given the earlier (heavier) word w_j
    return float(np.log((co[i, j] + EPSILON) / occ[j]).mean())


def _check_topics(topics) -> list[list[str]]:
    if isinstance(topics, (str, bytes)) or not isinstance(topics, Sequence) or not topics:
        raise TypeError("topics must be a non-empty list of topics, each a list of words (heaviest first)")
    out = []
    for i, t in enumerate(topics):
        if isinstance(t, (str, bytes)) or not isinstance(t, Sequence):
            raise TypeError(f"topics[{i}] must be a list of words, got {type(t).__name__}")
        out.append([str(w[0]) if isinstance(w, tuple) else str(w) for w in t])  # (word, weight) pairs allowed
    return out


def _check_measure(measure: str) -> str:
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    return measure


def _counts(measure, words, texts, x, vocabulary, window):
    if measure == "u_mass":
        return document_counts(words, texts=texts, x=x, vocabulary=vocabulary)
    if texts is None:
        raise ValueError(f"{measure} counts words in sliding windows: give the tokenized texts")
    return window_counts(texts, words, DEFAULT_WINDOWS[measure] if window is None else window)


def topic_coherence(topics, texts=None, *, measure: str = "c_npmi", window: int | None = None, x=None,
                    vocabulary=None, counts: CooccurrenceCounts | None = None) -> list[float]:
    """The coherence of every topic, as gensim's ``CoherenceModel(...).get_coherence_per_topic()``.

    Args:
        topics: lists of words, heaviest first ((word, weight) pairs are read as their word).
        texts: the reference corpus as tokenized documents (lists of str); needed by "c_npmi" and "c_v".
        measure: "c_npmi" (sliding window of 10), "c_v" (window 110) or "u_mass" (documents).
        window: the sliding window's length (default: 10 for c_npmi, 110 for c_v, as gensim's).
        x, vocabulary: for "u_mass" without texts, a documents x words matrix (dense or sparse torch, numpy or
            scipy; nonzero = the word occurs) and the word of each column.
        counts: precomputed counts (:func:`window_counts` / :func:`document_counts`) covering the topics' words.

    Returns:
        One float per topic (NaN where fewer than two of its words occur in the reference corpus).
    """
    topics, measure = _check_topics(topics), _check_measure(measure)
    if counts is None:
        counts = _counts(measure, _unique(w for t in topics for w in t), texts, x, vocabulary, window)
    return [_score(measure, counts, t) for t in topics]


def topic_diversity(topics, n: int = 10) -> float:
    """The share of distinct words among the top ``n`` words of all the topics (1.0: no word is shared)."""
    topics = _check_topics(topics)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    listed = [w for t in topics for w in t[:n]]
    return len(set(listed)) / len(listed) if listed else math.nan


def topic_quality(model_or_dictionaries, vocabulary, *, texts=None, x=None, measures=None, n_words: int = 10,
                  windows: dict | None = None) -> list[dict]:
    """Coherence and diversity of every level of a hierarchy, per topic and as the level's mean.

    Args:
        model_or_dictionaries: a NeuralNMF (anything with ``.layers`` holding ``.A``), or [A_0, ..., A_L].
        vocabulary: one word per feature.
        texts: tokenized reference documents (default reference: the training documents, so pass their tokens);
            needed for "c_npmi" and "c_v".
        x: a documents x words matrix for "u_mass" when no texts are given (e.g. the training matrix).
        measures: which of :data:`MEASURES` (default: those the reference allows: all with texts, u_mass with x).
        n_words: top words per topic (10, as the published figures).
        windows: sliding windows per measure (default :data:`DEFAULT_WINDOWS`).

    Returns:
        One dict per level (0 = finest): ``{"level", "topics", "words": [[...]], "diversity",
        "<measure>": {"mean", "per_topic"}, "window" or "documents" counted}``. The mean leaves out NaN topics.
    """
    As = model_or_dictionaries
    if hasattr(As, "layers"):
        As = [layer.A for layer in As.layers]
    if measures is None:
        measures = MEASURES if texts is not None else ("u_mass",) if x is not None else ()
        if not measures:
            raise ValueError("give the reference corpus: texts (tokenized documents) and/or x (documents x words)")
    for m in measures:
        _check_measure(m)
    windows = {**DEFAULT_WINDOWS, **(windows or {})}
    levels = [[[w for w, _ in ws] for ws in top_words(T, vocabulary, n_words)] for T in layer_topics(As)]
    words = _unique(w for lv in levels for t in lv for w in t)
    cache: dict = {}
    out = []
    for l, topics in enumerate(levels):
        entry = {"level": l, "topics": len(topics), "words": topics, "diversity": topic_diversity(topics, n_words)}
        for m in measures:
            key = "u_mass" if m == "u_mass" else windows[m]
            if key not in cache:
                cache[key] = _counts(m, words, texts, x, vocabulary, windows.get(m))
            scores = topic_coherence(topics, measure=m, counts=cache[key])
            finite = [s for s in scores if not math.isnan(s)]
            entry[m] = {"mean": float(np.mean(finite)) if finite else math.nan, "per_topic": scores,
                        ("documents" if m == "u_mass" else "window"): cache[key].total if m == "u_mass"
                        else windows[m]}
        out.append(entry)
    return out
