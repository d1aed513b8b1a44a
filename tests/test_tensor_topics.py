"""Topics across modes: top entries per level and mode, shared and per-mode trees, label checks."""

import pytest
import torch

from neuralnmf.datasets import make_hierarchical_tensor
from neuralnmf.tensor import (HNTF, MultiHNTF, NeuralMultiHNTF, NeuralNCPD, StandardHNCPD, TensorTopics,
                              format_tensor_hierarchy, ncpd, top_entries)


pytestmark = pytest.mark.usefixtures("one_thread")  # small problems: see conftest.one_thread


@pytest.fixture(scope="module")
def planted():
    data = make_hierarchical_tensor((2, 2, 2, 2), (2, 2), noise=0.02, seed=1)  # 8 x 8 x 8
    return data, ncpd(data.X, 4, method="als")


LABELS = [[f"w{i}" for i in range(8)], [f"m{i}" for i in range(8)], None]


def test_top_entries_per_level_and_mode(planted):
    data, cp = planted
    model = MultiHNTF((4, 2), max_iter=200, seed=0).fit(data.X, cp)
    tops = top_entries(model, LABELS, n=3)
    assert len(tops) == 2 and all(len(level) == 3 for level in tops)
    assert [len(mode) for mode in tops[0]] == [4, 4, 4] and [len(mode) for mode in tops[1]] == [2, 2, 2]
    for t in range(4):  # every level-0 component is one planted block of 2 entries per mode
        names = [name for name, _ in tops[0][0][t]]
        assert len(names) >= 2 and names[0].startswith("w")
        assert {int(names[0][1:]) // 2, int(names[1][1:]) // 2} == {int(names[0][1:]) // 2}
        assert tops[0][2][t][0][0].isdigit()  # mode 2 has no labels: indices
        weights = [w for _, w in tops[0][1][t]]
        assert weights == sorted(weights, reverse=True) and 0 < sum(weights) <= 1 + 1e-12


def test_shared_tree_lists_every_mode_under_each_node(planted):
    data, cp = planted
    model = NeuralMultiHNTF(data.X.shape, (4, 2), factors=cp, generator=torch.Generator().manual_seed(0))
    text = format_tensor_hierarchy(model, LABELS, mode_names=["words", "months", "people"], n=2, weights=True)
    lines = text.splitlines()
    assert lines[0] == "L1.T0" and lines[1].startswith("    words: w") and "(" in lines[1]
    assert sum(line.startswith("L1.T") for line in lines) == 2
    assert sum(line.strip().startswith("L0.T") for line in lines) == 4  # every component appears once
    assert sum("months:" in line for line in lines) == 6


@pytest.mark.parametrize("per_mode", ["neural", "standard"])
def test_per_mode_trees(planted, per_mode):
    data, cp = planted
    if per_mode == "neural":
        model = NeuralNCPD(data.X.shape, (4, 2), factors=cp, init="uniform", generator=torch.Generator().manual_seed(0))
    else:
        model = StandardHNCPD((4, 2), seed=0).fit(data.X, cp)
    tree = model.topic_hierarchy()
    assert isinstance(tree, TensorTopics) and not tree.shared
    assert [T.shape for T in tree.topics[1]] == [(8, 2)] * 3
    text = format_tensor_hierarchy(model, LABELS, n=2)
    assert [line for line in text.splitlines() if line.startswith("mode")] == ["mode 0:", "mode 1:", "mode 2:"]


def test_hntf_tree_follows_the_hierarchical_mode(planted):
    data, cp = planted
    model = HNTF((4, 2), mode=1, seed=0).fit(data.X, cp)
    tree = model.topic_hierarchy()
    assert tree.shared and tree.parents[0][0].shape == (4,)
    assert torch.allclose(tree.topics[1][1], model.A_[0] @ model.A_[1])


def test_bad_labels_raise(planted):
    data, cp = planted
    model = MultiHNTF((4, 2), max_iter=5, seed=0).fit(data.X, cp)
    with pytest.raises(ValueError, match="one per mode"):
        top_entries(model, [None, None])
    with pytest.raises(ValueError, match=r"labels\[1\] has 3 names but mode 1 has 8 entries"):
        top_entries(model, [None, ["a", "b", "c"], None])
    with pytest.raises(ValueError, match="n must be a positive int"):
        top_entries(model, None, n=0)
    with pytest.raises(ValueError, match="mode_names must have 3 entries"):
        format_tensor_hierarchy(model, mode_names=["a"])
    with pytest.raises(TypeError, match="topic_hierarchy"):
        top_entries(torch.zeros(3))
