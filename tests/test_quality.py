"""Quality with default settings, against scikit-learn's flat NMF at every rank, on planted hierarchies.

The claims of issue 12: with defaults only (ranks and epochs given), every level's relative error is within 1% of
scikit-learn's NMF at that rank, training never ends worse than where it started, every planted level is recovered
at least as well as flat NMF of that rank (matched accuracy, within 0.02), on a small dense corpus and on a sparse
corpus with a realistic vocabulary (never densified); and with labels at the default lam the fit stays within 2%
and the classifier does at least as well as a logistic regression on flat NMF codes of the same rank.
"""

import numpy as np
import pytest
import scipy.sparse
import torch

from neuralnmf import NeuralNMF, fit
from neuralnmf.datasets import make_planted_corpus
from neuralnmf.losses import squared_error
from neuralnmf.metrics import match_topics

sklearn_decomposition = pytest.importorskip("sklearn.decomposition")
RANKS = (10, 5, 2)


def _scipy(x: torch.Tensor):
    if x.layout == torch.strided:
        return x.numpy()
    return scipy.sparse.csr_matrix((x.values().numpy(), x.indices().numpy()), shape=tuple(x.shape))


def _relative_error(x, codes, dictionary) -> float:
    values = x.values() if x.layout != torch.strided else x
    return float((squared_error(x, codes, dictionary).clamp_min(0) / (values * values).sum()).sqrt())


def _flat_nmf(x, k):
    """scikit-learn's NMF (coordinate descent from NNDSVDa): the reference for every level."""
    nmf = sklearn_decomposition.NMF(k, init="nndsvda", max_iter=1000, tol=1e-4, random_state=0)
    H = torch.from_numpy(nmf.fit_transform(_scipy(x)))
    W = torch.from_numpy(np.ascontiguousarray(nmf.components_.T))
    return H, W


def _check_levels(model, corpus, history, error_slack=1.01, accuracy_slack=0.02):
    x = corpus.x
    with torch.no_grad():
        out = model(x)
    assert history["loss"][-1] <= history["loss"][0], "training ended worse than it started"
    report = []
    for level, k in enumerate(RANKS):
        H, W = _flat_nmf(x, k)
        flat_err = _relative_error(x, H, W)
        flat_acc = match_topics(H, corpus.labels[level]).accuracy
        err = _relative_error(x, out.codes[level], model.dictionary(level).detach())
        acc = match_topics(out.codes[level], corpus.labels[level]).accuracy
        report.append((level, err, flat_err, acc, flat_acc))
        assert err <= error_slack * flat_err, report
        assert acc >= flat_acc - accuracy_slack, report
    return report


@pytest.mark.parametrize("seed", [0, 1])
def test_defaults_match_flat_nmf_and_recover_a_planted_hierarchy(seed):
    corpus = make_planted_corpus(400, 150, RANKS, seed=seed)  # dense Poisson counts
    model = NeuralNMF(150, RANKS, dtype=torch.float64)
    history = fit(model, corpus.x, epochs=500, progress=False)
    _check_levels(model, corpus, history)


def test_defaults_on_a_sparse_corpus_with_a_realistic_vocabulary(monkeypatch):
    corpus = make_planted_corpus(1200, 20000, RANKS, doc_length=200, zipf=1.0, sparse=True, seed=0)
    assert corpus.x.layout == torch.sparse_coo and corpus.x._nnz() < 0.01 * corpus.x.numel()

    def refuse(self, *args, **kwargs):
        raise AssertionError("the sparse corpus was densified")

    model = NeuralNMF(20000, RANKS, dtype=torch.float64)
    with monkeypatch.context() as m:
        m.setattr(torch.Tensor, "to_dense", refuse)
        history = fit(model, corpus.x, epochs=150, progress=False)
    _check_levels(model, corpus, history)


