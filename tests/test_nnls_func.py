"""nnls under torch.func: vmap, grad, jacrev, jacfwd, vmap(grad) and functional_call over stacked models, each
against loops of eager calls (exact up to 1e-10 in float64) and finite differences (gradcheck); errors stay
errors under the transforms."""

import copy
import os
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
from conftest import make_generator
from test_nnls_grad import strictly_complementary_problem
from torch.func import functional_call, grad, jacfwd, jacrev, stack_module_state, vjp, vmap

import neuralnmf
from neuralnmf import _autograd, _extension, nnls
from neuralnmf.ops import NNLSConvergenceWarning, nnls_from_products

pytestmark = pytest.mark.usefixtures("one_thread")

TIGHT = dict(rtol=1e-10, atol=1e-10)


@pytest.fixture(autouse=True)
def no_fallback_warnings():
    """vmap must find our batching rules: torch's slow per-sample fallback warns, and that is an error here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*batching rule.*")
        warnings.filterwarnings("error", message=".*performance drop.*")
        yield


def problem(gen, *lead, N=10, k=4, M=7, dtype=torch.float64):
    X = torch.rand(*lead, N, M, generator=gen, dtype=dtype)
    A = torch.rand(*lead, N, k, generator=gen, dtype=dtype)
    return X, A


def eager_grads(loss, *args):
    """d loss / d args by plain autograd (the compiled C++ backward), one eager call."""
    args = [a.detach().clone().requires_grad_(True) for a in args]
    return torch.autograd.grad(loss(*args), args)


# --- vmap ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_vmap_over_X_A_and_both_equals_a_loop(dtype):
    g = make_generator(0)
    X, A = problem(g, 5, dtype=dtype)
    tol = TIGHT if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(vmap(nnls, in_dims=(0, None))(X, A[0]), torch.stack([nnls(x, A[0]) for x in X]), **tol)
    torch.testing.assert_close(vmap(nnls, in_dims=(None, 0))(X[0], A), torch.stack([nnls(X[0], a) for a in A]), **tol)
    torch.testing.assert_close(vmap(nnls)(X, A), torch.stack([nnls(x, a) for x, a in zip(X, A)]), **tol)


def test_vmap_over_other_dims_and_batched_operands():
    """in_dims other than 0, per-sample operands that carry their own batch (..., N, M), nested vmap."""
    g = make_generator(1)
    X, A = problem(g, 3, 4)  # X (3, 4, N, M), A (3, 4, N, k)
    Xt = X.movedim(0, -1)  # the vmapped dimension last: (4, N, M, 3)
    out = vmap(nnls, in_dims=(-1, None), out_dims=1)(Xt, A[0, 0])
    torch.testing.assert_close(out, torch.stack([nnls(X[i], A[0, 0]) for i in range(3)], 1), **TIGHT)
    # per-sample X (4, N, M) and A (4, N, k), vmapped over the 3; and A shared by all but per-sample batched X
    torch.testing.assert_close(vmap(nnls)(X, A), torch.stack([nnls(x, a) for x, a in zip(X, A)]), **TIGHT)
    torch.testing.assert_close(vmap(nnls, in_dims=(0, None))(X, A[0]), torch.stack([nnls(x, A[0]) for x in X]),
                               **TIGHT)
    torch.testing.assert_close(vmap(nnls, in_dims=(None, 0))(X[0, 0], A), torch.stack([nnls(X[0, 0], a) for a in A]),
                               **TIGHT)
    nested = vmap(vmap(nnls, in_dims=(0, None)), in_dims=(None, 0))(X[0], A[:, 0])  # (3 dictionaries, 4 data)
    loop = torch.stack([torch.stack([nnls(x, a) for x in X[0]]) for a in A[:, 0]])
    torch.testing.assert_close(nested, loop, **TIGHT)


def test_vmap_with_warm_start_and_info():
    g = make_generator(2)
    X, A = problem(g, 4)
    init = torch.stack([nnls(x, A[0]) for x in X]) > 0
    S, info = vmap(lambda x, i: nnls(x, A[0], init=i, return_info=True))(X, init)
    loop = [nnls(x, A[0], init=i, return_info=True) for x, i in zip(X, init)]
    torch.testing.assert_close(S, torch.stack([s for s, _ in loop]), **TIGHT)
    assert torch.equal(info, torch.stack([i for _, i in loop]))


def test_vmap_of_the_op_itself():
    """torch.ops.neuralnmf.* have batching rules of their own (no per-sample fallback)."""
    g = make_generator(3)
    X, A = problem(g, 4)
    S, info = vmap(torch.ops.neuralnmf.nnls, in_dims=(0, 0))(X, A)
    torch.testing.assert_close(S, torch.stack([nnls(x, a) for x, a in zip(X, A)]), **TIGHT)
    grads = torch.randn(S.shape, generator=g, dtype=S.dtype)
    V = vmap(torch.ops.neuralnmf.support_solve, in_dims=(0, None, 0))(grads, A[0], S)
    loop = torch.stack([torch.ops.neuralnmf.support_solve(gr, A[0], s) for gr, s in zip(grads, S)])
    torch.testing.assert_close(V, loop, **TIGHT)
    AtX = A.mT @ X
    S2, _ = vmap(torch.ops.neuralnmf.nnls_rhs)(AtX, A)
    torch.testing.assert_close(S2, S, rtol=1e-8, atol=1e-8)


# --- reverse mode: grad, vjp, jacrev, vmap(grad) --------------------------------------------------------------


def _loss(X, A):
    S = nnls(X, A)
    return ((X - A @ S) ** 2).sum() + (S * torch.arange(S.shape[-2], dtype=S.dtype)[:, None]).sum()


def test_grad_and_vjp_equal_eager_backward():
    g = make_generator(4)
    X, A = problem(g, N=12, k=5, M=9)
    dX, dA = grad(_loss, argnums=(0, 1))(X, A)
    eX, eA = eager_grads(_loss, X, A)
    torch.testing.assert_close(dX, eX, **TIGHT)
    torch.testing.assert_close(dA, eA, **TIGHT)
    S, pull = vjp(lambda a: nnls(X, a), A)
    cot = torch.randn(S.shape, generator=g, dtype=S.dtype)
    A_ = A.clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(nnls(X, A_), A_, cot)
    torch.testing.assert_close(pull(cot)[0], ref, **TIGHT)


def test_per_sample_gradients_vmap_grad_equal_a_loop():
    g = make_generator(5)
    X, A = problem(g, 6, N=12, k=5, M=9)
    dA = vmap(grad(_loss, argnums=1), in_dims=(0, None))(X, A[0])  # per-sample gradients of a shared dictionary
    torch.testing.assert_close(dA, torch.stack([eager_grads(_loss, x, A[0])[1] for x in X]), **TIGHT)
    dX, dA = vmap(grad(_loss, argnums=(0, 1)))(X, A)
    loop = [eager_grads(_loss, x, a) for x, a in zip(X, A)]
    torch.testing.assert_close(dX, torch.stack([d for d, _ in loop]), **TIGHT)
    torch.testing.assert_close(dA, torch.stack([d for _, d in loop]), **TIGHT)
    # a batch inside each sample, sharing the sample's dictionary
    dA = vmap(grad(_loss, argnums=1))(X.reshape(3, 2, *X.shape[1:]), A[:3])
    torch.testing.assert_close(dA, torch.stack([eager_grads(_loss, X[2 * i:2 * i + 2], A[i])[1] for i in range(3)]),
                               **TIGHT)


def test_grad_of_vmap_equals_eager_backward():
    g = make_generator(6)
    X, A = problem(g, 5, N=12, k=5, M=9)

    def batched_loss(X, A):
        return vmap(_loss, in_dims=(0, None))(X, A).sum()

    dX, dA = grad(batched_loss, argnums=(0, 1))(X, A[0])
    eX, eA = eager_grads(lambda x, a: sum(_loss(xi, a) for xi in x), X, A[0])
    torch.testing.assert_close(dX, eX, **TIGHT)
    torch.testing.assert_close(dA, eA, **TIGHT)


@pytest.mark.parametrize("wrt", [0, 1])
def test_jacrev_and_jacfwd_equal_the_eager_jacobian(wrt):
    g = make_generator(7)
    X, A, _ = strictly_complementary_problem(9, 4, 5, g)
    eager = torch.autograd.functional.jacobian(lambda x, a: nnls(x, a), (X, A))[wrt]
    torch.testing.assert_close(jacrev(nnls, argnums=wrt)(X, A), eager, **TIGHT)
    torch.testing.assert_close(jacfwd(nnls, argnums=wrt)(X, A), eager, **TIGHT)


def test_jacobians_equal_finite_differences():
    """The independent check: central differences on a problem whose active set no step of 1e-6 changes."""
    g = make_generator(8)
    X, A, _ = strictly_complementary_problem(8, 3, 4, g)
    h = 1e-6
    for wrt, x0 in ((0, X), (1, A)):
        cols = []
        for i in range(x0.numel()):
            e = torch.zeros(x0.numel(), dtype=x0.dtype)
            e[i] = h
            e = e.reshape(x0.shape)
            args_p, args_m = [X, A], [X, A]
            args_p[wrt], args_m[wrt] = x0 + e, x0 - e
            cols.append((nnls(*args_p) - nnls(*args_m)) / (2 * h))
        fd = torch.stack(cols, -1).reshape(*nnls(X, A).shape, *x0.shape)
        torch.testing.assert_close(jacrev(nnls, argnums=wrt)(X, A), fd, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(jacfwd(nnls, argnums=wrt)(X, A), fd, rtol=1e-6, atol=1e-7)


def test_function_path_gradcheck_forward_and_reverse():
    """The Function the transforms run, checked by gradcheck (finite differences) in both modes, batched too."""
    g = make_generator(9)
    for lead in ((), (2,)):
        X, A, _ = strictly_complementary_problem(8, 3, 5, g, batch=lead)
        X.requires_grad_(True)
        A.requires_grad_(True)
        f = lambda x, a: _autograd.NNLSFunction.apply(x, a, None, 0)[0]  # noqa: E731
        assert torch.autograd.gradcheck(f, (X, A), eps=1e-6, atol=1e-6, rtol=1e-5, check_forward_ad=True)
        AtX = (A.mT @ X).detach().requires_grad_(True)
        f = lambda b, a: _autograd.NNLSRhsFunction.apply(b, a, None, 0)[0]  # noqa: E731
        assert torch.autograd.gradcheck(f, (AtX, A), eps=1e-6, atol=1e-6, rtol=1e-5, check_forward_ad=True)
    X, A, _ = strictly_complementary_problem(8, 3, 5, g)
    A.requires_grad_(True)
    Xb = torch.stack([X, X.flip(-1)])
    assert torch.autograd.gradcheck(lambda a: vmap(nnls, in_dims=(0, None))(Xb, a), (A,), eps=1e-6, atol=1e-6,
                                    rtol=1e-5)


def test_nnls_from_products_under_transforms():
    g = make_generator(10)
    X, A = problem(g, 4, N=12, k=5, M=9)

    def loss(A, X):
        S = nnls_from_products(A.mT @ X, A)
        return ((X - A @ S) ** 2).sum()

    torch.testing.assert_close(vmap(lambda a, x: nnls_from_products(a.mT @ x, a))(A, X),
                               torch.stack([nnls(x, a) for x, a in zip(X, A)]), rtol=1e-8, atol=1e-8)
    per_sample = vmap(grad(loss), in_dims=(None, 0))(A[0], X)
    torch.testing.assert_close(per_sample, torch.stack([eager_grads(loss, A[0], x)[0] for x in X]), **TIGHT)
    eager = torch.autograd.functional.jacobian(lambda a: nnls_from_products(a.mT @ X[0], a), A[0])
    torch.testing.assert_close(jacfwd(lambda a: nnls_from_products(a.mT @ X[0], a))(A[0]), eager, **TIGHT)
    torch.testing.assert_close(jacrev(lambda a: nnls_from_products(a.mT @ X[0], a))(A[0]), eager, **TIGHT)


def test_eager_mode_keeps_the_compiled_backward():
    """Outside transforms nothing changes: the graph node is the C++ Function's, not the Python path."""
    if not _extension.has_kernel("nnls", "Autograd"):
        pytest.skip("compiled autograd not built")
    g = make_generator(11)
    X, A = problem(g)
    S = nnls(X, A.requires_grad_(True))
    assert type(S.grad_fn).__name__ == "CppFunction", type(S.grad_fn)  # a Python Function would be NNLSFunctionBackward


