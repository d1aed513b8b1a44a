// Host side of the device Gram preparation: the tensors behind a GramView (csrc/cuda/gram_view.cuh), made
// on A's device by torch ops and two small kernels, with no host synchronisation.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "gram_view.cuh"

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

}  // namespace cuda
}  // namespace neuralnmf
