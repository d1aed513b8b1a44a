"""Bad input a new user met (issue 20), each answered by an error that names the argument and a fix that works:
TypeError for a wrong type, ValueError for a wrong value, the same from every entry point (neuralnmf._checks)."""

import warnings

import numpy as np
import pytest
import torch

from neuralnmf import NeuralNMF, NNLSLayer, fit
from neuralnmf.baselines import HierarchicalNMF, nmf_mu


def _x(M=40, N=10):
    return torch.rand(M, N, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def _model(**kw):
    return NeuralNMF(10, (4, 2), init="uniform", dtype=torch.float64, **kw)


def test_empty_data_is_named():
    empty = torch.zeros(0, 10, dtype=torch.float64)
    for call in (lambda: fit(_model(), empty, epochs=1, progress=False),
                 lambda: NeuralNMF(10, (4, 2), data=empty),
                 lambda: nmf_mu(empty, 3, max_iter=1)):
        with pytest.raises(ValueError, match=r"x is empty, shape \(0, 10\)|data is empty, shape \(0, 10\)"):
            call()


def test_numpy_data_says_how_to_convert():
    x = _x().numpy()
    for call in (lambda: fit(_model(), x, epochs=1, progress=False), lambda: NeuralNMF(10, (4, 2), data=x),
                 lambda: nmf_mu(x, 3, max_iter=1)):
        with pytest.raises(TypeError, match=r"must be a torch.Tensor, got ndarray; convert it with torch.from_numpy"):
            call()


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.float16, torch.bfloat16])
def test_integer_and_half_data_get_advice_that_works(dtype):
    x = (_x() * 10).to(dtype)
    for call, advice in ((lambda d: fit(_model(), d, epochs=1, progress=False), x.double()),
                         (lambda d: NeuralNMF(10, (4, 2), data=d), x.double()),
                         (lambda d: NNLSLayer(10, 3)(d), x.float()),
                         (lambda d: HierarchicalNMF((3,), max_iter=1).fit(d), x.double())):
        with pytest.raises(TypeError, match=r"must be float32 or float64, got .*\.float\(\) or .*\.double\(\)"):
            call(x)
        call(advice)  # the advice works


def test_complex_data_is_a_type_error():
    with pytest.raises(TypeError, match="NMF needs real data"):
        fit(_model(), _x().to(torch.complex128), epochs=1, progress=False)


def test_meta_data_is_named():
    with pytest.raises(ValueError, match="x is on the meta device, which holds no values"):
        fit(_model(), _x().to("meta"), epochs=1, progress=False)
    with pytest.raises(ValueError, match="meta device"):
        nmf_mu(_x().to("meta"), 3, max_iter=1)


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-5, ValueError), (2.5, TypeError), (True, TypeError)])
def test_batch_size_is_validated(bad, exc):
    with pytest.raises(exc, match="fit: batch_size must be a positive integer or None"):
        fit(_model(), _x(), batch_size=bad, epochs=1, progress=False)


def test_string_labels_say_how_to_map_them():
    names = np.array(["cat", "dog"] * 20)
    for y in (names, list(names)):
        with pytest.raises(TypeError, match=r"y must be integer class indices.*numpy.unique"):
            fit(_model(num_classes=2), _x(), y=y, epochs=1, progress=False)
    with pytest.raises(TypeError, match=r"y must be integer class indices.*numpy.unique"):
        HierarchicalNMF(3, max_iter=1).fit(_x(), names)
    _, codes = np.unique(names, return_inverse=True)
    fit(_model(num_classes=2), _x(), y=torch.from_numpy(codes), epochs=1, progress=False)  # the advice works


def test_float_labels_are_a_type_error_everywhere():
    y = (torch.arange(40) % 2).double()
    with pytest.raises(TypeError, match=r"y must hold integer class indices.*y\.long\(\)"):
        fit(_model(num_classes=2), _x(), y=y, epochs=1, progress=False)
    with pytest.raises(TypeError, match=r"y must hold integer class indices.*y\.long\(\)"):
        HierarchicalNMF(3, max_iter=1).fit(_x(), y)


