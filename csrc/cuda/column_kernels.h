// The column kernels of the CUDA ops, as the ops' host code sees them (nnls_kernel.cu, support_solve_kernel.cu):
//
//   1. the lane-group kernels (group_kernels.cuh): a group of lanes per column, the column's state in
//      registers and a shared-memory workspace, G and H in shared memory shared by the block's columns (k <= 64;
//      read through the caches from global memory above). One launch covers every column of a call. Defined
//      per rank class in group_kernels_k*.cu, so that the build compiles them in parallel.
//   2. the thread kernels (thread_kernels.cu): one thread per column for what the groups defer (and for every
//      column when k > kMaxGroupRank), with its scratch in a bounded pool of global-memory slots.
//
// Both run on the given stream and never synchronise with the host.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>

#include "column_device.cuh"

namespace neuralnmf {
namespace cuda {

constexpr int kMaxGroupRank = 256;  // above this rank, every column is solved by the thread kernels

// Rank classes of the lane-group kernels: k <= 8, 16, 32, 64, 128, 256.
template <int KMAX, typename rhs_t, typename scalar_t>
bool launch_group_nnls(const NnlsColumns<rhs_t, scalar_t>& a, cudaStream_t stream);
template <int KMAX, typename scalar_t>
bool launch_group_support(const SupportColumns<scalar_t>& a, uint8_t* deferred, cudaStream_t stream);

// Solves the columns of `a` that a lane group can (the others get info = kDeferred). False when no group
// kernel serves this rank: then nothing was launched and every column is the thread kernel's.
template <typename rhs_t, typename scalar_t>
bool group_nnls(const NnlsColumns<rhs_t, scalar_t>& a, cudaStream_t stream) {
  const int k = a.gram.k;
  if (k <= 8) return launch_group_nnls<8>(a, stream);
  if (k <= 16) return launch_group_nnls<16>(a, stream);
  if (k <= 32) return launch_group_nnls<32>(a, stream);
  if (k <= 64) return launch_group_nnls<64>(a, stream);
  if (k <= 128) return launch_group_nnls<128>(a, stream);
  if (k <= kMaxGroupRank) return launch_group_nnls<256>(a, stream);
  return false;
}

// The same for the backward solve; deferred: (items, M) flags it writes for every column.
template <typename scalar_t>
bool group_support(const SupportColumns<scalar_t>& a, uint8_t* deferred, cudaStream_t stream) {
  const int k = a.gram.k;
  if (k <= 8) return launch_group_support<8>(a, deferred, stream);
  if (k <= 16) return launch_group_support<16>(a, deferred, stream);
  if (k <= 32) return launch_group_support<32>(a, deferred, stream);
  if (k <= 64) return launch_group_support<64>(a, deferred, stream);
  if (k <= 128) return launch_group_support<128>(a, deferred, stream);
  if (k <= kMaxGroupRank) return launch_group_support<256>(a, deferred, stream);
  return false;
}

// One thread per column of `a` with info == kDeferred (all: every column), in the slots of `scratch`.
template <typename rhs_t, typename scalar_t>
void launch_thread_nnls(const NnlsColumns<rhs_t, scalar_t>& a, bool all, const ColumnScratch& scratch,
                        cudaStream_t stream);
// One thread per column flagged in a.deferred (nullptr: every column).
template <typename scalar_t>
void launch_thread_support(const SupportColumns<scalar_t>& a, const ColumnScratch& scratch, cudaStream_t stream);

// The slot pool of the thread kernels: bounded memory whatever the number of columns (they are few, except for
// a singular Gram matrix or k > kMaxGroupRank, where the pool's threads take many columns each).
constexpr int64_t kThreadScratchBytes = int64_t{64} << 20;
constexpr int64_t kMaxThreadSlots = 32768;

inline int64_t thread_slots(int64_t columns, int64_t bytes_per_slot) {
  const int64_t fit = kThreadScratchBytes / std::max<int64_t>(1, bytes_per_slot);
  return std::max<int64_t>(1, std::min({columns, kMaxThreadSlots, fit}));
}

// Right-hand sides are the only per-column memory of a forward call (plus the data cast to float64 when TF32
// would spoil a float32 GEMM); calls whose right-hand sides exceed this bound are solved in chunks.
constexpr int64_t kRhsBytes = int64_t{1} << 30;

struct ChunkPlan {
  int64_t items;  // batch items per chunk
  int64_t cols;   // columns per chunk (all M when items > 1)
};

inline ChunkPlan plan_chunks(int64_t nb, int64_t M, int64_t bytes_per_column) {
  const int64_t budget = std::max<int64_t>(1, kRhsBytes / std::max<int64_t>(1, bytes_per_column));
  if (M >= budget) return {1, budget};
  return {std::max<int64_t>(1, std::min(nb, budget / std::max<int64_t>(1, M))), M};
}

}  // namespace cuda
}  // namespace neuralnmf
