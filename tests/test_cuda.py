"""The CUDA kernels against the CPU kernels, on a GPU (every GPU test is skipped without one).

The same inputs go to both devices: S, info and gradients agree (float32 and float64, shared and batched A,
degenerate A, warm starts, every rank class of the lane-group kernels and k > 256, strided inputs, many
blocks); nnls_rhs and sparse X run on the device with the CPU's answers and no fallback; bad input raises with
validation on and comes back as NaN columns with info == -2 with it off; opcheck; torch.compile(
mode="reduce-overhead") equals eager; forward and backward make no host synchronisation with validation off.
The first tests, of the validation switches and the fallback message, need no GPU and always run.
"""

import warnings

import pytest
import torch
from conftest import kkt_residual, make_generator, matrix_with_condition

from neuralnmf import NNLSConvergenceWarning, _extension, nnls, ops
from neuralnmf._validation import _check_device_result
from neuralnmf.ops import nnls_from_products

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
DTYPES = [torch.float64, torch.float32]
KKT_TOL = {torch.float64: 1e-11, torch.float32: 1e-4}


# --- validation switches (no GPU needed) ---------------------------------------------------------------------


def test_validation_switches_restore_the_previous_state():
    assert ops.validation_enabled()
    with ops.validation(False):
        assert not ops.validation_enabled()
        with ops.validation(True):
            assert ops.validation_enabled()
        assert not ops.validation_enabled()
    assert ops.validation_enabled()
    try:
        ops.set_validation(False)
        assert not ops.validation_enabled()
    finally:
        ops.set_validation(True)
    with pytest.raises(KeyError), ops.validation(False):
        raise KeyError
    assert ops.validation_enabled()


def test_device_result_check_turns_info_into_errors_and_warnings():
    A = torch.rand(5, 3, dtype=torch.float64)
    _check_device_result(A, torch.tensor([0, 1, 0], dtype=torch.int32), None)
    with pytest.raises(ValueError, match="X contains NaN or Inf"):
        _check_device_result(A, torch.tensor([0, -2, -1], dtype=torch.int32), None)
    A_bad = A.clone()
    A_bad[1, 1] = float("inf")
    with pytest.raises(ValueError, match="A contains NaN or Inf"):  # A first: it makes every column -2
        _check_device_result(A_bad, torch.full((3,), -2, dtype=torch.int32), None)
    with pytest.warns(NNLSConvergenceWarning, match="2 of 4 columns"):
        _check_device_result(A, torch.tensor([-1, 0, -1, 1], dtype=torch.int32), 3)
    _check_device_result(A, torch.zeros(0, dtype=torch.int32), None)


def test_fallback_message_names_op_device_and_build():
    reason = _extension.kernel_reason
    assert "could not be imported (ImportError: x)" in reason("nnls", "cuda", False, "ImportError: x", False, "13.0")
    text = reason("nnls_rhs", "cuda", True, None, True, "13.0")
    assert "has CUDA kernels but none for neuralnmf::nnls_rhs" in text
    assert "torch has no CUDA" in reason("nnls", "cuda", True, None, False, None)
    assert "built without CUDA kernels (no nvcc" in reason("nnls", "cuda", True, None, False, "13.0")
    assert "no compiled kernel of neuralnmf::support_solve for mps tensors" in reason("support_solve", "mps", True,
                                                                                   None, False, None)
    assert _extension.missing_kernel_reason("nnls", "xpu").startswith(
        "neuralnmf has no compiled kernel" if _extension.HAS_C else "the compiled extension")


def test_cpu_path_still_raises_with_validation_off():
    X, A = torch.rand(6, 4, dtype=torch.float64), torch.rand(6, 3, dtype=torch.float64)
    X[0, 0] = float("nan")
    with ops.validation(False), pytest.raises(ValueError, match="X contains NaN or Inf"):
        nnls(X, A)


# --- helpers -------------------------------------------------------------------------------------------------


def _both(*tensors):
    return tensors, tuple(t.cuda() if isinstance(t, torch.Tensor) else t for t in tensors)


