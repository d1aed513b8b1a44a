"""The NNLS operator in five moves: solve, check, batch, warm-start, learn a dictionary.

Run: python examples/nnls_basics.py
"""

import torch

import neuralnmf

torch.manual_seed(0)
N, k, M = 200, 8, 1000

# 1. Solve: X (N, M) with columns as samples, A (N, k) with columns as topics -> S (k, M), S >= 0.
A = torch.rand(N, k, dtype=torch.float64)
S_true = torch.rand(k, M, dtype=torch.float64) * (torch.rand(k, M) < 0.4)
X = A @ S_true + 0.01 * torch.rand(N, M, dtype=torch.float64)
S = neuralnmf.nnls(X, A)
print("relative error:", (torch.linalg.norm(X - A @ S) / torch.linalg.norm(X)).item())

# 2. Check optimality: y = A^T (A S - X) is >= 0, and 0 wherever S > 0.
y = A.T @ (A @ S - X)
print("min y:", y.min().item(), " max |y| on the support:", (y * (S > 0)).abs().max().item())

# 3. Batch: leading dimensions broadcast, like torch.matmul. Three datasets, one dictionary.
Xb = torch.stack([X, 2 * X, X + 0.1])
print("batched S:", tuple(neuralnmf.nnls(Xb, A).shape))

# 4. Warm start from a previous solution (same answer, less work) and per-column status.
S2, info = neuralnmf.nnls(X + 1e-3, A, init=S, return_info=True)
counts = torch.bincount(info.flatten() + 1, minlength=3).tolist()  # one count for each of the statuses -1, 0, 1
print(f"warm start: {counts[1]} columns solved by pivoting, {counts[2]} by the Lawson-Hanson fallback, "
      f"{counts[0]} at the iteration bound")

# 5. Learn a dictionary by backpropagating through the solve, with a nonnegativity projection.
A_fit = torch.rand(N, k, dtype=torch.float64, requires_grad=True)
opt = torch.optim.Adam([A_fit], lr=0.02)
for step in range(51):
    loss = torch.linalg.norm(X - A_fit @ neuralnmf.nnls(X, A_fit)) / torch.linalg.norm(X)
    opt.zero_grad()
    loss.backward()
    opt.step()
    with torch.no_grad():
        A_fit.clamp_(min=0)
    if step % 10 == 0:
        print(f"step {step:3d}  relative error {loss.item():.4f}")
