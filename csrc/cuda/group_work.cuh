// The pieces of the lane-group solve (group_solver.cuh) that are not the solver: the shared-memory workspace
// of one group (GroupWork and its size), the group's dot products (dot4, dot4_slots: the CPU's terms in the
// CPU's order), its exact maximum, the device's reciprocal square root, and when the refinement can be left
// out. Header-only, host+device: the tests run it on the host with the lanes of lane_group_host.h.
#pragma once

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../common/column_solver.h"
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

}  // namespace cuda
}  // namespace neuralnmf