def _run(X, A, init=None, max_iter=0):
    """The raw op on the CPU and on the GPU: ((S, info) cpu, (S, info) cuda moved back)."""
    (Xc, Ac, ic), (Xg, Ag, ig) = _both(X, A, init)
    cpu = torch.ops.neuralnmf.nnls(Xc, Ac, ic, max_iter)
    S, info = torch.ops.neuralnmf.nnls(Xg, Ag, ig, max_iter)
    assert S.device.type == "cuda" and info.device.type == "cuda" and info.dtype == torch.int32
    return cpu, (S.cpu(), info.cpu())


def _close(S, S_ref, dtype, tol=None):
    """Equal up to the round-off of the solve: float32 data differ by about 1e-6 after a different GEMM."""
    tol = tol if tol is not None else (1e-8 if dtype == torch.float64 else 1e-4)
    torch.testing.assert_close(S.double(), S_ref.double(), rtol=tol, atol=tol * max(S_ref.abs().max().item(), 1e-30))


def _problem(N, k, M, dtype, g, batch=()):
    A = torch.rand(*batch, N, k, generator=g, dtype=torch.float64) + 0.2 * torch.eye(N, k, dtype=torch.float64)
    X = torch.randn(*batch, N, M, generator=g, dtype=torch.float64) + 0.5
    return X.to(dtype), A.to(dtype)


# --- forward --------------------------------------------------------------------------------------------------


@gpu
def test_cuda_kernels_are_compiled():
    assert all(_extension.has_kernel(op, "CUDA") for op in _extension.OPS), (
        "neuralnmf was built without CUDA: rebuild with a CUDA torch and nvcc (README, 'CUDA')"
    )
    assert _extension.built_with_cuda()


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [7, 16, 40])
def test_forward_many_blocks_and_strided_inputs(dtype, k):
    """Enough columns for thousands of blocks and a partial last one; X a transposed view (as NNLSLayer passes
    it), init a transposed view too: read in place, the CPU's answers."""
    g = make_generator(20 + k)
    M, N = 100_003, 3 * k
    A = (torch.rand(N, k, generator=g, dtype=torch.float64) + 0.2 * torch.eye(N, k, dtype=torch.float64)).to(dtype)
    x = torch.rand(M, N, generator=g, dtype=torch.float64).to(dtype)  # samples as rows
    init = (torch.rand(M, k, generator=g) > 0.3).T
    (S_ref, info_ref), (S, info) = _run(x.T, A, init)
    assert bool((info >= 0).all())
    if dtype == torch.float64:
        assert torch.equal(info, info_ref)
    _close(S, S_ref, dtype)
    assert kkt_residual(x.T[:, :2000], A, S[:, :2000]) <= KKT_TOL[dtype]


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [5, 32, 64, 150])
def test_products_forward_and_gradients_match_cpu(dtype, k):
    """nnls_rhs on the device: products in their layout (transposed, as the sparse path forms them), S in it,
    warm start, batched; gradients through nnls_from_products."""
    g = make_generator(30 + k)
    N, M = 2 * k + 10, 700
    A = torch.rand(N, k, generator=g, dtype=torch.float64) + 0.2 * torch.eye(N, k, dtype=torch.float64)
    X = torch.rand(N, M, generator=g, dtype=torch.float64)
    AtX = (X.T @ A).to(dtype).T
    A = A.to(dtype)
    init = torch.rand(k, M, generator=g) > 0.5
    S_ref, info_ref = torch.ops.neuralnmf.nnls_rhs(AtX, A, init, 0)
    S, info = torch.ops.neuralnmf.nnls_rhs(AtX.cuda(), A.cuda(), init.cuda(), 0)
    assert S.stride() == AtX.stride() and S.device.type == "cuda"
    if dtype == torch.float64:
        assert torch.equal(info.cpu(), info_ref)
    _close(S.cpu(), S_ref, dtype)
    Ab = torch.stack([A, A.flip(1)])
    Bb = torch.stack([AtX, AtX.flip(0)])
    S_ref, _ = torch.ops.neuralnmf.nnls_rhs(Bb, Ab, None, 0)
    S, _ = torch.ops.neuralnmf.nnls_rhs(Bb.cuda(), Ab.cuda(), None, 0)
    _close(S.cpu(), S_ref, dtype)
    W = torch.randn(k, M, generator=g, dtype=torch.float64).to(dtype)
    grads = []
    for device in ("cpu", "cuda"):
        B_ = AtX.detach().to(device, copy=True).requires_grad_(True)
        A_ = A.detach().to(device, copy=True).requires_grad_(True)
        (nnls_from_products(B_, A_) * W.to(device)).sum().backward()
        grads.append((B_.grad.cpu(), A_.grad.cpu()))
    tol = 1e-8 if dtype == torch.float64 else 1e-3
    _close(grads[1][0], grads[0][0], dtype, tol=tol)
    _close(grads[1][1], grads[0][1], dtype, tol=tol)


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_sparse_data_runs_on_the_device(dtype):
    """Sparse X on CUDA: sparse-dense products by torch (cuSPARSE), solves by the CUDA kernels, no fallback
    warning; the dense CPU answer and gradient."""
    g = make_generator(40)
    dense = torch.rand(300, 500, generator=g, dtype=torch.float64)
    dense[dense < 0.9] = 0
    A = torch.rand(300, 12, generator=g, dtype=torch.float64)
    S_ref = nnls(dense.to(dtype), A.to(dtype))
    A_ref = A.to(dtype, copy=True).requires_grad_(True)  # a copy: A itself stays a plain tensor
    (nnls(dense.to(dtype), A_ref) ** 2).sum().backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for layout in (torch.sparse_coo, torch.sparse_csr):
            X = dense.to(dtype).to_sparse(layout=layout).cuda()
            Ag = A.to(dtype).cuda().requires_grad_(True)
            S = nnls(X, Ag)
            (S**2).sum().backward()
            _close(S.detach().cpu(), S_ref, dtype)
            _close(Ag.grad.cpu(), A_ref.grad, dtype, tol=1e-8 if dtype == torch.float64 else 1e-3)


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k,N,M", [(4, 40, 700), (12, 60, 3000), (32, 128, 900), (64, 200, 600), (100, 300, 800),
                                   (200, 400, 4000), (300, 600, 300)])
