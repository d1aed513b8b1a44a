"""Datasets: the hierarchical toy generator, the paper's toy .mat file and the generic matrix loader."""

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.sparse
import torch

from neuralnmf.datasets import (
    Corpus,
    HierarchicalCorpus,
    find_data_file,
    load_matrix,
    load_toy_table,
    make_hierarchical_corpus,
    random_label_mask,
)

DOC_SIZES = [10, 10, 5, 7, 5, 20, 10, 9, 14]
WORD_SIZES = [10, 5, 10, 12, 13, 4, 11, 8, 14]
TOPIC_OF = [0, 0, 1, 1, 2, 2, 3, 3, 3]
SUPER_OF = [0, 0, 1, 1]
L40 = [1, 2, 4, 8, 10, 12, 13, 14, 16, 17, 18, 20, 22, 24, 27, 33, 34, 36, 39, 40, 42, 43, 46, 47, 48, 50, 52, 55,
       57, 60, 61, 64, 65, 67, 70, 74, 75, 80, 85, 87]


def _data(name: str) -> Path:
    """The papers' data file: $NEURALNMF_DATA_DIR, else <repo>/../shared/data; skip when absent."""
    p = find_data_file(name)
    if p is None:
        alt = Path(__file__).resolve().parents[2] / "shared" / "data" / name
        p = alt if alt.is_file() else None
    if p is None:
        pytest.skip(f"{name} not available (set NEURALNMF_DATA_DIR)")
    return p


def _rule(s: int, g: int) -> float:
    """Bk[doc of subtopic s, word of group g] as documented (protocols §2.1)."""
    if s == g:
        return 4.0
    if TOPIC_OF[s] == TOPIC_OF[g]:
        return 2.0
    if SUPER_OF[TOPIC_OF[s]] == SUPER_OF[TOPIC_OF[g]]:
        return 1.0
    return 0.0


def _expected_clean() -> torch.Tensor:
    doc = np.repeat(np.arange(9), DOC_SIZES)
    word = np.repeat(np.arange(9), WORD_SIZES)
    return torch.tensor([[_rule(s, g) for g in word] for s in doc], dtype=torch.float64)


# --- generator ----------------------------------------------------------------------------------------------------


def test_generator_shape_and_metadata():
    c = make_hierarchical_corpus()
    assert isinstance(c, HierarchicalCorpus)
    assert c.x.shape == (90, 87) and c.x.dtype == torch.float64
    assert c.num_classes == (9, 4, 2)
    assert c.hierarchy == [TOPIC_OF, SUPER_OF]
    assert [lab.shape for lab in c.labels] == [(90,)] * 3 and all(lab.dtype == torch.long for lab in c.labels)
    assert [w.shape for w in c.word_labels] == [(87,)] * 3
    assert len(c.vocabulary) == 87 and c.vocabulary[0] == "w0_g0" and c.vocabulary[10] == "w10_g1"
    assert [int(v.split("_g")[1]) for v in c.vocabulary] == c.word_labels[0].tolist()
    assert c.labels[0].tolist() == np.repeat(np.arange(9), DOC_SIZES).tolist()
    assert torch.bincount(c.labels[1]).tolist() == [20, 12, 25, 33]
    assert torch.bincount(c.labels[2]).tolist() == [32, 58]
    assert "HierarchicalCorpus" in repr(c) and "(90, 87)" in repr(c)


def test_generator_block_structure_and_noise():
    c = make_hierarchical_corpus(seed=3)
    torch.testing.assert_close(c.clean, _expected_clean(), rtol=0, atol=0)
    noise = c.x - c.clean
    assert noise.min() >= 0 and noise.max() < 0.15
    assert abs(noise.mean().item() - 0.075) < 0.01  # 0.15 * Uniform[0, 1)
    torch.testing.assert_close(make_hierarchical_corpus(noise=0.0).x, c.clean, rtol=0, atol=0)


