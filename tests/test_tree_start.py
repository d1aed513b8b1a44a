"""The tree start (neuralnmf.tree_start) and tree levels of NeuralNMF: grouping against planted clusters, the
weights against scipy's NNLS on the explicit least-squares problem, the tree kept by every projection, saved and
loaded, document paths that follow it, and planted hierarchies recovered with defaults."""

import numpy as np
import pytest
import torch

import neuralnmf
from neuralnmf import NeuralNMF, NonnegativeProjection, fit
from neuralnmf.datasets import make_planted_corpus
from neuralnmf.metrics import hierarchy_recovery, tree_summary
from neuralnmf.topics import document_paths, hierarchy_from_dictionaries
from neuralnmf.tree_start import effective_min_children, group_topics, topic_profiles, tree_nmf

scipy_optimize = pytest.importorskip("scipy.optimize")


def _planted_topics(group_sizes, features=60, noise=0.05, seed=0, disjoint=False):
    """Columns that share a support within each group: (features, n) and the true group of each column."""
    g = torch.Generator().manual_seed(seed)
    cols, truth = [], []
    centers = torch.rand(features, len(group_sizes), generator=g) ** 4  # distinct, peaked word profiles
    if disjoint:  # each group's words its own
        centers *= torch.arange(features)[:, None] % len(group_sizes) == torch.arange(len(group_sizes))
    for j, size in enumerate(group_sizes):
        for _ in range(size):
            cols.append(centers[:, j] + noise * torch.rand(features, generator=g))
            truth.append(j)
    return torch.stack(cols, 1).double(), torch.tensor(truth)


def _same_partition(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(((a[:, None] == a[None, :]) == (b[:, None] == b[None, :])).all())


@pytest.mark.parametrize("sizes", [(2, 2, 2, 2), (3, 2, 4), (2, 5, 2, 3, 2)])
def test_group_topics_recovers_planted_groups(sizes):
    topics, truth = _planted_topics(sizes)
    perm = torch.randperm(topics.shape[1], generator=torch.Generator().manual_seed(1))
    groups = group_topics(topics[:, perm], len(sizes), min_children=2)
    assert _same_partition(groups, truth[perm])
    assert groups[0] == 0 and sorted(groups.unique().tolist()) == list(range(len(sizes)))


def test_min_children_is_kept_and_reduced_only_when_the_ranks_forbid_it():
    # one outlier column: plain average linkage would leave it alone, min_children=2 gives it a partner
    topics, _ = _planted_topics((3, 3, 1), seed=2)
    counts = torch.bincount(group_topics(topics, 3, min_children=2), minlength=3)
    assert int(counts.min()) >= 2
    counts = torch.bincount(group_topics(topics, 3, min_children=1), minlength=3)
    assert sorted(counts.tolist()) == [1, 3, 3]
    assert effective_min_children(2, 10, 8) == 1 and effective_min_children(3, 20, 5) == 3
    assert effective_min_children(5, 20, 5) == 4
    counts = torch.bincount(group_topics(_planted_topics((4, 4))[0], 2, min_children=9), minlength=2)
    assert counts.tolist() == [4, 4]  # 9 cannot be met: n // k = 4 each
    with pytest.raises(ValueError, match="cannot group 8 topics into 9 groups"):
        group_topics(_planted_topics((4, 4))[0], 9)


def test_a_heavy_loosely_related_topic_waits_and_a_heavy_tight_group_still_forms():
    topics, truth = _planted_topics((2, 2, 2), seed=3)
    hub = topics.mean(1, keepdim=True)  # a broad topic, a little like every group
    topics = torch.cat([topics, hub], 1)
    shares = torch.tensor([0.1] * 6 + [0.4])
    free = group_topics(topics, 3)  # without a cap the hub joins the group it is most like
    capped = group_topics(topics, 3, shares=shares, max_share=0.45)
    assert _same_partition(capped[:6], truth)  # the groups form first; the hub joins one at the end
    assert int((capped == capped[6]).sum()) == 3 and int((free == free[6]).sum()) == 3
    # a heavy group of clearly similar topics still forms (its similarity beats the light merges' by far)
    tight, truth = _planted_topics((3, 2, 2), noise=0.01, seed=4, disjoint=True)
    shares = torch.tensor([0.3, 0.3, 0.3, 0.025, 0.025, 0.025, 0.025])
    assert _same_partition(group_topics(tight, 3, shares=shares, max_share=0.5), truth)


def test_tree_nmf_weights_solve_the_least_squares_problem_exactly():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 25, generator=g, dtype=torch.float64)
    children = torch.rand(25, 6, generator=g, dtype=torch.float64)
    parents = torch.tensor([0, 1, 0, 2, 1, 2])
    A = tree_nmf(x, children, parents, 3, max_iter=1)
    # the first step from equal weights: H = q(x, C onehot) per document by scipy, then the weights by scipy on
    # the explicit design matrix whose columns are vec(h_p(i) c_i^T)
    onehot = torch.nn.functional.one_hot(parents, 3).double()
    W = (children @ onehot).numpy()
    H = np.stack([scipy_optimize.nnls(W, row)[0] for row in x.numpy()])
    design = np.stack([np.outer(H[:, p], children[:, i].numpy()).ravel() for i, p in enumerate(parents.tolist())], 1)
    a = scipy_optimize.nnls(design, x.numpy().ravel())[0]
    assert torch.count_nonzero(A) == 6 and bool((A.argmax(1) == parents).all())
    for j in range(3):  # each parent's weights up to its column's normalization
        rows = (parents == j).nonzero().flatten()
        ratio = A[rows, j].numpy() / a[rows.numpy()]
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-8)
    np.testing.assert_allclose((children @ A).norm(dim=0).numpy(), 1.0, rtol=1e-12)


