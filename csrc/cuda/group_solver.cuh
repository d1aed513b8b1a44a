// The per-column solve of the CUDA kernels, by a group of L lanes (lane_group.cuh) with its state in
// registers and a small shared-memory workspace: block principal pivoting with the decisions of
// ColumnSolver::solve (csrc/common/column_solver.h, the CPU kernel's solver), and the support solve of
// ColumnSolver::solve_on_support.
//
// Variable i of the column belongs to lane i % L, in register slot i / L (VPL = variables per lane, so k <=
// VPL * L). Each subproblem is solved on its smaller side (|F| <= |Z|: Cholesky of G_FF; |Z| < |F|: Cholesky
// of H_ZZ with H = G^{-1}), so the one matrix a group factors has at most ceil(k / 2) rows; row a of it
// belongs to lane a % L. The same terms are summed in the same order as on the CPU (four at a time with their
// loads issued together, dot4 below), except the back substitution, which multiplies by reciprocal pivots
// (rounding only). The factor is built from G or H read in place (no gathered copy), with the right-hand
// side as one more row, which yields the forward substitution within the factorization's own steps (cholesky
// below); a lane's several variables or rows share the loads of the index lists and vectors of their dot
// products (dot4_slots). The device takes each pivot's reciprocal square root in one rsqrt (within an ulp).
//
// Whatever ColumnSolver would hand to Lawson-Hanson or to the side that does not fit (G singular, a singular
// subproblem, the iteration bound) is not attempted here: the solve returns kDeferred and the caller leaves
// the column to the one-thread-per-column kernel (column_device.cuh), which runs ColumnSolver itself from the
// start and so makes exactly the CPU's decisions.
//
// G and H are n x n, row-major, exactly symmetric (rows are read in place of columns, so that consecutive
// lanes read consecutive entries), in shared or global memory. Header-only, host+device: the tests run it on
// the host with the lanes of lane_group_host.h.
#pragma once

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../common/column_solver.h"
#include "column_device.cuh"
#include "lane_group.cuh"