def test_generator_labels_follow_hierarchy():
    c = make_hierarchical_corpus()
    for level, parent in enumerate(c.hierarchy):
        p = torch.tensor(parent)
        assert torch.equal(p[c.labels[level]], c.labels[level + 1])
        assert torch.equal(p[c.word_labels[level]], c.word_labels[level + 1])


def test_generator_is_reproducible_per_seed():
    a, b, d = make_hierarchical_corpus(seed=7), make_hierarchical_corpus(seed=7), make_hierarchical_corpus(seed=8)
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, d.x)
    assert all(torch.equal(a.label_masks[n], b.label_masks[n]) for n in a.label_masks)
    state = torch.get_rng_state()
    f32 = make_hierarchical_corpus(seed=7, dtype=torch.float32)
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is untouched
    assert f32.x.dtype == torch.float32 and torch.equal(f32.x, a.x.float())


def test_generator_label_masks():
    c = make_hierarchical_corpus()
    assert sorted(c.label_masks) == list(range(0, 91, 10))
    for n, m in c.label_masks.items():
        assert m.dtype == torch.bool and m.shape == (90,) and int(m.sum()) == n
    assert torch.equal(c.label_mask(40), c.label_masks[40])
    with pytest.raises(ValueError, match="n_labeled=45"):
        c.label_mask(45)
    m = random_label_mask(90, 45, seed=1)
    assert int(m.sum()) == 45 and torch.equal(m, random_label_mask(90, 45, seed=1))
    with pytest.raises(ValueError, match="n_labeled"):
        random_label_mask(5, 6)


def test_generator_custom_hierarchy():
    c = make_hierarchical_corpus(doc_sizes=(3, 4, 5), word_sizes=(2, 2, 2), topics=((0, 2), (1,)), supertopics=None,
                                 values=(5, 3, 9, 1), noise=0)
    assert c.x.shape == (12, 6) and c.num_classes == (3, 2) and c.hierarchy == [[0, 1, 0]]
    assert c.x[0].tolist() == [5, 5, 1, 1, 3, 3]  # doc of subtopic 0: same / other topic / same topic
    flat = make_hierarchical_corpus(doc_sizes=(2, 2), word_sizes=(1, 1), topics=None, supertopics=None, noise=0)
    assert flat.num_classes == (2,) and flat.hierarchy == [] and flat.x.tolist() == [[4, 0], [4, 0], [0, 4], [0, 4]]


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(noise=-1.0), ValueError, "noise"),
        (dict(noise=float("nan")), ValueError, "noise"),
        (dict(doc_sizes=(10, 10)), ValueError, "doc_sizes and word_sizes"),
        (dict(doc_sizes=(10, 0, 5, 7, 5, 20, 10, 9, 14)), ValueError, "doc_sizes"),
        (dict(topics=((0, 1), (2, 3), (4, 5), (6, 7))), ValueError, "topics must cover"),
        (dict(topics=((0, 1), (1, 2, 3), (4, 5), (6, 7, 8))), ValueError, "two groups"),
        (dict(supertopics=((0, 1), (2, 9))), ValueError, "supertopics"),
        (dict(values=(4, 2, 1)), ValueError, "values"),
        (dict(topics=None), ValueError, "supertopics needs topics"),
        (dict(dtype=torch.int64), TypeError, "dtype"),
        (dict(seed=1.5), TypeError, "seed"),
    ],
)
def test_generator_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        make_hierarchical_corpus(**kwargs)


# --- the paper's toy file -----------------------------------------------------------------------------------------


