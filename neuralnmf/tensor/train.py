"""fit_tensor(): train a tensor model (:class:`NeuralNCPD`, :class:`NeuralMultiHNTF`) with any torch optimizer.

The tensor twin of :func:`neuralnmf.fit`: the same optimizers, projection hook (every nonnegative parameter is
clamped to >= 0 after each step), history, early stopping, callbacks and progress bar; the data is one tensor
(I_1, ..., I_N) instead of a sample matrix, and the loss is the energy loss across levels of
:mod:`neuralnmf.tensor.losses`, plus a supervision term when one mode carries labels.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import torch

from ..losses import supervision_loss
from .._checks import DEPRECATED, renamed
from ..epochs import EpochEnd
from ..optim import build_optimizer
from ..projection import NonnegativeProjection
from ..classifiers import check_class_labels
from ..supervision import DEFAULT_LAM
from ..train import DEFAULT_EPOCHS, DEFAULT_LR, History
from . import _checks
from .losses import default_levels, energy_loss

__all__ = ["fit_tensor", "fit_tensor_restarts"]


def _optimizer(model, optimizer, lr, factor_lr, kwargs, relative: bool):
    groups = [{"params": model.hierarchy_parameters(), "lr": lr}]
    factors = model.factor_parameters()
    if factors:
        groups.append({"params": factors, "lr": lr if factor_lr is None else factor_lr})
    if getattr(model, "B", None) is not None:
        groups.append({"params": [model.B], "lr": lr})
    return build_optimizer(optimizer, groups, lr, kwargs, caller="fit_tensor", relative=relative)


def _check_levels(levels, num_levels):
    if levels is None:
        return default_levels(num_levels)
    if isinstance(levels, int) and not isinstance(levels, bool):
        levels = (levels,)
    levels = tuple(levels)
    if not levels or any(isinstance(l, bool) or not isinstance(l, int) or not 0 <= l < num_levels for l in levels):
        raise ValueError(f"fit_tensor: levels must be a non-empty sequence of integers in [0, {num_levels}), "
                         f"got {levels!r}")
    return levels


def fit_tensor(
    model,
    tensor: torch.Tensor,
    *,
    data_mask: torch.Tensor | None = None,
    levels=None,
    y=None,
    label_mask=None,
    lam: float | None = None,
    classification: str | None = None,
    epochs: int = DEFAULT_EPOCHS,
    optimizer="adam",
    lr: float = DEFAULT_LR,
    relative_lr: bool = False,
    factor_lr: float | None = None,
    optimizer_kwargs: dict | None = None,
    scheduler=None,
    tol: float | None = None,
    patience: int = 10,
    callbacks: Iterable[Callable] = (),
    progress: bool | None = None,
    mask=DEPRECATED,
) -> History:
    """Train ``model`` on ``tensor`` (I_1, ..., I_N) >= 0 by full-batch gradient steps.

    The objective is the energy loss ``sum_{l in levels} mean((X - X_l)^2)`` over the observed entries, X_l the
    model's level-l tensor (:mod:`neuralnmf.tensor.losses`). Every term measures X itself, so this loss has no
    scale escape. With labels ``y`` of the model's ``label_mode`` it adds ``lam * supervision``, the label loss
    summed over the labeled entries and divided by the number of observed entries, as the data terms are: ``lam``
    weighs it as in the papers' ||X - [[F]]||^2 + lam ||L (Y - B S)||^2, the same meaning as in
    :func:`neuralnmf.fit`. After every optimizer step the nonnegative parameters (dictionaries, first-layer
    factors, classifier) are clamped to >= 0.

    Args:
        model: a :class:`NeuralNCPD` or :class:`NeuralMultiHNTF` (or any module with ``forward() ->
            TensorModelOutput``, ``hierarchy_parameters()`` and ``factor_parameters()``).
        tensor: (I_1, ..., I_N) nonnegative data of the model's shape, dtype and device.
        data_mask: (I_1, ..., I_N) bool or {0, 1}, 1 = observed; hidden entries are ignored (any value, NaN too).
            As ``data_mask`` of :func:`neuralnmf.fit`; ``mask=`` is its deprecated name.
        levels: which levels enter the loss; default 1 .. L, the Neural NCPD paper's energy loss.
        y: (I_label,) integer classes of the label mode's entries (-1 = unlabeled); label_mask (I_label,) bool,
            True = labeled. The same rule as :func:`neuralnmf.fit`.
        lam: weight of the supervision term, as in :func:`neuralnmf.fit`; default: ``DEFAULT_LAM["papers"]``
            (0.3), fit's default for the same least-squares classifier (it was 1.0 before).
        classification: None (the classifier's own loss, "l2": one-hot squared error) or "ce", as in
            :func:`neuralnmf.fit`.
        epochs: full-batch steps (there is nothing random to seed: no ``seed`` as in fit).
        optimizer: "adam", "sgd", ... (see :data:`neuralnmf.optim.OPTIMIZERS`), a torch.optim class, or an
            instance (then ``lr`` and ``factor_lr`` are ignored). ``optimizer_kwargs`` go to the class, e.g.
            ``{"betas": (0.9, 0.99)}`` for the Neural NCPD paper's Adam.
        lr: learning rate of the hierarchy (and classifier); factor_lr: of trained first-layer factors
            (default: lr).
        relative_lr: as in :func:`neuralnmf.fit`, each parameter's rate is ``lr`` times its RMS at the start.
            The default is False here (fit's is True): the tensor papers' settings are absolute rates.
        scheduler: ``scheduler(optimizer) -> LRScheduler`` or an LRScheduler, stepped once per epoch.
        tol, patience: stop once the relative decrease of the loss stays below tol for ``patience`` epochs.
        callbacks: ``callback(epoch, logs, model)`` after each epoch; returning True stops training.
        progress: tqdm bar (default: only when stderr is a terminal).

    Returns:
        :class:`neuralnmf.History` with per-epoch "loss" and "level_l" (and "supervision") values. Without
        ``tol``, callbacks or a progress bar the values stay on the device until the end (no host
        synchronisation inside the loop).
    """
    fn = "fit_tensor"
    data_mask = renamed(fn, "mask", mask, "data_mask", data_mask)
    model.check_tensor(tensor, fn)
    X, M = _checks.check_data(tensor, data_mask, fn, mask_name="data_mask")
    levels = _check_levels(levels, model.num_levels)
    num_classes = getattr(model, "num_classes", None)
    label_size = model.shape[model.label_mode] if num_classes is not None else 0
    if y is None:
        if label_mask is not None:
            raise ValueError(f"{fn}: label_mask given without labels y")
    elif num_classes is None:
        raise ValueError(f"{fn}: labels y were given but the model has no classifier: build it with num_classes")
    else:
        y, label_mask = check_class_labels(y, label_mask, num_classes, label_size, X.device, f"{fn}: ")
    epochs = _checks.check_int(epochs, fn, "epochs", minimum=0)
    lam = DEFAULT_LAM["papers"] if lam is None else _checks.check_real(lam, fn, "lam")
    if classification not in (None, "l2", "ce"):
        raise ValueError(f"{fn}: classification must be None, 'l2' or 'ce', got {classification!r}")
    classification = classification or "l2"
    opt = _optimizer(model, optimizer, lr, factor_lr, optimizer_kwargs or {}, relative_lr)
    sched = scheduler(opt) if callable(scheduler) and not hasattr(scheduler, "step") else scheduler
    projection = NonnegativeProjection(model)
    projection()
    handle = projection.attach(opt)
    work = X.numel() * getattr(model, "ranks", (1,))[0]  # the reconstruction at the first rank, each step
    epoch_end = EpochEnd(epochs, progress, "fit_tensor", tol, patience, callbacks, work=work)
    eager = epoch_end.needs_logs  # the values must reach the host every epoch
    history, rows, names = History(), [], None
    x_norm_sq = (X * X).sum() if M is None else None
    observed = torch.full((), float(X.numel()), dtype=X.dtype, device=X.device) if M is None else \
        M.to(X.dtype).sum().clamp_min(1)
    start = time.perf_counter()
    try:
        with epoch_end:
            for epoch in range(epochs):
                out = model()
                terms = energy_loss(X, out, M, levels, x_norm_sq=x_norm_sq)
                total = sum(terms.values())
                if y is not None:  # the label sum over the data term's normalizer: lam as in the papers' sums
                    terms["supervision"] = supervision_loss(out.logits, y, label_mask, classification,
                                                            reduction="sum") / observed
                    total = total + lam * terms["supervision"]
                terms = {"loss": total, **terms}
                opt.zero_grad(set_to_none=True)
                total.backward()
                opt.step()
                if sched is not None:
                    sched.step()
                values = torch.stack([v.detach() for v in terms.values()])
                names = list(terms)
                if not eager:
                    rows.append(values)
                    continue
                logs = dict(zip(names, values.tolist()))
                history.append(logs)
                if epoch_end(epoch, logs, model):
                    history.stopped_early = epoch + 1 < epochs
                    break
    finally:
        handle.remove()
        if rows:
            for row in torch.stack(rows).tolist():  # one host read for the whole run
                history.append(dict(zip(names, row)))
        history.seconds = time.perf_counter() - start
    return history


def fit_tensor_restarts(make_model: Callable, tensor: torch.Tensor, *, n_init: int = 4, epochs: int = 300,
                        seed: int | None = None, generator: torch.Generator | None = None, **fit_kwargs):
    """Best of several random starts, judged by the training loss alone.

    Hierarchical tensor models have poor local minima that depend on the random start (Multi-HNTF assigns a
    component to the wrong topic; Neural NCPD sits on a plateau); their training loss is higher, so a short
    screening run of each start finds them without looking at anything but the data. ``make_model(generator)``
    is called ``n_init`` times with one generator that advances, so every start differs; each model is
    trained by ``fit_tensor(model, tensor, epochs=epochs, **fit_kwargs)``.

    Args:
        make_model: ``generator -> model`` (a fresh model drawing its random start from the generator).
        n_init: number of starts.
        epochs: screening epochs per start.
        seed, generator: the generator passed to ``make_model`` (a fresh one seeded with ``seed``; at most one;
            neither passes None, so the models draw from torch's global RNG).
        **fit_kwargs: everything else :func:`fit_tensor` takes (data_mask, levels, lr, optimizer_kwargs, ...).

    Returns:
        ``(model, history)`` of the start with the lowest final loss; continue training it with
        :func:`fit_tensor` (with the same or other settings, e.g. releasing the first-layer factors).
    """
    fn = "fit_tensor_restarts"
    if not callable(make_model):
        raise TypeError(f"{fn}: make_model must be a callable generator -> model, got {type(make_model).__name__}")
    n_init = _checks.check_int(n_init, fn, "n_init", minimum=1)
    gen = _checks.check_generator(seed, generator, fn)  # None: the models draw from torch's global RNG
    best = None
    for _ in range(n_init):
        model = make_model(gen)
        history = fit_tensor(model, tensor, epochs=epochs, **fit_kwargs)
        loss = history["loss"][-1] if history.epochs else float("inf")
        if best is None or loss < best[0]:
            best = (loss, model, history)
    return best[1], best[2]
