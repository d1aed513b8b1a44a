#include "support_predict.h"

#include <algorithm>

namespace neuralnmf {
namespace cpu {

SupportPredictor::SupportPredictor(const ScaledGram& g) : kr_(g.kr), hinv_(g.kr), delta_(kGroup * kTile) {
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  // from_blob does not own the memory: the Gram outlives every predictor (one chunk's solve)
  H_ = at::from_blob(const_cast<double*>(g.H.data()), {kr_, kr_}, f64);
  X_ = at::empty({kr_, kTile}, f64);
  Y_ = at::empty({kr_, kTile}, f64);
  dY_ = at::empty({kGroup, kTile}, f64);
  for (int64_t i = 0; i < kr_; ++i) hinv_[i] = 1.0 / g.H[i * kr_ + i];
}

bool SupportPredictor::predict(const double* B, int64_t n, uint8_t* passive) {
  const int64_t kr = kr_, T = kTile;
  if (n < kMinColumns) return false;  // a few columns do not pay for the ATen calls
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  const at::Tensor Bt = at::from_blob(const_cast<double*>(B), {kr, n}, {1, kr}, f64);  // B^T
  at::Tensor X = X_.narrow(1, 0, n);
  at::mm_out(X, H_, Bt);  // u = H b: the solution without constraints
  double* x = X_.data_ptr<double>();
  double* y = Y_.data_ptr<double>();
  double* dy = dY_.data_ptr<double>();
  double* delta = delta_.data();
  const double* H = H_.data_ptr<double>();
  // The sweeps pay when u is far from feasible: a few negative entries per column are cheap for the solver
  // to pivot out itself (on the dual side, with a factor of their count), many cost it factorizations of a
  // k/2-sized block. Measured (N=500 and 2000, k=16..256): 8 negatives per column gain, 3 lose.
  int64_t negative = 0;
  for (int64_t i = 0; i < kr; ++i) {
    const double* xi = x + i * T;
    for (int64_t j = 0; j < n; ++j) negative += xi[j] < 0.0;
  }
  const double per_column = static_cast<double>(negative) / static_cast<double>(n);
  if (per_column < kMinNegative) return false;
  const int sweeps = std::min<int>(kMaxSweeps, 1 + static_cast<int>((per_column + 4.0) / 8.0));
  for (int64_t i = 0; i < kr; ++i) std::fill(y + i * T, y + i * T + n, 0.0);
  for (int sweep = 0; sweep < sweeps; ++sweep) {
    for (int64_t i0 = 0; i0 < kr; i0 += kGroup) {
      const int64_t m = std::min(kGroup, kr - i0);
      for (int64_t a = 0; a < m; ++a) std::fill(delta + a * T, delta + a * T + n, 0.0);
      for (int64_t a = 0; a < m; ++a) {
        const int64_t i = i0 + a;
        const double hi = hinv_[i];
        double* yi = y + i * T;
        const double* xi = x + i * T;
        const double* di = delta + a * T;
        double* dyi = dy + a * T;
        for (int64_t j = 0; j < n; ++j) {  // y_i <- max(0, y_i - x_i / H_ii), x_i with the group's updates
          const double v = yi[j] - (xi[j] + di[j]) * hi;
          const double yn = v > 0.0 ? v : 0.0;
          dyi[j] = yn - yi[j];
          yi[j] = yn;
        }
        for (int64_t r = a + 1; r < m; ++r) {  // the group's later variables see the change at once
          const double h = H[(i0 + r) * kr + i];
          double* dr = delta + r * T;
          for (int64_t j = 0; j < n; ++j) dr[j] += h * dyi[j];
        }
      }
      // every variable (the group's own included: delta was only a preview) gets x += H[:, group] dy
      X.addmm_(H_.narrow(1, i0, m), dY_.narrow(0, 0, m).narrow(1, 0, n));
    }
  }
  for (int64_t i = 0; i < kr; ++i) {
    const double* yi = y + i * T;
    for (int64_t j = 0; j < n; ++j) passive[j * kr + i] = yi[j] == 0.0 ? 1 : 0;
  }
  return true;
}

}  // namespace cpu
}  // namespace neuralnmf