def test_load_toy_table_documented_facts():
    path = _data("synthetic_noise.mat")
    raw = scipy.io.loadmat(str(path))
    c = load_toy_table(path)
    assert c.x.shape == (90, 87) and c.x.dtype == torch.float64
    assert torch.equal(c.x, torch.from_numpy(raw["X"]).T)  # the file is 87 words x 90 documents
    assert abs(torch.linalg.norm(c.x).item() - 145.7396) < 5e-5
    assert [lab.dtype for lab in c.labels] == [torch.long] * 3 and c.num_classes == (9, 4, 2)
    assert c.labels[0].tolist() == np.repeat(np.arange(9), DOC_SIZES).tolist()
    assert c.hierarchy == [TOPIC_OF, SUPER_OF]
    assert sorted(c.label_masks) == list(range(0, 91, 10))
    m = c.label_mask(40)
    assert m.dtype == torch.bool and m.shape == (90,) and int(m.sum()) == 40
    assert torch.nonzero(m).flatten().tolist() == L40
    assert all(int(c.label_mask(n).sum()) == n for n in c.label_masks)
    # the documented construction: X = block pattern + 0.15 * Uniform[0, 1)
    torch.testing.assert_close(c.clean, _expected_clean(), rtol=0, atol=0)
    assert (c.x - c.clean).min() >= 0 and (c.x - c.clean).max() < 0.15
    f32 = load_toy_table(path, dtype=torch.float32)
    assert f32.x.dtype == torch.float32


def test_load_toy_table_rejects_other_files(tmp_path):
    p = tmp_path / "other.mat"
    scipy.io.savemat(str(p), {"X": np.ones((3, 4))})
    with pytest.raises(ValueError, match="lacks the variables"):
        load_toy_table(p)
    with pytest.raises(FileNotFoundError):
        load_toy_table(tmp_path / "missing.mat")


# --- generic loader -----------------------------------------------------------------------------------------------


def test_load_matrix_npy_and_transpose(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "a.npy", a)
    c = load_matrix(tmp_path / "a.npy")
    assert isinstance(c, Corpus) and c.labels is None and c.vocabulary is None
    assert c.x.dtype == torch.float64 and torch.equal(c.x, torch.from_numpy(a).double())
    t = load_matrix(tmp_path / "a.npy", transpose=True, dtype=torch.float32, labels=[0, 1, 1, 0])
    assert t.x.shape == (4, 3) and t.x.dtype == torch.float32 and t.labels.tolist() == [0, 1, 1, 0]
    assert t.labels.dtype == torch.long


def test_load_matrix_npz_sparse_and_arrays(tmp_path):
    dense = np.array([[0.0, 1.5, 0.0], [2.0, 0.0, 3.0]])
    scipy.sparse.save_npz(tmp_path / "s.npz", scipy.sparse.csr_matrix(dense))
    assert torch.equal(load_matrix(tmp_path / "s.npz").x, torch.from_numpy(dense))
    np.savez(tmp_path / "arr.npz", small=np.ones((2, 2)), big=dense, y=np.array([1, 0]), vec=np.ones(5))
    c = load_matrix(tmp_path / "arr.npz", labels="y")
    assert torch.equal(c.x, torch.from_numpy(dense)) and c.labels.tolist() == [1, 0]
    assert load_matrix(tmp_path / "arr.npz", key="small").x.shape == (2, 2)


def test_load_matrix_mat_variables_labels_vocabulary(tmp_path):
    X = np.random.default_rng(0).random((5, 3))  # features x samples: transpose on load
    words = np.empty((1, 5), dtype=object)
    for i, w in enumerate(["alpha", "beta", "gamma", "delta", "eps"]):
        words[0, i] = np.array([w])
    p = tmp_path / "d.mat"
    scipy.io.savemat(str(p), {"X": X, "small": np.ones((2, 2)), "lab": np.array([[2, 0, 1]], dtype=np.uint8),
                              "word_list": words})
    c = load_matrix(p, transpose=True, labels="lab", vocabulary="word_list")
    assert c.x.shape == (3, 5) and torch.allclose(c.x, torch.from_numpy(X.T))
    assert c.labels.tolist() == [2, 0, 1] and c.vocabulary == ["alpha", "beta", "gamma", "delta", "eps"]
    assert load_matrix(p, key="small").x.shape == (2, 2)
    # labels and vocabulary from files
    (tmp_path / "vocab.txt").write_text("a\nb\nc\nd\ne\n")
    np.save(tmp_path / "y.npy", np.array([0, 1, 1]))
    (tmp_path / "y.txt").write_text("1\n1\n0\n")
    c = load_matrix(p, transpose=True, labels=tmp_path / "y.npy", vocabulary=tmp_path / "vocab.txt")
    assert c.vocabulary == list("abcde") and c.labels.tolist() == [0, 1, 1]
    assert load_matrix(p, transpose=True, labels=str(tmp_path / "y.txt")).labels.tolist() == [1, 1, 0]
    assert load_matrix(p, transpose=True, labels=torch.tensor([0, 0, 1])).labels.tolist() == [0, 0, 1]


