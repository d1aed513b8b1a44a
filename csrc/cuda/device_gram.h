// Host side of the device Gram preparation: the tensors behind a GramView (csrc/cuda/gram_device.cuh), made
// on A's device by torch ops and two small kernels, with no host synchronisation, and the chunking of columns
// shared by the CUDA kernels of both ops.
#pragma once

#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cstdint>

#include "gram_device.cuh"

namespace neuralnmf {
namespace cuda {

struct DeviceGram {
  at::Tensor Ad;       // (ng, N, k) float64
  at::Tensor G;        // (ng, k, k)
  at::Tensor L;        // (ng, k, k) Cholesky factors (scratch)
  at::Tensor H;        // (ng, k, k)
  at::Tensor d;        // (ng, k)
  at::Tensor a_scale;  // (ng)
  at::Tensor flags;    // (ng) int32 GramFlag bits
  bool shared = true;  // A was (N, k): one item serves the whole batch

  GramView view() const;
};

// A: (N, k) or (B, N, k), float32 or float64, on a CUDA device, k >= 1. Launches on the current stream.
DeviceGram make_device_gram(const at::Tensor& A);

// Scratch is the only memory that grows with the number of columns solved at once; chunks keep it under this
// bound (and the chunk's float64 right-hand sides and GEMM temporaries small beside it).
constexpr int64_t kScratchBytes = int64_t{1} << 30;
constexpr int kColumnThreads = 128;  // threads per block of the one-thread-per-column kernels

struct ChunkPlan {
  int64_t items;  // batch items per chunk
  int64_t cols;   // columns per chunk (all M when items > 1)
};

inline ChunkPlan plan_chunks(int64_t nb, int64_t M, int64_t bytes_per_column) {
  const int64_t budget = std::max<int64_t>(1, kScratchBytes / std::max<int64_t>(1, bytes_per_column));
  if (M >= budget) return {1, budget};
  return {std::max<int64_t>(1, std::min(nb, budget / std::max<int64_t>(1, M))), M};
}

inline unsigned int column_blocks(int64_t threads) {
  return static_cast<unsigned int>((threads + kColumnThreads - 1) / kColumnThreads);
}

}  // namespace cuda
}  // namespace neuralnmf