# --- models: functional_call and vmap over stacked parameters (ensembles) -------------------------------------


def test_ensemble_of_layers_with_functional_call():
    g = make_generator(12)
    layers = [neuralnmf.NNLSLayer(10, 3, generator=g, dtype=torch.float64) for _ in range(4)]
    x = torch.rand(7, 10, generator=g, dtype=torch.float64)
    params, buffers = stack_module_state(layers)
    base = copy.deepcopy(layers[0]).to("meta")

    def codes(p, b, x):
        return functional_call(base, (p, b), (x,))

    out = vmap(codes, in_dims=(0, 0, None))(params, buffers, x)
    torch.testing.assert_close(out, torch.stack([layer(x) for layer in layers]), **TIGHT)

    def loss(p, b, x):
        return (codes(p, b, x) ** 2).sum()

    per_model = vmap(grad(loss), in_dims=(0, 0, None))(params, buffers, x)["A"]
    loop = []
    for layer in layers:
        layer.zero_grad()
        (layer(x) ** 2).sum().backward()
        loop.append(layer.A.grad)
    torch.testing.assert_close(per_model, torch.stack(loop), **TIGHT)
    # per-sample gradients of one model
    p = {"A": layers[0].A.detach()}
    per_sample = vmap(grad(lambda p, xi: (functional_call(layers[0], p, (xi,)) ** 2).sum()), in_dims=(None, 0))(p, x)
    loop = [torch.autograd.grad((layers[0](xi) ** 2).sum(), layers[0].A)[0] for xi in x]
    torch.testing.assert_close(per_sample["A"], torch.stack(loop), **TIGHT)


