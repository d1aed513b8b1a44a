"""fit(): train a Neural NMF model with any torch optimizer, keeping its dictionaries nonnegative.

Data comes as one tensor (dense or sparse; full batch or shuffled minibatches) or as any re-iterable source
of batches (a DataLoader over a memory map, .npz shards read one at a time, ...). Under torch.distributed,
each process trains on its own samples and the gradients are all-reduced with weights that make the step
exactly the full-data step (see :func:`fit`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch

from . import _checks, sparse_products
from .classifiers import labels_by_level
from .epochs import EpochEnd
from .holdout import DEFAULT_VALIDATION, DEFAULT_VALIDATION_PATIENCE, BestEpoch, draw_holdout
from .losses import LOSS_TERMS
from .supervision import DEFAULT_LAM, label_terms, label_weights, term_name
from .optim import build_optimizer
from .projection import NonnegativeProjection
from .threads import step_work

__all__ = ["fit", "History", "as_fit_data", "DEFAULT_LOSS", "DEFAULT_LAM", "DEFAULT_LR", "DEFAULT_EPOCHS"]

DEFAULT_LOSS = "hierarchical"
"""Every level reconstructs the data: the only objective without a scale escape that also keeps every level as good
as flat NMF at its rank (see :mod:`neuralnmf.losses`)."""


DEFAULT_LR = 1e-2
"""Adam's step, relative to each parameter's RMS when ``relative_lr`` (the default): about 1% per step."""

DEFAULT_EPOCHS = 1000


class History(dict):
    """Per-epoch values of every loss term ("loss" is the total), plus ``epochs``, ``seconds``, ``stopped_early``."""

    def __init__(self):
        super().__init__()
        self.epochs = 0
        self.seconds = 0.0
        self.stopped_early = False
        self.selected: dict = {}

    def append(self, logs: dict[str, float]) -> None:
        for name, value in logs.items():
            self.setdefault(name, []).append(value)
        self.epochs += 1

    def __repr__(self) -> str:
        last = ", ".join(f"{k}={v[-1]:.4g}" for k, v in self.items())
        return f"History(epochs={self.epochs}, {last})"


def as_fit_data(x, in_features: int, name: str = "x") -> torch.Tensor:
    """x: (samples, in_features) as :func:`neuralnmf._checks.check_data` checks it; a sparse x as coalesced COO."""
    x = _checks.check_data(x, "fit", name, features=in_features)
    return x if x.layout == torch.strided else (x if x.is_sparse else x.to_sparse_coo()).coalesce()


@dataclass
class Batch:
    """x (M, N); labels {level: (y (M,), train mask (M,) or None)}; holdout {level: (M,) bool}; data_mask (M, N)."""

    x: torch.Tensor
    labels: dict = field(default_factory=dict)
    holdout: dict = field(default_factory=dict)
    data_mask: torch.Tensor | None = None

    def rows(self, idx: torch.Tensor) -> "Batch":
        take = (lambda t: None if t is None else t.index_select(0, idx.to(t.device)))
        x = sparse_products.rows(self.x, idx) if self.x.is_sparse else take(self.x)
        return Batch(x, {l: (take(y), take(m)) for l, (y, m) in self.labels.items()},
                     {l: take(m) for l, m in self.holdout.items()}, take(self.data_mask))


class _TensorSource:
    """Batches of one validated in-memory tensor: the full batch, or shuffled minibatches."""

    def __init__(self, batch: Batch, batch_size: int | None, shuffle: bool, generator, holdout=None):
        self.batch, self.batch_size, self.shuffle, self.generator = batch, batch_size, shuffle, generator
        self.holdout: torch.Tensor | None = holdout  # (M,) bool, the samples held out of the label terms

    def __iter__(self):
        M = self.batch.x.shape[0]
        if self.batch_size is None or self.batch_size >= M:
            yield self.batch
            return
        order = torch.randperm(M, generator=self.generator) if self.shuffle else torch.arange(M)
        for idx in order.split(self.batch_size):
            yield self.batch.rows(idx)


class _IterableSource:
    """Batches from a re-iterable source: each item is x, (x, y) or (x, y, label_mask); validated as it comes."""

    def __init__(self, source, model, device):
        self.source, self.model, self.device = source, model, device

    def __iter__(self):
        for item in self.source:
            parts = tuple(item) if isinstance(item, (tuple, list)) else (item,)
            if not 1 <= len(parts) <= 3:
                raise ValueError(f"each batch must be x, (x, y) or (x, y, label_mask), got {len(parts)} items")
            x = as_fit_data(_checks.check_tensor(parts[0], "fit", "x of a batch").to(self.device),
                            self.model.in_features, "x of a batch")
            labels = labels_by_level(parts[1] if len(parts) > 1 else None, parts[2] if len(parts) > 2 else None,
                                     getattr(self.model, "heads", {}), len(self.model.layers), x.shape[0], x.device)
            yield Batch(x, labels)


def _make_optimizer(model, optimizer, lr: float, classifier_lr: float | None, kwargs: dict, relative: bool):
    groups = [{"params": [layer.A for layer in model.layers], "lr": lr}]
    heads = list(model.heads.parameters()) if hasattr(model, "heads") else []
    if heads:
        groups.append({"params": heads, "lr": lr if classifier_lr is None else classifier_lr})
    return build_optimizer(optimizer, groups, lr, kwargs, relative=relative)


def _distributed(flag: bool | None):
    """torch.distributed when requested (or, by default, when a process group is initialized), else None."""
    dist = torch.distributed
    ready = dist.is_available() and dist.is_initialized()
    if flag and not ready:
        raise ValueError("distributed=True needs an initialized torch.distributed process group (e.g. under torchrun)")
    return dist if (ready if flag is None else flag) else None


def _start_from_data(model, source, dist, holdout) -> dict:
    """The data-driven start a model built without data waits for (see ``NeuralNMF.needs_initialization``):
    from the whole tensor, or from the first batch of a source; under torch.distributed, rank 0's data (the
    other processes receive rank 0's parameters right after)."""
    needs_dict = bool(getattr(model, "needs_initialization", False))
    needs_cls = bool(getattr(model, "needs_classifier_initialization", False))
    if not (needs_dict or needs_cls):
        return {}
    chosen = {}
    if dist is None or dist.get_rank() == 0:
        batch = source.batch if isinstance(source, _TensorSource) else next(iter(source), None)
        if batch is not None:
            y = {l: y_l for l, (y_l, _) in batch.labels.items()} or None
            masks = {l: _labeled(m, batch.holdout.get(l), y_l) for l, (y_l, m) in batch.labels.items()} or None
            if needs_dict:
                chosen = model.initialize(batch.x, y, masks, holdout=holdout, warn=False)  # fit's check warned
            elif y is not None:
                chosen = model.initialize_classifier(batch.x, y, masks, holdout=holdout, warn=False)
    else:  # the parameters come from rank 0
        model._pending_dictionaries = model._pending_classifier = None
    return chosen


