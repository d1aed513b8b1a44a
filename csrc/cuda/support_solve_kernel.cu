// CUDA kernel of neuralnmf::support_solve, the per-column part of the NNLS backward pass (contract and scaling
// of csrc/cpu/support_solve_kernel.cpp), on the current stream and without a host synchronisation:
//   V[P_j, j] = (A_P^T A_P)^{-1} grad[P_j, j],  P_j = {i : S[i, j] > 0},  zero elsewhere.
// A lane group per column (column_kernels.h), one launch for every column; the columns it defers (a singular
// support, where the CPU kernel calls at::linalg_pinv, or a large support without G^{-1}) go to one thread
// each, which computes the same pseudo-inverse by Jacobi eigendecomposition (pinv_jacobi.cuh). V has S's
// layout, and S and grad are read in place whatever their strides.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <type_traits>

#include "../checks.h"
#include "column_kernels.h"
#include "gram_prepare.h"
#include "thread_scratch.h"

namespace neuralnmf {
namespace cuda {
namespace {

template <typename T>
Strided3<T> strided(const at::Tensor& t) {  // t: 3-D
  return Strided3<T>{t.data_ptr<std::remove_const_t<T>>(), t.stride(0), t.stride(1), t.stride(2)};
}

at::Tensor support_solve_kernel(const at::Tensor& grad, const at::Tensor& A, const at::Tensor& S) {
  check_support_solve_inputs(grad, A, S);
  const c10::cuda::CUDAGuard guard(S.device());
  const bool batched = S.dim() == 3;
  const at::Tensor S3 = batched ? S : S.unsqueeze(0);
  const at::Tensor grad3 = batched ? grad : grad.unsqueeze(0);
  const int64_t nb = S3.size(0), k = S3.size(1), M = S3.size(2);
  at::Tensor V = at::empty_like(S);  // every column is written
  if (nb == 0 || k == 0 || M == 0) return V;
  const at::Tensor V3 = batched ? V : V.unsqueeze(0);

  const DeviceGram gram = make_device_gram(A);
  at::Tensor deferred = at::empty({nb * M}, S.options().dtype(at::kByte));
  const ThreadScratch scratch(nb * M, k, support_doubles_per_slot(k), S.options());
  const GramView view = gram.view();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();

  AT_DISPATCH_FLOATING_TYPES(S.scalar_type(), "support_solve_cuda", [&] {
    SupportColumns<scalar_t> a{view,  strided<const scalar_t>(grad3), strided<const scalar_t>(S3),
                               strided<scalar_t>(V3), nullptr, M, nb};
    uint8_t* flags = deferred.data_ptr<uint8_t>();
    if (group_support(a, flags, stream)) a.deferred = flags;  // else every column is the threads'
    launch_thread_support(a, scratch.view, stream);
  });
  return V;
}

}  // namespace

TORCH_LIBRARY_IMPL(neuralnmf, CUDA, m) { m.impl("support_solve", &support_solve_kernel); }

}  // namespace cuda
}  // namespace neuralnmf
