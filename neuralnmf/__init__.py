"""neuralnmf: hierarchical nonnegative factorization trainable by backpropagation.

The core is one differentiable operator, ``nnls(X, A)`` = argmin_{S >= 0} ||X - A S||_F, solved exactly by
compiled kernels with a closed-form backward pass.
"""

from .ops import NNLSConvergenceWarning, nnls

__version__ = "0.1.0"
__all__ = ["nnls", "NNLSConvergenceWarning", "__version__"]
