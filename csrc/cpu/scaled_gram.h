// The Gram matrix of one dictionary A (N x k), prepared once and shared by every column's solve.
//
// Scaling makes every tolerance relative and keeps float64 away from overflow and underflow:
//   As = A * a_scale          a_scale a power of two with max |As| in [0.5, 1): exact
//   Ad = As[:, idx] * d        idx: the nonzero columns of A, d = 1 / ||As[:, i]||  (Jacobi scaling)
//   G  = Ad^T Ad               unit diagonal; H = G^{-1} when G is positive definite to working precision.
// Zero columns of A are dropped (their coefficient is 0 in every solution). A solution x of the scaled
// problem min ||Ad x - X[:, j]|| maps back as S[idx[i], j] = a_scale * d[i] * x[i].
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace neuralnmf {
namespace cpu {

struct ScaledGram {
  bool finite = true;      // false when A holds a NaN or Inf (nothing else is then valid)
  int64_t k = 0;           // columns of A
  int64_t kr = 0;          // nonzero columns of A
  double a_scale = 1.0;    // power of two
  std::vector<int64_t> idx;  // kr: position in A of each kept column
  std::vector<double> d;     // kr: Jacobi scale of each kept column
  std::vector<double> G;     // kr x kr, row-major, unit diagonal
  std::vector<double> H;     // kr x kr inverse of G; empty when G is singular to working precision
  at::Tensor Ad;             // N x kr, float64 (only when asked for)
};

// G counts as singular (H left empty) when a Cholesky pivot falls below this fraction of its diagonal entry,
// i.e. roughly when cond(G) = cond(A)^2 exceeds 1e10; Lawson-Hanson then solves every column.
constexpr double kGramRtol = 1e-10;

// A: (N, k) float32 or float64. Without `with_Ad` (solves from products A^T X, support solves) the scratch
// memory is O(k^2 + block * k), nothing of size N x k; Ad is then undefined.
ScaledGram make_scaled_gram(const at::Tensor& A, bool with_Ad);

}  // namespace cpu
}  // namespace neuralnmf
