"""The CUDA kernels without a GPU: they compile, and their per-thread device code reproduces the CPU kernels.

1. Every ``.cu`` file under ``csrc/`` compiles with nvcc for sm_90 (Hopper) against the installed torch's
   headers, with the flags ``setup.py`` and torch's ``CUDAExtension`` use (compile only: a CPU-only torch has
   no CUDA libraries to link). Skipped when nvcc is not found.
2. The device code proper (``csrc/cuda/*.cuh``: Gram preparation, the per-column forward and backward solves,
   the Jacobi pseudo-inverse) is host+device code. Compiled by the host C++ compiler into a small library and
   driven from Python exactly as the ``.cu`` files drive it (``_emulated_nnls`` mirrors
   ``csrc/cuda/nnls_kernel.cu``), one "thread" at a time, it must reproduce the CPU kernels. What this cannot
   see: the launches, the CUDA-only branches of ``Team`` (several threads per block) and cuBLAS; those are
   left to ``tests/test_cuda.py`` on a GPU. Skipped when no C++ compiler is found.
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


# --- 2. the device code, run on the host ---------------------------------------------------------------------

HARNESS = r"""
// Runs the host+device code of csrc/cuda/*.cuh on the host: columns one after another, and the block routine
// prepare_gram_item with one thread or with a team of real threads.
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>
#include "cuda/column_device.cuh"

using namespace neuralnmf::cuda;

// __syncthreads() for host threads.
class Barrier {
 public:
  explicit Barrier(int n) : n_(n) {}
  void wait() {
    std::unique_lock<std::mutex> lock(mu_);
    const long gen = gen_;
    if (++count_ == n_) {
      count_ = 0;
      ++gen_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return gen_ != gen; });
    }
  }
 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int n_, count_ = 0;
  long gen_ = 0;
};

struct ThreadTeam {
  int r, n;
  Barrier* barrier;
  int rank() const { return r; }
  int size() const { return n; }
  void sync() const { barrier->wait(); }
};

static GramView gram_view(int k, int64_t N, int shared, const double* Ad, const double* G, const double* H,
                          const double* d, const double* a_scale, const int32_t* flags) {
  return GramView{k, N, shared != 0, Ad, G, H, d, a_scale, flags};
}

struct Scratch {
  std::vector<double> d;
  std::vector<int> i;
  std::vector<uint8_t> b;
  ColumnScratch view;
  Scratch(int64_t cols, int64_t dpc, int64_t k)
      : d(cols * dpc, 12345.0), i(cols * ints_per_col(k), -7), b(cols * bytes_per_col(k), 0xAB) {
    view = ColumnScratch{d.data(), i.data(), b.data(), dpc, ints_per_col(k), bytes_per_col(k)};
  }
};

template <typename T>
static void nnls_chunk(int k, int64_t N, int shared, const double* Ad, const double* G, const double* H,
                       const double* d, const double* a_scale, const int32_t* flags, const double* B,
                       const double* U, const T* X, const bool* init, T* S, int32_t* info, int64_t M, int64_t b0,
                       int64_t c0, int64_t len, int64_t items, int64_t max_iter) {
  Scratch s(items * len, nnls_doubles_per_col(k), k);
  const NnlsChunk<T> a{gram_view(k, N, shared, Ad, G, H, d, a_scale, flags), B, U, X, init, S, info, M, b0, c0,
                       len, items, max_iter, s.view};
  for (int64_t t = 0; t < items * len; ++t) nnls_column(a, t);
}

template <typename T>
static void support_chunk(int k, int shared, const double* G, const double* H, const double* d,
                          const double* a_scale, const int32_t* flags, const T* grad, const T* S, T* V, int64_t M,
                          int64_t b0, int64_t c0, int64_t len, int64_t items) {
  Scratch s(items * len, support_doubles_per_col(k), k);
  const SupportChunk<T> a{gram_view(k, 0, shared, nullptr, G, H, d, a_scale, flags), grad, S, V, M, b0, c0, len,
                          items, s.view};
  for (int64_t t = 0; t < items * len; ++t) support_column(a, t);
}