namespace neuralnmf {
namespace cuda {

// The shared-memory workspace of one group, for a column of n variables (m = ceil(n / 2) rows at most in a
// factorization).
struct GroupWork {
  double* b;    // n   right-hand side (scaled), by index
  double* u;    // n   u = H b, by index
  double* x;    // n   x by index (the refinement gathers it); the same memory as u, which nothing reads after
                //     the last subproblem (refine_dual, the one user of x, comes after it)
  double* r;    // n   residual of the refinement
  double* w;    // m   solution of the last subproblem, packed (w[a] belongs to row a of the factor)
  double* M;    // m (m + 1) / 2   packed strict lower triangle of the last factorization (row a at a (a + 1)
                //     / 2), and in row p of it, p < m, v of the forward substitution L v = r (see cholesky)
  double* dinv; // m   reciprocals of its diagonal (the triangular solves multiply by them)
  int* in;      // n   the passive indices, increasing
  int* out;     // n   the other indices, increasing
};

NNLS_HD inline int group_rows(int n) { return (n + 1) / 2; }
NNLS_HD inline int64_t group_work_doubles(int n) {
  const int64_t m = group_rows(n);
  return 3 * static_cast<int64_t>(n) + 2 * m + m * (m + 1) / 2;
}
NNLS_HD inline int64_t group_work_ints(int n) { return 2 * static_cast<int64_t>(n); }
// Bytes of one group's workspace, a multiple of 8 so that consecutive workspaces stay aligned.
NNLS_HD inline int64_t group_work_bytes(int n) {
  return group_work_doubles(n) * 8 + (group_work_ints(n) * 4 + 7) / 8 * 8;
}
NNLS_HD inline GroupWork group_work(void* base, int n) {
  double* d = static_cast<double*>(base);
  const int m = group_rows(n);
  GroupWork w;
  w.b = d;
  w.u = d + n;
  w.x = w.u;
  w.r = d + 2 * n;
  w.w = d + 3 * n;
  w.M = d + 3 * n + m;
  w.dinv = w.M + m * (m + 1) / 2;
  int* i = reinterpret_cast<int*>(d + group_work_doubles(n));
  w.in = i;
  w.out = i + n;
  return w;
}

NNLS_FI int tri(int a) { return a * (a + 1) / 2; }

// 1 / sqrt(d) for d > 0: the device's double rsqrt (a few instructions; within an ulp of the rounded value)
// in place of a square root and a division, each a multi-instruction sequence; the host rounds both.
NNLS_FI double reciprocal_sqrt(double d) {
#ifdef __CUDA_ARCH__
  return rsqrt(d);
#else
  return 1.0 / sqrt(d);
#endif
}

// s + sign * sum_{a < n} x(a) y(a), the terms added in increasing a (the order of the CPU's loops), four at a
// time with their eight loads issued before the four dependent multiply-adds: the index lists make every
// term two dependent loads, whose latency would otherwise be paid once per term.
template <int kSign, class X, class Y>
NNLS_FI double dot4(double s, int n, const X& x, const Y& y) {
  int a = 0;
  for (; a + 4 <= n; a += 4) {
    const double x0 = x(a), x1 = x(a + 1), x2 = x(a + 2), x3 = x(a + 3);
    const double y0 = y(a), y1 = y(a + 1), y2 = y(a + 2), y3 = y(a + 3);
    if (kSign > 0) {
      s += x0 * y0;
      s += x1 * y1;
      s += x2 * y2;
      s += x3 * y3;
    } else {
      s -= x0 * y0;
      s -= x1 * y1;
      s -= x2 * y2;
      s -= x3 * y3;
    }
  }
  for (; a < n; ++a) {
    if (kSign > 0) {
      s += x(a) * y(a);
    } else {
      s -= x(a) * y(a);
    }
  }
  return s;
}

// For every slot r < R: s[r] + sign * sum_{a < n} mat(r, c_a) vec(a, c_a) with c_a = col(a), the terms of each
// slot added in increasing a (dot4's order, so each slot gets dot4's bits), in groups of T terms (4, fewer for
// many slots) with every load of a group issued before its multiply-adds; col(a) and vec(a, c_a), the same for every
// slot, are loaded once for all slots (a lane's VPL variables, or its rows, share them).
template <int kSign, int R, class Col, class Mat, class Vec>
NNLS_FI void dot4_slots(double (&s)[R], int n, const Col& col, const Mat& mat, const Vec& vec) {
  constexpr int T = R <= 2 ? 4 : (R <= 4 ? 2 : 1);
  int a = 0;
  for (; a + T <= n; a += T) {
    int c[T];
    double y[T], x[R][T];
#pragma unroll
    for (int q = 0; q < T; ++q) c[q] = col(a + q);
#pragma unroll
    for (int q = 0; q < T; ++q) y[q] = vec(a + q, c[q]);
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
      for (int q = 0; q < T; ++q) x[r][q] = mat(r, c[q]);
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
      for (int q = 0; q < T; ++q) {
        if (kSign > 0) {
          s[r] += x[r][q] * y[q];
        } else {
          s[r] -= x[r][q] * y[q];
        }
      }
    }
  }
  for (; a < n; ++a) {
    const int c = col(a);
    const double y = vec(a, c);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      if (kSign > 0) {
        s[r] += mat(r, c) * y;
      } else {
        s[r] -= mat(r, c) * y;
      }
    }
  }
}

// The exact maximum over a group of nonnegative doubles (or +0): their bit patterns order as the values do, so
// two unsigned reductions (high words, then low words among the lanes that hold the top high word) find it.
template <class Grp>
NNLS_FI double group_max_abs(const Grp& g, double v) {
  uint64_t bits;
  memcpy(&bits, &v, sizeof bits);
  const unsigned hi = static_cast<unsigned>(bits >> 32), lo = static_cast<unsigned>(bits);
  const unsigned top = g.umax(hi);
  const unsigned low = g.umax(hi == top ? lo : 0u);
  const uint64_t out = (static_cast<uint64_t>(top) << 32) | low;
  double m;
  memcpy(&m, &out, sizeof m);
  return m;
}

