"""Benchmark of the ``neuralnmf.nnls`` CPU operator against the matmul floor and against peer solvers.

Run from the repository root:

    python benchmarks/bench_nnls.py                # full run (about 5-15 minutes on 2 cores)
    python benchmarks/bench_nnls.py --quick        # smoke run, well under a minute
    python benchmarks/bench_nnls.py --skip-peers   # no scipy / NeuralNMF==1.0.0 / pure-torch reference
    python benchmarks/bench_nnls.py --only 3 4     # just some sections (e.g. to re-run one disturbed by load)
    python benchmarks/bench_nnls.py --only 1 5 --threads 1   # the issue-18 tables, on one thread
    python benchmarks/bench_nnls.py --only 1 --threads 1 --skip-peers --ks 32 64   # some ranks of section 1

On a shared machine, other processes distort the timings: each timed row reports how long our threads waited
for a CPU during its best repeats ("runq wait", from /proc/self/task/*/schedstat; '!' marks disturbed rows), and
each section the share of the cores other processes used while it ran.

Sections (every headline figure is a ratio measured side by side in one run, so machine drift cancels):

1. Forward time vs the matmul floor ``A.T @ X``; speedup over a per-column ``scipy.optimize.nnls`` loop and
   over the pure-torch reference ``neuralnmf._reference.nnls_reference`` (both timed on a column subset and
   extrapolated linearly to all M columns).
2. Forward+backward vs ``LsqNonnegF`` from the paper authors' PyPI package ``NeuralNMF==1.0.0``.
3. Scaling of the forward time with the number of columns M.
4. Peak extra resident memory of the forward (and forward+backward), each in a fresh process.
5. A real corpus: the forward on the tf-idf of all 18846 documents of 20 Newsgroups (``../shared/data``) at
   k = 20, 50, 100, 200, against the sparse product x A it contains plus the k x k Gram A^T A, and against one
   ``sklearn.decomposition.NMF.transform`` (coordinate descent, its defaults) with the same dictionary.

Data: A = torch.rand(N, k), X = torch.rand(N, M) (uniform nonnegative entries, like topic-model data),
fixed seed. Timings are the minimum over repeats after a warm-up call, with time.perf_counter, using
torch's default thread count.

Installing the NeuralNMF==1.0.0 peer: it is the ``bench`` extra of this project (``pip install
--no-build-isolation -e ".[bench]"``; our distribution is torch-neuralnmf, theirs NeuralNMF, import names
``neuralnmf`` and ``NeuralNMF``). A copy installed into a folder of its own (``pip install --no-deps --target DIR
NeuralNMF==1.0.0 fnnls==1.0.0``, as before the rename) is found with ``--peer-dir DIR`` (default
~/.cache/neuralnmf-bench/peers). Only the file ``NeuralNMF/lsqnonneg_module.py`` is loaded.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import multiprocessing
import os
import resource
import sys
import time
from dataclasses import dataclass

import torch

import neuralnmf
from neuralnmf._reference import nnls_reference

from _harness import (best_runs, busy_machine_s, dtype_name, fmt_seconds, md_table, other_load, print_machine, say,
                      say_table)

SEED = 0
DEFAULT_PEER_DIR = os.path.expanduser("~/.cache/neuralnmf-bench/peers")
MIN_TOTAL_S = 3.0  # seconds of repeats per timing (set from the Config in main)
RETRIES = 1  # extra attempts at a row whose best repeats other processes disturbed (set from the Config in main)
PEER_BUDGET_S = 10.0  # seconds per NeuralNMF call in the grid; beyond that, a column subset + extrapolation


@dataclass
class Config:
    """What to run: full grid or the --quick smoke grid."""

    dtypes: tuple
    ks: tuple
    peer_max_k: int  # ranks above: no scipy / reference / NeuralNMF timings (minutes per row)
    Ns: tuple
    M: int
    scipy_cols: int
    ref_cols: int
    headline: tuple  # (N, M, k) of the forward+backward comparison with NeuralNMF
    scaling_Ms: tuple
    memory_sizes: tuple  # (N, M, k) in float64
    peer_budget_s: float
    min_total_s: float  # seconds of repeats behind each of our timings
    retries: int  # extra attempts at a disturbed row (sections 1, 2 headline, 3)


FULL = Config(
    dtypes=(torch.float64, torch.float32),
    ks=(8, 32, 64, 128, 256),
    peer_max_k=64,
    Ns=(500, 2000),
    M=20000,
    scipy_cols=500,
    ref_cols=2000,
    headline=(500, 2000, 16),
    scaling_Ms=(1_000, 10_000, 100_000, 1_000_000),
    memory_sizes=((2000, 20000, 32), (500, 1_000_000, 32)),
    peer_budget_s=PEER_BUDGET_S,
    min_total_s=MIN_TOTAL_S,
    retries=RETRIES,
)

QUICK = Config(
    dtypes=(torch.float64, torch.float32),
    ks=(8, 32),
    peer_max_k=64,
    Ns=(500,),
    M=4000,
    scipy_cols=200,
    ref_cols=500,
    headline=(500, 200, 16),
    scaling_Ms=(1_000, 10_000, 100_000),
    memory_sizes=((500, 20000, 32),),
    peer_budget_s=1.0,
    min_total_s=0.3,
    retries=0,
)


# --- helpers ------------------------------------------------------------------------------------------------


def make_problem(N: int, M: int, k: int, dtype: torch.dtype, seed: int = SEED):
    """A (N, k) and X (N, M), uniform on [0, 1), from a fixed seed."""
    g = torch.Generator().manual_seed(seed)
    A = torch.rand(N, k, dtype=dtype, generator=g)
    X = torch.rand(N, M, dtype=dtype, generator=g)
    return A, X


def make_grad(k: int, M: int, dtype: torch.dtype, seed: int = SEED + 1):
    """A fixed upstream gradient dL/dS (k, M)."""
    return torch.randn(k, M, dtype=dtype, generator=torch.Generator().manual_seed(seed))


class Contention:
    """How much the kept (minimum) timings were disturbed: the worst ratio, over the timings of one table row, of
    the time our threads waited for a CPU to the wall time. About 0 on a quiet machine; above DISTURBED, another
    process held a core during even the best repeat, and the row's times are inflated."""

    DISTURBED = 0.10
    worst = 0.0
    last = 0.0  # the worst ratio of the row last taken

    @classmethod
    def record(cls, waited_s: float, elapsed_s: float) -> None:
        cls.worst = max(cls.worst, waited_s / elapsed_s)

    @classmethod
    def take(cls) -> str:
        """Cell for the row just measured ('2%', or '35% !' when disturbed); starts the next row."""
        worst, cls.worst = cls.worst, 0.0
        cls.last = worst
        return f"{100 * worst:.0f}%" + (" !" if worst > cls.DISTURBED else "")


