"""Intra-op threads of the training loop, idle and under load: torch's own thread count against the count
neuralnmf.fit picks by problem size (neuralnmf/threads.py: one thread below SMALL_WORK multiply-adds per step).

    python benchmarks/bench_threads.py [--epochs 500] [--large-epochs 5] [--no-load] [--only-load]

Problems: a 3-layer fit of the paper's toy matrix (synthetic_noise.mat, 90 x 87, ranks 9-4-2, float64, `epochs`
epochs from scratch: the data-driven start included), a mid-size dense matrix below the threshold (500 x 1000,
ranks 20-5-2) and a large one above it (2000 x 5000, ranks 50-12-2; `large-epochs` epochs), where the choice is
torch's setting by construction (this shows it is not slowed). Each runs with ``set_loop_threads(0)`` (torch's
setting: ``torch.get_num_threads()`` threads) and with the default ``set_loop_threads(None)`` (by size). Load:
without, and with one other process busy on a core (``python -c 'while True: pass'``, started before and killed
after, as when users run several jobs at once). Wall and CPU time (this process) per run; the best of
``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import torch

from neuralnmf import NeuralNMF, fit, set_loop_threads
from neuralnmf.datasets import load_toy_table
from neuralnmf.threads import SMALL_WORK, step_work, threads_for

from _harness import md_table, print_machine, say


def problems(args):
    toy = load_toy_table().x
    gen = torch.Generator().manual_seed(0)
    mid = torch.rand(500, 1000, generator=gen, dtype=torch.float64)
    large = torch.rand(2000, 5000, generator=gen, dtype=torch.float64)
    return [("toy matrix 90 x 87", toy, (9, 4, 2), args.epochs),
            ("dense 500 x 1000", mid, (20, 5, 2), args.epochs // 10),
            ("dense 2000 x 5000", large, (50, 12, 2), args.large_epochs)]


def run(x, ranks, epochs) -> tuple[float, float]:
    """(wall s, CPU s) of building and fitting the model (its start from the data included)."""
    t0, c0 = time.perf_counter(), time.process_time()
    model = NeuralNMF(x.shape[1], ranks, dtype=x.dtype)
    fit(model, x, epochs=epochs, progress=False)
    return time.perf_counter() - t0, time.process_time() - c0


class busy_core:
    """Another process busy on one core for the duration of a with block."""

    def __init__(self, on: bool):
        self.on, self.proc = on, None

    def __enter__(self):
        if self.on:
            self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--large-epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-load", action="store_true", help="only without the busy process")
    parser.add_argument("--only-load", action="store_true", help="only with the busy process")
    args = parser.parse_args()
    print_machine(command="python " + " ".join(sys.argv),
                  details=[f"SMALL_WORK = {SMALL_WORK:.3g} multiply-adds per step"])
    say()
    loads = [False, True]
    if args.no_load:
        loads = [False]
    if args.only_load:
        loads = [True]
    rows = []
    for name, x, ranks, epochs in problems(args):
        work = step_work(x, ranks[0])
        run(x, ranks, 1)  # warm-up: allocations, first calls
        for loaded in loads:
            times = {}
            with busy_core(loaded):
                for label, setting in (("torch's", 0), ("by size", None)):
                    set_loop_threads(setting)
                    chosen = threads_for(work)
                    best = min((run(x, ranks, epochs) for _ in range(args.repeats)), key=lambda r: r[0])
                    times[label] = (chosen, *best)
            set_loop_threads(None)
            (n0, w0, c0), (n1, w1, c1) = times["torch's"], times["by size"]
            rows.append([name, f"{work:.2g}", epochs, "+ a busy core" if loaded else "none added",
                         f"{os.getloadavg()[0]:.1f}",
                         f"{n0}: {w0:.2f} s / {c0:.2f} s", f"{n1}: {w1:.2f} s / {c1:.2f} s", f"{w0 / w1:.1f}x"])
            say(f"_done: {name}, {'with' if loaded else 'without'} a busy core_")
    say()
    say("## Threads of the training loop (threads: wall / CPU time of this process)")
    say()
    say(md_table(["problem", "multiply-adds per step", "epochs", "load we add", "load average", "torch's threads",
                  "threads by size (default)", "wall speedup"], rows))
    say()
    say(f"1-minute load average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
