// Exact solves of many columns side by side: block principal pivoting with the subproblems of 8 columns in the
// lanes of one SIMD register (lane_kernels.h), for a tile of columns whose supports were guessed
// (support_predict.h). A few rounds: each groups the tile's unfinished columns by the side and size of their
// subproblem, solves every group, keeps the columns that pass the KKT test and exchanges the infeasible
// variables of the others. What is left after the rounds goes to the scalar ColumnSolver, from where the lanes
// stopped.
//
// The columns that pass carry the scalar solver's x to the bit: the lanes do its operations in its order on the
// final support (see lane_kernels.h), and S stays a function of (G, b, final support) alone.
#pragma once

#include <cstdint>
#include <vector>

#include "lane_group.h"

namespace neuralnmf {
namespace cpu {

class LaneSolver {
 public:
  static constexpr int kRounds = 3;  // pivoting rounds in the lanes before the scalar solver takes over

  // The kernel for this CPU, or nullptr: no kernel in this build (lane_isa.h), a CPU without AVX-512F, or the
  // environment variable NEURALNMF_LANES=off when the process started (tests compare both).
  static LaneKernel kernel();

  // G, H: the n x n scaled Gram matrix and its inverse (both exactly symmetric). kernel() must not be nullptr.
  LaneSolver(int64_t n, const double* G, const double* H);

  // B: cols right-hand sides (column t's at B[t * n]); F: their passive sets, the start on entry; use[t] = 0
  // leaves column t out. Sets done[t] = 1 and writes X[t * n..] for each column solved; for the others
  // (done[t] = 0) F[t * n..] is where the scalar solver should continue.
  void solve(const double* B, int64_t cols, const uint8_t* use, uint8_t* F, double* X, uint8_t* done);

 private:
  int64_t n_;
  const double* G_;
  const double* H_;
  LaneKernel kernel_;
  std::vector<double> scratch_;
  std::vector<int> pending_, order_, count_;
  std::vector<int> key_;
};

}  // namespace cpu
}  // namespace neuralnmf
