"""Metrics (hand-computed cases), topic recovery against the planted toy hierarchy, top words, trees and figures."""

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from neuralnmf.datasets import make_hierarchical_corpus
from neuralnmf.metrics import (
    accuracy,
    hierarchy_recovery,
    least_squares_accuracy,
    least_squares_fit,
    match_topics,
    relative_error,
    topic_recovery_score,
)
from neuralnmf.plot import plot_hierarchy, plot_layer_heatmaps, plot_loss_curves
from neuralnmf.topics import format_hierarchy_tree, hierarchy_from_dictionaries, layer_topics, top_words

F = torch.nn.functional


# --- relative error and accuracy ----------------------------------------------------------------------------------


def test_relative_error_hand_cases():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0]], dtype=torch.float64)
    assert relative_error(x, torch.zeros_like(x)).item() == 1.0
    x_hat = torch.tensor([[3.0, 1.0], [0.0, 4.0]], dtype=torch.float64)
    assert relative_error(x, x_hat).item() == pytest.approx(5.0 / 5.0)  # ||(0, 3, 0, -4)|| / ||(3, 4)||
    mask = torch.tensor([[True, True], [False, False]])  # only the first row is observed
    assert relative_error(x, x_hat, mask).item() == pytest.approx(3.0 / 5.0)
    w = torch.tensor([[1.0, 2.0], [0.0, 0.0]], dtype=torch.float64)  # weights: ||(0, 6)|| / ||(3, 8)||
    assert relative_error(x, x_hat, w).item() == pytest.approx(6.0 / 73**0.5)
    row = torch.tensor([True, False])  # broadcast over rows: only the first column
    assert relative_error(x, x_hat, row).item() == 0.0
    out = relative_error(x.float(), x_hat.float())
    assert out.dtype == torch.float32 and out.dim() == 0


