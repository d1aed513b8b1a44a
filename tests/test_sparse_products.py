"""neuralnmf.sparse_products: x @ W and x^T @ W on cached CSR copies, against dense products and autograd."""

import gc

import pytest
import torch

from neuralnmf import sparse_products


def _sparse(M=37, N=23, density=0.2, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    dense = torch.rand(M, N, generator=g, dtype=dtype) * (torch.rand(M, N, generator=g) < density)
    dense[5] = 0  # an empty row
    dense[:, 7] = 0  # an empty column
    return dense


@pytest.mark.parametrize("layout", ["coo", "coo_uncoalesced", "csr", "csc"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_products_and_gradients_equal_the_dense_ones(layout, dtype):
    dense = _sparse(dtype=dtype)
    if layout == "coo_uncoalesced":  # every nonzero split in two halves
        c = dense.to_sparse()
        x = torch.sparse_coo_tensor(torch.cat([c.indices(), c.indices()], 1), torch.cat([c.values(), c.values()]) / 2,
                                    c.shape)
        assert not x.is_coalesced()
    else:
        x = {"coo": dense.to_sparse, "csr": dense.to_sparse_csr, "csc": dense.to_sparse_csc}[layout]()
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)
    g = torch.Generator().manual_seed(1)
    W = torch.randn(23, 5, generator=g, dtype=dtype, requires_grad=True)
    V = torch.randn(37, 4, generator=g, dtype=dtype, requires_grad=True)
    Gw, Gv = torch.randn(37, 5, generator=g, dtype=dtype), torch.randn(23, 4, generator=g, dtype=dtype)

    out_w, out_v = sparse_products.matmul(x, W), sparse_products.matmul_t(x, V)
    torch.testing.assert_close(out_w, dense @ W.detach(), **tol)
    torch.testing.assert_close(out_v, dense.T @ V.detach(), **tol)
    (out_w * Gw).sum().backward()
    (out_v * Gv).sum().backward()
    W2, V2 = W.detach().clone().requires_grad_(True), V.detach().clone().requires_grad_(True)
    ((dense @ W2) * Gw).sum().backward()
    ((dense.T @ V2) * Gv).sum().backward()
    torch.testing.assert_close(W.grad, W2.grad, **tol)
    torch.testing.assert_close(V.grad, V2.grad, **tol)


def test_gradient_of_a_transposed_upstream_gradient():
    dense = _sparse()
    x = dense.to_sparse()
    W = torch.randn(23, 6, dtype=torch.float64, requires_grad=True)
    sparse_products.matmul(x, W).mT.sum(0).pow(2).sum().backward()  # the gradient arrives non-contiguous
    W2 = W.detach().clone().requires_grad_(True)
    (dense @ W2).mT.sum(0).pow(2).sum().backward()
    torch.testing.assert_close(W.grad, W2.grad, rtol=1e-12, atol=1e-12)


def test_pair_is_cached_per_tensor_and_rebuilt_after_an_edit():
    sparse_products.clear_cache()
    x = _sparse().to_sparse()
    first = sparse_products.csr_pair(x)
    assert sparse_products.csr_pair(x) is first
    assert sparse_products.csr_pair(x.clone()) is not first  # another tensor, another pair
    x.mul_(2.0)  # in place: the cached copies would be stale
    second = sparse_products.csr_pair(x)
    assert second is not first
    torch.testing.assert_close(second.x.to_dense(), x.to_dense())


def test_pair_shares_the_coo_arrays_and_uses_32_bit_indices_for_the_transpose():
    x = _sparse().to_sparse()
    pair = sparse_products.csr_pair(x)
    assert pair.x.values().data_ptr() == x.values().data_ptr()
    assert pair.x.col_indices().data_ptr() == x.indices()[1].data_ptr()
    assert pair.xt.col_indices().dtype == torch.int32
    torch.testing.assert_close(pair.xt.to_dense(), x.to_dense().T)


def test_pairs_die_with_their_tensor():
    sparse_products.clear_cache()
    x = _sparse().to_sparse()
    sparse_products.csr_pair(x)
    assert len(sparse_products._cache) == 1
    del x
    gc.collect()
    assert len(sparse_products._cache) == 0


def test_cache_is_bounded():
    sparse_products.clear_cache()
    xs = [_sparse(seed=s).to_sparse() for s in range(10)]
    for x in xs:
        sparse_products.csr_pair(x)
    assert len(sparse_products._cache) <= sparse_products._CACHE_SIZE


def test_bad_input():
    with pytest.raises(ValueError, match="2-D sparse tensor"):
        sparse_products.csr_pair(torch.rand(3, 4))
    with pytest.raises(ValueError, match="2-D sparse tensor"):
        sparse_products.csr_pair(torch.rand(2, 3, 4).to_sparse())


@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_rows_equal_index_select(layout):
    g = torch.Generator().manual_seed(3)
    dense = torch.rand(40, 25, generator=g) * (torch.rand(40, 25, generator=g) < 0.2)
    dense[7] = 0  # an empty row
    x = dense.to_sparse() if layout == "coo" else dense.to_sparse_csr()
    for idx in (torch.randperm(40, generator=g)[:13], torch.tensor([7, 3, 3, 39, 0]), torch.tensor([], dtype=torch.long)):
        got = sparse_products.rows(x, idx)
        assert got.layout == torch.sparse_coo and got.is_coalesced()
        assert got.shape == (idx.numel(), 25)
        torch.testing.assert_close(got.to_dense(), dense[idx], rtol=0, atol=0)
        # the claim of being coalesced is true: coalescing again changes nothing
        again = torch.sparse_coo_tensor(got._indices(), got._values(), got.shape).coalesce()
        assert torch.equal(again._indices(), got._indices()) and torch.equal(again._values(), got._values())


def test_rows_rejects_out_of_range():
    x = torch.eye(4).to_sparse()
    with pytest.raises(IndexError, match=r"\[0, 4\)"):
        sparse_products.rows(x, torch.tensor([0, 4]))
    with pytest.raises(IndexError, match="1-D"):
        sparse_products.rows(x, torch.tensor([[0]]))