// Whether the refinement step after a dual-side solve can be left out of a float32 answer. Its correction is
// of the order of cond(G) * DBL_EPSILON relative (the error of going through H = G^{-1}), and cond(G) <= k
// trace(H) (G has a unit diagonal, so lambda_max(G) <= k, and 1 / lambda_min(G) <= trace(H)). Below 2^20 the
// correction is under 1e-9 relative, 60 times below float32 rounding, and the float32 result is the same.
// float64 answers are always refined, as on the CPU.
constexpr double kRefineFreeCond = 1048576.0;
NNLS_HD inline bool refine_skippable(bool float32_out, int k, double trace_H) {
  return float32_out && k * trace_H <= kRefineFreeCond;
}

template <class Grp, int VPL>
class GroupSolver {
 public:
  static constexpr int L = Grp::kSize;
  static constexpr int ROWS = VPL > 1 ? VPL / 2 : 1;  // factor rows per lane: ROWS * L >= ceil(VPL * L / 2)
  static_assert(ROWS * L * 2 >= VPL * L, "the factor rows must fit the lanes");

  // Per lane, for its variables i = r * L + lane() (valid while i < n):
  double b[VPL];   // right-hand side
  double x[VPL];   // primal
  double y[VPL];   // dual, G x - b (0 on F)
  double u[VPL];   // H b, once formed
  bool F[VPL];     // passive set
  int pos[VPL];    // position of i in ws.in (i in F) or ws.out

  NNLS_FI GroupSolver(const Grp& g, int n, const double* G, const double* H, GroupWork ws)
      : g_(g), n_(n), G_(G), H_(H), ws_(ws) {}

  NNLS_FI int index(int r) const { return r * L + g_.lane(); }

  // Loads the right-hand side from b[] (the caller set it; zero for i >= n) into the workspace.
  NNLS_FI void publish_rhs() {
#pragma unroll
    for (int r = 0; r < VPL; ++r) {
      const int i = index(r);
      if (i < n_) ws_.b[i] = b[r];
    }
    g_.sync();
  }

  // Block principal pivoting from the passive set in F[] (the caller set it: all true for a cold start, or a
  // warm start; false for i >= n), on b[] (published). Returns kConverged with x[] optimal, or kDeferred.
  // refine: the final step of iterative refinement after a solve on the dual side (see refine_skippable).
  NNLS_FI int32_t solve(int64_t max_iter, bool refine = true) {
    const int n = n_;
    const int64_t bpp_iters = max_iter > 0 ? max_iter : 5 * static_cast<int64_t>(n) + 10;
    have_u_ = false;
    int best = n + 1;
    int chances = kBackupChances;
    for (int64_t it = 0; it < bpp_iters; ++it) {
      split();
      bool dual = false;
      if (z_ < p_) {
        if (!have_u_) form_u(false);
        if (!dual_side()) return kDeferred;  // ColumnSolver would try the passive side, of more than n/2 rows
        dual = true;
      } else if (!passive_side(true)) {
        return kDeferred;  // ColumnSolver would hand the column to Lawson-Hanson
      }
      const double tol = dual_tolerance();
      bool bad[VPL];
      int nbad = 0, last = -1;
#pragma unroll
      for (int r = 0; r < VPL; ++r) {
        const int i = index(r);
        // x = 0 off F, y = 0 on F (both sides leave them so) and tol > 0: no branch on F needed
        bad[r] = i < n && ((x[r] < 0.0) | (y[r] < -tol));
        const unsigned ballot = g_.ballot(bad[r]);
        nbad += popcount(ballot);
        last = ballot != 0u ? r * L + highest_bit(ballot) : last;  // the largest infeasible index
      }
      if (nbad == 0) {
        if (dual && refine) refine_dual();
        return kConverged;
      }
      if (nbad < best) {
        best = nbad;
        chances = kBackupChances;
      } else if (chances > 0) {
        --chances;
      } else {
#pragma unroll
        for (int r = 0; r < VPL; ++r) {
          if (index(r) == last) F[r] = !F[r];  // backup rule: only the largest infeasible index
        }
        continue;
      }
#pragma unroll
      for (int r = 0; r < VPL; ++r) F[r] = F[r] != bad[r];
    }
    return kDeferred;  // iteration bound: ColumnSolver hands the column to Lawson-Hanson
  }

