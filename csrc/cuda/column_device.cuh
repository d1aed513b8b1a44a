// The columns of one CUDA launch (NnlsColumns, SupportColumns), and what one thread does for a column that
// the lane-group kernels (group_columns.cuh) left to it: the CPU kernels' per-column code around ColumnSolver
// (csrc/common/column_solver.h), with its scratch in a bounded pool of global-memory slots (ColumnScratch).
// These columns are rare (a singular Gram matrix, a singular subproblem, the iteration bound, a right-hand
// side that overflowed or holds NaN/Inf); for k > 256 every column comes here.
//
// Errors cannot be raised from a kernel without a host synchronisation, so they are reported per column:
// info = kInfoNonFinite and a NaN column of S where the column's data (X, or the products A^T X) hold NaN or
// Inf, or A does (every column). neuralnmf/_validation.py turns that into ValueError.
//
// Header-only, host+device, free of torch and the standard library: tests run it on the host.
#pragma once

#include <math.h>
#include <stdint.h>

#include "../common/column_solver.h"
#include "gram_view.cuh"
#include "pinv_jacobi.cuh"

namespace neuralnmf {
namespace cuda {

constexpr int32_t kInfoNonFinite = -2;
constexpr int32_t kDeferred = -100;  // internal info: the column is left to the one-thread-per-column kernel

// A 3-D array with arbitrary strides (elements): entry (a, b, c) at data[a * s0 + b * s1 + c * s2].
template <typename T>
struct Strided3 {
  T* data;
  int64_t s0, s1, s2;
  NNLS_HD T& at(int64_t a, int64_t b, int64_t c) const { return data[a * s0 + b * s1 + c * s2]; }
};

// The columns of one launch of the forward solve: batch items b0 .. b0 + items - 1 and columns c0 .. c0 +
// len - 1; local item li and local column lj stand for item b0 + li and column c0 + lj.
template <typename rhs_t, typename scalar_t>
struct NnlsColumns {
  GramView gram;
  Strided3<const rhs_t> B;      // (li, i, lj): Ad^T X of the chunk, or the caller's products A^T X
  const double* row_scale;      // (ng, k) a_scale * d for products A^T X (b_i = B_i * row_scale_i); nullptr for Ad^T X
  Strided3<const scalar_t> X;   // (item, n, column) the data, re-read where Ad^T X overflowed; data = nullptr for products
  Strided3<const bool> init;    // (item, i, column) warm-start support; data = nullptr without
  Strided3<scalar_t> S;         // (item, i, column)
  int32_t* info;                // (nb, M) contiguous
  int64_t M, b0, c0, len, items, max_iter;