CONTENTION_NOTE = (
    "'runq wait': time our threads waited for a CPU during the kept repeats, as a share of their wall time (worst "
    f"timing of the row); '!' marks rows above {100 * Contention.DISTURBED:.0f}%, whose times other processes "
    "inflated."
)


def retry_disturbed(build_row, retries: int | None = None, pause_s: float = 5.0):
    """build_row() (which ends with Contention.take()); while Contention flags it, pause and build it again, up
    to `retries` more times (default: the run's Config.retries). Keeps the least disturbed attempt."""
    retries = RETRIES if retries is None else retries
    best = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(pause_s)
        row = build_row()
        if best is None or Contention.last < best[0]:
            best = (Contention.last, row)
        if Contention.last <= Contention.DISTURBED:
            break
    return best[1]


def timed(fns, min_reps: int = 3, max_reps: int = 200, min_total_s: float | None = None, warmup: int = 1):
    """Seconds of the fastest call of each f() in fns by _harness.best_runs (interleaved repeats), spending at
    least min_total_s seconds (default: the run's Config.min_total_s); the run-queue wait of each kept call goes
    to Contention."""
    best = best_runs(fns, min_reps=min_reps, max_reps=max_reps,
                     min_total_s=MIN_TOTAL_S if min_total_s is None else min_total_s, warmup=warmup)
    for elapsed, waited in best:
        Contention.record(waited, elapsed)
    return [elapsed for elapsed, _ in best]


def timed_one(fn, **kwargs) -> float:
    return timed([fn], **kwargs)[0]


