"""A one-minute first check on a GPU before the long runs (benchmarks/gpu_session.sh): every rank class of the
CUDA kernels against the CPU kernel on small problems, forward and backward, float32 and float64."""

import sys
import time

import torch

from neuralnmf import nnls

failures = 0
for dtype in (torch.float64, torch.float32):
    for k in (3, 12, 30, 60, 100, 200, 300):
        t0 = time.perf_counter()
        g = torch.Generator().manual_seed(k)
        N, M = 2 * k + 20, 3000
        A = (torch.rand(N, k, generator=g, dtype=torch.float64) + 0.2 * torch.eye(N, k, dtype=torch.float64)).to(dtype)
        X = torch.rand(N, M, generator=g, dtype=torch.float64).to(dtype)
        W = torch.randn(k, M, generator=g, dtype=torch.float64).to(dtype)
        out = []
        for device in ("cpu", "cuda"):
            Xd, Ad = X.to(device), A.detach().to(device, copy=True).requires_grad_(True)
            S, info = nnls(Xd, Ad, return_info=True)
            (S * W.to(device)).sum().backward()
            out.append((S.detach().cpu().double(), info.cpu(), Ad.grad.cpu().double()))
        (S0, i0, g0), (S1, i1, g1) = out
        ds = ((S1 - S0).abs().max() / S0.abs().max().clamp_min(1e-30)).item()
        dg = ((g1 - g0).abs().max() / g0.abs().max().clamp_min(1e-30)).item()
        same_info = bool(torch.equal(i0, i1))
        tol = 1e-8 if dtype == torch.float64 else 1e-3
        ok = ds <= tol and (dg <= tol or dtype == torch.float32) and (same_info or dtype == torch.float32)
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {str(dtype)[6:]} k={k}: S rel diff {ds:.1e}, dA rel diff {dg:.1e}, "
              f"info equal {same_info}, {time.perf_counter() - t0:.1f} s", flush=True)
sys.exit(1 if failures else 0)
