"""NNLSLayer, NeuralNMF, losses and the nonnegativity projection."""

import numpy as np
import pytest
import torch
from conftest import kkt_residual
from torch import nn

import neuralnmf
from neuralnmf import NeuralNMF, NNLSLayer, NonnegativeProjection, fit, nnls, nonnegative_parameters
from neuralnmf.baselines import HierarchicalNMF
from neuralnmf.datasets import make_hierarchical_corpus
from neuralnmf.losses import energy_loss, masked_mse, reconstruction_loss, supervision_loss


@pytest.fixture(scope="module")
def corpus():
    return make_hierarchical_corpus(seed=0)


def test_layer_codes_are_the_operator_batch_first(gen):
    layer = NNLSLayer(12, 4, generator=gen, dtype=torch.float64)
    x = torch.rand(2, 7, 12, generator=gen, dtype=torch.float64)
    codes = layer(x)
    assert codes.shape == (2, 7, 4)
    expect = nnls(x.reshape(-1, 12).T, layer.A).T.reshape(2, 7, 4)
    torch.testing.assert_close(codes, expect, rtol=0, atol=0)
    assert kkt_residual(x.reshape(-1, 12).T, layer.A.detach(), codes.reshape(-1, 4).T.detach()) < 1e-12


def test_layer_warm_start_never_changes_the_answer(gen):
    layer = NNLSLayer(30, 8, generator=gen, dtype=torch.float64)
    x = torch.rand(50, 30, generator=gen, dtype=torch.float64)
    first = layer(x)
    assert layer._cache.lookup(x) is not None
    with torch.no_grad():
        layer.A.mul_(1 + 0.05 * torch.rand(layer.A.shape, generator=gen, dtype=torch.float64))
    warm = layer(x)  # warm-started from the support of `first`
    cold = NNLSLayer(30, 8, init=layer.A.detach(), warm_start=False, dtype=torch.float64)(x)
    torch.testing.assert_close(warm, cold, rtol=1e-10, atol=1e-12)
    x.add_(0.0)  # an in-place change (even a no-op) invalidates the cache
    assert layer._cache.lookup(x) is None
    assert not torch.equal(first, warm)


def test_layer_initializations(gen):
    x = torch.rand(40, 10, generator=gen, dtype=torch.float64)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a = NNLSLayer(10, 3, generator=g1, dtype=torch.float64)
    b = NNLSLayer(10, 3, generator=g2, dtype=torch.float64)
    assert torch.equal(a.A, b.A)
    for method in ("nndsvd", "nndsvda", "nndsvdar"):
        layer = NNLSLayer(10, 3, init=method, data=x, generator=gen, dtype=torch.float64)
        assert bool((layer.A >= 0).all()) and layer.A.abs().sum() > 0
    given = torch.rand(10, 3, generator=gen, dtype=torch.float64)
    assert torch.equal(NNLSLayer(10, 3, init=given, dtype=torch.float64).A, given)
    with pytest.raises(ValueError, match="needs data"):
        NNLSLayer(10, 3, init="nndsvd")
    with pytest.raises(ValueError, match="init must be one of"):
        NNLSLayer(10, 3, init="zeros")
    with pytest.raises(ValueError, match="nonnegative"):
        NNLSLayer(10, 3, init=-given)
    with pytest.raises(ValueError, match="shape"):
        NNLSLayer(10, 3, init=given.T)


@pytest.mark.parametrize("bad, exc, message", [(0, ValueError, "must be positive"), (-2, ValueError, "must be positive"),
                                                (2.5, TypeError, "must be an integer"),
                                                (True, TypeError, "must be an integer"),
                                                ("3", TypeError, "must be an integer")])
