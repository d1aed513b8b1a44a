"""Benchmark of the ``neuralnmf.nnls`` CUDA operator against the matmul floor and against peer solvers.

Run from the repository root on a machine with a GPU (prints a message and exits 0 without one):

    python benchmarks/bench_nnls_gpu.py              # the full grid (minutes on an H100/H200)
    python benchmarks/bench_nnls_gpu.py --quick      # M up to 1e5, smoke run
    python benchmarks/bench_nnls_gpu.py --skip-peers # no pure-torch reference, no CPU kernel
    python benchmarks/bench_nnls_gpu.py --targets    # only the target configurations (M = 1e6), no peers: ~1 min

Every figure is a ratio measured side by side in one run, on the same data, so drift cancels:

1. Ceilings of this device, measured first: device-to-device copy bandwidth (a 4 GiB copy) and matmul rate
   (an 8192^3 product) per dtype.
2. For N = 1024, M in {1e4, 1e5, 1e6}, k in {8, 32, 64}, float32 and float64: the cuBLAS matmul ``A.T @ X``
   (the floor: the forward must form it), our forward, our forward+backward (dL/dA, the first Neural NMF layer,
   and dL/dX + dL/dA); the pure-torch reference ``neuralnmf._reference.nnls_reference`` on the device and our
   CPU kernel, both timed on a column subset and extrapolated linearly to M when the whole would be slow.
   Achieved rates: the bandwidth of reading X once in the forward time, against the copy ceiling, and the
   matmul's FLOP rate against the matmul ceiling.
3. The targets (N = 1024, M = 1e6, validation off): float32 forward <= 1.5x the matmul at k = 8, <= 2.0x at
   k = 32, <= 3.0x at k = 64; float64 forward <= 2.5x at k = 32; float32 forward+backward (dA) <= 4.0x at k = 32;
   >= 20x faster than the reference (when timed).
4. Accuracy of the float32 path (float32 A^T X, solves in float64, refinement left out where it cannot change
   a float32 answer): the largest scaled KKT residual of S on 20 000 columns, measured in float64, against the
   tests' bound 1e-4, and the largest difference from the float64 solve of the same data relative to max |S|.

Data: A = torch.rand(N, k), X = torch.rand(N, M) (nonnegative, like topic-model data), fixed seed, generated on
the device. Timing: CUDA events around each call, median of the repeats after a warm-up call, validation off
(neuralnmf.ops.validation(False): no host synchronisation inside the timed region, as in a training loop).
float32 matmuls run at torch's default "highest" precision (no TF32), the precision nnls itself uses.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import math
import statistics
import sys
import time

import torch

import neuralnmf
from neuralnmf import _extension, ops
from neuralnmf._reference import nnls_reference

SEED = 0
N = 1024
FULL_MS = (10_000, 100_000, 1_000_000)
QUICK_MS = (10_000, 100_000)
KS = (8, 32, 64)
REF_BUDGET_S = 5.0   # above this estimated time the reference is timed on a column subset
CPU_BUDGET_S = 5.0   # likewise for the CPU kernel
TARGET_M = 1_000_000
# (dtype, k, what, bound): what is "fwd" (forward / matmul) or "fwd_bwd_A" (forward + backward dA / matmul)
TARGETS = ((torch.float32, 8, "fwd", 1.5), (torch.float32, 32, "fwd", 2.0), (torch.float32, 64, "fwd", 3.0),
           (torch.float64, 32, "fwd", 2.5), (torch.float32, 32, "fwd_bwd_A", 4.0))
VS_REF = 20.0
KKT_BOUND = 1e-4
KKT_COLS = 20_000


def say(text: str = "") -> None:
    print(text, flush=True)


def cuda_time(fn, reps: int = 5, warmup: int = 1) -> float:
    """Median seconds of fn() on the current stream, by CUDA events (the host never waits inside the reps)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def reps_for(seconds: float) -> int:
    return max(3, min(20, int(2.0 / max(seconds, 1e-6))))


def fmt(s: float) -> str:
    if math.isnan(s):  # not measured
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.0f} us"
    if s < 1.0:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def md_table(headers, rows) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


# --- ceilings -------------------------------------------------------------------------------------------------


def copy_bandwidth() -> float:
    """Bytes/s of a large device-to-device copy, counting the read and the write."""
    src = torch.empty(1 << 30, dtype=torch.float32, device="cuda")  # 4 GiB
    src.fill_(1.0)
    dst = torch.empty_like(src)
    t = cuda_time(lambda: dst.copy_(src), reps=5)
    return 2 * src.numel() * src.element_size() / t