def _labeled(train_mask, held, y) -> torch.Tensor:
    """Every labeled sample of a level: its training mask (None = all) with its held-out samples put back."""
    mask = torch.ones_like(y, dtype=torch.bool) if train_mask is None else train_mask
    return mask if held is None else mask | held


def fit(
    model,
    x,
    *,
    y=None,
    label_mask=None,
    data_mask=None,
    loss: str = DEFAULT_LOSS,
    lam=None,
    classification: str | None = None,
    validation: float | None = DEFAULT_VALIDATION,
    validation_patience: int = DEFAULT_VALIDATION_PATIENCE,
    epochs: int = DEFAULT_EPOCHS,
    optimizer="adam",
    lr: float = DEFAULT_LR,
    relative_lr: bool = True,
    classifier_lr: float | None = None,
    optimizer_kwargs: dict | None = None,
    scheduler=None,
    batch_size: int | None = None,
    shuffle: bool = True,
    tol: float | None = None,
    patience: int = 10,
    callbacks: Iterable[Callable] = (),
    progress: bool | None = None,
    seed: int | None = None,
    distributed: bool | None = None,
) -> History:
    """Train `model` (e.g. :class:`neuralnmf.NeuralNMF`) on nonnegative data.

    The objective is the data loss ``loss`` plus ``lam`` times the label loss when labels ``y`` are given:

    * "hierarchical" (default): sum_l ||W (X - A_0 ⋯ A_l S_l)||^2 / ||W X||^2, every level measured in data space
      (each term is that level's squared relative error). It has no scale escape and, from the default "nmf"
      start, keeps every level as good as flat NMF at its rank on real corpora.
    * "reconstruction": the deepest level only; "energy": the papers' energy, whose code-space terms collapse on
      real vocabularies (kept for the papers' reproductions; see :mod:`neuralnmf.losses`).

    The label loss of each labeled level (its classifier's: summed cross-entropy plus the weight decay its start
    chose for "logistic", ||L (Y - B S_l)||^2 with one-hot Y for "papers"; unlabeled samples, ``label_mask`` False,
    contribute nothing) is divided by the data loss's normalizer, so ``lam`` means what it means in the papers'
    ||X - A S||^2 + lam ||L (Y - B S)||^2. ``data_mask`` (samples, features), 1 = observed, restricts the data
    terms to observed entries.

    With labels, ``validation`` (default 0.1) of the labeled samples, drawn per class with ``seed``, are held out
    of the label term: the classifiers' starts choose their weight decay on them, every epoch reads their label loss
    (and accuracy) from its forward pass (they stay in the data term, like unlabeled samples), training stops after
    ``validation_patience`` epochs without a lower loss, and the parameters of the best epoch are restored. What
    was chosen is in ``history.selected``. ``validation=None`` trains every epoch on all the labels (also when
    fewer than 10 samples would be held out, and with a source of batches).

    A model still waiting for its data-driven start (built without ``data``; see
    :attr:`neuralnmf.NeuralNMF.needs_initialization`) is first initialized from ``x`` (from the first batch of a
    source), and a classifier still at its random draw from the labels.

    Args:
        x: (samples, features) tensor, dense or sparse (COO/CSR, never densified); or a re-iterable source of
            batches (e.g. a DataLoader over a memory-mapped array or .npz shards), each x_b, (x_b, y_b) or
            (x_b, y_b, label_mask_b); then y, label_mask, data_mask and batch_size must be None.
        y: (samples,) class indices of the deepest labeled level, or {level: (samples,) labels} for a model with
            classifiers at several levels (``NeuralNMF(..., num_classes={level: classes})``).
        label_mask: (samples,) bool, True = labeled (for every level), or {level: mask}.
        lam: weight of the label terms (a number, or {level: number}); default per classifier form
            (:data:`DEFAULT_LAM`: 1.0 for "logistic", 0.3 for "papers").
        classification: None (default): each classifier's own loss; "l2" or "ce" imposes one on all.
        optimizer: a name ("adam", "sgd", ...), a torch.optim class, or an instance (then lr and relative_lr
            are ignored). The model's nonnegative parameters are projected onto >= 0 after every step.
        lr, classifier_lr: learning rates of the dictionaries and of the classifier (default: lr).
        relative_lr: each parameter's learning rate is ``lr`` times the RMS of its entries when fit starts, so
            Adam moves every dictionary by about the same fraction per step whatever the scale of the data (topic
            weights over a 50 000-word vocabulary are ~1e-3, a top-level grouping ~1). False: ``lr`` as given.
        scheduler: a callable ``scheduler(optimizer) -> LRScheduler``, or an LRScheduler; stepped per epoch.
        batch_size: None for full batch; otherwise minibatches of samples (shuffled with ``seed``).
        tol: stop early once the relative decrease of the loss stays below tol for ``patience`` epochs.
        callbacks: ``callback(epoch, logs, model)`` after each epoch; returning True stops training.
        progress: a tqdm bar with the current losses (default: only when stderr is a terminal).
        seed: seeds the minibatch order.
        distributed: data-parallel training over torch.distributed (default: on when a process group is
            initialized). Each process passes its own samples; parameters start from rank 0's (a pending
            data-driven start uses rank 0's data); every step divides by the normalizer of all processes' data
            together and all-reduces the gradients, so a step equals the step on all the data at once. All
            processes must take the same number of steps per epoch.

    Returns:
        History: per-epoch lists of "loss" (the total) and of each term as it enters the total ("level_0",
        "level_1", ... for the hierarchical loss; "reconstruction" or "energy"; "supervision" (or
        "supervision_<level>" with several labeled levels), to be multiplied by lam; "holdout_accuracy" and
        "holdout_loss" when samples are held out). ``history.selected``: the epoch, weight decays and hold-out size chosen from the
        data.
    """
    if getattr(model, "needs_ranks", False):  # ranks="auto": chosen from the training data before anything else
        if not isinstance(x, torch.Tensor):
            raise TypeError("fit: a model with ranks='auto' chooses its ranks from the data as one tensor; call "
                            "model.choose_ranks(x) on a tensor (or a sample of it) before fitting on a batch source")
        model.choose_ranks(x, progress=progress)
    device = model.layers[0].A.device
    if loss not in LOSS_TERMS:
        raise ValueError(f"fit: loss must be one of {sorted(LOSS_TERMS)}, got {loss!r}")
    epochs = _checks.check_int(epochs, "fit", "epochs", minimum=0)
    batch_size = _checks.check_batch_size(batch_size, "fit")
    if classification not in (None, "l2", "ce"):
        raise ValueError(f"fit: classification must be None, 'l2' or 'ce', got {classification!r}")
    if validation is not None and not _checks.check_real(validation, "fit", "validation") < 1:
        raise ValueError(f"fit: validation must be a fraction in [0, 1) of the labeled samples or None, got {validation}")
    validation_patience = _checks.check_int(validation_patience, "fit", "validation_patience", minimum=1)
    generator = _checks.check_generator(seed, None, "fit")
    source = _batch_source(model, x, y, label_mask, data_mask, batch_size, shuffle, generator, device, validation)
    weights = label_weights(model, lam)
    dist = _distributed(distributed)
    if dist is not None and data_mask is not None:
        raise ValueError("data_mask is not supported with distributed training")
    holdout = source.holdout if isinstance(source, _TensorSource) else None
    chosen = _start_from_data(model, source, dist, holdout)
    classes = {int(l): h.num_classes for l, h in getattr(model, "heads", {}).items()}
    _checks.warn_about_ranks(model.ranks, model.in_features, classes, "fit") if getattr(model, "ranks", None) else None
    if dist is not None:
        with torch.no_grad():
            for p in model.parameters():
                dist.broadcast(p.data, src=0)
            for layer in (m for m in model.modules() if hasattr(m, "share_tree_")):
                layer.share_tree_(dist)  # and the trees the projection keeps
            for head in getattr(model, "heads", {}).values():
                dist.broadcast(head.scale, src=0)
                dist.broadcast(head.decay, src=0)
    data_terms = LOSS_TERMS[loss]
    opt = _make_optimizer(model, optimizer, lr, classifier_lr, optimizer_kwargs or {}, relative_lr)
    sched = scheduler(opt) if callable(scheduler) and not hasattr(scheduler, "step") else scheduler
    params = [p for group in opt.param_groups for p in group["params"]]
    best = BestEpoch(params, validation_patience) if holdout is not None else None
    projection = NonnegativeProjection(model)
    projection()
    handle = projection.attach(opt)
    history = History()
    history.selected = {"holdout": 0 if holdout is None else int(holdout.sum()),
                        "weight_decay": {l: c["weight_decay"] for l, c in chosen.items() if "weight_decay" in c}}
    work = step_work(source.batch.x, model.ranks[0], source.batch_size) if isinstance(source, _TensorSource) else None
    start = time.perf_counter()
    try:
        with EpochEnd(epochs, progress, "fit", tol, patience, callbacks, work=work) as epoch_end:
            for epoch in range(epochs):
                logs = _epoch(model, source, data_terms, classification, weights, dist, opt, params, best)
                history.append(logs)
                if sched is not None:
                    sched.step()
                stop = epoch_end(epoch, logs, model)
                if best is not None:  # the label loss of held-out samples: far less noisy than their accuracy
                    stop = best.end_of_epoch(epoch, -logs["holdout_loss"]) or stop
                if stop:
                    history.stopped_early = epoch + 1 < epochs
                    break
        if best is not None and best.best_epoch >= 0:
            best.restore()
            history.selected.update(epoch=best.best_epoch, holdout_loss=-best.best,
                                    holdout_accuracy=history["holdout_accuracy"][best.best_epoch])
    finally:
        handle.remove()
        history.seconds = time.perf_counter() - start
    return history


