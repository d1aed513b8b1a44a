"""The CUDA kernels without a GPU: they compile, and their device code reproduces the CPU kernels.

1. Every ``.cu`` file under ``csrc/`` compiles with nvcc for sm_90 (Hopper) against the installed torch's
   headers, with the flags ``setup.py`` and torch's ``CUDAExtension`` use (compile only: a CPU-only torch has
   no CUDA libraries to link). Skipped when nvcc is not found.
2. The device code proper (``csrc/cuda/*.cuh``: Gram preparation, the per-column solves of the lane-group
   kernels, the one-thread-per-column solves of the columns those defer, the Jacobi pseudo-inverse) is
   host+device code. ``tests/cuda_host_harness.cpp`` compiles it with the host C++ compiler into a small
   library, driven from Python exactly as the ``.cu`` files drive it (``_emulated_nnls`` mirrors
   ``csrc/cuda/nnls_kernel.cu``): each column by a lane group whose lanes run one after another
   (``csrc/cuda/lane_group_host.h``, which also checks that the lanes call the same collectives), then the
   deferred columns one "thread" at a time. It must reproduce the CPU kernels, with any number of lanes per
   group giving the same bits. What this cannot see: the launches, shared-memory staging and column
   distribution of the kernels, warp shuffles themselves, FMA contraction, the CUDA-only branches of ``Team``
   and cuBLAS; those are left to ``tests/test_cuda.py`` on a GPU. Skipped when no C++ compiler is found.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import glob
import os
import shutil
import subprocess

import pytest
import torch
import torch.utils.cpp_extension as cpp_extension
from conftest import make_generator, matrix_with_condition

from neuralnmf import nnls

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSRC = os.path.join(ROOT, "csrc")
CU_FILES = sorted(glob.glob(os.path.join(CSRC, "**", "*.cu"), recursive=True))


# --- 1. nvcc compile check -----------------------------------------------------------------------------------


def _nvcc():
    found = shutil.which("nvcc")
    if found:
        return found
    for base in (os.environ.get("CUDA_HOME"), cpp_extension.CUDA_HOME, "/usr/local/cuda"):
        if base and os.path.exists(os.path.join(base, "bin", "nvcc")):
            return os.path.join(base, "bin", "nvcc")
    return None


def _nvcc_command(nvcc: str, source: str, output: str) -> list[str]:
    """The command setup.py's CUDAExtension would run for `source`, for sm_90, compile only."""
    includes = [f"-I{p}" for p in cpp_extension.include_paths()] + [f"-I{CSRC}"]
    flags = list(getattr(cpp_extension, "COMMON_NVCC_FLAGS", ["--expt-relaxed-constexpr"]))
    flags += ["-O3", "-DNDEBUG", "--expt-relaxed-constexpr", "-std=c++17"]  # setup.py's nvcc flags
    flags += ["--compiler-options", "-fPIC", "-gencode=arch=compute_90,code=sm_90"]
    flags += [
        "-DTORCH_API_INCLUDE_EXTENSION_H",
        "-DTORCH_EXTENSION_NAME=_C",
        f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}",
        "-DWITH_CUDA",
    ]
    # A CPU-only torch wheel ships the c10/cuda headers but not their build-generated config header; it only
    # defines C10_CUDA_BUILD_SHARED_LIBS, which matters on Windows. CUDA wheels have it and skip this.
    if not any(os.path.exists(os.path.join(p, "c10", "cuda", "impl", "cuda_cmake_macros.h"))
               for p in cpp_extension.include_paths()):
        flags.append("-DC10_CUDA_NO_CMAKE_CONFIGURE_FILE")
    return [nvcc, "-c", source, "-o", output] + flags + includes


@pytest.fixture(scope="module")
def nvcc_results(tmp_path_factory):
    nvcc = _nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found (PATH, CUDA_HOME, /usr/local/cuda)")
    out = tmp_path_factory.mktemp("nvcc")

    def compile_one(source):
        obj = os.path.join(out, os.path.basename(source) + ".o")
        run = subprocess.run(_nvcc_command(nvcc, source, obj), capture_output=True, text=True, timeout=900)
        return source, run.returncode, run.stdout + run.stderr

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        return {source: (rc, log) for source, rc, log in pool.map(compile_one, CU_FILES)}


def test_there_are_cuda_sources():
    names = {os.path.relpath(f, CSRC) for f in CU_FILES}
    assert {"cuda/nnls_kernel.cu", "cuda/support_solve_kernel.cu"} <= names, names


