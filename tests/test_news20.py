"""The 20 Newsgroups benchmark (neuralnmf.news20): loader and protocol on a slice of the raw archive, the published
data on the whole archive, and the table's metrics and Multi-HNTF layer against hand-computed values."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from neuralnmf.datasets import find_data_file, load_news20
from neuralnmf.metrics import frobenius_error, least_squares_accuracy, protocol_accuracy
from neuralnmf.datasets.news20 import (ARCHIVE_NAME, EXTRA_STOP_WORDS, argsort_numpy1, block_label_mask,
                                       first_per_class, load_stop_words, sklearn_data_home)
from neuralnmf.tensor.multi_hntf import multi_hntf_layer, multi_hntf_matrix


def _archive() -> Path | None:
    """../shared/data/20news-bydate.tar.gz next to the checkout (or $NEURALNMF_DATA_DIR), None when absent."""
    beside = Path(__file__).resolve().parents[2] / "shared" / "data" / ARCHIVE_NAME
    return beside if beside.is_file() else find_data_file(ARCHIVE_NAME)


ARCHIVE = _archive()
needs_archive = pytest.mark.skipif(ARCHIVE is None, reason=f"../shared/data/{ARCHIVE_NAME} absent")
SLICE_CATEGORIES = ("comp.graphics", "rec.motorcycles", "sci.space")
SLICE_TRAIN, SLICE_TEST = 12, 2  # files per category in the slice


pytestmark = pytest.mark.usefixtures("one_thread")  # small problems: see conftest.one_thread


@pytest.fixture(scope="module")
def slice_archive(tmp_path_factory):
    """A small archive in the real layout: the first files of 3 categories plus a 4th that the loader must skip."""
    pytest.importorskip("sklearn")
    if ARCHIVE is None:
        pytest.skip(f"../shared/data/{ARCHIVE_NAME} absent")
    wanted = {}
    for cat in (*SLICE_CATEGORIES, "alt.atheism"):
        for split, n in (("train", SLICE_TRAIN), ("test", SLICE_TEST)):
            wanted[(split, cat)] = n
    picked = {}
    with tarfile.open(ARCHIVE, "r:gz") as tar:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) < 3:
                continue
            split, cat = parts[-3].rsplit("-", 1)[-1], parts[-2]
            if (split, cat) in wanted:
                picked.setdefault((split, cat), []).append((parts[-1], tar.extractfile(member).read()))
    out = tmp_path_factory.mktemp("slice") / ARCHIVE_NAME
    with tarfile.open(out, "w:gz") as tar:
        for (split, cat), files in picked.items():
            for name, blob in sorted(files)[: wanted[(split, cat)]]:
                info = tarfile.TarInfo(f"20news-bydate/20news-bydate-{split}/{cat}/{name}")
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
    return out


def _published_order(names_by_cat: dict[str, list[str]], categories) -> list[str]:
    """fetch_20newsgroups' training order from the README's recipe, independently of the loader: load_files lists
    the sorted category folders and their sorted files, shuffles them with RandomState(0); the category filter keeps
    that order; then a RandomState(42) shuffle."""
    files = [f"{cat}/{name}" for cat in sorted(names_by_cat) for name in sorted(names_by_cat[cat])]
    idx = np.arange(len(files))
    np.random.RandomState(0).shuffle(idx)
    files = [files[i] for i in idx if files[i].split("/")[0] in categories]
    idx = np.arange(len(files))
    np.random.RandomState(42).shuffle(idx)
    return [files[i] for i in idx]


# --- loader and protocol on a slice of the archive ---------------------------------------------------------------


def test_cache_is_the_one_scikit_learn_reads(slice_archive, tmp_path):
    from sklearn.datasets import fetch_20newsgroups
    from sklearn.datasets import _twenty_newsgroups as tn

    home = sklearn_data_home(slice_archive, tmp_path / "home")
    cache = Path(tn._pkl_filepath(str(home), tn.CACHE_NAME))
    assert cache.is_file() and not any(p.name.startswith("extract-") for p in home.iterdir())
    train = fetch_20newsgroups(data_home=str(home), subset="train", download_if_missing=False)
    test = fetch_20newsgroups(data_home=str(home), subset="test", download_if_missing=False)
    assert len(train.data) == 4 * SLICE_TRAIN and len(test.data) == 4 * SLICE_TEST
    assert train.target_names == sorted((*SLICE_CATEGORIES, "alt.atheism"))
    stamp = cache.stat().st_mtime_ns
    assert sklearn_data_home(slice_archive, home) == home and cache.stat().st_mtime_ns == stamp  # reused


def test_loader_counts_order_and_split(slice_archive, tmp_path):
    per_class = 8
    words = ["the", "and", "of"]
    stable = load_news20(slice_archive, stop_words=words, data_home=tmp_path, categories=SLICE_CATEGORIES,
                         per_class=per_class, order="stable")
    n = 3 * per_class
    assert stable.x.shape[0] == n and stable.x.shape[1] == len(stable.vocabulary)
    assert stable.y_fine.tolist() == sum(([c] * per_class for c in range(3)), [])
    assert stable.y.tolist() == stable.y_fine.tolist()  # other categories: each its own superclass
    assert stable.label_mask.tolist() == ([True] * 6 + [False] * 2) * 3  # int(0.75 * 8) = 6 per block
    # the documents: the first 8 of each category in scikit-learn's order, each block in that order
    with tarfile.open(slice_archive, "r:gz") as tar:
        names = {}
        for m in tar.getmembers():
            p = Path(m.name).parts
            if m.isfile() and p[1].endswith("train"):
                names.setdefault(p[2], []).append(p[3])
    order = _published_order(names, SLICE_CATEGORIES)
    expected = [f for c in SLICE_CATEGORIES for f in [g for g in order if g.startswith(c + "/")][:per_class]]
    assert [d.split("/", 1)[1] for d in stable.doc_names] == expected
    assert all(d.startswith("20news-bydate-train/") for d in stable.doc_names)
    assert stable.doc_ids.tolist() == [order.index(f) for f in expected]
    # the published order: the same documents per block, in numpy 1.x's unstable order
    published = load_news20(slice_archive, stop_words=words, data_home=tmp_path, categories=SLICE_CATEGORIES,
                            per_class=per_class)
    keep = np.sort(stable.doc_ids)
    fine = np.asarray([SLICE_CATEGORIES.index(order[i].split("/")[0]) for i in keep])
    assert published.doc_ids.tolist() == keep[argsort_numpy1(fine)].tolist()
    for c in range(3):
        block = slice(c * per_class, (c + 1) * per_class)
        assert sorted(published.doc_ids[block].tolist()) == sorted(stable.doc_ids[block].tolist())
    # tf-idf as the notebook built it: no digits, no stop words, unit-norm (or empty) rows
    assert not any(ch.isdigit() for w in published.vocabulary for ch in w)
    assert not set(words) & set(published.vocabulary)
    norms = torch.linalg.vector_norm(published.x.to_dense(), dim=1)
    assert torch.all(((norms - 1).abs() < 1e-12) | (norms == 0))
    assert published.x.dtype == torch.float64 and published.x.is_sparse


def test_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="20news-bydate.*fetch_20newsgroups"):
        load_news20(tmp_path / ARCHIVE_NAME)
    with pytest.raises(FileNotFoundError, match="stop-word list"):
        load_stop_words(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="order"):
        load_news20(tmp_path / ARCHIVE_NAME, order="sorted")
    with pytest.raises(ValueError, match="fewer than per_class=3"):
        first_per_class([0, 1, 0, 1, 1], 3, 2)


def test_stop_words_file_then_the_papers_extra_words(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("i\nme\n\nmy\n")
    assert load_stop_words(path) == ["i", "me", "my", *EXTRA_STOP_WORDS]
    assert len(EXTRA_STOP_WORDS) == 40


def test_first_per_class_and_block_mask():
    assert first_per_class([2, 0, 0, 1, 2, 0, 1, 2], 2, 3).tolist() == [0, 1, 2, 3, 4, 6]
    assert block_label_mask(2, 4, 0.75).tolist() == [True, True, True, False] * 2
    assert block_label_mask(1, 10, 0.75).sum() == 7  # int(7.5), as the notebook


def test_argsort_numpy1_matches_numpy_1_23():
    """Outputs of numpy 1.23.5's np.argsort (default kind) on int64: ties, a median-of-3 killer that reaches the
    heapsort fallback, and 1000 labels in 10 classes like the published sort."""
    ties = [(7 * i) % 4 for i in range(40)]
    assert argsort_numpy1(ties).tolist() == [0, 36, 32, 4, 28, 8, 24, 20, 12, 16, 35, 31, 27, 23, 15, 19, 7, 3, 11,
                                             39, 18, 22, 10, 2, 26, 14, 6, 38, 30, 34, 37, 1, 33, 29, 5, 25, 9, 21,
                                             17, 13]

    def killer(n):  # Musser's median-of-3 killer
        k, a = n // 2, [0] * n
        for i in range(1, k + 1):
            if i % 2:
                a[i - 1], a[i] = i, k + i
            a[k + i - 1] = 2 * i
        return a

    def digest(p):
        return hashlib.sha256(np.asarray(p, dtype=np.int64).tobytes()).hexdigest()[:16]

    assert digest(argsort_numpy1(killer(352))) == "6dd59bd589b23f3c"
    labels = [(37 * i) % 10 for i in range(1000)]
    perm = argsort_numpy1(labels)
    assert digest(perm) == "6789c9f00153d81a"
    assert sorted(perm.tolist()) == list(range(1000)) and np.all(np.diff(np.asarray(labels)[perm]) >= 0)
    assert argsort_numpy1([]).tolist() == [] and argsort_numpy1([5]).tolist() == [0]


# --- the published data on the whole archive ---------------------------------------------------------------------


@needs_archive
def test_published_data_from_the_whole_archive(request, tmp_path_factory):
    pytest.importorskip("sklearn")
    from sklearn.datasets import fetch_20newsgroups

    # pytest's cache folder keeps the scikit-learn cache of the archive between runs (building it takes ~5 s);
    # without the cache plugin (-p no:cacheprovider), a temporary folder
    cache = getattr(request.config, "cache", None)
    folder = cache.mkdir("news20-sklearn-home") if cache is not None else tmp_path_factory.mktemp("news20-home")
    home = sklearn_data_home(ARCHIVE, folder)
    data = load_news20(ARCHIVE, data_home=home)
    # scikit-learn's docstring example, on the cache built from the archive
    two = fetch_20newsgroups(data_home=str(home), categories=["alt.atheism", "sci.space"], download_if_missing=False)
    assert two.filenames.shape == (1073,) and two.target[:10].tolist() == [0, 1, 1, 1, 0, 1, 1, 0, 0, 0]
    # protocols §5.1: 1000 documents, 100 per newsgroup in blocks, 75 labeled per block, 6 superclasses
    assert data.x.shape == (1000, 45534) and len(data.vocabulary) == 45534
    assert data.y_fine.tolist() == sum(([c] * 100 for c in range(10)), [])
    assert torch.bincount(data.y).tolist() == [200, 100, 200, 200, 200, 100]
    assert data.label_mask.sum() == 750 and data.label_mask[:100].tolist() == [True] * 75 + [False] * 25
    assert data.present_words().numel() == 19037 and data.x.values().numel() == 62872
    norms = torch.linalg.vector_norm(data.x.to_dense(), dim=1)
    assert int((norms == 0).sum()) == 25
    assert frobenius_error(data.x, torch.zeros(1000, 1, dtype=torch.float64),
                           torch.zeros(45534, 1, dtype=torch.float64)).item() == pytest.approx(975 ** 0.5, abs=1e-9)
    assert max(data.doc_ids) == 1293  # the last document (whose label the notebook never sets) is not used
    assert data.doc_names[:2] == ["20news-bydate-train/comp.graphics/38347", "20news-bydate-train/comp.graphics/37930"]
    assert hashlib.sha256(data.doc_ids.astype(np.int64).tobytes()).hexdigest()[:16] == PUBLISHED_ORDER


PUBLISHED_ORDER = "0268ce721f1c7c10"  # sha256 of the 1000 doc_ids, numpy 1.x order (see docs/news20_table.md)


@needs_archive
def test_reproduction_script_runs_our_rows(request, tmp_path_factory):
    """examples/reproduce_20news_table.py --rows ours on one trial with few epochs: the Neural NMF row (unsupervised
    and supervised) and the two-level row, the supervised cells with the classifier's own held-out accuracy, and the
    issue-21 target lines."""
    import re
    import subprocess
    import sys

    pytest.importorskip("sklearn")
    cache = getattr(request.config, "cache", None)
    folder = cache.mkdir("news20-sklearn-home") if cache is not None else tmp_path_factory.mktemp("news20-home")
    home = sklearn_data_home(ARCHIVE, folder)
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(root / "examples" / "reproduce_20news_table.py"), "--archive",
                          str(ARCHIVE), "--data-home", str(home), "--rows", "ours", "--trials", "1",
                          "--epochs-scale", "0.01"], cwd=root, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "| method | recon, unsup. | recon, sup. | accuracy, unsup. | accuracy, sup. | classifier accuracy, sup. |" \
        in out.stdout
    assert "| Multi-HNTF |" not in out.stdout  # --rows ours runs no published fit
    rows = {}
    for line in out.stdout.splitlines():
        if line.startswith("| Neural NMF"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = [None if c == "-" else float(c.split(" ± ")[0]) for c in cells[1:]]
    assert set(rows) == {"Neural NMF (ours, library defaults)",
                         "Neural NMF, two-level labels (ours, library defaults)"}
    one, two = rows["Neural NMF (ours, library defaults)"], rows["Neural NMF, two-level labels (ours, library defaults)"]
    assert two[0] is None and two[2] is None and None not in one
    for recon in (one[0], one[1], two[1]):  # NNLS codes fit no worse than zero codes: ||X||_F = sqrt(975)
        assert 30.0 < recon <= 975 ** 0.5 + 1e-9
    for own in (one[4], two[4]):  # 6 superclasses, the largest 20% of the held-out documents
        assert 0.4 < own <= 1.0
    for key in ("nnmf_sup", "nnmf_two"):
        line = next(l for l in out.stdout.splitlines() if l.startswith(f"target {key}:"))
        assert re.search(r"(holds|does not hold)$", line)


# --- metrics and the Multi-HNTF layer, by hand ---------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_frobenius_error_by_hand():
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 1.0]], dtype=torch.float64)
    codes = torch.tensor([[1.0], [0.0], [1.0]], dtype=torch.float64)
    topics = torch.tensor([[1.0], [1.0]], dtype=torch.float64)
    # x - codes topics^T = [[0, -1], [0, 2], [2, 0]]: 1 + 4 + 4 = 9
    assert frobenius_error(x, codes, topics).item() == 3.0
    assert frobenius_error(x.to_sparse(), codes, topics).item() == pytest.approx(3.0, abs=1e-12)
    assert frobenius_error(x.to_sparse_csr(), codes, topics).item() == pytest.approx(3.0, abs=1e-12)
    with pytest.raises(ValueError, match="do not fit"):
        frobenius_error(x, codes, topics[:1])


def test_protocol_accuracy_by_hand():
    """Documents 0, 1 labeled (classes 0, 1); 2, 3, 4 held out (classes 0, 1, 1). With the held-out targets set to
    zero, C^T C = [[6, .6], [.6, 2.36]] and C^T (Y ⊙ L) = I, so W = (C^T C)^-1 = [[2.36, -.6], [-.6, 6]] / 13.8:
    scores x 13.8 are [4.72, -1.2], [-.6, 6], [2, 3] -> classes 0, 1, 1: all three right. Fitting on the labeled
    documents only gives W = I, and document 4 ([1, .6]) goes to class 0."""
    codes = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 1.0], [1.0, 0.6]], dtype=torch.float64)
    y = torch.tensor([0, 1, 0, 1, 1])
    labeled = torch.tensor([True, True, False, False, False])
    assert protocol_accuracy(codes, y, labeled).item() == 1.0
    drop = least_squares_accuracy(codes, y, fit_mask=labeled, eval_mask=~labeled, masked_fit="drop")
    assert drop.item() == pytest.approx(2 / 3)
    y_wrong = torch.tensor([0, 1, 1, 1, 1])  # document 2 is really class 1: one of three wrong
    assert protocol_accuracy(codes, y_wrong, labeled).item() == pytest.approx(2 / 3)


def _problem(seed=0, N=30, M=25, k=5, r=3):
    g = torch.Generator().manual_seed(seed)
    rand = lambda *s: torch.rand(*s, generator=g, dtype=torch.float64)  # noqa: E731
    return rand(M, N), rand(N, k), rand(k, M), rand(k, r)


def test_multi_hntf_matrix_is_the_tensor_layer_on_a_matrix():
    """Unsupervised, it is the paper's run_single on the 2-way tensor X = [[A, S^T]] (W <- (W + mean of the mode
    updates) / 2 = (2 W + W1 + W2) / 4), which forms every product in full."""
    x, A, S, W0 = _problem()
    W, B = multi_hntf_matrix(x, A, S, W0, max_iter=50)
    ref = multi_hntf_layer(x.mT.contiguous(), [A, S.mT.contiguous()], W0, max_iter=50)
    assert B is None and torch.allclose(W, ref, rtol=1e-10, atol=1e-12)
    Wsp, _ = multi_hntf_matrix(x.to_sparse(), A, S, W0, max_iter=50)
    assert torch.allclose(Wsp, ref, rtol=1e-10, atol=1e-12)


def _supervised_reference(X, A, S, Y, Lc, W, B, iters, lam, eps=1e-10):
    """The notebook's run_HNMF_supervised_single written out in full products; Lc (1, M) masks the denominators."""
    for _ in range(iters):
        wS = W.mT @ S
        W1 = W * (A.mT @ X @ wS.mT) / (eps + A.mT @ A @ W @ wS @ wS.mT)
        Aw = A @ W
        num = Aw.mT @ X @ S.mT + lam * B.mT @ Y @ S.mT
        den = Aw.mT @ Aw @ W.mT @ S @ S.mT + lam * B.mT @ ((B @ W.mT @ S) * Lc) @ S.mT
        W = (2 * W + W1 + W * (num / (eps + den)).mT) / 4
        wS = W.mT @ S
        B = B * (Y @ wS.mT) / (eps + ((B @ wS) * Lc) @ wS.mT)
    return W, B


