// The thread kernels (see column_kernels.h): a pool of threads, one scratch slot each, takes the columns the
// lane groups deferred (or all of them): thread t looks at columns t, t + slots, ... and solves those marked
// (column_device.cuh). Reading the marks costs one coalesced pass over info (4 bytes per column).
#include <c10/cuda/CUDAException.h>

#include "column_kernels.h"

namespace neuralnmf {
namespace cuda {
namespace {

constexpr int kThreadBlock = 128;

template <typename rhs_t, typename scalar_t>
__global__ void __launch_bounds__(kThreadBlock)
    thread_nnls_kernel(const NnlsColumns<rhs_t, scalar_t> a, const bool all, const ColumnScratch scratch) {
  const int64_t slot = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (slot >= scratch.slots) return;
  const int64_t total = a.items * a.len;
  for (int64_t e = slot; e < total; e += scratch.slots) {
    const int64_t li = e / a.len, lj = e % a.len;
    if (!all && *a.info_of(li, lj) != kDeferred) continue;
    nnls_column(a, li, lj, scratch, slot);
  }
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreadBlock)
    thread_support_kernel(const SupportColumns<scalar_t> a, const ColumnScratch scratch) {
  const int64_t slot = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (slot >= scratch.slots) return;
  const int64_t total = a.items * a.M;
  for (int64_t e = slot; e < total; e += scratch.slots) {
    if (a.deferred != nullptr && !a.deferred[e]) continue;
    support_column(a, e / a.M, e % a.M, scratch, slot);
  }
}

unsigned int blocks_for(int64_t slots) { return static_cast<unsigned int>((slots + kThreadBlock - 1) / kThreadBlock); }

}  // namespace

template <typename rhs_t, typename scalar_t>
void launch_thread_nnls(const NnlsColumns<rhs_t, scalar_t>& a, bool all, const ColumnScratch& scratch,
                        cudaStream_t stream) {
  if (a.items * a.len == 0) return;
  thread_nnls_kernel<rhs_t, scalar_t><<<blocks_for(scratch.slots), kThreadBlock, 0, stream>>>(a, all, scratch);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename scalar_t>
void launch_thread_support(const SupportColumns<scalar_t>& a, const ColumnScratch& scratch, cudaStream_t stream) {
  if (a.items * a.M == 0) return;
  thread_support_kernel<scalar_t><<<blocks_for(scratch.slots), kThreadBlock, 0, stream>>>(a, scratch);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template void launch_thread_nnls<float, float>(const NnlsColumns<float, float>&, bool, const ColumnScratch&,
                                               cudaStream_t);
template void launch_thread_nnls<double, float>(const NnlsColumns<double, float>&, bool, const ColumnScratch&,
                                                cudaStream_t);
template void launch_thread_nnls<double, double>(const NnlsColumns<double, double>&, bool, const ColumnScratch&,
                                                 cudaStream_t);
template void launch_thread_support<float>(const SupportColumns<float>&, const ColumnScratch&, cudaStream_t);
template void launch_thread_support<double>(const SupportColumns<double>&, const ColumnScratch&, cudaStream_t);

}  // namespace cuda
}  // namespace neuralnmf
