// The lane kernels (lane_kernels.h) compiled for AVX512F, chosen at run time (lane_solver.cpp), with the
// contraction of a * b + c into one rounding turned off (the scalar solver has none: lane_isa.h).
#include "lane_isa.h"

#if NEURALNMF_LANES
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
