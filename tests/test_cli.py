"""`python -m neuralnmf fit` and `transform`: end to end on small corpora, output files, and bad input."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse
import torch

import neuralnmf
from neuralnmf.cli import main
from neuralnmf.cli import outputs
from neuralnmf.datasets.text import TextModel, read_text_folder
from neuralnmf.datasets import make_hierarchical_corpus
from neuralnmf.metrics import level_errors

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG = b"\x89PNG\r\n\x1a\n"


def _run(*args):
    return subprocess.run([sys.executable, "-m", "neuralnmf", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The generated 90 x 87 hierarchical corpus as .npz (sparse) and .npy, with labels, vocabulary and a mask."""
    d = tmp_path_factory.mktemp("corpus")
    c = make_hierarchical_corpus(seed=0)
    x = c.x.numpy()
    scipy.sparse.save_npz(d / "x.npz", scipy.sparse.csr_matrix(x))
    np.save(d / "x.npy", x)
    np.savetxt(d / "labels.txt", c.labels[1].numpy(), fmt="%d")
    (d / "vocab.txt").write_text("\n".join(c.vocabulary) + "\n")
    mask = np.zeros(90, dtype=int)
    mask[::3] = 1
    np.savetxt(d / "mask.txt", mask, fmt="%d")
    return d, c


@pytest.fixture(scope="module")
def fitted(corpus):
    """One fit through the real entry point: sparse .npz, labels, half of them used for training."""
    d, _ = corpus
    out = d / "run"
    done = _run("fit", str(d / "x.npz"), "--ranks", "9", "4", "2", "--vocabulary", str(d / "vocab.txt"),
                "--labels", str(d / "labels.txt"), "--labeled-fraction", "0.5", "--epochs", "150",
                "--out", str(out), "--no-progress")
    assert done.returncode == 0, done.stderr
    return out, done.stdout


def _error(capsys, argv, *fragments, code=1):
    """main(argv) fails with one clear line on stderr (no traceback) containing every fragment."""
    assert main([str(a) for a in argv]) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    for f in fragments:
        assert f in err, err
    return err


def test_help_describes_inputs_and_outputs(capsys):
    top = _run("--help")
    assert top.returncode == 0 and all(c in top.stdout for c in ("demo", "nnls-demo", "fit", "transform"))
    fit_help = _run("fit", "--help")
    assert fit_help.returncode == 0
    for text in ("documents are ROWS", ".npz", ".mat", ".npy", ".txt", "neuralnmf[text]", "model.pt", "topics.md",
                 "metrics.json", "--labeled-fraction", "--ranks", "--drop-empty", "never densified",
                 "--init nmf", "--loss hierarchical", "--lam 1 (logistic)", "--classifier logistic", "--validation 0.1",
                 "--lr 0.01", "--dtype float32", "LEVEL=FILE"):
        assert text in fit_help.stdout, text
    with pytest.raises(SystemExit) as e:
        main(["transform", "--help"])
    assert e.value.code == 0 and "--depth" in capsys.readouterr().out


