"""Topic coherence and diversity (neuralnmf.metrics.coherence): equal to gensim's CoherenceModel on hand-made texts
and on a slice of 20 Newsgroups; the window counts gensim's way against hand-counted windows; per-level quality."""

from __future__ import annotations

import math
import random
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import torch

from neuralnmf.datasets import find_data_file
from neuralnmf.metrics import document_counts, topic_coherence, topic_diversity, topic_quality, window_counts
from neuralnmf.topics import layer_topics, top_words

pytestmark = pytest.mark.usefixtures("one_thread")

MEASURES = [("c_npmi", None), ("c_v", None), ("u_mass", None), ("c_npmi", 3), ("c_v", 7), ("c_npmi", 1)]


def _gensim(topics, texts, measure, window):
    gensim = pytest.importorskip("gensim")
    from gensim.models.coherencemodel import CoherenceModel

    cm = CoherenceModel(topics=topics, texts=texts, dictionary=gensim.corpora.Dictionary(texts), coherence=measure,
                        topn=max(map(len, topics)), processes=1, window_size=window)
    return np.array(cm.get_coherence_per_topic())


def _toy():
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(30)]
    # repeated words inside windows (gensim's sliding update drops them early), short and empty texts
    texts = [[rng.choice(vocab[: rng.randint(5, 30)]) for _ in range(rng.randint(0, 40))] for _ in range(60)]
    topics = [list(dict.fromkeys(rng.choice(vocab) for _ in range(8))) for _ in range(6)]
    topics.append(["w1", "w2", "never_seen", "w3"])  # a word outside the corpus is left out, as gensim does
    return topics, texts


@pytest.mark.parametrize("measure,window", MEASURES)
def test_equals_gensim_on_toy_texts(measure, window):
    topics, texts = _toy()
    expected = _gensim(topics, texts, measure, window)
    got = np.array(topic_coherence(topics, texts, measure=measure, window=window))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)


def test_windows_counted_as_gensim_counts_them():
    # windows of 3 over a b a c: [a b a] then gensim drops the 'a' that left, though one 'a' is still inside
    c = window_counts([["a", "b", "a", "c"]], ["a", "b", "c"], 3)
    assert c.total == 2
    assert c.occurrences.tolist() == [1, 2, 1]
    assert c.cooccurrences.tolist() == [[1, 1, 0], [1, 2, 1], [0, 1, 1]]
    # a text shorter than the window is one window; an empty text is one empty window
    c = window_counts([[], ["a", "b"], ["b", "x", "x", "b"]], ["a", "b"], 10)
    assert c.total == 3 and c.occurrences.tolist() == [1, 2] and c.cooccurrences[0, 1] == 1
    # window 2 over b x x b: [b x] [x x] [x b] -> b in 2 windows
    c = window_counts([["b", "x", "x", "b"]], ["b"], 2)
    assert c.total == 3 and c.occurrences.tolist() == [2]


def test_npmi_by_hand():
    texts = [["a", "b"], ["a", "c"], ["b", "c"], ["a", "b"]]  # short texts: one window each
    p_a, p_b, p_ab = 3 / 4, 3 / 4, 2 / 4
    npmi = math.log((p_ab + 1e-12) / (p_a * p_b)) / -math.log(p_ab + 1e-12)
    assert topic_coherence([["a", "b"]], texts, measure="c_npmi") == pytest.approx([npmi], abs=1e-15)
    umass = math.log((2 / 4 + 1e-12) / (3 / 4))  # log P(b | a): documents with both / documents with a
    assert topic_coherence([["a", "b"]], texts, measure="u_mass") == pytest.approx([umass], abs=1e-15)
    assert math.isnan(topic_coherence([["a", "zz"]], texts, measure="c_npmi")[0])


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support")
def test_u_mass_from_matrix_equals_texts():
    topics, texts = _toy()
    vocab = sorted({w for t in texts for w in t}) + ["unused"]
    col = {w: j for j, w in enumerate(vocab)}
    rows = [d for d, t in enumerate(texts) for w in t]
    cols = [col[w] for t in texts for w in t]
    x = scipy.sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(texts), len(vocab)))
    ref = topic_coherence(topics, texts, measure="u_mass")
    for xx in (x, x.toarray(), torch.from_numpy(x.toarray()), torch.from_numpy(x.toarray()).to_sparse_csr()):
        np.testing.assert_allclose(topic_coherence(topics, measure="u_mass", x=xx, vocabulary=vocab), ref, rtol=1e-12)
    c = document_counts(["w1", "unused"], x=x, vocabulary=vocab)
    assert c.total == len(texts) and c.occurrences[1] == 0


def test_diversity():
    assert topic_diversity([["a", "b", "c"], ["c", "d", "e"]]) == pytest.approx(5 / 6)
    assert topic_diversity([["a", "b", "c"], ["c", "d", "e"]], n=2) == pytest.approx(1.0)
    assert topic_diversity([["a", "b"], ["a", "b"]]) == pytest.approx(0.5)


