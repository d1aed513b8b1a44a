// Exact NNLS for one column on a prepared, Jacobi-scaled Gram matrix:  min_{x >= 0} 1/2 x^T G x - b^T x.
// Header-only and free of the standard library so that the CPU kernels and (compiled by nvcc) the CUDA
// kernels run the same code; the caller owns the workspace.
//
// Method: block principal pivoting (Kim & Park 2011) with the backup rule, which exchanges every infeasible
// variable at once and so needs 1-3 solves per column where Lawson-Hanson needs about k. Each solve on the
// passive set F is done on whichever side is smaller:
//   |F| <= |Z|:  Cholesky of G_FF            x_F = G_FF^{-1} b_F,         y_Z = G_ZF x_F - b_Z
//   |Z| <  |F|:  Cholesky of H_ZZ (H = G^-1)  y_Z = -H_ZZ^{-1} u_Z (u = H b), x = u + H_:Z y_Z
// followed, on the H path, by one step of iterative refinement. Lawson-Hanson (the algorithm of
// scipy.optimize.nnls, on the Gram matrix) takes over when G is singular (duplicate columns, k > N), when a
// subproblem is singular, or when pivoting exceeds its iteration bound; it keeps the passive columns linearly
// independent and so always returns a finite optimal point.
#pragma once

#include <float.h>
#include <stdint.h>

#include "dense_small.h"

namespace neuralnmf {

enum SolveStatus : int32_t {
  kConverged = 0,     // block principal pivoting reached the KKT point
  kFallback = 1,      // Lawson-Hanson reached the KKT point
  kNotConverged = -1  // iteration bound hit: x is feasible but not certified optimal
};

// A pivot below this fraction of its diagonal entry marks a subproblem as singular. G has a unit diagonal,
// so this is about the reciprocal of the largest condition number a passive block may have.
constexpr double kPivotRtol = 1e-12;
constexpr int kBackupChances = 3;  // full exchanges allowed without progress before the backup rule (p-bar)

// Scratch for one column: M n*n doubles; w, y, z, grad n doubles each; in, out n ints; F, flag n bytes.
struct ColumnWorkspace {
  double* M;
  double* w;
  double* y;
  double* z;
  double* grad;
  int* in;
  int* out;
  uint8_t* F;
  uint8_t* flag;
};

class ColumnSolver {
 public:
  // G: n x n row-major, unit diagonal, exactly symmetric (rows are read in place of columns). H: its inverse
  // (exactly symmetric too), or nullptr when G is singular to working precision.
  NNLS_HD ColumnSolver(int n, const double* G, const double* H, ColumnWorkspace ws) : n_(n), G_(G), H_(H), ws_(ws) {}

