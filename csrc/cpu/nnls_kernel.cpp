// CPU kernel of neuralnmf::nnls: one GEMM for the right-hand sides, then an exact per-column solve,
// parallel over columns with ATen's thread pool. Columns are processed in chunks so that the extra memory
// stays O(k * chunk) whatever M is.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "../checks.h"
#include "../common/column_solver.h"
#include "host_workspace.h"
#include "scaled_gram.h"

namespace neuralnmf {
namespace cpu {
namespace {

constexpr int64_t kChunkBytes = 32ll << 20;   // extra memory per chunk of columns
constexpr int64_t kGrain = 16;                // columns per parallel task, at least

double power_of_two_below(double v) {
  int e = 0;
  std::frexp(v, &e);
  return std::ldexp(1.0, -e);
}

// Bt = (X[:, chunk])^T Ad, (len, kr) float64. Returns the power of two the chunk of X was scaled by
// (1 unless the products overflowed).
double right_hand_sides(const at::Tensor& Xc, const at::Tensor& Ad, const at::Tensor& Ad_x, at::Tensor& Bt) {
  // Layouts measured fastest with MKL on 2 cores: float64 (Ad^T X)^T, float32 X^T Ad (about 2x apart).
  auto product = [&](const at::Tensor& Xs) {
    return Xs.scalar_type() == at::kDouble ? at::mm(Ad.t(), Xs).t().contiguous()
                                           : at::mm(Xs.t(), Ad_x).to(at::kDouble);
  };
  Bt = product(Xc);
  double x_scale = 1.0;
  if (!at::isfinite(Bt).all().item<bool>()) {
    // NaN and Inf in X always reach Bt (0 * Inf is NaN); a finite X can only overflow the products.
    TORCH_CHECK_VALUE(at::isfinite(Xc).all().item<bool>(), "nnls: X contains NaN or Inf");
    x_scale = power_of_two_below(Xc.abs().max().item<double>());
    Bt = product(Xc * x_scale);
  }
  // Keep the right-hand sides (and H B after them) far from overflow and underflow; powers of two are exact.
  const double bmax = Bt.numel() ? Bt.abs().max().item<double>() : 0.0;
  if (bmax > 0.0 && (bmax > 0x1p500 || bmax < 0x1p-500)) {
    const double s = power_of_two_below(bmax);
    Bt.mul_(s);
    x_scale *= s;
  }
  return x_scale;
}

void solve_item(const at::Tensor& Xb, const ScaledGram& g, const std::optional<at::Tensor>& initb,
                int64_t max_iter, at::Tensor& Sb, at::Tensor& infob) {
  const int64_t N = Xb.size(0), M = Xb.size(1), kr = g.kr;
  if (M == 0) return;
  if (kr == 0) {  // A is all zeros: S = 0, but bad data must still be reported
    TORCH_CHECK_VALUE(at::isfinite(Xb).all().item<bool>(), "nnls: X contains NaN or Inf");
    return;
  }
  const int64_t chunk = std::min<int64_t>(M, std::max<int64_t>(256, kChunkBytes / (8 * (N + 4 * kr))));
  const at::Tensor Ad_x = g.Ad.to(Xb.scalar_type());
  const at::Tensor idx = at::tensor(g.idx, at::TensorOptions().dtype(at::kLong));
  at::Tensor Ht;
  if (!g.H.empty()) {
    Ht = at::from_blob(const_cast<double*>(g.H.data()), {kr, kr}, at::TensorOptions().dtype(at::kDouble));
  }
  int32_t* info = infob.data_ptr<int32_t>();

  for (int64_t c0 = 0; c0 < M; c0 += chunk) {
    const int64_t len = std::min(chunk, M - c0);
    at::Tensor Bt;
    const double x_scale = right_hand_sides(Xb.narrow(1, c0, len), g.Ad, Ad_x, Bt);
    at::Tensor Ut = Ht.defined() ? at::mm(Bt, Ht) : at::Tensor();  // H symmetric: (H B)^T = B^T H
    at::Tensor init_t;
    if (initb.has_value()) init_t = initb->narrow(1, c0, len).index_select(0, idx).t().contiguous();
    at::Tensor St = at::empty({len, kr}, Bt.options());

    const double* B = Bt.data_ptr<double>();
    const double* U = Ut.defined() ? Ut.data_ptr<double>() : nullptr;
    const bool* F0 = init_t.defined() ? init_t.data_ptr<bool>() : nullptr;
    double* Sx = St.data_ptr<double>();
    int32_t* info_c = info + c0;
    at::parallel_for(0, len, kGrain, [&](int64_t j0, int64_t j1) {
      HostWorkspace ws(kr);
      ColumnSolver solver(static_cast<int>(kr), g.G.data(), g.H.empty() ? nullptr : g.H.data(), ws.view(kr));
      std::vector<double> b(kr), u(kr);
      std::vector<uint8_t> passive(kr);
      for (int64_t j = j0; j < j1; ++j) {
        const double* bj = B + j * kr;
        double* xj = Sx + j * kr;
        double c = 0.0;
        for (int64_t i = 0; i < kr; ++i) c = std::max(c, std::abs(bj[i]));
        if (c == 0.0) {  // A^T x = 0: S = 0 is optimal
          std::fill(xj, xj + kr, 0.0);
          info_c[j] = kConverged;
          continue;
        }
        const double inv = 1.0 / c;
        for (int64_t i = 0; i < kr; ++i) b[i] = bj[i] * inv;
        if (U != nullptr) {
          for (int64_t i = 0; i < kr; ++i) u[i] = U[j * kr + i] * inv;
        }
        if (F0 != nullptr) {
          for (int64_t i = 0; i < kr; ++i) passive[i] = F0[j * kr + i];
        }
        info_c[j] = solver.solve(b.data(), U ? u.data() : nullptr, F0 ? passive.data() : nullptr, max_iter, xj);
        const double back = c * g.a_scale;  // divided by x_scale last: the product may not fit in between
        for (int64_t i = 0; i < kr; ++i) xj[i] = std::max(xj[i], 0.0) * g.d[i] * back / x_scale;
      }
    });
    Sb.narrow(1, c0, len).index_copy_(0, idx, St.t().to(Sb.scalar_type()));
  }
}

std::tuple<at::Tensor, at::Tensor> nnls_forward_kernel(const at::Tensor& X, const at::Tensor& A,
                                                        const std::optional<at::Tensor>& init, int64_t max_iter) {
  check_nnls_inputs(X, A, init);
  TORCH_CHECK_VALUE(at::isfinite(A).all().item<bool>(), "nnls: A contains NaN or Inf");
  const bool batched = X.dim() == 3;
  const int64_t nb = batched ? X.size(0) : 1;
  const int64_t M = X.size(-1), k = A.size(-1);
  at::Tensor S = at::zeros({nb, k, M}, X.options());
  at::Tensor info = at::zeros({nb, M}, X.options().dtype(at::kInt));
  std::optional<ScaledGram> shared;
  if (A.dim() == 2) shared.emplace(make_scaled_gram(A));
  for (int64_t b = 0; b < nb; ++b) {
    const at::Tensor Xb = batched ? X[b] : X;
    std::optional<at::Tensor> initb;
    if (init.has_value()) initb = batched ? (*init)[b] : *init;
    at::Tensor Sb = S[b], infob = info[b];
    if (shared.has_value()) {
      solve_item(Xb, *shared, initb, max_iter, Sb, infob);
    } else {
      solve_item(Xb, make_scaled_gram(A[b]), initb, max_iter, Sb, infob);
    }
  }
  if (!batched) return {S[0], info[0]};
  return {S, info};
}

}  // namespace

TORCH_LIBRARY_IMPL(neuralnmf, CPU, m) { m.impl("nnls", &nnls_forward_kernel); }

}  // namespace cpu
}  // namespace neuralnmf