@pytest.mark.parametrize("source", CU_FILES, ids=[os.path.relpath(f, CSRC) for f in CU_FILES])
def test_cuda_source_compiles_for_sm90(source, nvcc_results):
    rc, log = nvcc_results[source]
    assert rc == 0, f"nvcc failed on {os.path.relpath(source, ROOT)}:\n{log[-8000:]}"


# The compile-time choices of the k <= 32 kernels (setup.py's NEURALNMF_CUDA_PACK and NEURALNMF_CUDA_MIN_BLOCKS,
# csrc/cuda/group_kernels.cuh), which the default build does not instantiate: they compile, and a value outside
# the choices is refused at compile time.
K32_SOURCE = os.path.join(CSRC, "cuda", "group_kernels_k32.cu")


@pytest.mark.slow
@pytest.mark.parametrize("pack, min_blocks, ok", [("1", "6", True), ("2", "1", True), ("3", "4", False)])
def test_k32_kernels_compile_with_each_build_choice(pack, min_blocks, ok, tmp_path):
    nvcc = _nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found (PATH, CUDA_HOME, /usr/local/cuda)")
    command = _nvcc_command(nvcc, K32_SOURCE, str(tmp_path / "k32.o"))
    command += [f"-DNEURALNMF_CUDA_PACK={pack}", f"-DNEURALNMF_CUDA_MIN_BLOCKS={min_blocks}"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if ok:
        assert run.returncode == 0, (run.stdout + run.stderr)[-8000:]
    else:
        assert run.returncode != 0 and "NEURALNMF_CUDA_PACK is 1, 2" in run.stdout + run.stderr


# --- 2. the device code, run on the host ---------------------------------------------------------------------

HARNESS = os.path.join(ROOT, "tests", "cuda_host_harness.cpp")


def _cxx():
    return shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++") or shutil.which("clang++")


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    cxx = _cxx()
    if cxx is None:
        pytest.skip("no C++ compiler")
    lib = os.path.join(tmp_path_factory.mktemp("emu"), "harness.so")
    cmd = [cxx, "-O2", "-std=c++17", "-shared", "-fPIC", "-pthread", "-Wall", "-Werror", "-Wno-unused-function",
           "-Wno-unknown-pragmas", f"-I{CSRC}", HARNESS, "-o", lib]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"the device headers do not compile as host code:\n{run.stderr[-8000:]}"
    lib = ctypes.CDLL(lib)
    lib.emu_nnls.restype = ctypes.c_int64
    lib.emu_support.restype = ctypes.c_int64
    lib.emu_dictionary_scale.restype = ctypes.c_double
    return lib


def _p(t):
    return ctypes.c_void_p(t.data_ptr()) if t is not None else ctypes.c_void_p(0)


def _strides(t):
    """The 3 strides of a 3-D tensor, as the int64 array the harness takes (zeros for None)."""
    return (ctypes.c_int64 * 3)(*(t.stride() if t is not None else (0, 0, 0)))


I64, INT = ctypes.c_int64, ctypes.c_int

# The lane-group configuration of the device kernels (csrc/cuda/group_kernels.cuh) for rank k: (lanes per
# group, variables per lane); k > 256 goes to the one-thread-per-column kernel alone (lanes 0). The k <= 32
# class defaults to two columns per warp, (16, 2), for float32 results and to (32, 1) for float64 ones
# (setup.py's NEURALNMF_CUDA_PACK builds either); both give the same bits.
DEVICE_CONFIGS = ((8, (8, 1)), (16, (16, 1)), (32, (16, 2)), (64, (32, 2)), (128, (32, 4)), (256, (32, 8)))


def device_config(k, dtype=torch.float32):
    if 16 < k <= 32 and dtype == torch.float64:
        return (32, 1)
    return next((cfg for kmax, cfg in DEVICE_CONFIGS if k <= kmax), (0, 0))


class _Err:
    def __init__(self):
        self.buf = ctypes.create_string_buffer(512)
        self.args = (self.buf, INT(512))

    def check(self, ret):
        assert ret >= 0, f"lane-group emulation failed: {self.buf.value.decode()}"
        return ret


def _emulated_gram(emu, A, threads=0):
    """make_device_gram (csrc/cuda/gram_prepare.cu) on the host. A: (N, k) or (B, N, k). threads > 0: the
    Gram kernel's block routine runs on that many host threads, else on one."""
    shared = A.dim() == 2
    A3 = (A.unsqueeze(0) if shared else A).double().contiguous()
    ng, N, k = A3.shape
    amax = A3.abs().amax((1, 2)) if A3.numel() else torch.zeros(ng, dtype=torch.float64)
    a_scale = torch.tensor([emu.emu_dictionary_scale(ctypes.c_double(v)) for v in amax.tolist()], dtype=torch.float64)
    flags = torch.isfinite(amax).to(torch.int32).contiguous()  # kGramAFinite
    As = A3 * a_scale.view(ng, 1, 1)
    sq = (As * As).sum(1)
    d = torch.where(sq > 0, sq.sqrt().reciprocal(), torch.zeros_like(sq)).contiguous()
    Ad = (As * d.unsqueeze(1)).contiguous()
    G = torch.bmm(Ad.transpose(1, 2), Ad).contiguous()
    L, H = torch.empty_like(G), torch.zeros_like(G)
    if threads > 0:
        emu.emu_prepare_gram_threads(_p(G), _p(L), _p(H), _p(d), _p(flags), I64(ng), INT(k), INT(threads))
    else:
        emu.emu_prepare_gram(_p(G), _p(L), _p(H), _p(d), _p(flags), I64(ng), INT(k))
    row_scale = (a_scale.view(ng, 1) * d).contiguous()  # nnls_rhs: b_i = a_scale d_i (A^T x)_i
    return dict(shared=shared, Ad=Ad, G=G, H=H, d=d, a_scale=a_scale, flags=flags, k=k, N=N, row_scale=row_scale)


def _gram_args(g):
    return (INT(g["k"]), I64(g["N"]), INT(g["shared"]), _p(g["Ad"]), _p(g["G"]), _p(g["H"]), _p(g["d"]),
            _p(g["a_scale"]), _p(g["flags"]))


def _columns(emu, lanes, g, B, row_scale, X3, init3, S, info, M, b0, c0, ln, items, max_iter):
    """One launch's columns: the lane-group pass, then the deferred columns by threads. Returns how many were
    deferred."""
    err = _Err()
    rhs_f64 = int(B.dtype == torch.float64)
    s_f64 = int(S.dtype == torch.float64)
    return err.check(emu.emu_nnls(
        INT(lanes[0]), INT(lanes[1]), INT(rhs_f64), INT(s_f64), *_gram_args(g), _p(B), _strides(B), _p(row_scale),
        _p(X3), _strides(X3), _p(init3), _strides(init3), _p(S), _strides(S), _p(info), I64(M), I64(b0), I64(c0),
        I64(ln), I64(items), I64(max_iter), *err.args))


def _emulated_nnls(emu, X, A, init=None, max_iter=0, chunk=(1, 7), lanes=None, stats=None):
    """nnls_forward_kernel (csrc/cuda/nnls_kernel.cu) on the host, with small chunks (items, columns).
    lanes: (lanes per group, variables per lane), default the device's for k; (0, 0): threads only."""
    batched = X.dim() == 3
    X3 = X if batched else X.unsqueeze(0)  # read in place, any strides
    nb, N, M = X3.shape
    k = A.shape[-1]
    lanes = device_config(k, X.dtype) if lanes is None else lanes
    S = torch.full((nb, k, M), -99.0, dtype=X.dtype)
    info = torch.full((nb, M), 99, dtype=torch.int32)
    g = _emulated_gram(emu, A)
    Ad_g = g["Ad"].to(X.dtype)  # float32 data: a float32 GEMM, whose B the kernels read as it is
    init3 = None if init is None else (init if batched else init.unsqueeze(0))
    items_per, cols_per = chunk if nb > 1 else (1, chunk[1])
    deferred = 0
    for b0 in range(0, nb, items_per):
        items = min(items_per, nb - b0)
        for c0 in range(0, M, cols_per):
            ln = min(cols_per, M - c0)
            Xc = X3[b0 : b0 + items, :, c0 : c0 + ln]
            AdT = Ad_g[0].T if g["shared"] else Ad_g[b0 : b0 + items].transpose(1, 2)
            B = torch.matmul(AdT, Xc).contiguous()
            deferred += _columns(emu, lanes, g, B, None, X3, init3, S, info, M, b0, c0, ln, items, max_iter)
    if stats is not None:
        stats["deferred"] = deferred
    return (S, info) if batched else (S[0], info[0])


def _emulated_nnls_rhs(emu, AtX, A, init=None, max_iter=0, lanes=None, stats=None):
    """nnls_rhs_kernel (csrc/cuda/nnls_kernel.cu) on the host: the products read in place, S in their layout."""
    batched = AtX.dim() == 3
    B3 = AtX if batched else AtX.unsqueeze(0)
    nb, k, M = B3.shape
    lanes = device_config(k, AtX.dtype) if lanes is None else lanes
    S = torch.empty_like(AtX).fill_(-99.0)
    S3 = S if batched else S.unsqueeze(0)
    info = torch.full((nb, M), 99, dtype=torch.int32)
    g = _emulated_gram(emu, A)
    init3 = None if init is None else (init if batched else init.unsqueeze(0))
    deferred = _columns(emu, lanes, g, B3, g["row_scale"], None, init3, S3, info, M, 0, 0, M, nb, max_iter)
    if stats is not None:
        stats["deferred"] = deferred
    return (S, info) if batched else (S, info[0])


def _emulated_support_solve(emu, grad, A, S, lanes=None, stats=None):
    """support_solve_kernel (csrc/cuda/support_solve_kernel.cu) on the host: V in S's layout."""
    batched = S.dim() == 3
    S3 = S if batched else S.unsqueeze(0)
    G3 = grad if batched else grad.unsqueeze(0)
    nb, k, M = S3.shape
    lanes = device_config(k, S.dtype) if lanes is None else lanes
    V = torch.empty_like(S).fill_(-99.0)
    V3 = V if batched else V.unsqueeze(0)
    g = _emulated_gram(emu, A)
    err = _Err()
    deferred = err.check(emu.emu_support(
        INT(lanes[0]), INT(lanes[1]), INT(int(S.dtype == torch.float64)), INT(k), INT(g["shared"]), _p(g["G"]),
        _p(g["H"]), _p(g["d"]), _p(g["a_scale"]), _p(g["flags"]), _p(G3), _strides(G3), _p(S3), _strides(S3),
        _p(V3), _strides(V3), I64(M), I64(nb), *err.args))
    if stats is not None:
        stats["deferred"] = deferred
    return V


def _cpu(X, A, init=None, max_iter=0):
    return torch.ops.neuralnmf.nnls(X, A, init, max_iter)


def _assert_same(got, want, rtol, atol):
    (S, info), (S_ref, info_ref) = got, want
    assert torch.equal(info, info_ref), (info, info_ref)
    torch.testing.assert_close(S, S_ref, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("k", [1, 4, 13, 32, 40, 64, 100, 200, 260])
def test_forward_matches_cpu(emu, dtype, k):
    g = make_generator(100 + k)
    N = max(60, 2 * k)
    A = torch.rand(N, k, generator=g, dtype=dtype)
    X = torch.randn(N, 23, generator=g, dtype=dtype)
    tol = dict(rtol=1e-9, atol=1e-12) if dtype == torch.float64 else dict(rtol=2e-4, atol=1e-5)
    stats = {}
    _assert_same(_emulated_nnls(emu, X, A, stats=stats), _cpu(X, A), **tol)
    # the lane groups solve these (k > 256 is the thread kernel's alone)
    assert stats["deferred"] == (23 if k > 256 else 0)


@pytest.mark.parametrize("k,configs", [(6, [(1, 8), (2, 4), (4, 2), (8, 1)]), (16, [(4, 4), (16, 1), (8, 4)]),
                                       (30, [(32, 1), (16, 2), (8, 4)]), (64, [(32, 2), (16, 8), (32, 4)])])
def test_any_number_of_lanes_gives_the_same_bits(emu, k, configs):
    """The lanes of a group share the work, never the order of any sum: S is the same to the bit whatever the
    group size, and equal to the CPU kernel's up to rounding."""
    g = make_generator(200 + k)
    A = torch.rand(3 * k, k, generator=g, dtype=torch.float64)
    X = torch.randn(3 * k, 40, generator=g, dtype=torch.float64)
    init = torch.rand(k, 40, generator=g) > 0.5
    results = [_emulated_nnls(emu, X, A, init=init, lanes=cfg, chunk=(1, 40)) for cfg in configs]
    for S, info in results[1:]:
        assert torch.equal(S, results[0][0]) and torch.equal(info, results[0][1])
    _assert_same(results[0], _cpu(X, A, init), rtol=1e-9, atol=1e-12)


def test_thread_kernel_alone_matches_cpu(emu):
    """The one-thread-per-column kernel (every column deferred) gives the CPU's answer and info by itself."""
    g = make_generator(16)
    A = torch.rand(80, 24, generator=g, dtype=torch.float64)
    X = torch.randn(80, 31, generator=g, dtype=torch.float64)
    stats = {}
    _assert_same(_emulated_nnls(emu, X, A, lanes=(0, 0), stats=stats), _cpu(X, A), rtol=1e-12, atol=1e-14)
    assert stats["deferred"] == 31


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("k", [5, 32, 70])
def test_products_forward_matches_cpu(emu, dtype, k):
    """nnls_rhs: the caller's products A^T X read in place (here transposed, as the sparse path forms them),
    rows scaled on the fly, S in their layout."""
    g = make_generator(300 + k)
    A = torch.rand(2 * k + 10, k, generator=g, dtype=torch.float64)
    A[:, 1] = 0  # a zero column: its row of the products is ignored
    X = torch.rand(2 * k + 10, 37, generator=g, dtype=torch.float64)
    AtX = (X.T @ A).to(dtype).T  # (k, M) with strides (1, k)
    A = A.to(dtype)
    init = torch.rand(k, 37, generator=g) > 0.5
    S_ref, info_ref = torch.ops.neuralnmf.nnls_rhs(AtX, A, init, 0)
    stats = {}
    S, info = _emulated_nnls_rhs(emu, AtX, A, init=init, stats=stats)
    assert S.stride() == AtX.stride()
    tol = dict(rtol=1e-9, atol=1e-12) if dtype == torch.float64 else dict(rtol=2e-4, atol=1e-5)
    _assert_same((S, info), (S_ref, info_ref), **tol)
    assert stats["deferred"] == 0 and bool((S[1] == 0).all())
    batched = torch.stack([AtX, AtX.flip(1)])
    S_ref, info_ref = torch.ops.neuralnmf.nnls_rhs(batched, torch.stack([A, A]), None, 0)
    _assert_same(_emulated_nnls_rhs(emu, batched, torch.stack([A, A])), (S_ref, info_ref), **tol)


def test_products_overflow_and_non_finite(emu):
    """Finite products whose scaling a_scale d_i overflows are rescaled per column by a thread: the answer is
    the one at a safe scale, scaled back (S is positively homogeneous in A^T X). NaN/Inf columns get -2."""
    g = make_generator(17)
    A = 0.1 * torch.rand(20, 5, generator=g, dtype=torch.float64)  # column norms < 1: a_scale d_i ~ 4
    AtX = 1e300 * torch.rand(5, 9, generator=g, dtype=torch.float64)
    AtX[0, ::2] = -1.7e308
    AtX[3, 1] = -1.5e308
    assert not bool(torch.isfinite(AtX / A.norm(dim=0)[:, None]).all())
    safe, _ = torch.ops.neuralnmf.nnls_rhs(AtX * 2.0**-600, A, None, 0)
    stats = {}
    S, info = _emulated_nnls_rhs(emu, AtX, A, stats=stats)
    assert bool((info == 0).all()) and stats["deferred"] == 6
    torch.testing.assert_close(S, safe * 2.0**600, rtol=1e-9, atol=1e-12 * 2.0**600)
    AtX = A.T @ torch.rand(20, 9, generator=g, dtype=torch.float64)
    bad = AtX.clone()
    bad[2, 4] = float("nan")
    bad[0, 7] = float("inf")
    S, info = _emulated_nnls_rhs(emu, bad, A)
    assert info.tolist() == [0, 0, 0, 0, -2, 0, 0, -2, 0]
    assert bool(S[:, [4, 7]].isnan().all()) and bool(S[:, [0, 1, 2, 3, 5, 6, 8]].isfinite().all())


def test_deferred_columns_make_the_cpu_decisions(emu):
    """What the groups leave (the iteration bound here) is redone from the start by a thread: same info."""
    g = make_generator(18)
    A = matrix_with_condition(40, 20, 1e3, g).abs()
    X = torch.randn(40, 25, generator=g, dtype=torch.float64)
    for max_iter in (1, 2, 3, 4, 0):
        stats = {}
        got = _emulated_nnls(emu, X, A, max_iter=max_iter, stats=stats)
        want = _cpu(X, A, max_iter=max_iter)
        _assert_same(got, want, rtol=1e-9, atol=1e-12)
        assert stats["deferred"] >= int((want[1] != 0).sum())  # every column the CPU gave to Lawson-Hanson
        assert stats["deferred"] == 0 if max_iter == 0 else stats["deferred"] > 0


@pytest.mark.parametrize("L", [1, 2, 8, 32])
def test_lane_emulator_collectives(emu, L):
    g = make_generator(19 + L)
    values = torch.randn(L, generator=g, dtype=torch.float64)
    out = torch.zeros(L, 4, dtype=torch.float64)
    err = _Err()
    err.check(emu.emu_lanes(INT(L), _p(values), INT(0), _p(out), *err.args))
    level = values.clone()  # the xor butterfly, level by level
    o = L // 2
    while o:
        level = level + level[torch.arange(L) ^ o]
        o //= 2
    assert torch.equal(out[:, 0], level) and bool((out[:, 0] == out[0, 0]).all())
    torch.testing.assert_close(out[0, 0], values.sum(), rtol=1e-14, atol=1e-14)
    assert bool((out[:, 1] == values.max()).all())
    assert bool((out[:, 2] == sum(1 << l for l in range(L) if values[l] > 0)).all())
    assert bool((out[:, 3] == values[L - 1]).all())


@pytest.mark.parametrize("L", [2, 8, 32])
def test_lane_emulator_reports_divergent_collectives(emu, L):
    values = torch.arange(L, dtype=torch.float64)
    out = torch.zeros(L, 4, dtype=torch.float64)
    err = _Err()
    assert emu.emu_lanes(INT(L), _p(values), INT(1), _p(out), *err.args) == -1
    assert "different collectives" in err.buf.value.decode()


def test_forward_ill_conditioned_and_warm_start(emu):
    g = make_generator(5)
    A = matrix_with_condition(50, 12, 1e4, g).abs()
    X = torch.randn(50, 30, generator=g, dtype=torch.float64)
    S_cpu, info_cpu = _cpu(X, A)
    _assert_same(_emulated_nnls(emu, X, A), (S_cpu, info_cpu), rtol=1e-7, atol=1e-10)
    init = torch.rand(12, 30, generator=g) > 0.5
    _assert_same(_emulated_nnls(emu, X, A, init=init), _cpu(X, A, init), rtol=1e-7, atol=1e-10)
    S_warm, info_warm = _emulated_nnls(emu, X, A, init=S_cpu > 0)
    torch.testing.assert_close(S_warm, S_cpu, rtol=1e-7, atol=1e-10)


def test_forward_degenerate_dictionaries(emu):
    g = make_generator(6)
    A = torch.rand(20, 6, generator=g, dtype=torch.float64)
    X = torch.randn(20, 17, generator=g, dtype=torch.float64)
    zero_cols = A.clone()
    zero_cols[:, [1, 4]] = 0
    dup = torch.cat([A[:, :4], A[:, :2]], 1)  # G singular: Lawson-Hanson for every column
    wide = torch.rand(5, 9, generator=g, dtype=torch.float64)  # k > N
    for A_ in (zero_cols, dup, torch.zeros_like(A)):
        S, info = _emulated_nnls(emu, X, A_)
        S_cpu, info_cpu = _cpu(X, A_)
        assert torch.equal(info, info_cpu)
        torch.testing.assert_close(A_ @ S, A_ @ S_cpu, rtol=1e-9, atol=1e-10)  # S itself is not unique
    S, info = _emulated_nnls(emu, X[:5], wide)
    S_cpu, _ = _cpu(X[:5], wide)
    torch.testing.assert_close(wide @ S, wide @ S_cpu, rtol=1e-9, atol=1e-10)
    S, _ = _emulated_nnls(emu, X, zero_cols)
    assert bool((S[[1, 4]] == 0).all())


def _rhs_overflows(emu, X, A):
    """Whether B = Ad^T X, as the GEMM of nnls_kernel.cu computes it, overflows."""
    Ad = _emulated_gram(emu, A)["Ad"][0].to(X.dtype)
    return not bool(torch.isfinite(Ad.T @ X).all())


@pytest.mark.parametrize("scale", [1e-200, 1e200, 1e308])
def test_forward_extreme_scales_repaired_per_column(emu, scale):
    """1e308: B overflows and the column re-reads X; 1e+-200: u is formed in the thread instead of from U."""
    g = make_generator(7)
    A = torch.rand(30, 5, generator=g, dtype=torch.float64)
    X = torch.rand(30, 11, generator=g, dtype=torch.float64)
    S_ref, _ = _cpu(X, A)
    assert _rhs_overflows(emu, X * scale, A) == (scale > 1e300)
    S, info = _emulated_nnls(emu, X * scale, A)
    assert bool((info >= 0).all())
    torch.testing.assert_close(S / scale, S_ref, rtol=1e-9, atol=1e-12)
    S, info = _emulated_nnls(emu, X, A * scale)
    torch.testing.assert_close(S * scale, S_ref, rtol=1e-9, atol=1e-12)


def test_forward_float32_overflow_of_the_float32_gemm(emu):
    g = make_generator(8)
    A = torch.rand(30, 5, generator=g, dtype=torch.float32)
    X = torch.rand(30, 11, generator=g, dtype=torch.float32)
    S_ref, _ = _cpu(X, A)
    assert _rhs_overflows(emu, X * 3e38, A)
    S, info = _emulated_nnls(emu, X * 3e38, A)
    assert bool((info >= 0).all())
    torch.testing.assert_close(S.double() / 3e38, S_ref.double(), rtol=1e-4, atol=1e-6)


def test_forward_batched(emu):
    g = make_generator(9)
    A = torch.rand(3, 15, 4, generator=g, dtype=torch.float64)
    X = torch.randn(3, 15, 10, generator=g, dtype=torch.float64)
    init = torch.rand(3, 4, 10, generator=g) > 0.3
    _assert_same(_emulated_nnls(emu, X, A, init=init, chunk=(2, 4)), _cpu(X, A, init), rtol=1e-9, atol=1e-12)
    _assert_same(_emulated_nnls(emu, X, A[0], chunk=(2, 10)), _cpu(X, A[0]), rtol=1e-9, atol=1e-12)


def test_forward_max_iter_reports_not_converged(emu):
    g = make_generator(10)
    A = matrix_with_condition(40, 20, 1e3, g).abs()
    X = torch.randn(40, 25, generator=g, dtype=torch.float64)
    _assert_same(_emulated_nnls(emu, X, A, max_iter=1), _cpu(X, A, max_iter=1), rtol=1e-9, atol=1e-12)


def test_forward_marks_non_finite_columns(emu):
    g = make_generator(11)
    A = torch.rand(10, 3, generator=g, dtype=torch.float64)
    X = torch.rand(10, 6, generator=g, dtype=torch.float64)
    X[2, 1] = float("nan")
    X[0, 4] = float("inf")
    A0 = A.clone()
    A0[2] = 0  # a NaN in a row A ignores still reaches B (0 * NaN)
    X[2, 5] = float("nan")
    for A_ in (A, A0):
        S, info = _emulated_nnls(emu, X, A_)
        assert info.tolist() == [0, -2, 0, 0, -2, -2]
        assert bool(S[:, [1, 4, 5]].isnan().all()) and bool(S[:, [0, 2, 3]].isfinite().all())
    A_bad = A.clone()
    A_bad[0, 0] = float("nan")
    S, info = _emulated_nnls(emu, torch.rand(10, 6, dtype=torch.float64), A_bad)
    assert bool((info == -2).all()) and bool(S.isnan().all())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_support_solve_matches_cpu(emu, dtype):
    g = make_generator(12)
    A = torch.rand(3, 25, 7, generator=g, dtype=dtype)
    S, _ = _cpu(torch.randn(3, 25, 13, generator=g, dtype=dtype), A)
    grad = torch.randn(S.shape, generator=g, dtype=dtype)
    tol = dict(rtol=1e-9, atol=1e-11) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-5)
    want = torch.ops.neuralnmf.support_solve(grad, A, S)
    torch.testing.assert_close(_emulated_support_solve(emu, grad, A, S), want, **tol)
    want = torch.ops.neuralnmf.support_solve(grad[0], A[0], S[0])
    torch.testing.assert_close(_emulated_support_solve(emu, grad[0], A[0], S[0]), want, **tol)


@pytest.mark.parametrize("k", [6, 30, 64, 120])
def test_support_solve_groups_both_sides_and_layouts(emu, k):
    """Supports larger and smaller than k / 2 (dual and passive side), a transposed S and grad, any lanes."""
    g = make_generator(20 + k)
    A = torch.rand(2 * k + 5, k, generator=g, dtype=torch.float64)
    S = torch.rand(60, k, generator=g, dtype=torch.float64).T  # (k, M), strides (1, k)
    S[:, :30] = torch.where(S[:, :30] < 0.8, S[:, :30], 0.0)  # large supports
    S[:, 30:] = torch.where(S[:, 30:] < 0.2, S[:, 30:], 0.0)  # small ones
    S[:, 5] = 0.0
    grad = torch.randn(60, k, generator=g, dtype=torch.float64).T
    want = torch.ops.neuralnmf.support_solve(grad, A, S)
    for lanes in (None, (16, 8)):
        stats = {}
        got = _emulated_support_solve(emu, grad, A, S, lanes=lanes, stats=stats)
        assert got.stride() == S.stride() and stats["deferred"] == 0
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-11)


