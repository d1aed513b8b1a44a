#include "scaled_gram.h"

#include <algorithm>
#include <cmath>

#include "../common/dense_small.h"

namespace neuralnmf {
namespace cpu {
namespace {

// Below this many multiply-adds the Gram matrix is formed with loops: an ATen matmul costs more in
// dispatch than the arithmetic (Neural NMF's deeper layers are a few thousand flops).
constexpr int64_t kLoopGramFlops = 1 << 18;
// Rows of A widened to float64 at a time when the Gram matrix is a GEMM: bounded scratch whatever N is.
constexpr int64_t kGramBlockRows = 4096;

// max |A| and finiteness, reading A in place.
template <typename scalar_t>
bool scan(const at::Tensor& A, double& amax) {
  const int64_t N = A.size(0), k = A.size(1), s0 = A.stride(0), s1 = A.stride(1);
  const scalar_t* p = A.data_ptr<scalar_t>();
  bool finite = true;
  amax = 0.0;
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t i = 0; i < k; ++i) {
      const double v = static_cast<double>(p[n * s0 + i * s1]);
      finite = finite && std::isfinite(v);
      amax = std::max(amax, std::abs(v));
    }
  }
  return finite;
}

// raw (k x k, row-major) = (a_scale A)^T (a_scale A), the lower triangle mirrored.
template <typename scalar_t>
void scaled_gram_loops(const at::Tensor& A, double a_scale, std::vector<double>& raw) {
  const int64_t N = A.size(0), k = A.size(1), s0 = A.stride(0), s1 = A.stride(1);
  const scalar_t* p = A.data_ptr<scalar_t>();
  std::vector<double> row(k);
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t i = 0; i < k; ++i) row[i] = static_cast<double>(p[n * s0 + i * s1]) * a_scale;
    for (int64_t r = 0; r < k; ++r) {
      const double v = row[r];
      for (int64_t c = 0; c <= r; ++c) raw[r * k + c] += v * row[c];
    }
  }
  for (int64_t r = 0; r < k; ++r) {
    for (int64_t c = 0; c < r; ++c) raw[c * k + r] = raw[r * k + c];
  }
}

void scaled_gram_blocks(const at::Tensor& A, double a_scale, std::vector<double>& raw) {
  const int64_t N = A.size(0), k = A.size(1);
  at::Tensor G = at::zeros({k, k}, A.options().dtype(at::kDouble));
  for (int64_t n0 = 0; n0 < N; n0 += kGramBlockRows) {
    // out of place: for a float64 A, .to(kDouble) is A itself, which must not be modified
    const at::Tensor Ab = A.narrow(0, n0, std::min(kGramBlockRows, N - n0)).to(at::kDouble) * a_scale;
    G.addmm_(Ab.t(), Ab);
  }
  G = G.contiguous();
  raw.assign(G.data_ptr<double>(), G.data_ptr<double>() + k * k);
}

}  // namespace

ScaledGram make_scaled_gram(const at::Tensor& A, bool with_Ad) {
  ScaledGram g;
  const int64_t N = A.size(0), k = A.size(1);
  g.k = k;
  double amax = 0.0;
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "make_scaled_gram", [&] { g.finite = scan<scalar_t>(A, amax); });
  if (!g.finite) return g;
  if (amax > 0.0) {
    int e = 0;
    std::frexp(amax, &e);  // amax = f * 2^e with f in [0.5, 1)
    g.a_scale = std::ldexp(1.0, -e);
  }
  std::vector<double> raw(k * k, 0.0);  // Gram matrix of a_scale * A (exact scaling: a power of two)
  if (N * k * k <= kLoopGramFlops) {
    AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "make_scaled_gram", [&] { scaled_gram_loops<scalar_t>(A, g.a_scale, raw); });
  } else {
    scaled_gram_blocks(A, g.a_scale, raw);
  }
  for (int64_t i = 0; i < k; ++i) {
    if (raw[i * k + i] > 0.0) {
      g.idx.push_back(i);
      g.d.push_back(1.0 / std::sqrt(raw[i * k + i]));
    }
  }
  const int64_t kr = g.kr = static_cast<int64_t>(g.idx.size());
  if (with_Ad) {  // Ad = a_scale A[:, idx] diag(d), for the right-hand sides Ad^T X of dense data
    g.Ad = at::empty({N, kr}, A.options().dtype(at::kDouble));
    const at::Tensor A64 = A.to(at::kDouble);
    const double* a = A64.data_ptr<double>();
    const int64_t s0 = A64.stride(0), s1 = A64.stride(1);
    double* Ad = g.Ad.data_ptr<double>();
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t i = 0; i < kr; ++i) Ad[n * kr + i] = a[n * s0 + g.idx[i] * s1] * g.a_scale * g.d[i];
    }
  }
  if (kr == 0) return g;
  // D raw D on the kept columns: unit diagonal up to rounding. Made exactly symmetric from its lower triangle
  // (a GEMM's A^T A need not be), as the column solver reads rows in place of columns.
  g.G.assign(kr * kr, 0.0);
  for (int64_t r = 0; r < kr; ++r) {
    for (int64_t c = 0; c <= r; ++c) {
      const double v = raw[g.idx[r] * k + g.idx[c]] * g.d[r] * g.d[c];
      g.G[r * kr + c] = v;
      g.G[c * kr + r] = v;
    }
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