def _busy_self_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class OtherLoad:
    """Share of the machine's cores that OTHER processes used while a section ran: timings of a section with a
    large share are distorted (on 2 cores, one busy neighbour preempts one of our two threads)."""

    def __enter__(self):
        self.t0, self.machine0, self.self0 = time.perf_counter(), busy_machine_s(), _busy_self_s()
        return self

    def __exit__(self, *exc):
        machine1 = busy_machine_s()
        if self.machine0 is None or machine1 is None:
            return False
        wall = time.perf_counter() - self.t0
        share = other_load(machine1 - self.machine0, _busy_self_s() - self.self0, wall)
        say(f"_Other processes used {100 * share:.0f}% of the {os.cpu_count()} cores during this section "
            f"({wall:.0f} s); 1-minute load average now {os.getloadavg()[0]:.2f}._")
        say()
        return False


# --- peers --------------------------------------------------------------------------------------------------


def scipy_nnls_columns(X: torch.Tensor, A: torch.Tensor, ncols: int):
    """S[:, :ncols] by a per-column scipy.optimize.nnls loop (float64)."""
    from scipy.optimize import nnls as scipy_nnls

    An, Xn = A.double().numpy(), X[:, :ncols].double().numpy()
    return torch.stack([torch.from_numpy(scipy_nnls(An, Xn[:, j])[0]) for j in range(ncols)], dim=1)


def load_lsqnonneg(peer_dir: str):
    """LsqNonnegF from NeuralNMF==1.0.0, loading only NeuralNMF/lsqnonneg_module.py. Raises ImportError."""
    if os.path.isdir(peer_dir) and peer_dir not in sys.path:
        sys.path.append(peer_dir)  # appended: it can never shadow this project's modules
    spec = importlib.util.find_spec("NeuralNMF")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"NeuralNMF is not importable (looked on sys.path and in {peer_dir})")
    path = os.path.join(list(spec.submodule_search_locations)[0], "lsqnonneg_module.py")
    mod_spec = importlib.util.spec_from_file_location("_neuralnmf_peer_lsqnonneg", path)
    if mod_spec is None or not os.path.exists(path):
        raise ImportError(f"NeuralNMF found but {path} is missing")
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)  # imports numpy, scipy, fnnls: ImportError if fnnls is missing
    return module.LsqNonnegF


def forward_backward(fn, X: torch.Tensor, A: torch.Tensor, G: torch.Tensor, grad_X: bool):
    """S = fn(X, A), then S.backward(G); returns (S, dA, dX)."""
    A = A.detach().clone().requires_grad_(True)
    X = X.detach().clone().requires_grad_(grad_X)
    S = fn(X, A)
    S.backward(G)
    return S.detach(), A.grad, X.grad


def ours(X, A):
    return neuralnmf.nnls(X, A)


def max_abs_diff(a, b) -> str:
    if a is None or b is None:
        return "-"
    return f"{(a - b).abs().max().item():.1e}"


# --- section 1: forward vs matmul floor and peers -----------------------------------------------------------


def forward_row(N: int, M: int, k: int, dtype: torch.dtype, cfg: Config, skip_peers: bool):
    A, X = make_problem(N, M, k, dtype)
    t_ours, t_mm = timed([lambda: neuralnmf.nnls(X, A), lambda: A.T @ X])
    S = neuralnmf.nnls(X, A)
    supp = (S > 0).sum(0).double().mean().item()
    row = [dtype_name(dtype), k, N, M, fmt_seconds(t_ours), fmt_seconds(t_mm), f"{t_ours / t_mm:.2f}",
           f"{supp:.1f}"]
    if skip_peers:
        return row + [Contention.take()]
    if k > cfg.peer_max_k:
        return row + ["-", "-", "-", "-", Contention.take()]
    nr = min(cfg.ref_cols, M)
    t_ref = timed_one(lambda: nnls_reference(X[:, :nr], A), min_reps=2, max_reps=2, min_total_s=0) * M / nr
    d_ref = max_abs_diff(nnls_reference(X[:, :nr], A)[0], S[:, :nr])
    row += [f"{t_ref / t_ours:.0f}x", d_ref]
    if dtype == torch.float64:
        ns = min(cfg.scipy_cols, M)
        t_sp = timed_one(lambda: scipy_nnls_columns(X, A, ns), min_reps=2, max_reps=2, min_total_s=0) * M / ns
        d_sp = max_abs_diff(scipy_nnls_columns(X, A, ns), S[:, :ns])
        row += [f"{t_sp / t_ours:.0f}x", d_sp]
    else:
        row += ["n/a (float64 only)", "-"]
    return row + [Contention.take()]


