"""build_optimizer(): names, classes and instances; merged groups; the fastest implementation unless asked."""

import pytest
import torch

from neuralnmf.optim import build_optimizer


def _params(n=3, dtype=torch.float64):
    return [torch.nn.Parameter(torch.rand(4, 2, dtype=dtype)) for _ in range(n)]


def test_groups_sharing_a_learning_rate_are_merged():
    p = _params()
    opt = build_optimizer("adam", [{"params": p[:2], "lr": 0.1}, {"params": p[2:], "lr": 0.1}], 0.1)
    assert len(opt.param_groups) == 1 and len(opt.param_groups[0]["params"]) == 3
    opt = build_optimizer("adam", [{"params": p[:2], "lr": 0.1}, {"params": p[2:], "lr": 0.5}], 0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]


def test_fused_where_torch_has_it_else_foreach():
    opt = build_optimizer("adam", [{"params": _params(), "lr": 0.1}], 0.1)
    assert opt.defaults["fused"] or opt.defaults["foreach"]
    opt = build_optimizer("rmsprop", [{"params": _params(), "lr": 0.1}], 0.1)  # no fused RMSprop
    assert opt.defaults["foreach"]


def test_the_callers_choice_of_implementation_is_kept():
    opt = build_optimizer("adam", [{"params": _params(), "lr": 0.1}], 0.1, {"foreach": False})
    assert opt.defaults["foreach"] is False and not opt.defaults["fused"]


def test_fused_and_foreach_adam_take_the_same_steps():
    torch.manual_seed(0)
    a, b = _params(2), None
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    fused = build_optimizer("adam", [{"params": a, "lr": 0.01}], 0.01)
    plain = build_optimizer("adam", [{"params": b, "lr": 0.01}], 0.01, {"foreach": False})
    for _ in range(20):
        g = [torch.randn(4, 2, dtype=torch.float64) for _ in a]
        for p, q, gi in zip(a, b, g):
            p.grad, q.grad = gi.clone(), gi.clone()
        fused.step()
        plain.step()
    for p, q in zip(a, b):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)


def test_instance_class_and_bad_names():
    p = _params()
    opt = torch.optim.SGD(p, lr=0.3)
    assert build_optimizer(opt, [{"params": p, "lr": 0.1}], 0.1) is opt
    assert isinstance(build_optimizer(torch.optim.AdamW, [{"params": p, "lr": 0.1}], 0.1), torch.optim.AdamW)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        build_optimizer("lbfgs-ish", [{"params": p, "lr": 0.1}], 0.1)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        build_optimizer(dict, [{"params": p, "lr": 0.1}], 0.1)