def test_ranks_must_be_positive_integers(bad, exc, message):
    """One rank check everywhere (_checks.check_rank): a rank of the wrong type is a TypeError, a wrong value a
    ValueError, in the layers, the model and the baselines alike (this test used to lock in a ValueError for 2.5
    here and a TypeError in the baselines)."""
    with pytest.raises(exc, match=f"NNLSLayer: rank {message}"):
        NNLSLayer(10, bad)
    with pytest.raises(exc, match=rf"NeuralNMF: ranks\[1\] {message}"):
        NeuralNMF(10, (4, bad))
    with pytest.raises(exc, match=rf"HierarchicalNMF: ranks\[1\] {message}"):
        HierarchicalNMF((4, bad))
    with pytest.raises(exc, match=f"NeuralNMF: in_features {message}"):
        NeuralNMF(bad, (4,))
    with pytest.raises(exc, match=f"NNLSLayer: in_features {message}"):
        NNLSLayer(bad, 3)


def test_numpy_integer_ranks_are_ranks():
    model = NeuralNMF(np.int64(10), (np.int64(4), np.int32(2)), init="uniform")
    assert model.ranks == (4, 2) and type(model.ranks[0]) is int and model.in_features == 10


def test_layer_rejects_bad_inputs(gen):
    layer = NNLSLayer(10, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"\(\*, 10\)"):
        layer(torch.rand(5, 9, dtype=torch.float64))
    with pytest.raises(TypeError, match="dtype"):
        layer(torch.rand(5, 10))


