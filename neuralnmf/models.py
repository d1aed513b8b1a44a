"""Neural NMF (Gao, Haddock, Molitor, Needell, Sadovnik, Will, Zhang 2019): a stack of NNLS layers.

    S_0 = q(X, A_0),  S_l = q(S_{l-1}, A_l),   X ~ A_0 A_1 ... A_l S_l at every depth l,

with an optional classifier on the deepest codes (logits = S_L B^T). Batch first: samples are rows.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_level
from .initialization import INIT_METHODS, hierarchical_nmf_init
from .layers import NNLSLayer, SupportCache, check_rank
from .ops import nnls

__all__ = ["NeuralNMF", "NeuralNMFOutput"]


@dataclass
class NeuralNMFOutput:
    """codes: one (M, k_l) tensor per layer; logits: (M, num_classes) or None."""

    codes: list[torch.Tensor]
    logits: torch.Tensor | None = None


class NeuralNMF(nn.Module):
    """Hierarchical NMF trained by backpropagation through exact NNLS layers.

    Args:
        in_features: features per sample (e.g. vocabulary size).
        ranks: topics per layer, e.g. (9, 4, 2): layer l has a dictionary A_l of shape (k_{l-1}, k_l), with
            k_{-1} = in_features; its columns group the topics of the layer below. Ranks usually decrease.
        num_classes: adds a classifier B (num_classes, k_L) on the last codes (logits = S_L B^T), for the
            semi-supervised and supervised models. B is nonnegative by default, as in the SSNMF objective
            ||L (Y - B S)||^2 of the papers; ``nonnegative_classifier=False`` frees its sign.
        init: how the dictionaries start. "nmf" (the default): every level starts at the flat NMF of its rank
            (:func:`neuralnmf.initialization.hierarchical_nmf_init`), which is what makes a hierarchy fit real
            corpora as well as flat NMF at each rank. "nndsvd"/"nndsvda"/"nndsvdar": NNDSVD of each layer's input
            codes. "uniform": U[0, 1) draws, the papers' choice. Data-driven starts use ``data`` when it is given;
            without it the dictionaries hold U[0, 1) draws until the first :func:`neuralnmf.fit` (or
            :meth:`initialize`) starts them from the training data, as scikit-learn's NMF does. Loading a state
            dict, or changing the dictionaries in place before that, cancels the pending start.
        data: (samples, in_features), dense or sparse, for the data-driven starts.
        generator: torch.Generator for the random draws (uniform starts, randomized SVD).
        dtype, device: of the parameters. Without ``dtype``, the model takes the dtype of ``data``, or of the
            data of its data-driven start (torch's default until then).
        classifier_from_labels: B starts at the least-squares fit of the labels by the deepest codes when the
            first :func:`neuralnmf.fit` (or :meth:`initialize`) sees labels; False keeps its U[0, 1) draw (the
            papers').
        warm_start: when called again on the same input tensor, each layer warm-starts its solver from its
            previous support (the answer is unchanged; full-batch training gets faster).

    Shape:
        forward(x): x (M, in_features) -> NeuralNMFOutput(codes=[(M, k_0), ..., (M, k_L)], logits=(M, c))
    """

    def __init__(self, in_features: int, ranks, num_classes: int | None = None, *, init="nmf", data=None,
                 generator=None, nonnegative_classifier: bool = True, classifier_from_labels: bool = True,
                 warm_start: bool = True, dtype=None, device=None):
        super().__init__()
        ranks = (ranks,) if isinstance(ranks, int) else tuple(ranks)
        if not ranks:
            raise ValueError("NeuralNMF: ranks must hold at least one positive integer")
        for i, r in enumerate(ranks):
            check_rank(r, f"NeuralNMF: ranks[{i}]")
        check_rank(in_features, "NeuralNMF: in_features")
        if num_classes is not None:
            check_rank(num_classes, "NeuralNMF: num_classes")
        if init not in INIT_METHODS:
            raise ValueError(f"NeuralNMF: init must be one of {INIT_METHODS}, got {init!r}")
        rising = [(a, b) for a, b in zip(ranks, ranks[1:]) if b > a]
        if rising:
            warnings.warn(f"NeuralNMF: ranks {ranks} increase ({rising[0][0]} then {rising[0][1]}): each layer groups "
                          "the topics of the layer below, so a layer with more topics than its input has no unique "
                          "codes; list ranks finest first, decreasing", UserWarning, stacklevel=2)
        if dtype is None and isinstance(data, torch.Tensor) and data.dtype in (torch.float32, torch.float64):
            dtype = data.dtype  # the user's dtype, kept end to end
        self._dtype_given = dtype is not None
        self.in_features, self.ranks, self.num_classes = in_features, ranks, num_classes
        self.init, self.warm_start = init, warm_start
        sizes = (in_features, *ranks)
        self.layers = nn.ModuleList(
            NNLSLayer(sizes[i], sizes[i + 1], generator=generator, warm_start=False, dtype=dtype, device=device)
            for i in range(len(ranks))
        )
        self.nonnegative_classifier, self.classifier_from_labels = nonnegative_classifier, classifier_from_labels
        self._nonnegative = ("B",) if nonnegative_classifier else ()
        if num_classes is not None:
            B = torch.rand(num_classes, ranks[-1], generator=generator, dtype=dtype)
            if not nonnegative_classifier:
                B = (2 * B - 1) / ranks[-1] ** 0.5  # nn.Linear's scale
            self.B = nn.Parameter(B.to(device))
        else:
            self.register_parameter("B", None)
        self._cache = SupportCache()
        self.vocabulary: list[str] | None = None  # names of the input features, when known (neuralnmf.load sets it)
        self.text: dict | None = None  # how raw text becomes the input (set by neuralnmf.load for text models)
        self.metadata: dict = {}
        self._generator = generator
        self._pending_dictionaries: tuple | None = None  # parameter versions while a data-driven start is pending
        self._pending_classifier: int | None = None
        if init != "uniform" and data is not None:
            self.initialize(data, generator=generator)
        elif init != "uniform":
            self._pending_dictionaries = self._versions()
        if self.B is not None and self._pending_classifier is None and classifier_from_labels:
            self._pending_classifier = self.B._version

    def _versions(self) -> tuple:
        return tuple(layer.A._version for layer in self.layers)

    @property
    def needs_initialization(self) -> bool:
        """True while the data-driven start of ``init`` waits for data: built without ``data`` and neither
        initialized, trained nor loaded since. :func:`neuralnmf.fit` then initializes from its training data."""
        return self._pending_dictionaries is not None and self._pending_dictionaries == self._versions()

    @property
    def needs_classifier_initialization(self) -> bool:
        """True while the classifier B still holds its random draw (no labels seen, no change, nothing loaded)."""
        return self.B is not None and self._pending_classifier == self.B._version

    @torch.no_grad()
    def initialize(self, x: torch.Tensor, y: torch.Tensor | None = None, label_mask: torch.Tensor | None = None, *,
                   method: str | None = None, generator=None) -> None:
        """Start the dictionaries from data, and the classifier from labels when ``y`` is given.

        Args:
            x: (samples, in_features) >= 0, dense or sparse (never densified).
            y: (samples,) class indices; B then starts at the least-squares fit of the one-hot labels of the
                labeled samples by their deepest codes (nonnegative when B is), instead of random draws (unless
                the model was built with ``classifier_from_labels=False``).
            label_mask: (samples,) bool, True = labeled (default: all).
            method: "nmf" (default: the model's ``init``, "nmf" if that is "uniform"), "nndsvd", "nndsvda",
                "nndsvdar" (NNDSVD layer by layer, each from the codes of the layer below) or "uniform".
            generator: torch.Generator for the random draws (default: the model's).
        """
        method = method or (self.init if self.init != "uniform" else "nmf")
        if method not in INIT_METHODS:
            raise ValueError(f"NeuralNMF.initialize: method must be one of {INIT_METHODS}, got {method!r}")
        generator = self._generator if generator is None else generator
        if not self._dtype_given and x.dtype in (torch.float32, torch.float64) and x.dtype != self.layers[0].A.dtype:
            self.to(x.dtype)  # built without a dtype: take the data's, as the first fit would need it anyway
        self._dtype_given = True
        dtype = self.layers[0].A.dtype
        h = x.detach().to(dtype)
        if method == "nmf":
            for layer, A in zip(self.layers, hierarchical_nmf_init(h, self.ranks, generator=generator)):
                layer.reset_parameters(A.to(layer.A.device))
        else:
            for layer in self.layers:
                layer.reset_parameters(method, data=h, generator=generator)
                h = layer(h)
        self._cache.clear()
        self._pending_dictionaries = None
        if y is not None and self.B is not None and self.classifier_from_labels:
            self.initialize_classifier(x, y, label_mask)

    @torch.no_grad()
    def initialize_classifier(self, x: torch.Tensor, y: torch.Tensor, label_mask: torch.Tensor | None = None) -> None:
        """B from the labels: argmin ||Y - S_L B^T||_F over the labeled samples (B >= 0 when B is nonnegative).

        x: (samples, in_features); y: (samples,) class indices in [0, num_classes); label_mask: (samples,) bool.
        """
        if self.B is None:
            raise ValueError("NeuralNMF.initialize_classifier: the model has no classifier (num_classes=None)")
        codes = self.transform(x)
        y = torch.as_tensor(y, device=codes.device).long()
        if label_mask is not None:
            keep = torch.as_tensor(label_mask, device=codes.device).bool()
            codes, y = codes[keep], y[keep]
        if y.numel() == 0:
            return
        Y = F.one_hot(y, self.num_classes).to(codes.dtype)  # (labeled, c)
        if self.nonnegative_classifier:
            B = nnls(Y, codes).mT  # each class column of Y by the code columns: (k, c) -> (c, k)
        else:
            B = torch.linalg.lstsq(codes, Y, driver="gelsd" if codes.device.type == "cpu" else None).solution.mT
        self.B.copy_(B.to(self.B.dtype))
        self._pending_classifier = None

    def forward(self, x: torch.Tensor) -> NeuralNMFOutput:
        if x.dim() != 2:
            raise ValueError(f"NeuralNMF: input must have shape (samples, {self.in_features}), got {tuple(x.shape)}")
        supports = self._cache.lookup(x) if self.warm_start else None
        codes, h = [], x
        for i, layer in enumerate(self.layers):
            h = layer(h, init=None if supports is None else supports[i])
            codes.append(h)
        if self.warm_start:
            self._cache.store(x, [c.detach() > 0 for c in codes])
        logits = F.linear(codes[-1], self.B) if self.B is not None else None  # S_L B^T
        return NeuralNMFOutput(codes, logits)

    @torch.no_grad()
    def transform(self, x: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        """Codes of new samples against the frozen dictionaries (exact NNLS, nothing refitted).

        x: (M, in_features), dense or sparse -> (M, k_depth) for the layer `depth` (default: the last).
        """
        depth = self._depth(depth)
        h = x
        for layer in self.layers[: depth + 1]:
            h = layer(h)
        return h

    def dictionary(self, depth: int | None = None) -> torch.Tensor:
        """Topics of layer `depth` (default: the last) in input space: A_0 A_1 ... A_depth, (in_features, k)."""
        depth = self._depth(depth)
        D = self.layers[0].A
        for layer in self.layers[1 : depth + 1]:
            D = D @ layer.A
        return D

    def reconstruct(self, x: torch.Tensor | None = None, depth: int | None = None, *,
                    output: NeuralNMFOutput | None = None) -> torch.Tensor:
        """A_0 ... A_depth S_depth in input space, batch first: (M, in_features).

        Pass ``x`` (the codes are computed) or a previous ``output`` of forward (they are reused).
        """
        if output is None:
            if x is None:
                raise ValueError("NeuralNMF.reconstruct: pass x or output")
            output = self(x)
        depth = self._depth(depth)
        return output.codes[depth] @ self.dictionary(depth).mT

    def _depth(self, depth: int | None) -> int:
        return check_level(depth, len(self.layers), "NeuralNMF", "depth")

    def extra_repr(self) -> str:
        extra = f", num_classes={self.num_classes}" if self.num_classes is not None else ""
        return f"in_features={self.in_features}, ranks={self.ranks}{extra}"