def test_relative_error_is_differentiable_and_checks_input():
    x, x_hat = torch.rand(4, 3), torch.rand(4, 3, requires_grad=True)
    relative_error(x, x_hat).backward()
    assert x_hat.grad is not None
    with pytest.raises(ValueError, match="x_hat must have the shape of x"):
        relative_error(x, torch.rand(3, 4))
    with pytest.raises(TypeError, match="x must be a floating-point"):
        relative_error(torch.ones(2, dtype=torch.long), torch.ones(2))
    with pytest.raises(ValueError, match="mask of shape"):
        relative_error(x, x, torch.ones(5, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask must be bool or floating"):
        relative_error(x, x, torch.ones(4, 3, dtype=torch.long))


def test_accuracy_hand_cases():
    y = torch.tensor([0, 1, 2, 1])
    logits = torch.tensor([[2.0, 0, 0], [0, 1, 0], [0, 3, 0], [0, 1, 0.5]])  # third is wrong
    assert accuracy(logits, y).item() == 0.75
    assert accuracy(torch.tensor([0, 1, 1, 1]), y).item() == 0.75
    mask = torch.tensor([True, False, True, False])
    assert accuracy(logits, y, mask).item() == 0.5
    assert torch.isnan(accuracy(logits, y, torch.zeros(4, dtype=torch.bool)))
    assert accuracy(logits.double(), y).dtype == torch.float64
    with pytest.raises(TypeError, match="y must hold integer class indices"):
        accuracy(logits, y.float())
    with pytest.raises(ValueError, match="pred_or_logits"):
        accuracy(logits[:, :, None], y)
    with pytest.raises(ValueError, match="mask must have shape"):
        accuracy(logits, y, torch.ones(3, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask must be a bool"):
        accuracy(logits, y, torch.ones(4))


# --- least-squares classifier -------------------------------------------------------------------------------------


def _planted_codes(gen, n_per_class=6, c=3, k=5):
    """Separable codes: class j puts its weight on topic j (plus small nonnegative noise on all topics)."""
    y = torch.arange(c).repeat_interleave(n_per_class)
    codes = F.one_hot(y, k).double() * 3.0 + 0.1 * torch.rand(len(y), k, generator=gen, dtype=torch.float64)
    return codes, y


def test_least_squares_accuracy_separable_and_paper_orientation():
    gen = torch.Generator().manual_seed(0)
    codes, y = _planted_codes(gen)
    assert least_squares_accuracy(codes, y).item() == 1.0
    # W is B^T of the papers' B = Y pinv(S) with S = codes^T (k x n) and Y one-hot (c x n)
    S, Y = codes.T, F.one_hot(y).double().T
    torch.testing.assert_close(least_squares_fit(codes, y), (Y @ torch.linalg.pinv(S)).T)
    assert least_squares_fit(codes, y, num_classes=4).shape == (5, 4)
    assert least_squares_accuracy(codes.float(), y).dtype == torch.float32


def test_least_squares_accuracy_masks():
    # one-hot codes: the fit is, per topic, the class frequencies of its samples
    y_true = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2])
    codes = F.one_hot(y_true, 3).double()
    y = y_true.clone()
    y[0] = 1  # one mislabeled sample of class 0
    W = least_squares_fit(codes, y)
    torch.testing.assert_close(W[0], torch.tensor([0.75, 0.25, 0.0], dtype=torch.float64))
    assert least_squares_accuracy(codes, y).item() == 7 / 8  # fit and evaluate on all (Table 1 protocol)
    honest = torch.ones(8, dtype=torch.bool)
    honest[0] = False
    assert least_squares_accuracy(codes, y, eval_mask=honest).item() == 1.0
    # fit only on labeled samples: drop removes them, zero keeps them with target 0 (20 Newsgroups protocol)
    fit = torch.tensor([True, True, True, False, True, False, True, False])
    Y = F.one_hot(y, 3).double()
    torch.testing.assert_close(least_squares_fit(codes, y, fit_mask=fit), torch.linalg.pinv(codes[fit]) @ Y[fit])
    torch.testing.assert_close(
        least_squares_fit(codes, y, fit_mask=fit, masked_fit="zero"), torch.linalg.pinv(codes) @ (Y * fit[:, None])
    )
    torch.testing.assert_close(least_squares_fit(codes, y, fit_mask=fit)[0], torch.tensor([2 / 3, 1 / 3, 0.0],
                                                                                        dtype=torch.float64))
    acc = least_squares_accuracy(codes, y, fit_mask=fit, eval_mask=~fit)
    assert acc.item() == 1.0  # the unlabeled samples 3, 5, 7 are all predicted right
    with pytest.raises(ValueError, match="masked_fit"):
        least_squares_fit(codes, y, fit_mask=fit, masked_fit="remove")
    with pytest.raises(ValueError, match="num_classes=2"):
        least_squares_fit(codes, y, num_classes=2)
    with pytest.raises(ValueError, match="y must have shape"):
        least_squares_fit(codes, y[:5])
    with pytest.raises(ValueError, match="fit_mask must have shape"):
        least_squares_fit(codes, y, fit_mask=fit[:3])


# --- matching topics to classes -----------------------------------------------------------------------------------


def test_match_topics_hand_case_and_permutation():
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    codes = torch.tensor([[0.0, 0, 1], [0, 0, 2], [1, 0, 0], [1, 0, 0], [0, 5, 0], [3, 1, 0]])
    m = match_topics(codes, y)  # topics: 2, 2, 0, 0, 1, 0
    assert m.assignment == [1, 2, 0] and m.accuracy == pytest.approx(5 / 6)
    assert m.confusion.tolist() == [[0, 2, 1], [0, 0, 1], [2, 0, 0]]
    assert topic_recovery_score(codes, y) == pytest.approx(5 / 6)
    # integer assignments work the same; a sample with an all-zero code counts as wrong
    assert topic_recovery_score(torch.tensor([2, 2, 0, 0, 1, 0]), y) == pytest.approx(5 / 6)
    codes0 = codes.clone()
    codes0[4] = 0
    assert topic_recovery_score(codes0, y) == pytest.approx(4 / 6)
    # more topics than classes: the extra one is unmatched
    extra = match_topics(F.pad(codes, (0, 1)), y)
    assert extra.assignment[3] == -1
    with pytest.raises(ValueError, match="codes_or_topics must have shape"):
        match_topics(codes[:5], y)


# --- the planted toy hierarchy ------------------------------------------------------------------------------------


def _toy_chain(corpus, hierarchy=None):
    """A_0 = word groups, A_1, A_2 = the parent maps (with a little weight on every other parent)."""
    hierarchy = hierarchy or corpus.hierarchy
    A0 = F.one_hot(corpus.word_labels[0], 9).double()
    A1 = F.one_hot(torch.tensor(hierarchy[0]), 4).double() * 0.9 + 0.02
    A2 = F.one_hot(torch.tensor(hierarchy[1]), 2).double() * 0.8 + 0.1
    return [A0, A1, A2]


def _matchings(As, corpus):
    return [match_topics(T, corpus.word_labels[l]).assignment for l, T in enumerate(layer_topics(As))]


def test_hierarchy_recovery_planted_permuted_and_wrong():
    c = make_hierarchical_corpus(noise=0)
    As = _toy_chain(c)
    h = hierarchy_from_dictionaries(As)
    assert [p.tolist() for p in h.parents] == c.hierarchy
    ok = hierarchy_recovery(h, c.hierarchy, matchings=_matchings(As, c))
    assert ok.score == 1.0 and ok.per_level == [1.0, 1.0]
    assert all(topic_recovery_score(T, c.word_labels[l]) == 1.0 for l, T in enumerate(layer_topics(As)))

    # relabel the topics of every level: still a perfect recovery after matching
    gen = torch.Generator().manual_seed(0)
    p0, p1, p2 = (torch.randperm(k, generator=gen) for k in (9, 4, 2))
    Ap = [As[0][:, p0], As[1][p0][:, p1], As[2][p1][:, p2]]
    hp = hierarchy_from_dictionaries(Ap)
    assert [p.tolist() for p in hp.parents] != c.hierarchy
    perm = hierarchy_recovery(hp, c.hierarchy, matchings=_matchings(Ap, c))
    assert perm.score == 1.0 and perm.matchings[0] == _matchings(Ap, c)[0]
    # upper levels matched from the links alone
    assert hierarchy_recovery(hp, c.hierarchy, matchings=[_matchings(Ap, c)[0], None, None]).score == 1.0
    # without any matching the leaves are taken as aligned: the relabeled leaves no longer fit
    assert hierarchy_recovery(hp, c.hierarchy).score < 1.0

    # a wrong hierarchy: subtopic 2 attached to topic 0 instead of 1
    wrong = [[0, 0, 0, 1, 2, 2, 3, 3, 3], c.hierarchy[1]]
    Aw = _toy_chain(c, wrong)
    bad = hierarchy_recovery(hierarchy_from_dictionaries(Aw), c.hierarchy, matchings=_matchings(Aw, c))
    assert bad.per_level == [pytest.approx(8 / 9), 1.0] and bad.score == pytest.approx(12 / 13)
    # a learned tree that merges the two supertopics' topics wrongly
    mixed = hierarchy_recovery([c.hierarchy[0], [0, 1, 0, 1]], c.hierarchy)
    assert mixed.per_level == [1.0, 0.5] and mixed.score == pytest.approx(11 / 13)


def test_hierarchy_recovery_bad_input():
    true = [[0, 0, 1], [0, 0]]
    with pytest.raises(ValueError, match="levels"):
        hierarchy_recovery([[0, 0, 1]], true)
    with pytest.raises(ValueError, match="hierarchy_pred\\[0\\]\\[1\\] = 5"):
        hierarchy_recovery([[0, 5, 1], [0, 0]], true)
    with pytest.raises(ValueError, match="one to one"):
        hierarchy_recovery([[0, 0, 1], [0, 0]], true, matchings=[[0, 0, 1], None, None])
    with pytest.raises(ValueError, match="L \\+ 1 = 3"):
        hierarchy_recovery([[0, 0, 1], [0, 0]], true, matchings=[None])


# --- topics -------------------------------------------------------------------------------------------------------


def test_top_words():
    topics = torch.tensor([[0.5, 0.0], [2.0, 0.0], [0.5, 3.0], [0.0, 1.0]])
    vocab = ["a", "b", "c", "d"]
    assert top_words(topics, vocab, n=2) == [[("b", 2.0), ("a", 0.5)], [("c", 3.0), ("d", 1.0)]]
    assert top_words(topics, vocab, n=10)[1] == [("c", 3.0), ("d", 1.0)]  # zero weights are left out
    assert top_words(topics, vocab, n=3, normalize=True)[0] == [("b", 2 / 3), ("a", 0.5 / 3), ("c", 0.5 / 3)]
    assert top_words(topics, vocab, n=3, normalize="max")[0] == [("b", 1.0), ("a", 0.25), ("c", 0.25)]
    with pytest.raises(ValueError, match="normalize"):
        top_words(topics, vocab, normalize="l2")
    with pytest.raises(ValueError, match="vocabulary has 3 words but topics has 4 features"):
        top_words(topics, vocab[:3])
    with pytest.raises(ValueError, match="n must be a positive int"):
        top_words(topics, vocab, n=0)


def test_hierarchy_from_dictionaries():
    A0 = torch.rand(6, 3, dtype=torch.float64)
    A1 = torch.tensor([[1.0, 3.0], [0.0, 0.0], [2.0, 2.0]], dtype=torch.float64)
    h = hierarchy_from_dictionaries([A0, A1])
    assert h.parents[0].tolist() == [1, -1, 0]  # an all-zero row feeds nothing; ties go to the lowest index
    torch.testing.assert_close(h.weights[0], torch.tensor([[0.25, 0.75], [0, 0], [0.5, 0.5]], dtype=torch.float64))
    assert hierarchy_from_dictionaries([A0]).parents == []
    with pytest.raises(ValueError, match="As\\[1\\] has 2 rows but As\\[0\\] has 3 columns"):
        hierarchy_from_dictionaries([A0, torch.rand(2, 2, dtype=torch.float64)])
    with pytest.raises(ValueError, match="negative"):
        hierarchy_from_dictionaries([A0, -A1])
    with pytest.raises(TypeError, match="As\\[1\\] must be floating point"):
        hierarchy_from_dictionaries([A0, torch.ones(3, 2, dtype=torch.long)])


def test_format_hierarchy_tree():
    A0 = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 1.0]])
    A1 = torch.tensor([[0.9, 0.1], [0.0, 1.0], [0.6, 0.4]])
    assert format_hierarchy_tree([A0, A1], weights=False) == "L1.T0\n  L0.T0\n  L0.T2\nL1.T1\n  L0.T1"
    text = format_hierarchy_tree([A0, A1], ["w", "x", "y", "z"], n_words=2)
    assert text.splitlines() == [
        "L1.T0: z (1.00), w (0.60)",  # word weights relative to the topic's heaviest word
        "  L0.T0 [0.90]: w (1.00), z (1.00)",
        "  L0.T2 [0.60]: y (1.00), z (1.00)",
        "L1.T1: x (1.00), z (0.25)",
        "  L0.T1 [1.00]: x (1.00)",
    ]
    orphan = format_hierarchy_tree([A0, torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])], weights=False)
    assert orphan.splitlines()[-2:] == ["(feed no level-1 topic)", "  L0.T2"]
    toy = format_hierarchy_tree(_toy_chain(make_hierarchical_corpus(noise=0)), make_hierarchical_corpus().vocabulary)
    assert toy.splitlines()[0].startswith("L2.T0: ") and "    L0.T8 [0.94]: w73_g8 (1.00), w74_g8" in toy


