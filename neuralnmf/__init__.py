"""neuralnmf: hierarchical nonnegative factorization trainable by backpropagation.

The core is one differentiable operator, ``nnls(X, A)`` = argmin_{S >= 0} ||X - A S||_F, solved exactly by
compiled kernels with a closed-form backward pass; layers, models and training are built on it.
"""

from . import baselines, datasets, metrics, tensor, topics
from .layers import NNLSLayer
from .models import NeuralNMF, NeuralNMFOutput
from .ops import NNLSConvergenceWarning, nnls, set_validation, validation, validation_enabled
from .projection import NonnegativeProjection, nonnegative_parameters
from .rank_selection import RankSelection, select_ranks
from .serialization import load, save
from .threads import set_loop_threads
from ._version import __version__
from .train import History, fit

__all__ = [
    "nnls",
    "NNLSConvergenceWarning",
    "set_validation",
    "validation",
    "validation_enabled",
    "NNLSLayer",
    "NeuralNMF",
    "NeuralNMFOutput",
    "NonnegativeProjection",
    "nonnegative_parameters",
    "fit",
    "select_ranks",
    "RankSelection",
    "History",
    "save",
    "load",
    "set_loop_threads",
    "baselines",
    "datasets",
    "metrics",
    "tensor",
    "topics",
    "__version__",
]