def test_fit_writes_every_output(fitted):
    out, stdout = fitted
    assert "relative error" in stdout and "accuracy" in stdout
    names = {p.name for p in out.iterdir()}
    assert {"model.pt", "topics.md", "metrics.json", "loss.png", "hierarchy.png", "layers.png",
            "vocabulary.txt"} <= names
    for png in ("loss.png", "hierarchy.png", "layers.png"):
        assert (out / png).read_bytes()[:8] == PNG
    ckpt = torch.load(out / "model.pt", weights_only=True)
    assert ckpt["config"] == {"in_features": 87, "ranks": [9, 4, 2], "num_classes": 4, "classifier": "logistic",
                              "nonnegative_classifier": True, "tree": True, "min_children": 2, "dtype": "float32"}
    # the logistic classifier of the deepest level reads the codes of every level: 9 + 4 + 2 features
    assert ckpt["state_dict"]["layers.0.A"].shape == (87, 9) and ckpt["state_dict"]["heads.2.weight"].shape == (4, 15)
    assert len(ckpt["vocabulary"]) == 87 and ckpt["text"] is None

    m = json.loads((out / "metrics.json").read_text())
    assert m["sparse"] is True and m["init"] == "nmf" and m["loss"] == "hierarchical" and m["documents"] == 90
    err, start = m["relative_error"], m["relative_error_at_start"]
    assert len(err) == 3 and all(0 < e < 1 for e in err) and err[0] < err[2]
    # the toy corpus's best rank-9/4/2 errors are about 0.023/0.28/0.47: level 0 starts there, and 150 epochs
    # bring the other levels within a few percent of them (semi-supervised)
    assert start[0] <= 1.02 * 0.0235 and len(start) == 3, start
    assert all(e <= 1.05 * b for e, b in zip(err, (0.0235, 0.2816, 0.4676))), err
    cls = m["classification"]
    assert cls["labeled_documents"] == 45 and cls["unlabeled_documents"] == 45 and list(cls["levels"]) == ["2"]
    deepest = cls["levels"]["2"]
    assert deepest["num_classes"] == 4 and deepest["labeled_documents"] == 45
    for acc in (deepest["classifier"], deepest["least_squares"]):
        assert 0 <= acc["labeled"] <= 1 and 0 <= acc["unlabeled"] <= 1
    assert m["chosen_from_data"]["holdout"] == 0 and "too few labeled documents" in stdout  # 45 labels: none held out

    md = (out / "topics.md").read_text()
    for text in ("## Level 0: 9 topics", "## Level 2: 2 topics", "## Hierarchy", "L2.T0", "L0.T8", "_g"):
        assert text in md


def test_relative_error_matches_dense_computation(fitted, corpus):
    out, _ = fitted
    model, _ = outputs.load_model(out)
    x = corpus[1].x.float()
    with torch.no_grad():
        codes = model(x).codes
        dense = [float(torch.linalg.norm(x - model.reconstruct(x, d)) / torch.linalg.norm(x)) for d in range(3)]
    sparse = level_errors(model, x.to_sparse(), codes)
    assert np.allclose(sparse, dense, rtol=1e-5)
    saved = json.loads((out / "metrics.json").read_text())["relative_error"]
    assert np.allclose(saved, dense, rtol=1e-6)


def test_transform_after_fit(fitted, corpus, tmp_path, capsys):
    out, _ = fitted
    d, c = corpus
    done = _run("transform", str(out), str(d / "x.npy"), "--out", str(tmp_path / "codes.npy"))
    assert done.returncode == 0, done.stderr
    assert "90 documents x 2 topics" in done.stdout and "relative error" in done.stdout
    codes = np.load(tmp_path / "codes.npy")
    model, _ = outputs.load_model(out)
    assert codes.shape == (90, 2)
    assert np.allclose(codes, model.transform(c.x.float()).numpy(), rtol=1e-4, atol=1e-6)
    # sparse input and another depth, in process
    assert main(["transform", str(out), str(d / "x.npz"), "--out", str(tmp_path / "c0.npy"), "--depth", "0"]) == 0
    c0 = np.load(tmp_path / "c0.npy")
    assert c0.shape == (90, 9) and np.allclose(c0, model.transform(c.x.float(), 0).numpy(), rtol=1e-4, atol=1e-6)
    # the model has a classifier: transform also writes each document's predicted class and the probabilities
    predicted = np.loadtxt(tmp_path / "codes_labels.txt", dtype=int)
    proba = np.load(tmp_path / "codes_labels.proba.npy")
    assert "predicted class of each document at level 2" in done.stdout
    assert np.array_equal(predicted, model.predict(c.x.float()).numpy())
    assert proba.shape == (90, 4) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert np.array_equal(proba.argmax(1), predicted)


