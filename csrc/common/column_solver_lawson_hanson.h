// ColumnSolver::lawson_hanson (csrc/common/column_solver.h): the active-set method the solver falls back on when
// block principal pivoting cannot be trusted (G singular to working precision, or pivoting out of iterations).
// Out of line only to keep each source file short; included at the end of column_solver.h.
#pragma once

#include "column_solver.h"

namespace neuralnmf {

NNLS_HD inline int32_t ColumnSolver::lawson_hanson(const double* b, int64_t max_outer, double* x) {
  const int n = n_;
  uint8_t* F = ws_.F;
  uint8_t* blocked = ws_.flag;
  double* z = ws_.z;
  double* gradient = ws_.grad;  // b - G x
  for (int i = 0; i < n; ++i) {
    gradient[i] = b[i];
    F[i] = 0;
    x[i] = 0.0;
  }
  for (int64_t outer = 0; outer < max_outer; ++outer) {
    const double tol = dual_tolerance(x);
    for (int i = 0; i < n; ++i) blocked[i] = 0;
    for (;;) {
      int t = -1;
      double top = tol;
      for (int i = 0; i < n; ++i) {
        if (!F[i] && !blocked[i] && gradient[i] > top) {
          top = gradient[i];
          t = i;
        }
      }
      if (t < 0) return kConverged;  // no variable can decrease the objective: KKT holds
      F[t] = 1;
      if (solve_passive(F, b, z, nullptr) && z[t] > 0.0) break;
      F[t] = 0;  // a_t is (numerically) in the span of the passive columns: try the next one
      blocked[t] = 1;
    }
    for (int inner = 0;; ++inner) {
      bool feasible = true;
      for (int i = 0; i < n; ++i) feasible = feasible && (!F[i] || z[i] > 0.0);
      if (feasible) {
        for (int i = 0; i < n; ++i) x[i] = F[i] ? z[i] : 0.0;
        break;
      }
      if (inner >= n) return kNotConverged;
      double alpha = INFINITY;
      int arg = -1;
      for (int i = 0; i < n; ++i) {
        if (F[i] && z[i] <= 0.0) {
          const double a = x[i] / (x[i] - z[i]);
          if (a < alpha) {
            alpha = a;
            arg = i;
          }
        }
      }
      for (int i = 0; i < n; ++i) {
        if (F[i]) x[i] += alpha * (z[i] - x[i]);
      }
      F[arg] = 0;
      x[arg] = 0.0;
      for (int i = 0; i < n; ++i) {
        if (F[i] && x[i] <= 0.0) {
          F[i] = 0;
          x[i] = 0.0;
        }
      }
      if (!solve_passive(F, b, z, nullptr)) return kNotConverged;  // x is still feasible
    }
    for (int i = 0; i < n; ++i) {
      const double* Gi = G_ + i * n;
      double s = b[i];
      for (int j = 0; j < n; ++j) s -= Gi[j] * x[j];
      gradient[i] = s;
    }
  }
  return kNotConverged;
}

}  // namespace neuralnmf
