"""Hierarchical nonnegative tensor models: NCPD, Neural NCPD, Multi-HNTF (multiplicative and backpropagation),
the published tensor baselines, and topics across modes. The papers' synthetic tensors are data, in
:mod:`neuralnmf.datasets` (``make_synthetic_tensor``, ``make_hierarchical_tensor``, ``make_block_tensor``).

Tensors are (I_1, ..., I_N) and CP factor matrices (I_n, r), as in tensorly; CP results are tensorly
``CPTensor`` objects; masks use 1 = observed. For ranks = (r_0, r_1, ..., r_L), level 0 of every hierarchical
model is the rank-r_0 NCPD and level l its rank-r_l approximation.

    from neuralnmf.datasets import make_synthetic_tensor
    from neuralnmf.tensor import (ncpd, NeuralNCPD, NeuralMultiHNTF, fit_tensor, fit_tensor_restarts,
                                  format_tensor_hierarchy)
    data = make_synthetic_tensor()                  # 40 x 40 x 40, planted 7-4-2 hierarchy
    cp = ncpd(data.X, 7)                            # tensorly-0.4.3 multiplicative updates (method="als": exact ALS)

    model = NeuralNCPD(data.X.shape, (7, 4, 2), factors=cp)          # one Neural NMF hierarchy per mode
    fit_tensor(model, data.X, lr=50, optimizer_kwargs={"betas": (0.9, 0.99)}, epochs=7500)
    model.reconstruct(1)                            # the rank-4 level, (40, 40, 40)

    make = lambda g: NeuralMultiHNTF(data.X.shape, (7, 4, 2), factors=cp, train_factors=False, generator=g)
    model, _ = fit_tensor_restarts(make, data.X, n_init=4, epochs=300, lr=1e-2, seed=0)  # one shared hierarchy
    model.train_factors = True                      # then train the first layer too
    fit_tensor(model, data.X, levels=(0, 1, 2), lr=1e-2, factor_lr=1e-3, epochs=3700)
    print(format_tensor_hierarchy(model))
"""

from . import numpy_streams
from .baselines import HNTF, StandardHNCPD, nmf_sklearn_mu
from .cp import CPTensor, as_factors, cp_norm_sq, cp_to_tensor, khatri_rao, mttkrp, to_cptensor, unfold
from .losses import cp_mse, energy_loss
from .multi_hntf import MultiHNTF, NeuralMultiHNTF
from .ncpd import StandardNCPD, ncpd, ncpd_als, ncpd_mu, random_init, svd_init
from .neural_ncpd import NeuralNCPD
from .trainable import TensorModelOutput, TensorTopics
from .topics import format_tensor_hierarchy, top_entries
from .train import fit_tensor, fit_tensor_restarts

__all__ = [
    "ncpd", "ncpd_mu", "ncpd_als", "svd_init", "random_init",
    "CPTensor", "to_cptensor", "as_factors", "cp_to_tensor", "cp_norm_sq", "unfold", "khatri_rao", "mttkrp",
    "NeuralNCPD", "MultiHNTF", "NeuralMultiHNTF", "TensorModelOutput",
    "StandardNCPD", "StandardHNCPD", "HNTF", "nmf_sklearn_mu",
    "fit_tensor", "fit_tensor_restarts", "cp_mse", "energy_loss",
    "top_entries", "format_tensor_hierarchy", "TensorTopics",
    "numpy_streams",
]