def section_forward(cfg: Config, skip_peers: bool) -> None:
    say("## 1. Forward: ours vs the matmul floor A.T @ X, and vs slow peers")
    say()
    headers = ["dtype", "k", "N", "M", "ours", "A.T@X", "ours/matmul", "mean nnz/col"]
    if not skip_peers:
        headers += [
            f"reference/ours (extrap. from {cfg.ref_cols} cols)",
            "max|dS| vs ref",
            f"scipy/ours (extrap. from {cfg.scipy_cols} cols)",
            "max|dS| vs scipy",
        ]
    headers.append("runq wait")
    Contention.take()
    rows = [
        retry_disturbed(lambda: forward_row(N, cfg.M, k, dt, cfg, skip_peers))
        for dt in cfg.dtypes for k in cfg.ks for N in cfg.Ns
    ]
    say_table(headers, rows)
    if not skip_peers:
        say(
            "reference = neuralnmf._reference.nnls_reference (pure torch, float64 inside); scipy = a Python loop "
            "of scipy.optimize.nnls, one column at a time. Both timed on the first columns only and "
            f"extrapolated linearly to M (marked 'extrap.'); max|dS| is on those columns. Above k = {cfg.peer_max_k} "
            "the peers are not timed ('-')."
        )
        say()
    say(CONTENTION_NOTE)
    say()


# --- section 2: forward+backward vs NeuralNMF==1.0.0 --------------------------------------------------------


def peer_columns(LsqNonnegF, N: int, k: int, M: int, budget_s: float) -> int:
    """How many columns NeuralNMF does in about budget_s (fwd+bwd, dA and dX), from a warmed-up 20-column probe."""
    A, X = make_problem(N, 20, k, torch.float64)
    G = make_grad(k, 20, torch.float64)
    per_col = timed_one(lambda: forward_backward(LsqNonnegF.apply, X, A, G, True), min_reps=2, max_reps=2,
                        min_total_s=0) / 20
    return max(20, min(M, int(budget_s / per_col)))


def headline_rows(LsqNonnegF, N: int, M: int, k: int):
    """Forward only, fwd+bwd (dA), fwd+bwd (dA, dX) on the full problem, with agreement of S, dA, dX."""
    A, X = make_problem(N, M, k, torch.float64)
    G = make_grad(k, M, torch.float64)
    rows = []
    cases = [("forward", None), ("fwd+bwd (dA)", False), ("fwd+bwd (dA, dX)", True)]
    for name, grad_X in cases:
        if grad_X is None:
            run_ours = lambda: neuralnmf.nnls(X, A)  # noqa: E731
            run_theirs = lambda: LsqNonnegF.apply(X, A)  # noqa: E731
        else:
            run_ours = lambda g=grad_X: forward_backward(ours, X, A, G, g)  # noqa: E731
            run_theirs = lambda g=grad_X: forward_backward(LsqNonnegF.apply, X, A, G, g)  # noqa: E731

        def row(run_ours=run_ours, run_theirs=run_theirs, name=name):
            t_theirs = timed_one(run_theirs, min_reps=3, max_reps=3, min_total_s=0)
            t_ours = timed_one(run_ours)
            return [name, N, M, k, fmt_seconds(t_ours), fmt_seconds(t_theirs), f"{t_theirs / t_ours:.0f}x",
                    Contention.take()]

        rows.append(retry_disturbed(row))
    S_o, dA_o, dX_o = forward_backward(ours, X, A, G, True)
    S_t, dA_t, dX_t = forward_backward(LsqNonnegF.apply, X, A, G, True)
    agree = [max_abs_diff(S_o, S_t), max_abs_diff(dA_o, dA_t), f"{dA_o.abs().max().item():.2f}", max_abs_diff(dX_o, dX_t)]
    degenerate = int(((S_o > 0) != (S_t > 0)).any(0).sum())
    return rows, agree, degenerate