  // v = G_PP^{-1} b_P on the support P = F[] (b[] published and zero off P), zero elsewhere, into x[]: the
  // solve of ColumnSolver::solve_on_support. False when it needs what does not fit here (a singular
  // subproblem, or the passive side of more than ceil(n / 2) rows when H is not usable).
  NNLS_FI bool solve_on_support() {
    split();
    if (H_ != nullptr && z_ < p_) {
      form_u(true);
      return dual_side();
    }
    if (p_ > group_rows(n_)) return false;
    return passive_side(false);
  }

  int passive_count() const { return p_; }

 private:
  // The index lists ws.in (F) and ws.out (the rest), increasing, and p = |F|, z = n - p.
  NNLS_FI void split() {
    g_.sync();  // every lane is done reading the lists (and w, M) of the last subproblem
    const unsigned below = g_.below();
    int pin = 0, pout = 0;
#pragma unroll
    for (int r = 0; r < VPL; ++r) {
      const int i = index(r);
      const bool valid = i < n_;
      const bool f = valid && F[r];
      const unsigned bin = g_.ballot(f), bout = g_.ballot(valid && !f);
      if (f) {
        pos[r] = pin + popcount(bin & below);
        ws_.in[pos[r]] = i;
      } else if (valid) {
        pos[r] = pout + popcount(bout & below);
        ws_.out[pos[r]] = i;
      }
      pin += popcount(bin);
      pout += popcount(bout);
    }
    p_ = pin;
    z_ = pout;
    g_.sync();
  }

  // u = H b on every index (b is zero off P in a support solve, whose sum runs over P only: the terms the
  // CPU adds, in its order).
  NNLS_FI void form_u(bool support_only) {
    const int n = n_;
    const int* in = ws_.in;
    const double* bb = ws_.b;
    const double* Hi[VPL];  // column i of H (H[c][i] = H[i][c]); a valid column for i >= n, whose sum is dropped
    double s[VPL];
#pragma unroll
    for (int r = 0; r < VPL; ++r) {
      const int i = index(r);
      Hi[r] = H_ + (i < n ? i : 0);
      s[r] = 0.0;
    }
    const auto mat = [&](int r, int c) { return Hi[r][c * n]; };
    const auto vec = [&](int, int c) { return bb[c]; };
    if (support_only) {
      dot4_slots<1>(s, p_, [&](int a) { return in[a]; }, mat, vec);
    } else {
      dot4_slots<1>(s, n, [&](int a) { return a; }, mat, vec);
    }
#pragma unroll
    for (int r = 0; r < VPL; ++r) {
      const int i = index(r);
      if (i < n) {
        u[r] = s[r];
        ws_.u[i] = s[r];
      }
    }
    have_u_ = true;
    g_.sync();
  }

  NNLS_FI double dual_tolerance() const {
    double xmax = 0.0;
#pragma unroll
    for (int r = 0; r < VPL; ++r) {
      const double v = fabs(x[r]);  // 0 for i >= n; x is finite here (a NaN would have failed the Cholesky)
      xmax = v > xmax ? v : xmax;
    }
    xmax = group_max_abs(g_, xmax);
    return 4.0 * n_ * DBL_EPSILON * (n_ * xmax + 1.0);
  }

  // One of ROWS register slots, by a run-time index (a select chain: the slots stay in registers).
  NNLS_FI static double slot(const double (&v)[ROWS], int t) {
    double out = v[0];
#pragma unroll
    for (int s = 1; s < ROWS; ++s) out = s == t ? v[s] : out;
    return out;
  }
  NNLS_FI static void set_slot(double (&v)[ROWS], int t, double value) {
#pragma unroll
    for (int s = 0; s < ROWS; ++s) v[s] = s == t ? value : v[s];
  }