def matmul_rate(dtype: torch.dtype) -> float:
    """FLOP/s of a large square matmul."""
    n = 8192
    a = torch.rand(n, n, dtype=dtype, device="cuda")
    b = torch.rand(n, n, dtype=dtype, device="cuda")
    t = cuda_time(lambda: a @ b, reps=5)
    return 2 * n**3 / t


# --- one configuration ----------------------------------------------------------------------------------------


def make_problem(M: int, k: int, dtype: torch.dtype):
    g = torch.Generator(device="cuda").manual_seed(SEED)
    A = torch.rand(N, k, dtype=dtype, device="cuda", generator=g)
    X = torch.rand(N, M, dtype=dtype, device="cuda", generator=g)
    W = torch.randn(k, M, dtype=dtype, device="cuda", generator=g)  # upstream gradient dL/dS
    return A, X, W


def time_extrapolated(run, M: int, budget_s: float, sync) -> tuple[float, int]:
    """Seconds for all M columns of run(m) (which solves the first m columns). Timed whole when that fits in
    budget_s, else on a subset of m columns large enough to take 0.5 s, scaled by M / m.
    Returns (seconds, columns actually timed)."""
    m = min(M, 2000)
    run(m)  # warm-up
    while True:
        sync()
        t0 = time.perf_counter()
        run(m)
        sync()
        t = time.perf_counter() - t0
        if m == M:
            return t, M
        if t * M / m <= budget_s:
            m = M
        elif t >= 0.5:
            return t * M / m, m
        else:
            m = min(M, m * 4)


def float32_accuracy(X, A, S) -> tuple[float, float]:
    """On the first KKT_COLS columns: the largest scaled KKT residual of the float32 S (the measure of
    tests/conftest.py, in float64), and max |S - S64| / max |S64| against the solve of the same data in float64."""
    m = min(KKT_COLS, X.shape[1])
    Xd, Ad, Sd = X[:, :m].double(), A.double(), S[:, :m].double()
    AS = Ad @ Sd
    y = Ad.T @ (AS - Xd)
    scale = torch.linalg.vector_norm(Ad, dim=0).max() * (torch.linalg.vector_norm(Xd, dim=0)
                                                          + torch.linalg.vector_norm(AS, dim=0))
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    kkt = torch.maximum((-y).clamp_min(0) / scale, y.abs() * (Sd > 0) / scale).max().item()
    S64 = ops.nnls(Xd, Ad)
    return kkt, ((Sd - S64).abs().max() / S64.abs().max().clamp_min(1e-300)).item()


