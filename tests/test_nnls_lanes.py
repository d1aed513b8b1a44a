"""On a CPU with AVX-512, the CPU kernel solves the columns of a guessed tile eight at a time, one per SIMD lane
(csrc/cpu/lane_solver.{h,cpp}, lane_kernels.h): the same factorization, solves, dual and KKT test as the scalar
column solver, operation for operation. The environment variable NEURALNMF_LANES=off, read when the process
starts, turns the lanes off; S must then be the same to the bit, on unique and on degenerate problems alike
(the lanes' pivoting rounds are the scalar solver's first full exchanges).
"""

import os
import subprocess
import sys

import pytest
import torch
from conftest import make_generator

from neuralnmf import nnls
from neuralnmf.ops import nnls_from_products

pytestmark = pytest.mark.usefixtures("one_thread")


def _has_avx512() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return " avx512f" in f.read()
    except OSError:
        return False


def problems():
    """(name, X, A) at the ranks where the guess runs, in both dtypes: uniform and Gaussian data, and a
    degenerate mix (zero columns, columns of A, planted sparse codes, a repeated column, magnitudes far apart)."""
    gen = make_generator(4242)
    out = []
    for dtype in (torch.float64, torch.float32):
        for N, k, M in [(500, 16, 700), (500, 32, 1100), (500, 64, 700), (2000, 64, 300), (300, 128, 300)]:
            for make in (torch.rand, torch.randn):
                A = make(N, k, generator=gen, dtype=torch.float64)
                X = make(N, M, generator=gen, dtype=torch.float64)
                out.append((f"{make.__name__} {N} {k} {M} {dtype}", X.to(dtype), A.to(dtype)))
        N, k = 300, 48
        A = torch.rand(N, k, generator=gen, dtype=torch.float64)
        planted = torch.rand(k, 200, generator=gen, dtype=torch.float64) * (torch.rand(k, 200, generator=gen) < 0.1)
        e = 150 if dtype == torch.float64 else 15
        parts = [torch.rand(N, 300, generator=gen, dtype=torch.float64), torch.zeros(N, 40, dtype=torch.float64),
                 A[:, torch.arange(60) % k], A @ planted,
                 torch.rand(N, 1, generator=gen, dtype=torch.float64).expand(N, 100),
                 torch.rand(N, 60, generator=gen, dtype=torch.float64) * torch.logspace(-e, e, 60, dtype=torch.float64)]
        X = torch.cat(parts, dim=1)[:, torch.randperm(760, generator=gen)]
        out.append((f"degenerate {dtype}", X.to(dtype), A.to(dtype)))
    return out


def solve_all():
    """S from the data and from the products A^T X, for every problem."""
    torch.set_num_threads(1)
    return [(name, nnls(X, A), nnls_from_products(A.T @ X, A)) for name, X, A in problems()]


def test_lanes_give_the_scalar_solvers_bits(tmp_path):
    """The same S to the bit with the lanes on (this process) and off (a child process)."""
    if not _has_avx512():
        pytest.skip("no AVX-512: both runs would be the scalar solver")
    out = tmp_path / "off.pt"
    code = ("import sys, torch; sys.path.insert(0, sys.argv[2]); import test_nnls_lanes as t; "
            "torch.save(t.solve_all(), sys.argv[1])")
    env = dict(os.environ, NEURALNMF_LANES="off")
    subprocess.run([sys.executable, "-c", code, str(out), os.path.dirname(__file__)], env=env, check=True)
    off = torch.load(out)
    on = solve_all()
    assert [name for name, _, _ in on] == [name for name, _, _ in off]
    for (name, S, P), (_, S_off, P_off) in zip(on, off):
        assert torch.equal(S, S_off), name
        assert torch.equal(P, P_off), name
