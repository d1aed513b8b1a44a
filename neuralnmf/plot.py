"""Figures: data and reconstructions as heatmaps, loss curves, and the topic hierarchy as a layered graph.

The figures are built on ``matplotlib.figure.Figure`` directly, without pyplot: no global state, no GUI backend
and no display are needed (safe on headless machines and in tests), and figures are garbage-collected like any
object. Every function returns its Figure (Jupyter shows it when it is the cell's value) and saves it when given a
``path`` (format from the suffix; PNG when there is none).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from ._optional import require
from .topics import hierarchy_from_dictionaries, layer_topics, top_words

__all__ = ["plot_layer_heatmaps", "plot_loss_curves", "plot_hierarchy", "plot_rank_selection"]


if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(**kwargs) -> Figure:
    """A new matplotlib Figure; matplotlib is imported here, an optional dependency (the extra "plot")."""
    return require("matplotlib.figure", "plot", "neuralnmf.plot").Figure(**kwargs)


def _host(t, name: str) -> np.ndarray:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {t.dtype}")
    return t.detach().cpu().double().numpy()  # plotting needs host data


def _save(fig: Figure, path) -> None:
    if path is not None:
        path = os.fspath(path)
        fig.savefig(path, format=None if os.path.splitext(path)[1] else "png", dpi=110)


def plot_layer_heatmaps(
    x: torch.Tensor,
    reconstructions,
    titles: Sequence[str] | None = None,
    path: str | os.PathLike | None = None,
    *,
    transpose: bool = False,
    cmap: str = "viridis",
    colorbar_label: str = "entry value (data and reconstructions)",
) -> Figure:
    """Heatmaps of the data and of its reconstruction at every layer, side by side on one color scale.

    Args:
        x: (samples, features) data.
        reconstructions: one (samples, features) tensor or a list of them, e.g. A_0 ⋯ A_l S_l for l = 0 .. L
            (``model.reconstruct(x, depth=l)``).
        titles: one title per panel (1 + number of reconstructions), or one per reconstruction (then the data panel
            is titled "data X"). Default: "data X" and "reconstruction at layer l" with its relative error
            ||x - x_hat|| / ||x||.
        path: save the figure there.
        transpose: draw features x samples (the papers' words x documents orientation).
        cmap: matplotlib colormap name.
        colorbar_label: what the shared color scale measures.
    """
    if isinstance(reconstructions, torch.Tensor):
        reconstructions = [reconstructions]
    if isinstance(reconstructions, (str, bytes)) or not isinstance(reconstructions, Sequence) or not reconstructions:
        raise TypeError("reconstructions must be a tensor or a non-empty list of tensors")
    X = _host(x, "x")
    if X.ndim != 2:
        raise ValueError(f"x must have shape (samples, features), got {X.shape}")
    recs = []
    for l, r in enumerate(reconstructions):
        R = _host(r, f"reconstructions[{l}]")
        if R.shape != X.shape:
            raise ValueError(f"reconstructions[{l}] has shape {R.shape}, expected x's shape {X.shape}")
        recs.append(R)
    n = 1 + len(recs)
    if titles is None:
        norm = np.linalg.norm(X)
        chain = lambda l: "A_0" if l == 0 else "A_0 A_1" if l == 1 else rf"A_0\cdots A_{{{l}}}"  # noqa: E731
        titles = ["data X"] + [
            f"reconstruction at layer {l}: ${chain(l)} S_{{{l}}}$\nrel. error {np.linalg.norm(X - R) / norm:.4f}"
            for l, R in enumerate(recs)
        ]
    else:
        titles = [str(t) for t in titles]
        if len(titles) == len(recs):
            titles = ["data X", *titles]
        if len(titles) != n:
            raise ValueError(f"titles must have {n} (or {n - 1}) entries, got {len(titles)}")
    panels = [X, *recs]
    if transpose:
        panels = [p.T for p in panels]
    finite = np.concatenate([p[np.isfinite(p)].ravel() for p in panels])
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)

    fig = _figure(figsize=(3.2 * n + 0.8, 3.6), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    im = None
    for ax, P, title in zip(axes, panels, titles):
        im = ax.imshow(P, aspect="auto", interpolation="nearest", cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("samples" if transpose else "features", fontsize=8)
        ax.set_ylabel("features" if transpose else "samples", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.colorbar(im, ax=list(axes), shrink=0.9, label=colorbar_label)
    fig.suptitle("the data and its reconstruction by each layer (one color scale)", fontsize=10)
    _save(fig, path)
    return fig


def _series(history) -> dict[str, list[float]]:
    if isinstance(history, Mapping):
        items = history.items()
    elif isinstance(history, Sequence) and not isinstance(history, (str, bytes)) and all(
        isinstance(r, Mapping) for r in history
    ):  # a list of per-epoch records -> columns
        keys: dict[str, None] = {}
        for r in history:
            keys.update(dict.fromkeys(r))
        items = [(k, [r.get(k, float("nan")) for r in history]) for k in keys]
    else:
        raise TypeError("history must be a dict {name: list of numbers} or a list of per-epoch dicts")
    out = {}
    for k, v in items:
        if isinstance(v, torch.Tensor):
            v = v.detach().cpu().reshape(-1).tolist()
        if isinstance(v, (str, bytes)) or not isinstance(v, Sequence):
            continue
        try:
            vals = [float(e) for e in v]
        except (TypeError, ValueError):
            continue  # not a scalar series (e.g. a list of lists): not a curve
        out[str(k)] = vals
    return out


def plot_loss_curves(
    history,
    path: str | os.PathLike | None = None,
    logy: bool = True,
    *,
    keys: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Training curves, one line per series, against the epoch (entry index).

    Args:
        history: {name: list of numbers (or 0-d tensors)}, or a list of per-epoch dicts. Entries that are not
            scalar series are skipped unless named in ``keys``.
        path: save the figure there.
        logy: logarithmic y axis; falls back to linear when a plotted value is <= 0.
        keys: the series to plot (default: all scalar series).
        title: figure title.
    """
    series = _series(history)
    if keys is not None:
        missing = [k for k in keys if k not in series]
        if missing:
            raise ValueError(f"keys: {missing} are not scalar series of history (available: {sorted(series)})")
        series = {k: series[k] for k in keys}
    series = {k: v for k, v in series.items() if len(v)}
    if not series:
        raise ValueError("history has no non-empty series of numbers to plot")
    fig = _figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    total = series.get("loss")
    for name, vals in series.items():
        marker = "." if len(vals) < 30 else None
        if name == "loss":  # the total: a wide pale band under the terms, visible even where one term equals it
            same = [k for k, v in series.items() if k != "loss" and np.allclose(v, total, rtol=1e-12, atol=0)]
            label = "loss (total" + (f" = {same[0]})" if same else ")")
            ax.plot(np.arange(len(vals)), vals, label=label, color="0.55", lw=5, alpha=0.45, zorder=1, marker=marker)
        else:
            ax.plot(np.arange(len(vals)), vals, label=name, lw=1.4, zorder=2, marker=marker)
    allv = np.array([v for vals in series.values() for v in vals], dtype=float)
    allv = allv[np.isfinite(allv)]
    if logy and allv.size and (allv > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("value")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    _save(fig, path)
    return fig


def plot_hierarchy(
    As,
    labels: Sequence[Sequence[str]] | None = None,
    path: str | os.PathLike | None = None,
    *,
    vocabulary: Sequence[str] | None = None,
    n_words: int = 3,
    min_weight: float = 0.05,
) -> Figure:
    """The topic hierarchy of a chain of dictionaries [A_0, ..., A_L] as a layered graph.

    Level l's topics are a row of nodes (level 0, the finest, at the bottom). Topic i of level l - 1 is joined to
    topic j of level l by an edge whose width and opacity grow with the normalised weight A_l[i, j] / sum_j' A_l[i, j']
    (:func:`neuralnmf.topics.hierarchy_from_dictionaries`); edges under ``min_weight`` are not drawn. Nodes are
    ordered under their dominant parent so that a clean tree draws without crossings.

    Args:
        As: the dictionaries, A_0 (features, k_0), A_l (k_(l-1), k_l).
        labels: optional node names: one list of k_l strings per level l = 0 .. L (default ``L{l}.T{t}``).
        path: save the figure there.
        vocabulary: add each topic's ``n_words`` top words (columns of A_0 ⋯ A_l) under its name.
        n_words: words per node when a vocabulary is given.
        min_weight: smallest normalised weight drawn as an edge.
    """
    hier = hierarchy_from_dictionaries(As)
    topics = layer_topics(As)
    sizes = [T.shape[1] for T in topics]
    L = len(sizes) - 1
    if labels is not None:
        if isinstance(labels, (str, bytes)) or len(labels) != L + 1:
            raise ValueError(f"labels must hold one list of names per level ({L + 1} levels)")
        for l, names in enumerate(labels):
            if len(names) != sizes[l]:
                raise ValueError(f"labels[{l}] has {len(names)} names but level {l} has {sizes[l]} topics")
    words = [top_words(T, vocabulary, n_words) for T in topics] if vocabulary is not None else None
    parents = [p.tolist() for p in hier.parents]
    shares = [w.cpu().double().numpy() for w in hier.weights]

    # order nodes top-down: children under their dominant parent, heaviest link first, orphans last
    order = [None] * (L + 1)
    order[L] = list(range(sizes[L]))
    for l in range(L, 0, -1):
        rank = {t: r for r, t in enumerate(order[l])}
        key = lambda i: (rank.get(parents[l - 1][i], math.inf), -shares[l - 1][i].max(initial=0.0), i)  # noqa: E731
        order[l - 1] = sorted(range(sizes[l - 1]), key=key)
    pos = [{t: (r + 0.5) / max(sizes[l], 1) for r, t in enumerate(order[l])} for l in range(L + 1)]

    lines_per_node = 1 + (n_words if words is not None else 0)
    fig = _figure(figsize=(max(6.0, 1.25 * max(sizes)), (1.1 + 0.16 * lines_per_node) * (L + 1) + 0.8),
                 layout="constrained")
    ax = fig.add_subplot()
    boxes = {}
    for l in range(L + 1):  # every node is its label in a box; edges are clipped to the boxes, so none crosses text
        for t in range(sizes[l]):
            name = labels[l][t] if labels is not None else f"L{l}.T{t}"
            text = str(name)
            if words is not None and words[l][t]:
                text += "\n" + "\n".join(w for w, _ in words[l][t])
            boxes[l, t] = ax.text(pos[l][t], l, text, ha="center", va="center", fontsize=7, zorder=3,
                                  bbox=dict(boxstyle="round,pad=0.3", fc="white", ec="0.3", lw=0.8))
    for l in range(1, L + 1):
        W = shares[l - 1]
        for i in range(sizes[l - 1]):
            for j in range(sizes[l]):
                w = float(W[i, j])
                if w >= min_weight and w > 0:
                    ax.annotate("", xy=(pos[l][j], l), xytext=(pos[l - 1][i], l - 1), zorder=1,
                                arrowprops=dict(arrowstyle="-", color="tab:blue", lw=0.5 + 4.0 * w,
                                                alpha=0.25 + 0.75 * w, shrinkA=0, shrinkB=0,
                                                patchA=boxes[l - 1, i].get_bbox_patch(),
                                                patchB=boxes[l, j].get_bbox_patch()))
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.5, L + 0.5)
    ax.set_yticks(range(L + 1), [f"level {l}" for l in range(L + 1)])
    ax.set_xticks([])
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_title("topic hierarchy: level 0 = finest topics; edge width = share of the child's weight that goes to "
                 "the parent", fontsize=9)
    _save(fig, path)
    return fig


def plot_rank_selection(selection, path=None) -> Figure:
    """The criteria of :func:`neuralnmf.select_ranks`: held-out and fit error (left axis) and stability (right
    axis) against the candidate rank, one panel per level, the chosen rank marked."""
    levels = selection.levels
    fig = _figure(figsize=(5.0 * len(levels), 3.6), layout="constrained")
    for i, c in enumerate(levels):
        ax = fig.add_subplot(1, len(levels), i + 1)
        ax.plot(c.candidates, c.heldout_error, "o-", ms=3, color="C0", label="held-out error")
        ax.plot(c.candidates, c.fit_error, "s--", ms=3, color="C2", label="fit error")
        ax.set_xlabel("rank")
        ax.set_ylabel("relative squared error")
        ax.axvline(c.chosen, color="C3", lw=1)
        ax.set_title(f"level {c.level}: rank {c.chosen}" + ("" if c.agree else
                                                             f" (held-out {c.by_heldout}, stability {c.by_stability})"))
        right = ax.twinx()
        right.plot(c.candidates, c.stability, "^-", ms=3, color="C1", label="stability")
        right.axhline(selection.settings.get("threshold", 0.8), color="C1", lw=0.8, ls=":")
        right.set_ylim(-1.05, 1.05)
        right.set_ylabel("stability (smallest silhouette)")
        if i == 0:
            handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
            ax.legend(handles, [h.get_label() for h in handles], fontsize=7, loc="upper right")
    _save(fig, path)
    return fig