extern "C" {
double emu_dictionary_scale(double amax) { return dictionary_scale(amax); }

void emu_prepare_gram(double* G, double* L, double* H, const double* d, int32_t* flags, int64_t ng, int k) {
  double shared = -1.0;
  const int64_t kk = static_cast<int64_t>(k) * k;
  for (int64_t g = 0; g < ng; ++g) {
    prepare_gram_item(Team{}, G + g * kk, L + g * kk, H + g * kk, d + g * k, flags + g, k, &shared);
  }
}

void emu_prepare_gram_threads(double* G, double* L, double* H, const double* d, int32_t* flags, int64_t ng, int k,
                              int threads) {
  const int64_t kk = static_cast<int64_t>(k) * k;
  for (int64_t g = 0; g < ng; ++g) {
    double shared = -1.0;
    Barrier barrier(threads);
    std::vector<std::thread> team;
    for (int r = 0; r < threads; ++r) {
      team.emplace_back([&, r] {
        prepare_gram_item(ThreadTeam{r, threads, &barrier}, G + g * kk, L + g * kk, H + g * kk, d + g * k, flags + g,
                          k, &shared);
      });
    }
    for (auto& t : team) t.join();
  }
}

void emu_nnls_f64(int k, int64_t N, int shared, const double* Ad, const double* G, const double* H, const double* d,
                  const double* a_scale, const int32_t* flags, const double* B, const double* U, const double* X,
                  const bool* init, double* S, int32_t* info, int64_t M, int64_t b0, int64_t c0, int64_t len,
                  int64_t items, int64_t max_iter) {
  nnls_chunk<double>(k, N, shared, Ad, G, H, d, a_scale, flags, B, U, X, init, S, info, M, b0, c0, len, items,
                     max_iter);
}

void emu_nnls_f32(int k, int64_t N, int shared, const double* Ad, const double* G, const double* H, const double* d,
                  const double* a_scale, const int32_t* flags, const double* B, const double* U, const float* X,
                  const bool* init, float* S, int32_t* info, int64_t M, int64_t b0, int64_t c0, int64_t len,
                  int64_t items, int64_t max_iter) {
  nnls_chunk<float>(k, N, shared, Ad, G, H, d, a_scale, flags, B, U, X, init, S, info, M, b0, c0, len, items,
                    max_iter);
}

void emu_support_f64(int k, int shared, const double* G, const double* H, const double* d, const double* a_scale,
                     const int32_t* flags, const double* grad, const double* S, double* V, int64_t M, int64_t b0,
                     int64_t c0, int64_t len, int64_t items) {
  support_chunk<double>(k, shared, G, H, d, a_scale, flags, grad, S, V, M, b0, c0, len, items);
}

void emu_support_f32(int k, int shared, const double* G, const double* H, const double* d, const double* a_scale,
                     const int32_t* flags, const float* grad, const float* S, float* V, int64_t M, int64_t b0,
                     int64_t c0, int64_t len, int64_t items) {
  support_chunk<float>(k, shared, G, H, d, a_scale, flags, grad, S, V, M, b0, c0, len, items);
}

void emu_pinv(const double* G, int n, const uint8_t* passive, const double* r, double* v) {
  std::vector<double> A(n * n), Q(n * n), t(n);
  std::vector<int> in(n);
  pinv_solve_on_support(G, n, passive, r, v, A.data(), Q.data(), in.data(), t.data());
}
}
"""


def _cxx():
    return shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++") or shutil.which("clang++")


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    cxx = _cxx()
    if cxx is None:
        pytest.skip("no C++ compiler")
    out = tmp_path_factory.mktemp("emu")
    src, lib = os.path.join(out, "harness.cpp"), os.path.join(out, "harness.so")
    with open(src, "w") as f:
        f.write(HARNESS)
    cmd = [cxx, "-O2", "-std=c++17", "-shared", "-fPIC", "-pthread", "-Wall", "-Werror", "-Wno-unused-function",
           f"-I{CSRC}", src, "-o", lib]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"the device headers do not compile as host code:\n{run.stderr[-8000:]}"
    return ctypes.CDLL(lib)


def _p(t):
    return ctypes.c_void_p(t.data_ptr()) if t is not None else ctypes.c_void_p(0)


I64, INT = ctypes.c_int64, ctypes.c_int


def _emulated_gram(emu, A, threads=0):
    """make_device_gram (csrc/cuda/device_gram.cu) on the host. A: (N, k) or (B, N, k). threads > 0: the
    Gram kernel's block routine runs on that many host threads, else on one."""
    shared = A.dim() == 2
    A3 = (A.unsqueeze(0) if shared else A).double().contiguous()
    ng, N, k = A3.shape
    amax = A3.abs().amax((1, 2)) if A3.numel() else torch.zeros(ng, dtype=torch.float64)
    emu.emu_dictionary_scale.restype = ctypes.c_double
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
    return dict(shared=shared, Ad=Ad, G=G, H=H, d=d, a_scale=a_scale, flags=flags, k=k, N=N)


