#include "lane_solver.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "lane_isa.h"

namespace neuralnmf {
namespace cpu {

#if NEURALNMF_LANES
namespace avx512 {
LaneKernel kernel();
}

static LaneKernel pick_kernel() {
  const char* env = std::getenv("NEURALNMF_LANES");
  if (env != nullptr && std::strcmp(env, "off") == 0) return nullptr;
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") ? avx512::kernel() : nullptr;
}
#else
static LaneKernel pick_kernel() { return nullptr; }
#endif

LaneKernel LaneSolver::kernel() {
  static const LaneKernel chosen = pick_kernel();
  return chosen;
}

LaneSolver::LaneSolver(int64_t n, const double* G, const double* H)
    : n_(n), G_(G), H_(H), kernel_(kernel()), scratch_(lane_scratch_doubles(n) + 8), count_(2 * (n + 1) + 1) {}

void LaneSolver::solve(const double* B, int64_t cols, const uint8_t* use, uint8_t* F, double* X, uint8_t* done) {
  const int n = static_cast<int>(n_);
  pending_.clear();
  for (int64_t t = 0; t < cols; ++t) {
    done[t] = 0;
    if (use[t]) pending_.push_back(static_cast<int>(t));
  }
  // 64-byte aligned scratch inside the vector
  double* scratch = scratch_.data();
  while ((reinterpret_cast<uintptr_t>(scratch) & 63) != 0) ++scratch;
  LaneGroup g;
  g.n = n;
  g.G = G_;
  g.H = H_;
  g.B = B;
  g.F = F;
  g.X = X;
  g.scratch = scratch;
  const int buckets = 2 * (n + 1);
  for (int round = 0; round < kRounds && !pending_.empty(); ++round) {
    // counting sort by (side, size of the factored block): groups then share a side and pad little
    const int m = static_cast<int>(pending_.size());
    key_.resize(m);
    order_.resize(m);
    std::fill(count_.begin(), count_.end(), 0);
    for (int q = 0; q < m; ++q) {
      const uint8_t* Ft = F + static_cast<int64_t>(pending_[q]) * n;
      int p = 0;
      for (int i = 0; i < n; ++i) p += Ft[i] != 0;
      const int z = n - p;
      key_[q] = z < p ? (n + 1) + z : p;  // dual side (z < p) after the passive side
      ++count_[key_[q] + 1];
    }
    for (int k = 0; k < buckets; ++k) count_[k + 1] += count_[k];
    for (int q = 0; q < m; ++q) order_[count_[key_[q]]++] = pending_[q];
    // count_[k] is now the end of bucket k; the passive side ends at count_[n]
    const int split = count_[n];
    std::vector<int> next;
    for (int side = 0; side < 2; ++side) {
      const int q0 = side == 0 ? 0 : split, q1 = side == 0 ? split : m;
      for (int q = q0; q < q1; q += kLanes) {
        g.count = q1 - q < kLanes ? q1 - q : kLanes;
        for (int l = 0; l < kLanes; ++l) g.cols[l] = order_[q + (l < g.count ? l : g.count - 1)];
        g.dual = side;
        kernel_(g);
        for (int l = 0; l < g.count; ++l) {
          if (g.status[l] == 1) done[g.cols[l]] = 1;
          if (g.status[l] == 0) next.push_back(g.cols[l]);
        }
      }
    }
    pending_.swap(next);
  }
}

}  // namespace cpu
}  // namespace neuralnmf
