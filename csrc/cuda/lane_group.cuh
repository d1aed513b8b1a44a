// A group of L lanes of one warp (L a power of two, 1..32) that cooperate on one column, and the collective
// operations the per-column solvers (group_solver.cuh) are written against:
//
//   lane()            this lane's rank in the group, 0..L-1
//   sync()            __syncwarp over the group: orders shared-memory writes before later reads
//   sum(double)       the xor-butterfly sum over the group (every lane gets the same bits)
//   max(double/int)   maximum over the group; count(bool) how many lanes hold true
//   umax(unsigned)    maximum of unsigned integers over the group (one instruction on the device)
//   ballot(bool)      bit l set when lane l holds true;  below(): the bits of the lanes ranked under this one
//   bcast(v, src)     lane src's v
//
// Every collective is called by all lanes of a group, in the same order (group-uniform control flow). The
// device version (WarpLanes, below) uses warp shuffles; the host version (lane_group_host.h, for tests)
// runs the lanes one after another, switching lanes at each collective, and checks that every lane calls the
// same collectives in the same order. Code written against this interface therefore runs, unchanged, on the
// host with the same decisions and, up to FMA contraction, the same numbers as on the device.
#pragma once

#include <stdint.h>

#include "../common/dense_small.h"

#ifdef __CUDACC__
#define NNLS_FI __host__ __device__ __forceinline__
#else
#define NNLS_FI inline
#endif

namespace neuralnmf {
namespace cuda {

NNLS_FI int popcount(unsigned v) {
#ifdef __CUDA_ARCH__
  return __popc(v);
#else
  return __builtin_popcount(v);
#endif
}

// Position of the highest set bit of v != 0.
NNLS_FI int highest_bit(unsigned v) {
#ifdef __CUDA_ARCH__
  return 31 - __clz(v);
#else
  return 31 - __builtin_clz(v);
#endif
}

// The xor-butterfly sum of values[0..L): what every lane of WarpLanes<L>::sum returns, computed the same way
// (the host emulation calls it; level o adds each value to its partner's, as __shfl_xor_sync does).
NNLS_FI double butterfly_sum(double* values, int L) {
  for (int o = L / 2; o > 0; o >>= 1) {
    double next[32];
    for (int l = 0; l < L; ++l) next[l] = values[l] + values[l ^ o];
    for (int l = 0; l < L; ++l) values[l] = next[l];
  }
  return values[0];
}

#ifdef __CUDACC__
template <int L>
struct WarpLanes {
  static_assert(L >= 1 && L <= 32 && (L & (L - 1)) == 0, "a lane group is a power of two of at most 32 lanes");
  static constexpr int kSize = L;
  unsigned mask_;   // the group's lanes in the warp
  int lane_;        // rank in the group
  int shift_;       // first warp lane of the group

  __device__ __forceinline__ WarpLanes() {
    const int l = static_cast<int>(threadIdx.x & 31u);
    lane_ = l & (L - 1);
    shift_ = l & ~(L - 1);
    mask_ = L == 32 ? 0xffffffffu : (((1u << L) - 1u) << shift_);
  }
  __device__ __forceinline__ int lane() const { return lane_; }
  __device__ __forceinline__ void sync() const { __syncwarp(mask_); }
  __device__ __forceinline__ double sum(double v) const {
#pragma unroll
    for (int o = L / 2; o > 0; o >>= 1) v += __shfl_xor_sync(mask_, v, o, L);
    return v;
  }
  __device__ __forceinline__ double max(double v) const {
#pragma unroll
    for (int o = L / 2; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(mask_, v, o, L));
    return v;
  }
  __device__ __forceinline__ int max(int v) const {
#pragma unroll
    for (int o = L / 2; o > 0; o >>= 1) {
      const int w = __shfl_xor_sync(mask_, v, o, L);
      v = w > v ? w : v;
    }
    return v;
  }
  __device__ __forceinline__ unsigned umax(unsigned v) const { return __reduce_max_sync(mask_, v); }
  __device__ __forceinline__ unsigned ballot(bool p) const {
    return (__ballot_sync(mask_, p) & mask_) >> shift_;
  }
  __device__ __forceinline__ int count(bool p) const { return __popc(ballot(p)); }
  __device__ __forceinline__ unsigned below() const { return (1u << lane_) - 1u; }
  __device__ __forceinline__ double bcast(double v, int src) const { return __shfl_sync(mask_, v, src, L); }
  __device__ __forceinline__ int bcast(int v, int src) const { return __shfl_sync(mask_, v, src, L); }
};
#endif

}  // namespace cuda
}  // namespace neuralnmf
