// Input checks shared by the CPU and CUDA kernels of the neuralnmf ops. They raise ValueError / TypeError
// in Python (TORCH_CHECK_VALUE / TORCH_CHECK_TYPE) and name the argument at fault.
#pragma once

#include <ATen/ATen.h>

#include <optional>

namespace neuralnmf {

inline void check_float_pair(const char* op, const at::Tensor& X, const char* xname, const at::Tensor& A,
                             const char* aname) {
  TORCH_CHECK_TYPE(X.scalar_type() == at::kFloat || X.scalar_type() == at::kDouble, op, ": ", xname,
                   " must be float32 or float64, got ", X.scalar_type());
  TORCH_CHECK_TYPE(A.scalar_type() == X.scalar_type(), op, ": ", aname, " has dtype ", A.scalar_type(),
                   " but ", xname, " has dtype ", X.scalar_type(), "; they must match");
  TORCH_CHECK_VALUE(A.device() == X.device(), op, ": ", aname, " is on ", A.device(), " but ", xname,
                    " is on ", X.device());
}

// A: (N, k) shared or (B, N, k) per batch item; `other` is (N, M) or (B, N, M) / (B, k, M) per `rows_dim`.
inline void check_dictionary(const char* op, const at::Tensor& A, const at::Tensor& other, const char* oname) {
  TORCH_CHECK_VALUE(A.dim() == 2 || A.dim() == 3, op, ": A must have shape (N, k) or (B, N, k), got ",
                    A.sizes());
  if (A.dim() == 3) {
    TORCH_CHECK_VALUE(other.dim() == 3 && other.size(0) == A.size(0), op, ": A has batch size ", A.size(0),
                      " but ", oname, " has shape ", other.sizes());
  }
}

inline void check_nnls_inputs(const at::Tensor& X, const at::Tensor& A, const std::optional<at::Tensor>& init) {
  TORCH_CHECK_VALUE(X.dim() == 2 || X.dim() == 3, "nnls: X must have shape (N, M) or (B, N, M), got ",
                    X.sizes());
  check_dictionary("nnls", A, X, "X");
  check_float_pair("nnls", X, "X", A, "A");
  TORCH_CHECK_VALUE(A.size(-2) == X.size(-2), "nnls: X has ", X.size(-2), " rows (N) but A has ", A.size(-2));
  if (init.has_value()) {
    TORCH_CHECK_TYPE(init->scalar_type() == at::kBool, "nnls: init must be a bool support mask, got ",
                     init->scalar_type());
    TORCH_CHECK_VALUE(init->device() == X.device(), "nnls: init is on ", init->device(), " but X is on ",
                      X.device(), "; move init to ", X.device());
    std::vector<int64_t> expect(X.sizes().begin(), X.sizes().end());
    expect[expect.size() - 2] = A.size(-1);
    TORCH_CHECK_VALUE(init->sizes().vec() == expect, "nnls: init must have the shape of S ", at::IntArrayRef(expect),
                      ", got ", init->sizes());
  }
}

// AtX: (k, M) or (B, k, M), the products A^T X formed by the caller.
inline void check_nnls_rhs_inputs(const at::Tensor& AtX, const at::Tensor& A, const std::optional<at::Tensor>& init) {
  TORCH_CHECK_VALUE(AtX.dim() == 2 || AtX.dim() == 3, "nnls_rhs: AtX must have shape (k, M) or (B, k, M), got ",
                    AtX.sizes());
  check_dictionary("nnls_rhs", A, AtX, "AtX");
  check_float_pair("nnls_rhs", AtX, "AtX", A, "A");
  TORCH_CHECK_VALUE(A.size(-1) == AtX.size(-2), "nnls_rhs: AtX has ", AtX.size(-2), " rows but A has ", A.size(-1),
                    " columns (k)");
  if (init.has_value()) {
    TORCH_CHECK_TYPE(init->scalar_type() == at::kBool, "nnls_rhs: init must be a bool support mask, got ",
                     init->scalar_type());
    // A CUDA kernel would read a host init as device memory: the device is checked as in check_nnls_inputs.
    TORCH_CHECK_VALUE(init->device() == AtX.device(), "nnls_rhs: init is on ", init->device(), " but AtX is on ",
                      AtX.device(), "; move init to ", AtX.device());
    TORCH_CHECK_VALUE(init->sizes() == AtX.sizes(), "nnls_rhs: init must have the shape of S ", AtX.sizes(),
                      ", got ", init->sizes());
  }
}

inline void check_support_solve_inputs(const at::Tensor& grad, const at::Tensor& A, const at::Tensor& S) {
  TORCH_CHECK_VALUE(S.dim() == 2 || S.dim() == 3, "support_solve: S must have shape (k, M) or (B, k, M), got ",
                    S.sizes());
  TORCH_CHECK_VALUE(grad.sizes() == S.sizes(), "support_solve: grad has shape ", grad.sizes(), " but S has ",
                    S.sizes());
  check_dictionary("support_solve", A, S, "S");
  check_float_pair("support_solve", S, "S", A, "A");
  check_float_pair("support_solve", S, "S", grad, "grad");
  TORCH_CHECK_VALUE(A.size(-1) == S.size(-2), "support_solve: A has ", A.size(-1), " columns (k) but S has ",
                    S.size(-2), " rows");
}

}  // namespace neuralnmf