def _tree_layers(model):
    return [l for l, layer in enumerate(model.layers) if layer.parents is not None]


def _assert_tree(model):
    for l in _tree_layers(model):
        A, parents = model.layers[l].A.detach(), model.layers[l].parents
        off = A.clone()
        off[torch.arange(A.shape[0]), parents] = 0
        assert float(off.abs().max()) == 0.0, f"level {l} has weight off its tree"


def test_defaults_recover_a_planted_hierarchy_as_a_tree():
    corpus = make_planted_corpus(400, 150, (10, 5, 2), seed=0)
    model = NeuralNMF(150, (10, 5, 2), dtype=torch.float64)
    fit(model, corpus.x, epochs=200, progress=False)
    assert _tree_layers(model) == [1, 2]
    _assert_tree(model)
    learned = hierarchy_from_dictionaries([layer.A.detach() for layer in model.layers])
    with torch.no_grad():
        codes = model(corpus.x).codes
    from neuralnmf.metrics import match_topics

    matchings = [match_topics(c, y).assignment for c, y in zip(codes, corpus.labels)]
    assert hierarchy_recovery(learned, corpus.hierarchy, matchings=matchings).score == 1.0
    summary = tree_summary(model, corpus.x)
    assert summary[1]["one_child_share"] == 0.0 and summary[2]["one_child_share"] == 0.0
    paper = NeuralNMF(150, (10, 5, 2), dtype=torch.float64, tree=False)
    fit(paper, corpus.x, epochs=5, progress=False)
    assert _tree_layers(paper) == []


def test_labeled_levels_and_those_beneath_keep_dense_dictionaries():
    corpus = make_planted_corpus(200, 80, (8, 4, 2), seed=1)
    deepest = NeuralNMF(80, (8, 4, 2), num_classes=2, dtype=torch.float64)
    fit(deepest, corpus.x, y=corpus.labels[2], epochs=3, progress=False)
    assert _tree_layers(deepest) == []
    finest = NeuralNMF(80, (8, 4, 2), num_classes={0: 8}, dtype=torch.float64)
    fit(finest, corpus.x, y={0: corpus.labels[0]}, epochs=3, progress=False)
    assert _tree_layers(finest) == [1, 2]
    _assert_tree(finest)


def test_any_optimizer_with_the_projection_keeps_the_tree_and_save_load_keeps_it(tmp_path):
    corpus = make_planted_corpus(200, 80, (8, 4, 2), seed=2)
    model = NeuralNMF(80, (8, 4, 2), data=corpus.x, dtype=torch.float64)
    parents = [model.layers[l].parents.clone() for l in (1, 2)]
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    NonnegativeProjection(model).attach(opt)
    for _ in range(5):
        opt.zero_grad()
        out = model(corpus.x)
        (sum(((corpus.x - out.codes[l] @ model.dictionary(l).T) ** 2).sum() for l in range(3))).backward()
        opt.step()
    _assert_tree(model)
    neuralnmf.save(model, tmp_path / "m.pt")
    loaded = neuralnmf.load(tmp_path / "m.pt")
    assert all(torch.equal(loaded.layers[l].parents, p) for l, p in zip((1, 2), parents))
    assert loaded.layers[0].parents is None and loaded.tree and loaded.min_children == 2
    fit(loaded, corpus.x, epochs=3, progress=False)
    _assert_tree(loaded)
    loaded.load_state_dict(NeuralNMF(80, (8, 4, 2), tree=False, dtype=torch.float64).state_dict())
    assert _tree_layers(loaded) == []  # a dense state clears the tree


def test_document_paths_follow_the_tree():
    corpus = make_planted_corpus(300, 100, (9, 3), seed=3)
    model = NeuralNMF(100, (9, 3), data=corpus.x, dtype=torch.float64)
    paths = document_paths(model, corpus.x)
    parents = model.layers[1].A.detach().argmax(1)
    assert bool((paths.topics[:, 1] == parents[paths.topics[:, 0]]).all())
    with torch.no_grad():
        codes = model(corpus.x).codes
    loose = document_paths(codes=codes)  # codes alone: each level's largest code
    assert torch.equal(loose.topics[:, 1], codes[1].argmax(1))
    share = codes[1].gather(1, paths.topics[:, 1:]).squeeze(1) / codes[1].sum(1)
    torch.testing.assert_close(paths.weights[:, 1], share)


def test_topic_profiles_give_the_mean_of_the_word_and_code_cosines():
    g = torch.Generator().manual_seed(5)
    topics, codes = torch.rand(30, 6, generator=g, dtype=torch.float64), torch.rand(40, 6, generator=g,
                                                                                       dtype=torch.float64)

    def cosine(v):
        v = v / v.norm(dim=0)
        return v.mT @ v

    torch.testing.assert_close(cosine(topic_profiles(topics, codes)), (cosine(topics) + cosine(codes)) / 2)
