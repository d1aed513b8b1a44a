// Exact NNLS for one column on a prepared ScaledGram:  min_{x >= 0} 1/2 x^T G x - b^T x.
//
// Method: block principal pivoting (Kim & Park 2011) with the backup rule, which exchanges every infeasible
// variable at once and so needs 1-3 solves per column where Lawson-Hanson needs about k. Each solve on the
// passive set F is done on whichever side is smaller:
//   |F| <= |Z|:  Cholesky of G_FF            x_F = G_FF^{-1} b_F,         y_Z = G_ZF x_F - b_Z
//   |Z| <  |F|:  Cholesky of H_ZZ (H = G^-1)  y_Z = -H_ZZ^{-1} u_Z (u = H b), x = u + H_:Z y_Z
// Lawson-Hanson (the algorithm of scipy.optimize.nnls, on the Gram matrix) takes over when G is singular
// (duplicate columns, k > N), when a subproblem is singular, or when pivoting exceeds its iteration bound; it
// keeps the passive columns linearly independent and so always returns a finite optimal point.
#pragma once

#include <cstdint>
#include <vector>

#include "scaled_gram.h"

namespace neuralnmf {
namespace cpu {

enum SolveStatus : int32_t {
  kConverged = 0,     // block principal pivoting reached the KKT point
  kFallback = 1,      // Lawson-Hanson reached the KKT point
  kNotConverged = -1  // iteration bound hit: x is feasible but not certified optimal
};

class ColumnSolver {
 public:
  explicit ColumnSolver(const ScaledGram& g);

  // b: scaled right-hand side (kr), max |b| <= 1. u: H b (kr), or nullptr when H is not used.
  // passive0: initial passive set (kr flags) for a warm start, or nullptr. Writes x (kr), x >= 0.
  int32_t solve(const double* b, const double* u, const uint8_t* passive0, int64_t max_iter, double* x);

  // Equality-constrained solve on a given support: v_P = G_PP^{-1} r_P, v = 0 elsewhere.
  // Returns false when G_PP is singular to working precision.
  bool solve_on_support(const uint8_t* passive, const double* r, double* v);

 private:
  // Solves for x (zero off F) and the dual y = G x - b (zero on F). False when singular.
  bool subproblem(const uint8_t* F, const double* b, const double* u, double* x, double* y);
  bool solve_passive(const uint8_t* F, const double* b, double* x, double* y);
  bool solve_dual(const uint8_t* F, const double* u, double* x, double* y);
  void refine_dual(const double* b, double* x);
  int32_t lawson_hanson(const double* b, int64_t max_outer, double* x);
  double dual_tolerance(const double* x) const;

  const ScaledGram& g_;
  const int n_;
  std::vector<double> M_, w_, y_, z_, grad_;
  std::vector<int> in_, out_;
  std::vector<uint8_t> F_, blocked_;
  bool last_dual_ = false;
};

}  // namespace cpu
}  // namespace neuralnmf
