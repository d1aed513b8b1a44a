"""The demos behind `python -m neuralnmf demo` (a hierarchical topic model) and `nnls-demo` (the operator)."""

from __future__ import annotations

import argparse
import os
import time

import torch

from ..datasets import make_hierarchical_corpus
from ..initialization import uniform
from ..metrics import hierarchy_recovery, least_squares_accuracy, match_topics, relative_error
from ..models import NeuralNMF
from ..ops import nnls
from ..plot import plot_hierarchy, plot_layer_heatmaps, plot_loss_curves
from ..topics import format_hierarchy_tree, hierarchy_from_dictionaries
from ..train import fit
from .outputs import figures_available


def topic_model_demo(args: argparse.Namespace) -> int:
    """Train a 3-layer Neural NMF on the generated toy corpus; report errors, hierarchy, accuracy; save figures."""
    device = torch.device(args.device)
    corpus = make_hierarchical_corpus(seed=args.seed, device=device)
    x, ranks = corpus.x, (9, 4, 2)
    print(f"neuralnmf demo: {x.shape[0]} documents x {x.shape[1]} words with 9 subtopics in 4 topics in 2 "
          f"supertopics (generated, seed {args.seed}); a {len(ranks)}-layer Neural NMF with ranks {ranks}\n")
    model = NeuralNMF(x.shape[1], ranks, dtype=x.dtype, device=device)  # the defaults: starts from the data in fit
    t0 = time.perf_counter()
    history = fit(model, x, epochs=args.epochs, lr=args.lr, progress=args.progress)
    print(f"trained {history.epochs} epochs in {time.perf_counter() - t0:.1f} s on {device}, with the defaults: every "
          "level starts at the flat NMF of its rank, and every level reconstructs the data (Adam, relative lr "
          f"{args.lr}, dictionaries kept >= 0)\n")

    with torch.no_grad():
        out = model(x)
        recons = [model.reconstruct(output=out, depth=d) for d in range(len(ranks))]
    print("layer  topics  relative error  classes readable from the codes  topics that are the classes")
    for d, k in enumerate(ranks):
        err = relative_error(x, recons[d]).item()
        acc = least_squares_accuracy(out.codes[d], corpus.labels[d]).item()
        matched = match_topics(out.codes[d], corpus.labels[d]).accuracy
        print(f"{d:5d}  {k:6d}  {err:14.4f}  {acc:31.3f}  {matched:27.3f}")
    print("(classes readable: accuracy of a least-squares classifier fitted on the codes, i.e. the codes hold the "
          "classes;\n topics that are the classes: each document goes to its largest topic, topics matched one to "
          "one with the true classes,\n i.e. each topic is one class. The second can be lower: a class can be "
          "spread over two topics and still be readable.)\n")

    As = [layer.A.detach() for layer in model.layers]
    learned = hierarchy_from_dictionaries(As)
    matchings = [match_topics(out.codes[d], corpus.labels[d]).assignment for d in range(len(ranks))]
    recovery = hierarchy_recovery(learned, corpus.hierarchy, matchings=matchings)
    print(f"\nhierarchy: {recovery.score:.0%} of the {sum(len(h) for h in corpus.hierarchy)} true parent links "
          f"recovered (per level {', '.join(f'{s:.0%}' for s in recovery.per_level)})")
    print(format_hierarchy_tree(As, corpus.vocabulary, n_words=4))

    if not figures_available():
        return 0
    os.makedirs(args.out, exist_ok=True)
    paths = [os.path.join(args.out, name) for name in ("layers.png", "hierarchy.png", "loss.png")]
    plot_layer_heatmaps(x, recons, titles=[f"layer {d}: rank {k}" for d, k in enumerate(ranks)], path=paths[0])
    plot_hierarchy(As, path=paths[1], vocabulary=corpus.vocabulary)
    plot_loss_curves(history, path=paths[2])
    print("figures: " + ", ".join(paths))
    return 0


def _planted_problem(N: int, k: int, M: int, noise: float, gen: torch.Generator, dtype, device):
    """Nonnegative topics A (N, k), sparse nonnegative codes S (k, M), X = A S + noise."""
    A = torch.rand(N, k, generator=gen, dtype=dtype)
    S = torch.rand(k, M, generator=gen, dtype=dtype) * (torch.rand(k, M, generator=gen) < 0.3)
    X = A @ S + noise * torch.rand(N, M, generator=gen, dtype=dtype)
    return X.to(device), A.to(device), S.to(device)


def _seconds(fn, repeat: int = 3) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def nnls_demo(args: argparse.Namespace) -> int:
    """Solve a planted NNLS problem, compare with scipy, and learn a dictionary by backpropagation."""
    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(args.seed)
    N, k, M = 500, 16, 2000
    X, A, S_true = _planted_problem(N, k, M, 0.01, gen, dtype, device)
    print(f"neuralnmf demo: X ({N} x {M}) = A ({N} x {k}) S + noise, {args.dtype} on {device}\n")

    t = _seconds(lambda: nnls(X, A))
    S = nnls(X, A)
    rel = (torch.linalg.norm(X - A @ S) / torch.linalg.norm(X)).item()
    y = A.T @ (A @ S - X)
    kkt = (y.clamp_max(0).abs().max() + (y * (S > 0)).abs().max()) / (A.norm() * X.norm(dim=0).max())
    agree = ((S > 1e-3) == (S_true > 1e-3)).double().mean().item()
    print(f"1. S = nnls(X, A): {t * 1e3:.1f} ms for {M} columns ({t / M * 1e6:.2f} us per column)")
    print(f"   relative error ||X - A S|| / ||X|| = {rel:.4f}; KKT residual {kkt.item():.1e}; "
          f"support agrees with the planted codes on {agree:.1%} of entries")
    t_mm = _seconds(lambda: A.T @ X)
    print(f"   the matmul A^T X alone takes {t_mm * 1e3:.1f} ms: the exact solve costs {t / t_mm:.1f} x a matmul")

    if device.type == "cpu":
        import numpy as np
        import scipy.optimize

        cols = 200
        An, Xn = A.double().numpy(), X.double().numpy()
        t0 = time.perf_counter()
        ref = np.stack([scipy.optimize.nnls(An, Xn[:, j])[0] for j in range(cols)], 1)
        t_scipy = (time.perf_counter() - t0) / cols * M
        diff = np.abs(ref - S[:, :cols].double().numpy()).max()
        print(f"   scipy.optimize.nnls column by column: {t_scipy * 1e3:.0f} ms (from {cols} columns), "
              f"{t_scipy / t:.0f} x slower; max |S - S_scipy| = {diff:.1e}")

    print("\n2. It is differentiable: learn A by gradient descent on ||X - A nnls(X, A)||^2, keeping A >= 0")
    A_fit = uniform(N, k, generator=gen, dtype=dtype, device=device).requires_grad_(True)
    opt = torch.optim.Adam([A_fit], lr=0.01)
    t0 = time.perf_counter()
    for step in range(args.steps + 1):
        loss = torch.linalg.norm(X - A_fit @ nnls(X, A_fit)) / torch.linalg.norm(X)
        if step % max(1, args.steps // 5) == 0:
            print(f"   step {step:4d}: relative error {loss.item():.4f}")
        if step == args.steps:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            A_fit.clamp_(min=0)
    print(f"   {args.steps} steps (forward + backward) in {time.perf_counter() - t0:.2f} s; "
          f"min(A) = {A_fit.min().item():.2f}")
    return 0
