"""fit(): train a Neural NMF model with any torch optimizer, keeping its dictionaries nonnegative.

Data comes as one tensor (dense or sparse; full batch or shuffled minibatches) or as any re-iterable source
of batches (a DataLoader over a memory map, .npz shards read one at a time, ...). Under torch.distributed,
each process trains on its own samples and the gradients are all-reduced with weights that make the step
exactly the full-data step (see :func:`fit`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from . import sparse_products
from .losses import LOSS_TERMS, supervision_loss
from .epochs import EpochEnd
from .optim import build_optimizer
from .projection import NonnegativeProjection

__all__ = ["fit", "History", "check_data", "check_labels", "DEFAULT_LOSS", "DEFAULT_LAM", "DEFAULT_LR",
           "DEFAULT_EPOCHS"]

DEFAULT_LOSS = "hierarchical"
"""Every level reconstructs the data: the only objective without a scale escape that also keeps every level as good
as flat NMF at its rank (see :mod:`neuralnmf.losses`)."""

DEFAULT_LAM = 0.3
"""The label weight of the papers' sums ||X - A S||^2 + lam ||L (Y - B S)||^2. Measured on 20 Newsgroups (unit-length
tf-idf rows, half or three quarters of the documents labeled; docs/real_corpus.md), 0.3 gave a better held-out
accuracy than the SSNMF default of 1 and kept every level within 1% of flat NMF; 1 overfits the labeled
documents."""

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

    def append(self, logs: dict[str, float]) -> None:
        for name, value in logs.items():
            self.setdefault(name, []).append(value)
        self.epochs += 1

    def __repr__(self) -> str:
        last = ", ".join(f"{k}={v[-1]:.4g}" for k, v in self.items())
        return f"History(epochs={self.epochs}, {last})"


def check_data(x, in_features: int, name: str = "x") -> torch.Tensor:
    """x: (samples, in_features), finite and nonnegative, dense or sparse (returned as coalesced COO)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2 or x.shape[1] != in_features:
        raise ValueError(f"{name} must have shape (samples, {in_features}), got {tuple(x.shape)}")
    if x.layout != torch.strided:
        x = (x if x.layout == torch.sparse_coo else x.to_sparse_coo()).coalesce()
    values = x.values() if x.layout == torch.sparse_coo else x
    if not bool(torch.isfinite(values).all()):
        raise ValueError(f"{name} contains NaN or Inf")
    if bool((values < 0).any()):
        raise ValueError(f"{name} has negative entries: NMF requires nonnegative data")
    return x


def check_labels(y, label_mask, num_classes: int | None, samples: int, device):
    """y: (M,) class indices in [0, num_classes); label_mask: (M,) bool, True = labeled (default: all).

    Returns (y, mask) with unlabeled entries of y set to 0 (never read) and mask None when every sample is labeled.
    """
    if y is None:
        if label_mask is not None:
            raise ValueError("label_mask given without labels y")
        return None, None
    if num_classes is None:
        raise ValueError("labels y were given but the model has no classifier: build it with num_classes")
    y = torch.as_tensor(y, device=device)
    if y.dim() != 1 or y.shape[0] != samples or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise ValueError(f"y must be (samples,) = ({samples},) integer class indices, got {tuple(y.shape)} {y.dtype}")
    y = y.long()
    mask = torch.ones(samples, dtype=torch.bool, device=device) if label_mask is None else torch.as_tensor(label_mask, device=device)
    if mask.shape != (samples,):
        raise ValueError(f"label_mask must have shape ({samples},), got {tuple(mask.shape)}")
    mask = mask.bool()
    labeled = y[mask]
    if labeled.numel() and (int(labeled.min()) < 0 or int(labeled.max()) >= num_classes):
        raise ValueError(f"labels must be in [0, {num_classes}), got values in [{int(labeled.min())}, {int(labeled.max())}]")
    y = torch.where(mask, y, 0)
    return y, (None if bool(mask.all()) else mask)


@dataclass
class Batch:
    x: torch.Tensor
    y: torch.Tensor | None = None
    label_mask: torch.Tensor | None = None
    data_mask: torch.Tensor | None = None

    def rows(self, idx: torch.Tensor) -> "Batch":
        take = (lambda t: None if t is None else t.index_select(0, idx.to(t.device)))
        x = sparse_products.rows(self.x, idx) if self.x.is_sparse else take(self.x)
        return Batch(x, take(self.y), take(self.label_mask), take(self.data_mask))


