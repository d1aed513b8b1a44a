#include "column_solver.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "dense_small.h"

namespace neuralnmf {
namespace cpu {
namespace {

// A pivot below this fraction of its diagonal entry marks a subproblem as singular. G has a unit diagonal,
// so this is about the reciprocal of the largest condition number a passive block may have.
constexpr double kPivotRtol = 1e-12;
constexpr int kBackupChances = 3;  // full exchanges allowed without progress before the backup rule (p-bar)

}  // namespace

ColumnSolver::ColumnSolver(const ScaledGram& g)
    : g_(g),
      n_(static_cast<int>(g.kr)),
      M_(g.kr * g.kr),
      w_(g.kr),
      y_(g.kr),
      z_(g.kr),
      grad_(g.kr),
      in_(g.kr),
      out_(g.kr),
      F_(g.kr),
      blocked_(g.kr) {}

double ColumnSolver::dual_tolerance(const double* x) const {
  double xmax = 0.0;
  for (int i = 0; i < n_; ++i) xmax = std::max(xmax, std::abs(x[i]));
  return 4.0 * n_ * std::numeric_limits<double>::epsilon() * (n_ * xmax + 1.0);
}

bool ColumnSolver::solve_passive(const uint8_t* F, const double* b, double* x, double* y) {
  const int n = n_;
  const double* G = g_.G.data();
  int p = 0, z = 0;
  for (int i = 0; i < n; ++i) {
    if (F[i]) in_[p++] = i; else out_[z++] = i;
  }
  double* M = M_.data();
  double* w = w_.data();
  for (int a = 0; a < p; ++a) {
    const double* Gi = G + in_[a] * n;
    for (int c = 0; c <= a; ++c) M[a * p + c] = Gi[in_[c]];
  }
  if (p > 0 && !cholesky_inplace(M, p, kPivotRtol)) return false;
  for (int a = 0; a < p; ++a) w[a] = b[in_[a]];
  if (p > 0) cholesky_solve_inplace(M, p, w);
  for (int a = 0; a < p; ++a) {
    x[in_[a]] = w[a];
    y[in_[a]] = 0.0;
  }
  for (int c = 0; c < z; ++c) {
    const int i = out_[c];
    const double* Gi = G + i * n;
    double s = -b[i];
    for (int a = 0; a < p; ++a) s += Gi[in_[a]] * w[a];
    x[i] = 0.0;
    y[i] = s;
  }
  return true;
}

bool ColumnSolver::solve_dual(const uint8_t* F, const double* u, double* x, double* y) {
  const int n = n_;
  const double* H = g_.H.data();
  int p = 0, z = 0;
  for (int i = 0; i < n; ++i) {
    if (F[i]) in_[p++] = i; else out_[z++] = i;
  }
  double* M = M_.data();
  double* w = w_.data();
  for (int a = 0; a < z; ++a) {
    const double* Hi = H + out_[a] * n;
    for (int c = 0; c <= a; ++c) M[a * z + c] = Hi[out_[c]];
  }
  if (z > 0 && !cholesky_inplace(M, z, kPivotRtol)) return false;
  for (int a = 0; a < z; ++a) w[a] = u[out_[a]];
  if (z > 0) cholesky_solve_inplace(M, z, w);
  for (int a = 0; a < z; ++a) {
    x[out_[a]] = 0.0;
    y[out_[a]] = -w[a];
  }
  for (int c = 0; c < p; ++c) {
    const int i = in_[c];
    const double* Hi = H + i * n;
    double s = u[i];
    for (int a = 0; a < z; ++a) s -= Hi[out_[a]] * w[a];
    x[i] = s;
    y[i] = 0.0;
  }
  return true;
}

bool ColumnSolver::subproblem(const uint8_t* F, const double* b, const double* u, double* x, double* y) {
  last_dual_ = false;
  if (u != nullptr) {
    int p = 0;
    for (int i = 0; i < n_; ++i) p += F[i];
    if (n_ - p < p && solve_dual(F, u, x, y)) {
      last_dual_ = true;
      return true;
    }
  }
  return solve_passive(F, b, x, y);
}

void ColumnSolver::refine_dual(const double* b, double* x) {
  // The dual path goes through H = G^{-1}, whose error grows with cond(G); one step of iterative refinement
  // on the passive equations G_PP x_P = b_P brings the residual back to the round-off of G itself.
  // Uses the factor of H_ZZ and the index lists left by the last solve_dual.
  const int n = n_;
  const double* G = g_.G.data();
  const double* H = g_.H.data();
  int p = 0, z = 0;
  for (int i = 0; i < n; ++i) {
    if (F_[i]) in_[p++] = i; else out_[z++] = i;
  }
  double* r = z_.data();
  for (int a = 0; a < p; ++a) {
    const int i = in_[a];
    const double* Gi = G + i * n;
    double s = b[i];
    for (int c = 0; c < p; ++c) s -= Gi[in_[c]] * x[in_[c]];
    r[a] = s;
  }
  double* w = w_.data();
  for (int a = 0; a < z; ++a) {
    const double* Hi = H + out_[a] * n;
    double s = 0.0;
    for (int c = 0; c < p; ++c) s += Hi[in_[c]] * r[c];
    w[a] = s;
  }
  if (z > 0) cholesky_solve_inplace(M_.data(), z, w);
  for (int a = 0; a < p; ++a) {
    const double* Hi = H + in_[a] * n;
    double s = 0.0;
    for (int c = 0; c < p; ++c) s += Hi[in_[c]] * r[c];
    for (int c = 0; c < z; ++c) s -= Hi[out_[c]] * w[c];
    x[in_[a]] += s;
  }
}

int32_t ColumnSolver::solve(const double* b, const double* u, const uint8_t* passive0, int64_t max_iter,
                            double* x) {
  const int n = n_;
  const int64_t bpp_iters = max_iter > 0 ? max_iter : 5 * static_cast<int64_t>(n) + 10;
  const int64_t lh_iters = max_iter > 0 ? max_iter : 3 * static_cast<int64_t>(n) + 10;
  if (g_.H.empty()) u = nullptr;
  if (u == nullptr) {
    // G is singular to working precision: pivoting has no guarantee there; Lawson-Hanson has.
    return lawson_hanson(b, lh_iters, x) == kConverged ? kFallback : kNotConverged;
  }
  uint8_t* F = F_.data();
  uint8_t* bad = blocked_.data();
  double* y = y_.data();
  if (passive0 != nullptr) {
    std::copy(passive0, passive0 + n, F);
  } else {
    std::fill(F, F + n, uint8_t{1});  // the unconstrained solution u: free, it is precomputed
  }
  int best = n + 1;
  int chances = kBackupChances;
  for (int64_t it = 0; it < bpp_iters; ++it) {
    if (!subproblem(F, b, u, x, y)) break;
    const double tol = dual_tolerance(x);
    int nbad = 0, last = -1;
    for (int i = 0; i < n; ++i) {
      bad[i] = F[i] ? (x[i] < 0.0) : (y[i] < -tol);
      if (bad[i]) {
        ++nbad;
        last = i;
      }
    }
    if (nbad == 0) {
      if (last_dual_) refine_dual(b, x);
      return kConverged;
    }
    if (nbad < best) {
      best = nbad;
      chances = kBackupChances;
    } else if (chances > 0) {
      --chances;
    } else {
      F[last] ^= 1;  // backup rule: exchange only the largest infeasible index (guarantees termination)
      continue;
    }
    for (int i = 0; i < n; ++i) F[i] ^= bad[i];
  }
  return lawson_hanson(b, lh_iters, x) == kConverged ? kFallback : kNotConverged;
}

int32_t ColumnSolver::lawson_hanson(const double* b, int64_t max_outer, double* x) {
  const int n = n_;
  const double* G = g_.G.data();
  uint8_t* F = F_.data();
  uint8_t* blocked = blocked_.data();
  double* z = z_.data();
  double* y = y_.data();
  double* gradient = grad_.data();  // b - G x
  std::copy(b, b + n, gradient);
  std::fill(F, F + n, uint8_t{0});
  std::fill(x, x + n, 0.0);
  for (int64_t outer = 0; outer < max_outer; ++outer) {
    const double tol = dual_tolerance(x);
    std::fill(blocked, blocked + n, uint8_t{0});
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
      if (solve_passive(F, b, z, y) && z[t] > 0.0) break;
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
      double alpha = std::numeric_limits<double>::infinity();
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
      if (!solve_passive(F, b, z, y)) return kNotConverged;  // x is still feasible
    }
    for (int i = 0; i < n; ++i) {
      const double* Gi = G + i * n;
      double s = b[i];
      for (int j = 0; j < n; ++j) s -= Gi[j] * x[j];
      gradient[i] = s;
    }
  }
  return kNotConverged;
}

bool ColumnSolver::solve_on_support(const uint8_t* passive, const double* r, double* v) {
  const int n = n_;
  double* y = y_.data();
  int p = 0;
  for (int i = 0; i < n; ++i) p += passive[i];
  if (!g_.H.empty() && n - p < p) {
    // u = H r with r restricted to the support
    double* u = z_.data();
    const double* H = g_.H.data();
    for (int i = 0; i < n; ++i) {
      const double* Hi = H + i * n;
      double s = 0.0;
      for (int c = 0; c < n; ++c) {
        if (passive[c]) s += Hi[c] * r[c];
      }
      u[i] = s;
    }
    if (solve_dual(passive, u, v, y)) return true;
  }
  return solve_passive(passive, r, v, y);
}

}  // namespace cpu
}  // namespace neuralnmf
