"""Bad input gets a clear ValueError / TypeError naming the argument, from the public function and the raw op."""

import pytest
import torch

import neuralnmf
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
