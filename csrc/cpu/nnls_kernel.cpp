// CPU kernel of neuralnmf::nnls: one GEMM for the right-hand sides, then an exact per-column solve,
// parallel over columns with ATen's thread pool. Columns are processed in chunks so that the extra memory
// stays O(k * chunk) whatever M is. Everything between the GEMMs is plain loops over strided memory: on the
// small problems of deep Neural NMF layers, ATen calls would cost more than the arithmetic.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

#include <algorithm>
#include <cfloat>
#include <atomic>
#include <cmath>
#include <optional>

#include "../checks.h"
#include "../common/column_solver.h"
#include "host_workspace.h"
#include "lane_solver.h"
#include "scaled_gram.h"
#include "support_predict.h"

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

// Right-hand sides of a chunk, read in place: b_i of column j is data[rows[i] * row + j * col] * scale[i].
template <typename rhs_t>
struct RhsView {
  const rhs_t* data;
  int64_t row, col;
  const int64_t* rows;  // kr
  const double* scale;  // kr
  double at(int64_t i, int64_t j) const { return static_cast<double>(data[rows[i] * row + j * col]) * scale[i]; }
};

// Solves every column of the chunk and writes S (k, len) and info (len). Returns false, leaving the chunk
// unfinished, when a right-hand side is not finite (NaN/Inf data, or overflow to be rescaled by the caller).
// u = H b is left to the solver, which forms it only for a column whose support covers most of the rank.
// Columns go in tiles: each tile's scaled right-hand sides are read first, then (without a caller's init or
// iteration bound, at ranks where it pays) a BLAS-3 guess of their supports warm-starts the exact solves
// (support_predict.h). The guess changes only the pivoting path: S is computed on the final support alone.
template <typename scalar_t, typename rhs_t>
bool solve_chunk(const ScaledGram& g, const RhsView<rhs_t>& B, Strided<const bool> init, int64_t len,
                 int64_t max_iter, double x_scale, Strided<scalar_t> S, int32_t* info) {
  const int64_t kr = g.kr;
  const double* H = g.H.empty() ? nullptr : g.H.data();
  // No guess under a caller's iteration bound: there the pivoting sequence from the cold start is the contract
  // (the CUDA kernels' deferred columns and their host emulation make the same decisions as this one).
  const bool predict = init.data == nullptr && max_iter <= 0 && SupportPredictor::worth_it(g);
  const int64_t T = SupportPredictor::kTile;
  std::atomic<bool> all_finite{true};
  const int64_t grain = std::max<int64_t>(1, kTaskFlops / (kr * kr + 1));
  at::parallel_for(0, len, grain, [&](int64_t j0, int64_t j1) {
    HostWorkspace ws(kr);
    ColumnSolver solver(static_cast<int>(kr), g.G.data(), H, ws.view(kr));
    std::optional<SupportPredictor> predictor;
    std::optional<LaneSolver> lanes;  // the guessed tiles' solves, 8 columns at a time (lane_solver.h)
    if (predict) predictor.emplace(g);
    if (predict && LaneSolver::kernel() != nullptr) lanes.emplace(kr, g.G.data(), H);
    std::vector<double> tile(T * kr), scale(T), x(kr), xs;  // tile: b_i of the tile's column t at t * kr + i
    std::vector<double> codes(T * kr);  // the tile's S, written to S by rows once the tile is done
    std::vector<uint8_t> passive(kr * T), use, done(T, 0);
    if (lanes) {
      xs.resize(T * kr);
      use.resize(T);
    }
    for (int64_t t0 = j0; t0 < j1; t0 += T) {
      const int64_t n = std::min(T, j1 - t0);
      for (int64_t t = 0; t < n; ++t) {
        const int64_t j = t0 + t;
        double c = 0.0, probe = 0.0;  // probe: v * 0 is NaN exactly when v is NaN or Inf (max() skips NaN)
        for (int64_t i = 0; i < kr; ++i) {
          const double v = B.at(i, j);
          tile[t * kr + i] = v;
          const double a = std::abs(v);
          c = a > c ? a : c;
          probe += v * 0.0;
        }
        if (probe != 0.0 || !std::isfinite(c)) {
          all_finite = false;
          return;
        }
        scale[t] = c;
        const double inv = c == 0.0 ? 0.0 : 1.0 / c;
        for (int64_t i = 0; i < kr; ++i) tile[t * kr + i] *= inv;
      }
      const bool guessed = predictor && predictor->predict(tile.data(), n, passive.data());
      if (guessed && lanes) {
        for (int64_t t = 0; t < n; ++t) use[t] = scale[t] != 0.0;
        lanes->solve(tile.data(), n, use.data(), passive.data(), xs.data(), done.data());
      } else {
        std::fill(done.begin(), done.end(), 0);
      }
      for (int64_t t = 0; t < n; ++t) {
        const int64_t j = t0 + t;
        const double c = scale[t];
        double* out = codes.data() + t * kr;
        if (c == 0.0) {  // A^T x = 0: S = 0 is optimal
          for (int64_t i = 0; i < kr; ++i) out[i] = 0.0;
          info[j] = kConverged;
          continue;
        }
        const uint8_t* start = nullptr;
        if (init.data != nullptr) {
          for (int64_t i = 0; i < kr; ++i) passive[i] = init.at(g.idx[i], j) ? 1 : 0;
          start = passive.data();
        } else if (guessed) {
          start = passive.data() + t * kr;
        }
        const double* xt = x.data();
        if (done[t]) {  // solved in the lanes: the scalar solver's x on the same final support, to the bit
          xt = xs.data() + t * kr;
          info[j] = kConverged;
        } else {
          info[j] = solver.solve(tile.data() + t * kr, nullptr, start, max_iter, x.data());
        }
        const double back = c * g.a_scale;  // divided by x_scale last: the product may not fit in between
        // A code below round-off of the column's largest is zero: it keeps a degenerate variable (value and
        // gradient both at round-off) out of the support the backward reads, whichever side of 0 rounding put it.
        double xmax = 0.0;
        for (int64_t i = 0; i < kr; ++i) xmax = xt[i] > xmax ? xt[i] : xmax;
        const double zero_below = static_cast<double>(kr) * DBL_EPSILON * xmax;
        if (x_scale == 1.0) {  // (a division per entry costs more than the rest of this loop)
          for (int64_t i = 0; i < kr; ++i) out[i] = (xt[i] > zero_below ? xt[i] : 0.0) * g.d[i] * back;
        } else {
          for (int64_t i = 0; i < kr; ++i) out[i] = (xt[i] > zero_below ? xt[i] : 0.0) * g.d[i] * back / x_scale;
        }
      }
      // S along its contiguous dimension: a column of a row-major (k, M) S is k stores to k cache lines
      if (S.col == 1) {
        for (int64_t i = 0; i < kr; ++i) {
          scalar_t* row = &S.at(g.idx[i], t0);
          for (int64_t t = 0; t < n; ++t) row[t] = static_cast<scalar_t>(codes[t * kr + i]);
        }
      } else {
        for (int64_t t = 0; t < n; ++t) {
          for (int64_t i = 0; i < kr; ++i) S.at(g.idx[i], t0 + t) = static_cast<scalar_t>(codes[t * kr + i]);
        }
      }
    }
  });
  return all_finite;
}

