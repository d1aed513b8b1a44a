// The lane-group kernels (see column_kernels.h): each block takes a range of columns of one dictionary, copies
// its G and H into shared memory once (k <= 64), and its groups of L lanes take the range's columns in turn,
// adjacent groups adjacent columns (so a warp's loads and stores of B and S touch neighbouring columns). Each
// group's workspace (group_solver.cuh) sits in the block's shared memory after G and H.
//
// Included by group_kernels_k*.cu, one rank class each (NNLS_INSTANTIATE_GROUP_KERNELS).
#pragma once

#include <c10/cuda/CUDAException.h>
#include <cuda_runtime_api.h>

#include <algorithm>

#include "column_kernels.h"
#include "group_columns.cuh"
#include "lane_group.cuh"

namespace neuralnmf {
namespace cuda {

// Per rank class: lanes per group, variables per lane, warps per block, and whether G and H fit in shared
// memory (2 k^2 doubles: 64 KiB at k = 64). Each group's workspace is group_work_bytes(k): 2.5 KiB at k = 32,
// 7 KiB at k = 64, 75 KiB at k = 256.
template <int KMAX>
struct GroupShape;
template <>
struct GroupShape<8> {
  static constexpr int L = 8, VPL = 1, kWarps = 8;
  static constexpr bool kSharedGram = true;
};
template <>
struct GroupShape<16> {
  static constexpr int L = 16, VPL = 1, kWarps = 8;
  static constexpr bool kSharedGram = true;
};
template <>
struct GroupShape<32> {
  static constexpr int L = 32, VPL = 1, kWarps = 8;
  static constexpr bool kSharedGram = true;
};
template <>
struct GroupShape<64> {
  static constexpr int L = 32, VPL = 2, kWarps = 16;
  static constexpr bool kSharedGram = true;
};
template <>
struct GroupShape<128> {
  static constexpr int L = 32, VPL = 4, kWarps = 4;
  static constexpr bool kSharedGram = false;
};
template <>
struct GroupShape<256> {
  static constexpr int L = 32, VPL = 8, kWarps = 2;
  static constexpr bool kSharedGram = false;
};

// Packed groups: PACK variables per lane in a group of L / PACK lanes, so that a warp solves PACK times the
// columns. At k <= 32 a subproblem's factor has at most k / 2 rows, so a 32-lane group leaves half its lanes
// idle through the factorization and the triangular solves, whose steps are one after another and dominate a
// column's instructions; a 16-lane group with two variables per lane keeps every lane busy there and shares
// each of those instructions between two columns (the loops over variables take twice the steps per lane and
// cost the same per column). Any L and VPL give the same bits (tests/test_cuda_compile.py), only the speed
// differs. The layout of the k <= 32 class is a compile-time choice, NEURALNMF_CUDA_PACK=1|2 at build time
// (setup.py; for benchmarks, and a way back to the earlier kernels). Default (0), as measured on the H200
// (benchmarks/RESULTS.md, run 3; N = 1024, k = 32, M = 1e6): 2 for float32 results (group kernel 3.08 ms,
// forward 5.20-5.32 ms against 5.40-5.50 ms with 1), 1 for float64 results, whose refinement step makes the
// packed kernel slower (forward 8.21 ms with 1, 9.31-9.37 ms with 2).
#ifndef NEURALNMF_CUDA_PACK
#define NEURALNMF_CUDA_PACK 0
#endif
static_assert(NEURALNMF_CUDA_PACK == 0 || NEURALNMF_CUDA_PACK == 1 || NEURALNMF_CUDA_PACK == 2,
              "NEURALNMF_CUDA_PACK is 1, 2 or 0 (by the result's dtype)");
template <int KMAX, int PACK>
struct PackedShape {
  using Base = GroupShape<KMAX>;
  static_assert(PACK >= 1 && Base::L % PACK == 0, "a packed group is a power of two of lanes");
  static constexpr int L = Base::L / PACK, VPL = Base::VPL * PACK, kWarps = Base::kWarps;
  static constexpr bool kSharedGram = Base::kSharedGram;
};

// The layout of the k = 32 class for results of type scalar_t.
template <typename scalar_t>
constexpr int kPack = NEURALNMF_CUDA_PACK != 0 ? NEURALNMF_CUDA_PACK : (sizeof(scalar_t) == 4 ? 2 : 1);

// Register budgets of the k <= 32 kernels: __launch_bounds__ minimum blocks per multiprocessor 1 (the
// compiler's choice: about 80 registers, no spills), 4 (64 registers) or 6 (40 registers, some spills); the
// packed k = 32 kernels take 1, 3 or 4. A compile-time choice, NEURALNMF_CUDA_MIN_BLOCKS=1|3|4|6 at build time
// (setup.py; 6 means 4 for the packed kernels, 3 means 4 for the others). The default, 4, is the fastest
// measured (benchmarks/RESULTS.md).
#ifndef NEURALNMF_CUDA_MIN_BLOCKS
#define NEURALNMF_CUDA_MIN_BLOCKS 4
#endif
constexpr int kMinBlocks = NEURALNMF_CUDA_MIN_BLOCKS;
static_assert(kMinBlocks == 1 || kMinBlocks == 3 || kMinBlocks == 4 || kMinBlocks == 6,
              "NEURALNMF_CUDA_MIN_BLOCKS is 1, 3, 4 or 6");

// The register budget of a k <= 32 kernel of layout PACK.
template <int PACK>
constexpr int kMinBlocksOf = PACK == 2 ? (kMinBlocks == 6 ? 4 : kMinBlocks) : (kMinBlocks == 3 ? 4 : kMinBlocks);

// The columns [first, last) of the flat index e = li * len + lj that block b takes. A shared dictionary:
// consecutive ranges of per_block columns across items; one dictionary per item: ranges within one item.
struct BlockRange {
  int64_t first, last;
};

__device__ __forceinline__ BlockRange block_range(bool shared, int64_t items, int64_t len, int64_t per_block) {
  const int64_t b = blockIdx.x;
  if (shared) {
    const int64_t first = b * per_block;
    return {first, std::min(first + per_block, items * len)};
  }
  const int64_t per_item = (len + per_block - 1) / per_block;
  const int64_t li = b / per_item, c = (b % per_item) * per_block;
  return {li * len + c, li * len + std::min(c + per_block, len)};
}

inline int64_t grid_blocks(bool shared, int64_t items, int64_t len, int64_t per_block) {
  if (shared) return (items * len + per_block - 1) / per_block;
  return items * ((len + per_block - 1) / per_block);
}

// G and H of dictionary gi into shared memory (k <= 64), or their global copies. Returns the workspace base.
template <bool kSharedGram>
__device__ __forceinline__ unsigned char* stage_gram(const GramView& gram, int64_t gi, unsigned char* smem,
                                                     const double*& G, const double*& H) {
  const int64_t kk = static_cast<int64_t>(gram.k) * gram.k;
  G = gram.G + gi * kk;
  H = gram.H + gi * kk;  // zeros where H is not usable
  if (!kSharedGram) return smem;
  double* sG = reinterpret_cast<double*>(smem);
  double* sH = sG + kk;
  for (int64_t e = threadIdx.x; e < kk; e += blockDim.x) {
    sG[e] = G[e];
    sH[e] = H[e];
  }
  __syncthreads();
  G = sG;
  H = sH;
  return smem + 2 * kk * sizeof(double);
}

// The local (item, column) of flat column e = li * len + lj, advanced by `by` columns without a 64-bit
// division per column (one per group at its start).
struct ColumnCursor {
  int64_t li, lj;
  NNLS_FI ColumnCursor(int64_t e, int64_t len) : li(e / len), lj(e % len) {}
  NNLS_FI void advance(int by, int64_t len) {
    lj += by;
    while (lj >= len) {  // by <= 32 groups: at most a few rounds, one when len >= 32
      lj -= len;
      ++li;
    }
  }
};

template <int KMAX, int PACK, int MINB, typename rhs_t, typename scalar_t>
__global__ void __launch_bounds__(PackedShape<KMAX, PACK>::kWarps * 32, MINB)
    group_nnls_kernel(const NnlsColumns<rhs_t, scalar_t> a, const int64_t per_block) {
  using Shape = PackedShape<KMAX, PACK>;
  extern __shared__ __align__(16) unsigned char smem[];
  const BlockRange range = block_range(a.gram.shared, a.items, a.len, per_block);
  if (range.first >= range.last) return;
  const double *G, *H;
  unsigned char* work = stage_gram<Shape::kSharedGram>(a.gram, a.gram.item(a.b0 + range.first / a.len), smem, G, H);
  const int groups = blockDim.x / Shape::L, group = threadIdx.x / Shape::L;
  const GroupWork ws = group_work(work + group * group_work_bytes(a.gram.k), a.gram.k);
  const bool usable = a.gram.flags[a.gram.item(a.b0 + range.first / a.len)] & kGramHUsable;
  const bool refine = !(usable && refine_skippable(sizeof(scalar_t) == 4, a.gram.k, trace(H, a.gram.k)));
  using Lanes = WarpLanes<Shape::L>;
  const Lanes lanes;
  int64_t e = range.first + group;
  ColumnCursor at(e, a.len);
  ColumnLoad<Shape::VPL> next;
  if (e < range.last) next = load_nnls_column<Lanes, Shape::VPL>(lanes, a, at.li, at.lj);
  for (; e < range.last; e += groups) {
    const ColumnLoad<Shape::VPL> load = next;
    if (e + groups < range.last) {  // the next column's loads are in flight while this one is solved
      ColumnCursor ahead = at;
      ahead.advance(groups, a.len);
      next = load_nnls_column<Lanes, Shape::VPL>(lanes, a, ahead.li, ahead.lj);
    }
    group_nnls_column<Lanes, Shape::VPL>(lanes, a, G, H, refine, ws, at.li, at.lj, load);
    at.advance(groups, a.len);
  }
}

template <int KMAX, int PACK, int MINB, typename scalar_t>
__global__ void __launch_bounds__(PackedShape<KMAX, PACK>::kWarps * 32, MINB)
    group_support_kernel(const SupportColumns<scalar_t> a, uint8_t* deferred, const int64_t per_block) {
  using Shape = PackedShape<KMAX, PACK>;
  extern __shared__ __align__(16) unsigned char smem[];
  const BlockRange range = block_range(a.gram.shared, a.items, a.M, per_block);
  if (range.first >= range.last) return;
  const double *G, *H;
  unsigned char* work = stage_gram<Shape::kSharedGram>(a.gram, a.gram.item(range.first / a.M), smem, G, H);
  const int groups = blockDim.x / Shape::L, group = threadIdx.x / Shape::L;
  const GroupWork ws = group_work(work + group * group_work_bytes(a.gram.k), a.gram.k);
  using Lanes = WarpLanes<Shape::L>;
  const Lanes lanes;
  int64_t e = range.first + group;
  ColumnCursor at(e, a.M);
  ColumnLoad<Shape::VPL> next;
  if (e < range.last) next = load_support_column<Lanes, Shape::VPL>(lanes, a, at.li, at.lj);
  for (; e < range.last; e += groups) {
    const ColumnLoad<Shape::VPL> load = next;
    if (e + groups < range.last) {
      ColumnCursor ahead = at;
      ahead.advance(groups, a.M);
      next = load_support_column<Lanes, Shape::VPL>(lanes, a, ahead.li, ahead.lj);
    }
    group_support_column<Lanes, Shape::VPL>(lanes, a, G, H, ws, at.li, at.lj, load, deferred);
    at.advance(groups, a.M);
  }
}

// Launch geometry of a group kernel over `columns` columns: the block's shared memory, and columns per block
// (a multiple of the groups per block) so that the grid fills the device several times over while each group
// still takes many columns (the copy of G and H is paid once per block). False when the shared memory does not
// fit (then the caller leaves every column to the thread kernels).
// raised_to: the kernel's own record of its raised shared-memory limit (a static of its launcher: kernels of
// one signature share the type Kernel, so a static here would be shared between them).
template <class Shape, typename Kernel>
bool group_geometry(Kernel kernel, int& raised_to, int k, int64_t columns, int& threads, int64_t& smem,
                    int64_t& per_block) {
  int device = 0, sms = 0, optin = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  threads = Shape::kWarps * 32;
  const int groups = threads / Shape::L;
  smem = (Shape::kSharedGram ? 2 * static_cast<int64_t>(k) * k * 8 : 0) + groups * group_work_bytes(k);
  if (smem > optin) return false;
  // Raised once per kernel to the device's limit (normally before any CUDA-graph capture, at a first eager call).
  if (smem > 48 * 1024 && raised_to < optin) {
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, optin));
    raised_to = optin;
  }
  int resident = 0;
  C10_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident, kernel, threads, static_cast<size_t>(smem)));
  const int64_t target = std::max<int64_t>(1, static_cast<int64_t>(sms) * std::max(1, resident) * 4);
  const int64_t want = (columns + target - 1) / target;
  per_block = std::min<int64_t>(std::max<int64_t>(want, groups), static_cast<int64_t>(groups) * 32);
  per_block = (per_block + groups - 1) / groups * groups;
  return true;
}

