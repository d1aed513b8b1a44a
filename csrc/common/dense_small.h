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
// to working precision (or holds a NaN).
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
    for (int i = j + 1; i < n; ++i) {
      double* Mi = M + i * n;
      double s = Mi[j];
      for (int p = 0; p < j; ++p) s -= Mi[p] * Mj[p];
      Mi[j] = s * inv;
    }
  }
  return true;
}

// Solves L L^T x = b in place (x holds b on entry) with L from cholesky_inplace.
NNLS_HD inline void cholesky_solve_inplace(const double* L, int n, double* x) {
  for (int i = 0; i < n; ++i) {
    const double* Li = L + i * n;
    double s = x[i];
    for (int p = 0; p < i; ++p) s -= Li[p] * x[p];
    x[i] = s / Li[i];
  }
  for (int i = n - 1; i >= 0; --i) {
    double s = x[i];
    for (int p = i + 1; p < n; ++p) s -= L[p * n + i] * x[p];
    x[i] = s / L[i * n + i];
  }
}

}  // namespace neuralnmf
