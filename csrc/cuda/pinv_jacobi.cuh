// Minimum-norm solve on a singular support block, for the CUDA backward pass.
//
// Where G_PP is singular to working precision (duplicate columns of A in one support, say), the CPU kernel
// answers v_P = pinv(G_PP) r_P with at::linalg_pinv(hermitian=True). A thread cannot call LAPACK, so this
// computes the same pseudo-inverse itself: the eigendecomposition G_PP = Q diag(l) Q^T by cyclic Jacobi
// rotations (accurate for symmetric positive semidefinite matrices, about 6-10 sweeps), then
// v_P = sum over l_m > cutoff of q_m (q_m . r_P) / l_m with torch's default cutoff p * eps * max |l|.
// A ridge (G_PP + lambda I) would be simpler but amplifies the part of r_P outside the range of G_PP by
// 1 / lambda, where the pseudo-inverse drops it; the gradients would then depend on lambda.
//
// Header-only, host+device, no standard library (tests run it on the host).
#pragma once

#include <float.h>
#include <math.h>
#include <stdint.h>

#include "../common/dense_small.h"

namespace neuralnmf {
namespace cuda {

constexpr int kJacobiMaxSweeps = 60;  // convergence is quadratic; this only bounds pathological inputs

// One Jacobi rotation in the plane (a, c) that zeroes A[a, c] of the symmetric p x p matrix A (row-major),
// accumulated into Q (A <- J^T A J, Q <- Q J; Golub & Van Loan, Algorithm 8.5.2).
NNLS_HD inline void jacobi_rotate(double* A, double* Q, int p, int a, int c) {
  const double apc = A[a * p + c];
  if (apc == 0.0) return;
  const double tau = (A[c * p + c] - A[a * p + a]) / (2.0 * apc);
  // t = tan(theta), the smaller root of t^2 + 2 tau t - 1 = 0; 1 / (2 tau) once tau^2 would overflow.
  const double t = fabs(tau) > 1e150 ? 0.5 / tau : (tau >= 0.0 ? 1.0 : -1.0) / (fabs(tau) + sqrt(1.0 + tau * tau));
  const double cs = 1.0 / sqrt(1.0 + t * t), sn = t * cs;
  for (int m = 0; m < p; ++m) {  // A J: columns a and c
    const double x = A[m * p + a], y = A[m * p + c];
    A[m * p + a] = cs * x - sn * y;
    A[m * p + c] = sn * x + cs * y;
  }
  for (int m = 0; m < p; ++m) {  // J^T (A J): rows a and c
    const double x = A[a * p + m], y = A[c * p + m];
    A[a * p + m] = cs * x - sn * y;
    A[c * p + m] = sn * x + cs * y;
  }
  A[a * p + c] = 0.0;
  A[c * p + a] = 0.0;
  for (int m = 0; m < p; ++m) {
    const double x = Q[m * p + a], y = Q[m * p + c];
    Q[m * p + a] = cs * x - sn * y;
    Q[m * p + c] = sn * x + cs * y;
  }
}

// v (n) = pinv(G_PP) r_P on the support `passive` (n flags), zero elsewhere; G is n x n row-major.
// Scratch: A and Q hold p*p doubles each (p = |P| <= n), in p ints, t p doubles.
NNLS_HD inline void pinv_solve_on_support(const double* G, int n, const uint8_t* passive, const double* r, double* v,
                                          double* A, double* Q, int* in, double* t) {
  int p = 0;
  for (int i = 0; i < n; ++i) {
    v[i] = 0.0;
    if (passive[i]) in[p++] = i;
  }
  if (p == 0) return;
  double norm2 = 0.0;
  for (int a = 0; a < p; ++a) {
    for (int c = 0; c < p; ++c) {
      const double g = G[in[a] * n + in[c]];
      A[a * p + c] = g;
      Q[a * p + c] = a == c ? 1.0 : 0.0;
      norm2 += g * g;
    }
  }
  for (int sweep = 0; sweep < kJacobiMaxSweeps; ++sweep) {
    double off = 0.0;
    for (int a = 0; a < p; ++a) {
      for (int c = a + 1; c < p; ++c) off += A[a * p + c] * A[a * p + c];
    }
    if (!(off > DBL_EPSILON * DBL_EPSILON * norm2)) break;  // also stops on NaN
    for (int a = 0; a < p; ++a) {
      for (int c = a + 1; c < p; ++c) jacobi_rotate(A, Q, p, a, c);
    }
  }
  double lmax = 0.0;
  for (int m = 0; m < p; ++m) lmax = fmax(lmax, fabs(A[m * p + m]));
  const double cutoff = p * DBL_EPSILON * lmax;
  for (int m = 0; m < p; ++m) {
    const double l = A[m * p + m];
    double s = 0.0;
    if (fabs(l) > cutoff) {
      for (int a = 0; a < p; ++a) s += Q[a * p + m] * r[in[a]];
      s /= l;
    }
    t[m] = s;
  }
  for (int a = 0; a < p; ++a) {
    double s = 0.0;
    for (int m = 0; m < p; ++m) s += Q[a * p + m] * t[m];
    v[in[a]] = s;
  }
}

}  // namespace cuda
}  // namespace neuralnmf