@pytest.mark.parametrize("layout", ["shared", "shared_batched", "batched"])
def test_forward_matches_cpu(dtype, k, N, M, layout):
    g = make_generator(k * 7 + len(layout))
    if layout == "shared":
        X, A = _problem(N, k, M, dtype, g)
    elif layout == "shared_batched":
        X, A = _problem(N, k, M // 2, dtype, g, batch=(2,))
        A = A[0]
    else:
        X, A = _problem(N, k, M // 2, dtype, g, batch=(2,))
    (S_ref, info_ref), (S, info) = _run(X, A)
    assert bool((S >= 0).all()) and bool(torch.isfinite(S).all())
    assert bool((info >= 0).all()), info.unique()
    if dtype == torch.float64:
        assert torch.equal(info, info_ref)
    _close(S, S_ref, dtype)
    assert kkt_residual(X, A, S) <= KKT_TOL[dtype]


@gpu
@pytest.mark.parametrize("cond", [1e2, 1e4])
def test_forward_ill_conditioned(cond):
    g = make_generator(3)
    A = matrix_with_condition(300, 32, cond, g)
    X = torch.randn(300, 500, generator=g, dtype=torch.float64)
    (S_ref, _), (S, _info) = _run(X, A)
    assert kkt_residual(X, A, S) <= 1e-10
    torch.testing.assert_close(S, S_ref, rtol=cond * 1e-12, atol=cond * 1e-12 * S_ref.abs().max().item())


@gpu
@pytest.mark.parametrize("kind", ["zero_columns", "duplicate_columns", "k_greater_than_n", "all_zero"])
def test_forward_degenerate_dictionaries(kind):
    g = make_generator(4)
    A = torch.rand(30, 10, generator=g, dtype=torch.float64)
    if kind == "zero_columns":
        A[:, [1, 4, 9]] = 0
    elif kind == "duplicate_columns":
        A[:, 3] = A[:, 0]
        A[:, 8] = 2 * A[:, 5]
    elif kind == "k_greater_than_n":
        A = torch.rand(6, 10, generator=g, dtype=torch.float64)
    else:
        A.zero_()
    X = torch.rand(A.shape[0], 300, generator=g, dtype=torch.float64)
    (S_ref, info_ref), (S, info) = _run(X, A)
    assert torch.equal(info, info_ref)  # 0 where G is invertible, 1 (Lawson-Hanson) where it is not
    assert kkt_residual(X, A, S) <= 1e-10
    torch.testing.assert_close(A @ S, A @ S_ref, rtol=1e-9, atol=1e-10)  # S itself need not be unique
    zero = A.abs().sum(0) == 0
    assert bool((S[zero] == 0).all())


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_warm_start(dtype):
    g = make_generator(5)
    X, A = _problem(100, 24, 400, dtype, g)
    (S_ref, _), _ = _run(X, A)
    for init in (S_ref > 0, torch.rand(24, 400, generator=g) > 0.5, torch.zeros(24, 400, dtype=torch.bool)):
        (S_cpu, _), (S, _info) = _run(X, A, init)
        _close(S, S_cpu, dtype)
        _close(S, S_ref, dtype)


@gpu
def test_forward_iteration_bound_and_warning():
    g = make_generator(6)
    A = matrix_with_condition(60, 30, 1e3, g).abs()
    X = torch.randn(60, 200, generator=g, dtype=torch.float64)
    (_S_ref, info_ref), (_S, info) = _run(X, A, max_iter=1)
    assert torch.equal(info, info_ref) and bool((info == -1).any())
    with pytest.warns(NNLSConvergenceWarning):
        nnls(X.cuda(), A.cuda(), max_iter=1)


@gpu
@pytest.mark.parametrize("dtype,scales", [(torch.float64, [1e-300, 1e-150, 1e150, 1e300]),
                                          (torch.float32, [1e-30, 1e30, 3e37])])
def test_forward_extreme_scales(dtype, scales):
    """Huge X overflows A^T X (the column re-reads X in float64); tiny and huge u are formed per column."""
    g = make_generator(7)
    A = torch.rand(40, 8, generator=g, dtype=torch.float64)
    X = torch.rand(40, 300, generator=g, dtype=torch.float64)
    base = nnls(X, A)
    for c in scales:
        S, info = torch.ops.neuralnmf.nnls((X * c).to(dtype).cuda(), A.to(dtype).cuda())
        assert bool((info.cpu() >= 0).all())
        _close(S.cpu().double() / c, base, dtype)
        S, _ = torch.ops.neuralnmf.nnls(X.to(dtype).cuda(), (A * c).to(dtype).cuda())
        _close(S.cpu().double() * c, base, dtype)


@gpu
def test_forward_float32_with_tf32_allowed_stays_accurate():
    g = make_generator(8)
    X, A = _problem(512, 32, 2000, torch.float32, g)
    (S_ref, _), _ = _run(X, A)
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        S = nnls(X.cuda(), A.cuda()).cpu()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    _close(S, S_ref, torch.float32)


@gpu
def test_forward_empty_and_tiny_shapes():
    for N, k, M in [(5, 3, 0), (5, 0, 4), (0, 3, 4), (1, 1, 1), (7, 1, 3)]:
        X, A = torch.rand(N, M, dtype=torch.float64), torch.rand(N, k, dtype=torch.float64)
        (S_ref, info_ref), (S, info) = _run(X, A)
        assert S.shape == S_ref.shape and info.shape == info_ref.shape
        torch.testing.assert_close(S, S_ref, rtol=1e-10, atol=1e-12)
        assert torch.equal(info, info_ref)
    S, info = torch.ops.neuralnmf.nnls(torch.rand(0, 5, 4, device="cuda"), torch.rand(5, 2, device="cuda"))
    assert S.shape == (0, 2, 4) and info.shape == (0, 4)


@gpu
def test_forward_on_a_side_stream():
    g = make_generator(9)
    X, A = _problem(256, 32, 3000, torch.float64, g)
    (S_ref, _), _ = _run(X, A)
    stream = torch.cuda.Stream()
    Xg, Ag = X.cuda(), A.cuda()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        S = torch.ops.neuralnmf.nnls(Xg, Ag)[0]
    torch.cuda.current_stream().wait_stream(stream)
    _close(S.cpu(), S_ref, torch.float64)


# --- errors --------------------------------------------------------------------------------------------------


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_non_finite_input_raises_with_validation(dtype):
    X, A = torch.rand(6, 5, dtype=dtype, device="cuda"), torch.rand(6, 3, dtype=dtype, device="cuda")
    for bad in (float("nan"), float("inf")):
        Xb = X.clone()
        Xb[2, 1] = bad
        with pytest.raises(ValueError, match="X contains NaN or Inf"):
            nnls(Xb, A)
        Ab = A.clone()
        Ab[0, 2] = bad
        with pytest.raises(ValueError, match="A contains NaN or Inf"):
            nnls(X, Ab)
    Xb = X.clone()
    Xb[0, 0] = float("nan")
    with pytest.raises(ValueError, match="X contains NaN or Inf"):
        nnls(Xb, torch.zeros_like(A))  # A = 0 still sees the NaN (0 * NaN)


@gpu
def test_non_finite_input_gives_nan_columns_without_validation():
    X, A = torch.rand(6, 5, dtype=torch.float64, device="cuda"), torch.rand(6, 3, dtype=torch.float64, device="cuda")
    X[2, 1] = float("nan")
    X[4, 3] = float("-inf")
    with ops.validation(False), warnings.catch_warnings():
        warnings.simplefilter("error")
        S, info = nnls(X, A, return_info=True)
    assert info.tolist() == [0, -2, 0, -2, 0]
    assert bool(S[:, [1, 3]].isnan().all()) and bool(S[:, [0, 2, 4]].isfinite().all())
    A[0, 0] = float("nan")
    with ops.validation(False):
        S, info = nnls(X, A, return_info=True)
    assert bool((info == -2).all()) and bool(S.isnan().all())


@gpu
def test_bad_input_errors_are_the_cpu_ones():
    X, A = torch.rand(6, 5, device="cuda"), torch.rand(6, 3, device="cuda")
    with pytest.raises(TypeError, match="A has dtype torch.float64 but X has dtype torch.float32"):
        nnls(X, A.double())
    with pytest.raises(ValueError, match="X has 6 rows"):
        nnls(X, A[:5])
    with pytest.raises(ValueError, match="A is on cpu but X is on cuda"):
        nnls(X, A.cpu())


# --- backward ------------------------------------------------------------------------------------------------


def _grads(X, A, W, device):
    # copies: .to() of a CPU tensor to the CPU is the tensor itself, and marking it would change the caller's
    X = X.detach().to(device, copy=True).requires_grad_(True)
    A = A.detach().to(device, copy=True).requires_grad_(True)
    S = nnls(X, A)
    (S * W.to(device)).sum().backward()
    return S.detach().cpu(), X.grad.cpu(), A.grad.cpu()


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [4, 32, 64, 200])
@pytest.mark.parametrize("layout", ["shared", "shared_batched", "batched"])
def test_gradients_match_cpu(dtype, k, layout):
    g = make_generator(10 + k)
    N, M = max(2 * k, 40), 300
    batch = () if layout == "shared" else (2,)
    X, A = _problem(N, k, M, dtype, g, batch=batch)
    if layout == "shared_batched":
        A = A[0]
    W = torch.randn(*batch, k, M, generator=g, dtype=torch.float64).to(dtype)
    S_ref, dX_ref, dA_ref = _grads(X, A, W, "cpu")
    S, dX, dA = _grads(X, A, W, "cuda")
    _close(S, S_ref, dtype)
    same_support = torch.equal(S > 0, S_ref > 0)
    assert same_support or dtype == torch.float32  # float32: an entry at round-off may land on either side of 0
    if same_support:
        _close(dX, dX_ref, dtype, tol=1e-8 if dtype == torch.float64 else 1e-3)
        _close(dA, dA_ref, dtype, tol=1e-8 if dtype == torch.float64 else 1e-3)


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [20, 32])
def test_the_k32_class_matches_cpu(dtype, k):
    """The k <= 32 class in the layout it was built with (setup.py's NEURALNMF_CUDA_PACK: a 32-lane group per
    column, or two columns per warp with two variables per lane; every layout gives the same bits on the host,
    tests/test_cuda_compile.py), batched and warm-started: the CPU's S, info and gradients."""
    g = make_generator(50 + k)
    X, A = _problem(3 * k, k, 2001, dtype, g, batch=(2,))
    init = torch.rand(2, k, 2001, generator=g) > 0.4
    for args in ((X, A), (X, A, init)):
        (S_ref, info_ref), (S, info) = _run(*args)
        assert bool((info >= 0).all())
        if dtype == torch.float64:
            assert torch.equal(info, info_ref)
        _close(S, S_ref, dtype)
    W = torch.randn(2, k, 2001, generator=g, dtype=torch.float64).to(dtype)
    S_ref, dX_ref, dA_ref = _grads(X, A, W, "cpu")
    S, dX, dA = _grads(X, A, W, "cuda")
    if torch.equal(S > 0, S_ref > 0):
        _close(dX, dX_ref, dtype, tol=1e-8 if dtype == torch.float64 else 1e-3)
        _close(dA, dA_ref, dtype, tol=1e-8 if dtype == torch.float64 else 1e-3)


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M", [65_536, 70_001])
@pytest.mark.parametrize("layout", ["rows", "columns"])
def test_da_product_over_long_M(dtype, M, layout):
    """dA's X V^T over a long M (one GEMM, csrc/autograd.cpp), X in either memory layout: the CPU's dA, and no
    host synchronisation."""
    g = make_generator(60)
    X, A = _problem(48, 8, M, dtype, g)
    if layout == "columns":
        X = X.T.contiguous().T
    W = torch.randn(8, M, generator=g, dtype=torch.float64).to(dtype)
    _, _, dA_ref = _grads(X, A, W, "cpu")
    Xg, Ag, Wg = X.cuda(), A.cuda().requires_grad_(True), W.cuda()
    S = nnls(Xg, Ag)
    torch.cuda.synchronize()
    with ops.validation(False):
        torch.cuda.set_sync_debug_mode("error")
        try:
            (S * Wg).sum().backward()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    _close(Ag.grad.cpu(), dA_ref, dtype, tol=1e-8 if dtype == torch.float64 else 1e-3)


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_support_solve_matches_cpu_including_singular_supports(dtype):
    g = make_generator(11)
    base = torch.rand(50, 6, generator=g, dtype=torch.float64)
    A = torch.cat([base, base[:, :2], torch.zeros(50, 1, dtype=torch.float64)], 1).to(dtype)  # duplicates, zero
    S = torch.rand(2, 9, 400, generator=g, dtype=torch.float64)
    S[S < 0.4] = 0
    S = S.to(dtype)
    grad = torch.randn(S.shape, generator=g, dtype=torch.float64).to(dtype)
    for args in ((grad, A, S), (grad[0], A, S[0]), (grad, torch.stack([A, A.flip(1)]), S)):
        want = torch.ops.neuralnmf.support_solve(*args)
        got = torch.ops.neuralnmf.support_solve(*(t.cuda() for t in args)).cpu()
        _close(got, want, dtype)