def grid_row(LsqNonnegF, N: int, M: int, k: int, budget_s: float):
    """Fwd+bwd (dA, dX): ours on all M columns; NeuralNMF on the first columns it does in about budget_s,
    best of 2 calls, extrapolated linearly to M when that is fewer than M."""
    A, X = make_problem(N, M, k, torch.float64)
    G = make_grad(k, M, torch.float64)
    t_ours = timed_one(lambda: forward_backward(ours, X, A, G, True))
    m = peer_columns(LsqNonnegF, N, k, M, budget_s)
    Xs, Gs = X[:, :m].contiguous(), G[:, :m].contiguous()
    run_theirs = lambda: forward_backward(LsqNonnegF.apply, Xs, A, Gs, True)  # noqa: E731
    t_theirs = timed_one(run_theirs, min_reps=2, max_reps=2, min_total_s=0, warmup=0) * M / m
    S_t, dA_t, dX_t = run_theirs()
    S_o, dA_o, dX_o = forward_backward(ours, Xs, A, Gs, True)
    mark = f"extrap. from {m} cols" if m < M else "all columns"
    return [
        N, M, k, fmt_seconds(t_ours), fmt_seconds(t_theirs), mark, f"{t_theirs / t_ours:.0f}x",
        max_abs_diff(S_o, S_t), max_abs_diff(dA_o, dA_t), max_abs_diff(dX_o, dX_t), Contention.take(),
    ]


def section_peer(cfg: Config, peer_dir: str) -> None:
    say("## 2. Forward+backward: ours vs NeuralNMF==1.0.0 LsqNonnegF (float64)")
    say()
    try:
        LsqNonnegF = load_lsqnonneg(peer_dir)
    except ImportError as exc:
        say(f"SKIPPED: NeuralNMF==1.0.0 is not available ({exc}). Install it with")
        say("`pip install --no-build-isolation -e \".[bench]\"` (or into a folder of its own: "
            f"`pip install --no-deps --target {peer_dir} NeuralNMF==1.0.0 fnnls==1.0.0`)")
        say()
        return
    say(
        "LsqNonnegF.apply(X, A) with X (N, M), columns as samples, A (N, k), float64 (it converts to numpy and "
        "returns float64): forward is a Python loop of scipy.optimize.nnls per column, backward a per-column "
        "pinv of A restricted to the support. Upstream gradient dL/dS: a fixed randn (k, M)."
    )
    say()
    N, M, k = cfg.headline
    Contention.take()
    rows, agree, degenerate = headline_rows(LsqNonnegF, N, M, k)
    say(f"### Headline: N={N}, M={M}, k={k} (all columns, nothing extrapolated)")
    say()
    say_table(["op", "N", "M", "k", "ours", "NeuralNMF", "speedup", "runq wait"], rows)
    say_table(["max|S_ours - S_theirs|", "max|dA diff|", "max|dA|", "max|dX diff|"], [agree])
    say(f"Columns whose support differs between the two solvers: {degenerate} of {M}.")
    say()
    say(f"### Grid, fwd+bwd (dA, dX); NeuralNMF: best of 2 calls of at most ~{cfg.peer_budget_s:.0f} s of columns each")
    say()
    grid = [grid_row(LsqNonnegF, N, cfg.M, k, cfg.peer_budget_s) for k in cfg.ks if k <= cfg.peer_max_k
            for N in cfg.Ns]
    headers = ["N", "M", "k", "ours", "NeuralNMF", "NeuralNMF timing", "speedup",
               "max|dS|", "max|dA diff|", "max|dX diff|", "runq wait"]
    say_table(headers, grid)
    say(
        "'extrap.': NeuralNMF timed on the first columns only, scaled linearly to M (its cost is per column). "
        "Differences are measured on the columns NeuralNMF solved (ours re-run on the same columns)."
    )
    say()
    say(CONTENTION_NOTE)
    say()


# --- section 3: scaling in M --------------------------------------------------------------------------------


def scaling_row(dtype: torch.dtype, M: int, N: int, k: int):
    A, X = make_problem(N, M, k, dtype)
    reps = 3 if M >= 100_000 else 5
    t_ours, t_mm = timed([lambda: neuralnmf.nnls(X, A), lambda: A.T @ X], min_reps=reps)
    row = [dtype_name(dtype), N, k, M, fmt_seconds(t_ours), fmt_seconds(t_mm), f"{t_ours / t_mm:.2f}",
           f"{t_ours / M * 1e9:.0f} ns", f"{t_mm / M * 1e9:.0f} ns", Contention.take()]
    return row, t_ours / M


def scaling_rows(dtype: torch.dtype, Ms, N: int = 500, k: int = 32):
    rows, per_col = [], {}
    for M in Ms:
        row, per_col[M] = retry_disturbed(lambda: scaling_row(dtype, M, N, k))
        rows.append(row)
    return rows, per_col