def test_semi_supervised_defaults_keep_the_fit_and_classify():
    linear_model = pytest.importorskip("sklearn.linear_model")
    corpus = make_planted_corpus(400, 150, RANKS, seed=2)
    x, y = corpus.x, corpus.labels[-1]  # the classes of the deepest level
    labeled = corpus.label_mask(120)  # 30% of the documents
    model = NeuralNMF(150, RANKS, num_classes=RANKS[-1], dtype=torch.float64)
    history = fit(model, x, y=y, label_mask=labeled, epochs=500, progress=False)
    assert history["supervision"][-1] < history["supervision"][0]
    _check_levels(model, corpus, history, error_slack=1.02)
    with torch.no_grad():
        predicted = model(x).logits.argmax(1)
    held_out = ~labeled
    ours = float((predicted[held_out] == y[held_out]).double().mean())
    H, _ = _flat_nmf(x, RANKS[-1])
    clf = linear_model.LogisticRegression(max_iter=2000).fit(H[labeled].numpy(), y[labeled].numpy())
    theirs = clf.score(H[held_out].numpy(), y[held_out].numpy())
    assert ours >= theirs, (ours, theirs)


def test_flat_nmf_from_a_given_dictionary_takes_exact_alternating_steps():
    """flat_nmf(init=W0): its first step is H = argmin_{H>=0} ||x - H W0^T||, then W = argmin_{W>=0} ||x - H W^T||,
    each row solved by scipy's NNLS here; started from its own dictionary after 50 steps, 3 more steps are steps
    51-53 of the same run; a misshapen init is refused."""
    from scipy.optimize import nnls

    from neuralnmf.initialization import flat_nmf

    gen = torch.Generator().manual_seed(3)
    x = torch.rand(30, 12, generator=gen, dtype=torch.float64)
    W0 = torch.rand(12, 4, generator=gen, dtype=torch.float64)
    one = flat_nmf(x, 4, init=W0, max_iter=1, tol=0)
    H = np.stack([nnls(W0.numpy(), row)[0] for row in x.numpy()])
    W = np.stack([nnls(H, col)[0] for col in x.numpy().T])
    np.testing.assert_allclose(one.dictionary.numpy(), W, atol=1e-10)
    np.testing.assert_allclose(one.codes.numpy(), np.stack([nnls(W, row)[0] for row in x.numpy()]), atol=1e-10)

    resumed = flat_nmf(x, 4, init=flat_nmf(x, 4, max_iter=50, tol=0).dictionary, max_iter=3, tol=0)
    straight = flat_nmf(x, 4, max_iter=53, tol=0)
    np.testing.assert_allclose(resumed.dictionary.numpy(), straight.dictionary.numpy(), rtol=0, atol=1e-12)
    assert resumed.relative_error == pytest.approx(straight.relative_error, rel=1e-12)
    with pytest.raises(ValueError, match=r"init must have shape \(features, rank\) = \(12, 4\)"):
        flat_nmf(x, 4, init=W0.T)


def test_nndsvd_power_iterations_approach_the_exact_svd():
    """The randomized SVD behind NNDSVD: its singular values come closer to LAPACK's (torch.linalg.svdvals) as its
    power iterations grow, on a nonnegative matrix of slowly decaying spectrum; the default is 4; a count that is
    not an integer >= 0 is refused (TypeError for the type, ValueError for the value)."""
    from neuralnmf.initialization import POWER_ITERATIONS, _truncated_svd, nndsvd_factors

    x = torch.rand(300, 200, generator=torch.Generator().manual_seed(0), dtype=torch.float64) ** 3
    exact = torch.linalg.svdvals(x)[:20]
    errors = []
    for power in (0, 1, 2, 4, 8):
        _, s, _ = _truncated_svd(x, 20, torch.Generator().manual_seed(1), True, power)
        errors.append(float(((exact - s) / exact).abs().max()))
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.01 < errors[0], errors
    assert POWER_ITERATIONS == 4
    default = nndsvd_factors(x, 5, "nndsvd", torch.Generator().manual_seed(2), randomized=True)
    four = nndsvd_factors(x, 5, "nndsvd", torch.Generator().manual_seed(2), randomized=True, power_iterations=4)
    assert all(torch.equal(a, b) for a, b in zip(default, four))
    with pytest.raises(ValueError, match="power_iterations must be >= 0, got -1"):
        nndsvd_factors(x, 5, power_iterations=-1)
    for bad in (2.0, True):  # the wrong type is a TypeError, as for ranks (_checks.check_rank)
        with pytest.raises(TypeError, match="power_iterations must be an integer"):
            nndsvd_factors(x, 5, power_iterations=bad)