def test_bad_input():
    with pytest.raises(TypeError, match="tokenize"):
        topic_coherence([["a"]], ["a b c"])
    with pytest.raises(ValueError, match="measure"):
        topic_coherence([["a"]], [["a"]], measure="c_uci")
    with pytest.raises(ValueError, match="sliding windows"):
        topic_coherence([["a", "b"]], measure="c_v", x=np.ones((2, 2)), vocabulary=["a", "b"])
    with pytest.raises(ValueError, match="window"):
        topic_coherence([["a"]], [["a"]], window=0)
    with pytest.raises(ValueError, match="empty"):
        topic_coherence([["a"]], [])
    with pytest.raises(ValueError, match="vocabulary"):
        topic_coherence([["a"]], measure="u_mass", x=np.ones((2, 2)))


def test_topic_quality_per_level():
    gen = torch.Generator().manual_seed(0)
    A0, A1 = torch.rand(12, 4, generator=gen, dtype=torch.float64), torch.rand(4, 2, generator=gen, dtype=torch.float64)
    vocab = [f"w{i}" for i in range(12)]
    rng = random.Random(1)
    texts = [[rng.choice(vocab) for _ in range(rng.randint(1, 30))] for _ in range(40)]
    q = topic_quality([A0, A1], vocab, texts=texts, n_words=5)
    assert [e["topics"] for e in q] == [4, 2]
    for e, T in zip(q, layer_topics([A0, A1])):
        words = [[w for w, _ in ws] for ws in top_words(T, vocab, 5)]
        assert e["words"] == words
        assert e["diversity"] == topic_diversity(words, 5)
        for m in ("c_npmi", "c_v", "u_mass"):
            assert e[m]["per_topic"] == topic_coherence(words, texts, measure=m)
            assert e[m]["mean"] == pytest.approx(np.mean(e[m]["per_topic"]))
    assert set(topic_quality([A0, A1], vocab, x=np.ones((3, 12)))[0]) == {"level", "topics", "words", "diversity",
                                                                          "u_mass"}


# ---- a slice of 20 Newsgroups (real text) -----------------------------------------------------------------------

def _archive() -> Path | None:
    beside = Path(__file__).resolve().parents[2] / "shared" / "data" / "20news-bydate.tar.gz"
    return beside if beside.is_file() else find_data_file("20news-bydate.tar.gz")


@pytest.fixture(scope="module")
def news_slice():
    """~240 documents of 8 newsgroups, tokenized (lowercase words of 2+ letters, English stop words out)."""
    sk_text = pytest.importorskip("sklearn.feature_extraction.text")
    archive = _archive()
    if archive is None:
        pytest.skip("../shared/data/20news-bydate.tar.gz absent")
    stop = sk_text.ENGLISH_STOP_WORDS
    per_group: dict[str, int] = {}
    texts = []
    with tarfile.open(archive, "r:gz") as tar:
        for m in tar:
            parts = m.name.split("/")
            if not m.isfile() or "20news-bydate-train" not in parts:
                continue
            group = parts[-2]
            if per_group.get(group, 0) >= 30 or (len(per_group) >= 8 and group not in per_group):
                continue
            per_group[group] = per_group.get(group, 0) + 1
            raw = tar.extractfile(m).read().decode("latin1").split("\n\n", 1)[-1]  # headers out
            texts.append([w for w in re.findall(r"\b[a-z][a-z]+\b", raw.lower()) if w not in stop])
            if len(texts) >= 240:
                break
    return texts


def test_equals_gensim_on_news20_slice(news_slice):
    sk = pytest.importorskip("sklearn.decomposition")
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(analyzer=lambda t: t, min_df=3)
    x = vec.fit_transform(news_slice)
    vocab = list(vec.get_feature_names_out())
    nmf = sk.NMF(8, init="nndsvd", max_iter=200, random_state=0).fit(x)
    topics = [[w for w, _ in ws] for ws in top_words(torch.from_numpy(nmf.components_.T.copy()), vocab, 10)]
    for measure in ("c_npmi", "c_v", "u_mass"):
        expected = _gensim(topics, news_slice, measure, None)
        got = topic_coherence(topics, news_slice, measure=measure)
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(topic_coherence(topics, measure="u_mass", x=x, vocabulary=vocab),
                               _gensim(topics, news_slice, "u_mass", None), rtol=1e-9, atol=1e-9)


def test_counts_in_chunks_equal_counts_at_once(monkeypatch):
    import neuralnmf.metrics.coherence as coherence

    topics, texts = _toy()
    words = sorted({w for t in topics for w in t})
    whole = window_counts(texts, words, 5)
    monkeypatch.setattr(coherence, "_CHUNK_NNZ", 7)  # many chunks, each cut at a document boundary
    chunked = window_counts(texts, words, 5)
    assert chunked.total == whole.total
    assert (chunked.occurrences == whole.occurrences).all() and (chunked.cooccurrences == whole.cooccurrences).all()
    assert (whole.cooccurrences.diagonal() == whole.occurrences).all() and whole.occurrences.sum() > 0