def test_minus_one_means_unlabeled_in_fit_and_the_baselines():
    """One label rule: -1 is an unlabeled sample (as in the CLI's label files and scikit-learn); label_mask says
    the same explicitly, and a -1 that label_mask calls labeled is an error."""
    x = _x()
    y = torch.arange(40) % 2
    y_missing = y.clone()
    y_missing[::4] = -1
    mask = y_missing >= 0
    for labels, label_mask in ((y_missing, None), (torch.where(mask, y, 0), mask), (y_missing, mask)):
        model = _model(num_classes=2)
        fit(model, x, y=labels, label_mask=label_mask, epochs=2, progress=False, seed=0, validation=None)
        hnmf = HierarchicalNMF((3,), max_iter=2).fit(x, labels, label_mask)
        assert torch.isfinite(model.layers[0].A).all() and hnmf.num_classes_ == 2
    a, b = (_model(num_classes=2, generator=torch.Generator().manual_seed(1)) for _ in range(2))
    fit(a, x, y=y_missing, epochs=3, progress=False, seed=0, validation=None)
    fit(b, x, y=torch.where(mask, y, 0), label_mask=mask, epochs=3, progress=False, seed=0, validation=None)
    torch.testing.assert_close(a.layers[0].A, b.layers[0].A)  # -1 and label_mask are the same thing
    with pytest.raises(ValueError, match="y is -1 \\(unlabeled\\) at 10 samples that label_mask marks as labeled"):
        fit(_model(num_classes=2), x, y=y_missing, label_mask=torch.ones(40, dtype=torch.bool), epochs=1,
            progress=False)
    with pytest.raises(ValueError, match="mark unlabeled samples with -1 or with label_mask=False"):
        fit(_model(num_classes=2), x, y=torch.where(mask, y, -2), epochs=1, progress=False)
    with pytest.raises(ValueError, match="numbered from 1\\? pass y - 1"):
        fit(_model(num_classes=2), x, y=y + 1, epochs=1, progress=False)


def test_rank_warnings():
    x = _x()
    with pytest.warns(UserWarning, match="ranks\\[0\\] = 12 topics exceed the 10 features"):
        fit(NeuralNMF(10, (12, 3), init="uniform", dtype=torch.float64), x, epochs=1, progress=False)
    with pytest.warns(UserWarning, match="level 1 is labeled with 5 classes but has only 2 topics"):
        fit(_model(num_classes=5), x, y=torch.arange(40) % 5, epochs=1, progress=False, validation=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit(_model(num_classes=2), x, y=torch.arange(40) % 2, epochs=1, progress=False, validation=None)


@pytest.mark.parametrize("sparse", [False, True])
def test_autocast_bfloat16_trains_in_the_model_dtype(sparse):
    """Under torch.autocast the exact NNLS solve and the sparse products stay in the data's dtype (an error used
    to name the internal AtX)."""
    x = _x().float()
    x = x.to_sparse() if sparse else x
    model = NeuralNMF(10, (4, 2), init="uniform", generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        history = fit(model, x, epochs=2, progress=False)
        codes = model(x).codes
    assert model.layers[0].A.dtype == torch.float32 and codes[0].dtype == torch.float32
    assert np.isfinite(history["loss"]).all()


def test_error_types_follow_one_rule():
    """TypeError for a wrong type, ValueError for a wrong value: ranks, epochs, seeds, in every entry point."""
    x = _x()
    with pytest.raises(TypeError, match="fit: epochs must be an integer"):
        fit(_model(), x, epochs=2.5, progress=False)
    with pytest.raises(ValueError, match="fit: epochs must be >= 0"):
        fit(_model(), x, epochs=-1, progress=False)
    with pytest.raises(TypeError, match="fit: seed must be an integer"):
        fit(_model(), x, epochs=1, seed="0", progress=False)
    with pytest.raises(TypeError, match="fit: validation must be a real number"):
        fit(_model(num_classes=2), x, y=torch.arange(40) % 2, validation="0.1", epochs=1, progress=False)


def test_lam_is_checked_like_every_real_argument():
    x, y = _x(), torch.arange(40) % 2
    with pytest.raises(TypeError, match="fit: lam must be a real number"):
        fit(_model(num_classes=2), x, y=y, lam="1", epochs=1, progress=False)
    with pytest.raises(ValueError, match="fit: lam must be a finite number >= 0"):
        fit(_model(num_classes=2), x, y=y, lam=-1.0, epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"fit: lam\[1\] must be a finite number >= 0"):
        fit(_model(num_classes=2), x, y=y, lam={1: float("inf")}, epochs=1, progress=False)


def test_data_masks_are_checked_the_same_everywhere():
    """fit, the matrix baselines and the tensor models share one mask check (_checks.check_observed)."""
    from neuralnmf.tensor import ncpd

    x = _x()
    half = torch.full((40, 10), 0.5, dtype=torch.float64)
    for call in (lambda m: fit(_model(), x, data_mask=m, epochs=1, progress=False),
                 lambda m: nmf_mu(x, 3, max_iter=1, data_mask=m)):
        with pytest.raises(ValueError, match="data_mask must hold only 0 and 1"):
            call(half)
        with pytest.raises(ValueError, match=r"data_mask must have the shape of x \(40, 10\)"):
            call(half[:, :3])
        with pytest.raises(TypeError, match="data_mask must be a torch.Tensor, got ndarray; convert it"):
            call((half > 0).numpy())
    with pytest.raises(ValueError, match="data_mask must hold only 0 and 1"):
        ncpd(x.reshape(4, 10, 10), 2, data_mask=half.reshape(4, 10, 10), max_iter=1)
    fit(_model(), x, data_mask=torch.rand(40, 10, generator=torch.Generator().manual_seed(0)) > 0.1, epochs=1,
        progress=False)
