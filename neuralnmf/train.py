"""fit(): train a Neural NMF model with any torch optimizer, keeping its dictionaries nonnegative."""

from __future__ import annotations

import inspect
import sys
import time
from collections.abc import Callable, Iterable

import torch

from .losses import energy_loss, reconstruction_loss, supervision_loss
from .projection import NonnegativeProjection

__all__ = ["fit", "History", "check_data", "check_labels"]

OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}
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
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2 or x.shape[1] != in_features:
        raise ValueError(f"{name} must have shape (samples, {in_features}), got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or Inf")
    if bool((x < 0).any()):
        raise ValueError(f"{name} has negative entries: NMF requires nonnegative data")
    return x


def check_labels(y, label_mask, num_classes: int | None, samples: int, device):
    """y: (M,) class indices in [0, num_classes); label_mask: (M,) bool, True = labeled (default: all)."""
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
    y = torch.where(mask, y, 0)  # unlabeled entries are never read: mask them to a valid index
    return y, (None if bool(mask.all()) else mask)  # None: every sample labeled, no masking work


def _make_optimizer(model, optimizer, lr: float, classifier_lr: float | None, kwargs: dict):
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    cls = OPTIMIZERS.get(optimizer.lower()) if isinstance(optimizer, str) else optimizer
    if cls is None:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, a torch.optim class or instance, got {optimizer!r}")
    groups = [{"params": [layer.A for layer in model.layers], "lr": lr}]
    if getattr(model, "B", None) is not None:
        groups.append({"params": [model.B], "lr": lr if classifier_lr is None else classifier_lr})
    if "foreach" in inspect.signature(cls).parameters:
        kwargs = {"foreach": True, **kwargs}  # one multi-tensor op per step instead of one per parameter
    return cls(groups, lr=lr, **kwargs)


def _batches(M: int, batch_size: int | None, shuffle: bool, generator) -> Iterable[torch.Tensor | None]:
    if batch_size is None or batch_size >= M:
        return [None]
    order = torch.randperm(M, generator=generator) if shuffle else torch.arange(M)
    return list(order.split(batch_size))


def fit(
    model,
    x: torch.Tensor,
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
) -> History:
    """Train `model` (e.g. :class:`neuralnmf.NeuralNMF`) on data x (samples, features) >= 0.

    The objective is ``loss`` ("reconstruction": deepest layer; "energy": every layer), plus
    ``lam * supervision`` when labels ``y`` are given (``classification`` "l2" or "ce"; samples with
    ``label_mask`` False contribute nothing). ``data_mask`` (samples, features), 1 = observed, restricts the
    data terms to observed entries. See :mod:`neuralnmf.losses` for the normalisation.

    Args:
        optimizer: a name ("adam", "sgd", ...), a torch.optim class, or an instance (then lr is ignored).
            The model's nonnegative parameters are projected onto >= 0 after every step.
        lr, classifier_lr: learning rates of the dictionaries and of the classifier (default: lr).
        scheduler: a callable ``scheduler(optimizer) -> LRScheduler``, or an LRScheduler; stepped per epoch.
        batch_size: None for full batch; otherwise minibatches of samples (shuffled with ``seed``).
        tol: stop early once the relative decrease of the loss stays below tol for ``patience`` epochs.
        callbacks: ``callback(epoch, logs, model)`` after each epoch; returning True stops training.
        progress: a tqdm bar with the current losses (default: only when stderr is a terminal).
        seed: seeds the minibatch order.

    Returns:
        History: per-epoch lists of "loss" and each term ("reconstruction"/"energy", "supervision").
    """
    device = model.layers[0].A.device
    x = check_data(x, model.in_features)
    M = x.shape[0]
    y, label_mask = check_labels(y, label_mask, getattr(model, "num_classes", None), M, x.device)
    if data_mask is not None:
        data_mask = torch.as_tensor(data_mask, device=x.device)
        if data_mask.shape != x.shape:
            raise ValueError(f"data_mask must have the shape of x {tuple(x.shape)}, got {tuple(data_mask.shape)}")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be a nonnegative integer, got {epochs!r}")
    if x.device != device:
        raise ValueError(f"x is on {x.device} but the model is on {device}")
    data_loss = LOSSES[loss]
    opt = _make_optimizer(model, optimizer, lr, classifier_lr, optimizer_kwargs or {})
    sched = scheduler(opt) if callable(scheduler) and not hasattr(scheduler, "step") else scheduler
    projection = NonnegativeProjection(model)
    projection()
    handle = projection.attach(opt)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    full_batch = [None]

    def batches(epoch):
        return full_batch if batch_size is None or batch_size >= M else _batches(M, batch_size, shuffle, generator)

    history = History()
    bar = _progress_bar(epochs, progress)
    best, calm = float("inf"), 0
    start = time.perf_counter()
    try:
        for epoch in range(epochs):
            sums: dict[str, torch.Tensor] = {}
            for idx in batches(epoch):
                xb = x if idx is None else x[idx]
                terms = _loss_terms(model, xb, data_loss, loss,
                                    None if y is None else (y if idx is None else y[idx]),
                                    None if label_mask is None else (label_mask if idx is None else label_mask[idx]),
                                    None if data_mask is None else (data_mask if idx is None else data_mask[idx]),
                                    lam, classification)
                opt.zero_grad(set_to_none=True)
                terms["loss"].backward()
                opt.step()
                if idx is None:
                    sums = {name: value.detach() for name, value in terms.items()}
                else:
                    for name, value in terms.items():
                        sums[name] = sums.get(name, 0.0) + value.detach() * (len(idx) / M)
            logs = dict(zip(sums, torch.stack(list(sums.values())).tolist()))  # one host read per epoch
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


def _loss_terms(model, xb, data_loss, loss_name, yb, lb, wb, lam, classification) -> dict[str, torch.Tensor]:
    out = model(xb)
    terms = {loss_name: data_loss(model, xb, out, wb)}
    total = terms[loss_name]
    if yb is not None:
        terms["supervision"] = supervision_loss(out.logits, yb, lb, classification)
        total = total + lam * terms["supervision"]
    return {"loss": total, **terms}


def _progress_bar(epochs: int, progress: bool | None):
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=epochs, desc="fit", unit="epoch", mininterval=0.5)