def kernel_times(fn, top: int = 8) -> list:
    """The device kernels of one call of fn (after a warm-up call), by torch.profiler: (name, ms, launches),
    longest first."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    rows = []
    for e in prof.key_averages():
        t = getattr(e, "device_time_total", None)
        t = getattr(e, "cuda_time_total", 0) if t is None else t
        if t > 0:
            rows.append((e.key[:90], t / 1e3, e.count))
    rows.sort(key=lambda row: -row[1])
    return rows[:top]


# The configurations of the k <= 32 kernels are compile-time choices (setup.py: NEURALNMF_CUDA_PACK=1|2, the
# layout; NEURALNMF_CUDA_MIN_BLOCKS=1|3|4|6, the register budget). To compare them, build once per choice and run
# this script after each build, e.g.
#     NEURALNMF_CUDA_PACK=1 NEURALNMF_CUDA_MIN_BLOCKS=6 FORCE_CUDA=1 python setup.py build_ext --inplace
# The report names the choices the loaded library was built with (neuralnmf._C.cuda_choices).


def bench_one(M: int, k: int, dtype: torch.dtype, peers: bool, profile=()) -> dict:
    A, X, W = make_problem(M, k, dtype)
    r = {"dtype": dtype, "k": k, "M": M}

    def forward():
        return ops.nnls(X, A)

    def matmul():
        return A.T @ X

    Ar = A.clone().requires_grad_(True)
    Xr = X.clone().requires_grad_(True)

    def fwd_bwd_A():
        Ar.grad = None
        (ops.nnls(X, Ar) * W).sum().backward()

    def fwd_bwd_XA():
        Ar.grad = Xr.grad = None
        (ops.nnls(Xr, Ar) * W).sum().backward()

    with ops.validation(False):
        S, info = ops.nnls(X, A, return_info=True)  # also the warm-up of everything below
        r["not_converged"] = int((info < 0).sum())
        r["kkt"] = r["vs_f64"] = float("nan")
        if dtype == torch.float32:
            r["kkt"], r["vs_f64"] = float32_accuracy(X, A, S)
        del S, info
        t_mm = cuda_time(matmul, reps=reps_for(1e-3))
        r["matmul"] = cuda_time(matmul, reps=reps_for(t_mm))
        t_f = cuda_time(forward, reps=1)
        r["fwd"] = cuda_time(forward, reps=reps_for(t_f))
        r["fwd_bwd_A"] = cuda_time(fwd_bwd_A, reps=reps_for(3 * t_f))
        r["fwd_bwd_XA"] = cuda_time(fwd_bwd_XA, reps=reps_for(3 * t_f))
        if profile and (k, dtype) in profile:
            r["profile"] = {"forward": kernel_times(forward), "forward+backward (dA)": kernel_times(fwd_bwd_A)}
    r["ref"] = r["cpu"] = float("nan")
    r["ref_cols"] = r["cpu_cols"] = 0
    if peers:
        r["ref"], r["ref_cols"] = time_extrapolated(
            lambda m: nnls_reference(X[:, :m], A), M, REF_BUDGET_S, torch.cuda.synchronize)
        Xc, Ac = None, A.cpu()

        def cpu_run(m):
            nonlocal Xc
            if Xc is None or Xc.shape[1] < m:
                Xc = X[:, :m].cpu()
            torch.ops.neuralnmf.nnls(Xc[:, :m], Ac, None, 0)

        r["cpu"], r["cpu_cols"] = time_extrapolated(cpu_run, M, CPU_BUDGET_S, lambda: None)
    elem = X.element_size()
    r["fwd_GBps"] = N * M * elem / r["fwd"] / 1e9
    r["mm_TFLOPs"] = 2 * N * k * M / r["matmul"] / 1e12
    return r  # the problem's tensors die here; the caller empties the cache


# --- report ---------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="M up to 1e5 only")
    parser.add_argument("--skip-peers", action="store_true", help="no reference, no CPU kernel")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--ks", default=",".join(map(str, KS)))
    parser.add_argument("--Ms", default=None, help="comma-separated M values (e.g. 1e6), instead of the grid")
    parser.add_argument("--targets", action="store_true", help="only the target configurations, without peers")
    parser.add_argument("--profile", action="store_true", help="also list the kernels of one call per configuration")
    parser.add_argument("--profile-only", default=None,
                        help="with --profile: only these configurations, e.g. 'float32:32,float64:32'")
    args = parser.parse_args()

    if not torch.cuda.is_available():
        say("bench_nnls_gpu: no CUDA device is available (torch.cuda.is_available() is False); nothing to measure.")
        return 0
    if not _extension.has_kernel("nnls", "CUDA"):
        say("bench_nnls_gpu: neuralnmf was built without its CUDA kernels "
            f"({_extension.missing_kernel_reason('cuda')}); rebuild with a CUDA torch and nvcc, see README 'CUDA'.")
        return 0

    dtypes = [getattr(torch, d) for d in args.dtypes.split(",")]
    ks = [int(k) for k in args.ks.split(",")]
    Ms = QUICK_MS if args.quick else FULL_MS
    if args.Ms:
        Ms = tuple(int(float(m)) for m in args.Ms.split(","))
    configs = [(dt, k, M) for dt in dtypes for k in ks for M in Ms]
    if args.targets:
        configs = sorted({(dt, k, TARGET_M) for dt, k, _, _ in TARGETS}, key=lambda c: (str(c[0]), c[1]))
        dtypes = sorted({c[0] for c in configs}, key=str)
        args.skip_peers = True
    props = torch.cuda.get_device_properties(0)
    say("# neuralnmf.nnls on the GPU")
    say()
    say(f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}")
    say(f"- device: {props.name}, {props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs; "
        f"torch {torch.__version__} (CUDA {torch.version.cuda}); neuralnmf {neuralnmf.__version__}")
    say(f"- command: python {' '.join(sys.argv)}")
    say(f"- float32 matmul precision: {torch.get_float32_matmul_precision()}; validation off while timing")
    say()

    bw = copy_bandwidth()
    rates = {dt: matmul_rate(dt) for dt in dtypes}
    say("## Ceilings measured in this run")
    say()
    say(f"- device-to-device copy: {bw / 1e9:.0f} GB/s (read + write)")
    for dt, rate in rates.items():
        say(f"- {dtype_name(dt)} 8192^3 matmul: {rate / 1e12:.1f} TFLOP/s")
    say()

    profile = set()
    if args.profile:
        profile = {(k, dt) for dt, k, _ in configs}
        if args.profile_only:
            profile = {(int(k), getattr(torch, d)) for d, k in (c.split(":") for c in args.profile_only.split(","))}
    choices = getattr(importlib.import_module("neuralnmf._C"), "cuda_choices", "")  # built: checked above
    say(f"- CUDA kernels built with: {choices.replace(',', ', ') or 'the default choices'} (setup.py)")
    say()
    rows, results = [], []
    for dt, k, M in configs:
        r = bench_one(M, k, dt, peers=not args.skip_peers, profile=profile)
        torch.cuda.empty_cache()
        results.append(r)
        rows.append([
            dtype_name(dt), k, f"{M:.0e}", fmt(r["matmul"]), fmt(r["fwd"]), f"{r['fwd'] / r['matmul']:.2f}x",
            fmt(r["fwd_bwd_A"]), f"{r['fwd_bwd_A'] / r['matmul']:.2f}x",
            fmt(r["fwd_bwd_XA"]), f"{r['fwd_bwd_XA'] / r['matmul']:.2f}x",
            fmt(r["ref"]) + ("" if r["ref_cols"] in (0, M) else "*"),
            "-" if math.isnan(r["ref"]) else f"{r['ref'] / r['fwd']:.0f}x",
            fmt(r["cpu"]) + ("" if r["cpu_cols"] in (0, M) else "*"),
            "-" if math.isnan(r["cpu"]) else f"{r['cpu'] / r['fwd']:.1f}x",
            f"{r['fwd_GBps']:.0f} ({100 * r['fwd_GBps'] * 1e9 / bw:.0f}%)",
            f"{r['mm_TFLOPs']:.1f} ({100 * r['mm_TFLOPs'] * 1e12 / rates[dt]:.0f}%)",
            r["not_converged"],
            "-" if math.isnan(r["kkt"]) else f"{r['kkt']:.1e}",
            "-" if math.isnan(r["vs_f64"]) else f"{r['vs_f64']:.1e}",
        ])
        say(f"_done: {dtype_name(dt)} k={k} M={M:.0e}_")
    say()
    say(f"## Times, N = {N} (ratios: ours / matmul; speedups: peer / our forward)")
    say()
    say(md_table(["dtype", "k", "M", "A^T X", "fwd", "fwd/mm", "fwd+bwd dA", "fb/mm", "fwd+bwd dX,dA", "fb2/mm",
                  "reference", "ref/fwd", "CPU kernel", "cpu/fwd", "fwd X-read GB/s (% copy)",
                  "matmul TFLOP/s (% peak)", "info<0", "KKT (f32)", "vs f64"], rows))
    say()
    say("`*`: timed on a column subset and extrapolated linearly to M. CPU kernel: "
        f"{torch.get_num_threads()} threads.")
    say()
    for r in results:
        for what, rows_p in r.get("profile", {}).items():
            say(f"Kernels of one {what}, {dtype_name(r['dtype'])} k = {r['k']}, M = {r['M']:.0e}:")
            say()
            say(md_table(["kernel", "ms", "launches"], [[name.replace("|", "/"), f"{ms:.3f}", n]
                                                       for name, ms, n in rows_p]))
            say()
    say(f"KKT (f32): largest scaled KKT residual of the float32 S on {KKT_COLS} columns (bound in the tests: "
        f"{KKT_BOUND:g}); vs f64: max |S - S_float64| / max |S_float64| on the same columns.")
    say()
    checks = []
    for dt, k, what, bound in TARGETS:
        hit = [r for r in results if r["dtype"] == dt and r["k"] == k and r["M"] == TARGET_M]
        if hit:
            ratio = hit[0][what] / hit[0]["matmul"]
            name = "forward" if what == "fwd" else "forward+backward (dA)"
            checks.append([f"{dtype_name(dt)} k = {k}: {name} / matmul", f"{ratio:.2f}", f"<= {bound}",
                           "yes" if ratio <= bound else "NO"])
    for r in results:
        if r["M"] == TARGET_M and not math.isnan(r["ref"]):
            checks.append([f"{dtype_name(r['dtype'])} k = {r['k']}: reference / forward", f"{r['ref'] / r['fwd']:.0f}",
                           f">= {VS_REF:g}", "yes" if r["ref"] / r["fwd"] >= VS_REF else "NO"])
        if not math.isnan(r["kkt"]):
            checks.append([f"float32 k = {r['k']}, M = {r['M']:.0e}: scaled KKT residual", f"{r['kkt']:.1e}",
                           f"<= {KKT_BOUND:g}", "yes" if r["kkt"] <= KKT_BOUND else "NO"])
    if checks:
        say(f"## Targets (N = {N}, M = 1e6, validation off)")
        say()
        say(md_table(["ratio", "measured", "target", "met"], checks))
        say()
    return 0


if __name__ == "__main__":
    sys.exit(main())
