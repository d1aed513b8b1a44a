"""Command line: `python -m neuralnmf demo` shows the NNLS operator at work in a few seconds."""

from __future__ import annotations

import argparse
import time

import torch

from .ops import nnls


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


def demo(args: argparse.Namespace) -> int:
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
    A_fit = torch.rand(N, k, generator=gen, dtype=dtype).to(device).requires_grad_(True)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m neuralnmf", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="solve a planted NNLS problem, compare with scipy, and learn A by backprop")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default: cpu)")
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    p.add_argument("--steps", type=int, default=100, help="gradient steps in part 2 (default: 100)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=demo)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)
