// Small dense kernels on row-major double buffers, used per column by the NNLS solvers, on the host and
// (compiled by nvcc) on the device. Sizes are the NNLS rank k (typically <= 256): plain loops beat LAPACK.
#pragma once

#include <math.h>

#ifdef __CUDACC__
#define NNLS_HD __host__ __device__
#else
#define NNLS_HD
#endif

namespace neuralnmf {

// In-place Cholesky M = L L^T of an n x n row-major matrix (ld = n); only the lower triangle is read
// and written. Returns false when a pivot falls to <= rtol * (its diagonal entry): the matrix is singular
// to working precision (or holds a NaN). Left-looking (Cholesky-Crout): L_ij = (M_ij - sum_{p<j} L_ip L_jp) / L_jj
// with the sum in increasing p; four rows i at a time, each with its own running sum (independent chains
// that overlap in the pipeline; every sum keeps its terms and order, so the factor is the same to the bit).
NNLS_HD inline bool cholesky_inplace(double* M, int n, double rtol) {
  for (int j = 0; j < n; ++j) {
    double* Mj = M + j * n;
    double d = Mj[j];
    const double diag = d;
    for (int p = 0; p < j; ++p) d -= Mj[p] * Mj[p];
    if (!(d > rtol * diag) || !(diag > 0.0)) return false;
    d = sqrt(d);
    Mj[j] = d;
    const double inv = 1.0 / d;
    int i = j + 1;
    for (; i + 4 <= n; i += 4) {
      double* M0 = M + i * n;
      double* M1 = M0 + n;
      double* M2 = M1 + n;
      double* M3 = M2 + n;
      double s0 = M0[j], s1 = M1[j], s2 = M2[j], s3 = M3[j];
      for (int p = 0; p < j; ++p) {
        const double l = Mj[p];
        s0 -= M0[p] * l;
        s1 -= M1[p] * l;
        s2 -= M2[p] * l;
        s3 -= M3[p] * l;
      }
      M0[j] = s0 * inv;
      M1[j] = s1 * inv;
      M2[j] = s2 * inv;
      M3[j] = s3 * inv;
    }
    for (; i < n; ++i) {
      double* Mi = M + i * n;
      double s = Mi[j];
      for (int p = 0; p < j; ++p) s -= Mi[p] * Mj[p];
      Mi[j] = s * inv;
    }
  }
  return true;
}

// Solves L L^T x = b in place (x holds b on entry) with L from cholesky_inplace: the forward substitution
// column by column (x_i -= L_ip x_p for all i > p at once: independent updates, each x_i still receiving its
// terms in increasing p), the backward one row by row; the same bits as the textbook row-oriented loops.
NNLS_HD inline void cholesky_solve_inplace(const double* L, int n, double* x) {
  for (int p = 0; p < n; ++p) {
    const double v = x[p] / L[p * n + p];
    x[p] = v;
    for (int i = p + 1; i < n; ++i) x[i] -= L[i * n + p] * v;
  }
  for (int i = n - 1; i >= 0; --i) {
    double s = x[i];
    for (int p = i + 1; p < n; ++p) s -= L[p * n + i] * x[p];
    x[i] = s / L[i * n + i];
  }
}

}  // namespace neuralnmf