// Where the right-hand sides of a chunk of columns come from: the data X (b = Ad^T x), or products A^T X that
// the caller formed (sparse X, distributed data...), rescaled to b_i = a_scale d_i (A^T x)_i.
class RhsSource {
 public:
  virtual ~RhsSource() = default;
  // Solves columns [c0, c0 + len) with the data scaled by x_scale (solve_chunk); false when not finite.
  virtual bool solve(int64_t c0, int64_t len, double x_scale, Strided<const bool> init, int64_t max_iter,
                     at::Tensor& Sb, int32_t* info) const = 0;
  // When a chunk's right-hand sides are not finite: raises for NaN/Inf input, else returns the power of two
  // that brings the chunk back into range.
  virtual double repair(int64_t c0, int64_t len) const = 0;
};

template <typename rhs_t>
bool solve_view(const ScaledGram& g, const RhsView<rhs_t>& B, Strided<const bool> init, int64_t c0, int64_t len,
                int64_t max_iter, double x_scale, at::Tensor& Sb, int32_t* info) {
  bool done = false;
  AT_DISPATCH_FLOATING_TYPES(Sb.scalar_type(), "nnls_forward", [&] {
    Strided<scalar_t> S{Sb.data_ptr<scalar_t>() + c0 * Sb.stride(1), Sb.stride(0), Sb.stride(1)};
    done = solve_chunk<scalar_t, rhs_t>(g, B, init, len, max_iter, x_scale, S, info + c0);
  });
  return done;
}

