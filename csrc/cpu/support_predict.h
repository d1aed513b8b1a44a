// A guess of the NNLS supports of a block of columns, made with BLAS-3 work, to warm-start the exact per-column
// solver (csrc/common/column_solver.h).
//
// Why: from a cold start, block principal pivoting needs about 3 factorizations of a k/2-sized block per column
// at ranks 32 to 256, each a scalar loop at a few GFLOP/s, while the A^T X GEMM beside it runs at BLAS speed.
// Started from the right support, it needs one factorization and the KKT check.
//
// How: a few sweeps of projected Gauss-Seidel on the dual linear complementarity problem
//     x = u + H y >= 0,  y >= 0,  x_i y_i = 0        (u = H b, H = G^{-1}, y = G x - b the dual)
// for all columns of the block at once, the variables in groups of kGroup: inside a group the updates are
// rank-one sweeps over the block's columns, and each group's effect on the other variables is one GEMM
// (k x kGroup by kGroup x n). The guess is the set {i : y_i = 0}.
//
// In float32 whatever the input dtype: half the memory traffic of float64 and twice the GEMM rate. The guess
// only chooses where pivoting starts, so its rounding is free to differ from the solve's.
//
// Only a starting point: the solver checks the KKT conditions and pivots from there, and the S it returns is
// a function of (G, b, final support) alone, computed by a fresh factorization of that support. So a guess
// that is wrong, or rounds differently with another block composition, costs time and never changes bits.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "scaled_gram.h"

namespace neuralnmf {
namespace cpu {

class SupportPredictor {
 public:
  static constexpr int64_t kMinRank = 16;  // below, pivoting from the unconstrained solution is cheap enough
  static constexpr int64_t kTile = 512;    // columns per block (the scratch stays in the caches)
  static constexpr int64_t kGroup = 8;     // variables per Gauss-Seidel group
  static constexpr int64_t kMinColumns = 64;  // smaller tiles (small problems, a chunk's tail) start cold
  // Sweeps per block from the mean number of negative entries of u per column (none below kMinNegative):
  // 1 + (negatives + 4) / 8, at most kMaxSweeps. Measured on uniform data, 1 thread, M = 20000: N=500 k=32
  // (8 negatives) best at 2-3 sweeps, k=64 (24) at 4-6, k=128 (56) and 256 (122) at 6-8; N=2000 k=32
  // (3 negatives) was slower with any guess. At N=500 k=64 four sweeps leave 1.26 factorizations per column
  // where a cold start needs 2.9 after the unconstrained solution.
  static constexpr double kMinNegative = 4.0;
  static constexpr int kMaxSweeps = 6;

  // Whether the guess pays for this Gram matrix (G nonsingular, rank large enough).
  static bool worth_it(const ScaledGram& g) { return !g.H.empty() && g.kr >= kMinRank; }

  explicit SupportPredictor(const ScaledGram& g);

  // B: the n <= kTile scaled right-hand sides, column j's b_i at B[j * kr + i]. Writes passive[j * kr + i] in
  // {0, 1} and returns true, or returns false (passive untouched) when the block's unconstrained solutions are
  // nearly feasible: the solver then starts cold, as without a guess.
  bool predict(const double* B, int64_t n, uint8_t* passive);

 private:
  int64_t kr_;
  std::vector<float> H_;       // kr x kr, row-major: the Gram's inverse, rounded to float32
  std::vector<float> B_;       // kTile x kr: the block's right-hand sides, rounded to float32
  std::vector<float> X_;       // kr x kTile: x = u + H y
  std::vector<float> Y_;       // kr x kTile: the dual y
  std::vector<float> dY_;      // kGroup x kTile: the group's change of y
  std::vector<float> hinv_;    // 1 / H_ii
  std::vector<float> delta_;   // kGroup x kTile: updates inside the current group
};

}  // namespace cpu
}  // namespace neuralnmf