# --- figures ------------------------------------------------------------------------------------------------------


def _is_png(path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plots_write_png_files(tmp_path):
    c = make_hierarchical_corpus()
    As = _toy_chain(c)
    fig = plot_layer_heatmaps(c.x, [c.clean, 0.9 * c.clean], path=tmp_path / "heat.png")
    assert isinstance(fig, Figure) and _is_png(tmp_path / "heat.png")
    assert "rel. error" in fig.axes[1].get_title()
    plot_layer_heatmaps(c.x.float(), c.clean.float(), titles=["clean"], path=tmp_path / "heat2", transpose=True)
    assert _is_png(tmp_path / "heat2")
    fig = plot_loss_curves({"loss": [3.0, 2.0, 1.0], "accuracy": [torch.tensor(0.5), 0.7, 0.9], "codes": [[1, 2]]},
                           path=tmp_path / "loss.png")
    assert _is_png(tmp_path / "loss.png") and fig.axes[0].get_yscale() == "log"
    fig = plot_loss_curves([{"loss": 1.0, "delta": -0.5}, {"loss": 0.5, "delta": 0.1}])
    assert fig.axes[0].get_yscale() == "linear" and len(fig.axes[0].get_lines()) == 2
    fig = plot_hierarchy(As, path=tmp_path / "tree.png", vocabulary=c.vocabulary)
    assert isinstance(fig, Figure) and _is_png(tmp_path / "tree.png")
    plot_hierarchy(As, labels=[[f"s{i}" for i in range(9)], list("ABCD"), ["X", "Y"]], path=tmp_path / "t2.png")
    assert _is_png(tmp_path / "t2.png")


def test_figures_say_what_they_show(tmp_path):
    """Colorbar label and reconstruction panels; the total loss visible beside an equal term; no edge of the
    hierarchy crosses a node's label."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    c = make_hierarchical_corpus()
    fig = plot_layer_heatmaps(c.x, [c.clean, 0.9 * c.clean])
    assert fig.axes[0].get_title() == "data X" and "reconstruction at layer 1" in fig.axes[2].get_title()
    assert fig.axes[-1].get_ylabel() == "entry value (data and reconstructions)"  # the colorbar
    fig = plot_loss_curves({"loss": [3.0, 2.0, 1.0], "energy": [3.0, 2.0, 1.0]})
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert set(lines) == {"loss (total = energy)", "energy"}
    assert lines["loss (total = energy)"].get_linewidth() > 2 * lines["energy"].get_linewidth()

    fig = plot_hierarchy(_toy_chain(c), vocabulary=c.vocabulary)
    FigureCanvasAgg(fig).draw()
    ax = fig.axes[0]
    boxes = [t.get_bbox_patch().get_window_extent() for t in ax.texts if t.get_bbox_patch() is not None]
    assert len(boxes) == 9 + 4 + 2
    edges = [a.arrow_patch for a in ax.texts if getattr(a, "arrow_patch", None) is not None]
    assert len(edges) >= 9 + 4  # every child has at least its main parent link
    for edge in edges:
        path = edge.get_path()  # display coordinates, clipped to the two node boxes
        (x0, y0), (x1, y1) = path.vertices[0], path.vertices[-1]
        for f in np.linspace(0.02, 0.98, 49):
            px, py = x0 + f * (x1 - x0), y0 + f * (y1 - y0)
            assert not any(b.x0 < px < b.x1 and b.y0 < py < b.y1 for b in boxes), "an edge crosses a label"


def test_plots_bad_input():
    x = torch.rand(4, 3)
    with pytest.raises(ValueError, match="reconstructions\\[0\\] has shape"):
        plot_layer_heatmaps(x, [torch.rand(3, 4)])
    with pytest.raises(ValueError, match="titles"):
        plot_layer_heatmaps(x, [x], titles=["a", "b", "c"])
    with pytest.raises(ValueError, match="no non-empty series"):
        plot_loss_curves({"loss": []})
    with pytest.raises(ValueError, match="keys"):
        plot_loss_curves({"loss": [1.0]}, keys=["acc"])
    with pytest.raises(ValueError, match="labels\\[1\\] has 1 names"):
        plot_hierarchy([torch.rand(4, 3), torch.rand(3, 2)], labels=[["a", "b", "c"], ["p"]])
