"""Neural NMF training on a GPU against the CPU kernels of the same machine, and whether a training step waits for
the GPU.

Run from the repository root on a machine with a GPU (prints a message and exits 0 without one):

    python benchmarks/bench_train_gpu.py                  # both cases, GPU and CPU (about a minute on an H200)
    python benchmarks/bench_train_gpu.py --only dense     # or sparse
    python benchmarks/bench_train_gpu.py --skip-cpu       # GPU only

Cases (float32, validation off: ``neuralnmf.ops.validation(False)``, as a training loop that wants no host
synchronisation runs):

* dense: 20 000 samples x 5 000 features, U[0, 1) data (seed 0), ``NeuralNMF(5000, (64, 16, 4), num_classes=4)``
  with random labels, reconstruction + supervision loss, Adam lr 1e-2;
* sparse: the 100 000 x 50 000 tf-idf corpus of ``benchmarks/bench_scale.py`` (0.1% nonzero, generated here with
  its code), ``NeuralNMF(50000, (64, 16, 4))``, reconstruction loss, Adam lr 1e-2, as bench_scale trains it.

Both models start from U[0, 1) dictionaries (``init="uniform"``, seed 0): the epochs are timed, not a
data-driven start.

Each runs full batch and in shuffled minibatches (dense 2 000, sparse 10 000), with ``neuralnmf.fit`` on the
GPU and on the CPU (all cores). Seconds per epoch: the median over the epochs after the first (fit reads its
epoch losses back once per epoch, so every epoch's GPU work is finished when its callback runs); the first
epoch (cold caches, CSR copies of sparse data, cuBLAS handles) is shown apart. Any "pure-torch reference"
fallback warning during GPU training is reported (there should be none).

Host synchronisations: the same training step as fit's (forward, loss, backward, Adam step, projection of the
dictionaries onto >= 0) is run by hand under ``torch.cuda.set_sync_debug_mode("warn")``, counting the
synchronising CUDA calls it makes after a warm-up step; a minibatch step is counted without and with cutting the
batch out of the data (the cut is fit's, ``Batch.rows``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
import warnings

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import neuralnmf  # noqa: E402
from neuralnmf import NeuralNMF, NonnegativeProjection, fit, ops  # noqa: E402
from neuralnmf.datasets import scipy_to_torch  # noqa: E402
from neuralnmf.losses import reconstruction_loss, supervision_loss  # noqa: E402
from neuralnmf.train import Batch  # noqa: E402

from _harness import code_version, fmt_seconds, say, say_table  # noqa: E402

SEED = 0
RANKS = (64, 16, 4)
LR = 1e-2
DENSE = dict(samples=20_000, features=5_000, classes=4, batch=2_000)
SPARSE_DOCS, SPARSE_BATCH = 100_000, 10_000


def fmt(s: float) -> str:
    return fmt_seconds(s, ms_digits=1)


# --- data ---------------------------------------------------------------------------------------------------


def dense_data(device):
    g = torch.Generator().manual_seed(SEED)
    x = torch.rand(DENSE["samples"], DENSE["features"], generator=g)
    y = torch.randint(0, DENSE["classes"], (DENSE["samples"],), generator=g)
    return x.to(device), y.to(device)


def sparse_data(device):
    import bench_scale

    x = scipy_to_torch(bench_scale.tfidf(bench_scale.make_counts(SPARSE_DOCS)), dtype=torch.float32)
    return x.to(device), None


def make_model(features: int, classes, device):
    # U[0, 1) dictionaries (seed 0), as bench_scale.py: the epochs are timed, not the data-driven start
    return NeuralNMF(features, RANKS, num_classes=classes, init="uniform", dtype=torch.float32, device=device,
                     generator=torch.Generator().manual_seed(SEED))


# --- epochs -------------------------------------------------------------------------------------------------


def time_epochs(x, y, classes, batch_size, epochs: int, device) -> dict:
    """fit() for `epochs` epochs; per-epoch wall times from its callback, fallback warnings caught."""
    model = make_model(x.shape[1], classes, device)
    marks = []
    with ops.validation(False), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        fit(model, x, y=y, loss="reconstruction", epochs=epochs, lr=LR, batch_size=batch_size, seed=SEED,
            progress=False, callbacks=[lambda epoch, logs, m: marks.append(time.perf_counter())])
    times = [b - a for a, b in zip([start] + marks[:-1], marks)]
    fallback = sorted({str(w.message) for w in caught if "reference implementation" in str(w.message)})
    return dict(first=times[0], epoch=statistics.median(times[1:]) if len(times) > 1 else times[0],
                epochs=len(times), fallback=fallback)


# --- host synchronisations ----------------------------------------------------------------------------------


def count_syncs(fn) -> int:
    """Synchronising CUDA calls fn() makes, by torch's sync debug mode."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return sum("synchronizing" in str(w.message) for w in caught)