  // b: scaled right-hand side (n), max |b| <= 1. u: H b (n), or nullptr to have it formed here the first
  // time a subproblem is solved on the dual side (sparse codes never need it). passive0: initial passive set
  // (n flags, 0 or 1) for a warm start, or nullptr. max_iter <= 0 selects the defaults. Writes x (n), x >= 0
  // up to round-off (callers clamp). Returns a SolveStatus.
  NNLS_HD int32_t solve(const double* b, const double* u, const uint8_t* passive0, int64_t max_iter, double* x) {
    const int n = n_;
    const int64_t bpp_iters = max_iter > 0 ? max_iter : 5 * static_cast<int64_t>(n) + 10;
    const int64_t lh_iters = max_iter > 0 ? max_iter : 3 * static_cast<int64_t>(n) + 10;
    if (H_ == nullptr) {
      // G is singular to working precision: pivoting has no guarantee there; Lawson-Hanson has.
      return lawson_hanson(b, lh_iters, x) == kConverged ? kFallback : kNotConverged;
    }
    u_ = u;
    uint8_t* F = ws_.F;
    uint8_t* bad = ws_.flag;
    double* y = ws_.y;
    for (int i = 0; i < n; ++i) F[i] = passive0 != nullptr ? passive0[i] : uint8_t{1};  // all: x = u, free
    int best = n + 1;
    int chances = kBackupChances;
    for (int64_t it = 0; it < bpp_iters; ++it) {
      if (!subproblem(F, b, x, y)) break;
      const double tol = dual_tolerance(x);
      // Infeasible: x_i < 0 on F or y_i < -tol off F. Both subproblem solvers leave x = 0 off F and y = 0 on F,
      // and tol > 0, so the test needs no branch on F.
      int nbad = 0, last = -1;
      for (int i = 0; i < n; ++i) {
        const uint8_t bi = (x[i] < 0.0) | (y[i] < -tol);
        bad[i] = bi;
        nbad += bi;
        last = bi ? i : last;
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

  // w <- G_FF^{-1} w for the p indices F = in[0..p) (w packed: w[a] belongs to in[a]), through the Cholesky
  // factor of G_FF. False when G_FF is singular to working precision. For callers that hold the support as
  // a list: the solve on the passive side without any pass over all n indices.
  NNLS_HD bool solve_packed(const int* in, int p, double* w) {
    if (p == 0) return true;
    double* M = ws_.M;
    for (int a = 0; a < p; ++a) {
      const double* Gi = G_ + in[a] * n_;
      for (int c = 0; c <= a; ++c) M[a * p + c] = Gi[in[c]];
    }
    if (!cholesky_inplace(M, p, kPivotRtol)) return false;
    cholesky_solve_inplace(M, p, w);
    return true;
  }

  // Equality-constrained solve on a given support: v_P = G_PP^{-1} r_P, v = 0 elsewhere (the backward pass).
  // Returns false when G_PP is singular to working precision. No dual is formed: nothing reads it.
  NNLS_HD bool solve_on_support(const uint8_t* passive, const double* r, double* v) {
    const int n = n_;
    int p = 0;
    for (int i = 0; i < n; ++i) p += passive[i];
    if (H_ != nullptr && n - p < p) {
      double* u = ws_.z;  // u = H r with r restricted to the support: the rows of H (= its columns) on P
      for (int i = 0; i < n; ++i) u[i] = 0.0;
      for (int c = 0; c < n; ++c) {
        if (!passive[c]) continue;
        const double rc = r[c];
        const double* Hc = H_ + c * n;
        for (int i = 0; i < n; ++i) u[i] += Hc[i] * rc;
      }
      if (solve_dual(passive, u, v, ws_.y)) return true;
    }
    return solve_passive(passive, r, v, nullptr);
  }

 private:
  NNLS_HD double dual_tolerance(const double* x) const {
    double xmax = 0.0;  // x is finite here (a NaN would have failed the Cholesky); no fmax call needed
    for (int i = 0; i < n_; ++i) {
      const double v = fabs(x[i]);
      xmax = v > xmax ? v : xmax;
    }
    return 4.0 * n_ * DBL_EPSILON * (n_ * xmax + 1.0);
  }

  NNLS_HD void split(const uint8_t* F, int& p, int& z) {
    p = 0;
    z = 0;
    for (int i = 0; i < n_; ++i) {  // branch-free: which side an index falls on is data, not a pattern
      const int f = F[i] != 0;
      ws_.in[p] = i;
      ws_.out[z] = i;
      p += f;
      z += 1 - f;
    }
  }

  // Solves for x (zero off F) and the dual y = G x - b (zero on F). False when singular.
  NNLS_HD bool subproblem(const uint8_t* F, const double* b, double* x, double* y) {
    last_dual_ = false;
    int p, z;
    split(F, p, z);
    if (z < p && dual_side(p, z, dual_rhs(b), x, y)) {
      last_dual_ = true;
      return true;
    }
    return passive_side(p, b, x, y);
  }

  // u = H b: the caller's, or formed once per solve in ws_.grad (which only Lawson-Hanson, after pivoting
  // has given up, reuses). H's rows are its columns, so u is a sum of contiguous rows.
  NNLS_HD const double* dual_rhs(const double* b) {
    if (u_ != nullptr) return u_;
    const int n = n_;
    double* u = ws_.grad;
    for (int i = 0; i < n; ++i) u[i] = 0.0;
    for (int c = 0; c < n; ++c) {
      const double bc = b[c];
      const double* Hc = H_ + c * n;
      for (int i = 0; i < n; ++i) u[i] += Hc[i] * bc;
    }
    u_ = u;
    return u;
  }

  // x = G_FF^{-1} b_F on F, 0 elsewhere; with y, also the dual y = G x - b (0 on F).
  NNLS_HD bool solve_passive(const uint8_t* F, const double* b, double* x, double* y) {
    int p, z;
    split(F, p, z);
    return passive_side(p, b, x, y);
  }

  // solve_passive on the index lists that split() left in the workspace.
  NNLS_HD bool passive_side(int p, const double* b, double* x, double* y) {
    const int n = n_;
    const int* in = ws_.in;
    double* w = ws_.w;
    for (int a = 0; a < p; ++a) w[a] = b[in[a]];
    if (!solve_packed(in, p, w)) return false;
    for (int i = 0; i < n; ++i) x[i] = 0.0;
    for (int a = 0; a < p; ++a) x[in[a]] = w[a];
    if (y == nullptr) return true;
    // y = G_:F x_F - b as a sum of p contiguous rows of G (its columns: G is symmetric), the same terms in
    // the same order as the inner products G_iF x_F, but vectorisable; then zero on F.
    // Four rows per sweep keep the partial sums in registers; the additions stay in order.
    for (int i = 0; i < n; ++i) y[i] = -b[i];
    int a = 0;
    for (; a + 4 <= p; a += 4) {
      const double w0 = w[a], w1 = w[a + 1], w2 = w[a + 2], w3 = w[a + 3];
      const double *G0 = G_ + in[a] * n, *G1 = G_ + in[a + 1] * n, *G2 = G_ + in[a + 2] * n, *G3 = G_ + in[a + 3] * n;
      for (int i = 0; i < n; ++i) y[i] = (((y[i] + G0[i] * w0) + G1[i] * w1) + G2[i] * w2) + G3[i] * w3;
    }
    for (; a < p; ++a) {
      const double wa = w[a];
      const double* Ga = G_ + in[a] * n;
      for (int i = 0; i < n; ++i) y[i] += Ga[i] * wa;
    }
    for (int c = 0; c < p; ++c) y[in[c]] = 0.0;
    return true;
  }

  NNLS_HD bool solve_dual(const uint8_t* F, const double* u, double* x, double* y) {
    int p, z;
    split(F, p, z);
    return dual_side(p, z, u, x, y);
  }

  // solve_dual on the index lists that split() left in the workspace.
  NNLS_HD bool dual_side(int p, int z, const double* u, double* x, double* y) {
    const int n = n_;
    const int* in = ws_.in;
    const int* out = ws_.out;
    double* M = ws_.M;
    double* w = ws_.w;
    for (int a = 0; a < z; ++a) {
      const double* Hi = H_ + out[a] * n;
      for (int c = 0; c <= a; ++c) M[a * z + c] = Hi[out[c]];
    }
    if (z > 0 && !cholesky_inplace(M, z, kPivotRtol)) return false;
    for (int a = 0; a < z; ++a) w[a] = u[out[a]];
    if (z > 0) cholesky_solve_inplace(M, z, w);
    for (int a = 0; a < z; ++a) {
      x[out[a]] = 0.0;
      y[out[a]] = -w[a];
    }
    // x_i = u_i - H_iZ w for i on F: four rows at a time (independent sums, each in its own order)
    int c = 0;
    for (; c + 4 <= p; c += 4) {
      const int* i4 = in + c;
      double s[4] = {u[i4[0]], u[i4[1]], u[i4[2]], u[i4[3]]};
      gathered_dots4<-1>(H_, n, i4, out, w, z, s);
      for (int r = 0; r < 4; ++r) {
        x[i4[r]] = s[r];
        y[i4[r]] = 0.0;
      }
    }
    for (; c < p; ++c) {
      const int i = in[c];
      const double* Hi = H_ + i * n;
      double s = u[i];
      for (int a = 0; a < z; ++a) s -= Hi[out[a]] * w[a];
      x[i] = s;
      y[i] = 0.0;
    }
    return true;
  }

  // s[r] += SIGN * sum_{c < m} R[rows[r] * n + cols[c]] * v[c] for r = 0..3, each sum in increasing c: the
  // terms and order of four separate loops, whose dependency chains now overlap.
  template <int SIGN>
  NNLS_HD static void gathered_dots4(const double* R, int n, const int* rows, const int* cols, const double* v, int m,
                                     double* s) {
    const double* R0 = R + rows[0] * n;
    const double* R1 = R + rows[1] * n;
    const double* R2 = R + rows[2] * n;
    const double* R3 = R + rows[3] * n;
    double s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3];
    for (int c = 0; c < m; ++c) {
      const int j = cols[c];
      const double vc = v[c];
      if (SIGN > 0) {
        s0 += R0[j] * vc;
        s1 += R1[j] * vc;
        s2 += R2[j] * vc;
        s3 += R3[j] * vc;
      } else {
        s0 -= R0[j] * vc;
        s1 -= R1[j] * vc;
        s2 -= R2[j] * vc;
        s3 -= R3[j] * vc;
      }
    }
    s[0] = s0;
    s[1] = s1;
    s[2] = s2;
    s[3] = s3;
  }

  // The dual path goes through H = G^{-1}, whose error grows with cond(G); one step of iterative refinement
  // on the passive equations G_PP x_P = b_P brings the residual back to the round-off of G itself. Uses the
  // factor of H_ZZ and the index lists left by the last solve_dual.
  NNLS_HD void refine_dual(const double* b, double* x) {
    const int n = n_;
    int p, z;
    split(ws_.F, p, z);
    const int* in = ws_.in;
    const int* out = ws_.out;
    double* r = ws_.z;
    double* w = ws_.w;
    double* xp = ws_.y;  // x on F, packed (y is not read after a converged solve)
    for (int c = 0; c < p; ++c) xp[c] = x[in[c]];
    // Four rows at a time in each product (gathered_dots4: every sum keeps its terms and their order).
    int a = 0;
    for (; a + 4 <= p; a += 4) {
      double s[4] = {b[in[a]], b[in[a + 1]], b[in[a + 2]], b[in[a + 3]]};
      gathered_dots4<-1>(G_, n, in + a, in, xp, p, s);
      for (int q = 0; q < 4; ++q) r[a + q] = s[q];
    }
    for (; a < p; ++a) {
      const double* Gi = G_ + in[a] * n;
      double s = b[in[a]];
      for (int c = 0; c < p; ++c) s -= Gi[in[c]] * xp[c];
      r[a] = s;
    }
    for (a = 0; a + 4 <= z; a += 4) {
      double s[4] = {0.0, 0.0, 0.0, 0.0};
      gathered_dots4<1>(H_, n, out + a, in, r, p, s);
      for (int q = 0; q < 4; ++q) w[a + q] = s[q];
    }
    for (; a < z; ++a) {
      const double* Hi = H_ + out[a] * n;
      double s = 0.0;
      for (int c = 0; c < p; ++c) s += Hi[in[c]] * r[c];
      w[a] = s;
    }
    if (z > 0) cholesky_solve_inplace(ws_.M, z, w);
    for (a = 0; a + 4 <= p; a += 4) {
      double s[4] = {0.0, 0.0, 0.0, 0.0};
      gathered_dots4<1>(H_, n, in + a, in, r, p, s);
      gathered_dots4<-1>(H_, n, in + a, out, w, z, s);
      for (int q = 0; q < 4; ++q) x[in[a + q]] += s[q];
    }
    for (; a < p; ++a) {
      const double* Hi = H_ + in[a] * n;
      double s = 0.0;
      for (int c = 0; c < p; ++c) s += Hi[in[c]] * r[c];
      for (int c = 0; c < z; ++c) s -= Hi[out[c]] * w[c];
      x[in[a]] += s;
    }
  }

  NNLS_HD int32_t lawson_hanson(const double* b, int64_t max_outer, double* x);  // column_solver_lawson_hanson.h

  int n_;
  const double* G_;
  const double* H_;
  ColumnWorkspace ws_;
  const double* u_ = nullptr;  // H b of the current solve, once known
  bool last_dual_ = false;
};

}  // namespace neuralnmf

#include "column_solver_lawson_hanson.h"  // ColumnSolver::lawson_hanson, out of line
