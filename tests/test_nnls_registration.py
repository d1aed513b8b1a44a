"""The op as torch sees it: opcheck, torch.compile, schemas, and the pure-torch fallback without _C."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import make_generator

import neuralnmf
from neuralnmf import _extension, _library, nnls


def _samples():
    g = make_generator(11)
    for dtype in (torch.float64, torch.float32):
        A = torch.rand(12, 4, generator=g, dtype=dtype)
        X = torch.rand(12, 9, generator=g, dtype=dtype)
        yield (X, A), {}
        yield (X.expand(2, 12, 9).contiguous(), A), {}  # shared dictionary
        yield (torch.rand(2, 12, 5, generator=g, dtype=dtype), torch.rand(2, 12, 3, generator=g, dtype=dtype)), {}
        yield (X, A, torch.rand(4, 9, generator=g) > 0.5), {"max_iter": 0}


@pytest.mark.parametrize("requires_grad", [False, True])
def test_opcheck_nnls(requires_grad):
    for args, kwargs in _samples():
        args = tuple(a.clone().requires_grad_(requires_grad and a.is_floating_point()) if i < 2 else a
                     for i, a in enumerate(args))
        torch.library.opcheck(torch.ops.neuralnmf.nnls.default, args, kwargs)


@pytest.mark.parametrize("requires_grad", [False, True])
def test_opcheck_nnls_rhs(requires_grad):
    g = make_generator(14)
    for dtype in (torch.float64, torch.float32):
        A = torch.rand(12, 4, generator=g, dtype=dtype)
        X = torch.rand(2, 12, 9, generator=g, dtype=dtype)
        AtX = A.T @ X
        for args in ((AtX[0], A), (AtX, A), (AtX[0], A, AtX[0] > 0.5)):
            args = tuple(a.clone().requires_grad_(requires_grad and a.is_floating_point()) for a in args)
            torch.library.opcheck(torch.ops.neuralnmf.nnls_rhs.default, args)


def test_opcheck_support_solve():
    g = make_generator(12)
    A = torch.rand(12, 4, generator=g, dtype=torch.float64)
    S = nnls(torch.rand(2, 12, 9, generator=g, dtype=torch.float64), A)
    grad = torch.randn(S.shape, generator=g, dtype=torch.float64)
    torch.library.opcheck(torch.ops.neuralnmf.support_solve.default, (grad, A, S))
    torch.library.opcheck(torch.ops.neuralnmf.support_solve.default, (grad[0], A, S[0]))


def test_torch_compile_fullgraph_forward_and_backward():
    torch._dynamo.reset()
    g = make_generator(13)
    A0 = torch.rand(20, 5, generator=g, dtype=torch.float64)
    X0 = torch.rand(20, 30, generator=g, dtype=torch.float64)

    def loss(X, A):
        S = nnls(X, A)
        return ((X - A @ S) ** 2).sum() + S.sum()

    compiled = torch.compile(loss, fullgraph=True)
    Xe, Ae = X0.clone().requires_grad_(True), A0.clone().requires_grad_(True)
    Xc, Ac = X0.clone().requires_grad_(True), A0.clone().requires_grad_(True)
    le, lc = loss(Xe, Ae), compiled(Xc, Ac)
    le.backward()
    lc.backward()
    torch.testing.assert_close(lc, le)
    torch.testing.assert_close(Xc.grad, Xe.grad)
    torch.testing.assert_close(Ac.grad, Ae.grad)


def test_python_schemas_equal_the_compiled_ones():
    """The fallback defines the ops from Python with these strings: they must not drift from csrc/nnls.cpp."""
    if not _extension.HAS_C:
        pytest.skip("compiled extension not built")
    for name, schema in (("nnls", _library.NNLS_SCHEMA), ("nnls_rhs", _library.NNLS_RHS_SCHEMA),
                         ("support_solve", _library.SUPPORT_SOLVE_SCHEMA)):
        compiled = getattr(torch.ops.neuralnmf, name).default._schema
        assert str(compiled) == str(torch._C.parse_schema("neuralnmf::" + schema))


def test_compiled_kernels_are_registered():
    assert _extension.HAS_C, f"neuralnmf._C failed to import: {_extension.IMPORT_ERROR}"
    for name in ("nnls", "nnls_rhs", "support_solve"):
        assert _extension.has_kernel(name, "CPU"), name
    for name in ("nnls", "nnls_rhs"):  # the C++ backward (csrc/autograd.cpp), not the Python one
        assert _extension.has_kernel(name, "Autograd"), name


def test_import_without_compiled_extension_falls_back_to_reference():
    """With neuralnmf._C unimportable, nnls still works (forward and backward) and warns once."""
    code = textwrap.dedent(
        """
        import sys, warnings
        sys.modules["neuralnmf._C"] = None  # makes `from . import _C` raise ImportError
        import torch, neuralnmf
        assert not neuralnmf._extension.HAS_C
        g = torch.Generator().manual_seed(0)
        A = torch.rand(15, 4, generator=g, dtype=torch.float64, requires_grad=True)
        X = torch.rand(15, 8, generator=g, dtype=torch.float64, requires_grad=True)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            S = neuralnmf.nnls(X, A)
            S.sum().backward()
            neuralnmf.nnls(X, A)
        msgs = [str(x.message) for x in w if "reference implementation" in str(x.message)]
        assert len(msgs) == 1, msgs
        assert "could not be imported" in msgs[0], msgs[0]
        torch.save({"S": S.detach(), "dA": A.grad, "dX": X.grad}, sys.argv[1])
        """
    )
    out = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"neuralnmf_fallback_{os.getpid()}.pt")
    subprocess.run([sys.executable, "-c", code, out], check=True, timeout=300)
    got = torch.load(out)
    os.remove(out)
    g = torch.Generator().manual_seed(0)
    A = torch.rand(15, 4, generator=g, dtype=torch.float64, requires_grad=True)
    X = torch.rand(15, 8, generator=g, dtype=torch.float64, requires_grad=True)
    S = nnls(X, A)
    S.sum().backward()  # the compiled forward and C++ backward against the reference and the Python backward
    torch.testing.assert_close(got["S"], S.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got["dA"], A.grad, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(got["dX"], X.grad, rtol=1e-8, atol=1e-10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_are_served():
    A = torch.rand(20, 4, dtype=torch.float64, device="cuda")
    X = torch.rand(20, 9, dtype=torch.float64, device="cuda")
    S = nnls(X, A)
    assert S.device.type == "cuda"
    torch.testing.assert_close(S.cpu(), nnls(X.cpu(), A.cpu()), rtol=1e-9, atol=1e-12)


def test_version():
    assert isinstance(neuralnmf.__version__, str)


def test_extension_build_must_match_the_installed_torch():
    from neuralnmf._extension import build_mismatch

    assert build_mismatch("2.13.0+cpu", "", "2.13.1+cpu", None) is None
    assert build_mismatch("2.11.0+cu130", "13.0", "2.11.0+cu130", "13.0") is None
    assert build_mismatch("", "", "2.13.0", None) is None  # an older build without versions
    message = build_mismatch("2.13.0+cpu", "", "2.14.1", "12.8")
    assert "built for torch 2.13.0+cpu" in message and "2.14.1" in message and "pip install" in message
    message = build_mismatch("2.11.0", "12.8", "2.11.0", "13.0")
    assert "CUDA 12.8" in message and "CUDA 13.0" in message
    if _extension.HAS_C:  # the build in use records what it was built for, and it matches
        assert getattr(neuralnmf._C, "torch_version", torch.__version__).split(".")[:2] == \
            torch.__version__.split(".")[:2]
