"""Training on sparse data, from DataLoaders, memory maps and .npz shards; transform() of new samples."""

import numpy as np
import pytest
import scipy.sparse
import torch
from torch.utils.data import DataLoader, TensorDataset

from neuralnmf import NeuralNMF, fit
from neuralnmf.datasets import NpzShards, make_hierarchical_corpus, scipy_to_torch


def _sparse_corpus(seed=0, M=120, N=60, density=0.08):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(M, N, generator=g, dtype=torch.float64) * (torch.rand(M, N, generator=g) < density)
    return x


def _model(N=60, ranks=(6, 3), seed=0, **kw):
    return NeuralNMF(N, ranks, dtype=torch.float64, generator=torch.Generator().manual_seed(seed), **kw)


@pytest.mark.parametrize("loss", ["reconstruction", "energy"])
def test_sparse_training_equals_dense_training(loss):
    x = _sparse_corpus()
    dense, sparse = _model(), _model()
    hd = fit(dense, x, loss=loss, epochs=25, progress=False)
    hs = fit(sparse, x.to_sparse_csr(), loss=loss, epochs=25, progress=False)
    for a, b in zip(dense.parameters(), sparse.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)
    assert hs["loss"] == pytest.approx(hd["loss"], rel=1e-8)


def test_sparse_shuffled_minibatches_equal_dense_ones():
    # sparse minibatches are cut from the cached CSR copy (sparse_products.rows), dense ones by index_select
    x = _sparse_corpus()
    dense, sparse = _model(), _model()
    hd = fit(dense, x, epochs=8, batch_size=25, seed=3, progress=False)
    hs = fit(sparse, x.to_sparse(), epochs=8, batch_size=25, seed=3, progress=False)
    for a, b in zip(dense.parameters(), sparse.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)
    assert hs["loss"] == pytest.approx(hd["loss"], rel=1e-8)


def test_transform_gives_codes_of_new_samples_against_frozen_dictionaries():
    corpus = make_hierarchical_corpus(seed=0)
    model = NeuralNMF(87, (9, 4), init="nndsvda", data=corpus.x, dtype=torch.float64)
    fit(model, corpus.x, epochs=50, progress=False)
    before = [layer.A.detach().clone() for layer in model.layers]
    new = make_hierarchical_corpus(seed=5).x[:10]
    codes = model.transform(new)
    assert codes.shape == (10, 4) and not codes.requires_grad
    torch.testing.assert_close(codes, model(new).codes[-1].detach())
    torch.testing.assert_close(model.transform(new, depth=0), model.layers[0](new).detach())
    torch.testing.assert_close(model.transform(new.to_sparse()), codes)
    assert all(torch.equal(a, layer.A) for a, layer in zip(before, model.layers))


def test_fit_from_a_dataloader_with_labels():
    corpus = make_hierarchical_corpus(seed=1)
    loader = DataLoader(TensorDataset(corpus.x, corpus.labels[1]), batch_size=30, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    model = NeuralNMF(87, (9, 4), num_classes=4, init="nndsvda", data=corpus.x, dtype=torch.float64)
    history = fit(model, loader, epochs=40, lr=0.02, progress=False)
    assert history["loss"][-1] < history["loss"][0]
    assert (model(corpus.x).logits.argmax(1) == corpus.labels[1]).double().mean() > 0.9


def test_fit_from_a_memory_map(tmp_path):
    x = _sparse_corpus().numpy()
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    loader = DataLoader(TensorDataset(torch.from_numpy(np.asarray(mapped))), batch_size=40)
    model = _model()
    history = fit(model, loader, epochs=15, progress=False)
    assert history["loss"][-1] < history["loss"][0]


def test_fit_from_npz_shards_equals_in_memory_minibatches(tmp_path):
    x = _sparse_corpus()
    paths = []
    for i, block in enumerate(x.split(40)):
        path = tmp_path / f"shard{i}.npz"
        scipy.sparse.save_npz(path, scipy.sparse.csr_matrix(block.numpy()))
        paths.append(path)
    shards = NpzShards(paths)
    assert len(shards) == 3 and next(iter(shards)).layout == torch.sparse_coo
    # the same start for both (a source of batches would start from its first batch, a tensor from all of it)
    a, b = _model(init="uniform"), _model(init="uniform")
    fit(a, shards, epochs=10, progress=False)
    fit(b, x, batch_size=40, shuffle=False, epochs=10, progress=False)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-8, atol=1e-10)


def test_scipy_to_torch_round_trip():
    m = scipy.sparse.random(20, 7, density=0.2, format="csr", random_state=0)
    t = scipy_to_torch(m)
    np.testing.assert_allclose(t.to_dense().numpy(), m.toarray())


def test_streaming_bad_input(tmp_path):
    model = _model()
    with pytest.raises(ValueError, match="batch_size must be None"):
        fit(model, [torch.rand(5, 60, dtype=torch.float64)], batch_size=2, epochs=1)
    with pytest.raises(ValueError, match="negative"):
        fit(model, [-torch.rand(5, 60, dtype=torch.float64)], epochs=1)
    with pytest.raises(ValueError, match=r"shape \(samples, 60\)"):
        fit(model, [torch.rand(5, 61, dtype=torch.float64)], epochs=1)
    with pytest.raises(TypeError, match="re-iterable"):
        fit(model, "data.npz", epochs=1)
    with pytest.raises(ValueError, match="not found"):
        NpzShards([tmp_path / "missing.npz"])
    with pytest.raises(ValueError, match="data mask is not supported with sparse"):
        fit(model, _sparse_corpus().to_sparse(), data_mask=torch.ones(120, 60), epochs=1)


def test_a_source_of_batches_starts_from_its_first_batch():
    x = _sparse_corpus()
    batches = list(x.split(40))
    a, b = _model(), _model()
    assert a.needs_initialization
    fit(a, batches, epochs=0, progress=False)
    b.initialize(batches[0])
    assert not a.needs_initialization
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
