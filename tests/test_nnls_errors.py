"""Bad input gets a clear ValueError / TypeError naming the argument, from the public function and the raw op."""

import pytest
import torch

import neuralnmf
import neuralnmf.ops
from neuralnmf import nnls


def _ok(N=6, k=3, M=4, dtype=torch.float64):
    return torch.rand(N, M, dtype=dtype), torch.rand(N, k, dtype=dtype)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_non_finite_data(bad, dtype):
    X, A = _ok(dtype=dtype)
    X[2, 1] = bad
    with pytest.raises(ValueError, match="X contains NaN or Inf"):
        nnls(X, A)
    X, A = _ok(dtype=dtype)
    A[0, 2] = bad
    with pytest.raises(ValueError, match="A contains NaN or Inf"):
        nnls(X, A)


def test_non_finite_data_with_zero_dictionary():
    X, A = _ok()
    X[0, 0] = float("nan")
    with pytest.raises(ValueError, match="X contains NaN or Inf"):
        nnls(X, torch.zeros_like(A))


def test_non_finite_data_where_dictionary_rows_are_zero():
    X, A = _ok()
    A[1] = 0  # the NaN sits in a row that A ignores: still bad input
    X[1, 2] = float("nan")
    with pytest.raises(ValueError, match="X contains NaN or Inf"):
        nnls(X, A)


def test_wrong_number_of_dimensions():
    X, A = _ok()
    with pytest.raises(ValueError, match="X must have at least 2 dimensions"):
        nnls(X[:, 0], A)
    with pytest.raises(ValueError, match="A must have at least 2 dimensions"):
        nnls(X, A[:, 0])


def test_row_mismatch():
    X, A = _ok()
    with pytest.raises(ValueError, match="X has 6 rows"):
        nnls(X, A[:5])


def test_batch_shapes_that_do_not_broadcast():
    with pytest.raises(ValueError, match="do not broadcast"):
        nnls(torch.rand(2, 6, 4, dtype=torch.float64), torch.rand(3, 6, 2, dtype=torch.float64))


def test_dtype_mismatch():
    X, A = _ok()
    with pytest.raises(TypeError, match="A has dtype torch.float32 but X has dtype torch.float64"):
        nnls(X, A.float())


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool, torch.float16, torch.bfloat16,
                                   torch.complex64])
def test_unsupported_dtypes(dtype):
    X, A = _ok()
    with pytest.raises(TypeError, match="X must be float32 or float64"):
        nnls(X.to(dtype), A.to(dtype))
    with pytest.raises(TypeError, match="A must be float32 or float64"):
        nnls(X, A.to(dtype))


def test_not_a_tensor():
    X, A = _ok()
    with pytest.raises(TypeError, match="X must be a torch.Tensor"):
        nnls(X.numpy(), A)


def test_device_mismatch():
    X, A = _ok()
    with pytest.raises(ValueError, match="A is on meta but X is on cpu"):
        nnls(X, A.to("meta"))


def test_sparse_dictionary_is_refused_clearly():
    X, A = _ok()  # a sparse X is supported (tests/test_nnls_sparse.py); the dictionary must be dense
    with pytest.raises(TypeError, match="A must be a dense"):
        nnls(X, A.to_sparse())
    with pytest.raises(TypeError, match="A must be a dense"):
        nnls(X.to_sparse(), A.to_sparse())