def _epoch(model, source, data_terms, classification, weights: dict, dist, opt, params, best) -> dict[str, float]:
    """One pass over the batches: a step per batch; returns the epoch's logs (one host read)."""
    totals, norm_total, held = {}, 0.0, {}
    for batch in source:
        out = model(batch.x)
        sums, normalizer = data_terms(model, batch.x, out, batch.data_mask)
        scale = label_terms(model, out, batch.labels, batch.holdout, classification, weights, sums, held)
        if dist is not None:  # every process divides by the normalizer of all the data of this step
            normalizer = normalizer.detach().clone()
            dist.all_reduce(normalizer)
        total = sum(v * scale.get(name, 1.0) for name, v in sums.items()) / normalizer
        opt.zero_grad(set_to_none=True)
        total.backward()
        if dist is not None:
            for p in params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                dist.all_reduce(p.grad)
        if best is not None:
            best.before_step()
        opt.step()
        for name, value in sums.items():
            totals[name] = totals.get(name, 0.0) + value.detach()
        norm_total = norm_total + normalizer.detach()
    weights_by_name = {term_name(model, level): w for level, w in weights.items()}
    return _epoch_logs(totals, norm_total, dist, weights_by_name, held)


def _batch_source(model, x, y, label_mask, data_mask, batch_size, shuffle, generator, device, validation):
    if not isinstance(x, torch.Tensor):
        if hasattr(x, "__array__"):  # a numpy array is data, not a source of batches: say how to convert it
            _checks.check_tensor(x, "fit", "x")
        if isinstance(x, (str, bytes)) or not hasattr(x, "__iter__"):
            raise TypeError(f"fit: x must be a torch.Tensor or a re-iterable source of batches, got "
                            f"{type(x).__name__}")
        if any(v is not None for v in (y, label_mask, data_mask, batch_size)):
            raise ValueError("with a source of batches, pass labels inside the batches; y, label_mask, data_mask "
                             "and batch_size must be None")
        return _IterableSource(x, model, device)
    x = as_fit_data(x, model.in_features)
    if x.device != device:
        raise ValueError(f"fit: x is on {x.device} but the model is on {device}; move one of them (x.to({device}) "
                         f"or model.to({x.device}))")
    labels = labels_by_level(y, label_mask, getattr(model, "heads", {}), len(model.layers), x.shape[0], x.device)
    holdout = draw_holdout(labels, validation or 0.0, x.shape[0], generator)
    held = {}
    if holdout is not None:
        for level, (y_l, mask) in list(labels.items()):
            labeled = torch.ones_like(holdout) if mask is None else mask
            held[level] = holdout & labeled
            labels[level] = (y_l, labeled & ~holdout)
    data_mask = _checks.check_observed(data_mask, x, "fit", "data_mask")
    return _TensorSource(Batch(x, labels, held, data_mask), batch_size, shuffle, generator, holdout)


