"""Classical baselines of the Neural NMF paper, in torch (any device, float32/float64).

* :func:`nmf_mu`: Lee-Seung multiplicative-update NMF, the ssnmf package's model 1.
* :func:`ssnmf_mu`: (semi-)supervised NMF, ssnmf's model 3 (||X - A S||^2 + lam ||L (Y - B S)||^2).
* :class:`HierarchicalNMF`: sequential NMF, layer by layer, SSNMF on the last layer when labeled.
* :class:`DeepNMF`: Trigeorgis et al.'s Deep NMF (all factors >= 0): layer-wise pretraining, joint fine-tuning.

Data is batch first, x (samples M, features N), like the rest of neuralnmf; factors are stored in the papers'
orientation, X = x^T ~ A S with A (N, k) and S (k, M); ``codes`` are the batch-first S^T. Every update is a
majorize-minimize step, so no objective ever increases (see the docstring of ``neuralnmf.baselines._mu``).
"""

from ._deep import DeepNMF
from ._hierarchical import HierarchicalNMF
from ._mu import NMFResult, nmf_mu, ssnmf_mu

__all__ = ["nmf_mu", "ssnmf_mu", "NMFResult", "HierarchicalNMF", "DeepNMF"]