template <int KMAX, int PACK, int MINB, typename rhs_t, typename scalar_t>
bool launch_group_nnls_with(const NnlsColumns<rhs_t, scalar_t>& a, cudaStream_t stream) {
  auto kernel = group_nnls_kernel<KMAX, PACK, MINB, rhs_t, scalar_t>;
  static int raised_to = 0;
  int threads;
  int64_t smem, per_block;
  if (!group_geometry<PackedShape<KMAX, PACK>>(kernel, raised_to, a.gram.k, a.items * a.len, threads, smem, per_block)) {
    return false;
  }
  const int64_t blocks = grid_blocks(a.gram.shared, a.items, a.len, per_block);
  kernel<<<static_cast<unsigned int>(blocks), threads, static_cast<size_t>(smem), stream>>>(a, per_block);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return true;
}

template <int KMAX, int PACK, int MINB, typename scalar_t>
bool launch_group_support_with(const SupportColumns<scalar_t>& a, uint8_t* deferred, cudaStream_t stream) {
  auto kernel = group_support_kernel<KMAX, PACK, MINB, scalar_t>;
  static int raised_to = 0;
  int threads;
  int64_t smem, per_block;
  if (!group_geometry<PackedShape<KMAX, PACK>>(kernel, raised_to, a.gram.k, a.items * a.M, threads, smem, per_block)) {
    return false;
  }
  const int64_t blocks = grid_blocks(a.gram.shared, a.items, a.M, per_block);
  kernel<<<static_cast<unsigned int>(blocks), threads, static_cast<size_t>(smem), stream>>>(a, deferred, per_block);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return true;
}

