// CUDA kernel of neuralnmf::nnls: the contract and scaling of csrc/cpu/nnls_kernel.cpp, all on the device and
// without a host synchronisation (so it also runs inside CUDA graphs), on the current stream:
//   1. the scaled Gram G, its inverse H and per-dictionary flags (device_gram.cu);
//   2. per chunk of columns, the right-hand sides B = Ad^T X and U = H B by cuBLAS;
//   3. one thread per column runs ColumnSolver (column_device.cuh) with its scratch in global memory.
// What "no host sync" changes against the CPU kernel: NaN/Inf in X or A is reported per column (info = -2 and
// a NaN column of S) rather than raised, and a B that overflowed is repaired per column rather than per chunk.
//
// Step 3 is the first, simplest design of notes/algorithms.md 1.7. The faster ones plug in at solve_chunk: a
// warp per column for k <= 32 (G in shared memory), a block per column up to k = 64, and beyond that columns
// grouped by passive set with batched factorizations.
#include <ATen/Context.h>
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/all.h>
#include <ATen/ops/bmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/where.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

#include "../checks.h"
#include "../cpu/scaled_gram.h"
#include "column_device.cuh"
#include "device_gram.h"

namespace neuralnmf {
namespace cuda {

static_assert(kGramPivotRtol == cpu::kGramRtol, "CPU and CUDA must agree on when G^{-1} is usable");

namespace {

template <typename scalar_t>
__global__ void __launch_bounds__(kColumnThreads) nnls_columns_kernel(const NnlsChunk<scalar_t> a) {
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t < a.items * a.len) nnls_column(a, t);
}

// The GEMM dtype for the right-hand sides. float32 data is multiplied in float32, like on the CPU, unless
// cuBLAS may use TF32 for float32 (torch.backends.cuda.matmul.allow_tf32, set_float32_matmul_precision("high")):
// its 10 mantissa bits would leave S wrong in the third digit, so such a chunk is multiplied in float64.
at::ScalarType gemm_dtype(at::ScalarType x) {
  return x == at::kFloat && !at::globalContext().allowTF32CuBLAS() ? at::kFloat : at::kDouble;
}

// B = Ad^T X[b0 : b0 + items, :, chunk] as (items, k, len) float64. Ad_g: (ng, N, k) in the GEMM dtype.
at::Tensor right_hand_sides(const at::Tensor& Xc, const at::Tensor& Ad_g, bool shared, int64_t b0) {
  const int64_t items = Xc.size(0);
  const at::Tensor Xg = Xc.to(Ad_g.scalar_type());
  at::Tensor B;
  if (shared) {
    const at::Tensor AdT = Ad_g.select(0, 0).t();
    B = items == 1 ? at::mm(AdT, Xg.select(0, 0)).unsqueeze(0) : at::matmul(AdT, Xg);
  } else {
    B = at::bmm(Ad_g.narrow(0, b0, items).transpose(1, 2), Xg);
  }
  return B.to(at::kDouble).contiguous();
}

// U = H B, (items, k, len). Where H is not usable it holds zeros and the column kernel ignores U.
at::Tensor apply_inverse(const at::Tensor& B, const DeviceGram& gram, int64_t b0) {
  const int64_t items = B.size(0);
  if (gram.shared) {
    const at::Tensor H = gram.H.select(0, 0);
    return (items == 1 ? at::mm(H, B.select(0, 0)).unsqueeze(0) : at::matmul(H, B)).contiguous();
  }
  return at::bmm(gram.H.narrow(0, b0, items), B).contiguous();
}

// Device memory per column solved at once: scratch, B and U, and the GEMM's temporaries.
int64_t bytes_per_column(int64_t N, int64_t k, at::ScalarType x, at::ScalarType gemm) {
  int64_t bytes = nnls_doubles_per_col(k) * 8 + ints_per_col(k) * 4 + bytes_per_col(k) + 2 * k * 8;
  if (gemm == at::kFloat) bytes += 4 * k;  // float32 B before the cast
  if (gemm != x) bytes += 8 * N;           // the chunk of X cast to float64
  return bytes;
}

template <typename scalar_t>
void solve_chunk(const NnlsChunk<scalar_t>& a, cudaStream_t stream) {
  nnls_columns_kernel<scalar_t><<<column_blocks(a.items * a.len), kColumnThreads, 0, stream>>>(a);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

std::tuple<at::Tensor, at::Tensor> nnls_forward_kernel(const at::Tensor& X, const at::Tensor& A,
                                                        const std::optional<at::Tensor>& init, int64_t max_iter) {
  check_nnls_inputs(X, A, init);
  const c10::cuda::CUDAGuard guard(X.device());
  const bool batched = X.dim() == 3;
  const at::Tensor X3 = (batched ? X : X.unsqueeze(0)).contiguous();
  const int64_t nb = X3.size(0), N = X3.size(1), M = X3.size(2), k = A.size(-1);
  at::Tensor S = at::empty({nb, k, M}, X.options());
  at::Tensor info = at::empty({nb, M}, X.options().dtype(at::kInt));
  auto result = [&]() -> std::tuple<at::Tensor, at::Tensor> {
    if (batched) return {S, info};
    return {S.select(0, 0), info.select(0, 0)};
  };
  if (nb == 0 || M == 0) return result();
  if (k == 0) {  // S is empty; bad data must still be reported
    info.copy_(at::where(at::isfinite(X3).all(1), 0, kInfoNonFinite));
    return result();
  }

  const DeviceGram gram = make_device_gram(A);
  const at::ScalarType gemm = gemm_dtype(X.scalar_type());
  const at::Tensor Ad_g = gram.Ad.to(gemm);
  at::Tensor init3;
  if (init.has_value()) init3 = (batched ? *init : init->unsqueeze(0)).contiguous();
  const ChunkPlan plan = plan_chunks(nb, M, bytes_per_column(N, k, X.scalar_type(), gemm));
  const int64_t cap = plan.items * plan.cols;
  at::Tensor wd = at::empty({cap * nnls_doubles_per_col(k)}, X.options().dtype(at::kDouble));
  at::Tensor wi = at::empty({cap * ints_per_col(k)}, X.options().dtype(at::kInt));
  at::Tensor wb = at::empty({cap * bytes_per_col(k)}, X.options().dtype(at::kByte));
  const ColumnScratch scratch{wd.data_ptr<double>(), wi.data_ptr<int>(), wb.data_ptr<uint8_t>(),
                              nnls_doubles_per_col(k), ints_per_col(k), bytes_per_col(k)};
  const GramView view = gram.view();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();

  AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "nnls_cuda", [&] {
    for (int64_t b0 = 0; b0 < nb; b0 += plan.items) {
      const int64_t items = std::min(plan.items, nb - b0);
      for (int64_t c0 = 0; c0 < M; c0 += plan.cols) {
        const int64_t len = std::min(plan.cols, M - c0);
        const at::Tensor B = right_hand_sides(X3.narrow(0, b0, items).narrow(2, c0, len), Ad_g, gram.shared, b0);
        const at::Tensor U = apply_inverse(B, gram, b0);
        const NnlsChunk<scalar_t> a{view,
                                    B.data_ptr<double>(),
                                    U.data_ptr<double>(),
                                    X3.data_ptr<scalar_t>(),
                                    init3.defined() ? init3.data_ptr<bool>() : nullptr,
                                    S.data_ptr<scalar_t>(),
                                    info.data_ptr<int32_t>(),
                                    M,
                                    b0,
                                    c0,
                                    len,
                                    items,
                                    max_iter,
                                    scratch};
        solve_chunk(a, stream);
      }
    }
  });
  return result();
}

}  // namespace

TORCH_LIBRARY_IMPL(neuralnmf, CUDA, m) { m.impl("nnls", &nnls_forward_kernel); }

}  // namespace cuda
}  // namespace neuralnmf