def linearity_verdict(per_col: dict) -> str:
    Ms = sorted(per_col)
    lo = 10_000 if 10_000 in per_col else Ms[0]
    hi = Ms[-1]
    r = per_col[hi] / per_col[lo]
    ok = 1 / 1.5 <= r <= 1.5
    return f"time/M at M={hi:g} vs M={lo:g}: {r:.2f}x -> {'linear' if ok else 'NOT linear'} (criterion: within 1.5x)"


def section_scaling(cfg: Config) -> None:
    say("## 3. Scaling with M (N=500, k=32)")
    say()
    headers = ["dtype", "N", "k", "M", "ours", "A.T@X", "ours/matmul", "ours per column", "matmul per column",
               "runq wait"]
    rows, verdicts = [], []
    Contention.take()
    for dtype in cfg.dtypes:
        r, per_col = scaling_rows(dtype, cfg.scaling_Ms)
        rows += r
        verdicts.append(f"- {dtype_name(dtype)}: {linearity_verdict(per_col)}")
    say_table(headers, rows)
    for v in verdicts:
        say(v)
    say()
    say(CONTENTION_NOTE)
    say()


# --- section 4: peak memory ---------------------------------------------------------------------------------


def _status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> str:
    """Start a fresh peak-RSS window; returns the method the peak will be read with.

    ru_maxrss cannot be used as is in a child process: Linux carries the parent's high-water mark over fork
    and exec, so a child of this (large) benchmark process starts with the parent's peak. Writing "5" to
    /proc/self/clear_refs resets this process's own high-water mark VmHWM to its current RSS instead.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        if _status_kib("VmHWM") is not None:
            return "VmHWM"
    except OSError:
        pass
    return "ru_maxrss"


def peak_rss_bytes(method: str) -> int:
    if method == "VmHWM":
        return _status_kib("VmHWM") * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _memory_child(N: int, M: int, k: int, mode: str):
    """In a fresh process: peak RSS growth (bytes) caused by one op, inputs already allocated and touched."""
    dtype = torch.float64
    A_small, X_small = make_problem(50, 64, k, dtype)  # warm-up: lazy initialisation is not the op's memory
    forward_backward(ours, X_small, A_small, make_grad(k, 64, dtype), True)
    A, X = make_problem(N, M, k, dtype)  # torch.rand writes every page
    G = make_grad(k, M, dtype)
    if mode not in ("matmul", "forward"):
        A.requires_grad_(True)
        X.requires_grad_(mode == "fwd+bwd (dA, dX)")
    method = reset_peak_rss()
    base = peak_rss_bytes(method)
    if mode == "matmul":
        out = A.T @ X
    elif mode == "forward":
        out = neuralnmf.nnls(X, A)
    else:
        out = neuralnmf.nnls(X, A)
        out.backward(G)
    del out
    return peak_rss_bytes(method) - base, method


def measure_memory(N: int, M: int, k: int, mode: str):
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_memory_child, (N, M, k, mode))


def section_memory(cfg: Config) -> None:
    say("## 4. Peak extra memory (float64, fresh process per measurement)")
    say()
    say(
        "Peak RSS during the op minus RSS once the inputs (A, X, and the upstream gradient G for the backward) "
        "were allocated and touched, each in a fresh spawned process. The output S counts (it is part of the op's "
        "memory); fwd+bwd (dA, dX) also allocates dX, which is input-sized."
    )
    say()
    headers = ["N", "M", "k", "op", "peak extra", "x output (k*M*8)", "x input (N*M*8)"]
    rows, methods = [], set()
    for N, M, k in cfg.memory_sizes:
        out_b, in_b = k * M * 8, N * M * 8
        for mode in ("matmul", "forward", "fwd+bwd (dA)", "fwd+bwd (dA, dX)"):
            extra, method = measure_memory(N, M, k, mode)
            methods.add(method)
            label = "A.T@X (floor)" if mode == "matmul" else mode
            rows.append([N, M, k, label, f"{extra / 2**20:.1f} MiB", f"{extra / out_b:.2f}", f"{extra / in_b:.3f}"])
    say_table(headers, rows)
    say(
        f"Peak read from: {', '.join(sorted(methods))}. VmHWM = the process's own peak RSS, reset with "
        "/proc/self/clear_refs just before the op; ru_maxrss is not usable in a child process on Linux because "
        "it starts at the parent's high-water mark (inherited across fork/exec)."
    )
    say()


# --- section 5: a real corpus -------------------------------------------------------------------------------

NEWS20_RANKS = (20, 50, 100, 200)
NEWS20_QUICK_RANKS = (20,)


def load_news20_all(archive: str | None):
    """All 18846 documents of 20 Newsgroups (headers, footers and quotes removed, as the project's loaders do),
    as tf-idf with the project's default text settings (neuralnmf.datasets.text.DEFAULT_TEXT_PARAMS, float64):
    a scipy CSR (documents x words), read offline from the archive."""
    import numpy as np
    from sklearn.datasets import fetch_20newsgroups
    from sklearn.feature_extraction.text import TfidfVectorizer

    from neuralnmf.datasets.news20 import REMOVE, check_archive, sklearn_data_home
    from neuralnmf.datasets.text import DEFAULT_TEXT_PARAMS

    home = sklearn_data_home(check_archive(archive))
    bunch = fetch_20newsgroups(data_home=str(home), subset="all", remove=REMOVE, download_if_missing=False)
    vec = TfidfVectorizer(dtype=np.float64, **DEFAULT_TEXT_PARAMS)
    x = vec.fit_transform(bunch.data).tocsr()
    x.sort_indices()
    return x


def news20_dictionary(x_sp, k: int):
    """A topic dictionary A (words x k) of the corpus: scikit-learn NMF (coordinate descent, NNDSVDa start,
    10 iterations, seed 0), the kind of dictionary a user holds; returns the fitted NMF too (for transform)."""
    import warnings

    from sklearn.decomposition import NMF

    nmf = NMF(n_components=k, init="nndsvda", solver="cd", max_iter=10, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: 10 iterations is deliberate
        nmf.fit(x_sp)
    nmf.max_iter = 200  # transform with scikit-learn's default iteration bound (and its default tol 1e-4)
    return torch.from_numpy(nmf.components_.T.copy()), nmf


def news20_row(x_sp, x_t, k: int, sk_reps: int):
    import warnings

    from neuralnmf import sparse_products
    from neuralnmf.ops import nnls_sparse_rows

    A, nmf = news20_dictionary(x_sp, k)
    t_ours, t_prod, t_gram = timed([lambda: nnls_sparse_rows(x_t, A), lambda: sparse_products.matmul(x_t, A),
                                    lambda: A.T @ A])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_sk = timed_one(lambda: nmf.transform(x_sp), min_reps=sk_reps, max_reps=sk_reps, min_total_s=0)
        W_sk = torch.from_numpy(nmf.transform(x_sp))  # (M, k)
    S = nnls_sparse_rows(x_t, A)  # (k, M)
    supp = (S > 0).sum(0).double().mean().item()
    # objectives ||x_j - A s_j||^2 summed over documents, from the products (x never densified):
    # sum ||x||^2 - 2 <xA, S^T> + <S^T A^T A, S^T>
    xA = sparse_products.matmul(x_t, A)
    G = A.T @ A
    xx = float((x_sp.multiply(x_sp)).sum())

    def objective(St):
        return xx - 2 * (xA * St).sum().item() + ((St @ G) * St).sum().item()

    f_ours, f_sk = objective(S.T), objective(W_sk)
    floor = t_prod + t_gram
    return [k, f"{supp:.1f}", fmt_seconds(t_ours), fmt_seconds(t_prod), fmt_seconds(t_gram),
            f"{t_ours / floor:.2f}", fmt_seconds(t_sk), f"{t_sk / t_ours:.1f}x", f"{(f_sk - f_ours) / xx:.1e}",
            Contention.take()]


def section_news20(cfg: Config, archive: str | None) -> None:
    say("## 5. A real corpus: 20 Newsgroups, all documents (float64)")
    say()
    try:
        x_sp = load_news20_all(archive)
    except (FileNotFoundError, ImportError) as e:
        say(f"_Skipped: {e}_")
        say()
        return
    M, N = x_sp.shape
    say(f"x: {M} documents x {N} words, tf-idf (project defaults: English stop words, l2 rows), {x_sp.nnz} "
        f"nonzeros ({100 * x_sp.nnz / (M * N):.2f}%), scipy CSR; as a torch sparse CSR for ours.")
    say()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sparse CSR support is in beta", "invariant checks are disabled"
        x_t = torch.sparse_csr_tensor(torch.from_numpy(x_sp.indptr).long(), torch.from_numpy(x_sp.indices).long(),
                                      torch.from_numpy(x_sp.data), size=(M, N))
    headers = ["k", "mean nnz/doc", "ours (nnls_sparse_rows)", "x A (sparse product)", "A^T A (Gram)",
               "ours / (product + Gram)", "sklearn NMF.transform", "sklearn / ours",
               "objective: sklearn - ours (rel.)", "runq wait"]
    Contention.take()
    ranks = NEWS20_QUICK_RANKS if cfg is QUICK else NEWS20_RANKS
    # rows printed as they come (the k = 200 row takes minutes): the table's lines, then a blank line
    table = md_table(headers, []).split("\n")
    say(table[0])
    say(table[1])
    for k in ranks:  # scikit-learn: best of 2 transforms up to k = 50, one above
        say(md_table(headers, [retry_disturbed(lambda: news20_row(x_sp, x_t, k, 2 if k <= 50 and cfg is FULL
                                                                                 else 1), retries=0)]).split("\n")[2])
    say()
    say("Dictionary: scikit-learn NMF(k, init='nndsvda', solver='cd', max_iter=10, random_state=0) fitted on the "
        "corpus (not timed). ours = neuralnmf.ops.nnls_sparse_rows(x, A): the sparse product x A, the Gram and the "
        "exact per-document solve. sklearn = the same NMF object's transform(x) (coordinate descent on the codes "
        "with the dictionary fixed, max_iter=200, tol=1e-4: approximate), best of 2 up to k = 50, one call above. "
        "Each row measured once (no retry when disturbed). objective: the total "
        "||x_j - A s_j||^2 of sklearn's codes minus ours, relative to ||x||^2 (>= 0: ours is the exact minimum).")
    say()
    say(CONTENTION_NOTE)
    say()


# --- main ---------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small grid, smoke run (well under a minute)")
    p.add_argument("--skip-peers", action="store_true", help="skip scipy, NeuralNMF==1.0.0 and the reference")
    p.add_argument("--only", type=int, nargs="+", default=[1, 2, 3, 4, 5], choices=[1, 2, 3, 4, 5], metavar="N",
                   help="run only these sections (1 forward, 2 NeuralNMF, 3 scaling in M, 4 memory, 5 20 Newsgroups)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's default)")
    p.add_argument("--ks", type=int, nargs="+", default=None, metavar="K",
                   help="only these ranks in sections 1 and 2 (e.g. --ks 32 64 for the cells of the 2.5x target)")
    p.add_argument("--archive", default=None, help="20news-bydate.tar.gz (default: $NEURALNMF_DATA_DIR or "
                   "../shared/data)")
    p.add_argument("--peer-dir", default=DEFAULT_PEER_DIR, help="folder NeuralNMF==1.0.0 was pip --target'ed to")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = QUICK if args.quick else FULL
    if args.ks is not None:
        cfg = dataclasses.replace(cfg, ks=tuple(args.ks))
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    global MIN_TOTAL_S, RETRIES
    MIN_TOTAL_S, RETRIES = cfg.min_total_s, cfg.retries
    t0 = time.perf_counter()
    say(f"# neuralnmf.nnls benchmark{' (--quick)' if args.quick else ''}")
    say()
    print_machine(
        details=[
            "data: A = torch.rand(N, k), X = torch.rand(N, M): uniform nonnegative entries, seed 0",
            (f"timing: min over repeats (>= 3, and >= {MIN_TOTAL_S:g} s of them) after a warm-up call, "
             "time.perf_counter; ours and A.T@X run interleaved; a row disturbed by other processes is measured "
             f"again (up to {RETRIES}x) and the least disturbed attempt kept"),
        ],
        load_extra=" (counts this benchmark's own threads too)",
    )
    sections = {
        1: lambda: section_forward(cfg, args.skip_peers),
        2: lambda: section_peer(cfg, args.peer_dir),
        3: lambda: section_scaling(cfg),
        4: lambda: section_memory(cfg),
        5: lambda: section_news20(cfg, args.archive),
    }
    for number, run in sections.items():
        if number not in args.only or (number == 2 and args.skip_peers):
            continue
        with OtherLoad():
            run()
    say(f"Total benchmark time: {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