  // Pivot of row i of the factor from its diagonal entry and the sum of squares of its finished part:
  // 1 / L_ii in ws.dinv[i], or 0 there when the pivot fails kPivotRtol (the test of cholesky_inplace). L_ii
  // itself is never read (the factorization and the solves multiply by its reciprocal), so the device takes
  // one reciprocal square root (rsqrt, within an ulp) instead of a square root and a division.
  NNLS_FI void pivot(int i, double diag, double sq) {
    const double d = diag - sq;
    double inv = 0.0;
    if (d > kPivotRtol * diag && diag > 0.0) inv = reciprocal_sqrt(d);  // false for NaN too
    ws_.dinv[i] = inv;
  }

  // Cholesky factor of the m x m matrix S[list[a]][list[c]] (S symmetric: entry (a, c) is read as
  // S[list[c]][list[a]]) into the packed lower triangle ws.M (row a at tri(a), strictly lower part: the
  // diagonal is kept as reciprocal pivots in ws.dinv), left-looking like cholesky_inplace: at step j every
  // lane finishes entry j of its rows below j, starting from S's entry read in place (no gathered copy); the
  // owner of row j + 1 then takes that row's pivot at once (look-ahead), so that step j + 1 only reads it.
  // False when a pivot fails (uniform over the group).
  //
  // aug: the right-hand side r_a = rhs[list[a]] rides along as row m of the factor (the bordered matrix
  // [[S_ll, r], [r^T, .]]): its entry j, (r_j - sum_{q<j} v_q L_jq) / L_jj, is v_j of the forward
  // substitution L v = r, the same terms in the same order as the column-by-column substitution of
  // cholesky_solve (so the same bits), computed by one more lane within the factorization's steps instead of
  // m further steps after them. Row m must fit the packed storage: m < group_rows(n).
  NNLS_FI bool cholesky(const double* S, const int* list, int m, const double* rhs = nullptr) {
    double* M = ws_.M;
    const int n = n_;
    const int last = rhs != nullptr ? m : m - 1;  // the last row worked on
    double sq[ROWS];
    const double* Srow[ROWS];  // column list[i] of S for the lane's rows i
#pragma unroll
    for (int t = 0; t < ROWS; ++t) {
      const int i = t * L + g_.lane();
      sq[t] = 0.0;
      Srow[t] = S + (i < m ? list[i] : 0);
    }
    if (m > 0 && g_.lane() == 0) pivot(0, Srow[0][list[0] * n], 0.0);
    g_.sync();
    for (int j = 0; j < m; ++j) {
      const double* Mj = M + tri(j);
      const double inv = ws_.dinv[j];
      if (inv == 0.0) return false;
      const int lj = list[j];
#pragma unroll
      for (int t = 0; t < ROWS; ++t) {
        const int i = t * L + g_.lane();
        if (i > j && i <= last) {
          double* Mi = M + tri(i);
          const double start = i < m ? Srow[t][lj * n] : rhs[lj];
          const double s = dot4<-1>(start, j, [&](int q) { return Mi[q]; }, [&](int q) { return Mj[q]; }) * inv;
          Mi[j] = s;
          sq[t] += s * s;
          if (i == j + 1 && i < m) pivot(i, Srow[t][list[i] * n], sq[t]);
        }
      }
      g_.sync();
    }
    return true;
  }

