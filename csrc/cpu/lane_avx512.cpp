// The lane kernels (lane_kernels.h) compiled for AVX512F, chosen at run time (lane_solver.cpp), with the
// contraction of a * b + c into one rounding turned off (the scalar solver has none: lane_isa.h).
#include "lane_isa.h"

#if NEURALNMF_LANES
#include <immintrin.h>  // (each intrinsic carries its own target: nothing here is compiled for AVX-512 by default)
#define NEURALNMF_LANES_SQRT(v) ((V)_mm512_mask_sqrt_pd((__m512d)(v), 0xFF, (__m512d)(v)))  // IEEE sqrt per lane
// base[idx] in the lanes where live is set, src elsewhere
#define NEURALNMF_LANES_GATHER(src, live, idx, base)                                                         \
  ((V)_mm512_mask_i64gather_pd((__m512d)(src), _mm512_test_epi64_mask((__m512i)(live), (__m512i)(live)), \
                               (__m512i)(idx), (base), 8))
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f"))), apply_to = function)
#pragma clang fp contract(off)
#else
#pragma GCC push_options
#pragma GCC target("avx512f")
#pragma GCC optimize("fp-contract=off")
#endif

namespace neuralnmf {
namespace cpu {
namespace avx512 {
#include "lane_kernels.h"
LaneKernel kernel() { return &lanes_solve_group; }
}  // namespace avx512
}  // namespace cpu
}  // namespace neuralnmf

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif
