#include "support_predict.h"

#include <algorithm>

namespace neuralnmf {
namespace cpu {
namespace {

// C (m x n, column-major, leading dimension ldc) = op(A) op(B) + beta C, beta 0 or 1, op = transpose for 'T',
// through ATen on views of the scratch. (Calling the sgemm_ that torch links directly, found with dlsym, measured
// the same within the run-to-run spread of 1-2%: the dispatch costs little beside these GEMMs.)
at::Tensor col_major(const float* p, int64_t rows, int64_t cols, int64_t ld, char op) {
  const at::Tensor t = at::from_blob(const_cast<float*>(p), {rows, cols}, {1, ld}, at::TensorOptions().dtype(at::kFloat));
  return op == 'T' ? t.t() : t;
}

void sgemm(char ta, char tb, int64_t m, int64_t n, int64_t k, float beta, const float* A, int64_t lda,
           const float* B, int64_t ldb, float* C, int64_t ldc) {
  const at::Tensor a = ta == 'T' ? col_major(A, k, m, lda, 'T') : col_major(A, m, k, lda, 'N');
  const at::Tensor b = tb == 'T' ? col_major(B, n, k, ldb, 'T') : col_major(B, k, n, ldb, 'N');
  at::Tensor c = col_major(C, m, n, ldc, 'N');
  if (beta == 0.0f) {
    at::mm_out(c, a, b);
  } else {
    c.addmm_(a, b);
  }
}

}  // namespace

SupportPredictor::SupportPredictor(const ScaledGram& g)
    : kr_(g.kr), H_(g.kr * g.kr), B_(kTile * g.kr), X_(g.kr * kTile), Y_(g.kr * kTile), dY_(kGroup * kTile),
      hinv_(g.kr), delta_(kGroup * kTile) {
  for (int64_t i = 0; i < kr_ * kr_; ++i) H_[i] = static_cast<float>(g.H[i]);
  for (int64_t i = 0; i < kr_; ++i) hinv_[i] = 1.0f / H_[i * kr_ + i];
}

bool SupportPredictor::predict(const double* B, int64_t n, uint8_t* passive) {
  const int64_t kr = kr_, T = kTile;
  if (n < kMinColumns) return false;  // a few columns do not pay for the setup
  float* bf = B_.data();
  for (int64_t e = 0; e < n * kr; ++e) bf[e] = static_cast<float>(B[e]);
  float* x = X_.data();
  float* y = Y_.data();
  float* dy = dY_.data();
  float* delta = delta_.data();
  const float* H = H_.data();
  // u = H b, the solution without constraints: row-major x (kr x n, row stride T) is column-major x^T = B H
  // (H symmetric; B row-major n x kr is column-major B^T)
  sgemm('T', 'N', n, kr, kr, 0.0f, bf, kr, H, kr, x, T);
  // The sweeps pay when u is far from feasible: a few negative entries per column are cheap for the solver
  // to pivot out itself (on the dual side, with a factor of their count), many cost it factorizations of a
  // k/2-sized block. Measured (N=500 and 2000, k=16..256): 8 negatives per column gain, 3 lose.
  int64_t negative = 0;
  for (int64_t i = 0; i < kr; ++i) {
    const float* xi = x + i * T;
    int32_t count = 0;
    for (int64_t j = 0; j < n; ++j) count += xi[j] < 0.0f;
    negative += count;
  }
  const double per_column = static_cast<double>(negative) / static_cast<double>(n);
  if (per_column < kMinNegative) return false;
  const int sweeps = std::min<int>(kMaxSweeps, 1 + static_cast<int>((per_column + 4.0) / 8.0));
  for (int64_t i = 0; i < kr; ++i) std::fill(y + i * T, y + i * T + n, 0.0f);
  for (int sweep = 0; sweep < sweeps; ++sweep) {
    for (int64_t i0 = 0; i0 < kr; i0 += kGroup) {
      const int64_t m = std::min(kGroup, kr - i0);
      for (int64_t a = 0; a < m; ++a) std::fill(delta + a * T, delta + a * T + n, 0.0f);
      for (int64_t a = 0; a < m; ++a) {
        const int64_t i = i0 + a;
        const float hi = hinv_[i];
        float* yi = y + i * T;
        const float* xi = x + i * T;
        const float* di = delta + a * T;
        float* dyi = dy + a * T;
        for (int64_t j = 0; j < n; ++j) {  // y_i <- max(0, y_i - x_i / H_ii), x_i with the group's updates
          const float v = yi[j] - (xi[j] + di[j]) * hi;
          const float yn = v > 0.0f ? v : 0.0f;
          dyi[j] = yn - yi[j];
          yi[j] = yn;
        }
        for (int64_t r = a + 1; r < m; ++r) {  // the group's later variables see the change at once
          const float h = H[(i0 + r) * kr + i];
          float* dr = delta + r * T;
          for (int64_t j = 0; j < n; ++j) dr[j] += h * dyi[j];
        }
      }
      // every variable (the group's own included: delta was only a preview) gets x += H[:, group] dy; in
      // column-major terms x^T (n x kr) += dy^T (n x m) H[:, group]^T (column-major at H + i0, stride kr)
      sgemm('N', 'N', n, kr, m, 1.0f, dy, T, H + i0, kr, x, T);
    }
  }
  for (int64_t i = 0; i < kr; ++i) {
    const float* yi = y + i * T;
    for (int64_t j = 0; j < n; ++j) passive[j * kr + i] = yi[j] == 0.0f ? 1 : 0;
  }
  return true;
}

}  // namespace cpu
}  // namespace neuralnmf
