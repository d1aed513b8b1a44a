// The neuralnmf operator library: schemas of every op, and the Python module `neuralnmf._C` whose import
// loads them. Kernels register themselves per device (cpu/, cuda/), the backward of nnls and nnls_rhs in
// autograd.cpp; fake kernels are attached from Python (neuralnmf/_fake.py). The module holds only three strings,
// the torch and CUDA versions it was built for (setup.py defines them; neuralnmf/_extension.py checks them) and
// the compile-time choices of the CUDA kernels (setup.py's NEURALNMF_CUDA_PACK, NEURALNMF_CUDA_MIN_BLOCKS; empty
// for the defaults), so it needs nothing beyond Python's limited API.
#include <Python.h>
#include <torch/library.h>

#ifndef NEURALNMF_TORCH_VERSION
#define NEURALNMF_TORCH_VERSION ""
#endif
#ifndef NEURALNMF_CUDA_VERSION
#define NEURALNMF_CUDA_VERSION ""
#endif
#ifndef NEURALNMF_CUDA_CHOICES
#define NEURALNMF_CUDA_CHOICES ""
#endif

extern "C" {
// Importing neuralnmf._C runs the static registrations below.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  PyObject* module = PyModule_Create(&module_def);
  if (module == nullptr) return nullptr;
  if (PyModule_AddStringConstant(module, "torch_version", NEURALNMF_TORCH_VERSION) < 0 ||
      PyModule_AddStringConstant(module, "cuda_version", NEURALNMF_CUDA_VERSION) < 0 ||
      PyModule_AddStringConstant(module, "cuda_choices", NEURALNMF_CUDA_CHOICES) < 0) {
    Py_DECREF(module);
    return nullptr;
  }
  return module;
}
}

TORCH_LIBRARY(neuralnmf, m) {
  // S = argmin_{S >= 0} ||X - A S||_F per column; info[..., j] = 0 (pivoting converged), 1 (Lawson-Hanson
  // fallback converged), -1 (iteration bound hit: S feasible, not certified optimal) or, on CUDA only, -2
  // (non-finite data: S column NaN; the CPU kernel raises instead, the CUDA one cannot without a host sync).
  // X (N, M) or (B, N, M); A (N, k) or (B, N, k); init: bool (..., k, M) support to warm-start from.
  m.def("nnls(Tensor X, Tensor A, Tensor? init=None, int max_iter=0) -> (Tensor, Tensor)");
  // The same solve from the products AtX = A^T X (k, M) or (B, k, M), formed by the caller: sparse X,
  // data sharded over processes. Gradients flow to AtX (V) and to A through its Gram matrix.
  m.def("nnls_rhs(Tensor AtX, Tensor A, Tensor? init=None, int max_iter=0) -> (Tensor, Tensor)");
  // V[P_j, j] = (A_P^T A_P)^{-1} grad[P_j, j], zero off the support P_j = {i : S[i, j] > 0}.
  m.def("support_solve(Tensor grad, Tensor A, Tensor S) -> Tensor");
}
