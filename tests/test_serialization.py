"""neuralnmf.save / neuralnmf.load: config, weights, vocabulary and metadata round-trip, weights_only, bad files."""

import pytest
import torch

import neuralnmf
from neuralnmf import NeuralNMF, fit
from neuralnmf.datasets import make_hierarchical_corpus


@pytest.fixture(scope="module")
def trained():
    c = make_hierarchical_corpus(seed=0)
    model = NeuralNMF(87, (9, 4), num_classes=4, dtype=torch.float64)
    fit(model, c.x, y=c.labels[1], label_mask=c.label_mask(40), epochs=30, progress=False)
    return model, c


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_round_trip(trained, tmp_path, dtype):
    model, c = trained
    model = model.to(dtype)
    path = tmp_path / "m.pt"
    neuralnmf.save(model, path, vocabulary=c.vocabulary, metadata={"note": "toy", "epochs": 30})
    again = neuralnmf.load(path)
    assert isinstance(again, NeuralNMF) and not again.training
    assert again.ranks == model.ranks and again.num_classes == 4 and again.layers[0].A.dtype == dtype
    assert again.vocabulary == c.vocabulary and again.metadata == {"note": "toy", "epochs": 30} and again.text is None
    assert not again.needs_initialization and not again.needs_classifier_initialization  # loaded, not pending
    x = c.x.to(dtype)
    out, out2 = model(x), again(x)
    for a, b in zip(out.codes + [out.logits], out2.codes + [out2.logits]):
        assert torch.equal(a, b)
    raw = torch.load(path, weights_only=True)  # plain tensors and types: nothing but data is unpickled
    assert raw["format"] == "neuralnmf.model/1" and raw["config"]["ranks"] == [9, 4]


def test_folder_vocabulary_from_model_and_free_classifier(tmp_path):
    model = NeuralNMF(6, (2,), num_classes=3, nonnegative_classifier=False, init="uniform")
    model.vocabulary = list("abcdef")
    neuralnmf.save(model, tmp_path / "model.pt")
    again = neuralnmf.load(tmp_path)  # a folder: its model.pt
    assert again.vocabulary == list("abcdef") and again.nonnegative_classifier is False
    assert torch.equal(again.B, model.B)


def test_bad_files_and_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model"):
        neuralnmf.load(tmp_path / "missing.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a model written by neuralnmf.save"):
        neuralnmf.load(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="cannot load"):
        neuralnmf.load(tmp_path / "junk.pt")
    neuralnmf.save(NeuralNMF(6, (2,), init="uniform"), tmp_path / "whole.pt")
    whole = (tmp_path / "whole.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match="cut.pt: the file is damaged \\(truncated\\?\\) or not a model"):
        neuralnmf.load(tmp_path / "cut.pt")
    newer = torch.load(tmp_path / "whole.pt", weights_only=True)
    newer["format"] = "neuralnmf.model/2"
    torch.save(newer, tmp_path / "newer.pt")
    with pytest.raises(ValueError, match="unsupported version 2 of the neuralnmf model format"):
        neuralnmf.load(tmp_path / "newer.pt")
    with pytest.raises(TypeError, match="NeuralNMF"):
        neuralnmf.save(torch.nn.Linear(2, 2), tmp_path / "x.pt")
    with pytest.raises(ValueError, match="vocabulary has 2 words"):
        neuralnmf.save(NeuralNMF(6, (2,), init="uniform"), tmp_path / "x.pt", vocabulary=["a", "b"])
