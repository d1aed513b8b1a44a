// CUDA kernel of neuralnmf::support_solve, the per-column part of the NNLS backward pass (contract and scaling
// of csrc/cpu/support_solve_kernel.cpp), on the current stream and without a host synchronisation:
//   V[P_j, j] = (A_P^T A_P)^{-1} grad[P_j, j],  P_j = {i : S[i, j] > 0},  zero elsewhere,
// one thread per column (column_device.cuh). Where G_PP is singular the CPU kernel calls at::linalg_pinv; a
// thread computes the same pseudo-inverse by Jacobi eigendecomposition (pinv_jacobi.cuh).
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../checks.h"
#include "column_device.cuh"
#include "device_gram.h"

namespace neuralnmf {
namespace cuda {
namespace {

template <typename scalar_t>
__global__ void __launch_bounds__(kColumnThreads) support_columns_kernel(const SupportChunk<scalar_t> a) {
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t < a.items * a.len) support_column(a, t);
}

at::Tensor support_solve_kernel(const at::Tensor& grad, const at::Tensor& A, const at::Tensor& S) {
  check_support_solve_inputs(grad, A, S);
  const c10::cuda::CUDAGuard guard(S.device());
  const bool batched = S.dim() == 3;
  const at::Tensor S3 = (batched ? S : S.unsqueeze(0)).contiguous();
  const at::Tensor grad3 = (batched ? grad : grad.unsqueeze(0)).contiguous();
  const int64_t nb = S3.size(0), k = S3.size(1), M = S3.size(2);
  at::Tensor V = at::zeros({nb, k, M}, S.options());
  if (nb == 0 || k == 0 || M == 0) return batched ? V : V.select(0, 0);

  const DeviceGram gram = make_device_gram(A);
  const int64_t per_col = support_doubles_per_col(k) * 8 + ints_per_col(k) * 4 + bytes_per_col(k);
  const ChunkPlan plan = plan_chunks(nb, M, per_col);
  const int64_t cap = plan.items * plan.cols;
  at::Tensor wd = at::empty({cap * support_doubles_per_col(k)}, S.options().dtype(at::kDouble));
  at::Tensor wi = at::empty({cap * ints_per_col(k)}, S.options().dtype(at::kInt));
  at::Tensor wb = at::empty({cap * bytes_per_col(k)}, S.options().dtype(at::kByte));
  const ColumnScratch scratch{wd.data_ptr<double>(), wi.data_ptr<int>(), wb.data_ptr<uint8_t>(),
                              support_doubles_per_col(k), ints_per_col(k), bytes_per_col(k)};
  const GramView view = gram.view();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();

  AT_DISPATCH_FLOATING_TYPES(S.scalar_type(), "support_solve_cuda", [&] {
    for (int64_t b0 = 0; b0 < nb; b0 += plan.items) {
      const int64_t items = std::min(plan.items, nb - b0);
      for (int64_t c0 = 0; c0 < M; c0 += plan.cols) {
        const int64_t len = std::min(plan.cols, M - c0);
        const SupportChunk<scalar_t> a{view,           grad3.data_ptr<scalar_t>(), S3.data_ptr<scalar_t>(),
                                       V.data_ptr<scalar_t>(), M, b0, c0, len, items, scratch};
        support_columns_kernel<scalar_t><<<column_blocks(items * len), kColumnThreads, 0, stream>>>(a);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
    }
  });
  return batched ? V : V.select(0, 0);
}

}  // namespace

TORCH_LIBRARY_IMPL(neuralnmf, CUDA, m) { m.impl("support_solve", &support_solve_kernel); }

}  // namespace cuda
}  // namespace neuralnmf