// k <= 32: the packed layout (kPack, k = 32 class only) and the register budget (kMinBlocksOf); above, one
// configuration.
template <int KMAX, typename rhs_t, typename scalar_t>
bool launch_group_nnls(const NnlsColumns<rhs_t, scalar_t>& a, cudaStream_t stream) {
  if constexpr (KMAX <= 32) {
    constexpr int pack = KMAX == 32 ? kPack<scalar_t> : 1;
    return launch_group_nnls_with<KMAX, pack, kMinBlocksOf<pack>>(a, stream);
  } else {
    return launch_group_nnls_with<KMAX, 1, 1>(a, stream);
  }
}

template <int KMAX, typename scalar_t>
bool launch_group_support(const SupportColumns<scalar_t>& a, uint8_t* deferred, cudaStream_t stream) {
  if constexpr (KMAX <= 32) {
    constexpr int pack = KMAX == 32 ? kPack<scalar_t> : 1;
    return launch_group_support_with<KMAX, pack, kMinBlocksOf<pack>>(a, deferred, stream);
  } else {
    return launch_group_support_with<KMAX, 1, 1>(a, deferred, stream);
  }
}

}  // namespace cuda
}  // namespace neuralnmf

// Explicit instantiations of one rank class (one .cu file each).
#define NNLS_INSTANTIATE_GROUP_KERNELS(K)                                                                         \
  namespace neuralnmf {                                                                                         \
  namespace cuda {                                                                                              \
  template bool launch_group_nnls<K, float, float>(const NnlsColumns<float, float>&, cudaStream_t);             \
  template bool launch_group_nnls<K, double, float>(const NnlsColumns<double, float>&, cudaStream_t);           \
  template bool launch_group_nnls<K, double, double>(const NnlsColumns<double, double>&, cudaStream_t);         \
  template bool launch_group_support<K, float>(const SupportColumns<float>&, uint8_t*, cudaStream_t);           \
  template bool launch_group_support<K, double>(const SupportColumns<double>&, uint8_t*, cudaStream_t);         \
  }                                                                                                             \
  }
