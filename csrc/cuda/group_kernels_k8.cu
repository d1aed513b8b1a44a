// The lane-group kernels of rank class k <= 8 (group_kernels.cuh); one file per class so that they compile in parallel.
#include "group_kernels.cuh"

NNLS_INSTANTIATE_GROUP_KERNELS(8)
