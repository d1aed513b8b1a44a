"""Every tensor model on CUDA tensors: the same numbers as on the CPU (float64), device and dtype kept.
Skipped without a GPU."""

import pytest
import torch

from neuralnmf.datasets import make_hierarchical_tensor
from neuralnmf.tensor import (HNTF, MultiHNTF, NeuralMultiHNTF, NeuralNCPD, StandardHNCPD, StandardNCPD, fit_tensor,
                              ncpd)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def data(device):
    d = make_hierarchical_tensor((3, 3, 2, 2), (2, 2), ndim=3, noise=0.05, seed=0)
    mask = torch.rand(d.X.shape, generator=torch.Generator().manual_seed(1)) > 0.2
    return d.X.to(device), mask.to(device)


@pytest.mark.parametrize("method", ["mu", "als"])
@pytest.mark.parametrize("masked", [False, True])
def test_ncpd_on_cuda_matches_cpu(method, masked):
    outs = []
    for device in ("cpu", "cuda"):
        X, mask = data(device)
        cp = ncpd(X, 4, method=method, data_mask=mask if masked else None, max_iter=30)
        assert all(f.device.type == device for f in cp.factors)
        outs.append([f.cpu() for f in cp.factors])
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("cls", [NeuralNCPD, NeuralMultiHNTF])
def test_trainable_models_on_cuda_match_cpu(cls):
    results = []
    for device in ("cpu", "cuda"):
        X, mask = data(device)
        cp = ncpd(X, 4, method="als", max_iter=30)
        kwargs = {"num_classes": 2, "label_mode": 0} if cls is NeuralMultiHNTF else {}
        model = cls(X.shape, (4, 2), factors=cp, generator=torch.Generator().manual_seed(0), **kwargs)
        assert all(p.device.type == device for p in model.parameters())
        y = torch.tensor([0] * 5 + [1] * 5, device=device)
        history = fit_tensor(model, X, data_mask=mask, y=y if kwargs else None, lr=0.05, epochs=30)
        results.append((history["loss"], model.reconstruct(1).detach().cpu()))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-6)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-6, atol=1e-8)


def test_model_moves_between_devices():
    X, _ = data("cpu")
    cp = ncpd(X, 4, method="als", max_iter=30)
    model = NeuralNCPD(X.shape, (4, 2), factors=cp, generator=torch.Generator().manual_seed(0))
    cpu = model.reconstruct(1).detach()  # two levels, 0 and 1
    model.cuda()
    torch.testing.assert_close(model.reconstruct(1).detach().cpu(), cpu)


@pytest.mark.parametrize("make", [lambda: MultiHNTF((4, 2), max_iter=30, seed=0), lambda: StandardHNCPD((4, 2), seed=0),
                                  lambda: HNTF((4, 2), mode=1, seed=0), lambda: StandardNCPD((4, 2))])
def test_baselines_on_cuda_match_cpu(make):
    outs = []
    for device in ("cpu", "cuda"):
        X, mask = data(device)
        model = make().fit(X, data_mask=mask)
        assert model.reconstruct(1).device.type == device
        outs.append(model.reconstruct(1).cpu())
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-6, atol=1e-8)