class DataSource : public RhsSource {
 public:
  DataSource(const at::Tensor& X, const ScaledGram& g)
      : X_(X), g_(g), Ad_x_(X.scalar_type() == at::kDouble ? g.Ad : g.Ad.to(X.scalar_type())),
        ones_(g.kr, 1.0), iota_(g.kr) {
    for (int64_t i = 0; i < g.kr; ++i) iota_[i] = i;
  }

  // Layouts measured fastest with MKL (1 thread, N = 500 and 2000, M = 20000): float64 (kr, len) = Ad^T X;
  // float32 the same below rank 32 (X^T Ad took 2.6x as long at k = 8, N = 500, and 5.9x at N = 2000), from
  // rank 32 on (len, kr) = X^T Ad (0-4% faster); float32 products are then widened (the Gram matrix and the
  // solves stay float64).
  bool solve(int64_t c0, int64_t len, double x_scale, Strided<const bool> init, int64_t max_iter, at::Tensor& Sb,
             int32_t* info) const override {
    at::Tensor Xc = X_.narrow(1, c0, len);
    if (x_scale != 1.0) Xc = Xc * x_scale;
    at::Tensor B;
    if (g_.H.empty() && Xc.scalar_type() != at::kDouble) {
      // G singular: a float32 product leaves b outside G's range by its rounding, and the active-set fallback
      // then follows a null direction (codes of 1e9 on a 5 x 14 problem); in float64 b is in range.
      B = at::mm(g_.Ad.t(), Xc.to(at::kDouble));
    } else if (Xc.scalar_type() == at::kDouble || g_.kr < 32) {
      B = at::mm(Ad_x_.t(), Xc);
    } else {
      B = at::mm(Xc.t(), Ad_x_).t();
    }
    // float32 products are read in place and widened as they are read (the same values as a float64 copy)
    bool done = false;
    AT_DISPATCH_FLOATING_TYPES(B.scalar_type(), "nnls_products", [&] {
      const RhsView<scalar_t> view{B.data_ptr<scalar_t>(), B.stride(0), B.stride(1), iota_.data(), ones_.data()};
      done = solve_view(g_, view, init, c0, len, max_iter, x_scale, Sb, info);
    });
    return done;
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
  const at::Tensor Ad_x_;
  std::vector<double> ones_;
  std::vector<int64_t> iota_;
};

// The products read in place, in their own dtype and layout: no copy of A^T X is made.
class ProductSource : public RhsSource {
 public:
  ProductSource(const at::Tensor& AtX, const ScaledGram& g) : AtX_(AtX), g_(g) {}

