"""The classical baselines: ssnmf's updates exactly, monotone objectives, masks that hide what they should,
reproducibility, dtypes, accessors and bad input. Small problems only (the whole file runs in seconds)."""

import numpy as np
import pytest
import torch

from neuralnmf.baselines import DeepNMF, HierarchicalNMF, NMFResult, nmf_mu, ssnmf_mu
from neuralnmf.baselines._deep import finetune
from neuralnmf.baselines._mu import EarlyStop

DTYPES = [torch.float64, torch.float32]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
# Largest relative rise of a recorded objective allowed between iterations: round-off plus the 2 eps sum(factors)
# term of the majorized function (see neuralnmf/baselines/_mu.py), which is ~1e-12 relative here.
RISE = {torch.float64: 1e-10, torch.float32: 1e-5}


pytestmark = pytest.mark.usefixtures("one_thread")  # small problems: see conftest.one_thread


def data(M=40, N=30, dtype=torch.float64, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(M, N, generator=g, dtype=torch.float64).to(dtype=dtype, device=device)


def semi_labels(M=40, c=3, seed=1, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, c, (M,), generator=g)
    mask = torch.rand(M, generator=g) < 0.5
    return y.to(device), mask.to(device)


def data_mask(M=40, N=30, seed=2, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(M, N, generator=g) > 0.2).to(device)


def planted(c=3, per_class=15, block=10, noise=0.1, seed=3):
    """Class j's samples load the feature block j: NMF with c topics separates them."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(c).repeat_interleave(per_class)
    x = noise * torch.rand(c * per_class, c * block, generator=g, dtype=torch.float64)
    for j in range(c):
        x[y == j, j * block : (j + 1) * block] += 1.0
    return x, y


def assert_non_increasing(h, dtype):
    h = h.double().cpu()
    assert h.numel() > 1
    rise = ((h[1:] - h[:-1]) / h[:-1].abs().clamp_min(1e-300)).max().item()
    assert rise <= RISE[dtype], f"objective rose by {rise:.3e} (relative)"


def phi(x, A, S, *, W=None, B=None, Y=None, Lc=None, lam=0.0, eps=1e-10):
    """The function every update majorize-minimizes (papers' orientation, float64)."""
    X = x.double().mT
    R = X - A.double() @ S.double()
    if W is not None:
        R = R * W.double().mT
    out = (R * R).sum() + 2 * eps * (A.double().sum() + S.double().sum())
    if B is not None:
        C = (Y - B.double() @ S.double()) * Lc
        out = out + lam * (C * C).sum() + 2 * eps * lam * B.double().sum()
    return out.item()


# --- ssnmf 1.0.3 semantics, written independently in numpy from protocols section 1.7 ---------------------------

def ssnmf_reference(X, A, S, *, W=None, Y=None, B=None, L=None, lam=1.0, tol=0.0, iters=100, eps=1e-10):
    """ssnmf's mult() for modelNum 1 (Y None) and 3, numpy, papers' orientation; returns (A, S, B, n_iter)."""
    W = np.ones_like(X) if W is None else W
    first = prev = cur = 0.0
    for i in range(iters):
        A = A / (eps + (W * (A @ S)) @ S.T) * ((W * X) @ S.T)
        if Y is None:
            S = (S.T / (eps + (W.T * (S.T @ A.T)) @ A) * ((W.T * X.T) @ A)).T
            prev, cur = cur, np.linalg.norm(W * (X - A @ S))
        else:
            B = B / (eps + (L * (B @ S)) @ S.T) * ((L * Y) @ S.T)
            S = S / (eps + A.T @ (W * (A @ S)) + lam * B.T @ (L * (B @ S))) * (
                A.T @ (W * X) + lam * B.T @ (L * Y))
            prev, cur = cur, np.linalg.norm(W * (X - A @ S)) ** 2 + lam * np.linalg.norm(L * (Y - B @ S)) ** 2
        if i == 0:
            first = cur
        if i > 0 and (prev - cur) / first < tol:
            return A, S, B, i + 1
    return A, S, B, iters


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("tol", [0.0, 1e-3])
def test_nmf_mu_is_ssnmf_model_1(masked, tol):
    x = data()
    W = data_mask() if masked else None
    g = torch.Generator().manual_seed(4)
    A0, S0 = (torch.rand(s, generator=g, dtype=torch.float64) for s in [(30, 5), (5, 40)])
    res = nmf_mu(x, 5, max_iter=150, tol=tol, check_every=1, init=(A0, S0), data_mask=W)
    Wn = None if W is None else W.double().numpy().T
    A, S, _, n = ssnmf_reference(x.numpy().T, A0.numpy(), S0.numpy(), W=Wn, tol=tol, iters=150)
    assert res.n_iter == n
    assert (n < 150) == (tol > 0)
    np.testing.assert_allclose(res.A.numpy(), A, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.S.numpy(), S, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("tol", [0.0, 1e-3])
def test_ssnmf_mu_is_ssnmf_model_3(tol):
    x = data()
    y, lm = semi_labels()
    W = data_mask()
    g = torch.Generator().manual_seed(5)
    A0, S0, B0 = (torch.rand(s, generator=g, dtype=torch.float64) for s in [(30, 5), (5, 40), (3, 5)])
    res = ssnmf_mu(x, 5, y, label_mask=lm, num_classes=3, lam=0.5, max_iter=150, tol=tol, check_every=1,
                   init=(A0, S0, B0), data_mask=W)
    Y = np.eye(3)[y.numpy()].T
    L = np.tile(lm.double().numpy(), (3, 1))
    A, S, B, n = ssnmf_reference(x.numpy().T, A0.numpy(), S0.numpy(), W=W.double().numpy().T, Y=Y, B=B0.numpy(),
                                 L=L, lam=0.5, tol=tol, iters=150)
    assert res.n_iter == n
    for ours, ref in [(res.A, A), (res.S, S), (res.B, B)]:
        np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-9, atol=1e-12)


# --- iterations and early stopping ------------------------------------------------------------------------------

def test_tol_zero_runs_every_iteration_and_tol_stops_early():
    x = data()
    assert nmf_mu(x, 5, max_iter=300, seed=0).history.shape == (300,)
    assert nmf_mu(x, 5, max_iter=0, seed=0).history.shape == (0,)
    exact = nmf_mu(x, 5, max_iter=300, tol=1e-3, check_every=1, seed=0)
    coarse = nmf_mu(x, 5, max_iter=300, tol=1e-3, seed=0)  # check_every=10
    assert 1 < exact.n_iter < 300
    assert exact.n_iter <= coarse.n_iter < exact.n_iter + 10 and coarse.n_iter % 10 == 0
    torch.testing.assert_close(coarse.history[: exact.n_iter], exact.history, rtol=0, atol=0)
    # the rule fired exactly at the last iteration of the check_every=1 run
    e = exact.history.sqrt()
    dec = (e[:-1] - e[1:]) / e[0]
    assert dec[-1] < 1e-3 and bool((dec[:-1] >= 1e-3).all())


def test_early_stop_fires_when_the_error_rises():
    stop = EarlyStop(1e-9, 1, 100, sqrt=False)
    h = torch.tensor([10.0, 9.0, 9.5])
    assert not stop(h, 0) and not stop(h, 1) and stop(h, 2)


def test_ssnmf_early_stop_uses_squared_objective():
    x = data()
    y, _ = semi_labels()
    res = ssnmf_mu(x, 5, y, max_iter=300, tol=1e-3, check_every=1, seed=0)
    dec = (res.history[:-1] - res.history[1:]) / res.history[0]
    assert res.n_iter < 300 and dec[-1] < 1e-3 and bool((dec[:-1] >= 1e-3).all())


# --- monotone objectives ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("masked", [False, True])
def test_nmf_mu_majorized_function_never_increases(masked):
    """Single iterations chained through init: Phi = ||W (X - AS)||^2 + 2 eps (sum A + sum S) never rises."""
    x = data()
    W = data_mask() if masked else None
    res = nmf_mu(x, 4, max_iter=0, seed=0, data_mask=W)
    values = [phi(x, res.A, res.S, W=W)]
    for _ in range(60):
        res = nmf_mu(x, 4, max_iter=1, init=(res.A, res.S), data_mask=W)
        values.append(phi(x, res.A, res.S, W=W))
    v = torch.tensor(values)
    assert bool((v[1:] <= v[:-1] * (1 + 1e-14)).all())


def test_ssnmf_mu_majorized_function_never_increases():
    x = data()
    y, lm = semi_labels()
    W = data_mask()
    Y = torch.nn.functional.one_hot(y, 3).double().T * lm.double()
    kw = dict(label_mask=lm, num_classes=3, lam=2.0, data_mask=W)
    res = ssnmf_mu(x, 4, y, max_iter=0, seed=0, **kw)
    values = [phi(x, res.A, res.S, W=W, B=res.B, Y=Y, Lc=lm.double(), lam=2.0)]
    for _ in range(60):
        res = ssnmf_mu(x, 4, y, max_iter=1, init=(res.A, res.S, res.B), **kw)
        values.append(phi(x, res.A, res.S, W=W, B=res.B, Y=Y, Lc=lm.double(), lam=2.0))
    v = torch.tensor(values)
    assert bool((v[1:] <= v[:-1] * (1 + 1e-14)).all())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_recorded_objectives_never_increase(dtype, device):
    x = data(dtype=dtype, device=device)
    y, lm = semi_labels(device=device)
    W = data_mask(device=device)
    assert_non_increasing(nmf_mu(x, 5, max_iter=300, seed=0).history, dtype)
    assert_non_increasing(nmf_mu(x, 5, max_iter=300, seed=0, data_mask=W).history, dtype)
    assert_non_increasing(ssnmf_mu(x, 5, y, label_mask=lm, max_iter=300, seed=0, data_mask=W).history, dtype)
    h = HierarchicalNMF([6, 4, 2], max_iter=200, seed=0).fit(x, y, lm, data_mask=W)
    for hist in h.histories_:
        assert_non_increasing(hist, dtype)
    for kw in [dict(), dict(y=y, label_mask=lm, data_mask=W), dict(y=y)]:
        d = DeepNMF([6, 4, 2], pretrain_max_iter=50, finetune_max_iter=200, seed=0).fit(x, **kw)
        assert_non_increasing(d.history_, dtype)
        for hist in d.pretrain_histories_:
            assert_non_increasing(hist, dtype)


def test_deep_nmf_finetune_majorized_function_never_increases():
    """One sweep at a time: E + 2 eps (sum Z + lam sum B + sum H_L) never rises, also from a random start."""
    x = data()
    y, lm = semi_labels()
    W = data_mask()
    X = torch.where(W, x, 0).mT.contiguous()
    Wt = W.double().mT.contiguous()
    Y = torch.nn.functional.one_hot(y, 3).double().T * lm.double()
    g = torch.Generator().manual_seed(7)
    Z = [torch.rand(s, generator=g, dtype=torch.float64) for s in [(30, 6), (6, 4), (4, 2)]]
    H = [torch.rand(k, 40, generator=g, dtype=torch.float64) for k in (6, 4, 2)]
    B = torch.rand(3, 2, generator=g, dtype=torch.float64)

    def value():
        P = Z[0] @ Z[1] @ Z[2]
        R = Wt * (X - P @ H[2])
        C = (Y - B @ H[2]) * lm.double()
        return ((R * R).sum() + 3.0 * (C * C).sum()
                + 2e-10 * (sum(z.sum() for z in Z) + 3.0 * B.sum() + H[2].sum())).item()

    values = [value()]
    for _ in range(60):
        B, _ = finetune(X, Wt, Z, H, B, Y, lm.double(), 3.0, iters=1, stop=EarlyStop(0.0, 1, 1, False), eps=1e-10)
        values.append(value())
    v = torch.tensor(values)
    assert v[-1] < 0.9 * v[0]
    assert bool((v[1:] <= v[:-1] * (1 + 1e-14)).all())


# --- masks ------------------------------------------------------------------------------------------------------

def test_hidden_entries_do_not_change_the_result():
    x = data()
    W = data_mask()
    junk = torch.tensor([float("nan"), -5.0, 1e6, float("inf")], dtype=torch.float64)
    x2 = torch.where(W, x, junk[torch.arange(x.numel()).reshape(x.shape) % 4])  # NaN, negative, huge, Inf
    y, lm = semi_labels()
    for fit in [
        lambda z: nmf_mu(z, 5, max_iter=50, seed=0, data_mask=W).A,
        lambda z: ssnmf_mu(z, 5, y, label_mask=lm, max_iter=50, seed=0, data_mask=W).S,
        lambda z: HierarchicalNMF([5, 3], max_iter=50, seed=0).fit(z, y, lm, data_mask=W).reconstruct(0),
        lambda z: DeepNMF([5, 3], pretrain_max_iter=20, finetune_max_iter=30, seed=0).fit(z, data_mask=W).reconstruct(),
    ]:
        assert torch.equal(fit(x), fit(x2))


def test_float_data_mask_equals_bool_mask():
    x, W = data(), data_mask()
    assert torch.equal(nmf_mu(x, 5, max_iter=30, seed=0, data_mask=W).S,
                       nmf_mu(x, 5, max_iter=30, seed=0, data_mask=W.double()).S)


def test_labels_of_unlabeled_samples_do_not_change_the_result():
    x = data()
    y, lm = semi_labels()
    y2 = y.clone()
    y2[~lm] = torch.tensor([-1, 2, 99, 0]).repeat(40)[: int((~lm).sum())]
    for fit in [
        lambda t: ssnmf_mu(x, 5, t, label_mask=lm, num_classes=3, max_iter=50, seed=0).S,
        lambda t: HierarchicalNMF([5, 3], max_iter=50, seed=0).fit(x, t, lm, num_classes=3).B_,
        lambda t: DeepNMF([5, 3], pretrain_max_iter=20, finetune_max_iter=30, seed=0).fit(x, t, lm, num_classes=3).S_[-1],
    ]:
        assert torch.equal(fit(y), fit(y2))


def test_no_labeled_sample_is_plain_nmf():
    """Unlabeled samples contribute nothing (never 'class 0'): with none labeled, SSNMF's A and S are NMF's."""
    x = data()
    y = torch.zeros(40, dtype=torch.long)
    none = torch.zeros(40, dtype=torch.bool)
    semi = ssnmf_mu(x, 5, y, label_mask=none, num_classes=3, max_iter=80, seed=0)
    plain = nmf_mu(x, 5, max_iter=80, seed=0)  # same draws for A and S (B is drawn after them)
    torch.testing.assert_close(semi.A, plain.A, rtol=1e-12, atol=0)
    torch.testing.assert_close(semi.S, plain.S, rtol=1e-12, atol=0)


# --- supervision ----------------------------------------------------------------------------------------------------

def test_supervised_classifiers_fit_a_planted_problem():
    x, y = planted()
    assert (ssnmf_mu(x, 3, y, max_iter=400, seed=0).predict() == y).double().mean() >= 0.95
    assert (HierarchicalNMF([6, 3], max_iter=400, seed=0).fit(x, y).predict() == y).double().mean() >= 0.95
    deep = DeepNMF([6, 3], pretrain_max_iter=200, finetune_max_iter=200, seed=0).fit(x, y)
    assert (deep.predict() == y).double().mean() >= 0.95
    # semi-supervised: a third of the labels, still right on the training set
    lm = torch.arange(len(y)) % 3 == 0
    semi = HierarchicalNMF([6, 3], max_iter=400, seed=0).fit(x, y, lm, num_classes=3)
    assert (semi.predict() == y).double().mean() >= 0.9


# --- accessors, shapes ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ranks", [(5,), (6, 3), (6, 4, 2), 4])
@pytest.mark.parametrize("cls", [HierarchicalNMF, DeepNMF])
def test_shapes_and_accessors(ranks, cls):
    x = data(M=20, N=12)
    kw = dict(max_iter=20) if cls is HierarchicalNMF else dict(pretrain_max_iter=10, finetune_max_iter=10)
    model = cls(ranks, seed=0, **kw)
    with pytest.raises(RuntimeError, match="not fitted"):
        model.codes()
    assert model.fit(x) is model
    ks = (ranks,) if isinstance(ranks, int) else ranks
    dims = (12,) + tuple(ks)
    assert [tuple(a.shape) for a in model.A_] == [(dims[i], dims[i + 1]) for i in range(len(ks))]
    assert [tuple(s.shape) for s in model.S_] == [(k, 20) for k in ks]
    assert model.B_ is None
    for d in range(len(ks)):
        assert model.codes(d).shape == (20, ks[d])
        assert model.dictionary(d).shape == (12, ks[d])
        assert model.reconstruct(d).shape == (20, 12)
        torch.testing.assert_close(model.reconstruct(d), model.codes(d) @ model.dictionary(d).mT)
    assert torch.equal(model.codes(), model.codes(len(ks) - 1)) and torch.equal(model.codes(-1), model.codes())
    with pytest.raises(ValueError, match="depth"):
        model.codes(len(ks))
    with pytest.raises(ValueError, match="without labels"):
        model.predict()
    model.fit(x, torch.arange(20) % 3)
    assert model.B_.shape == (3, ks[-1]) and model.predict().shape == (20,) and model.num_classes_ == 3
    assert repr(model).startswith(cls.__name__)


def test_nmf_result_accessors():
    x = data()
    res = nmf_mu(x, 5, max_iter=20, seed=0)
    assert isinstance(res, NMFResult) and res.A.shape == (30, 5) and res.S.shape == (5, 40)
    assert res.codes.shape == (40, 5) and res.reconstruct().shape == (40, 30) and res.n_iter == 20
    rel = torch.linalg.norm(x - res.reconstruct()) / torch.linalg.norm(x)
    torch.testing.assert_close(torch.linalg.norm(x - res.reconstruct()) ** 2, res.history[-1])
    assert rel < 0.6
    with pytest.raises(ValueError, match="no classifier"):
        res.predict()


# --- reproducibility, dtypes, devices ---------------------------------------------------------------------------------

def test_same_seed_same_result():
    x = data()
    y, lm = semi_labels()
    assert torch.equal(nmf_mu(x, 5, max_iter=30, seed=3).A, nmf_mu(x, 5, max_iter=30, seed=3).A)
    assert not torch.equal(nmf_mu(x, 5, max_iter=30, seed=3).A, nmf_mu(x, 5, max_iter=30, seed=4).A)
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    assert torch.equal(nmf_mu(x, 5, max_iter=30, generator=g1).S, nmf_mu(x, 5, max_iter=30, generator=g2).S)
    assert torch.equal(ssnmf_mu(x, 5, y, label_mask=lm, max_iter=30, seed=1).B,
                       ssnmf_mu(x, 5, y, label_mask=lm, max_iter=30, seed=1).B)
    model = HierarchicalNMF([5, 3], max_iter=30, seed=2)
    assert torch.equal(model.fit(x).S_[-1], model.fit(x).S_[-1])  # a seed restarts every fit
    deep = DeepNMF([5, 3], pretrain_max_iter=10, finetune_max_iter=10, pretrain_init="random", seed=2)
    assert torch.equal(deep.fit(x).A_[0], deep.fit(x).A_[0])


def test_same_seed_same_start_in_every_dtype():
    x = data()
    a64 = nmf_mu(x, 5, max_iter=0, seed=3)
    a32 = nmf_mu(x.float(), 5, max_iter=0, seed=3)
    assert torch.equal(a32.A, a64.A.float()) and torch.equal(a32.S, a64.S.float())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_dtype_and_device_are_kept(dtype, device):
    x = data(dtype=dtype, device=device)
    y, lm = semi_labels(device=device)
    outs = [nmf_mu(x, 5, max_iter=20, seed=0), ssnmf_mu(x, 5, y, label_mask=lm, max_iter=20, seed=0)]
    tensors = [t for r in outs for t in (r.A, r.S, r.history)] + [outs[1].B]
    for cls, kw in [(HierarchicalNMF, dict(max_iter=20)), (DeepNMF, dict(pretrain_max_iter=10, finetune_max_iter=10))]:
        m = cls([5, 3], seed=0, **kw).fit(x, y, lm, data_mask=data_mask(device=device))
        tensors += m.A_ + m.S_ + [m.B_, m.reconstruct(), m.codes(0)]
    for t in tensors:
        assert t.dtype == dtype and t.device.type == device
    # float32 and float64 land close to each other from the same start
    r32 = nmf_mu(x.float(), 5, max_iter=100, seed=0)
    r64 = nmf_mu(x.double(), 5, max_iter=100, seed=0)
    torch.testing.assert_close(r32.history[-1].double(), r64.history[-1], rtol=1e-3, atol=0)


def test_inputs_are_not_modified_and_no_graph_is_built():
    x = data().requires_grad_()
    snapshot = x.detach().clone()
    A0, S0 = torch.rand(30, 5, dtype=torch.float64), torch.rand(5, 40, dtype=torch.float64)
    A_copy, S_copy = A0.clone(), S0.clone()
    res = nmf_mu(x, 5, max_iter=10, init=(A0, S0))
    assert torch.equal(x.detach(), snapshot) and torch.equal(A0, A_copy) and torch.equal(S0, S_copy)
    assert not res.A.requires_grad and not res.S.requires_grad
    assert not HierarchicalNMF(3, max_iter=5, seed=0).fit(x).A_[0].requires_grad


def test_nndsvd_pretraining_is_deterministic_and_random_init_is_not_used():
    x = data()
    a = DeepNMF([5, 3], pretrain_max_iter=0, finetune_max_iter=0).fit(x)  # no seed: NNDSVD needs none (rank <= min(M, N))
    b = DeepNMF([5, 3], pretrain_max_iter=0, finetune_max_iter=0).fit(x)
    assert torch.equal(a.A_[0], b.A_[0]) and torch.equal(a.S_[1], b.S_[1])
    assert bool((a.A_[0] > 0).all())  # nndsvda: no frozen zeros
    h = HierarchicalNMF([5, 3], max_iter=0, init="nndsvd").fit(x)
    assert bool((h.A_[0] == 0).any())  # plain NNDSVD keeps its zeros


# --- bad input --------------------------------------------------------------------------------------------------------

def test_bad_data():
    x = data()
    neg = x.clone()
    neg[3, 4] = -0.1
    for call in [lambda z: nmf_mu(z, 3, max_iter=1), lambda z: HierarchicalNMF(3, max_iter=1).fit(z),
                 lambda z: DeepNMF(3, pretrain_max_iter=1, finetune_max_iter=1).fit(z)]:
        with pytest.raises(ValueError, match="x has negative entries.*NMF requires nonnegative data"):
            call(neg)
    nan = x.clone()
    nan[0, 0] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN or Inf"):
        nmf_mu(nan, 3, max_iter=1)
    with pytest.raises(ValueError, match="2-D"):
        nmf_mu(x[0], 3, max_iter=1)
    with pytest.raises(TypeError, match="float32 or float64"):
        nmf_mu(x.long(), 3, max_iter=1)
    with pytest.raises(TypeError, match="torch.Tensor"):
        nmf_mu(x.numpy(), 3, max_iter=1)


@pytest.mark.parametrize("rank, exc", [(0, ValueError), (-2, ValueError), (2.5, TypeError), ("3", TypeError),
                                       (True, TypeError)])
def test_bad_ranks(rank, exc):
    x = data()
    with pytest.raises(exc, match="rank"):
        nmf_mu(x, rank, max_iter=1)
    with pytest.raises(exc, match=r"ranks\[1\]"):
        HierarchicalNMF([3, rank])
    with pytest.raises(exc, match=r"ranks\[0\]"):
        DeepNMF([rank])
    with pytest.raises(ValueError, match="at least one"):
        HierarchicalNMF([])


def test_bad_labels_and_masks():
    x = data()
    y, lm = semi_labels()
    msg = r"labels must be in \[0, 2\) \(num_classes=2\), got values in \[0, 2\]"  # the message fit gives
    with pytest.raises(ValueError, match=msg):
        ssnmf_mu(x, 3, y, num_classes=2, max_iter=1)
    bad = y.clone()
    bad[lm.nonzero()[0]] = -1
    with pytest.raises(ValueError, match="y is -1 \\(unlabeled\\) at 1 samples that label_mask marks as labeled"):
        HierarchicalNMF(3, max_iter=1).fit(x, bad, lm, num_classes=3)
    bad[lm.nonzero()[0]] = -2
    with pytest.raises(ValueError, match="mark unlabeled samples with -1 or with label_mask=False"):
        HierarchicalNMF(3, max_iter=1).fit(x, bad, lm, num_classes=3)
    with pytest.raises(TypeError, match="integer class indices"):
        ssnmf_mu(x, 3, y.double(), max_iter=1)
    with pytest.raises(ValueError, match=r"y must have shape \(40,\)"):
        ssnmf_mu(x, 3, y[:30], max_iter=1)
    with pytest.raises(ValueError, match=r"label_mask must have shape \(40,\)"):
        DeepNMF(3, pretrain_max_iter=1, finetune_max_iter=1).fit(x, y, lm[:39])
    with pytest.raises(ValueError, match="label_mask must be bool"):
        ssnmf_mu(x, 3, y, label_mask=torch.full((40,), 0.5), max_iter=1)
    with pytest.raises(ValueError, match="num_classes cannot be inferred"):
        ssnmf_mu(x, 3, y, label_mask=torch.zeros(40, dtype=torch.bool), max_iter=1)
    with pytest.raises(ValueError, match="need labels y"):
        HierarchicalNMF(3, max_iter=1).fit(x, label_mask=lm)
    with pytest.raises(ValueError, match=r"data_mask must have the shape of x \(40, 30\)"):
        nmf_mu(x, 3, max_iter=1, data_mask=data_mask()[:, :29])
    with pytest.raises(ValueError, match="data_mask must hold only 0 and 1"):
        nmf_mu(x, 3, max_iter=1, data_mask=torch.full((40, 30), 0.5, dtype=torch.float64))


def test_bad_options():
    x = data()
    with pytest.raises(ValueError, match="init A must have shape"):
        nmf_mu(x, 3, max_iter=1, init=(torch.rand(30, 4, dtype=torch.float64), torch.rand(3, 40, dtype=torch.float64)))
    with pytest.raises(TypeError, match="init A has dtype"):
        nmf_mu(x, 3, max_iter=1, init=(torch.rand(30, 3), torch.rand(3, 40, dtype=torch.float64)))
    with pytest.raises(ValueError, match="init S must be finite and nonnegative"):
        nmf_mu(x, 3, max_iter=1, init=(torch.rand(30, 3, dtype=torch.float64), -torch.rand(3, 40, dtype=torch.float64)))
    with pytest.raises(ValueError, match="seed or generator, not both"):
        nmf_mu(x, 3, max_iter=1, seed=0, generator=torch.Generator())
    with pytest.raises(ValueError, match="eps must be a finite number > 0"):
        nmf_mu(x, 3, max_iter=1, eps=0.0)
    with pytest.raises(ValueError, match="tol must be"):
        HierarchicalNMF(3, tol=-1.0)
    with pytest.raises(ValueError, match="lam must be"):
        ssnmf_mu(x, 3, torch.zeros(40, dtype=torch.long), lam=-1.0, max_iter=1)
    with pytest.raises(ValueError, match="max_iter must be >= 0"):
        nmf_mu(x, 3, max_iter=-1)
    with pytest.raises(ValueError, match="check_every must be positive"):
        nmf_mu(x, 3, max_iter=1, check_every=0)
    with pytest.raises(ValueError, match="pretrain_init must be one of"):
        DeepNMF(3, pretrain_init="svd")


def test_old_names_still_work_with_a_deprecation_warning():
    """One convention (issue 20): max_iter for the iteration cap, and what fit sets ends with an underscore, as in
    scikit-learn and the tensor baselines; the old names warn and give the same values."""
    x = data()
    y, lm = semi_labels()
    with pytest.warns(DeprecationWarning, match="nmf_mu: iters= is deprecated.*use max_iter="):
        old = nmf_mu(x, 4, iters=20, seed=0)
    assert torch.equal(old.A, nmf_mu(x, 4, max_iter=20, seed=0).A)
    with pytest.warns(DeprecationWarning, match="ssnmf_mu: iters= is deprecated"):
        ssnmf_mu(x, 4, y, label_mask=lm, iters=2, seed=0)
    with pytest.raises(TypeError, match="got both max_iter= and its deprecated name iters="):
        nmf_mu(x, 4, iters=20, max_iter=30)
    with pytest.warns(DeprecationWarning, match="HierarchicalNMF: iters= is deprecated"):
        h = HierarchicalNMF([5, 3], iters=20, seed=0).fit(x, y, lm)
    assert h.max_iter == 20
    with pytest.warns(DeprecationWarning, match="DeepNMF: (pretrain|finetune)_iters= is deprecated"):
        d = DeepNMF([5, 3], pretrain_iters=5, finetune_iters=5, seed=0).fit(x, y, lm)
    assert (d.pretrain_max_iter, d.finetune_max_iter) == (5, 5)
    for model, names in ((h, ("A", "S", "B", "num_classes", "histories")),
                         (d, ("A", "S", "B", "num_classes", "history", "pretrain_histories"))):
        for name in names:
            with pytest.warns(DeprecationWarning, match=rf"{type(model).__name__}\.{name} is deprecated.*\.{name}_"):
                old = getattr(model, name)
            assert old is getattr(model, name + "_")