def test_ensemble_of_neural_nmf_models():
    g = make_generator(13)
    x = torch.rand(20, 12, generator=g, dtype=torch.float64)
    models = [neuralnmf.NeuralNMF(12, (4, 2), init="uniform", generator=g, dtype=torch.float64) for _ in range(3)]
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")

    def last_codes(p, b, x):
        return functional_call(base, (p, b), (x,)).codes[-1]

    out = vmap(last_codes, in_dims=(0, 0, None))(params, buffers, x)
    torch.testing.assert_close(out, torch.stack([m(x).codes[-1] for m in models]), **TIGHT)
    grads = vmap(grad(lambda p, b, x: last_codes(p, b, x).sum()), in_dims=(0, 0, None))(params, buffers, x)
    for i, m in enumerate(models):
        m.zero_grad()
        m(x).codes[-1].sum().backward()
        for name, prm in m.named_parameters():
            torch.testing.assert_close(grads[name][i], prm.grad, **TIGHT)
    # the transforms left nothing in the models' warm-start caches: eager calls still work and agree
    torch.testing.assert_close(models[0](x).codes[-1], out[0], **TIGHT)


# --- what stays an error ----------------------------------------------------------------------------------


def test_bad_input_still_raises_under_transforms():
    g = make_generator(14)
    X, A = problem(g, 3)
    X[1, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        vmap(nnls, in_dims=(0, None))(X, A[0])
    with pytest.raises(ValueError, match="NaN or Inf"):
        grad(lambda a: nnls(X[1], a).sum())(A[0])
    with pytest.raises(ValueError, match="rows"):
        vmap(nnls, in_dims=(0, None))(X, A[0, :-1])


def test_iteration_bound_warns_under_vmap():
    g = make_generator(15)
    A = torch.rand(40, 12, generator=g, dtype=torch.float64)
    X = torch.randn(3, 40, 30, generator=g, dtype=torch.float64)
    with pytest.warns(NNLSConvergenceWarning):
        nnls(X[0], A, max_iter=1)  # the eager warning, so the case below is one that warns
    with pytest.warns(NNLSConvergenceWarning, match="iteration bound"):
        vmap(lambda x: nnls(x, A, max_iter=1))(X)


def test_second_derivatives_are_refused():
    g = make_generator(16)
    X, A = problem(g)
    with pytest.raises(NotImplementedError, match="not supported"):
        grad(lambda a: grad(lambda b: nnls(X, b).sum())(a).sum())(A)
    with pytest.raises(NotImplementedError, match="not supported"):
        jacfwd(jacrev(lambda a: nnls(X, a).sum()))(A)


def test_transforms_without_compiled_extension():
    """With neuralnmf._C unimportable (the reference kernels, the Python backward), the transforms work alike."""
    code = textwrap.dedent(
        """
        import sys, warnings
        warnings.simplefilter("ignore")
        sys.modules["neuralnmf._C"] = None  # makes `from . import _C` raise ImportError
        import torch, neuralnmf
        from torch.func import grad, jacfwd, vmap
        assert not neuralnmf._extension.HAS_C
        g = torch.Generator().manual_seed(0)
        X = torch.rand(3, 10, 6, generator=g, dtype=torch.float64)
        A = torch.rand(10, 4, generator=g, dtype=torch.float64)
        loss = lambda x, a: (neuralnmf.nnls(x, a) ** 2).sum()
        got = {"S": vmap(neuralnmf.nnls, in_dims=(0, None))(X, A),
               "dA": vmap(grad(loss, argnums=1), in_dims=(0, None))(X, A),
               "J": jacfwd(neuralnmf.nnls, argnums=1)(X[0], A)}
        torch.save(got, sys.argv[1])
        """
    )
    out = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"neuralnmf_func_fallback_{os.getpid()}.pt")
    subprocess.run([sys.executable, "-c", code, out], check=True, timeout=300)
    got = torch.load(out)
    os.remove(out)
    g = torch.Generator().manual_seed(0)
    X = torch.rand(3, 10, 6, generator=g, dtype=torch.float64)
    A = torch.rand(10, 4, generator=g, dtype=torch.float64)
    torch.testing.assert_close(got["S"], torch.stack([nnls(x, A) for x in X]), rtol=1e-10, atol=1e-12)
    loop = [eager_grads(lambda a: (nnls(x, a) ** 2).sum(), A)[0] for x in X]
    torch.testing.assert_close(got["dA"], torch.stack(loop), rtol=1e-8, atol=1e-10)
    J = torch.autograd.functional.jacobian(lambda a: nnls(X[0], a), A)
    torch.testing.assert_close(got["J"], J, rtol=1e-8, atol=1e-10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_transforms_on_cuda_equal_the_cpu():
    g = make_generator(17)
    X, A = problem(g, 4, N=12, k=5, M=9)
    per_sample = vmap(grad(_loss, argnums=1), in_dims=(0, None))
    S = vmap(nnls, in_dims=(0, None))(X.cuda(), A[0].cuda())
    torch.testing.assert_close(S.cpu(), vmap(nnls, in_dims=(0, None))(X, A[0]), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(per_sample(X.cuda(), A[0].cuda()).cpu(), per_sample(X, A[0]), rtol=1e-9, atol=1e-9)
    X[1, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        vmap(nnls, in_dims=(0, None))(X.cuda(), A[0].cuda())


def test_sparse_data_is_refused_clearly_under_transforms():
    g = make_generator(18)
    X, A = problem(g)
    with pytest.raises(NotImplementedError, match="sparse X is not supported under torch.func"):
        grad(lambda a: nnls(X.to_sparse(), a).sum())(A)
    with pytest.raises(NotImplementedError, match="sparse x is not supported under torch.func"):
        vmap(lambda a: neuralnmf.ops.nnls_sparse_rows(X.mT.to_sparse(), a))(torch.stack([A, A]))