def test_support_solve_singular_support_uses_the_pseudo_inverse(emu):
    g = make_generator(13)
    base = torch.rand(20, 3, generator=g, dtype=torch.float64)
    A = torch.cat([base, base[:, :1], torch.zeros(20, 1, dtype=torch.float64)], 1)  # duplicate + zero column
    S = torch.rand(5, 9, generator=g, dtype=torch.float64)
    S[:, ::2] = 0.7  # every even column: support holds both duplicates (and the zero column)
    S[[0, 3, 4], 1::2] = 0.0  # odd columns: supports {1, 2}, small enough for a group without H
    grad = torch.randn(S.shape, generator=g, dtype=torch.float64)
    want = torch.ops.neuralnmf.support_solve(grad, A, S)
    stats = {}
    torch.testing.assert_close(_emulated_support_solve(emu, grad, A, S, stats=stats), want, rtol=1e-8, atol=1e-10)
    assert stats["deferred"] == 5  # the singular supports are the threads' (pseudo-inverse)


@pytest.mark.parametrize("n,rank", [(1, 1), (4, 4), (6, 3), (12, 5), (30, 30), (30, 29)])
def test_jacobi_pseudo_inverse(emu, n, rank):
    g = make_generator(n * 100 + rank)
    F = torch.randn(n, rank, generator=g, dtype=torch.float64)
    G = (F @ F.T).contiguous()
    passive = (torch.rand(n, generator=g) > 0.2).to(torch.uint8)
    passive[0] = 1
    r = torch.randn(n, generator=g, dtype=torch.float64)
    v = torch.full((n,), 7.0, dtype=torch.float64)
    emu.emu_pinv(_p(G), INT(n), _p(passive), _p(r), _p(v))
    P = passive.bool()
    want = torch.zeros(n, dtype=torch.float64)
    want[P] = torch.linalg.pinv(G[P][:, P], hermitian=True) @ r[P]
    torch.testing.assert_close(v, want, rtol=1e-7, atol=1e-9 * (1 + want.abs().max().item()))


