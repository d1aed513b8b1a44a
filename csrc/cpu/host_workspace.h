// Scratch memory for one CPU thread's ColumnSolver (csrc/common/column_solver.h), sized for rank n.
#pragma once

#include <cstdint>
#include <vector>

#include "../common/column_solver.h"

namespace neuralnmf {
namespace cpu {

class HostWorkspace {
 public:
  explicit HostWorkspace(int64_t n) : doubles_(n * n + 4 * n), ints_(2 * n), bytes_(2 * n) {}

  ColumnWorkspace view(int64_t n) {
    double* d = doubles_.data();
    return ColumnWorkspace{d, d + n * n, d + n * n + n, d + n * n + 2 * n, d + n * n + 3 * n,
                           ints_.data(), ints_.data() + n, bytes_.data(), bytes_.data() + n};
  }

 private:
  std::vector<double> doubles_;
  std::vector<int> ints_;
  std::vector<uint8_t> bytes_;
};

}  // namespace cpu
}  // namespace neuralnmf
