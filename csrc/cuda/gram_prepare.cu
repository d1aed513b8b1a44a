// Device Gram preparation (see gram_view.cuh): the scaling by torch ops, the per-item power of two and
// the Cholesky / inverse of G by two small kernels. Nothing is read back to the host, so a data-dependent
// outcome (A not finite, G singular) travels in `flags` to the column kernels.
#include <ATen/core/Tensor.h>
#include <ATen/ops/bmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>

#include "gram_prepare.h"

namespace neuralnmf {
namespace cuda {

namespace {

constexpr int kScaleThreads = 256;

__global__ void dictionary_scale_kernel(const double* amax, double* a_scale, int32_t* flags, int64_t ng) {
  const int64_t g = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (g < ng) {
    a_scale[g] = dictionary_scale(amax[g]);
    flags[g] = isfinite(amax[g]) ? kGramAFinite : 0;
  }
}

// One block per dictionary; k <= a few hundred, so one pass of a few hundred threads covers a row.
__global__ void prepare_gram_kernel(double* G, double* L, double* H, const double* d, int32_t* flags, int k) {
  __shared__ double shared;
  const int64_t g = blockIdx.x;
  const int64_t kk = static_cast<int64_t>(k) * k;
  prepare_gram_item(Team{}, G + g * kk, L + g * kk, H + g * kk, d + g * k, flags + g, k, &shared);
}

}  // namespace

GramView DeviceGram::view() const {
  return GramView{static_cast<int>(G.size(-1)),
                  Ad.size(1),
                  shared,
                  Ad.data_ptr<double>(),
                  G.data_ptr<double>(),
                  H.data_ptr<double>(),
                  d.data_ptr<double>(),
                  a_scale.data_ptr<double>(),
                  flags.data_ptr<int32_t>()};
}

DeviceGram make_device_gram(const at::Tensor& A) {
  DeviceGram out;
  out.shared = A.dim() == 2;
  const at::Tensor A3 = (out.shared ? A.unsqueeze(0) : A).to(at::kDouble).contiguous();
  const int64_t ng = A3.size(0), k = A3.size(2);
  const auto opts = A3.options();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();

  // max |A| propagates NaN and Inf, so its finiteness is A's.
  const at::Tensor amax = A3.numel() > 0 ? A3.abs().amax({1, 2}).contiguous() : at::zeros({ng}, opts);
  out.a_scale = at::empty({ng}, opts);
  out.flags = at::empty({ng}, opts.dtype(at::kInt));
  dictionary_scale_kernel<<<static_cast<unsigned int>((ng + kScaleThreads - 1) / kScaleThreads), kScaleThreads, 0,
                            stream>>>(amax.data_ptr<double>(), out.a_scale.data_ptr<double>(),
                                      out.flags.data_ptr<int32_t>(), ng);
  C10_CUDA_KERNEL_LAUNCH_CHECK();

  const at::Tensor As = A3.mul(out.a_scale.view({ng, 1, 1}));
  const at::Tensor sq = As.mul(As).sum(1);  // (ng, k); 0 exactly for zero columns
  out.d = at::where(sq.gt(0), sq.sqrt().reciprocal(), at::zeros_like(sq)).contiguous();
  out.Ad = As.mul(out.d.unsqueeze(1)).contiguous();
  out.G = at::bmm(out.Ad.transpose(1, 2), out.Ad).contiguous();
  out.L = at::empty_like(out.G);
  out.H = at::zeros_like(out.G);
  const int threads = static_cast<int>(std::min<int64_t>(256, (k + 31) / 32 * 32));
  prepare_gram_kernel<<<static_cast<unsigned int>(ng), threads, 0, stream>>>(
      out.G.data_ptr<double>(), out.L.data_ptr<double>(), out.H.data_ptr<double>(), out.d.data_ptr<double>(),
      out.flags.data_ptr<int32_t>(), static_cast<int>(k));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace cuda
}  // namespace neuralnmf