def step_syncs(x, y, classes, batch_size) -> dict:
    """Syncs of one training step (fit's: forward, loss, backward, Adam, projection), after a warm-up step."""
    model = make_model(x.shape[1], classes, x.device)
    opt = torch.optim.Adam([layer.A for layer in model.layers] + ([model.B] if classes else []), lr=LR)
    projection = NonnegativeProjection(model)
    handle = projection.attach(opt)
    if x.is_sparse:
        x = x.coalesce()
    full = Batch(x, y)
    idx = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(SEED))[:batch_size]
    batch = full.rows(idx) if batch_size else full

    def step(b):
        out = model(b.x)
        loss = reconstruction_loss(model, b.x, out)
        if b.y is not None:
            loss = loss + supervision_loss(out.logits, b.y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    out = {}
    with ops.validation(False):
        step(batch)  # warm-up: CSR copies, cuBLAS handles, optimizer state
        step(batch)
        out["step"] = count_syncs(lambda: step(batch))
        if batch_size:
            out["cut+step"] = count_syncs(lambda: step(full.rows(idx)))
    handle.remove()
    return out


# --- main ---------------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["dense", "sparse"], default=None)
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--gpu-epochs", type=int, default=12)
    parser.add_argument("--cpu-epochs", type=int, default=4)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        say("bench_train_gpu: no CUDA device is available (torch.cuda.is_available() is False); nothing to measure.")
        return 0
    props = torch.cuda.get_device_properties(0)
    say("# Neural NMF training on the GPU")
    say()
    say(f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}; {code_version()}")
    say(f"- device: {props.name}, {props.multi_processor_count} SMs; CPU: {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} torch threads; torch {torch.__version__} (CUDA {torch.version.cuda}); "
        f"neuralnmf {neuralnmf.__version__}, CUDA kernels: {neuralnmf._extension.built_with_cuda()}")
    say(f"- command: python {' '.join(sys.argv)}")
    say()
    cases = [c for c in ("dense", "sparse") if args.only in (None, c)]
    rows, sync_rows, notes = [], [], []
    for case in cases:
        t0 = time.perf_counter()
        x, y = (dense_data if case == "dense" else sparse_data)("cpu")
        classes = DENSE["classes"] if case == "dense" else None
        batch = DENSE["batch"] if case == "dense" else SPARSE_BATCH
        shape = f"{x.shape[0]} x {x.shape[1]}" + (f", {x._nnz()} nonzeros" if x.is_sparse else "")
        say(f"_{case}: data {shape} made in {time.perf_counter() - t0:.1f} s_")
        xg, yg = x.to("cuda"), (None if y is None else y.to("cuda"))
        for mode, bs in (("full batch", None), (f"minibatch {batch}", batch)):
            gpu = time_epochs(xg, yg, classes, bs, args.gpu_epochs, "cuda")
            say(f"_{case} {mode}: GPU done_")
            cpu = None
            if not args.skip_cpu:
                cpu = time_epochs(x, y, classes, bs, args.cpu_epochs, "cpu")
                say(f"_{case} {mode}: CPU done_")
            rows.append([case, mode, fmt(gpu["epoch"]), fmt(gpu["first"]), fmt(cpu["epoch"]) if cpu else "-",
                         f"{cpu['epoch'] / gpu['epoch']:.1f}x" if cpu else "-",
                         "none" if not gpu["fallback"] else "YES"])
            notes += gpu["fallback"]
        s_full = step_syncs(xg, yg, classes, None)
        s_mb = step_syncs(xg, yg, classes, batch)
        sync_rows.append([case, s_full["step"], s_mb["step"], s_mb["cut+step"]])
        del x, y, xg, yg
        torch.cuda.empty_cache()
    say()
    say(f"## Seconds per epoch (float32, validation off; median of the epochs after the first: GPU "
        f"{args.gpu_epochs}, CPU {args.cpu_epochs} epochs)")
    say()
    say_table(["case", "mode", "GPU s/epoch", "GPU first epoch", "CPU s/epoch", "CPU / GPU", "fallback warning"],
              rows)
    for n in notes:
        say(f"- fallback warning: {n}")
    say("## Host synchronisations per training step (torch.cuda.set_sync_debug_mode, validation off)")
    say()
    say_table(["case", "full-batch step", "minibatch step", "minibatch cut + step"], sync_rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