def _epoch_logs(totals, norm_total, dist, weights: dict, held: dict) -> dict[str, float]:
    """Every term's sum over the epoch (all processes together) over the normalizers' sum; "loss" recombined from
    them; the held-out accuracy (mean over labeled levels). One host read per epoch."""
    names = list(totals)
    if not names:
        raise ValueError("the source of batches yielded no batch in this epoch")
    device = totals[names[0]].device
    counts = [v for entry in held.values() for v in entry]
    packed = torch.stack([torch.as_tensor(v, dtype=torch.float64, device=device)
                          for v in [*(totals[n] for n in names), norm_total, *counts]])
    if dist is not None:
        dist.all_reduce(packed)
    values = packed.tolist()
    norm = values[len(names)]
    logs = {name: v / norm for name, v in zip(names, values)}
    total = sum(v * weights.get(name, 1.0) for name, v in logs.items())
    logs = {"loss": total, **logs}
    if held:  # per level (right, loss, count): mean accuracy and mean label loss over the labeled levels
        triples = values[len(names) + 1:]
        counts = [max(c, 1.0) for c in triples[2::3]]
        logs["holdout_accuracy"] = sum(r / c for r, c in zip(triples[0::3], counts)) / len(counts)
        logs["holdout_loss"] = sum(v / c for v, c in zip(triples[1::3], counts)) / len(counts)
    return logs