def test_bad_init():
    X, A = _ok()
    with pytest.raises(ValueError, match="init must have the shape of S"):
        nnls(X, A, init=torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(TypeError, match="init must be a torch.Tensor"):
        nnls(X, A, init=[[1.0]])


def test_raw_op_checks_its_inputs():
    """Calls that bypass the Python wrapper still get named errors from the kernel."""
    X, A = _ok()
    op = torch.ops.neuralnmf.nnls
    with pytest.raises(ValueError, match="X has 6 rows"):
        op(X, A[:5])
    with pytest.raises(TypeError, match="float32 or float64"):
        op(X.long(), A.long())
    with pytest.raises(TypeError, match="dtype"):
        op(X, A.float())
    with pytest.raises(ValueError, match="X must have shape"):
        op(X[:, 0], A)
    with pytest.raises(ValueError, match="batch size"):
        op(X.expand(2, 6, 4), A.expand(3, 6, 3))
    with pytest.raises(TypeError, match="init must be a bool"):
        op(X, A, torch.ones(3, 4))
    with pytest.raises(ValueError, match="init must have the shape"):
        op(X, A, torch.ones(3, 5, dtype=torch.bool))
    V = torch.ops.neuralnmf.support_solve
    S = torch.rand(3, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="grad has shape"):
        V(S[:, :2], A, S)
    with pytest.raises(ValueError, match="columns"):
        V(S, A[:, :2], S)


def test_error_messages_do_not_depend_on_the_backend():
    """The reference implementation (the fallback) raises the same errors as the kernel."""
    X, A = _ok()
    X[0, 0] = float("nan")
    with pytest.raises(ValueError, match="X contains NaN or Inf"):
        neuralnmf._reference.nnls_reference(X, A)


def _rhs():
    X, A = _ok()
    return A.mT @ X, A


def test_init_on_another_device_is_refused_by_both_ops():
    """nnls_rhs never checked init's device: a CUDA AtX with a host init handed a host pointer to the kernel. The
    Python wrappers, the fake kernels and the compiled kernels all refuse it; on CPU, ``meta`` is the other device."""
    X, A = _ok()
    AtX, _ = _rhs()
    meta_init = torch.ones(3, 4, dtype=torch.bool, device="meta")
    with pytest.raises(ValueError, match="init is on meta but X is on cpu"):
        nnls(X, A, init=meta_init)
    with pytest.raises(ValueError, match="init is on meta but AtX is on cpu"):
        neuralnmf.ops.nnls_from_products(AtX, A, init=meta_init)
    with pytest.raises(ValueError, match="init is on meta but AtX is on cpu"):  # the fake kernel, as dispatched
        torch.ops.neuralnmf.nnls_rhs(AtX, A, meta_init, 0)
    cpu = torch._C.DispatchKeySet(torch._C.DispatchKey.CPU)  # the CPU kernel itself (csrc/checks.h)
    with pytest.raises(ValueError, match="nnls_rhs: init is on meta but AtX is on cpu"):
        torch.ops.neuralnmf.nnls_rhs.default.redispatch(cpu, AtX, A, meta_init, 0)
    with pytest.raises(ValueError, match="nnls: init is on meta but X is on cpu"):
        torch.ops.neuralnmf.nnls.default.redispatch(cpu, X, A, meta_init, 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_init_on_the_host_with_cuda_products_is_refused():
    X, A = (t.cuda() for t in _ok())
    AtX = A.mT @ X
    host = torch.ones(3, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match="init is on cpu but AtX is on cuda"):
        neuralnmf.ops.nnls_from_products(AtX, A, init=host)
    with pytest.raises(ValueError, match="init is on cpu but AtX is on cuda"):
        torch.ops.neuralnmf.nnls_rhs(AtX, A, host, 0)
    with pytest.raises(ValueError, match="init is on cpu but X is on cuda"):
        torch.ops.neuralnmf.nnls(X, A, host, 0)
    S = neuralnmf.ops.nnls_from_products(AtX, A, init=host.cuda())  # the same init on the right device works
    torch.testing.assert_close(S, nnls(X, A))


def test_init_errors_are_the_same_in_both_ops():
    X, A = _ok()
    AtX, _ = _rhs()
    for call in (lambda init: nnls(X, A, init=init), lambda init: neuralnmf.ops.nnls_from_products(AtX, A, init=init)):
        with pytest.raises(TypeError, match="init must be a torch.Tensor"):
            call([[True] * 4] * 3)
        with pytest.raises(ValueError, match="init must have the shape of S"):
            call(torch.ones(2, 2, dtype=torch.bool))


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-3, ValueError), (2.7, TypeError), ("10", TypeError),
                                      (True, TypeError)])
def test_max_iter_is_validated(bad, exc):
    """max_iter <= 0 silently meant the default bound and 2.7 meant 2: both are errors now."""
    X, A = _ok()
    AtX, _ = _rhs()
    with pytest.raises(exc, match="max_iter must be a positive integer"):
        nnls(X, A, max_iter=bad)
    with pytest.raises(exc, match="max_iter must be a positive integer"):
        neuralnmf.ops.nnls_from_products(AtX, A, max_iter=bad)
    with pytest.raises(exc, match="max_iter must be a positive integer"):
        neuralnmf.ops.nnls_sparse_rows(X.mT.to_sparse(), A, max_iter=bad)
    torch.testing.assert_close(nnls(X, A, max_iter=50), nnls(X, A))


def test_dtype_errors_say_how_to_convert():
    X, A = _ok()
    for dtype in (torch.int64, torch.float16):
        with pytest.raises(TypeError, match=r"X must be float32 or float64, got .*X\.float\(\) or X\.double\(\)"):
            nnls(X.to(dtype), A)
    with pytest.raises(TypeError, match="torch.from_numpy"):
        nnls(X.numpy(), A)
