// What one lane group does for one column (group_solver.cuh): the forward solve (group_nnls_column) and the
// backward solve (group_support_column), with the contract and scaling of column_device.cuh. A column whose
// solve needs more than the group's workspace holds, or whose right-hand side is not finite, is marked and
// left untouched for the one-thread-per-column kernel: info = kDeferred (forward) or deferred[...] = 1
// (backward), whereupon that kernel solves it from the start.
//
// Header-only, host+device: the tests run it on the host with the lanes of lane_group_host.h.
#pragma once

#include <math.h>
#include <stdint.h>

#include "column_device.cuh"
#include "group_solver.cuh"

namespace neuralnmf {
namespace cuda {

// What a lane reads of one column before solving it: its right-hand side entries and warm-start flags (the
// kernels load the next column's while solving the current one, so the memory latency is hidden).
template <int VPL>
struct ColumnLoad {
  double v[VPL];
  bool f[VPL];
};

template <class Grp, int VPL, typename rhs_t, typename scalar_t>
NNLS_FI ColumnLoad<VPL> load_nnls_column(const Grp& g, const NnlsColumns<rhs_t, scalar_t>& a, int64_t li, int64_t lj) {
  const int k = a.gram.k;
  const int64_t item = a.b0 + li, col = a.c0 + lj;
  const int64_t gi = a.gram.item(item);
  const double* rs = a.row_scale != nullptr ? a.row_scale + gi * k : nullptr;
  ColumnLoad<VPL> out;
#pragma unroll
  for (int r = 0; r < VPL; ++r) {
    const int i = r * Grp::kSize + g.lane();
    out.v[r] = i < k ? a.rhs(li, i, lj, rs) : 0.0;
    out.f[r] = i < k && (a.init.data == nullptr || a.init.at(item, i, col));
  }
  return out;
}

// G, H: the column's Gram matrix and its inverse (shared or global memory); H is ignored unless usable.
// refine: refine a dual-side solution (false only where refine_skippable). col: load_nnls_column's.
template <class Grp, int VPL, typename rhs_t, typename scalar_t>
NNLS_FI void group_nnls_column(const Grp& g, const NnlsColumns<rhs_t, scalar_t>& a, const double* G, const double* H,
                               bool refine, GroupWork ws, int64_t li, int64_t lj, const ColumnLoad<VPL>& load) {
  using Solver = GroupSolver<Grp, VPL>;
  const int k = a.gram.k;
  const int64_t item = a.b0 + li, col = a.c0 + lj;
  const int64_t gi = a.gram.item(item);
  const int32_t flags = a.gram.flags[gi];
  int32_t* info = a.info_of(li, lj);
  const bool leader = g.lane() == 0;
  if (!(flags & kGramAFinite)) {
#pragma unroll
    for (int r = 0; r < VPL; ++r) {
      const int i = r * Grp::kSize + g.lane();
      if (i < k) a.S.at(item, i, col) = static_cast<scalar_t>(NAN);
    }
    if (leader) *info = kInfoNonFinite;
    return;
  }
  if (!(flags & kGramHUsable)) {  // G singular: Lawson-Hanson for every column, as on the CPU
    if (leader) *info = kDeferred;
    return;
  }
  Solver s(g, k, G, H, ws);
  bool finite = true;
  double c = 0.0;
#pragma unroll
  for (int r = 0; r < VPL; ++r) {
    const double v = load.v[r];
    s.b[r] = v;
    finite = finite && isfinite(v);
    c = fmax(c, fabs(v));
  }
  if (g.ballot(!finite) != 0u) {  // NaN/Inf data, or overflow: re-read or rescaled by a thread
    if (leader) *info = kDeferred;
    return;
  }
  c = group_max_abs(g, c);
  if (c == 0.0) {  // A^T x = 0: S = 0 is optimal
#pragma unroll
    for (int r = 0; r < VPL; ++r) {
      const int i = s.index(r);
      if (i < k) a.S.at(item, i, col) = static_cast<scalar_t>(0);
    }
    if (leader) *info = kConverged;
    return;
  }
  const double inv = 1.0 / c;
#pragma unroll
  for (int r = 0; r < VPL; ++r) {
    const int i = s.index(r);
    s.b[r] *= inv;
    s.x[r] = 0.0;
    s.F[r] = i < k && load.f[r];
  }
  s.publish_rhs();
  const int32_t status = s.solve(a.max_iter, refine);
  if (status == kDeferred) {
    if (leader) *info = kDeferred;
    return;
  }
  const double* d = a.gram.d + gi * k;
  const double back = c * a.gram.a_scale[gi];
#pragma unroll
  for (int r = 0; r < VPL; ++r) {
    const int i = s.index(r);
    if (i < k) {
      const double xi = s.x[r] < 0.0 ? 0.0 : s.x[r];
      a.S.at(item, i, col) = static_cast<scalar_t>(xi * d[i] * back);
    }
  }
  if (leader) *info = status;
}

// trace(H) of an n x n matrix, by one thread (for refine_skippable, once per dictionary and block).
NNLS_HD inline double trace(const double* H, int n) {
  double t = 0.0;
  for (int i = 0; i < n; ++i) t += H[i * n + i];
  return t;
}

// One column of the backward solve as a lane reads it: grad on the support (v), and the support (f).
template <class Grp, int VPL, typename scalar_t>
NNLS_FI ColumnLoad<VPL> load_support_column(const Grp& g, const SupportColumns<scalar_t>& a, int64_t item, int64_t col) {
  const int k = a.gram.k;
  ColumnLoad<VPL> out;
#pragma unroll
  for (int r = 0; r < VPL; ++r) {
    const int i = r * Grp::kSize + g.lane();
    out.f[r] = i < k && a.S.at(item, i, col) > 0;
    out.v[r] = out.f[r] ? static_cast<double>(a.grad.at(item, i, col)) : 0.0;
  }
  return out;
}

// The backward solve of column (item, col); writes deferred[item * M + col] (0: done here, 1: left to a thread).
template <class Grp, int VPL, typename scalar_t>
NNLS_FI void group_support_column(const Grp& g, const SupportColumns<scalar_t>& a, const double* G, const double* H,
                                  GroupWork ws, int64_t item, int64_t col, const ColumnLoad<VPL>& load,
                                  uint8_t* deferred) {
  using Solver = GroupSolver<Grp, VPL>;
  const int k = a.gram.k;
  const int64_t gi = a.gram.item(item);
  const int32_t flags = a.gram.flags[gi];
  const double* d = a.gram.d + gi * k;
  Solver s(g, k, G, (flags & kGramHUsable) ? H : nullptr, ws);
  bool any = false;
#pragma unroll
  for (int r = 0; r < VPL; ++r) {
    const int i = s.index(r);
    const bool on = load.f[r];
    s.F[r] = on;
    s.b[r] = on ? d[i] * load.v[r] : 0.0;
    s.x[r] = 0.0;
    any = any || on;
  }
  uint8_t flag = 0;
  const bool empty = g.ballot(any) == 0u;
  if (empty || !(flags & kGramAFinite)) {
    const scalar_t fill = static_cast<scalar_t>(empty ? 0.0 : NAN);
#pragma unroll
    for (int r = 0; r < VPL; ++r) {
      const int i = s.index(r);
      if (i < k) a.V.at(item, i, col) = fill;
    }
  } else {
    s.publish_rhs();
    if (s.solve_on_support()) {
      const double back = a.gram.a_scale[gi] * a.gram.a_scale[gi];
#pragma unroll
      for (int r = 0; r < VPL; ++r) {
        const int i = s.index(r);
        if (i < k) a.V.at(item, i, col) = static_cast<scalar_t>(s.x[r] * (back * d[i]));
      }
    } else {
      flag = 1;  // a singular support, or the passive side of more than ceil(k / 2) rows without H
    }
  }
  if (g.lane() == 0) deferred[item * a.M + col] = flag;
}

}  // namespace cuda
}  // namespace neuralnmf
