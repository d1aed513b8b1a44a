// The factorization of GroupSolver (group_solver.cuh, which includes this file after the class): the
// left-looking Cholesky of G_FF or H_ZZ read in place, with the right-hand side as one more row (the forward
// substitution within the factorization's steps), its triangular solves, and the register slots they use.
// The same terms in the same order as cholesky_inplace and cholesky_solve of csrc/common (so the same bits),
// except the reciprocal pivots. Not included on its own.
#pragma once

namespace neuralnmf {
namespace cuda {

// One of ROWS register slots, by a run-time index (a select chain: the slots stay in registers).
template <class Grp, int VPL>
NNLS_FI double GroupSolver<Grp, VPL>::slot(const double (&v)[ROWS], int t) {
  double out = v[0];
#pragma unroll
  for (int s = 1; s < ROWS; ++s) out = s == t ? v[s] : out;
  return out;
}
template <class Grp, int VPL>
NNLS_FI void GroupSolver<Grp, VPL>::set_slot(double (&v)[ROWS], int t, double value) {
#pragma unroll
  for (int s = 0; s < ROWS; ++s) v[s] = s == t ? value : v[s];
}

// Pivot of row i of the factor from its diagonal entry and the sum of squares of its finished part:
// 1 / L_ii in ws.dinv[i], or 0 there when the pivot fails kPivotRtol (the test of cholesky_inplace). L_ii
// itself is never read (the factorization and the solves multiply by its reciprocal), so the device takes
// one reciprocal square root (rsqrt, within an ulp) instead of a square root and a division.
template <class Grp, int VPL>
NNLS_FI void GroupSolver<Grp, VPL>::pivot(int i, double diag, double sq) {
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
template <class Grp, int VPL>
NNLS_FI bool GroupSolver<Grp, VPL>::cholesky(const double* S, const int* list, int m, const double* rhs) {
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
template <class Grp, int VPL>
NNLS_FI void GroupSolver<Grp, VPL>::cholesky_solve(int m, double (&w)[ROWS], bool forward) const {
  const double* M = ws_.M;
  // Entry j of either substitution: w_j <- w_j / L_jj on the lane that owns row j, its value on every lane.
  const auto divide = [&](int j) {
    const int owner = j % L;
    double wj = 0.0;
    if (g_.lane() == owner) {
      wj = slot(w, j / L) * ws_.dinv[j];
      set_slot(w, j / L, wj);
    }
    return g_.bcast(wj, owner);
  };
  for (int j = 0; forward && j < m; ++j) {  // L v = w, by columns: w_i -= L_ij v_j in increasing j, as the CPU
    const double wj = divide(j);
#pragma unroll
    for (int t = 0; t < ROWS; ++t) {
      const int i = t * L + g_.lane();
      if (i > j && i < m) w[t] -= M[tri(i) + j] * wj;
    }
  }
  for (int j = m - 1; j >= 0; --j) {  // L^T w = v, by columns
    const double wj = divide(j);
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
template <class Grp, int VPL>
NNLS_FI bool GroupSolver<Grp, VPL>::factor_solve(const double* S, const int* list, const double* rhs, int m,
                                                 double (&w)[ROWS]) {
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

template <class Grp, int VPL>
NNLS_FI void GroupSolver<Grp, VPL>::store_w(const double (&w)[ROWS], int m) {
#pragma unroll
  for (int t = 0; t < ROWS; ++t) {
    const int a = t * L + g_.lane();
    if (a < m) ws_.w[a] = w[t];
  }
  g_.sync();
}

}  // namespace cuda
}  // namespace neuralnmf