  NNLS_HD int32_t* info_of(int64_t li, int64_t lj) const { return info + (b0 + li) * M + c0 + lj; }
  // b_i as the solver sees it (a_scale d_i (A^T x)_i); rows of zero columns of A are 0 whatever B holds there,
  // as on the CPU, which drops them
  NNLS_HD double rhs(int64_t li, int i, int64_t lj, const double* rs) const {
    const double v = static_cast<double>(B.at(li, i, lj));
    if (rs == nullptr) return v;
    return rs[i] == 0.0 ? 0.0 : v * rs[i];
  }
};

// The backward solve of nb items of M columns; deferred: (nb, M) flags from the lane-group kernel (nonzero:
// left to a thread), or nullptr when every column is.
template <typename scalar_t>
struct SupportColumns {
  GramView gram;
  Strided3<const scalar_t> grad, S;
  Strided3<scalar_t> V;
  const uint8_t* deferred;
  int64_t M, items;
};

// Per-thread scratch, `slots` slices; a thread works in its own slice whatever column it takes.
struct ColumnScratch {
  double* doubles;
  int* ints;
  uint8_t* bytes;
  int64_t doubles_per_slot, ints_per_slot, bytes_per_slot, slots;
};

NNLS_HD inline int64_t solver_doubles(int64_t k) { return k * k + 4 * k; }
// nnls: solver | b x (k each)            support_solve: solver | r v (k each) | Q (k x k, pinv fallback)
NNLS_HD inline int64_t nnls_doubles_per_slot(int64_t k) { return solver_doubles(k) + 2 * k; }
NNLS_HD inline int64_t support_doubles_per_slot(int64_t k) { return solver_doubles(k) + 2 * k + k * k; }
NNLS_HD inline int64_t ints_per_slot(int64_t k) { return 2 * k; }
NNLS_HD inline int64_t bytes_per_slot(int64_t k) { return 3 * k; }  // F, flag, passive

NNLS_HD inline ColumnWorkspace slot_workspace(const ColumnScratch& s, int64_t slot, int k, double*& extra_d,
                                              uint8_t*& extra_b) {
  double* d = s.doubles + slot * s.doubles_per_slot;
  int* in = s.ints + slot * s.ints_per_slot;
  uint8_t* b = s.bytes + slot * s.bytes_per_slot;
  const int64_t kk = static_cast<int64_t>(k) * k;
  extra_d = d + solver_doubles(k);
  extra_b = b + 2 * k;
  return ColumnWorkspace{d, d + kk, d + kk + k, d + kk + 2 * k, d + kk + 3 * k, in, in + k, b, b + k};
}

// b = a_scale d_i (A^T x_scale x)_i in float64 from the column's own data, where the products overflowed
// (a finite X can overflow them; so can the scaling of finite products). x_scale brings max |x| (or max |A^T
// x|) into [0.5, 1), so nothing overflows here. Returns false when the column holds a NaN or Inf.
template <typename rhs_t, typename scalar_t>
NNLS_HD bool rhs_from_column(const NnlsColumns<rhs_t, scalar_t>& a, int64_t li, int64_t lj, int64_t g, double* b,
                             double& x_scale) {
  const int k = a.gram.k;
  if (a.X.data != nullptr) {
    const int64_t N = a.gram.N, item = a.b0 + li, col = a.c0 + lj;
    double xmax = 0.0;
    for (int64_t n = 0; n < N; ++n) {
      const double v = static_cast<double>(a.X.at(item, n, col));
      if (!isfinite(v)) return false;
      xmax = fmax(xmax, fabs(v));
    }
    x_scale = xmax > 0.0 ? unit_scale(xmax) : 1.0;
    const double* Ad = a.gram.Ad + g * N * k;
    for (int i = 0; i < k; ++i) b[i] = 0.0;
    for (int64_t n = 0; n < N; ++n) {
      const double v = static_cast<double>(a.X.at(item, n, col)) * x_scale;
      const double* An = Ad + n * k;
      for (int i = 0; i < k; ++i) b[i] += An[i] * v;
    }
    return true;
  }
  const double* rs = a.row_scale + g * k;
  double bmax = 0.0;
  for (int i = 0; i < k; ++i) {
    if (rs[i] == 0.0) continue;
    const double v = static_cast<double>(a.B.at(li, i, lj));
    if (!isfinite(v)) return false;
    bmax = fmax(bmax, fabs(v));
  }
  x_scale = bmax > 0.0 ? unit_scale(bmax) : 1.0;
  for (int i = 0; i < k; ++i) {
    b[i] = rs[i] == 0.0 ? 0.0 : (static_cast<double>(a.B.at(li, i, lj)) * x_scale) * rs[i];
  }
  return true;
}

// The forward solve of column (li, lj) by one thread, in scratch slot `slot`: ColumnSolver from the start.
template <typename rhs_t, typename scalar_t>
NNLS_HD void nnls_column(const NnlsColumns<rhs_t, scalar_t>& a, int64_t li, int64_t lj, const ColumnScratch& scratch,
                         int64_t slot) {
  const int k = a.gram.k;
  const int64_t item = a.b0 + li, col = a.c0 + lj;
  const int64_t g = a.gram.item(item);
  int32_t* info = a.info_of(li, lj);
  const int32_t flags = a.gram.flags[g];
  if (!(flags & kGramAFinite)) {
    for (int i = 0; i < k; ++i) a.S.at(item, i, col) = static_cast<scalar_t>(NAN);
    *info = kInfoNonFinite;
    return;
  }
  double* extra;
  uint8_t* passive;
  const ColumnWorkspace ws = slot_workspace(scratch, slot, k, extra, passive);
  double* b = extra;
  double* x = extra + k;

  const double* rs = a.row_scale != nullptr ? a.row_scale + g * k : nullptr;
  bool finite = true;
  double c = 0.0;
  for (int i = 0; i < k; ++i) {
    b[i] = a.rhs(li, i, lj, rs);
    finite = finite && isfinite(b[i]);
    c = fmax(c, fabs(b[i]));
  }
  double x_scale = 1.0;
  if (!finite) {
    // NaN and Inf in the data always reach B (0 * Inf is NaN); finite data can only overflow the products.
    if (!rhs_from_column(a, li, lj, g, b, x_scale)) {
      for (int i = 0; i < k; ++i) a.S.at(item, i, col) = static_cast<scalar_t>(NAN);
      *info = kInfoNonFinite;
      return;
    }
    c = 0.0;
    for (int i = 0; i < k; ++i) c = fmax(c, fabs(b[i]));
  }
  if (c == 0.0) {  // A^T x = 0: S = 0 is optimal
    for (int i = 0; i < k; ++i) a.S.at(item, i, col) = static_cast<scalar_t>(0);
    *info = kConverged;
    return;
  }
  const double inv = 1.0 / c;
  for (int i = 0; i < k; ++i) b[i] *= inv;

  const int64_t kk = static_cast<int64_t>(k) * k;
  const double* H = (flags & kGramHUsable) ? a.gram.H + g * kk : nullptr;
  const uint8_t* passive0 = nullptr;
  if (a.init.data != nullptr) {
    for (int i = 0; i < k; ++i) passive[i] = a.init.at(item, i, col) ? 1 : 0;
    passive0 = passive;
  }
  ColumnSolver solver(k, a.gram.G + g * kk, H, ws);
  const int32_t status = solver.solve(b, nullptr, passive0, a.max_iter, x);  // u = H b formed when needed
  const double* d = a.gram.d + g * k;
  const double back = c * a.gram.a_scale[g];  // divided by x_scale last: the product may not fit in between
  for (int i = 0; i < k; ++i) {
    const double xi = x[i] < 0.0 ? 0.0 : x[i];
    a.S.at(item, i, col) = static_cast<scalar_t>(x_scale == 1.0 ? xi * d[i] * back : xi * d[i] * back / x_scale);
  }
  *info = status;
}

// V[P, j] = (A_P^T A_P)^{-1} grad[P, j] on the support P = {i : S[i, j] > 0} of column (item, col), by one
// thread, in the scaled variables: r = d * grad on P, v = G_PP^{-1} r_P, V = a_scale^2 * d * v. Writes the
// whole column of V.
template <typename scalar_t>
NNLS_HD void support_column(const SupportColumns<scalar_t>& a, int64_t item, int64_t col, const ColumnScratch& scratch,
                            int64_t slot) {
  const int k = a.gram.k;
  const int64_t g = a.gram.item(item);
  double* extra;
  uint8_t* passive;
  const ColumnWorkspace ws = slot_workspace(scratch, slot, k, extra, passive);
  double* r = extra;
  double* v = extra + k;
  double* Q = extra + 2 * k;
  const double* d = a.gram.d + g * k;
  int p = 0;
  for (int i = 0; i < k; ++i) {
    passive[i] = a.S.at(item, i, col) > 0 ? 1 : 0;
    p += passive[i];
    r[i] = passive[i] ? d[i] * static_cast<double>(a.grad.at(item, i, col)) : 0.0;
  }
  const int32_t flags = a.gram.flags[g];
  if (p == 0 || !(flags & kGramAFinite)) {
    const scalar_t fill = static_cast<scalar_t>(p == 0 ? 0.0 : NAN);
    for (int i = 0; i < k; ++i) a.V.at(item, i, col) = fill;
    return;
  }
  const int64_t kk = static_cast<int64_t>(k) * k;
  const double* G = a.gram.G + g * kk;
  ColumnSolver solver(k, G, (flags & kGramHUsable) ? a.gram.H + g * kk : nullptr, ws);
  if (!solver.solve_on_support(passive, r, v)) pinv_solve_on_support(G, k, passive, r, v, ws.M, Q, ws.in, ws.w);
  const double back = a.gram.a_scale[g] * a.gram.a_scale[g];
  for (int i = 0; i < k; ++i) a.V.at(item, i, col) = static_cast<scalar_t>(v[i] * (back * d[i]));
}

}  // namespace cuda
}  // namespace neuralnmf