@gpu
def test_support_solve_strided_many_columns():
    g = make_generator(41)
    A = torch.rand(90, 40, generator=g, dtype=torch.float64)
    S = torch.rand(50_001, 40, generator=g, dtype=torch.float64).T  # (k, M) with strides (1, k)
    S[S < 0.5] = 0
    grad = torch.randn(50_001, 40, generator=g, dtype=torch.float64).T
    want = torch.ops.neuralnmf.support_solve(grad, A, S)
    got = torch.ops.neuralnmf.support_solve(grad.cuda(), A.cuda(), S.cuda())
    assert got.stride() == S.stride()
    _close(got.cpu(), want, torch.float64)


@gpu
def test_gradcheck_on_cuda():
    g = make_generator(12)
    A = torch.rand(10, 4, generator=g, dtype=torch.float64) + 0.1 * torch.eye(10, 4, dtype=torch.float64)
    S = torch.where(torch.rand(4, 5, generator=g) < 0.5, 0.5 + torch.rand(4, 5, generator=g, dtype=torch.float64), 0.0)
    Y = torch.where(S > 0, 0.0, 0.5 + torch.rand(4, 5, generator=g, dtype=torch.float64))
    X = A @ S - A @ torch.linalg.solve(A.T @ A, Y)  # strictly complementary: a step never changes the support
    Xg, Ag = X.cuda().requires_grad_(True), A.cuda().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, a: nnls(x, a), (Xg, Ag), eps=1e-6, atol=1e-6, rtol=1e-5)


