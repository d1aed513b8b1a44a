// CPU kernel of neuralnmf::nnls: one GEMM for the right-hand sides, then an exact per-column solve,
// parallel over columns with ATen's thread pool. Columns are processed in chunks so that the extra memory
// stays O(k * chunk) whatever M is. Everything between the GEMMs is plain loops over strided memory: on the
// small problems of deep Neural NMF layers, ATen calls would cost more than the arithmetic.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <optional>

#include "../checks.h"
#include "../common/column_solver.h"
#include "host_workspace.h"
#include "scaled_gram.h"

namespace neuralnmf {
namespace cpu {
namespace {

constexpr int64_t kChunkBytes = 32ll << 20;  // extra memory per chunk of columns
constexpr int64_t kTaskFlops = 1 << 16;      // work per parallel task, at least

// A strided view of a 2-D array: element (i, j) at data[i * row + j * col].
template <typename T>
struct Strided {
  T* data;
  int64_t row, col;
  T& at(int64_t i, int64_t j) const { return data[i * row + j * col]; }
};

template <typename T>
Strided<T> strided(const at::Tensor& t) {
  return {t.data_ptr<T>(), t.stride(0), t.stride(1)};
}

double power_of_two_below(double v) {
  int e = 0;
  std::frexp(v, &e);
  return std::ldexp(1.0, -e);
}

struct ChunkProblem {
  Strided<const double> B;  // (kr, len): A_d^T X[:, chunk]
  Strided<const double> U;  // (kr, len): H B, or data == nullptr
  Strided<const bool> init; // (k, len) support to warm-start from, or data == nullptr
};

// Solves every column of the chunk and writes S (k, len) and info (len). Returns false, leaving the chunk
// unfinished, when a right-hand side is not finite (NaN/Inf data, or overflow to be rescaled by the caller).
template <typename scalar_t>
bool solve_chunk(const ScaledGram& g, const ChunkProblem& p, int64_t len, int64_t max_iter, double x_scale,
                 Strided<scalar_t> S, int32_t* info) {
  const int64_t kr = g.kr;
  const double* H = g.H.empty() ? nullptr : g.H.data();
  std::atomic<bool> all_finite{true};
  const int64_t grain = std::max<int64_t>(1, kTaskFlops / (kr * kr + 1));
  at::parallel_for(0, len, grain, [&](int64_t j0, int64_t j1) {
    HostWorkspace ws(kr);
    ColumnSolver solver(static_cast<int>(kr), g.G.data(), H, ws.view(kr));
    std::vector<double> b(kr), u(kr), x(kr);
    std::vector<uint8_t> passive(kr);
    for (int64_t j = j0; j < j1; ++j) {
      double c = 0.0, probe = 0.0;  // probe: v * 0 is NaN exactly when v is NaN or Inf (max() skips NaN)
      for (int64_t i = 0; i < kr; ++i) {
        const double v = p.B.at(i, j);
        c = std::max(c, std::abs(v));
        probe += v * 0.0;
      }
      if (probe != 0.0 || !std::isfinite(c)) {
        all_finite = false;
        return;
      }
      if (c == 0.0) {  // A^T x = 0: S = 0 is optimal
        for (int64_t i = 0; i < kr; ++i) S.at(g.idx[i], j) = scalar_t(0);
        info[j] = kConverged;
        continue;
      }
      const double inv = 1.0 / c;
      for (int64_t i = 0; i < kr; ++i) b[i] = p.B.at(i, j) * inv;
      if (p.U.data != nullptr) {
        double probe_u = 0.0;
        for (int64_t i = 0; i < kr; ++i) {
          u[i] = p.U.at(i, j) * inv;
          probe_u += u[i] * 0.0;
        }
        if (probe_u != 0.0) {
          all_finite = false;
          return;
        }
      }
      if (p.init.data != nullptr) {
        for (int64_t i = 0; i < kr; ++i) passive[i] = p.init.at(g.idx[i], j);
      }
      info[j] = solver.solve(b.data(), p.U.data ? u.data() : nullptr, p.init.data ? passive.data() : nullptr,
                             max_iter, x.data());
      const double back = c * g.a_scale;  // divided by x_scale last: the product may not fit in between
      for (int64_t i = 0; i < kr; ++i) {
        S.at(g.idx[i], j) = static_cast<scalar_t>(std::max(x[i], 0.0) * g.d[i] * back / x_scale);
      }
    }
  });
  return all_finite;
}

// Where the right-hand sides of a chunk of columns come from: the data X (b = Ad^T x), or products A^T X that
// the caller formed (sparse X, distributed data...), rescaled here to b_i = a_scale d_i (A^T x)_i.
class RhsSource {
 public:
  virtual ~RhsSource() = default;
  // Fills B (kr, len) and U = H B for columns [c0, c0 + len), with the data scaled by x_scale.
  virtual void compute(int64_t c0, int64_t len, double x_scale, at::Tensor& B, at::Tensor& U,
                       ChunkProblem& p) const = 0;
  // When a chunk's right-hand sides are not finite: raises for NaN/Inf input, else returns the power of two
  // that brings the chunk back into range.
  virtual double repair(int64_t c0, int64_t len) const = 0;
};

class DataSource : public RhsSource {
 public:
  DataSource(const at::Tensor& X, const ScaledGram& g, const at::Tensor& Ht)
      : X_(X), g_(g), Ht_(Ht), Ad_x_(X.scalar_type() == at::kDouble ? g.Ad : g.Ad.to(X.scalar_type())) {}

