// Autograd of neuralnmf::nnls and neuralnmf::nnls_rhs in C++, for every device: the closed-form active-set
// backward pass. With P_j the support of column j of S and g = dL/dS,
//   V = support_solve(g, A, S)            V[P_j, j] = (A_P^T A_P)^{-1} g[P_j, j], zero elsewhere
//   nnls:     dX = A V,   dA = X V^T - A (S V^T + V S^T)
//   nnls_rhs: dAtX = V,   dA = -A (S V^T + V S^T)
// The same formulas live in neuralnmf/_autograd.py for builds without this file and for torch.func; here
// they cost no Python dispatch, which is most of the time of the small layers of a deep Neural NMF.
#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

namespace neuralnmf {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

using SolveSig = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                    const std::optional<at::Tensor>&, int64_t);

c10::TypedOperatorHandle<SolveSig> solve_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<SolveSig>();
}

at::Tensor support_solve(const at::Tensor& grad, const at::Tensor& A, const at::Tensor& S) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("neuralnmf::support_solve", "")
                             .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&)>();
  if (at::GradMode::is_enabled()) {
    // create_graph=True: record the op, whose autograd (neuralnmf/_autograd.py) refuses a double backward if
    // one is ever run through it; gradients that do not flow back through V stay available.
    return op.call(grad, A, S);
  }
  at::AutoDispatchBelowADInplaceOrView below_autograd;  // a first-order backward records nothing
  return op.call(grad, A, S);
}

// -A (S V^T + V S^T): the gradient through the Gram matrix A^T A, summed over a batch that shares A.
at::Tensor gram_gradient(const at::Tensor& A, const at::Tensor& S, const at::Tensor& V) {
  at::Tensor SVt = at::matmul(S, V.mT());
  at::Tensor sym = SVt.add(SVt.mT());
  if (sym.dim() > A.dim()) sym = sym.sum(0);  // A (N, k) shared by the batch
  return at::matmul(A, sym).neg_();
}

// Saved: X (only when dA is needed), A, S.
class NNLSFunction : public torch::autograd::Function<NNLSFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& X, const at::Tensor& A,
                               const std::optional<at::Tensor>& init, int64_t max_iter) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    static const auto op = solve_op("neuralnmf::nnls");
    auto [S, info] = op.call(X, A, init, max_iter);
    ctx->mark_non_differentiable({info});
    ctx->save_for_backward({A.requires_grad() ? X : at::Tensor(), A, S});  // kept only if used
    return {S, info};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &X = saved[0], &A = saved[1], &S = saved[2];
    const bool need_X = ctx->needs_input_grad(0), need_A = ctx->needs_input_grad(1);
    const at::Tensor& grad_S = grads[0];
    if (!grad_S.defined() || !(need_X || need_A)) return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    const at::Tensor V = support_solve(grad_S, A, S);
    at::Tensor dX, dA;
    if (need_X) dX = at::matmul(A, V);
    if (need_A) {
      // X V^T as one GEMM on every device: a split-K batched GEMM over chunks of the long dimension gained
      // nothing on the H200 (benchmarks/RESULTS.md, run 3) and was removed.
      at::Tensor XVt = at::matmul(X, V.mT());
      if (XVt.dim() > A.dim()) XVt = XVt.sum(0);
      dA = gram_gradient(A, S, V).add_(XVt);
    }
    return {dX, dA, at::Tensor(), at::Tensor()};
  }
};

// Saved: A, S.
class NNLSRhsFunction : public torch::autograd::Function<NNLSRhsFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& AtX, const at::Tensor& A,
                               const std::optional<at::Tensor>& init, int64_t max_iter) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    static const auto op = solve_op("neuralnmf::nnls_rhs");
    auto [S, info] = op.call(AtX, A, init, max_iter);
    ctx->mark_non_differentiable({info});
    ctx->save_for_backward({A, S});
    return {S, info};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &A = saved[0], &S = saved[1];
    const bool need_B = ctx->needs_input_grad(0), need_A = ctx->needs_input_grad(1);
    const at::Tensor& grad_S = grads[0];
    if (!grad_S.defined() || !(need_B || need_A)) return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    const at::Tensor V = support_solve(grad_S, A, S);
    return {need_B ? V : at::Tensor(), need_A ? gram_gradient(A, S, V) : at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

std::tuple<at::Tensor, at::Tensor> nnls_autograd(const at::Tensor& X, const at::Tensor& A,
                                                 const std::optional<at::Tensor>& init, int64_t max_iter) {
  auto out = NNLSFunction::apply(X, A, init, max_iter);
  return {out[0], out[1]};
}

std::tuple<at::Tensor, at::Tensor> nnls_rhs_autograd(const at::Tensor& AtX, const at::Tensor& A,
                                                     const std::optional<at::Tensor>& init, int64_t max_iter) {
  auto out = NNLSRhsFunction::apply(AtX, A, init, max_iter);
  return {out[0], out[1]};
}

}  // namespace

TORCH_LIBRARY_IMPL(neuralnmf, Autograd, m) {
  m.impl("nnls", &nnls_autograd);
  m.impl("nnls_rhs", &nnls_rhs_autograd);
}

}  // namespace neuralnmf