# --- torch integration ---------------------------------------------------------------------------------------


@gpu
@pytest.mark.parametrize("requires_grad", [False, True])
def test_opcheck_on_cuda(requires_grad):
    g = make_generator(13)
    for dtype in DTYPES:
        A = torch.rand(12, 4, generator=g, dtype=dtype).cuda()
        X = torch.rand(12, 9, generator=g, dtype=dtype).cuda()
        samples = [
            (X, A),
            (X.expand(2, 12, 9).contiguous(), A),
            (torch.rand(2, 12, 5, dtype=dtype, device="cuda"), torch.rand(2, 12, 3, dtype=dtype, device="cuda")),
            (X, A, torch.rand(4, 9, device="cuda") > 0.5),
        ]
        for args in samples:
            args = tuple(a.clone().requires_grad_(requires_grad) if i < 2 else a for i, a in enumerate(args))
            torch.library.opcheck(torch.ops.neuralnmf.nnls.default, args)
    S = nnls(torch.rand(2, 12, 9, dtype=torch.float64, device="cuda"), torch.rand(12, 4, dtype=torch.float64,
                                                                                   device="cuda"))
    grad = torch.randn_like(S)
    torch.library.opcheck(torch.ops.neuralnmf.support_solve.default, (grad, torch.rand(12, 4, dtype=torch.float64,
                                                                                      device="cuda"), S))


