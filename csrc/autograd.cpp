// Autograd of neuralnmf::nnls and neuralnmf::nnls_rhs in C++, for every device: the closed-form active-set
// backward pass. With P_j the support of column j of S and g = dL/dS,
//   V = support_solve(g, A, S)            V[P_j, j] = (A_P^T A_P)^{-1} g[P_j, j], zero elsewhere
//   nnls:     dX = A V,   dA = X V^T - A (S V^T + V S^T)
//   nnls_rhs: dAtX = V,   dA = -A (S V^T + V S^T)
// The same formulas live in neuralnmf/ops.py for builds without this file; here they cost no Python
// dispatch, which is most of the time of the small layers of a deep Neural NMF.
#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <cstdlib>
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
    // create_graph=True: record the op, whose autograd (neuralnmf/ops.py) refuses a double backward if one
    // is ever run through it; gradients that do not flow back through V stay available.
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

// Columns per chunk of the split X V^T on CUDA (below); NEURALNMF_CUDA_DA_CHUNK overrides it. 0, the one
// GEMM, is the default: on the H200 (benchmarks/RESULTS.md, run 3; N = 1024, k = 32, M = 1e6) the split did not
// pay (float32 forward+backward 10.95 ms with one GEMM, 10.88 ms with chunks of 4096 columns, 11.72 ms with
// 16384, 13.65 ms with 65536): cuBLAS's single product is bound by its own kernel, not by too few tiles.
constexpr int64_t kDefaultDaChunk = 0;

int64_t da_chunk() {
  const char* v = std::getenv("NEURALNMF_CUDA_DA_CHUNK");
  if (v == nullptr || *v == '\0') return kDefaultDaChunk;
  const long long c = std::atoll(v);
  return c > 0 ? static_cast<int64_t>(c) : 0;
}

bool blas_layout(const at::Tensor& t) { return t.stride(-1) == 1 || t.stride(-2) == 1; }

// X V^T for X (N, M) and V (k, M): a reduction over the long dimension M (10^5 - 10^6 columns) into a small
// (N, k) result. cuBLAS takes it as one GEMM with few output tiles, at half the FLOP rate of the forward's
// A^T X on an H200 (3.5 ms against 1.6 ms at N = 1024, k = 32, M = 1e6). With a chunk length set (CUDA only),
// the M columns are cut into c equal chunks read in place (a strided batch: chunk j is columns [j L, (j + 1) L)
// of X and of V, no copy), c products (c, N, k) run as one batched GEMM with c times the output tiles, and
// their sum is the result (a split-K reduction; a tail of M - c L columns is one more GEMM). Measured, it
// gained nothing (kDefaultDaChunk), so by default CUDA, like the CPU, runs the one GEMM.
at::Tensor x_times_vt(const at::Tensor& X, const at::Tensor& V) {
  if (X.is_cuda() && X.dim() == 2 && V.dim() == 2 && blas_layout(X) && blas_layout(V)) {
    const int64_t M = X.size(1), chunk = da_chunk();
    if (chunk > 0 && M >= 4 * chunk) {
      const int64_t want = M / chunk;
      int64_t c = want;
      for (int64_t t = want; t >= (want + 1) / 2; --t) {  // prefer a chunk count that divides M: no tail
        if (M % t == 0) {
          c = t;
          break;
        }
      }
      const int64_t L = M / c, head = c * L;
      const at::Tensor Xc = X.narrow(1, 0, head).unflatten(1, {c, L}).transpose(0, 1);  // (c, N, L)
      const at::Tensor Vc = V.narrow(1, 0, head).unflatten(1, {c, L}).transpose(0, 1);  // (c, k, L)
      at::Tensor out = at::bmm(Xc, Vc.transpose(1, 2)).sum(0);
      if (head < M) out.add_(at::matmul(X.narrow(1, head, M - head), V.narrow(1, head, M - head).mT()));
      return out;
    }
  }
  return at::matmul(X, V.mT());
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
      at::Tensor XVt = x_times_vt(X, V);
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