def test_multi_hntf_matrix_supervised_is_the_notebooks_update():
    x, A, S, W0 = _problem(1)
    M, r = x.shape[0], W0.shape[1]
    y = torch.arange(M) % r
    labeled = torch.arange(M) % 4 != 0
    B0 = torch.rand(r, r, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    Y = torch.nn.functional.one_hot(y, r).to(torch.float64).mT * labeled
    for mask_unlabeled in (False, True):
        Lc = labeled.to(torch.float64)[None] if mask_unlabeled else torch.ones(1, M, dtype=torch.float64)
        W, B = multi_hntf_matrix(x, A, S, W0, max_iter=30, y=y, label_mask=labeled, B=B0, lam=0.7,
                                 mask_unlabeled=mask_unlabeled)
        W_ref, B_ref = _supervised_reference(x.mT, A, S, Y, Lc, W0, B0, 30, 0.7)
        assert torch.allclose(W, W_ref, rtol=1e-9, atol=1e-12) and torch.allclose(B, B_ref, rtol=1e-9, atol=1e-12)
    # every document labeled: masking changes nothing
    full = torch.ones(M, dtype=torch.bool)
    a = multi_hntf_matrix(x, A, S, W0, max_iter=10, y=y, label_mask=full, B=B0, mask_unlabeled=True)
    b = multi_hntf_matrix(x, A, S, W0, max_iter=10, y=y, label_mask=full, B=B0, mask_unlabeled=False)
    assert torch.allclose(a[0], b[0]) and torch.allclose(a[1], b[1])
    with pytest.raises(ValueError, match="classifier start B"):
        multi_hntf_matrix(x, A, S, W0, y=y)


def test_multi_hntf_matrix_objective_decreases():
    """Unsupervised, the iterates fit X better than the start (the multiplicative updates of both factors)."""
    x, A, S, W0 = _problem(3)
    err = lambda W: torch.linalg.norm(x.mT - A @ W @ W.mT @ S).item()  # noqa: E731
    W, _ = multi_hntf_matrix(x, A, S, W0 * 0.1, max_iter=200)
    assert err(W) < err(W0 * 0.1)
