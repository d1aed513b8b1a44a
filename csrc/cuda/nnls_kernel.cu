// CUDA kernels of neuralnmf::nnls and neuralnmf::nnls_rhs: the contract and scaling of csrc/cpu/nnls_kernel.cpp,
// all on the device and without a host synchronisation (so they also run inside CUDA graphs), on the current
// stream:
//   1. the scaled Gram G, its inverse H and per-dictionary flags (gram_prepare.cu);
//   2. the right-hand sides: nnls forms B = Ad^T X by cuBLAS, in the data's dtype (float32 data stays float32:
//      the solves widen each entry to float64 as they read it, as the CPU kernel does); nnls_rhs reads the
//      caller's products A^T X in place, in their dtype and layout, scaling rows as it reads them;
//   3. the per-column solves (column_kernels.h): a lane group per column, one launch for every column of the
//      call, then one thread per column for the few the groups defer.
// Only step 2 of nnls is chunked, and only when the right-hand sides of all columns would exceed kRhsBytes.
// What "no host sync" changes against the CPU kernel: NaN/Inf in X (or A^T X) or A is reported per column
// (info = -2 and a NaN column of S) rather than raised, and right-hand sides that overflowed are repaired per
// column rather than per chunk.
#include <ATen/Context.h>
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/all.h>
#include <ATen/ops/bmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/mm.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <ATen/ops/where.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <optional>
#include <tuple>
#include <type_traits>

#include "../checks.h"
#include "../cpu/scaled_gram.h"
#include "column_kernels.h"
#include "gram_prepare.h"
#include "thread_scratch.h"

namespace neuralnmf {
namespace cuda {

static_assert(kGramPivotRtol == cpu::kGramRtol, "CPU and CUDA must agree on when G^{-1} is usable");

namespace {

// The GEMM dtype for the right-hand sides. float32 data is multiplied in float32, like on the CPU, unless
// cuBLAS may use TF32 for float32 (torch.backends.cuda.matmul.allow_tf32, set_float32_matmul_precision("high")):
// its 10 mantissa bits would leave S wrong in the third digit, so such a chunk is multiplied in float64.
at::ScalarType gemm_dtype(at::ScalarType x) {
  return x == at::kFloat && !at::globalContext().allowTF32CuBLAS() ? at::kFloat : at::kDouble;
}

// B = Ad^T X[b0 : b0 + items, :, chunk] as (items, k, len) in the GEMM dtype. Ad_g: (ng, N, k) in that dtype.
at::Tensor right_hand_sides(const at::Tensor& Xc, const at::Tensor& Ad_g, bool shared, int64_t b0) {
  const int64_t items = Xc.size(0);
  const at::Tensor Xg = Xc.scalar_type() == Ad_g.scalar_type() ? Xc : Xc.to(Ad_g.scalar_type());
  at::Tensor B;
  if (shared) {
    const at::Tensor AdT = Ad_g.select(0, 0).t();
    B = items == 1 ? at::mm(AdT, Xg.select(0, 0)).unsqueeze(0) : at::matmul(AdT, Xg);
  } else {
    B = at::bmm(Ad_g.narrow(0, b0, items).transpose(1, 2), Xg);
  }
  return B;
}

// Device memory per column of a forward chunk: its right-hand sides, and its data cast to float64 if any.
int64_t rhs_bytes_per_column(int64_t N, int64_t k, at::ScalarType x, at::ScalarType gemm) {
  return k * (gemm == at::kFloat ? 4 : 8) + (gemm != x ? 8 * N : 0);
}

template <typename T>
Strided3<T> strided(const at::Tensor& t) {  // t: 3-D
  return Strided3<T>{t.defined() ? t.data_ptr<std::remove_const_t<T>>() : nullptr, t.defined() ? t.stride(0) : 0,
                     t.defined() ? t.stride(1) : 0, t.defined() ? t.stride(2) : 0};
}

template <typename rhs_t, typename scalar_t>
void solve_columns(const NnlsColumns<rhs_t, scalar_t>& a, const ColumnScratch& scratch, cudaStream_t stream) {
  const bool grouped = group_nnls(a, stream);
  launch_thread_nnls(a, /*all=*/!grouped, scratch, stream);
}

std::tuple<at::Tensor, at::Tensor> nnls_forward_kernel(const at::Tensor& X, const at::Tensor& A,
                                                        const std::optional<at::Tensor>& init, int64_t max_iter) {
  check_nnls_inputs(X, A, init);
  const c10::cuda::CUDAGuard guard(X.device());
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);  // products in the GEMM dtype
  const bool batched = X.dim() == 3;
  const at::Tensor X3 = batched ? X : X.unsqueeze(0);  // any strides: cuBLAS and the kernels read them
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
  const at::Tensor Ad_g = gram.Ad.scalar_type() == gemm ? gram.Ad : gram.Ad.to(gemm);
  at::Tensor init3;
  if (init.has_value()) init3 = batched ? *init : init->unsqueeze(0);
  const ChunkPlan plan = plan_chunks(nb, M, rhs_bytes_per_column(N, k, X.scalar_type(), gemm));
  const ThreadScratch scratch(plan.items * plan.cols, k, nnls_doubles_per_slot(k), X.options());
  const GramView view = gram.view();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();

  AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "nnls_cuda", [&] {
    for (int64_t b0 = 0; b0 < nb; b0 += plan.items) {
      const int64_t items = std::min(plan.items, nb - b0);
      for (int64_t c0 = 0; c0 < M; c0 += plan.cols) {
        const int64_t len = std::min(plan.cols, M - c0);
        const at::Tensor B = right_hand_sides(X3.narrow(0, b0, items).narrow(2, c0, len), Ad_g, gram.shared, b0);
        auto solve = [&](auto rhs_tag) {
          using rhs_t = decltype(rhs_tag);
          const NnlsColumns<rhs_t, scalar_t> a{view,
                                               strided<const rhs_t>(B),
                                               nullptr,
                                               strided<const scalar_t>(X3),
                                               strided<const bool>(init3),
                                               strided<scalar_t>(S),
                                               info.data_ptr<int32_t>(),
                                               M,
                                               b0,
                                               c0,
                                               len,
                                               items,
                                               max_iter};
          solve_columns(a, scratch.view, stream);
        };
        if constexpr (std::is_same_v<scalar_t, float>) {
          if (B.scalar_type() == at::kFloat) {
            solve(float{});
          } else {
            solve(double{});
          }
        } else {
          solve(double{});
        }
      }
    }
  });
  return result();
}

// The same solve from products AtX = A^T X (k, M) or (B, k, M) formed by the caller (sparse X, sharded data):
// read in place, b_i = a_scale d_i AtX_i; S has AtX's layout (a transposed AtX gives an S whose transpose is
// contiguous), as on the CPU.
std::tuple<at::Tensor, at::Tensor> nnls_rhs_kernel(const at::Tensor& AtX, const at::Tensor& A,
                                                    const std::optional<at::Tensor>& init, int64_t max_iter) {
  check_nnls_rhs_inputs(AtX, A, init);
  const c10::cuda::CUDAGuard guard(AtX.device());
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  const bool batched = AtX.dim() == 3;
  const at::Tensor B3 = batched ? AtX : AtX.unsqueeze(0);
  const int64_t nb = B3.size(0), k = B3.size(1), M = B3.size(2);
  at::Tensor S = at::empty_like(AtX);
  const at::Tensor S3 = batched ? S : S.unsqueeze(0);
  at::Tensor info = at::empty({nb, M}, AtX.options().dtype(at::kInt));
  auto result = [&]() -> std::tuple<at::Tensor, at::Tensor> {
    if (batched) return {S, info};
    return {S, info.select(0, 0)};
  };
  if (nb == 0 || M == 0) return result();
  if (k == 0) {
    info.zero_();
    return result();
  }

  const DeviceGram gram = make_device_gram(A);
  const at::Tensor row_scale = gram.d.mul(gram.a_scale.unsqueeze(1)).contiguous();  // (ng, k)
  at::Tensor init3;
  if (init.has_value()) init3 = batched ? *init : init->unsqueeze(0);
  const ThreadScratch scratch(nb * M, k, nnls_doubles_per_slot(k), AtX.options());
  const GramView view = gram.view();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(AtX.scalar_type(), "nnls_rhs_cuda", [&] {
    const NnlsColumns<scalar_t, scalar_t> a{view,
                                            strided<const scalar_t>(B3),
                                            row_scale.data_ptr<double>(),
                                            Strided3<const scalar_t>{nullptr, 0, 0, 0},
                                            strided<const bool>(init3),
                                            strided<scalar_t>(S3),
                                            info.data_ptr<int32_t>(),
                                            M,
                                            0,
                                            0,
                                            M,
                                            nb,
                                            max_iter};
    solve_columns(a, scratch.view, stream);
  });
  return result();
}

}  // namespace

TORCH_LIBRARY_IMPL(neuralnmf, CUDA, m) {
  m.impl("nnls", &nnls_forward_kernel);
  m.impl("nnls_rhs", &nnls_rhs_kernel);
}

}  // namespace cuda
}  // namespace neuralnmf
