"""select_ranks and ranks="auto": planted hierarchies recovered, the criteria against independent references
(scikit-learn's silhouette, exact low-rank data), bad input rejected with clear errors."""

import json

import numpy as np
import pytest
import torch

from neuralnmf import NeuralNMF, fit, load, save
from neuralnmf.datasets import make_planted_corpus
from neuralnmf.rank_selection import RankSelection, cluster_silhouettes, rank_rule, select_ranks


def planted(ranks=(12, 4, 2), seed=0, snr_db=20.0, size=(8, 6)):
    return make_planted_corpus(size[0] * ranks[0], size[1] * ranks[0], ranks, noise="gaussian", snr_db=snr_db,
                               seed=seed)


@pytest.mark.parametrize("seed", [0, 1])
def test_planted_hierarchy_recovered_at_every_level(seed):
    x = planted(seed=seed).x
    sel = select_ranks(x, levels=3, candidates=range(1, 17), seed=seed)
    assert sel.ranks == (12, 4, 2)
    level0 = sel.levels[0]
    assert level0.by_heldout == 12  # the held-out error stops falling at the finest planted rank
    assert all(k < 12 for k in sel.levels[1].candidates) and all(k < 4 for k in sel.levels[2].candidates)
    assert sel.levels[1].by_stability == 4 and sel.levels[1].by_heldout == 4  # both criteria see the middle level
    stab = dict(zip(level0.candidates, level0.stability))
    assert stab[4] > 0.8 and stab[5] < 0.5  # four topics agree across the replicates, five do not
    assert json.loads(json.dumps(sel.as_dict()))["ranks"] == [12, 4, 2]
    assert "**12**" in sel.table()
    sweep = sel.as_dict()["sweep"]  # the rule judged again from the kept criteria gives the same choice
    again = rank_rule(**sweep, levels=3)
    assert again.ranks == sel.ranks and again.as_dict()["levels"] == sel.as_dict()["levels"]


def test_heldout_error_drops_at_the_rank_of_exact_low_rank_data():
    g = torch.Generator().manual_seed(0)
    W = torch.rand(60, 5, generator=g, dtype=torch.float64)
    H = torch.rand(80, 5, generator=g, dtype=torch.float64)
    level = select_ranks(H @ W.mT, levels=1, candidates=[3, 4, 5, 6], seed=0).levels[0]
    err = dict(zip(level.candidates, level.heldout_error))
    fit_err = dict(zip(level.candidates, level.fit_error))
    assert fit_err[5] < 1e-4 < fit_err[4]  # the fits reach the data's rank
    # the left-out block, predicted from codes and loadings fitted without it, is an order of magnitude better at
    # the data's rank (not zero: NMF of random factors is not unique, and a fitted cone need not hold every row)
    assert err[3] > err[4] > 5 * err[5]


def test_cluster_silhouettes_equal_scikit_learn():
    from sklearn.metrics import silhouette_samples

    g = torch.Generator().manual_seed(1)
    points = torch.rand(40, 9, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 5, (40,), generator=g)
    labels[:5] = torch.arange(5)  # every cluster present
    ours = cluster_silhouettes(points, labels, 5)
    ref = silhouette_samples(points.numpy(), labels.numpy(), metric="cosine")
    expected = [ref[labels.numpy() == c].mean() for c in range(5)]
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-12)


def test_same_seed_same_criteria_and_sparse_equals_dense():
    x = planted(ranks=(8, 3), seed=3).x
    a = select_ranks(x, levels=2, candidates=range(1, 11), seed=5)
    b = select_ranks(x.to_sparse(), levels=2, candidates=range(1, 11), seed=5)
    assert a.as_dict() == b.as_dict()
    assert a.ranks == (8, 3)
    c = select_ranks(x, levels=2, candidates=range(1, 11), seed=6)
    assert c.levels[0].heldout_error != a.levels[0].heldout_error  # the seed draws the left-out parts


