// Exact NNLS for one column on a prepared, Jacobi-scaled Gram matrix:  min_{x >= 0} 1/2 x^T G x - b^T x.
// Header-only and free of the standard library so that the CPU kernels and (compiled by nvcc) the CUDA
// kernels run the same code; the caller owns the workspace.
//
// Method: block principal pivoting (Kim & Park 2011) with the backup rule, which exchanges every infeasible
// variable at once and so needs 1-3 solves per column where Lawson-Hanson needs about k. Each solve on the
// passive set F is done on whichever side is smaller:
//   |F| <= |Z|:  Cholesky of G_FF            x_F = G_FF^{-1} b_F,         y_Z = G_ZF x_F - b_Z
//   |Z| <  |F|:  Cholesky of H_ZZ (H = G^-1)  y_Z = -H_ZZ^{-1} u_Z (u = H b), x = u + H_:Z y_Z
// followed, on the H path, by one step of iterative refinement. The factor of the side in use is kept from one
// pivoting step to the next and updated when only a few indices change (FactorState below): leaving indices
// are deleted by a rank-one update of the trailing block, entering ones appended by a forward solve, and it is
// rebuilt from scratch when that is cheaper or when an update meets a pivot it cannot trust. Lawson-Hanson (the algorithm of
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
    fac_side_ = kNoFactor;
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
    fac_side_ = kNoFactor;  // ws_.M is about to hold another factor
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

  // Solves for x (zero off F) and the dual y = G x - b (zero on F). False when singular. Reuses (updates) the
  // factor of the previous pivoting step.
  NNLS_HD bool subproblem(const uint8_t* F, const double* b, double* x, double* y) {
    last_dual_ = false;
    int p = 0;
    for (int i = 0; i < n_; ++i) p += F[i] != 0;
    // The side of smaller cost: bringing its factor to the new set (an update of the kept factor, or a rebuild)
    // plus the product with p (passive) or z (dual) rows of G or H. Mostly the smaller side; the kept factor's
    // side while the other is not much smaller, so that a set near n/2 does not rebuild at every step.
    const int z = n_ - p;
    const int64_t passive_cost = factor_cost(F, kPassiveFactor, p) + static_cast<int64_t>(n_) * p;
    const int64_t dual_cost = factor_cost(F, kDualFactor, z) + static_cast<int64_t>(n_) * z;
    if (dual_cost < passive_cost && dual_factored(F, dual_rhs(b), x, y)) {
      last_dual_ = true;
      return true;
    }
    return passive_factored(F, b, x, y);
  }

  // --- the kept factor ---------------------------------------------------------------------------------------
  // FactorState: the Cholesky factor L of S_QQ, S = G (passive side, Q = F in the order of ws_.in) or S = H (dual
  // side, Q = the complement of F in the order of ws_.out), m = |Q|. L is stored column-major in ws_.M with
  // leading dimension n: L(i, c) = M[c * n + i] for i >= c, so that every update and solve runs along
  // contiguous columns, and with the reciprocal of the diagonal in place of the diagonal (a multiplication
  // instead of a division on the critical path of every solve). The order of Q is the order in which indices
  // entered; a rebuild takes them ascending, which gives the factor that a fresh Cholesky of S_QQ gives.
  enum FactorSide : int { kNoFactor = 0, kPassiveFactor = 1, kDualFactor = 2 };

  // Appends index t to the factor of S over list[0..m): row m of L is L^{-1} S_Qt, its diagonal the square
  // root of the Schur complement. False when that pivot falls to <= kPivotRtol S_tt (the same test as
  // cholesky_inplace); the factor over list[0..m) is then unchanged.
  NNLS_HD bool factor_append(const double* S, int* list, int m, int t) {
    const int n = n_;
    double* L = ws_.M;
    double* r = ws_.z;
    const double* St = S + t * n;  // row t = column t (S is exactly symmetric)
    for (int a = 0; a < m; ++a) r[a] = St[list[a]];
    double d = St[t];
    const double diag = d;
    for (int c = 0; c < m; ++c) {
      const double* Lc = L + c * n;
      const double v = r[c] * Lc[c];
      r[c] = v;
      for (int i = c + 1; i < m; ++i) r[i] -= Lc[i] * v;
    }
    d -= dot(r, r, m);
    if (!(d > kPivotRtol * diag) || !(diag > 0.0)) return false;
    for (int c = 0; c < m; ++c) L[c * n + m] = r[c];
    L[m * n + m] = 1.0 / sqrt(d);
    list[m] = t;
    return true;
  }

  // Deletes position q from the factor over list[0..m): rows and columns after q move up by one, and the
  // trailing block absorbs the deleted column by a rank-one update (L22' L22'^T = L22 L22^T + v v^T), which
  // is stable: every new diagonal is at least the old one.
  NNLS_HD void factor_delete(int* list, int m, int q) {
    const int n = n_;
    double* L = ws_.M;
    double* v = ws_.z;
    for (int c = 0; c < q; ++c) {  // columns before q lose their row q
      double* Lc = L + c * n;
      for (int i = q; i + 1 < m; ++i) Lc[i] = Lc[i + 1];
    }
    const double* Lq = L + q * n;
    for (int i = q + 1; i < m; ++i) v[i] = Lq[i];
    for (int c = q + 1; c < m; ++c) {  // column c of the old factor becomes column c - 1, its rows up by one
      const double* Lc = L + c * n;
      double* Ld = L + (c - 1) * n;
      const double a = 1.0 / Lc[c], bv = v[c];
      const double rr = sqrt(a * a + bv * bv);
      const double cs = rr / a, sn = bv / a, inv = a / rr;
      Ld[c - 1] = 1.0 / rr;
      for (int i = c + 1; i < m; ++i) {
        const double l = (Lc[i] + sn * v[i]) * inv;
        v[i] = cs * v[i] - sn * l;
        Ld[i - 1] = l;
      }
    }
    for (int a = q; a + 1 < m; ++a) list[a] = list[a + 1];
  }

  // Costs in multiply-adds, with the latency of each dependent step counted as 8: a deletion at q about
  // (m - q)^2 (the rank-one update), an append t^2 / 2 + 8 t (a forward solve, one step per row), a rebuild
  // t^3 / 6 + 32 t (a square root and a division per row).
  NNLS_HD static int64_t factor_rebuild_cost(int t) { return static_cast<int64_t>(t) * t * t / 6 + 32 * t; }

  // What bringing the kept factor to the set of size t on `side` costs by updates (the rebuild's cost when the
  // kept factor is on the other side).
  NNLS_HD int64_t factor_update_cost(const uint8_t* F, int side, int t) const {
    if (fac_side_ != side) return factor_rebuild_cost(t);
    const uint8_t want = side == kPassiveFactor ? 1 : 0;
    const int* list = side == kPassiveFactor ? ws_.in : ws_.out;
    const int m = fac_m_;
    int64_t cost = 0;
    int kept = 0;
    for (int a = 0; a < m; ++a) {
      const bool stays = (F[list[a]] != 0) == want;
      kept += stays;
      if (!stays) cost += static_cast<int64_t>(m - a) * (m - a) + 8;
    }
    return cost + static_cast<int64_t>(t - kept) * (t * t / 2 + 8 * t);
  }

  NNLS_HD int64_t factor_cost(const uint8_t* F, int side, int t) const {
    const int64_t update = factor_update_cost(F, side, t), rebuild = factor_rebuild_cost(t);
    return update < rebuild ? update : rebuild;
  }

  // Brings the kept factor to the index set {i : F[i] == want} of S (want 1: passive side on G, 0: dual side
  // on H), by updates when they cost less than a rebuild. Leaves the set's size in fac_m_. False when S_QQ is
  // singular to working precision (no factor is kept then).
  NNLS_HD bool refactor(const uint8_t* F, int side) {
    const int n = n_;
    const uint8_t want = side == kPassiveFactor ? 1 : 0;
    const double* S = side == kPassiveFactor ? G_ : H_;
    int* list = side == kPassiveFactor ? ws_.in : ws_.out;
    int t = 0;
    for (int i = 0; i < n; ++i) t += (F[i] != 0) == want;
    if (fac_side_ == side && factor_update_cost(F, side, t) < factor_rebuild_cost(t)) {
      int m = fac_m_;
      for (int a = m - 1; a >= 0; --a) {
        if ((F[list[a]] != 0) != want) factor_delete(list, m--, a);
      }
      uint8_t* mark = ws_.flag;  // free here: solve() has applied its exchange flags to F
      for (int i = 0; i < n; ++i) mark[i] = 0;
      for (int a = 0; a < m; ++a) mark[list[a]] = 1;
      bool ok = true;
      for (int i = 0; i < n && ok; ++i) {
        if ((F[i] != 0) == want && !mark[i]) {
          ok = factor_append(S, list, m, i);
          m += ok;
        }
      }
      if (ok) {
        fac_m_ = m;
        return true;
      }
      // an append met a pivot it cannot trust: the rebuild below decides (a fresh factor in ascending order)
    }
    fac_side_ = kNoFactor;
    int m = 0;
    for (int i = 0; i < n; ++i) {
      list[m] = i;
      m += (F[i] != 0) == want;
    }
    if (!factor_rebuild(S, list, m)) return false;
    fac_side_ = side;
    fac_m_ = m;
    return true;
  }

  // The factor of S over list[0..m) from scratch: right-looking Cholesky by panels of four columns, whose
  // trailing update reads and writes each column once per four multiply-adds. False when a pivot falls to
  // <= kPivotRtol times its diagonal entry.
  NNLS_HD bool factor_rebuild(const double* S, const int* list, int m) {
    const int n = n_;
    double* L = ws_.M;
    for (int c = 0; c < m; ++c) {
      const double* Sc = S + list[c] * n;
      double* Lc = L + c * n;
      for (int i = c; i < m; ++i) Lc[i] = Sc[list[i]];
    }
    for (int c0 = 0; c0 < m; c0 += 4) {
      const int cw = m - c0 < 4 ? m - c0 : 4;
      for (int q = 0; q < cw; ++q) {  // the panel, left-looking within it
        const int c = c0 + q;
        double* Lc = L + c * n;
        for (int r = c0; r < c; ++r) {
          const double* Lr = L + r * n;
          const double l = Lr[c];
          for (int i = c; i < m; ++i) Lc[i] -= Lr[i] * l;
        }
        const double diag = S[list[c] * n + list[c]];
        const double d = Lc[c];
        if (!(d > kPivotRtol * diag) || !(diag > 0.0)) return false;
        const double inv = 1.0 / sqrt(d);
        Lc[c] = inv;
        for (int i = c + 1; i < m; ++i) Lc[i] *= inv;
      }
      const int c1 = c0 + cw;
      if (cw == 4) {
        const double *P0 = L + c0 * n, *P1 = P0 + n, *P2 = P1 + n, *P3 = P2 + n;
        for (int j = c1; j < m; ++j) {
          double* Lj = L + j * n;
          const double l0 = P0[j], l1 = P1[j], l2 = P2[j], l3 = P3[j];
          for (int i = j; i < m; ++i) Lj[i] -= ((P0[i] * l0 + P1[i] * l1) + (P2[i] * l2 + P3[i] * l3));
        }
      } else {
        for (int j = c1; j < m; ++j) {
          double* Lj = L + j * n;
          for (int r = c0; r < c1; ++r) {
            const double* Lr = L + r * n;
            const double l = Lr[j];
            for (int i = j; i < m; ++i) Lj[i] -= Lr[i] * l;
          }
        }
      }
    }
    return true;
  }

  // w <- L^{-T} L^{-1} w for the kept factor (m = fac_m_, w packed in the factor's order).
  NNLS_HD void factor_solve(double* w) const {
    const int n = n_, m = fac_m_;
    const double* L = ws_.M;
    for (int c = 0; c < m; ++c) {
      const double* Lc = L + c * n;
      const double v = w[c] * Lc[c];
      w[c] = v;
      for (int i = c + 1; i < m; ++i) w[i] -= Lc[i] * v;
    }
    for (int c = m - 1; c >= 0; --c) {
      const double* Lc = L + c * n;
      w[c] = (w[c] - dot(Lc + c + 1, w + c + 1, m - c - 1)) * Lc[c];
    }
  }

  // a . b with four partial sums: the dependency chain of one sum made the factor's solves latency-bound.
  NNLS_HD static double dot(const double* a, const double* b, int len) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    int i = 0;
    for (; i + 4 <= len; i += 4) {
      s0 += a[i] * b[i];
      s1 += a[i + 1] * b[i + 1];
      s2 += a[i + 2] * b[i + 2];
      s3 += a[i + 3] * b[i + 3];
    }
    for (; i < len; ++i) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
  }

  // acc += sign * S_{:,rows} coef, i.e. acc += sign * sum_a coef[a] * (row rows[a] of S) over all n entries
  // (rows of the symmetric S are its columns): contiguous and vectorisable, where the inner products over a
  // gathered index list are neither. Four rows per sweep keep the partial sums in registers; sign is +1 or -1.
  NNLS_HD void sweep(const double* S, const int* rows, const double* coef, int cnt, double sign, double* acc) const {
    const int n = n_;
    int a = 0;
    for (; a + 4 <= cnt; a += 4) {
      const double w0 = sign * coef[a], w1 = sign * coef[a + 1], w2 = sign * coef[a + 2], w3 = sign * coef[a + 3];
      const double *S0 = S + rows[a] * n, *S1 = S + rows[a + 1] * n, *S2 = S + rows[a + 2] * n, *S3 = S + rows[a + 3] * n;
      for (int i = 0; i < n; ++i) acc[i] = (((acc[i] + S0[i] * w0) + S1[i] * w1) + S2[i] * w2) + S3[i] * w3;
    }
    for (; a < cnt; ++a) {
      const double wa = sign * coef[a];
      const double* Sa = S + rows[a] * n;
      for (int i = 0; i < n; ++i) acc[i] += Sa[i] * wa;
    }
  }

  // The passive side with the kept factor of G_FF: x = G_FF^{-1} b_F, y = G x - b (0 on F).
  NNLS_HD bool passive_factored(const uint8_t* F, const double* b, double* x, double* y) {
    if (!refactor(F, kPassiveFactor)) return false;
    const int n = n_, p = fac_m_;
    const int* in = ws_.in;
    double* w = ws_.w;
    for (int a = 0; a < p; ++a) w[a] = b[in[a]];
    factor_solve(w);
    for (int i = 0; i < n; ++i) x[i] = 0.0;
    for (int a = 0; a < p; ++a) x[in[a]] = w[a];
    dual_from_passive(p, b, y);
    return true;
  }

  // The dual side with the kept factor of H_ZZ: y_Z = -H_ZZ^{-1} u_Z, x = u + H_:Z y_Z (0 on Z), y = 0 on F.
  // Leaves F's indices (ascending) in ws_.in for refine_dual.
  NNLS_HD bool dual_factored(const uint8_t* F, const double* u, double* x, double* y) {
    if (!refactor(F, kDualFactor)) return false;
    const int n = n_, z = fac_m_;
    const int* out = ws_.out;
    int* in = ws_.in;
    double* w = ws_.w;
    int p = 0;
    for (int i = 0; i < n; ++i) {
      in[p] = i;
      p += F[i] != 0;
    }
    for (int a = 0; a < z; ++a) w[a] = u[out[a]];
    factor_solve(w);
    // x = u - H_:Z w (a sweep over z rows of H), then x = 0 and y = -w on Z, y = 0 on F
    for (int i = 0; i < n; ++i) x[i] = u[i];
    sweep(H_, out, w, z, -1.0, x);
    for (int i = 0; i < n; ++i) y[i] = 0.0;
    for (int a = 0; a < z; ++a) {
      x[out[a]] = 0.0;
      y[out[a]] = -w[a];
    }
    fac_p_ = p;
    return true;
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
    if (y != nullptr) dual_from_passive(p, b, y);
    return true;
  }

  // y = G_:F x_F - b, zero on F, for x_F = w[0..p) on the indices ws_.in[0..p): a sum of p contiguous rows of
  // G (its columns: G is symmetric), vectorisable where the inner products G_iF x_F are not. Four rows per
  // sweep keep the partial sums in registers; the additions stay in order.
  NNLS_HD void dual_from_passive(int p, const double* b, double* y) const {
    const int n = n_;
    for (int i = 0; i < n; ++i) y[i] = -b[i];
    sweep(G_, ws_.in, ws_.w, p, 1.0, y);
    for (int c = 0; c < p; ++c) y[ws_.in[c]] = 0.0;
  }

  NNLS_HD bool solve_dual(const uint8_t* F, const double* u, double* x, double* y) {
    int p, z;
    split(F, p, z);
    return dual_side(p, z, u, x, y);
  }

  // solve_dual on the index lists that split() left in the workspace.
  NNLS_HD bool dual_side(int p, int z, const double* u, double* x, double* y) {
    const int n = n_;
    fac_side_ = kNoFactor;  // ws_.M is about to hold another factor
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
    for (int c = 0; c < p; ++c) {
      const int i = in[c];
      const double* Hi = H_ + i * n;
      double s = u[i];
      for (int a = 0; a < z; ++a) s -= Hi[out[a]] * w[a];
      x[i] = s;
      y[i] = 0.0;
    }
    return true;
  }

  // The dual path goes through H = G^{-1}, whose error grows with cond(G); one step of iterative refinement
  // on the passive equations G_PP x_P = b_P brings the residual back to the round-off of G itself. Uses the
  // kept factor of H_ZZ and the index lists left by the last dual_factored.
  NNLS_HD void refine_dual(const double* b, double* x) {
    const int n = n_;
    const int p = fac_p_, z = fac_m_;
    const int* in = ws_.in;
    const int* out = ws_.out;
    double* r = ws_.z;     // n: the residual b - G x, then H_:P r_P
    double* w = ws_.w;     // p: r_P, then z: the correction's dual part
    double* t = ws_.grad;  // n: H_:P r_P
    if (u_ == t) t = ws_.y;  // (ws_.grad may hold u = H b; the caller is done with y: solve() returns next)
    for (int a = 0; a < p; ++a) w[a] = x[in[a]];
    for (int i = 0; i < n; ++i) r[i] = b[i];
    sweep(G_, in, w, p, -1.0, r);  // r_P = b_P - G_PP x_P (the rest of r is not used)
    for (int a = 0; a < p; ++a) w[a] = r[in[a]];
    for (int i = 0; i < n; ++i) t[i] = 0.0;
    sweep(H_, in, w, p, 1.0, t);  // t = H_:P r_P
    for (int a = 0; a < z; ++a) w[a] = t[out[a]];
    factor_solve(w);               // w = H_ZZ^{-1} H_ZP r_P
    sweep(H_, out, w, z, -1.0, t);  // t = H_:P r_P - H_:Z w: the correction on P
    for (int a = 0; a < p; ++a) x[in[a]] += t[in[a]];
  }

  NNLS_HD int32_t lawson_hanson(const double* b, int64_t max_outer, double* x) {
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

  int n_;
  const double* G_;
  const double* H_;
  ColumnWorkspace ws_;
  const double* u_ = nullptr;  // H b of the current solve, once known
  bool last_dual_ = false;
  int fac_side_ = kNoFactor;  // which factor ws_.M holds (FactorState)
  int fac_m_ = 0;             // its size
  int fac_p_ = 0;             // |F| of the last dual_factored (ws_.in[0..fac_p_) lists F)
};

}  // namespace neuralnmf