  // Layouts measured fastest with MKL: float64 (kr, len) = Ad^T X; float32 (len, kr) = X^T Ad in float32,
  // then widened (the Gram matrix and the solves stay float64).
  void compute(int64_t c0, int64_t len, double x_scale, at::Tensor& B, at::Tensor& U, ChunkProblem& p) const override {
    at::Tensor Xc = X_.narrow(1, c0, len);
    if (x_scale != 1.0) Xc = Xc * x_scale;
    if (Xc.scalar_type() == at::kDouble) {
      B = at::mm(g_.Ad.t(), Xc);
      if (Ht_.defined()) U = at::mm(Ht_, B);
      p.B = {B.data_ptr<double>(), B.stride(0), B.stride(1)};
      if (U.defined()) p.U = {U.data_ptr<double>(), U.stride(0), U.stride(1)};
    } else {
      B = at::mm(Xc.t(), Ad_x_).to(at::kDouble);
      if (Ht_.defined()) U = at::mm(B, Ht_);  // H symmetric: (H B^T)^T = B H
      p.B = {B.data_ptr<double>(), B.stride(1), B.stride(0)};
      if (U.defined()) p.U = {U.data_ptr<double>(), U.stride(1), U.stride(0)};
    }
  }

  double repair(int64_t c0, int64_t len) const override {
    // NaN and Inf in X always reach B (0 * Inf is NaN); a finite X can only overflow the products.
    const at::Tensor Xc = X_.narrow(1, c0, len);
    TORCH_CHECK_VALUE(at::isfinite(Xc).all().item<bool>(), "nnls: X contains NaN or Inf");
    return power_of_two_below(Xc.abs().max().item<double>());
  }

 private:
  const at::Tensor& X_;
  const ScaledGram& g_;
  const at::Tensor& Ht_;
  const at::Tensor Ad_x_;
};

class ProductSource : public RhsSource {
 public:
  ProductSource(const at::Tensor& AtX, const ScaledGram& g, const at::Tensor& Ht)
      : AtX_(AtX), g_(g), Ht_(Ht), idx_(at::tensor(g.idx, at::TensorOptions().dtype(at::kLong))) {
    std::vector<double> scale(g.kr);
    for (int64_t i = 0; i < g.kr; ++i) scale[i] = g.a_scale * g.d[i];
    scale_ = at::tensor(scale, at::TensorOptions().dtype(at::kDouble)).unsqueeze(1);
  }

