#include "scaled_gram.h"

#include <cmath>

#include "../common/dense_small.h"

namespace neuralnmf {
namespace cpu {
namespace {

// Below this many multiply-adds the Gram matrix is formed with loops: an ATen matmul costs more in
// dispatch than the arithmetic (Neural NMF's deeper layers are a few thousand flops).
constexpr int64_t kLoopGramFlops = 1 << 18;

template <typename scalar_t>
bool load_scaled(const at::Tensor& A, std::vector<double>& As, double& a_scale) {
  const int64_t N = A.size(0), k = A.size(1), s0 = A.stride(0), s1 = A.stride(1);
  const scalar_t* p = A.data_ptr<scalar_t>();
  As.resize(N * k);
  double amax = 0.0;
  bool finite = true;
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t i = 0; i < k; ++i) {
      const double v = static_cast<double>(p[n * s0 + i * s1]);
      As[n * k + i] = v;
      finite = finite && std::isfinite(v);
      amax = std::max(amax, std::abs(v));
    }
  }
  if (!finite) return false;
  a_scale = 1.0;
  if (amax > 0.0) {
    int e = 0;
    std::frexp(amax, &e);  // amax = f * 2^e with f in [0.5, 1)
    a_scale = std::ldexp(1.0, -e);
  }
  for (double& v : As) v *= a_scale;
  return true;
}

}  // namespace

ScaledGram make_scaled_gram(const at::Tensor& A) {
  ScaledGram g;
  const int64_t N = A.size(0), k = A.size(1);
  g.k = k;
  std::vector<double> As;  // (N, k) row-major, A * a_scale
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "make_scaled_gram", [&] { g.finite = load_scaled<scalar_t>(A, As, g.a_scale); });
  if (!g.finite) return g;
  std::vector<double> sq(k, 0.0);
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t i = 0; i < k; ++i) sq[i] += As[n * k + i] * As[n * k + i];
  }
  for (int64_t i = 0; i < k; ++i) {
    if (sq[i] > 0.0) {
      g.idx.push_back(i);
      g.d.push_back(1.0 / std::sqrt(sq[i]));
    }
  }
  const int64_t kr = g.kr = static_cast<int64_t>(g.idx.size());
  g.Ad = at::empty({N, kr}, A.options().dtype(at::kDouble));
  double* Ad = g.Ad.data_ptr<double>();
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t i = 0; i < kr; ++i) Ad[n * kr + i] = As[n * k + g.idx[i]] * g.d[i];
  }
  if (kr == 0) return g;
  g.G.assign(kr * kr, 0.0);
  if (N * kr * kr <= kLoopGramFlops) {
    for (int64_t n = 0; n < N; ++n) {
      const double* row = Ad + n * kr;
      for (int64_t r = 0; r < kr; ++r) {
        const double v = row[r];
        for (int64_t c = 0; c <= r; ++c) g.G[r * kr + c] += v * row[c];
      }
    }
    for (int64_t r = 0; r < kr; ++r) {
      for (int64_t c = 0; c < r; ++c) g.G[c * kr + r] = g.G[r * kr + c];
    }
  } else {
    at::Tensor G = at::mm(g.Ad.t(), g.Ad).contiguous();
    g.G.assign(G.data_ptr<double>(), G.data_ptr<double>() + kr * kr);
  }

  std::vector<double> L(g.G);
  const int n = static_cast<int>(kr);
  if (cholesky_inplace(L.data(), n, kGramRtol)) {
    g.H.assign(kr * kr, 0.0);
    std::vector<double> e(kr);
    for (int c = 0; c < n; ++c) {
      std::fill(e.begin(), e.end(), 0.0);
      e[c] = 1.0;
      cholesky_solve_inplace(L.data(), n, e.data());
      for (int r = 0; r < n; ++r) g.H[r * kr + c] = e[r];
    }
    for (int r = 0; r < n; ++r) {  // symmetrise the round-off
      for (int c = 0; c < r; ++c) {
        const double v = 0.5 * (g.H[r * kr + c] + g.H[c * kr + r]);
        g.H[r * kr + c] = v;
        g.H[c * kr + r] = v;
      }
    }
  }
  return g;
}

}  // namespace cpu
}  // namespace neuralnmf
