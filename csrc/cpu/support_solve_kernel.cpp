// CPU kernel of neuralnmf::support_solve, the per-column part of the NNLS backward pass:
//   V[P_j, j] = (A_P^T A_P)^{-1} grad[P_j, j],  P_j = {i : S[i, j] > 0},  zero elsewhere.
// The products dX = A V and dA = X V^T - A (S V^T + V S^T) are GEMMs done by the caller (csrc/autograd.cpp,
// or neuralnmf/_autograd.py).
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

constexpr int64_t kTaskFlops = 1 << 16;  // work per parallel task, at least

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
  double* G = Gpp.data_ptr<double>();
  double* R = rp.data_ptr<double>();
  for (int64_t a = 0; a < p; ++a) {
    R[a] = r[in[a]];
    for (int64_t c = 0; c < p; ++c) G[a * p + c] = g.G[in[a] * g.kr + in[c]];
  }
  at::Tensor vp = at::mm(at::linalg_pinv(Gpp, std::optional<double>(), std::optional<double>(), /*hermitian=*/true), rp);
  for (int64_t a = 0; a < p; ++a) v[in[a]] = vp.data_ptr<double>()[a];
}

template <typename scalar_t>
void solve_item(const at::Tensor& grad_b, const ScaledGram& g, const at::Tensor& Sb, at::Tensor& Vb) {
  const int64_t M = Sb.size(1), kr = g.kr;
  if (M == 0 || kr == 0) return;
  const scalar_t* S = Sb.data_ptr<scalar_t>();
  const scalar_t* R = grad_b.data_ptr<scalar_t>();
  scalar_t* V = Vb.data_ptr<scalar_t>();
  const int64_t s0 = Sb.stride(0), s1 = Sb.stride(1), r0 = grad_b.stride(0), r1 = grad_b.stride(1);
  const int64_t v0 = Vb.stride(0), v1 = Vb.stride(1);
  const double back = g.a_scale * g.a_scale;
  const double* H = g.H.empty() ? nullptr : g.H.data();
  const int64_t grain = std::max<int64_t>(1, kTaskFlops / (kr * kr + 1));
  at::parallel_for(0, M, grain, [&](int64_t j0, int64_t j1) {
    HostWorkspace ws(kr);
    ColumnSolver solver(static_cast<int>(kr), g.G.data(), H, ws.view(kr));
    std::vector<uint8_t> passive(kr);
    std::vector<double> r(kr), v(kr);
    std::vector<int> in(kr);
    for (int64_t j = j0; j < j1; ++j) {
      // One pass: the support as a list, and V's column zeroed (its support entries are written below).
      int p = 0;
      for (int64_t i = 0; i < kr; ++i) {
        const int64_t row = g.idx[i];
        in[p] = static_cast<int>(i);
        p += S[row * s0 + j * s1] > 0;
        V[row * v0 + j * v1] = scalar_t(0);
      }
      if (p == 0) continue;  // nothing on the support: V = 0
      // A support of at most half the rank is solved on the passive side straight from the list; larger
      // ones (and singular G_PP) go through the solver's general path, which may take the dual side.
      if (2 * p <= kr) {
        for (int a = 0; a < p; ++a) r[a] = g.d[in[a]] * static_cast<double>(R[g.idx[in[a]] * r0 + j * r1]);
        if (solver.solve_packed(in.data(), p, r.data())) {
          for (int a = 0; a < p; ++a) {
            const int64_t i = in[a];
            V[g.idx[i] * v0 + j * v1] = static_cast<scalar_t>(r[a] * back * g.d[i]);
          }
          continue;
        }
      }
      for (int64_t i = 0; i < kr; ++i) {
        const int64_t row = g.idx[i];
        passive[i] = S[row * s0 + j * s1] > 0;
        r[i] = passive[i] ? g.d[i] * static_cast<double>(R[row * r0 + j * r1]) : 0.0;
      }
      if (!solver.solve_on_support(passive.data(), r.data(), v.data())) {
        pinv_on_support(g, passive.data(), r.data(), v.data());
      }
      for (int64_t i = 0; i < kr; ++i) V[g.idx[i] * v0 + j * v1] = static_cast<scalar_t>(v[i] * back * g.d[i]);
    }
  });
}

at::Tensor support_solve_kernel(const at::Tensor& grad, const at::Tensor& A, const at::Tensor& S) {
  check_support_solve_inputs(grad, A, S);
  const bool batched = S.dim() == 3;
  const int64_t nb = batched ? S.size(0) : 1;
  std::optional<ScaledGram> shared;
  if (A.dim() == 2) shared.emplace(make_scaled_gram(A, /*with_Ad=*/false));
  // V has the layout of S (the backward of a transposed S, e.g. of nnls_rhs on (x A)^T, stays transposed).
  // Every entry in the rows of nonzero columns of A is written; the rows of zero columns must be zero.
  const at::Tensor like = batched ? S : S.unsqueeze(0);
  at::Tensor V = shared.has_value() && shared->finite && shared->kr == S.size(-2) && S.size(-1) > 0
                     ? at::empty_like(like) : at::zeros_like(like);
  for (int64_t b = 0; b < nb; ++b) {
    at::Tensor Vb = V[b];
    const at::Tensor Sb = batched ? S[b] : S;
    const at::Tensor gb = batched ? grad[b] : grad;
    const ScaledGram local = shared.has_value() ? ScaledGram() : make_scaled_gram(A[b], /*with_Ad=*/false);
    const ScaledGram& g = shared.has_value() ? *shared : local;
    TORCH_CHECK_VALUE(g.finite, "support_solve: A contains NaN or Inf");
    AT_DISPATCH_FLOATING_TYPES(S.scalar_type(), "support_solve", [&] { solve_item<scalar_t>(gb, g, Sb, Vb); });
  }
  return batched ? V : V[0];
}

}  // namespace

TORCH_LIBRARY_IMPL(neuralnmf, CPU, m) { m.impl("support_solve", &support_solve_kernel); }

}  // namespace cpu
}  // namespace neuralnmf