class _TensorSource:
    """Batches of one validated in-memory tensor: the full batch, or shuffled minibatches."""

    def __init__(self, batch: Batch, batch_size: int | None, shuffle: bool, generator):
        self.batch, self.batch_size, self.shuffle, self.generator = batch, batch_size, shuffle, generator

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
            x = check_data(parts[0].to(self.device), self.model.in_features)
            y, mask = check_labels(parts[1] if len(parts) > 1 else None, parts[2] if len(parts) > 2 else None,
                                   getattr(self.model, "num_classes", None), x.shape[0], x.device)
            yield Batch(x, y, mask)


def _make_optimizer(model, optimizer, lr: float, classifier_lr: float | None, kwargs: dict, relative: bool):
    groups = [{"params": [layer.A for layer in model.layers], "lr": lr}]
    if getattr(model, "B", None) is not None:
        groups.append({"params": [model.B], "lr": lr if classifier_lr is None else classifier_lr})
    return build_optimizer(optimizer, groups, lr, kwargs, relative=relative)


def _distributed(flag: bool | None):
    """torch.distributed when requested (or, by default, when a process group is initialized), else None."""
    dist = torch.distributed
    ready = dist.is_available() and dist.is_initialized()
    if flag and not ready:
        raise ValueError("distributed=True needs an initialized torch.distributed process group (e.g. under torchrun)")
    return dist if (ready if flag is None else flag) else None


def _start_from_data(model, source, dist) -> None:
    """The data-driven start a model built without data waits for (see ``NeuralNMF.needs_initialization``):
    from the whole tensor, or from the first batch of a source; under torch.distributed, rank 0's data (the
    other processes receive rank 0's parameters right after)."""
    needs_dict = bool(getattr(model, "needs_initialization", False))
    needs_cls = bool(getattr(model, "needs_classifier_initialization", False))
    if not (needs_dict or needs_cls):
        return
    if dist is None or dist.get_rank() == 0:
        batch = source.batch if isinstance(source, _TensorSource) else next(iter(source), None)
        if batch is not None:
            if needs_dict:
                model.initialize(batch.x, batch.y, batch.label_mask)
            elif batch.y is not None:
                model.initialize_classifier(batch.x, batch.y, batch.label_mask)
    else:  # the parameters come from rank 0
        model._pending_dictionaries = model._pending_classifier = None