def test_neural_nmf_forward_reconstruct_repr(corpus):
    x = corpus.x
    model = NeuralNMF(x.shape[1], (9, 4, 2), num_classes=2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out = model(x)
    assert [c.shape for c in out.codes] == [(90, 9), (90, 4), (90, 2)]
    assert out.logits.shape == (90, 2)
    for depth in range(3):  # A_0 ... A_depth S_depth, batch first
        D = model.layers[0].A
        for layer in model.layers[1 : depth + 1]:
            D = D @ layer.A
        torch.testing.assert_close(model.reconstruct(x, depth), out.codes[depth] @ D.T)
    torch.testing.assert_close(model.reconstruct(output=out), model.reconstruct(x, -1))
    # layer l reads the codes of layer l-1
    torch.testing.assert_close(out.codes[1], model.layers[1](out.codes[0]))
    text = repr(model)
    assert text.startswith("NeuralNMF(") and "in_features=87, ranks=(9, 4, 2), num_classes=2" in text and "NNLSLayer(in_features=9, rank=4)" in text
    with pytest.raises(ValueError, match="depth"):
        model.reconstruct(x, 3)


def test_model_warm_start_matches_cold(corpus):
    x = corpus.x
    warm = NeuralNMF(87, (9, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    cold = NeuralNMF(87, (9, 4), dtype=torch.float64, warm_start=False)
    cold.load_state_dict(warm.state_dict())
    warm(x)
    with torch.no_grad():
        for layer in warm.layers:
            layer.A.mul_(1.01)
        for layer in cold.layers:
            layer.A.mul_(1.01)
    for a, b in zip(warm(x).codes, cold(x).codes):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("init", ["nmf", "nndsvda"])
def test_data_driven_start_now_or_at_the_first_fit(corpus, init):
    now = NeuralNMF(87, (9, 4), init=init, data=corpus.x, dtype=torch.float64)
    assert all(bool((layer.A >= 0).all()) for layer in now.layers) and not now.needs_initialization
    later = NeuralNMF(87, (9, 4), init=init, dtype=torch.float64)
    assert later.needs_initialization
    later(corpus.x)  # a model built without data works: its dictionaries hold U[0, 1) draws until then
    fit(later, corpus.x, epochs=0, progress=False)
    assert not later.needs_initialization
    for a, b in zip(now.parameters(), later.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not NeuralNMF(87, (9, 4), init="uniform").needs_initialization


def test_pending_start_is_cancelled_by_loading_or_changing_the_dictionaries(corpus):
    trained = NeuralNMF(87, (9, 4), num_classes=4, data=corpus.x, dtype=torch.float64)
    loaded = NeuralNMF(87, (9, 4), num_classes=4, dtype=torch.float64)
    assert loaded.needs_initialization and loaded.needs_classifier_initialization
    loaded.load_state_dict(trained.state_dict())
    assert not loaded.needs_initialization and not loaded.needs_classifier_initialization
    fit(loaded, corpus.x, y=corpus.labels[1], epochs=0, progress=False)
    for a, b in zip(trained.parameters(), loaded.parameters()):
        assert torch.equal(a, b)
    edited = NeuralNMF(87, (9, 4), dtype=torch.float64)
    with torch.no_grad():
        edited.layers[0].A.fill_(1.0)
    assert not edited.needs_initialization


def test_papers_classifier_starts_at_the_least_squares_fit_of_the_labels(corpus):
    y, mask = corpus.labels[1], corpus.label_mask(40)
    model = NeuralNMF(87, (9, 4), num_classes=4, classifier="papers", data=corpus.x, dtype=torch.float64)
    assert model.needs_classifier_initialization  # data without labels: B waits for them
    fit(model, corpus.x, y=y, label_mask=mask, epochs=0, progress=False)
    codes = model.transform(corpus.x)[mask]
    Y = torch.nn.functional.one_hot(y[mask], 4).double()
    B = model.B.detach()
    assert bool((B >= 0).all())
    # KKT conditions of min_{B >= 0} ||Y - codes B^T||^2, checked independently of the solver
    grad = (codes @ B.T - Y).T @ codes  # (c, k)
    scale = codes.norm() ** 2 * B.abs().max()
    assert grad.min().item() >= -1e-8 * scale
    assert (grad * B).abs().max().item() <= 1e-8 * scale
    free = NeuralNMF(87, (9, 4), num_classes=4, classifier="papers", data=corpus.x, dtype=torch.float64,
                     nonnegative_classifier=False)
    free.initialize_classifier(corpus.x, y, mask)
    expected = torch.linalg.lstsq(codes, Y).solution.T
    torch.testing.assert_close(free.B.detach(), expected)


def test_state_dict_round_trip(corpus):
    a = NeuralNMF(87, (9, 4), num_classes=4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    b = NeuralNMF(87, (9, 4), num_classes=4, dtype=torch.float64)
    b.load_state_dict(a.state_dict())
    oa, ob = a(corpus.x), b(corpus.x)
    torch.testing.assert_close(oa.logits, ob.logits, rtol=0, atol=0)


def test_losses_and_masks(corpus, gen):
    x = corpus.x
    model = NeuralNMF(87, (9, 4), num_classes=4, dtype=torch.float64, generator=gen)
    out = model(x)
    recon = model.reconstruct(output=out)
    torch.testing.assert_close(reconstruction_loss(model, x, out), ((x - recon) ** 2).mean())
    expect = ((x - out.codes[0] @ model.layers[0].A.T) ** 2).mean() + \
        ((out.codes[0] - out.codes[1] @ model.layers[1].A.T) ** 2).mean()
    torch.testing.assert_close(energy_loss(model, x, out), expect)
    # the data mask: masked entries do not count, whatever they hold
    mask = torch.rand(x.shape, generator=gen) > 0.3
    x2 = torch.where(mask, x, x + 100.0)
    recon = recon.detach()
    assert masked_mse(x, recon, mask).item() == pytest.approx(masked_mse(x2, recon, mask).item())
    assert masked_mse(x, recon, mask).item() == pytest.approx(((x - recon)[mask] ** 2).mean().item())
    # the label mask: unlabeled samples contribute nothing, whatever their label
    y = corpus.labels[1]
    labeled = torch.rand(90, generator=gen) > 0.5
    y2 = torch.where(labeled, y, (y + 1) % 4)
    for kind in ("l2", "ce"):
        a, b = supervision_loss(out.logits, y, labeled, kind), supervision_loss(out.logits, y2, labeled, kind)
        assert a.item() == pytest.approx(b.item())
    onehot = torch.nn.functional.one_hot(y[labeled], 4).double()
    torch.testing.assert_close(supervision_loss(out.logits, y, labeled, "l2"), ((out.logits[labeled] - onehot) ** 2).mean())
    none = supervision_loss(out.logits, y, torch.zeros(90, dtype=torch.bool))
    assert none.item() == 0 and none.requires_grad


def test_projection_hook_with_any_optimizer(gen):
    model = NeuralNMF(10, (4, 2), num_classes=3, classifier="papers", dtype=torch.float64, generator=gen)
    params = nonnegative_parameters(model)
    assert {id(p) for p in params} == {id(model.layers[0].A), id(model.layers[1].A), id(model.B)}
    logistic = NeuralNMF(10, (4, 2), num_classes=3)  # free-signed weights and bias
    assert {id(p) for p in nonnegative_parameters(logistic)} == {id(layer.A) for layer in logistic.layers}
    free = NeuralNMF(10, (4,), num_classes=3, classifier="papers", nonnegative_classifier=False)
    assert id(free.B) not in {id(p) for p in nonnegative_parameters(free)}
    projection = NonnegativeProjection(model)
    for opt_cls in (torch.optim.SGD, torch.optim.Adam, torch.optim.RMSprop):
        opt = opt_cls(model.parameters(), lr=10.0)
        handle = projection.attach(opt)
        for p in model.parameters():
            p.grad = torch.ones_like(p)  # a step that pushes everything negative
        opt.step()
        assert all(bool((p >= 0).all()) for p in params)
        handle.remove()
    with torch.no_grad():
        model.B.fill_(-1.0)
    projection()  # by hand
    assert bool((model.B == 0).all())


def test_nnls_layer_inside_a_larger_network():
    """A downstream classifier learns through an NNLSLayer on minibatches; its dictionary learns too."""
    corpus = make_hierarchical_corpus(seed=3, dtype=torch.float32)
    x, y = corpus.x, corpus.labels[1]
    torch.manual_seed(0)
    net = nn.Sequential(NNLSLayer(87, 6, generator=torch.Generator().manual_seed(0)), nn.Linear(6, 4))
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    NonnegativeProjection(net).attach(opt)
    A0 = net[0].A.detach().clone()
    order = torch.Generator().manual_seed(1)
    for _ in range(60):
        for idx in torch.randperm(90, generator=order).split(16):
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    accuracy = (net(x).argmax(1) == y).float().mean().item()
    assert accuracy >= 0.95
    assert not torch.allclose(net[0].A, A0) and bool((net[0].A >= 0).all())


def test_public_api_exports():
    for name in ("nnls", "NNLSLayer", "NeuralNMF", "fit", "NonnegativeProjection", "History"):
        assert hasattr(neuralnmf, name)


def test_model_takes_the_dtype_of_its_data_unless_given(corpus):
    x = corpus.x  # float64
    assert NeuralNMF(87, (9, 4), data=x).layers[0].A.dtype == torch.float64
    later = NeuralNMF(87, (9, 4), num_classes=4)
    assert later.layers[0].A.dtype == torch.get_default_dtype()
    fit(later, x, y=corpus.labels[1], epochs=2, progress=False)
    assert later.layers[0].A.dtype == torch.float64 and later.B.dtype == torch.float64
    fixed = NeuralNMF(87, (9, 4), dtype=torch.float32)
    with pytest.raises(TypeError, match="dtype"):
        fit(fixed, x, epochs=1, progress=False)


def test_classifier_can_keep_its_random_draw(corpus):
    model = NeuralNMF(87, (9, 4), num_classes=4, data=corpus.x, classifier_from_labels=False,
                      generator=torch.Generator().manual_seed(0))
    B0 = model.B.detach().clone()
    assert not model.needs_classifier_initialization
    model.initialize(corpus.x, corpus.labels[1])
    assert torch.equal(model.B.detach(), B0)
