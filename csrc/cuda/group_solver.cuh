// The per-column solve of the CUDA kernels, by a group of L lanes (lane_group.cuh) with its state in
// registers and a small shared-memory workspace: block principal pivoting with the decisions of
// ColumnSolver::solve (csrc/common/column_solver.h, the CPU kernel's solver), and the support solve of
// ColumnSolver::solve_on_support.
//
// Variable i of the column belongs to lane i % L, in register slot i / L (VPL = variables per lane, so k <= VPL
// * L). Each subproblem is solved on its smaller side (|F| <= |Z|: Cholesky of G_FF; |Z| < |F|: Cholesky of
// H_ZZ with H = G^{-1}), so the one matrix a group factors has at most ceil(k / 2) rows; row a of it belongs to
// lane a % L. The same terms are summed in the same order as on the CPU (four at a time with their loads issued
// together, dot4 in group_work.cuh), except the back substitution, which multiplies by reciprocal pivots
// (rounding only). The factor is built from G or H read in place (no gathered copy), with the right-hand side
// as one more row, which yields the forward substitution within the factorization's own steps (cholesky in
// group_cholesky.cuh); a lane's several variables or rows share the loads of the index lists and vectors of
// their dot products (dot4_slots). The device takes each pivot's reciprocal square root in one rsqrt (within an
// ulp).
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
#include "group_work.cuh"
#include "lane_group.cuh"

namespace neuralnmf {
namespace cuda {

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

  // The factorization and its solves (group_cholesky.cuh).
  NNLS_FI static double slot(const double (&v)[ROWS], int t);
  NNLS_FI static void set_slot(double (&v)[ROWS], int t, double value);
  NNLS_FI void pivot(int i, double diag, double sq);
  NNLS_FI bool cholesky(const double* S, const int* list, int m, const double* rhs = nullptr);
  NNLS_FI void cholesky_solve(int m, double (&w)[ROWS], bool forward = true) const;
  NNLS_FI bool factor_solve(const double* S, const int* list, const double* rhs, int m, double (&w)[ROWS]);
  NNLS_FI void store_w(const double (&w)[ROWS], int m);

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

#include "group_cholesky.cuh"