@pytest.mark.parametrize("threads", [0, 3, 32])
def test_gram_inverse_and_flags(emu, threads):
    g = make_generator(14)
    A = torch.rand(3, 40, 9, generator=g, dtype=torch.float64)
    A[1, :, 3] = A[1, :, 5]  # singular: no H
    A[0, :, 2] = 0  # zero column: identity row and column
    A[2, 0, 0] = float("inf")
    gram = _emulated_gram(emu, A, threads)
    assert gram["flags"].tolist() == [3, 1, 0]
    G, H = gram["G"][0], gram["H"][0]
    assert G[2, 2] == 1 and bool((G[2, :2] == 0).all())
    torch.testing.assert_close(H @ G, torch.eye(9, dtype=torch.float64), rtol=0, atol=1e-10)
    assert torch.equal(H, H.T)
    assert bool((gram["H"][1:] == 0).all())


@pytest.mark.parametrize("k", [1, 7, 64, 200])
def test_gram_team_of_threads_equals_one_thread(emu, k):
    """The block routine gives bit-identical G^{-1} whatever the team size (each entry has one owner and
    the same summation order)."""
    g = make_generator(15 + k)
    A = matrix_with_condition(max(2 * k, 8), k, 1e3, g).abs()
    one = _emulated_gram(emu, A)
    for threads in (2, 5, 64):
        many = _emulated_gram(emu, A, threads)
        assert torch.equal(many["flags"], one["flags"]) and int(one["flags"][0]) == 3
        assert torch.equal(many["H"], one["H"])


def test_public_op_still_matches_the_emulation_end_to_end(emu):
    """nnls() on the CPU and the emulated CUDA path give the same S for a problem with mixed supports."""
    g = make_generator(15)
    A = torch.rand(64, 32, generator=g, dtype=torch.float64)
    X = torch.rand(64, 40, generator=g, dtype=torch.float64)
    S, info = _emulated_nnls(emu, X, A, chunk=(1, 16))
    torch.testing.assert_close(S, nnls(X, A), rtol=1e-9, atol=1e-12)