@gpu
def test_torch_compile_reduce_overhead_equals_eager():
    """CUDA graphs capture the kernels on torch's stream: they must launch on the current stream and never sync."""
    torch._dynamo.reset()
    g = make_generator(14)
    X0, A0 = _problem(64, 8, 200, torch.float32, g)
    X0, A0 = X0.cuda(), A0.cuda()

    def step(X, A):
        S = nnls(X, A)
        return ((X - A @ S) ** 2).sum() + S.sum()

    compiled = torch.compile(step, mode="reduce-overhead")
    Xe, Ae = X0.clone().requires_grad_(True), A0.clone().requires_grad_(True)
    le = step(Xe, Ae)
    le.backward()
    for _ in range(3):  # warm-up, recording, replay
        torch.compiler.cudagraph_mark_step_begin()
        Xc, Ac = X0.clone().requires_grad_(True), A0.clone().requires_grad_(True)
        lc = compiled(Xc, Ac)
        lc.backward()
        torch.testing.assert_close(lc.detach().clone(), le.detach(), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(Xc.grad, Xe.grad, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(Ac.grad, Ae.grad, rtol=1e-4, atol=1e-5)


@gpu
@pytest.mark.parametrize("layout", ["shared", "batched"])
def test_no_host_synchronisation_without_validation(layout):
    g = make_generator(15)
    batch = () if layout == "shared" else (3,)
    X, A = _problem(64, 16, 500, torch.float32, g, batch=batch)
    X, A = X.cuda().requires_grad_(True), A.cuda().requires_grad_(True)
    W = torch.randn(*batch, 16, 500, device="cuda")
    init = torch.rand(*batch, 16, 500, device="cuda") > 0.5
    nnls(X, A)  # first call: lazy initialisation (cuBLAS handles, ...) may synchronise
    torch.cuda.synchronize()
    with ops.validation(False):
        torch.cuda.set_sync_debug_mode("error")
        try:
            S = nnls(X, A)
            (S * W).sum().backward()
            nnls(X.detach(), A.detach(), init=init)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    AtX = (A.detach().mT @ X.detach()).requires_grad_(True)
    nnls_from_products(AtX, A)
    torch.cuda.synchronize()
    with ops.validation(False):
        torch.cuda.set_sync_debug_mode("error")
        try:
            S = nnls_from_products(AtX, A)
            (S * W).sum().backward()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    torch.cuda.set_sync_debug_mode("error")
    try:
        with pytest.raises(RuntimeError):  # validation on reads info back: the mode does catch syncs
            nnls(X.detach(), A.detach())
    finally:
        torch.cuda.set_sync_debug_mode(0)
