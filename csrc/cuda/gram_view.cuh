// The per-dictionary data every CUDA column kernel reads, and the block routine that prepares it on the device
// (the counterpart of csrc/cpu/scaled_gram.cpp, without a host synchronisation).
//
// Same scaling as the CPU path, with one change that keeps every decision on the device: zero columns of A are
// kept in place instead of dropped. Their Jacobi scale is d_i = 0, so Ad[:, i] = 0, row and column i of
// G = Ad^T Ad are exactly 0, and G_ii is set to 1. Variable i is then decoupled with b_i = 0 in every column:
// pivoting keeps x_i = 0 (x_i = 0 on the passive side, y_i = 0 on the active side), Lawson-Hanson never
// selects it, and S[i, j] = d_i * (...) = 0 in any case.
//
// Header-only, host+device (NNLS_HD), free of torch and the standard library: tests run this code on the host
// (tests/test_cuda_compile.py), where a "team" is a single thread.
#pragma once

#include <math.h>
#include <stdint.h>

#include "../common/dense_small.h"

namespace neuralnmf {
namespace cuda {

enum GramFlag : int32_t {
  kGramAFinite = 1,  // every entry of A is finite
  kGramHUsable = 2,  // G is positive definite to working precision and H = G^{-1} was formed
};

// H is formed only when every Cholesky pivot of G stays above this fraction of its diagonal entry: the CPU
// path's cpu::kGramRtol (checked by a static_assert in nnls_kernel.cu).
constexpr double kGramPivotRtol = 1e-10;

// The prepared dictionaries of one call: ng items, ng = 1 when A is shared by every batch item.
//   Ad (ng, N, k)  float64, As[:, i] * d_i with As = A * a_scale; zero columns stay zero
//   G  (ng, k, k)  Ad^T Ad, unit diagonal (1 also for zero columns)
//   H  (ng, k, k)  G^{-1}, symmetric; meaningful only where flags has kGramHUsable
//   d  (ng, k)     Jacobi scales, 0 for zero columns
//   a_scale (ng)   power of two with max |A * a_scale| in [0.5, 1)
//   flags (ng)     GramFlag bits
struct GramView {
  int k;
  int64_t N;
  bool shared;
  const double* Ad;
  const double* G;
  const double* H;
  const double* d;
  const double* a_scale;
  const int32_t* flags;

  NNLS_HD int64_t item(int64_t batch_item) const { return shared ? 0 : batch_item; }
};

// 2^-e where v = f 2^e, f in [0.5, 1): multiplying by it brings v into [0.5, 1) exactly.
NNLS_HD inline double unit_scale(double v) {
  int e = 0;
  frexp(v, &e);
  return ldexp(1.0, -e);
}

// a_scale of a dictionary from max |A| (1 for an all-zero or non-finite A, whose flags say so).
NNLS_HD inline double dictionary_scale(double amax) {
  return (amax > 0.0 && isfinite(amax)) ? unit_scale(amax) : 1.0;
}

// The threads of one CUDA block, or the one host thread of a test.
struct Team {
  NNLS_HD int rank() const {
#ifdef __CUDA_ARCH__
    return static_cast<int>(threadIdx.x);
#else
    return 0;
#endif
  }
  NNLS_HD int size() const {
#ifdef __CUDA_ARCH__
    return static_cast<int>(blockDim.x);
#else
    return 1;
#endif
  }
  NNLS_HD void sync() const {
#ifdef __CUDA_ARCH__
    __syncthreads();
#endif
  }
};

// Row c of L^{-T} L^{-1} (= column c, H being symmetric) solved in place in column c of H (row-major n x n):
// the same arithmetic as cholesky_solve_inplace on the unit vector e_c, which the CPU path runs.
NNLS_HD inline void inverse_column(const double* L, int n, int c, double* H) {
  for (int i = 0; i < n; ++i) {
    const double* Li = L + i * n;
    double s = i == c ? 1.0 : 0.0;
    for (int p = 0; p < i; ++p) s -= Li[p] * H[p * n + c];
    H[i * n + c] = s / Li[i];
  }
  for (int i = n - 1; i >= 0; --i) {
    double s = H[i * n + c];
    for (int p = i + 1; p < n; ++p) s -= L[p * n + i] * H[p * n + c];
    H[i * n + c] = s / L[i * n + i];
  }
}

// Finishes one dictionary, run by a whole team (Team above; tests also pass a team of host threads): G (n x n, from the GEMM Ad^T Ad) gets unit diagonal entries
// for its zero columns; L receives G's Cholesky factor (lower triangle); H, zero on entry, receives G^{-1}
// when every pivot passes kGramPivotRtol, and *flags gains kGramHUsable. `shared` is one double visible to
// the whole team (CUDA shared memory). The Cholesky is left-looking with the loop order of cholesky_inplace
// (csrc/common/dense_small.h): one thread takes the pivot, the team the column below it.
template <typename TeamT>
NNLS_HD void prepare_gram_item(const TeamT& team, double* G, double* L, double* H, const double* d, int32_t* flags,
                               int n, double* shared) {
  const int r = team.rank(), s = team.size();
  const int32_t flags0 = *flags;
  const int64_t nn = static_cast<int64_t>(n) * n;
  for (int i = r; i < n; i += s) {
    if (d[i] == 0.0) G[i * n + i] = 1.0;
  }
  // Exactly symmetric from the lower triangle (a GEMM's Ad^T Ad need not be): the column solver reads rows
  // in place of columns. Each upper entry has one writer and reads a lower one, which nobody writes.
  for (int64_t e = r; e < nn; e += s) {
    const int64_t i = e / n, c = e % n;
    if (c > i) G[e] = G[c * n + i];
  }
  team.sync();
  for (int64_t e = r; e < nn; e += s) L[e] = G[e];
  team.sync();
  bool ok = (flags0 & kGramAFinite) != 0;  // the same on every thread: the branches below are uniform
  for (int j = 0; ok && j < n; ++j) {
    double* Lj = L + j * n;
    if (r == 0) {
      const double diag = Lj[j];
      double dj = diag;
      for (int p = 0; p < j; ++p) dj -= Lj[p] * Lj[p];
      const bool good = dj > kGramPivotRtol * diag && diag > 0.0;  // false for NaN too
      if (good) Lj[j] = sqrt(dj);
      *shared = good ? 1.0 / Lj[j] : 0.0;  // 0 marks a failed pivot; written only between the two syncs
    }
    team.sync();
    const double inv = *shared;
    ok = inv != 0.0;
    if (ok) {
      for (int i = j + 1 + r; i < n; i += s) {
        double* Li = L + i * n;
        double v = Li[j];
        for (int p = 0; p < j; ++p) v -= Li[p] * Lj[p];
        Li[j] = v * inv;
      }
    }
    team.sync();
  }
  if (!ok) return;
  for (int c = r; c < n; c += s) inverse_column(L, n, c, H);
  team.sync();
  for (int64_t e = r; e < nn; e += s) {  // symmetrise the round-off; each pair (i > c) has one owner
    const int i = static_cast<int>(e / n), c = static_cast<int>(e % n);
    if (i > c) {
      const double v = 0.5 * (H[i * n + c] + H[c * n + i]);
      H[i * n + c] = v;
      H[c * n + i] = v;
    }
  }
  if (r == 0) *flags = flags0 | kGramHUsable;
}

}  // namespace cuda
}  // namespace neuralnmf
