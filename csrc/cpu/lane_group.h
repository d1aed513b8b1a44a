// One group of 8 columns solved side by side in SIMD lanes (lane_kernels.h): the plain-data interface between
// the scheduler (lane_solver.cpp, compiled for the baseline ISA) and the kernels compiled per instruction set
// (lane_avx512.cpp), which includes it before it switches the instruction set.
#pragma once

#include <stdint.h>

namespace neuralnmf {
namespace cpu {

constexpr int kLanes = 8;

struct LaneGroup {
  int n;                // rank (kr): G and H are n x n, row-major, exactly symmetric
  const double* G;      // the Jacobi-scaled Gram matrix
  const double* H;      // its inverse
  const double* B;      // the tile's right-hand sides: column t's b_i at B[t * n + i]
  uint8_t* F;           // the tile's passive sets, F[t * n + i]: read; flipped where the KKT test fails
  double* X;            // x of the columns that pass, X[t * n + i]
  int cols[kLanes];     // the group's tile columns (a short group repeats its last column)
  int count;            // how many lanes are real
  int dual;             // 1: every lane has |Z| < |F| and is solved on the dual side (through H)
  int8_t status[kLanes];  // out: 1 KKT holds (X written), 0 not yet (F flipped), -1 singular (F as read)
  double* scratch;      // lane_scratch_doubles(n) doubles, 64-byte aligned
};

// Doubles of scratch one group needs at rank n: 10 vectors of n lanes, a packed triangle, 2 lists per lane.
inline int64_t lane_scratch_doubles(int64_t n) {
  return kLanes * (10 * n + n * (n + 1) / 2) + kLanes * 2 * n + 2 * kLanes;
}

// The kernel of one instruction set; returns nothing, fills status.
using LaneKernel = void (*)(LaneGroup& g);

}  // namespace cpu
}  // namespace neuralnmf