  bool solve(int64_t c0, int64_t len, double x_scale, Strided<const bool> init, int64_t max_iter, at::Tensor& Sb,
             int32_t* info) const override {
    const std::vector<double> scale = row_scale(x_scale);
    bool done = false;
    AT_DISPATCH_FLOATING_TYPES(AtX_.scalar_type(), "nnls_rhs", [&] {
      const RhsView<scalar_t> view{AtX_.data_ptr<scalar_t>() + c0 * AtX_.stride(1), AtX_.stride(0), AtX_.stride(1),
                                   g_.idx.data(), scale.data()};
      done = solve_view(g_, view, init, c0, len, max_iter, x_scale, Sb, info);
    });
    return done;
  }

  double repair(int64_t c0, int64_t len) const override {
    const at::Tensor idx = at::tensor(g_.idx, at::TensorOptions().dtype(at::kLong));
    const at::Tensor scale = at::tensor(row_scale(1.0), at::TensorOptions().dtype(at::kDouble)).unsqueeze(1);
    const at::Tensor Bc = AtX_.narrow(1, c0, len).index_select(0, idx).to(at::kDouble) * scale;
    TORCH_CHECK_VALUE(at::isfinite(Bc).all().item<bool>(), "nnls_rhs: AtX contains NaN or Inf");
    return power_of_two_below(Bc.abs().max().item<double>());
  }

 private:
  // a_scale d_i x_scale; x_scale is a power of two, so folding it in is exact
  std::vector<double> row_scale(double x_scale) const {
    std::vector<double> scale(g_.kr);
    for (int64_t i = 0; i < g_.kr; ++i) scale[i] = g_.a_scale * g_.d[i] * x_scale;
    return scale;
  }

  const at::Tensor& AtX_;
  const ScaledGram& g_;
};

// Solves the M columns of one problem in chunks of `chunk` columns, rescaling a chunk whose right-hand sides
// overflow. Every column gets rows idx written; Sb must hold zeros on entry in the rows of zero columns of A.
void solve_item(const RhsSource& source, int64_t M, int64_t chunk, const std::optional<at::Tensor>& initb,
                int64_t max_iter, at::Tensor& Sb, at::Tensor& infob) {
  int32_t* info = infob.data_ptr<int32_t>();
  for (int64_t c0 = 0; c0 < M; c0 += chunk) {
    const int64_t len = std::min(chunk, M - c0);
    Strided<const bool> init{nullptr, 0, 0};
    if (initb.has_value()) {
      init = {initb->data_ptr<bool>() + c0 * initb->stride(1), initb->stride(0), initb->stride(1)};
    }
    double x_scale = 1.0;
    for (int attempt = 0;; ++attempt) {
      if (source.solve(c0, len, x_scale, init, max_iter, Sb, info)) break;
      const double fix = source.repair(c0, len);
      TORCH_CHECK(attempt == 0, "nnls: right-hand sides overflow even after rescaling");
      x_scale = fix;
    }
  }
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
  // the products A^T X in X's dtype under torch.autocast (bfloat16 products had no kernel, and lose the digits
  // that the exact solve keeps)
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
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
    const int64_t chunk = std::min<int64_t>(M, std::max<int64_t>(256, kChunkBytes / (8 * (N + 2 * g.kr))));
    solve_item(DataSource(Xb, g), M, chunk, initb, max_iter, Sb, infob);
  });
}

std::tuple<at::Tensor, at::Tensor> nnls_rhs_kernel(const at::Tensor& AtX, const at::Tensor& A,
                                                    const std::optional<at::Tensor>& init, int64_t max_iter) {
  check_nnls_rhs_inputs(AtX, A, init);
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);  // the Gram in A's dtype
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
    solve_item(ProductSource(Bb, g), M, /*chunk=*/M, initb, max_iter, Sb, infob);  // nothing per chunk
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(neuralnmf, CPU, m) {
  m.impl("nnls", &nnls_forward_kernel);
  m.impl("nnls_rhs", &nnls_rhs_kernel);
}

}  // namespace cpu
}  // namespace neuralnmf
