// The slot pool of the thread kernels (column_kernels.h) as device tensors: `slots` slices of ColumnScratch,
// allocated on the caching allocator (no host synchronisation), alive as long as this object.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include "column_kernels.h"

namespace neuralnmf {
namespace cuda {

struct ThreadScratch {
  at::Tensor doubles, ints, bytes;
  ColumnScratch view;

  // For `columns` columns of rank k, doubles_per_slot(k) doubles per slot (nnls_doubles_per_slot or
  // support_doubles_per_slot).
  ThreadScratch(int64_t columns, int64_t k, int64_t doubles_per_slot, const at::TensorOptions& device) {
    const int64_t per_slot = doubles_per_slot * 8 + ints_per_slot(k) * 4 + bytes_per_slot(k);
    const int64_t slots = thread_slots(columns, per_slot);
    doubles = at::empty({slots * doubles_per_slot}, device.dtype(at::kDouble));
    ints = at::empty({slots * ints_per_slot(k)}, device.dtype(at::kInt));
    bytes = at::empty({slots * bytes_per_slot(k)}, device.dtype(at::kByte));
    view = ColumnScratch{doubles.data_ptr<double>(), ints.data_ptr<int>(), bytes.data_ptr<uint8_t>(),
                         doubles_per_slot,           ints_per_slot(k),    bytes_per_slot(k),
                         slots};
  }
};

}  // namespace cuda
}  // namespace neuralnmf