def test_load_matrix_bag_of_words_file():
    path = _data("synthetic_bag_of_words.mat")
    c = load_matrix(path, vocabulary="word_list")
    assert c.x.shape == (98, 3762) and len(c.vocabulary) == 3762
    assert all(isinstance(w, str) and w for w in c.vocabulary)
    assert c.vocabulary[:3] == ["000", "02", "05"]
    with pytest.raises(ValueError, match="vocabulary has 3762 words but the data has 98 features"):
        load_matrix(path, vocabulary="word_list", transpose=True)


def test_load_matrix_bad_input(tmp_path):
    np.save(tmp_path / "three.npy", np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="no 2-D numeric array"):
        load_matrix(tmp_path / "three.npy")
    bad = np.ones((3, 2))
    bad[1, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(ValueError, match="NaN or Inf"):
        load_matrix(tmp_path / "nan.npy")
    np.save(tmp_path / "ok.npy", np.ones((3, 2)))
    with pytest.raises(ValueError, match="labels has 2 entries but the data has 3 samples"):
        load_matrix(tmp_path / "ok.npy", labels=[0, 1])
    with pytest.raises(ValueError, match="labels must be >= 0"):
        load_matrix(tmp_path / "ok.npy", labels=[0, -1, 1])
    with pytest.raises(ValueError, match="non-integer"):
        load_matrix(tmp_path / "ok.npy", labels=[0.5, 1, 1])
    with pytest.raises(ValueError, match="labels must be 1-D"):
        load_matrix(tmp_path / "ok.npy", labels=np.eye(3))
    with pytest.raises(ValueError, match="vocabulary has 3 words but the data has 2 features"):
        load_matrix(tmp_path / "ok.npy", vocabulary=["a", "b", "c"])
    with pytest.raises(TypeError, match="vocabulary"):
        load_matrix(tmp_path / "ok.npy", vocabulary=[1, 2])
    with pytest.raises(ValueError, match="neither a variable"):
        load_matrix(tmp_path / "ok.npy", vocabulary="nope.txt")
    with pytest.raises(ValueError, match="key"):
        load_matrix(tmp_path / "ok.npy", key="X")
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match="unsupported file type"):
        load_matrix(tmp_path / "x.csv")
    with pytest.raises(FileNotFoundError):
        load_matrix(tmp_path / "missing.npy")
    with pytest.raises(TypeError, match="dtype"):
        load_matrix(tmp_path / "ok.npy", dtype=torch.float16)
    scipy.io.savemat(str(tmp_path / "m.mat"), {"X": np.ones((2, 3))})
    with pytest.raises(ValueError, match="no variable 'Y'"):
        load_matrix(tmp_path / "m.mat", key="Y")


def test_find_data_file_looks_beside_the_checkout(monkeypatch):
    """``../shared/data`` next to the checkout is found wherever the module lives in the package."""
    from pathlib import Path

    from neuralnmf.datasets import DATA_DIR_ENV, find_data_file

    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    beside = Path(__file__).resolve().parents[2] / "shared" / "data" / "synthetic_noise.mat"
    if not beside.is_file():
        pytest.skip("../shared/data/synthetic_noise.mat absent")
    assert find_data_file("synthetic_noise.mat") == beside
    assert find_data_file("no_such_file.mat") is None