def _emulated_nnls(emu, X, A, init=None, max_iter=0, chunk=(1, 7)):
    """nnls_forward_kernel (csrc/cuda/nnls_kernel.cu) on the host, with small chunks (items, columns)."""
    batched = X.dim() == 3
    X3 = (X if batched else X.unsqueeze(0)).contiguous()
    nb, N, M = X3.shape
    k = A.shape[-1]
    S = torch.full((nb, k, M), -99.0, dtype=X.dtype)
    info = torch.full((nb, M), 99, dtype=torch.int32)
    g = _emulated_gram(emu, A)
    Ad_g = g["Ad"].to(X.dtype)  # float32 data: float32 GEMM, as on the CPU
    init3 = None if init is None else (init if batched else init.unsqueeze(0)).contiguous()
    fn = emu.emu_nnls_f64 if X.dtype == torch.float64 else emu.emu_nnls_f32
    items_per, cols_per = chunk if nb > 1 else (1, chunk[1])
    for b0 in range(0, nb, items_per):
        items = min(items_per, nb - b0)
        for c0 in range(0, M, cols_per):
            ln = min(cols_per, M - c0)
            Xc = X3[b0 : b0 + items, :, c0 : c0 + ln]
            AdT = Ad_g[0].T if g["shared"] else Ad_g[b0 : b0 + items].transpose(1, 2)
            B = torch.matmul(AdT, Xc).double().contiguous()
            Hs = g["H"][0] if g["shared"] else g["H"][b0 : b0 + items]
            U = torch.matmul(Hs, B).contiguous()
            fn(INT(k), I64(N), INT(g["shared"]), _p(g["Ad"]), _p(g["G"]), _p(g["H"]), _p(g["d"]), _p(g["a_scale"]),
               _p(g["flags"]), _p(B), _p(U), _p(X3), _p(init3), _p(S), _p(info), I64(M), I64(b0), I64(c0), I64(ln),
               I64(items), I64(max_iter))
    return (S, info) if batched else (S[0], info[0])


def _emulated_support_solve(emu, grad, A, S, chunk=(2, 5)):
    batched = S.dim() == 3
    S3 = (S if batched else S.unsqueeze(0)).contiguous()
    G3 = (grad if batched else grad.unsqueeze(0)).contiguous()
    nb, k, M = S3.shape
    V = torch.zeros_like(S3)
    g = _emulated_gram(emu, A)
    fn = emu.emu_support_f64 if S.dtype == torch.float64 else emu.emu_support_f32
    for b0 in range(0, nb, chunk[0]):
        items = min(chunk[0], nb - b0)
        for c0 in range(0, M, chunk[1]):
            ln = min(chunk[1], M - c0)
            fn(INT(k), INT(g["shared"]), _p(g["G"]), _p(g["H"]), _p(g["d"]), _p(g["a_scale"]), _p(g["flags"]),
               _p(G3), _p(S3), _p(V), I64(M), I64(b0), I64(c0), I64(ln), I64(items))
    return V if batched else V[0]


def _cpu(X, A, init=None, max_iter=0):
    return torch.ops.neuralnmf.nnls(X, A, init, max_iter)


def _assert_same(got, want, rtol, atol):
    (S, info), (S_ref, info_ref) = got, want
    assert torch.equal(info, info_ref), (info, info_ref)
    torch.testing.assert_close(S, S_ref, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("k", [1, 4, 13, 40])
def test_forward_matches_cpu(emu, dtype, k):
    g = make_generator(100 + k)
    A = torch.rand(60, k, generator=g, dtype=dtype)
    X = torch.randn(60, 23, generator=g, dtype=dtype)
    tol = dict(rtol=1e-9, atol=1e-12) if dtype == torch.float64 else dict(rtol=2e-4, atol=1e-5)
    _assert_same(_emulated_nnls(emu, X, A), _cpu(X, A), **tol)


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


def test_support_solve_singular_support_uses_the_pseudo_inverse(emu):
    g = make_generator(13)
    base = torch.rand(20, 3, generator=g, dtype=torch.float64)
    A = torch.cat([base, base[:, :1], torch.zeros(20, 1, dtype=torch.float64)], 1)  # duplicate + zero column
    S = torch.rand(5, 9, generator=g, dtype=torch.float64)
    S[:, ::2] = 0.7  # every even column: support holds both duplicates (and the zero column)
    grad = torch.randn(S.shape, generator=g, dtype=torch.float64)
    want = torch.ops.neuralnmf.support_solve(grad, A, S)
    torch.testing.assert_close(_emulated_support_solve(emu, grad, A, S), want, rtol=1e-8, atol=1e-10)


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