  void compute(int64_t c0, int64_t len, double x_scale, at::Tensor& B, at::Tensor& U, ChunkProblem& p) const override {
    B = (AtX_.narrow(1, c0, len).index_select(0, idx_).to(at::kDouble) * scale_).mul_(x_scale);
    if (Ht_.defined()) U = at::mm(Ht_, B);
    p.B = {B.data_ptr<double>(), B.stride(0), B.stride(1)};
    if (U.defined()) p.U = {U.data_ptr<double>(), U.stride(0), U.stride(1)};
  }

  double repair(int64_t c0, int64_t len) const override {
    const at::Tensor Bc = AtX_.narrow(1, c0, len).index_select(0, idx_).to(at::kDouble) * scale_;
    TORCH_CHECK_VALUE(at::isfinite(Bc).all().item<bool>(), "nnls_rhs: AtX contains NaN or Inf");
    return power_of_two_below(Bc.abs().max().item<double>());
  }

 private:
  const at::Tensor& AtX_;
  const ScaledGram& g_;
  const at::Tensor& Ht_;
  at::Tensor idx_, scale_;
};

// Solves the M columns of one problem in chunks of `chunk` columns, rescaling a chunk whose right-hand sides
// overflow. Every column gets rows idx written; Sb must hold zeros on entry in the rows of zero columns of A.
void solve_item(const RhsSource& source, const ScaledGram& g, int64_t M, int64_t chunk,
                const std::optional<at::Tensor>& initb, int64_t max_iter, at::Tensor& Sb, at::Tensor& infob) {
  int32_t* info = infob.data_ptr<int32_t>();
  for (int64_t c0 = 0; c0 < M; c0 += chunk) {
    const int64_t len = std::min(chunk, M - c0);
    ChunkProblem p{{nullptr, 0, 0}, {nullptr, 0, 0}, {nullptr, 0, 0}};
    if (initb.has_value()) {
      p.init = {initb->data_ptr<bool>() + c0 * initb->stride(1), initb->stride(0), initb->stride(1)};
    }
    double x_scale = 1.0;
    for (int attempt = 0;; ++attempt) {
      at::Tensor B, U;
      source.compute(c0, len, x_scale, B, U, p);
      bool done = false;
      AT_DISPATCH_FLOATING_TYPES(Sb.scalar_type(), "nnls_forward", [&] {
        Strided<scalar_t> S{Sb.data_ptr<scalar_t>() + c0 * Sb.stride(1), Sb.stride(0), Sb.stride(1)};
        done = solve_chunk<scalar_t>(g, p, len, max_iter, x_scale, S, info + c0);
      });
      if (done) break;
      const double fix = source.repair(c0, len);
      TORCH_CHECK(attempt == 0, "nnls: right-hand sides overflow even after rescaling");
      x_scale = fix;
    }
  }
}

at::Tensor gram_inverse(const ScaledGram& g) {
  if (g.H.empty()) return at::Tensor();
  return at::from_blob(const_cast<double*>(g.H.data()), {g.kr, g.kr}, at::TensorOptions().dtype(at::kDouble));
}

// S (nb, k, M), with the memory layout of `like` (a (k, M) or (nb, k, M) tensor) when given, so that a
// transposed right-hand side gives a transposed S: its batch-first view S^T is then contiguous. Zero-filled
// unless the solves write every entry (`written`: A has no zero column, whose rows no solve writes).
at::Tensor output_for(const std::optional<at::Tensor>& like, int64_t nb, int64_t k, int64_t M,
                      const at::TensorOptions& options, bool written) {
  if (like.has_value()) {
    const at::Tensor& l = like->dim() == 3 ? *like : like->unsqueeze(0);
    return written ? at::empty_like(l, options) : at::zeros_like(l, options);
  }
  return written ? at::empty({nb, k, M}, options) : at::zeros({nb, k, M}, options);
}

// Runs `solve(b, gram, Sb, infob)` for each batch item b, sharing one Gram when A is (N, k). Returns S, info with
// the batch dimension of `batched`.
template <typename Solve>
std::tuple<at::Tensor, at::Tensor> for_each_item(const at::Tensor& A, bool batched, int64_t nb, int64_t M,
                                                 const at::TensorOptions& options, const std::optional<at::Tensor>& like,
                                                 bool with_Ad, Solve solve) {
  const int64_t k = A.size(-1);
  std::optional<ScaledGram> shared;
  if (A.dim() == 2) {
    shared.emplace(make_scaled_gram(A, with_Ad));
    TORCH_CHECK_VALUE(shared->finite, "nnls: A contains NaN or Inf");
  }
  at::Tensor S = output_for(like, nb, k, M, options, shared.has_value() && shared->kr == k);
  at::Tensor info = at::zeros({nb, M}, options.dtype(at::kInt));
  for (int64_t b = 0; b < nb; ++b) {
    at::Tensor Sb = S[b], infob = info[b];
    const ScaledGram local = shared.has_value() ? ScaledGram() : make_scaled_gram(A[b], with_Ad);
    const ScaledGram& g = shared.has_value() ? *shared : local;
    TORCH_CHECK_VALUE(g.finite, "nnls: A contains NaN or Inf");
    solve(b, g, Sb, infob);
  }
  if (!batched) return {S[0], info[0]};
  return {S, info};
}

std::tuple<at::Tensor, at::Tensor> nnls_forward_kernel(const at::Tensor& X, const at::Tensor& A,
                                                        const std::optional<at::Tensor>& init, int64_t max_iter) {
  check_nnls_inputs(X, A, init);
  const bool batched = X.dim() == 3;
  const int64_t N = X.size(-2), M = X.size(-1);
  return for_each_item(A, batched, batched ? X.size(0) : 1, M, X.options(), std::nullopt, /*with_Ad=*/true,
                       [&](int64_t b, const ScaledGram& g, at::Tensor& Sb, at::Tensor& infob) {
    const at::Tensor Xb = batched ? X[b] : X;
    if (M == 0) return;
    if (g.kr == 0) {  // A is all zeros: S = 0, but bad data must still be reported
      TORCH_CHECK_VALUE(at::isfinite(Xb).all().item<bool>(), "nnls: X contains NaN or Inf");
      return;
    }
    std::optional<at::Tensor> initb;
    if (init.has_value()) initb = batched ? (*init)[b] : *init;
    const at::Tensor Ht = gram_inverse(g);
    const int64_t chunk = std::min<int64_t>(M, std::max<int64_t>(256, kChunkBytes / (8 * (N + 4 * g.kr))));
    solve_item(DataSource(Xb, g, Ht), g, M, chunk, initb, max_iter, Sb, infob);
  });
}

std::tuple<at::Tensor, at::Tensor> nnls_rhs_kernel(const at::Tensor& AtX, const at::Tensor& A,
                                                    const std::optional<at::Tensor>& init, int64_t max_iter) {
  check_nnls_rhs_inputs(AtX, A, init);
  const bool batched = AtX.dim() == 3;
  const int64_t M = AtX.size(-1);
  return for_each_item(A, batched, batched ? AtX.size(0) : 1, M, AtX.options(), AtX, /*with_Ad=*/false,
                       [&](int64_t b, const ScaledGram& g, at::Tensor& Sb, at::Tensor& infob) {
    const at::Tensor Bb = batched ? AtX[b] : AtX;
    if (M == 0) return;
    if (g.kr == 0) {
      TORCH_CHECK_VALUE(at::isfinite(Bb).all().item<bool>(), "nnls_rhs: AtX contains NaN or Inf");
      return;
    }
    std::optional<at::Tensor> initb;
    if (init.has_value()) initb = batched ? (*init)[b] : *init;
    const at::Tensor Ht = gram_inverse(g);
    const int64_t chunk = std::min<int64_t>(M, std::max<int64_t>(256, kChunkBytes / (8 * 6 * g.kr)));
    solve_item(ProductSource(Bb, g, Ht), g, M, chunk, initb, max_iter, Sb, infob);
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(neuralnmf, CPU, m) {
  m.impl("nnls", &nnls_forward_kernel);
  m.impl("nnls_rhs", &nnls_rhs_kernel);
}

}  // namespace cpu
}  // namespace neuralnmf