  // w <- (L L^T)^{-1} w for the factor in ws.M (and its reciprocal pivots ws.dinv); w holds the lane's rows
  // (row a in slot a / L of lane a % L). forward = false: w already holds v of L v = w (cholesky's row m).
  NNLS_FI void cholesky_solve(int m, double (&w)[ROWS], bool forward = true) const {
    const double* M = ws_.M;
    for (int j = 0; forward && j < m; ++j) {  // L v = w, by columns: w_i -= L_ij v_j in increasing j, as the CPU
      const int owner = j % L;
      double wj = 0.0;
      if (g_.lane() == owner) {
        wj = slot(w, j / L) * ws_.dinv[j];
        set_slot(w, j / L, wj);
      }
      wj = g_.bcast(wj, owner);
#pragma unroll
      for (int t = 0; t < ROWS; ++t) {
        const int i = t * L + g_.lane();
        if (i > j && i < m) w[t] -= M[tri(i) + j] * wj;
      }
    }
    for (int j = m - 1; j >= 0; --j) {  // L^T w = v, by columns
      const int owner = j % L;
      double wj = 0.0;
      if (g_.lane() == owner) {
        wj = slot(w, j / L) * ws_.dinv[j];
        set_slot(w, j / L, wj);
      }
      wj = g_.bcast(wj, owner);
#pragma unroll
      for (int t = 0; t < ROWS; ++t) {
        const int i = t * L + g_.lane();
        if (i < j) w[t] -= M[tri(j) + i] * wj;
      }
    }
  }

  // w = (S_ll)^{-1} rhs_l for the m indices l = list[0..m) (w[a] belongs to list[a]), in the lanes' rows:
  // the factorization, with the right-hand side as its extra row where that fits (see cholesky), then the
  // back substitution. False when a pivot fails.
  NNLS_FI bool factor_solve(const double* S, const int* list, const double* rhs, int m, double (&w)[ROWS]) {
    const bool aug = m < group_rows(n_);
    if (!cholesky(S, list, m, aug ? rhs : nullptr)) return false;
    const double* v = ws_.M + tri(m);  // row m: v of L v = rhs (aug)
#pragma unroll
    for (int t = 0; t < ROWS; ++t) {
      const int a = t * L + g_.lane();
      w[t] = a < m ? (aug ? v[a] : rhs[list[a]]) : 0.0;
    }
    cholesky_solve(m, w, !aug);
    return true;
  }

  NNLS_FI void store_w(const double (&w)[ROWS], int m) {
#pragma unroll
    for (int t = 0; t < ROWS; ++t) {
      const int a = t * L + g_.lane();
      if (a < m) ws_.w[a] = w[t];
    }
    g_.sync();
  }

  // x = G_FF^{-1} b_F on F, 0 elsewhere; with want_y, the dual y = G x - b off F (0 on F).
  NNLS_FI bool passive_side(bool want_y) {
    const int n = n_, p = p_;
    double w[ROWS];
    if (!factor_solve(G_, ws_.in, ws_.b, p, w)) return false;
    store_w(w, p);
    double dual[VPL];  // y = G x - b off F; G[in[a]][i] = G[i][in[a]]
    const double* Gi[VPL];
#pragma unroll
    for (int r = 0; r < VPL; ++r) {
      const int i = index(r);
      Gi[r] = G_ + (i < n ? i : 0);
      dual[r] = -b[r];
    }
    if (want_y) {
      const int* in = ws_.in;
      const double* ww = ws_.w;
      dot4_slots<1>(dual, p, [&](int a) { return in[a]; }, [&](int r, int c) { return Gi[r][c * n]; },
                    [&](int a, int) { return ww[a]; });
    }
#pragma unroll
    for (int r = 0; r < VPL; ++r) {
      const int i = index(r);
      if (i >= n) continue;
      if (F[r]) {
        x[r] = ws_.w[pos[r]];
        y[r] = 0.0;
      } else {
        x[r] = 0.0;
        if (want_y) y[r] = dual[r];
      }
    }
    return true;
  }