def test_labels_at_two_levels(corpus, tmp_path, capsys):
    d, c = corpus
    for level in (0, 1):
        np.savetxt(tmp_path / f"y{level}.txt", c.labels[level].numpy(), fmt="%d")
    out = tmp_path / "run"
    assert main(["fit", str(d / "x.npz"), "--ranks", "9", "4", "--labels", f"0={tmp_path / 'y0.txt'}",
                 f"--labels=-1={tmp_path / 'y1.txt'}", "--epochs", "30", "--out", str(out), "--no-progress"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    levels = m["classification"]["levels"]
    assert {k: v["num_classes"] for k, v in levels.items()} == {"0": 9, "1": 4}
    assert all(v["classifier"]["labeled"] >= 0.9 for v in levels.values())  # the toy corpus's classes are clean
    model, _ = outputs.load_model(out)
    assert model.labeled_levels == [0, 1] and model.num_classes == {0: 9, 1: 4}
    assert main(["transform", str(out), str(d / "x.npz"), "--out", str(tmp_path / "codes.npy")]) == 0
    for level in (0, 1):
        predicted = np.loadtxt(tmp_path / f"codes_labels_level{level}.txt", dtype=int)
        assert np.array_equal(predicted, model.predict(c.x.float(), level).numpy())
    for bad, message in ((f"2={tmp_path / 'y0.txt'}", "level 2 does not exist"),
                         (f"1={tmp_path / 'y0.txt'}", "labeled twice")):
        capsys.readouterr()
        assert main(["fit", str(d / "x.npz"), "--ranks", "9", "4", f"--labels=-1={tmp_path / 'y1.txt'}", "--labels",
                     bad, "--epochs", "1", "--out", str(out), "--no-progress"]) == 1
        assert message in capsys.readouterr().err


def test_dense_npy_with_label_mask_float64_minibatches(corpus, tmp_path):
    d, _ = corpus
    out = tmp_path / "run"
    argv = ["fit", str(d / "x.npy"), "--ranks", "6", "3", "--labels", str(d / "labels.txt"), "--label-mask",
            str(d / "mask.txt"), "--loss", "reconstruction", "--init", "nndsvda", "--epochs", "20", "--batch-size",
            "32", "--dtype", "float64", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["sparse"] is False and m["dtype"] == "float64" and m["init"] == "nndsvda"
    assert m["classification"]["labeled_documents"] == 30
    assert m["classification"]["levels"]["1"]["least_squares"]["unlabeled"] is not None
    ckpt = torch.load(out / "model.pt", weights_only=True)
    assert ckpt["config"]["dtype"] == "float64" and ckpt["vocabulary"] is None
    assert "w0" in (out / "topics.md").read_text() and not (out / "vocabulary.txt").exists()
    model, _ = outputs.load_model(out)
    assert model.layers[0].A.dtype == torch.float64


def test_large_sparse_input_is_never_densified(corpus, tmp_path, monkeypatch):
    """The default start and training never densify; above the heatmap limit no figure needs the dense matrix."""
    d, _ = corpus
    monkeypatch.setattr(outputs, "HEATMAP_LIMIT", 100)

    def refuse(self, *a, **k):
        raise AssertionError("a sparse tensor was densified")

    monkeypatch.setattr(torch.Tensor, "to_dense", refuse)
    out = tmp_path / "run"
    assert main(["fit", str(d / "x.npz"), "--ranks", "4", "2", "--epochs", "5", "--out", str(out),
                 "--no-progress"]) == 0
    assert json.loads((out / "metrics.json").read_text())["init"] == "nmf"
    assert not (out / "layers.png").exists() and (out / "hierarchy.png").exists()
    assert main(["transform", str(out), str(d / "x.npz"), "--out", str(tmp_path / "c.npy")]) == 0


def _write_docs(folder, docs):
    folder.mkdir()
    for name, text in docs.items():
        (folder / name).write_text(text)
    return folder


DOCS = {
    "a1.txt": "the cat chased the mouse; cats and mice and kittens play",
    "a2.txt": "a kitten and a cat sleep; the mouse hides from the cat",
    "a3.txt": "mice run, cats purr, kittens sleep in the sun",
    "b1.txt": "stocks fell as markets and banks reported losses",
    "b2.txt": "the bank raised rates; stocks and bonds markets rallied",
    "b3.txt": "investors sold stocks; bonds and banks gained on markets",
}


def test_text_folder_fit_and_transform(tmp_path, capsys):
    pytest.importorskip("sklearn")
    from sklearn.feature_extraction.text import TfidfVectorizer

    folder = _write_docs(tmp_path / "docs", DOCS)
    (folder / "notes.md").write_text("not a document")
    labels = tmp_path / "labels.txt"
    labels.write_text("0\n0\n0\n1\n1\n1\n")
    out = tmp_path / "run"
    assert main(["fit", str(folder), "--ranks", "3", "2", "--labels", str(labels), "--epochs", "30", "--out", str(out),
                 "--no-progress"]) == 0
    vocab = (out / "vocabulary.txt").read_text().split()
    assert "stocks" in vocab and "the" not in vocab  # English stop words are dropped
    assert (out / "documents.txt").read_text().split() == sorted(DOCS)
    ckpt = torch.load(out / "model.pt", weights_only=True)
    assert ckpt["vocabulary"] == vocab and ckpt["text"]["vocabulary"] == vocab
    assert ckpt["text"]["idf"].shape == (len(vocab),) and ckpt["text"]["params"]["stop_words"] == "english"
    assert "stocks" in (out / "topics.md").read_text()

    # the saved vocabulary and idf reproduce the fitted tf-idf matrix exactly
    fitted = TfidfVectorizer(stop_words="english").fit_transform([DOCS[k] for k in sorted(DOCS)]).toarray()
    text = TextModel(ckpt["text"]["vocabulary"], ckpt["text"]["idf"].numpy(), ckpt["text"]["params"])
    again = read_text_folder(folder, text=text).data.toarray()
    assert np.allclose(again, fitted, atol=1e-14)

    capsys.readouterr()
    assert main(["transform", str(out), str(folder), "--out", str(tmp_path / "codes.npy")]) == 0
    assert "sorted file names" in capsys.readouterr().out
    model, _ = outputs.load_model(out)
    codes = np.load(tmp_path / "codes.npy")
    assert codes.shape == (6, 2)
    assert np.allclose(codes, model.transform(torch.from_numpy(fitted).float()).numpy(), rtol=1e-4, atol=1e-6)

    # new documents: unseen words are ignored, a document without known words gets zero codes (with a warning)
    new = _write_docs(tmp_path / "new", {"n1.txt": "cats and stocks", "n2.txt": "zebra quantum"})
    assert main(["transform", str(out), str(new), "--out", str(tmp_path / "new.npy"), "--depth", "0"]) == 0
    assert "1 of 2 documents are empty" in capsys.readouterr().err
    new_codes = np.load(tmp_path / "new.npy")
    assert new_codes.shape == (2, 3) and new_codes[0].sum() > 0 and not new_codes[1].any()


def test_text_folder_without_scikit_learn(tmp_path, monkeypatch, capsys):
    folder = _write_docs(tmp_path / "docs", DOCS)
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.feature_extraction", None)
    _error(capsys, ["fit", folder, "--ranks", "2"], "pip install scikit-learn", "neuralnmf[text]")


def test_empty_documents_rejected_or_dropped(corpus, tmp_path, capsys):
    d, c = corpus
    x = c.x.numpy().copy()
    x[[3, 7]] = 0
    path = tmp_path / "holes.npz"
    scipy.sparse.save_npz(path, scipy.sparse.csr_matrix(x))
    _error(capsys, ["fit", path, "--ranks", "3", "--out", tmp_path / "r"],
           "2 of 90 documents are empty", "rows 3, 7", "--drop-empty")
    out = tmp_path / "r2"
    assert main([str(a) for a in ["fit", path, "--ranks", "3", "--labels", d / "labels.txt", "--epochs", "5",
                                  "--drop-empty", "--out", out, "--no-progress"]]) == 0
    assert "are left out" in capsys.readouterr().err
    m = json.loads((out / "metrics.json").read_text())
    assert m["dropped_empty_documents"] == [3, 7] and m["documents"] == 88


def test_bad_inputs_give_one_clear_line(corpus, tmp_path, capsys):
    d, c = corpus
    x = c.x.numpy()
    fit = ["fit"]
    r = ["--ranks", "3", "--epochs", "2", "--out", tmp_path / "out", "--no-progress"]

    _error(capsys, [*fit, tmp_path / "missing.npz", *r], "does not exist")
    (tmp_path / "x.csv").write_text("1,2\n3,4\n")
    _error(capsys, [*fit, tmp_path / "x.csv", *r], "unsupported input", ".npz")
    (tmp_path / "broken.npz").write_bytes(b"this is not a zip file")
    _error(capsys, [*fit, tmp_path / "broken.npz", *r], "cannot read")
    (tmp_path / "empty_dir").mkdir()
    _error(capsys, [*fit, tmp_path / "empty_dir", *r], "holds no .txt documents")

    neg = x.copy()
    neg[5, 17] = -1.0
    np.save(tmp_path / "neg.npy", neg)
    _error(capsys, [*fit, tmp_path / "neg.npy", *r], "1 negative entries", "document 5, word 17")
    nan = x.copy()
    nan[2, 3] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    _error(capsys, [*fit, tmp_path / "nan.npy", *r], "NaN")

    (tmp_path / "short_vocab.txt").write_text("\n".join(c.vocabulary[:-1]))
    _error(capsys, [*fit, d / "x.npz", "--vocabulary", tmp_path / "short_vocab.txt", *r],
           "has 86 words but the data has 87 words")
    np.savetxt(tmp_path / "short_labels.txt", np.zeros(89), fmt="%d")
    _error(capsys, [*fit, d / "x.npz", "--labels", tmp_path / "short_labels.txt", *r],
           "has 89 entries but the data has 90 documents")
    (tmp_path / "word_labels.txt").write_text("0\nsports\n" + "1\n" * 88)
    _error(capsys, [*fit, d / "x.npz", "--labels", tmp_path / "word_labels.txt", *r], "line 2", "integer")
    _error(capsys, [*fit, d / "x.npz", "--labeled-fraction", "0.5", *r], "need --labels")
    _error(capsys, [*fit, d / "x.npz", "--labels", d / "labels.txt", "--labeled-fraction", "1.5", *r], "(0, 1]")
    _error(capsys, [*fit, d / "x.npz", "--vocabulary", tmp_path / "nope.txt", *r], "nor an existing file")
    if not torch.cuda.is_available():
        _error(capsys, [*fit, d / "x.npz", *r, "--device", "cuda"], "CUDA is not available")

    for ranks in (["4", "0"], ["-2"], ["two"]):
        with pytest.raises(SystemExit) as e:
            main(["fit", str(d / "x.npz"), "--ranks", *ranks])
        assert e.value.code == 2 and "expected a positive integer" in capsys.readouterr().err


def test_transform_bad_inputs(fitted, corpus, tmp_path, capsys):
    out, _ = fitted
    d, c = corpus
    _error(capsys, ["transform", tmp_path / "nowhere", d / "x.npy"], "no model")
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "model.pt").write_bytes(b"junk")
    _error(capsys, ["transform", tmp_path / "fake", d / "x.npy"], "cannot load")
    np.save(tmp_path / "narrow.npy", c.x.numpy()[:, :80])
    _error(capsys, ["transform", out, tmp_path / "narrow.npy"], "has 80 words (columns)", "fitted on 87")
    _error(capsys, ["transform", out, d / "x.npy", "--depth", "3"], "--depth")
    docs = _write_docs(tmp_path / "docs", DOCS)
    _error(capsys, ["transform", out, docs], "not fitted on text")


def test_errors_through_the_entry_point_have_no_traceback(tmp_path):
    done = _run("fit", str(tmp_path / "missing.npz"), "--ranks", "3")
    assert done.returncode == 1
    assert done.stderr.strip().startswith("error: ") and "Traceback" not in done.stderr


def test_labels_numbered_from_one_are_shifted_with_a_message(corpus, tmp_path, capsys):
    d, c = corpus
    labels = tmp_path / "labels1.txt"
    np.savetxt(labels, c.labels[1].numpy() + 1, fmt="%d")  # MATLAB numbering: 1..4
    out = tmp_path / "run"
    assert main(["fit", str(d / "x.npz"), "--ranks", "4", "--labels", str(labels), "--epochs", "5", "--out", str(out),
                 "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "run from 1 to 4 and none is 0" in err and "read as 0 to 3" in err
    assert json.loads((out / "metrics.json").read_text())["classification"]["levels"]["0"]["num_classes"] == 4
    gap = tmp_path / "gap.txt"
    np.savetxt(gap, np.where(c.labels[1].numpy() == 2, 3, c.labels[1].numpy()), fmt="%d")  # class 2 unused
    assert main(["fit", str(d / "x.npz"), "--ranks", "4", "--labels", str(gap), "--epochs", "2", "--out", str(out),
                 "--no-progress"]) == 0
    assert "classes 2 have no document" in capsys.readouterr().err


def test_increasing_ranks_are_refused(corpus, capsys):
    d, _ = corpus
    _error(capsys, ["fit", d / "x.npz", "--ranks", "2", "5"], "must not increase", "--ranks 5 2")
    with pytest.warns(UserWarning, match="increase"):
        from neuralnmf import NeuralNMF

        NeuralNMF(87, (2, 5))


def test_words_by_documents_file_suggests_transpose(tmp_path, capsys):
    c = make_hierarchical_corpus(seed=0)
    xt = np.hstack([c.x.numpy(), np.zeros((90, 40))]).T  # 127 "documents" (really words, 40 never used) x 90
    np.save(tmp_path / "wd.npy", xt)
    _error(capsys, ["fit", tmp_path / "wd.npy", "--ranks", "3", "--out", tmp_path / "r"], "--transpose",
           "words x documents")
    assert main(["fit", str(tmp_path / "wd.npy"), "--transpose", "--ranks", "3", "--epochs", "2", "--out",
                 str(tmp_path / "r"), "--no-progress"]) == 0


def test_topic_weights_are_readable_on_a_large_vocabulary(tmp_path):
    from neuralnmf.datasets import make_planted_corpus

    c = make_planted_corpus(200, 5000, (4, 2), doc_length=150, zipf=1.0, sparse=True, seed=1)
    x = scipy.sparse.csr_matrix((c.x.values().numpy(), c.x.indices().numpy()), shape=tuple(c.x.shape))
    scipy.sparse.save_npz(tmp_path / "x.npz", x)
    out = tmp_path / "run"
    assert main(["fit", str(tmp_path / "x.npz"), "--ranks", "4", "2", "--epochs", "5", "--out", str(out),
                 "--no-progress"]) == 0
    md = (out / "topics.md").read_text()
    tree = md.split("```text")[1]
    weights = [float(w) for w in __import__("re").findall(r"\((\d\.\d\d)\)", tree)]
    assert weights and max(weights) == 1.0 and sum(w >= 0.1 for w in weights) > len(weights) // 2, tree[:400]
    assert "| topic | share | documents | top words |" in md


def test_saved_model_loads_with_the_public_api(fitted, corpus):
    import neuralnmf

    out, _ = fitted
    model = neuralnmf.load(out / "model.pt")
    assert model.vocabulary == corpus[1].vocabulary and model.ranks == (9, 4, 2) and not model.training
    assert model.metadata["training"]["loss"] == "hierarchical"
    cli_model, _ = outputs.load_model(out)
    for a, b in zip(model.state_dict().values(), cli_model.state_dict().values()):
        assert torch.equal(a, b)


def test_damaged_files_give_one_clear_line(fitted, corpus, tmp_path, capsys):
    """A truncated .npz (fit and transform) or model.pt, and a model of a newer format: one line that names the
    file and the problem, never a BadZipFile traceback (issue 20)."""
    out, _ = fitted
    d, _ = corpus
    whole = (d / "x.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(whole[: len(whole) // 2])
    _error(capsys, ["fit", tmp_path / "cut.npz", "--ranks", "3", "--epochs", "1", "--out", tmp_path / "o",
                    "--no-progress"], "cannot read", "cut.npz", "is it a complete .npz file?")
    _error(capsys, ["transform", out, tmp_path / "cut.npz"], "cannot read", "cut.npz", "is it a complete .npz file?")
    model = (out / "model.pt").read_bytes()
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "model.pt").write_bytes(model[: len(model) // 2])
    _error(capsys, ["transform", tmp_path / "cut", d / "x.npy"], "cannot load", "damaged")
    newer = torch.load(out / "model.pt", weights_only=True)
    newer["format"] = "neuralnmf.model/7"
    (tmp_path / "newer").mkdir()
    torch.save(newer, tmp_path / "newer" / "model.pt")
    _error(capsys, ["transform", tmp_path / "newer", d / "x.npy"], "unsupported version 7", "upgrade neuralnmf")


def test_an_output_folder_that_cannot_be_made_fails_before_training(corpus, tmp_path, capsys):
    """--out under a file: the error comes before any training (it used to come after the whole fit)."""
    d, _ = corpus
    (tmp_path / "a_file").write_text("not a folder")
    argv = ["fit", d / "x.npz", "--ranks", "4", "2", "--epochs", "100000", "--no-progress", "--out",
            tmp_path / "a_file" / "run"]
    assert main([str(a) for a in argv]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: cannot create the output folder") and "a_file" in captured.err
    assert "neuralnmf fit:" not in captured.out and "trained" not in captured.out  # nothing was built or trained


def test_library_warnings_are_one_line_each(corpus, tmp_path, capsys):
    """fit's warnings (here: a labeled level with fewer topics than classes) reach the user as 'warning: ...'."""
    d, _ = corpus
    assert main(["fit", str(d / "x.npz"), "--ranks", "4", "2", "--labels", str(d / "labels.txt"), "--epochs", "2",
                 "--no-progress", "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "warning: fit: level 1 is labeled with 4 classes but has only 2 topics" in err, err
    assert "Warning:" not in err and ".py:" not in err, err


def test_tree_options_reach_the_model(corpus, tmp_path):
    """Unsupervised fits are trees by default (--min-children 2); --no-tree gives the papers' dense dictionaries;
    paths.tsv follows the tree."""
    d, _ = corpus
    for extra, tree in (([], True), (["--no-tree"], False), (["--min-children", "3"], True)):
        out = tmp_path / ("_".join(extra) or "default")
        done = _run("fit", str(d / "x.npz"), "--ranks", "9", "4", "2", "--epochs", "20", "--out", str(out),
                    "--no-progress", *extra)
        assert done.returncode == 0, done.stderr
        model = neuralnmf.load(out)
        assert model.tree is tree and model.min_children == (3 if "3" in extra else 2)
        parents = [layer.parents for layer in model.layers]
        assert parents[0] is None and all((p is not None) is tree for p in parents[1:])
        if tree:
            counts = torch.bincount(parents[1], minlength=4)
            assert int(counts.min()) >= 2  # with --min-children 3 too: 9 // 4 = 2 caps the request
            rows = [line.split("\t") for line in (out / "paths.tsv").read_text().splitlines()[1:]]
            for row in rows:
                t0, t1 = int(row[1].split(".T")[1]), int(row[3].split(".T")[1])
                assert int(parents[1][t0]) == t1