def test_model_with_auto_ranks_chooses_them_in_fit_and_saves(tmp_path):
    x = planted(ranks=(4, 2), seed=0, size=(10, 6)).x  # small enough for the default candidates (1 to 21)
    model = NeuralNMF(x.shape[1], "auto", levels=2, generator=torch.Generator().manual_seed(0))
    assert model.needs_ranks and len(model.layers) == 0
    fit(model, x, epochs=3, progress=False)
    assert model.ranks == (4, 2) == model.rank_selection.ranks and not model.needs_ranks
    assert isinstance(model.rank_selection, RankSelection)
    assert [layer.A.shape for layer in model.layers] == [(x.shape[1], 4), (4, 2)]
    save(model, tmp_path / "m.pt")
    assert load(tmp_path / "m.pt").ranks == (4, 2)
    with pytest.raises(ValueError, match="already"):
        model.choose_ranks(x)


def test_model_with_auto_ranks_and_data_chooses_at_construction():
    x = planted(ranks=(4, 2), seed=0, size=(10, 6)).x
    model = NeuralNMF(x.shape[1], "auto", levels=2, data=x, num_classes=3)
    assert model.ranks == (4, 2) and model.head().num_classes == 3
    assert not model.needs_initialization  # started from the data it chose its ranks on


def test_auto_ranks_reject_bad_arguments():
    with pytest.raises(ValueError, match="'auto'"):
        NeuralNMF(10, "automatic")
    with pytest.raises(ValueError, match="levels"):
        NeuralNMF(10, (4, 2), levels=3)
    with pytest.raises(TypeError, match="levels"):
        NeuralNMF(10, "auto", levels=2.5)
    model = NeuralNMF(10, "auto")
    assert "'auto' (2 levels" in repr(model)
    with pytest.raises(ValueError, match="choose_ranks"):
        save(model, "never_written.pt")
    with pytest.raises(TypeError, match="one tensor"):
        fit(model, [torch.rand(5, 10)], epochs=1)


def test_select_ranks_rejects_bad_input():
    x = planted(ranks=(8, 3), seed=0).x
    with pytest.raises(TypeError, match="x"):
        select_ranks(x.numpy())
    with pytest.raises(ValueError, match="negative"):
        select_ranks(-x)
    with pytest.raises(ValueError, match="cannot be fitted"):
        select_ranks(x, candidates=[2, 4, 500])
    with pytest.raises(ValueError, match="levels need at least"):
        select_ranks(x[:4], levels=3)
    with pytest.raises(ValueError, match="holdout"):
        select_ranks(x, holdout=0.7)
    with pytest.raises(ValueError, match="replicates"):
        select_ranks(x, replicates=1)
    with pytest.raises(ValueError, match="threshold"):
        select_ranks(x, threshold=1.5)
    with pytest.raises(ValueError, match="no candidate rank below"):
        select_ranks(x, levels=3, candidates=[1, 2, 3])


def test_cli_ranks_auto_writes_the_criteria(tmp_path, capsys):
    from neuralnmf.cli import main

    path = tmp_path / "x.npy"
    np.save(path, planted(ranks=(4, 2), seed=0, size=(10, 6)).x.numpy())
    out = tmp_path / "run"
    assert main(["fit", str(path), "--ranks", "auto", "--levels", "2", "--epochs", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "chosen ranks: 4 -> 2" in printed
    criteria = json.loads((out / "rank_selection.json").read_text())
    assert criteria["ranks"] == [4, 2] and len(criteria["levels"]) == 2
    assert json.loads((out / "metrics.json").read_text())["ranks"] == [4, 2]
    assert (out / "rank_selection.png").stat().st_size > 0
    assert main(["fit", str(path), "--ranks", "auto", "3", "--out", str(out)]) == 1
    assert "alone" in capsys.readouterr().err
    assert main(["fit", str(path), "--ranks", "4", "2", "--levels", "3", "--out", str(out)]) == 1
    assert "--levels 3 goes with --ranks auto" in capsys.readouterr().err