def fit(
    model,
    x,
    *,
    y=None,
    label_mask=None,
    data_mask=None,
    loss: str = DEFAULT_LOSS,
    lam: float = DEFAULT_LAM,
    classification: str = "l2",
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

    The label loss ("l2": ||L (Y - B S_L)||^2 with one-hot Y, or "ce": summed cross-entropy; unlabeled samples,
    ``label_mask`` False, contribute nothing) is divided by the data loss's normalizer, so ``lam`` means what it
    means in the papers' ||X - A S||^2 + lam ||L (Y - B S)||^2. ``data_mask`` (samples, features), 1 = observed,
    restricts the data terms to observed entries.

    A model still waiting for its data-driven start (built without ``data``; see
    :attr:`neuralnmf.NeuralNMF.needs_initialization`) is first initialized from ``x`` (from the first batch of a
    source), and a classifier still at its random draw from the labels.

    Args:
        x: (samples, features) tensor, dense or sparse (COO/CSR, never densified); or a re-iterable source of
            batches (e.g. a DataLoader over a memory-mapped array or .npz shards), each x_b, (x_b, y_b) or
            (x_b, y_b, label_mask_b); then y, label_mask, data_mask and batch_size must be None.
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
        "level_1", ... for the hierarchical loss; "reconstruction" or "energy"; "supervision", to be multiplied by
        lam).
    """
    device = model.layers[0].A.device
    if loss not in LOSS_TERMS:
        raise ValueError(f"loss must be one of {sorted(LOSS_TERMS)}, got {loss!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be a nonnegative integer, got {epochs!r}")
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not lam >= 0 or lam == float("inf"):
        raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
    if classification not in ("l2", "ce"):
        raise ValueError(f"classification must be 'l2' or 'ce', got {classification!r}")
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    source = _batch_source(model, x, y, label_mask, data_mask, batch_size, shuffle, generator, device)
    dist = _distributed(distributed)
    if dist is not None and data_mask is not None:
        raise ValueError("data_mask is not supported with distributed training")
    _start_from_data(model, source, dist)
    if dist is not None:
        with torch.no_grad():
            for p in model.parameters():
                dist.broadcast(p.data, src=0)
    data_terms = LOSS_TERMS[loss]
    opt = _make_optimizer(model, optimizer, lr, classifier_lr, optimizer_kwargs or {}, relative_lr)
    sched = scheduler(opt) if callable(scheduler) and not hasattr(scheduler, "step") else scheduler
    params = [p for group in opt.param_groups for p in group["params"]]
    projection = NonnegativeProjection(model)
    projection()
    handle = projection.attach(opt)
    history = History()
    start = time.perf_counter()
    try:
        with EpochEnd(epochs, progress, "fit", tol, patience, callbacks) as epoch_end:
            for epoch in range(epochs):
                logs = _epoch(model, source, data_terms, classification, lam, dist, opt, params)
                history.append(logs)
                if sched is not None:
                    sched.step()
                if epoch_end(epoch, logs, model):
                    history.stopped_early = epoch + 1 < epochs
                    break
    finally:
        handle.remove()
        history.seconds = time.perf_counter() - start
    return history


def _epoch(model, source, data_terms, classification: str, lam: float, dist, opt, params) -> dict[str, float]:
    """One pass over the batches: a step per batch; returns the epoch's logs (one host read)."""
    totals, norm_total = {}, 0.0
    for batch in source:
        out = model(batch.x)
        sums, normalizer = data_terms(model, batch.x, out, batch.data_mask)
        if batch.y is not None:
            sums["supervision"] = supervision_loss(out.logits, batch.y, batch.label_mask, classification,
                                                   reduction="sum")
        if dist is not None:  # every process divides by the normalizer of all the data of this step
            normalizer = normalizer.detach().clone()
            dist.all_reduce(normalizer)
        total = sum(v * (lam if name == "supervision" else 1.0) for name, v in sums.items()) / normalizer
        opt.zero_grad(set_to_none=True)
        total.backward()
        if dist is not None:
            for p in params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                dist.all_reduce(p.grad)
        opt.step()
        for name, value in sums.items():
            totals[name] = totals.get(name, 0.0) + value.detach()
        norm_total = norm_total + normalizer.detach()
    return _epoch_logs(totals, norm_total, dist, lam)


def _batch_source(model, x, y, label_mask, data_mask, batch_size, shuffle, generator, device):
    if not isinstance(x, torch.Tensor):
        if isinstance(x, (str, bytes)) or not hasattr(x, "__iter__"):
            raise TypeError(f"x must be a torch.Tensor or a re-iterable source of batches, got {type(x).__name__}")
        if any(v is not None for v in (y, label_mask, data_mask, batch_size)):
            raise ValueError("with a source of batches, pass labels inside the batches; y, label_mask, data_mask "
                             "and batch_size must be None")
        return _IterableSource(x, model, device)
    x = check_data(x, model.in_features)
    if x.device != device:
        raise ValueError(f"x is on {x.device} but the model is on {device}")
    y, label_mask = check_labels(y, label_mask, getattr(model, "num_classes", None), x.shape[0], x.device)
    if data_mask is not None:
        data_mask = torch.as_tensor(data_mask, device=x.device)
        if data_mask.shape != x.shape:
            raise ValueError(f"data_mask must have the shape of x {tuple(x.shape)}, got {tuple(data_mask.shape)}")
    return _TensorSource(Batch(x, y, label_mask, data_mask), batch_size, shuffle, generator)


def _epoch_logs(totals, norm_total, dist, lam) -> dict[str, float]:
    """Every term's sum over the epoch (all processes together) over the normalizers' sum; "loss" recombined from
    them. One host read per epoch."""
    names = list(totals)
    if not names:
        raise ValueError("the source of batches yielded no batch in this epoch")
    device = totals[names[0]].device
    packed = torch.stack([torch.as_tensor(v, dtype=torch.float64, device=device)
                          for v in [*(totals[n] for n in names), norm_total]])
    if dist is not None:
        dist.all_reduce(packed)
    values = (packed[:-1] / packed[-1]).tolist()
    logs = dict(zip(names, values))
    total = sum(v * (lam if name == "supervision" else 1.0) for name, v in logs.items())
    return {"loss": total, **logs}
