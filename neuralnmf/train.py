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
from .losses import energy_loss, reconstruction_loss, supervision_loss
from .optim import build_optimizer, progress_bar
from .projection import NonnegativeProjection

__all__ = ["fit", "History", "check_data", "check_labels"]

LOSSES = {"reconstruction": reconstruction_loss, "energy": energy_loss}


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

    @property
    def labeled(self):
        """Labeled samples: an int, or a 0-d tensor when a mask is given (no host synchronisation)."""
        if self.y is None:
            return 0
        return self.x.shape[0] if self.label_mask is None else self.label_mask.sum()

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


def _make_optimizer(model, optimizer, lr: float, classifier_lr: float | None, kwargs: dict):
    groups = [{"params": [layer.A for layer in model.layers], "lr": lr}]
    if getattr(model, "B", None) is not None:
        groups.append({"params": [model.B], "lr": lr if classifier_lr is None else classifier_lr})
    return build_optimizer(optimizer, groups, lr, kwargs)


def _distributed(flag: bool | None):
    """torch.distributed when requested (or, by default, when a process group is initialized), else None."""
    dist = torch.distributed
    ready = dist.is_available() and dist.is_initialized()
    if flag and not ready:
        raise ValueError("distributed=True needs an initialized torch.distributed process group (e.g. under torchrun)")
    return dist if (ready if flag is None else flag) else None