  // The dual side: w = H_ZZ^{-1} u_Z,  x = u - H_:Z w on F (0 off F),  y_Z = -w (0 on F).
  NNLS_FI bool dual_side() {
    const int n = n_, z = z_;
    double w[ROWS];
    if (!factor_solve(H_, ws_.out, ws_.u, z, w)) return false;
    store_w(w, z);
    double primal[VPL];  // x = u - H_:Z w on F
    const double* Hi[VPL];
#pragma unroll
    for (int r = 0; r < VPL; ++r) {
      const int i = index(r);
      Hi[r] = H_ + (i < n ? i : 0);
      primal[r] = u[r];
    }
    const int* out = ws_.out;
    const double* ww = ws_.w;
    dot4_slots<-1>(primal, z, [&](int a) { return out[a]; }, [&](int r, int c) { return Hi[r][c * n]; },
                   [&](int a, int) { return ww[a]; });
#pragma unroll
    for (int r = 0; r < VPL; ++r) {
      const int i = index(r);
      if (i >= n) continue;
      if (F[r]) {
        x[r] = primal[r];
        y[r] = 0.0;
      } else {
        x[r] = 0.0;
        y[r] = -ws_.w[pos[r]];
      }
    }
    return true;
  }

  // One step of iterative refinement on G_PP x_P = b_P through the factor of H_ZZ (ColumnSolver::refine_dual).
  NNLS_FI void refine_dual() {
    const int n = n_, p = p_, z = z_;
#pragma unroll
    for (int r = 0; r < VPL; ++r) {
      const int i = index(r);
      if (i < n) ws_.x[i] = x[r];
    }
    g_.sync();
    const int* in = ws_.in;
    const int* out = ws_.out;
    const double* xx = ws_.x;
    const double* rr = ws_.r;
    const double* ww = ws_.w;
    {  // r_a = b_in[a] - G[in[a]][in] x_in for the lane's rows a = t L + lane < p (p <= n <= VPL L)
      double ra[VPL];
      const double* Ga[VPL];
#pragma unroll
      for (int t = 0; t < VPL; ++t) {
        const int a = t * L + g_.lane();
        const int ia = a < p ? in[a] : 0;
        Ga[t] = G_ + ia;
        ra[t] = ws_.b[ia];
      }
      dot4_slots<-1>(ra, p, [&](int c) { return in[c]; }, [&](int t, int ic) { return Ga[t][ic * n]; },
                     [&](int, int ic) { return xx[ic]; });
#pragma unroll
      for (int t = 0; t < VPL; ++t) {
        const int a = t * L + g_.lane();
        if (a < p) ws_.r[a] = ra[t];
      }
    }
    g_.sync();
    double w[ROWS];  // w_a = H[out[a]][in] r for the lane's rows a < z (zero beyond)
    const double* Ha[ROWS];
#pragma unroll
    for (int t = 0; t < ROWS; ++t) {
      const int a = t * L + g_.lane();
      Ha[t] = H_ + (a < z ? out[a] : 0);
      w[t] = 0.0;
    }
    dot4_slots<1>(w, p, [&](int c) { return in[c]; }, [&](int t, int ic) { return Ha[t][ic * n]; },
                  [&](int c, int) { return rr[c]; });
#pragma unroll
    for (int t = 0; t < ROWS; ++t) {
      const int a = t * L + g_.lane();
      if (a >= z) w[t] = 0.0;
    }
    cholesky_solve(z, w);
    store_w(w, z);
    double s[VPL];
    const double* Hi[VPL];
#pragma unroll
    for (int r = 0; r < VPL; ++r) {
      const int i = index(r);
      Hi[r] = H_ + (i < n ? i : 0);
      s[r] = 0.0;
    }
    const auto mat = [&](int r, int c) { return Hi[r][c * n]; };
    dot4_slots<1>(s, p, [&](int c) { return in[c]; }, mat, [&](int c, int) { return rr[c]; });
    dot4_slots<-1>(s, z, [&](int c) { return out[c]; }, mat, [&](int c, int) { return ww[c]; });
#pragma unroll
    for (int r = 0; r < VPL; ++r) {
      const int i = index(r);
      if (i < n && F[r]) x[r] += s[r];
    }
  }

  const Grp& g_;
  int n_;
  const double* G_;
  const double* H_;
  GroupWork ws_;
  int p_ = 0, z_ = 0;
  bool have_u_ = false;
};

}  // namespace cuda
}  // namespace neuralnmf
