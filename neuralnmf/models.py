"""Neural NMF (Gao, Haddock, Molitor, Needell, Sadovnik, Will, Zhang 2019): a stack of NNLS layers.

    S_0 = q(X, A_0),  S_l = q(S_{l-1}, A_l),   X ~ A_0 A_1 ... A_l S_l at every depth l,

with an optional classifier on the deepest codes (logits = S_L B^T). Batch first: samples are rows.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from ._checks import check_data, check_int, check_level, check_rank, check_ranks
from .classifiers import HEAD_FORMS, LabelHead, labels_by_level
from .initialization import INIT_METHODS, hierarchical_nmf_init, tree_levels
from .tree_start import DEFAULT_MIN_CHILDREN
from .layers import NNLSLayer, SupportCache
from .rank_selection import DEFAULT_LEVELS, select_ranks

__all__ = ["NeuralNMF", "NeuralNMFOutput"]


@dataclass
class NeuralNMFOutput:
    """codes: one (M, k_l) tensor per layer; logits: (M, c) of the deepest labeled level's classifier, or None;
    level_logits: {level: (M, c_level)} for every classifier."""

    codes: list[torch.Tensor]
    logits: torch.Tensor | None = None
    level_logits: dict[int, torch.Tensor] = field(default_factory=dict)


def _class_counts(num_classes, levels: int) -> dict[int, int]:
    """num_classes as {level: classes}: an int labels the deepest level; a dict names its levels (negative: from
    the deepest)."""
    if num_classes is None:
        return {}
    if not isinstance(num_classes, Mapping):
        out = {levels - 1: check_rank(num_classes, "NeuralNMF", "num_classes")}
    else:
        out = {}
    for level, c in (num_classes.items() if isinstance(num_classes, Mapping) else ()):
        l = check_level(level, levels, "NeuralNMF", "num_classes level")
        if l in out:
            raise ValueError(f"NeuralNMF: num_classes names level {l} twice")
        out[l] = check_rank(c, "NeuralNMF", f"num_classes[{level}]")
    for l, c in out.items():
        if c < 2:
            raise ValueError(f"NeuralNMF: num_classes must be at least 2 (a classifier needs two classes to tell "
                             f"apart), got {c} for level {l}")
    return dict(sorted(out.items()))


class NeuralNMF(nn.Module):
    """Hierarchical NMF trained by backpropagation through exact NNLS layers.

    Args:
        in_features: features per sample (e.g. vocabulary size).
        ranks: topics per layer, e.g. (9, 4, 2): layer l has a dictionary A_l of shape (k_{l-1}, k_l), with
            k_{-1} = in_features; its columns group the topics of the layer below. Ranks usually decrease.
            "auto": every level's rank is chosen from the data (:func:`neuralnmf.select_ranks`, ``levels`` of them)
            from ``data``, or by the first :func:`neuralnmf.fit` (or :meth:`choose_ranks`); the criteria behind the
            choice are kept in ``rank_selection``.
        num_classes: adds classifiers, for the semi-supervised and supervised models. An int: one classifier,
            at the deepest level; a dict {level: classes}: one per labeled level (labels at several depths, e.g.
            the newsgroup at level 0 and its superclass at level 1). See ``classifier``.
        classifier: the form of every classifier (:class:`neuralnmf.classifiers.LabelHead`). "logistic" (the
            default): softmax regression with a bias on the scaled codes of its level and every finer level,
            started at the regularised logistic regression of the start's codes; it classifies held-out documents
            better than the papers' form (docs/supervision.md). "papers": ``logits = S_l B^T`` with B >= 0 on the
            level's own codes, trained by least squares on one-hot labels (the SSNMF objective of the papers);
            ``nonnegative_classifier=False`` frees its sign.
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
        supervised_start: with labels at the data-driven "nmf" start (the first :func:`neuralnmf.fit` with labels,
            or :meth:`initialize` with ``y``), every level at or beneath a labeled level starts at the supervised
            NMF of its rank (:func:`neuralnmf.initialization.semi_supervised_nmf`, the SSNMF objective solved
            exactly) instead of the flat NMF: topics that already separate the classes, which documents never
            seen keep (docs/supervision.md). A model built with ``data=`` has started before seeing labels.
        classifier_from_labels: the classifiers start from the labels (the logistic regression, or B's
            least-squares fit) when the first :func:`neuralnmf.fit` (or :meth:`initialize`) sees labels; False
            keeps their first values (zeros for "logistic", the papers' U[0, 1) draw for "papers").
        warm_start: when called again on the same input tensor, each layer warm-starts its solver from its
            previous support (the answer is unchanged; full-batch training gets faster).
        levels: the number of levels with ``ranks="auto"`` (default :data:`neuralnmf.rank_selection.DEFAULT_LEVELS`, 2).
        tree: with the "nmf" start, every level above the first with no classifier at or above it is a tree: its
            topics group the level below by similarity, each child feeding exactly one parent, and training keeps
            that structure (:mod:`neuralnmf.tree_start`). Without it, trained levels copy single children and one
            broad parent holds most documents (docs/topic_quality.md). False: the papers' dense A_l.
        min_children: the fewest children of a parent in a tree level (at most k_(l-1) // k_l).

    Shape:
        forward(x): x (M, in_features) -> NeuralNMFOutput(codes=[(M, k_0), ..., (M, k_L)], logits=(M, c),
        level_logits={level: (M, c_level)})
    """

    def __init__(self, in_features: int, ranks, num_classes=None, *, classifier: str = "logistic", init="nmf",
                 data=None, generator=None, nonnegative_classifier: bool = True, classifier_from_labels: bool = True,
                 supervised_start: bool = True, warm_start: bool = True, levels: int | None = None,
                 tree: bool = True, min_children: int = DEFAULT_MIN_CHILDREN, dtype=None, device=None):
        super().__init__()
        in_features = check_rank(in_features, "NeuralNMF", "in_features")
        data = None if data is None else check_data(data, "NeuralNMF", "data", features=in_features)
        auto = isinstance(ranks, str)
        if auto and ranks != "auto":
            raise ValueError(f"NeuralNMF: ranks must be positive integers or 'auto', got {ranks!r}")
        if auto:
            levels = DEFAULT_LEVELS if levels is None else check_int(levels, "NeuralNMF", "levels", minimum=1)
        else:
            ranks = check_ranks(ranks, "NeuralNMF")
            if levels is not None and levels != len(ranks):
                raise ValueError(f"NeuralNMF: levels={levels!r} goes with ranks='auto' (ranks {ranks} give "
                                 f"{len(ranks)} levels)")
            levels = len(ranks)
        counts = _class_counts(num_classes, levels)
        if classifier not in HEAD_FORMS:
            raise ValueError(f"NeuralNMF: classifier must be one of {HEAD_FORMS}, got {classifier!r}")
        if init not in INIT_METHODS:
            raise ValueError(f"NeuralNMF: init must be one of {INIT_METHODS}, got {init!r}")
        if dtype is None and isinstance(data, torch.Tensor) and data.dtype in (torch.float32, torch.float64):
            dtype = data.dtype  # the user's dtype, kept end to end
        self._dtype_given = dtype is not None
        self._dtype, self._device = dtype, device
        self.in_features, self.ranks, self.levels = in_features, None, levels
        self.num_classes = (None if not counts else counts if isinstance(num_classes, Mapping)
                            else counts[levels - 1])
        self._counts = counts
        self.classifier = classifier
        self.init, self.warm_start = init, warm_start
        self.nonnegative_classifier, self.classifier_from_labels = nonnegative_classifier, classifier_from_labels
        self.supervised_start = supervised_start
        self.tree, self.min_children = bool(tree), check_int(min_children, "NeuralNMF", "min_children", minimum=1)
        self.layers, self.heads = nn.ModuleList(), nn.ModuleDict()
        self.rank_selection = None  # what select_ranks found, for ranks="auto"
        self._cache = SupportCache()
        self.vocabulary: list[str] | None = None  # names of the input features, when known (neuralnmf.load sets it)
        self.text: dict | None = None  # how raw text becomes the input (set by neuralnmf.load for text models)
        self.metadata: dict = {}
        self._generator = generator
        self._pending_dictionaries: tuple | None = None  # parameter versions while a data-driven start is pending
        self._pending_classifier: tuple | None = None
        if auto and data is not None:
            self.choose_ranks(data)
        elif not auto:
            self._build(ranks)
        if self.ranks is not None and init != "uniform" and data is not None:
            self.initialize(data, generator=generator)

    def _build(self, ranks: tuple[int, ...]) -> None:
        """The layers and classifiers of ``ranks``, with their first values (the data-driven start pending)."""
        rising = [(a, b) for a, b in zip(ranks, ranks[1:]) if b > a]
        if rising:
            warnings.warn(f"NeuralNMF: ranks {ranks} increase ({rising[0][0]} then {rising[0][1]}): each layer groups "
                          "the topics of the layer below, so a layer with more topics than its input has no unique "
                          "codes; list ranks finest first, decreasing", UserWarning, stacklevel=3)
        self.ranks = tuple(ranks)
        sizes, generator, dtype, device = (self.in_features, *ranks), self._generator, self._dtype, self._device
        self.layers = nn.ModuleList(
            NNLSLayer(sizes[i], sizes[i + 1], generator=generator, warm_start=False, dtype=dtype, device=device)
            for i in range(len(ranks))
        )
        self.heads = nn.ModuleDict({
            str(level): LabelHead(level, ranks, c, form=self.classifier, nonnegative=self.nonnegative_classifier,
                                  generator=generator, dtype=dtype, device=device)
            for level, c in self._counts.items()
        })
        if self.init != "uniform":
            self._pending_dictionaries = self._versions()
        if self.heads and self.classifier_from_labels:
            self._pending_classifier = self._head_versions()

    @property
    def needs_ranks(self) -> bool:
        """True for a model built with ``ranks="auto"`` whose ranks are not chosen yet (:meth:`choose_ranks`;
        :func:`neuralnmf.fit` chooses them from its training data)."""
        return self.ranks is None

    def choose_ranks(self, x: torch.Tensor, **options):
        """Choose every level's rank from ``x`` (:func:`neuralnmf.select_ranks`, ``options`` passed on; seeded from
        the model's generator) and build the layers. Returns the :class:`neuralnmf.RankSelection`."""
        if not self.needs_ranks:
            raise ValueError(f"NeuralNMF.choose_ranks: the ranks are already {self.ranks}; build a model with "
                             "ranks='auto' to choose them from data")
        if self._generator is not None and "seed" not in options:
            options["seed"] = int(torch.randint(2**31, (1,), generator=self._generator))
        self.rank_selection = select_ranks(x, self.levels, **options)
        self._build(self.rank_selection.ranks)
        return self.rank_selection

    @property
    def labeled_levels(self) -> list[int]:
        """The levels with a classifier, finest first."""
        return [int(level) for level in self.heads]

    def head(self, level: int | None = None) -> LabelHead:
        """The classifier of ``level`` (default: the deepest labeled level)."""
        if not self.heads:
            raise ValueError("NeuralNMF: the model has no classifier (build it with num_classes)")
        if level is None:
            return self.heads[str(self.labeled_levels[-1])]
        l = check_level(level, len(self.layers), "NeuralNMF", "level")
        if str(l) not in self.heads:
            raise ValueError(f"NeuralNMF: level {level} has no classifier; labeled levels: {self.labeled_levels}")
        return self.heads[str(l)]

    @property
    def B(self) -> nn.Parameter | None:
        """The weight of the deepest labeled level's classifier (None without one): (c, features)."""
        return self.head().weight if self.heads else None

    def _head_versions(self) -> tuple:
        return tuple(head.weight._version for head in self.heads.values())

    def _versions(self) -> tuple:
        return tuple(layer.A._version for layer in self.layers)

    @property
    def needs_initialization(self) -> bool:
        """True while the data-driven start of ``init`` waits for data: built without ``data`` and neither
        initialized, trained nor loaded since. :func:`neuralnmf.fit` then initializes from its training data."""
        return self._pending_dictionaries is not None and self._pending_dictionaries == self._versions()

    @property
    def needs_classifier_initialization(self) -> bool:
        """True while the classifiers hold their first values (no labels seen, no change, nothing loaded)."""
        return bool(self.heads) and self._pending_classifier == self._head_versions()

    @torch.no_grad()
    def initialize(self, x: torch.Tensor, y=None, label_mask=None, *, method: str | None = None,
                   generator=None, holdout=None, warn: bool = True) -> dict:
        """Start the dictionaries from data, and the classifiers from labels when ``y`` is given.

        Args:
            x: (samples, in_features) >= 0, dense or sparse (never densified).
            y, label_mask: labels as :func:`neuralnmf.fit` takes them ((samples,) class indices of the deepest
                labeled level, or a dict {level: labels}; masks True = labeled); see :meth:`initialize_classifier`.
            method: "nmf" (default: the model's ``init``, "nmf" if that is "uniform"), "nndsvd", "nndsvda",
                "nndsvdar" (NNDSVD layer by layer, each from the codes of the layer below) or "uniform".
            generator: torch.Generator for the random draws (default: the model's).
            holdout: (samples,) bool, labeled samples the classifiers' starts choose their weight decay on.

        Returns:
            {level: what each classifier's start chose} (empty without labels).
        """
        method = method or (self.init if self.init != "uniform" else "nmf")
        if method not in INIT_METHODS:
            raise ValueError(f"NeuralNMF.initialize: method must be one of {INIT_METHODS}, got {method!r}")
        generator = self._generator if generator is None else generator
        x = check_data(x, "NeuralNMF.initialize", "x", features=self.in_features)
        if not self._dtype_given and x.dtype in (torch.float32, torch.float64) and x.dtype != self.layers[0].A.dtype:
            self.to(x.dtype)  # built without a dtype: take the data's, as the first fit would need it anyway
        self._dtype_given = True
        dtype = self.layers[0].A.dtype
        h = x.detach().to(dtype)
        if method == "nmf":
            start_labels = None
            if y is not None and self.heads and self.supervised_start:  # labels of the held-out samples stay out
                labels = labels_by_level(y, label_mask, self.heads, len(self.layers), x.shape[0], self.layers[0].A.device,
                                         "NeuralNMF.initialize", warn=False)
                hold = None if holdout is None else torch.as_tensor(holdout, device=self.layers[0].A.device).bool()
                start_labels = {}
                for level, (y_l, mask) in labels.items():
                    keep = torch.ones_like(y_l, dtype=torch.bool) if mask is None else mask
                    start_labels[level] = (y_l, keep if hold is None else keep & ~hold, self.head(level).num_classes)
            trees = tree_levels(len(self.layers), self.labeled_levels) if self.tree else ()
            starts = hierarchical_nmf_init(h, self.ranks, generator=generator, labels=start_labels, tree=trees,
                                           min_children=self.min_children)
            for l, (layer, A) in enumerate(zip(self.layers, starts)):
                layer.reset_parameters(A.to(layer.A.device))
                if l in trees:
                    layer.parents = A.argmax(1).to(layer.A.device)
        else:
            for layer in self.layers:
                layer.reset_parameters(method, data=h, generator=generator)
                h = layer(h)
        self._cache.clear()
        self._pending_dictionaries = None
        if y is not None and self.heads and self.classifier_from_labels:
            return self.initialize_classifier(x, y, label_mask, holdout=holdout, warn=warn)
        return {}

    @torch.no_grad()
    def initialize_classifier(self, x: torch.Tensor, y, label_mask=None, *, holdout=None, warn: bool = True) -> dict:
        """Every labeled level's classifier from its labels, the dictionaries fixed: the regularised logistic
        regression of the codes ("logistic"; its weight decay chosen on ``holdout``), or argmin ||Y - S_l B^T||_F
        ("papers"; B >= 0 when B is nonnegative).

        x: (samples, in_features); y: (samples,) class indices of the deepest labeled level, or {level: labels};
        label_mask: (samples,) bool or {level: mask}, True = labeled; holdout: (samples,) bool, labeled samples
        left out of the fit to choose the weight decay; warn: warn of classes without a labeled sample. Returns
        {level: what was chosen}.
        """
        if not self.heads:
            raise ValueError("NeuralNMF.initialize_classifier: the model has no classifier (num_classes=None)")
        labels = labels_by_level(y, label_mask, self.heads, len(self.layers), x.shape[0], self.layers[0].A.device,
                                 "NeuralNMF.initialize_classifier", warn=warn)
        codes = self._codes(x, max(labels) if labels else 0)
        chosen = {}
        for level, (y_l, mask) in labels.items():
            hold = None if holdout is None else torch.as_tensor(holdout, device=y_l.device).bool()
            chosen[level] = self.head(level).start(codes, y_l, mask, holdout=hold)
        self._pending_classifier = None
        return chosen

    def _codes(self, x: torch.Tensor, depth: int) -> list[torch.Tensor]:
        codes, h = [], x
        for layer in self.layers[: depth + 1]:
            h = layer(h)
            codes.append(h)
        return codes

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
        level_logits = {int(level): head(codes) for level, head in self.heads.items()}
        logits = level_logits[self.labeled_levels[-1]] if level_logits else None
        return NeuralNMFOutput(codes, logits, level_logits)

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor, level: int | None = None) -> torch.Tensor:
        """Class probabilities of new samples through the frozen dictionaries (as :meth:`transform`).

        x: (M, in_features), dense or sparse -> (M, num_classes of ``level``'s classifier; default: the deepest
        labeled level). Softmax for the "logistic" classifier; the papers' least-squares scores clipped at 0 and
        normalised for "papers".
        """
        head = self.head(level)
        return head.probabilities(head(self._codes(x, max(head.reads))))

    @torch.no_grad()
    def predict(self, x: torch.Tensor, level: int | None = None) -> torch.Tensor:
        """Predicted classes (M,) of new samples through the frozen dictionaries (see :meth:`predict_proba`)."""
        head = self.head(level)
        return head(self._codes(x, max(head.reads))).argmax(-1)

    @torch.no_grad()
    def transform(self, x: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        """Codes of new samples against the frozen dictionaries (exact NNLS, nothing refitted).

        x: (M, in_features), dense or sparse -> (M, k_depth) for the layer `depth` (default: the last).
        """
        return self._codes(x, self._depth(depth))[-1]

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
        ranks = self.ranks if self.ranks is not None else f"'auto' ({self.levels} levels, chosen by the first fit)"
        return f"in_features={self.in_features}, ranks={ranks}{extra}"