def fit(
    model,
    x,
    *,
    y=None,
    label_mask=None,
    data_mask=None,
    loss: str = "reconstruction",
    lam: float = 1.0,
    classification: str = "l2",
    epochs: int = 1000,
    optimizer="adam",
    lr: float = 1e-2,
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

    The objective is ``loss`` ("reconstruction": deepest layer; "energy": every layer), plus
    ``lam * supervision`` when labels ``y`` are given (``classification`` "l2" or "ce"; samples with
    ``label_mask`` False contribute nothing). ``data_mask`` (samples, features), 1 = observed, restricts the
    data terms to observed entries. See :mod:`neuralnmf.losses` for the normalisation.

    Args:
        x: (samples, features) tensor, dense or sparse (COO/CSR, never densified); or a re-iterable source of
            batches (e.g. a DataLoader over a memory-mapped array or .npz shards), each x_b, (x_b, y_b) or
            (x_b, y_b, label_mask_b); then y, label_mask, data_mask and batch_size must be None.
        optimizer: a name ("adam", "sgd", ...), a torch.optim class, or an instance (then lr is ignored).
            The model's nonnegative parameters are projected onto >= 0 after every step.
        lr, classifier_lr: learning rates of the dictionaries and of the classifier (default: lr).
        scheduler: a callable ``scheduler(optimizer) -> LRScheduler``, or an LRScheduler; stepped per epoch.
        batch_size: None for full batch; otherwise minibatches of samples (shuffled with ``seed``).
        tol: stop early once the relative decrease of the loss stays below tol for ``patience`` epochs.
        callbacks: ``callback(epoch, logs, model)`` after each epoch; returning True stops training.
        progress: a tqdm bar with the current losses (default: only when stderr is a terminal).
        seed: seeds the minibatch order.
        distributed: data-parallel training over torch.distributed (default: on when a process group is
            initialized). Each process passes its own samples; parameters start from rank 0's; every term's
            gradient is weighted by the process's share of the samples it averages over (labeled samples for
            the supervision term) and all-reduced, so a step equals the step on all the data at once. All
            processes must take the same number of steps per epoch.

    Returns:
        History: per-epoch lists of "loss" and each term ("reconstruction"/"energy", "supervision").
    """
    device = model.layers[0].A.device
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be a nonnegative integer, got {epochs!r}")
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    source = _batch_source(model, x, y, label_mask, data_mask, batch_size, shuffle, generator, device)
    dist = _distributed(distributed)
    if dist is not None and data_mask is not None:
        raise ValueError("data_mask is not supported with distributed training")
    data_loss = LOSSES[loss]
    opt = _make_optimizer(model, optimizer, lr, classifier_lr, optimizer_kwargs or {})
    sched = scheduler(opt) if callable(scheduler) and not hasattr(scheduler, "step") else scheduler
    params = [p for group in opt.param_groups for p in group["params"]]
    if dist is not None:
        with torch.no_grad():
            for p in params:
                dist.broadcast(p.data, src=0)
    projection = NonnegativeProjection(model)
    projection()
    handle = projection.attach(opt)
    history = History()
    bar = progress_bar(epochs, progress, "fit")
    best, calm = float("inf"), 0
    start = time.perf_counter()
    try:
        for epoch in range(epochs):
            totals, counts = {}, {}
            for batch in source:
                n, n_labeled = batch.x.shape[0], batch.labeled
                w_data, w_sup = 1.0, 1.0
                if dist is not None:  # this process's share of the samples each term averages over
                    global_counts = torch.stack([torch.as_tensor(c, dtype=torch.float64, device=device)
                                                 for c in (n, n_labeled)])
                    dist.all_reduce(global_counts)
                    n_labeled = float(n_labeled)
                    N, L = global_counts.tolist()
                    w_data, w_sup = n / N, (n_labeled / L if L else 0.0)
                terms = _loss_terms(model, batch, data_loss, loss, lam, classification, w_data, w_sup)
                opt.zero_grad(set_to_none=True)
                terms["loss"].backward()
                if dist is not None:
                    for p in params:
                        if p.grad is None:
                            p.grad = torch.zeros_like(p)
                        dist.all_reduce(p.grad)
                opt.step()
                for name, value in terms.items():  # per-term sums weighted by the samples each term averages over
                    weight = n_labeled if name == "supervision" else n
                    totals[name] = totals.get(name, 0.0) + value.detach() * weight
                    counts[name] = counts.get(name, 0) + weight
            logs = _epoch_logs(totals, counts, dist, lam)
            history.append(logs)
            if sched is not None:
                sched.step()
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items()}, refresh=False)
            stop = any(cb(epoch, logs, model) is True for cb in callbacks)
            if tol is not None:
                current = logs["loss"]
                calm = calm + 1 if best - current < tol * abs(best) else 0
                best = min(best, current)
                stop = stop or calm >= patience
            if stop:
                history.stopped_early = epoch + 1 < epochs
                break
    finally:
        handle.remove()
        if bar is not None:
            bar.close()
        history.seconds = time.perf_counter() - start
    return history


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


def _loss_terms(model, batch: Batch, data_loss, loss_name, lam, classification, w_data, w_sup):
    out = model(batch.x)
    terms = {loss_name: data_loss(model, batch.x, out, batch.data_mask)}
    total = terms[loss_name] * w_data if w_data != 1.0 else terms[loss_name]
    if batch.y is not None:
        terms["supervision"] = supervision_loss(out.logits, batch.y, batch.label_mask, classification)
        total = total + lam * w_sup * terms["supervision"]
    return {"loss": total, **terms}


def _epoch_logs(totals, counts, dist, lam) -> dict[str, float]:
    """Epoch means of every term (all processes together); "loss" recombined from them. One host read."""
    names = [name for name in totals if name != "loss"]
    sums = torch.stack([torch.as_tensor(totals[n], dtype=torch.float64) for n in names])
    weights = torch.stack([torch.as_tensor(counts[n], dtype=torch.float64, device=sums.device) for n in names])
    if dist is not None:
        packed = torch.cat([sums, weights])
        dist.all_reduce(packed)
        sums, weights = packed[: len(names)], packed[len(names):]
    means = (sums / weights.clamp_min(1)).tolist()
    logs = dict(zip(names, means))
    total = logs[names[0]] + (lam * logs["supervision"] if "supervision" in logs else 0.0)
    return {"loss": total, **logs}
