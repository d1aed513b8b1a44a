"""What the benchmark scripts share: timing, markdown output and the description of the machine and the build.

The scripts run as ``python benchmarks/<name>.py``, so this folder is on ``sys.path`` and they import it as
``_harness``. The reports are markdown on stdout: headings, lists and tables.
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import subprocess
import time

import torch

import neuralnmf

# --- output ---------------------------------------------------------------------------------------------------


def say(text: str = "") -> None:
    """Print a line and flush, so that a long run's output can be followed (and survives a timeout)."""
    print(text, flush=True)


def md_table(headers, rows) -> str:
    """A markdown table: a header line, a rule and one line per row (cells with str())."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def say_table(headers, rows) -> None:
    """Print md_table(headers, rows) and a blank line (markdown needs one to end the table)."""
    say(md_table(headers, rows))
    say()


def fmt_seconds(s: float, us_digits: int = 1, ms_digits: int = 2) -> str:
    """Seconds in us, ms or s with the given decimals below 1 ms and below 1 s (two above); NaN (not measured)
    as '-'."""
    if math.isnan(s):
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.{us_digits}f} us"
    if s < 1.0:
        return f"{s * 1e3:.{ms_digits}f} ms"
    return f"{s:.2f} s"


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


# --- timing ---------------------------------------------------------------------------------------------------


def runqueue_wait() -> dict:
    """Per thread of this process: nanoseconds spent runnable but waiting for a CPU (/proc/self/task/*/schedstat);
    empty where /proc has no such files."""
    waits = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return waits
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                waits[tid] = int(f.read().split()[1])
        except (OSError, ValueError, IndexError):
            pass
    return waits


def best_runs(fns, min_reps: int = 3, max_reps: int = 200, min_total_s: float = 0.0, warmup: int = 1):
    """The fastest call of each f() in fns as (seconds, seconds its threads waited for a CPU meanwhile).

    The calls are interleaved (f0, f1, f0, f1, ...) so that they see the same machine conditions: after `warmup`
    rounds, at least `min_reps` rounds, more (up to `max_reps`) until `min_total_s` seconds have been spent. Many
    short repeats spread over seconds let the minimum find the moments when other processes leave the cores
    alone; the wait says whether even the fastest call was disturbed. time.perf_counter; the wait is read
    outside the timed region."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = [[] for _ in fns]  # (seconds, seconds waited for a CPU)
    spent = 0.0
    while len(times[0]) < max_reps and (len(times[0]) < min_reps or spent < min_total_s):
        for fn, ts in zip(fns, times):
            w0 = runqueue_wait()
            t0 = time.perf_counter()
            fn()
            elapsed = time.perf_counter() - t0
            w1 = runqueue_wait()
            ts.append((elapsed, sum(w - w0.get(tid, 0) for tid, w in w1.items()) / 1e9))
            spent += elapsed
    return [min(ts) for ts in times]


def best_times(fns, reps: int, warmup: int = 1) -> list:
    """Minimum wall time of each f() in fns over exactly `reps` interleaved rounds, after `warmup` rounds."""
    return [elapsed for elapsed, _ in best_runs(fns, min_reps=reps, max_reps=reps, warmup=warmup)]


# --- load of the machine --------------------------------------------------------------------------------------


def busy_machine_s() -> float | None:
    """CPU seconds all processes have used since boot (non-idle time in /proc/stat); None without /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def other_load(machine_s: float, own_s: float, wall_s: float) -> float:
    """Share of the machine's cores that other processes used over `wall_s` seconds, from the machine's busy CPU
    seconds (busy_machine_s() differences) and ours over the same span."""
    return max(0.0, machine_s - own_s) / (wall_s * (os.cpu_count() or 1))


# --- machine and build ----------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def code_version() -> str:
    """Which build is measured: the git commit of the checkout neuralnmf is imported from, whether its library
    sources (csrc/, neuralnmf/) differ from it, and when each compiled extension was built."""
    pkg = os.path.dirname(os.path.abspath(neuralnmf.__file__))
    root = os.path.dirname(pkg)
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "csrc", "neuralnmf"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
        version = f"git {head}" + (" (library sources modified in the working tree)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        version = "git: unknown"
    for lib in sorted(f for f in os.listdir(pkg) if f.startswith("_C") and f.endswith(".so")):
        mtime = datetime.datetime.fromtimestamp(os.path.getmtime(os.path.join(pkg, lib)))
        version += f", {lib} built {mtime.isoformat(timespec='seconds')}"
    return version


def print_machine(command: str | None = None, cpu_extra: str = "", torch_extra: str = "", details=(),
                  load_extra: str = "") -> None:
    """The "## Machine" section that opens a CPU benchmark's report: date, (command,) CPU, torch, python and
    build, then `details` (one list item each) and the load average at the start. The *_extra strings are
    appended to their lines."""
    say("## Machine")
    say()
    say(f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}")
    if command is not None:
        say(f"- command: {command}")
    say(f"- cpu: {cpu_model()}, {os.cpu_count()} logical cores{cpu_extra}")
    say(f"- torch {torch.__version__}, torch.get_num_threads() = {torch.get_num_threads()}{torch_extra}")
    say(f"- python {platform.python_version()}, neuralnmf {neuralnmf.__version__} ({code_version()})")
    for line in details:
        say(f"- {line}")
    say(f"- 1-minute load average at start: {os.getloadavg()[0]:.2f}{load_extra}")
    say()
