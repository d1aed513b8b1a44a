// What one CUDA thread does for one column, in the forward solve (nnls_column) and in the backward solve
// (support_column): the per-column half of csrc/cpu/nnls_kernel.cpp and csrc/cpu/support_solve_kernel.cpp,
// around the shared csrc/common/column_solver.h.
//
// Layouts: the chunk's right-hand sides B and U are (items, k, len) and S, V, grad, init are (nb, k, M), so
// thread t of a warp reads entry i of its column next to thread t + 1: every global access outside the
// scratch is coalesced. Each thread owns one slice of the scratch (ColumnScratch).
//
// Errors cannot be raised from here without a host synchronisation, so they are reported per column:
// info = kInfoNonFinite and a NaN column of S where the column's right-hand side is NaN or Inf (X holds a
// NaN/Inf, or A does, which sets every column). neuralnmf/ops.py turns that into ValueError.
//
// Header-only, host+device, free of torch and the standard library: tests run it on the host.
#pragma once

#include <math.h>
#include <stdint.h>

#include "../common/column_solver.h"
#include "gram_device.cuh"
#include "pinv_jacobi.cuh"

namespace neuralnmf {
namespace cuda {

constexpr int32_t kInfoNonFinite = -2;
// u = U / c comes from the chunk's GEMM U = H B unless c = max |b| is this far from 1 (or U is not finite):
// then H B may have overflowed or lost digits to underflow, and the thread forms u = H (b / c) itself. (The
// CPU path rescales the chunk of X and repeats its GEMMs instead, which needs a host decision.)
constexpr double kRhsHuge = 0x1p500, kRhsTiny = 0x1p-500;

// Per-column scratch, `cols` slices. ColumnSolver's workspace comes first in each slice.
struct ColumnScratch {
  double* doubles;
  int* ints;
  uint8_t* bytes;
  int64_t doubles_per_col, ints_per_col, bytes_per_col;
};

NNLS_HD inline int64_t solver_doubles(int64_t k) { return k * k + 4 * k; }
// nnls: solver | b u x (k each)            support_solve: solver | r v (k each) | Q (k x k, pinv fallback)
NNLS_HD inline int64_t nnls_doubles_per_col(int64_t k) { return solver_doubles(k) + 3 * k; }
NNLS_HD inline int64_t support_doubles_per_col(int64_t k) { return solver_doubles(k) + 2 * k + k * k; }
NNLS_HD inline int64_t ints_per_col(int64_t k) { return 2 * k; }
NNLS_HD inline int64_t bytes_per_col(int64_t k) { return 3 * k; }  // F, flag, passive

NNLS_HD inline ColumnWorkspace solver_workspace(const ColumnScratch& s, int64_t t, int k, double*& extra_d,
                                                uint8_t*& extra_b) {
  double* d = s.doubles + t * s.doubles_per_col;
  int* in = s.ints + t * s.ints_per_col;
  uint8_t* b = s.bytes + t * s.bytes_per_col;
  const int64_t kk = static_cast<int64_t>(k) * k;
  extra_d = d + solver_doubles(k);
  extra_b = b + 2 * k;
  return ColumnWorkspace{d, d + kk, d + kk + k, d + kk + 2 * k, d + kk + 3 * k, in, in + k, b, b + k};
}

// One chunk of the forward solve: batch items b0 .. b0 + items - 1, columns c0 .. c0 + len - 1; thread t
// takes item b0 + t / len, column c0 + t % len.
template <typename scalar_t>
struct NnlsChunk {
  GramView gram;
  const double* B;      // (items, k, len)  Ad^T X[:, chunk], float64
  const double* U;      // (items, k, len)  H B (read only where H is usable)
  const scalar_t* X;    // (nb, N, M) contiguous; re-read only by columns whose B is not finite
  const bool* init;     // (nb, k, M) warm-start support, or nullptr
  scalar_t* S;          // (nb, k, M)
  int32_t* info;        // (nb, M)
  int64_t M, b0, c0, len, items, max_iter;
  ColumnScratch scratch;
};

// b = Ad^T (x * x_scale) in float64 from the data column itself, for a column whose GEMM result overflowed
// (a finite X can overflow the float32 or float64 products). x_scale brings max |x| into [0.5, 1), and
// |Ad| <= 1, so nothing overflows here. Returns false when the column holds a NaN or Inf.
template <typename scalar_t>
NNLS_HD bool rhs_from_data(const NnlsChunk<scalar_t>& a, int64_t item, int64_t col, const double* Ad, double* b,
                           double& x_scale) {
  const int k = a.gram.k;
  const int64_t N = a.gram.N;
  const scalar_t* x = a.X + item * N * a.M + col;
  double xmax = 0.0;
  for (int64_t n = 0; n < N; ++n) {
    const double v = static_cast<double>(x[n * a.M]);
    if (!isfinite(v)) return false;
    xmax = fmax(xmax, fabs(v));
  }
  x_scale = xmax > 0.0 ? unit_scale(xmax) : 1.0;
  for (int i = 0; i < k; ++i) b[i] = 0.0;
  for (int64_t n = 0; n < N; ++n) {
    const double v = static_cast<double>(x[n * a.M]) * x_scale;
    const double* An = Ad + n * k;
    for (int i = 0; i < k; ++i) b[i] += An[i] * v;
  }
  return true;
}

template <typename scalar_t>
NNLS_HD void nnls_column(const NnlsChunk<scalar_t>& a, int64_t t) {
  const int k = a.gram.k;
  const int64_t local = t / a.len, j = t % a.len;
  const int64_t item = a.b0 + local, col = a.c0 + j;
  const int64_t g = a.gram.item(item);
  scalar_t* s_col = a.S + item * k * a.M + col;  // entry i at s_col[i * M]
  int32_t* info = a.info + item * a.M + col;
  const int32_t flags = a.gram.flags[g];
  if (!(flags & kGramAFinite)) {
    for (int i = 0; i < k; ++i) s_col[i * a.M] = static_cast<scalar_t>(NAN);
    *info = kInfoNonFinite;
    return;
  }
  double* extra;
  uint8_t* passive;
  const ColumnWorkspace ws = solver_workspace(a.scratch, t, k, extra, passive);
  double* b = extra;
  double* u = extra + k;
  double* x = extra + 2 * k;

  const double* b_col = a.B + local * k * a.len + j;  // entry i at b_col[i * len]
  bool finite = true;
  double c = 0.0;
  for (int i = 0; i < k; ++i) {
    b[i] = b_col[i * a.len];
    finite = finite && isfinite(b[i]);
    c = fmax(c, fabs(b[i]));
  }
  double x_scale = 1.0;
  bool own_u = false;  // U's column is unusable: form u = H b here
  if (!finite) {
    // NaN and Inf in X always reach B (0 * Inf is NaN); a finite X can only overflow the products.
    if (!rhs_from_data(a, item, col, a.gram.Ad + g * a.gram.N * k, b, x_scale)) {
      for (int i = 0; i < k; ++i) s_col[i * a.M] = static_cast<scalar_t>(NAN);
      *info = kInfoNonFinite;
      return;
    }
    c = 0.0;
    for (int i = 0; i < k; ++i) c = fmax(c, fabs(b[i]));
    own_u = true;
  }
  if (c == 0.0) {  // A^T x = 0: S = 0 is optimal
    for (int i = 0; i < k; ++i) s_col[i * a.M] = static_cast<scalar_t>(0);
    *info = kConverged;
    return;
  }
  const double inv = 1.0 / c;
  for (int i = 0; i < k; ++i) b[i] *= inv;

  const int64_t kk = static_cast<int64_t>(k) * k;
  const double* H = (flags & kGramHUsable) ? a.gram.H + g * kk : nullptr;
  if (H != nullptr) {
    own_u = own_u || !(c <= kRhsHuge && c >= kRhsTiny);
    if (!own_u) {
      const double* u_col = a.U + local * k * a.len + j;
      for (int i = 0; i < k; ++i) {
        u[i] = u_col[i * a.len] * inv;
        own_u = own_u || !isfinite(u[i]);
      }
    }
    if (own_u) {
      for (int i = 0; i < k; ++i) {
        const double* Hi = H + i * k;
        double v = 0.0;
        for (int m = 0; m < k; ++m) v += Hi[m] * b[m];
        u[i] = v;
      }
    }
  }
  const uint8_t* passive0 = nullptr;
  if (a.init != nullptr) {
    const bool* f = a.init + item * k * a.M + col;
    for (int i = 0; i < k; ++i) passive[i] = f[i * a.M] ? 1 : 0;
    passive0 = passive;
  }
  ColumnSolver solver(k, a.gram.G + g * kk, H, ws);
  const int32_t status = solver.solve(b, H != nullptr ? u : nullptr, passive0, a.max_iter, x);
  const double* d = a.gram.d + g * k;
  const double back = c * a.gram.a_scale[g];  // divided by x_scale last: the product may not fit in between
  for (int i = 0; i < k; ++i) {
    const double xi = x[i] < 0.0 ? 0.0 : x[i];
    s_col[i * a.M] = static_cast<scalar_t>(x_scale == 1.0 ? xi * d[i] * back : xi * d[i] * back / x_scale);
  }
  *info = status;
}

// One chunk of the backward solve, laid out like NnlsChunk.
template <typename scalar_t>
struct SupportChunk {
  GramView gram;
  const scalar_t* grad;  // (nb, k, M)
  const scalar_t* S;     // (nb, k, M)
  scalar_t* V;           // (nb, k, M), zero on entry
  int64_t M, b0, c0, len, items;
  ColumnScratch scratch;
};

// V[P, j] = (A_P^T A_P)^{-1} grad[P, j] on the support P = {i : S[i, j] > 0}, in the scaled variables:
// r = d * grad on P, v = G_PP^{-1} r_P, V = a_scale^2 * d * v.
template <typename scalar_t>
NNLS_HD void support_column(const SupportChunk<scalar_t>& a, int64_t t) {
  const int k = a.gram.k;
  const int64_t local = t / a.len, j = t % a.len;
  const int64_t item = a.b0 + local, col = a.c0 + j;
  const int64_t g = a.gram.item(item);
  const int64_t off = item * k * a.M + col;  // entry i at [off + i * M]
  double* extra;
  uint8_t* passive;
  const ColumnWorkspace ws = solver_workspace(a.scratch, t, k, extra, passive);
  double* r = extra;
  double* v = extra + k;
  double* Q = extra + 2 * k;
  const double* d = a.gram.d + g * k;
  int p = 0;
  for (int i = 0; i < k; ++i) {
    passive[i] = a.S[off + i * a.M] > 0 ? 1 : 0;
    p += passive[i];
    r[i] = passive[i] ? d[i] * static_cast<double>(a.grad[off + i * a.M]) : 0.0;
  }
  if (p == 0) return;
  const int32_t flags = a.gram.flags[g];
  if (!(flags & kGramAFinite)) {
    for (int i = 0; i < k; ++i) a.V[off + i * a.M] = static_cast<scalar_t>(NAN);
    return;
  }
  const int64_t kk = static_cast<int64_t>(k) * k;
  const double* G = a.gram.G + g * kk;
  ColumnSolver solver(k, G, (flags & kGramHUsable) ? a.gram.H + g * kk : nullptr, ws);
  if (!solver.solve_on_support(passive, r, v)) pinv_solve_on_support(G, k, passive, r, v, ws.M, Q, ws.in, ws.w);
  const double back = a.gram.a_scale[g] * a.gram.a_scale[g];
  for (int i = 0; i < k; ++i) a.V[off + i * a.M] = static_cast<scalar_t>(v[i] * (back * d[i]));
}

}  // namespace cuda
}  // namespace neuralnmf
