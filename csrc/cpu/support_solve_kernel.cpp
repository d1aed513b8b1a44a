// CPU kernel of neuralnmf::support_solve, the per-column part of the NNLS backward pass:
//   V[P_j, j] = (A_P^T A_P)^{-1} grad[P_j, j],  P_j = {i : S[i, j] > 0},  zero elsewhere.
// The products dX = A V and dA = X V^T - A (S V^T + V S^T) are GEMMs done by the caller (neuralnmf/ops.py).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "../checks.h"
#include "../common/column_solver.h"
#include "host_workspace.h"
#include "scaled_gram.h"

namespace neuralnmf {
namespace cpu {
namespace {

constexpr int64_t kGrain = 16;

// Minimum-norm solve of G_PP v = r on the support, for the rare singular support (e.g. duplicate columns).
void pinv_on_support(const ScaledGram& g, const uint8_t* passive, const double* r, double* v) {
  std::vector<int64_t> in;
  for (int64_t i = 0; i < g.kr; ++i) {
    v[i] = 0.0;
    if (passive[i]) in.push_back(i);
  }
  const int64_t p = static_cast<int64_t>(in.size());
  at::Tensor Gpp = at::empty({p, p}, at::TensorOptions().dtype(at::kDouble));
  at::Tensor rp = at::empty({p, 1}, Gpp.options());
  for (int64_t a = 0; a < p; ++a) {
    rp[a][0] = r[in[a]];
    for (int64_t c = 0; c < p; ++c) Gpp[a][c] = g.G[in[a] * g.kr + in[c]];
  }
  at::Tensor vp = at::mm(at::linalg_pinv(Gpp, std::optional<double>(), std::optional<double>(), /*hermitian=*/true), rp);
  for (int64_t a = 0; a < p; ++a) v[in[a]] = vp[a][0].item<double>();
}

void solve_item(const at::Tensor& grad_b, const ScaledGram& g, const at::Tensor& Sb, at::Tensor& Vb) {
  const int64_t M = Sb.size(1), kr = g.kr;
  if (M == 0 || kr == 0) return;
  const at::Tensor idx = at::tensor(g.idx, at::TensorOptions().dtype(at::kLong));
  const at::Tensor support = Sb.index_select(0, idx).gt(0).t().contiguous();                 // (M, kr)
  const at::Tensor Rt = grad_b.index_select(0, idx).t().to(at::kDouble).contiguous();      // (M, kr)
  at::Tensor Vt = at::zeros({M, kr}, Rt.options());
  const bool* P = support.data_ptr<bool>();
  const double* R = Rt.data_ptr<double>();
  double* V = Vt.data_ptr<double>();
  const double back = g.a_scale * g.a_scale;
  at::parallel_for(0, M, kGrain, [&](int64_t j0, int64_t j1) {
    HostWorkspace ws(kr);
    ColumnSolver solver(static_cast<int>(kr), g.G.data(), g.H.empty() ? nullptr : g.H.data(), ws.view(kr));
    std::vector<uint8_t> passive(kr);
    std::vector<double> r(kr);
    for (int64_t j = j0; j < j1; ++j) {
      int64_t p = 0;
      for (int64_t i = 0; i < kr; ++i) {
        passive[i] = P[j * kr + i];
        p += passive[i];
        r[i] = passive[i] ? g.d[i] * R[j * kr + i] : 0.0;
      }
      if (p == 0) continue;
      double* vj = V + j * kr;
      if (!solver.solve_on_support(passive.data(), r.data(), vj)) pinv_on_support(g, passive.data(), r.data(), vj);
      for (int64_t i = 0; i < kr; ++i) vj[i] *= back * g.d[i];
    }
  });
  Vb.index_copy_(0, idx, Vt.t().to(Vb.scalar_type()));
}

at::Tensor support_solve_kernel(const at::Tensor& grad, const at::Tensor& A, const at::Tensor& S) {
  check_support_solve_inputs(grad, A, S);
  const bool batched = S.dim() == 3;
  const int64_t nb = batched ? S.size(0) : 1;
  at::Tensor V = at::zeros({nb, S.size(-2), S.size(-1)}, S.options());
  std::optional<ScaledGram> shared;
  if (A.dim() == 2) shared.emplace(make_scaled_gram(A));
  for (int64_t b = 0; b < nb; ++b) {
    at::Tensor Vb = V[b];
    const at::Tensor Sb = batched ? S[b] : S;
    const at::Tensor gb = batched ? grad[b] : grad;
    if (shared.has_value()) {
      solve_item(gb, *shared, Sb, Vb);
    } else {
      solve_item(gb, make_scaled_gram(A[b]), Sb, Vb);
    }
  }
  return batched ? V : V[0];
}

}  // namespace

TORCH_LIBRARY_IMPL(neuralnmf, CPU, m) { m.impl("support_solve", &support_solve_kernel); }

}  // namespace cpu
}  // namespace neuralnmf
