#include "scaled_gram.h"

#include <cmath>

#include "../common/dense_small.h"

namespace neuralnmf {
namespace cpu {

ScaledGram make_scaled_gram(const at::Tensor& A) {
  ScaledGram g;
  g.k = A.size(1);
  at::Tensor A64 = A.to(at::kDouble);
  const double amax = A64.numel() ? A64.abs().max().item<double>() : 0.0;
  if (amax > 0.0) {
    int e = 0;
    std::frexp(amax, &e);  // amax = f * 2^e with f in [0.5, 1)
    g.a_scale = std::ldexp(1.0, -e);
  }
  at::Tensor As = A64 * g.a_scale;
  at::Tensor sq = (As * As).sum(0).contiguous();
  const double* sqp = sq.data_ptr<double>();
  for (int64_t i = 0; i < g.k; ++i) {
    if (sqp[i] > 0.0) {
      g.idx.push_back(i);
      g.d.push_back(1.0 / std::sqrt(sqp[i]));
    }
  }
  g.kr = static_cast<int64_t>(g.idx.size());
  if (g.kr == 0) {
    g.Ad = at::zeros({A.size(0), 0}, A64.options());
    return g;
  }
  at::Tensor idx = at::tensor(g.idx, at::TensorOptions().dtype(at::kLong));
  at::Tensor d = at::tensor(g.d, A64.options());
  g.Ad = (As.index_select(1, idx) * d).contiguous();
  at::Tensor G = at::mm(g.Ad.t(), g.Ad).contiguous();
  const int64_t kr = g.kr;
  g.G.assign(G.data_ptr<double>(), G.data_ptr<double>() + kr * kr);

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
