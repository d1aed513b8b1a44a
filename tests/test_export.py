"""The topic tree's export (neuralnmf.topics: topic_tree / to_json / from_json / to_html, document_paths) and the tree
measures (neuralnmf.metrics.tree_summary), on planted hierarchies whose true tree and document topics are known;
the HTML opened in headless Chromium when it is installed."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest
import torch

import neuralnmf
from neuralnmf.datasets import make_planted_corpus
from neuralnmf.metrics import tree_summary
from neuralnmf.topics import (document_paths, from_json, hierarchy_from_dictionaries, level_codes, to_html, to_json,
                              top_words, topic_tree)

pytestmark = pytest.mark.usefixtures("one_thread")

RANKS = (8, 4, 2)


@pytest.fixture(scope="module")
def planted():
    """A planted corpus and its true dictionaries: A_0 = the word groups, A_l = the true parent maps (one-hot)."""
    c = make_planted_corpus(240, 96, RANKS, seed=3)
    A0 = torch.nn.functional.one_hot(c.word_labels[0], RANKS[0]).double()
    As = [A0] + [torch.nn.functional.one_hot(torch.tensor(h), RANKS[l + 1]).double()
                 for l, h in enumerate(c.hierarchy)]
    return c, As


def test_tree_of_the_planted_hierarchy(planted):
    c, As = planted
    tree = topic_tree(As, c.vocabulary, c.x, n_words=5)
    assert tree["ranks"] == list(RANKS) and tree["vocabulary_size"] == 96
    for l, level in enumerate(tree["levels"]):
        assert [t["id"] for t in level["topics"]] == [f"L{l}.T{t}" for t in range(RANKS[l])]
        for t in level["topics"]:
            if l + 1 < len(RANKS):
                assert t["parent"] == c.hierarchy[l][t["index"]] and t["parent_weight"] == 1.0
            else:
                assert t["parent"] is None
            expected = [i for i, p in enumerate(c.hierarchy[l - 1]) if p == t["index"]] if l else []
            assert sorted(t["children"]) == expected
            # every top word of a planted topic belongs to it
            group = c.word_labels[l]
            assert all(group[c.vocabulary.index(w)] == t["index"] for w, _ in t["words"])
            assert t["words"][0][1] == 1.0
        assert sum(t["documents"] for t in level["topics"]) == 240
        assert sum(t["share"] for t in level["topics"]) == pytest.approx(1.0)
    # documents go to their planted topic at every level (Poisson noise: nearly all)
    paths = torch.tensor(tree["documents"]["paths"])
    for l in range(len(RANKS)):
        assert (paths[:, l] == c.labels[l]).double().mean() > 0.95
    assert torch.tensor(tree["documents"]["weights"]).le(1).all()


def test_json_round_trip_and_check(planted, tmp_path):
    c, As = planted
    model = neuralnmf.NeuralNMF(96, RANKS, data=c.x, generator=torch.Generator().manual_seed(0))
    model.eval()
    names = [f"d{i}.txt" for i in range(240)]
    text = to_json(model, c.vocabulary, c.x, path=tmp_path / "t.json", document_names=names,
                   summary=tree_summary(model, c.x), metadata={"source": "planted"})
    tree = json.loads(text)
    assert from_json(tmp_path / "t.json") == tree == from_json(text)
    assert json.loads(json.dumps(tree)) == tree
    assert tree["documents"]["names"] == names and tree["metadata"] == {"source": "planted"}
    # the tree follows the model's dictionaries; the words are top_words' words
    As_m = [layer.A.detach() for layer in model.layers]
    hier = hierarchy_from_dictionaries(As_m)
    for l, level in enumerate(tree["levels"][:-1]):
        assert [t["parent"] for t in level["topics"]] == hier.parents[l].tolist()
    words = top_words(model.dictionary(1).detach(), c.vocabulary, 10, normalize="max")
    assert [[w for w, _ in t["words"]] for t in tree["levels"][1]["topics"]] == [[w for w, _ in ws] for ws in words]
    # the paths are the argmax of each level's codes
    with torch.no_grad():
        codes = model(c.x).codes
    for l, cl in enumerate(codes):
        assert [p[l] for p in tree["documents"]["paths"]] == cl.argmax(1).tolist()
    bad = dict(tree, levels=tree["levels"][:2])
    with pytest.raises(ValueError, match="same length"):
        from_json(bad)
    with pytest.raises(ValueError, match="not a topic tree"):
        from_json({"levels": []})


def test_document_paths_and_codes(planted):
    c, As = planted
    xs = c.x.to_sparse_coo()
    dense, sparse = level_codes(As, c.x), level_codes(As, xs)
    for d, s in zip(dense, sparse):
        torch.testing.assert_close(d, s)
    p = document_paths(As, c.x)
    q = document_paths(codes=dense)
    assert torch.equal(p.topics, q.topics) and p.topics.shape == (240, 3)
    torch.testing.assert_close(p.weights[:, 0], dense[0].amax(1) / dense[0].sum(1))
    zero = document_paths(codes=[torch.zeros(2, 3), torch.tensor([[0.0, 2.0], [1.0, 1.0]])])
    assert zero.topics.tolist() == [[-1, 1], [-1, 0]] and zero.weights.tolist() == [[0.0, 1.0], [0.0, 0.5]]
    with pytest.raises(ValueError, match="needs a model"):
        document_paths(As)


def test_tree_summary_counts():
    # level 1 parents: topic 0 gets children {0, 1, 2}, topic 1 gets {3}, topic 2 none
    A0 = torch.eye(4, dtype=torch.float64)
    A1 = torch.tensor([[1.0, 0, 0], [2, 1, 0], [1, 0, 0.5], [0, 3, 0]], dtype=torch.float64)
    x = torch.tensor([[1.0, 0, 0, 0]] * 5 + [[0, 0, 0, 1.0]] * 3 + [[0, 1.0, 0, 0]] * 2, dtype=torch.float64)
    s = tree_summary([A0, A1], x)
    assert s[1]["children"] == [3, 1, 0]
    assert s[1]["one_child_share"] == pytest.approx(1 / 3) and s[1]["childless_share"] == pytest.approx(1 / 3)
    assert s[0]["documents"] == [5, 2, 0, 3] and s[0]["largest_documents_share"] == pytest.approx(0.5)
    assert s[1]["documents"] == [7, 3, 0] and s[1]["largest_documents_share"] == pytest.approx(0.7)
    assert "documents" not in tree_summary([A0, A1])[0]


def _embedded(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="topic-tree">(.*?)</script>', page, re.S)
    return json.loads(m.group(1))


def test_html_is_self_contained(planted, tmp_path):
    c, As = planted
    names = [f"d{i}" for i in range(240)]
    names[0] = "</script><b>&amp;"  # a name that would end the script if it were not escaped
    tree = topic_tree(As, c.vocabulary, c.x, document_names=names)
    page = to_html(tree, path=tmp_path / "t.html", title="a <planted> tree")
    assert _embedded(page) == tree
    assert (tmp_path / "t.html").read_text(encoding="utf-8") == page
    assert "a &lt;planted&gt; tree" in page
    for ref in ("http://", "https://", " src=", "<link", "@import", "url("):
        assert ref not in page
    assert to_html(As, c.vocabulary).count('id="topic-tree"') == 1


def _chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.mark.skipif(_chromium() is None, reason="no chromium")
def test_html_in_headless_chromium(planted, tmp_path):
    c, As = planted
    names = [f"doc{i}" for i in range(240)]
    tree = topic_tree(As, c.vocabulary, c.x, summary=tree_summary(As, c.x), document_names=names)
    path = tmp_path / "tree.html"
    to_html(tree, path=path)
    doc = 7
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                              "--disable-background-networking", "--disable-component-update", "--disable-sync",
                              f"--user-data-dir={profile}", "--virtual-time-budget=3000", "--dump-dom",
                              f"file://{path}#doc={doc}"], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "HOME": profile}).stdout
    assert 'data-ready="yes"' in dom  # the script ran to its end
    nodes = re.findall(r'<details class="node[^"]*" data-id="(L\d+\.T\d+)"', dom)
    assert sorted(nodes) == sorted(t["id"] for lv in tree["levels"] for t in lv["topics"])
    on_path = re.findall(r'<details class="node on-path" data-id="(L\d+\.T\d+)" [^>]*open', dom)
    expected = [f"L{l}.T{t}" for l, t in enumerate(tree["documents"]["paths"][doc])]
    assert sorted(on_path) == sorted(expected)
    listed = re.findall(r'<li data-id="(L\d+\.T\d+)">', dom)
    assert listed == expected[::-1]  # top level first
    assert f"Document {doc} (doc{doc})" in dom
    rows = re.findall(r"<tr><td>(\d+)</td><td>(\d+)</td>", dom)
    assert rows == [(str(l), str(k)) for l, k in enumerate(RANKS)]


DOCS = {
    "a1.txt": "the cat chased the mouse; cats and mice and kittens play with the cat",
    "a2.txt": "a kitten and a cat sleep; the mouse hides from the cat and the kitten",
    "a3.txt": "mice run, cats purr, kittens sleep in the sun while the mouse hides",
    "b1.txt": "stocks fell as markets and banks reported losses; bonds held",
    "b2.txt": "the bank raised rates; stocks and bonds markets rallied, banks gained",
    "b3.txt": "investors sold stocks; bonds and banks gained on markets and rates",
}


def test_cli_writes_quality_tree_and_paths(tmp_path, capsys):
    pytest.importorskip("sklearn")
    from sklearn.feature_extraction.text import CountVectorizer

    from neuralnmf.cli import main
    from neuralnmf.cli.outputs import load_model
    from neuralnmf.metrics import topic_quality

    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text)
    out = tmp_path / "run"
    assert main(["fit", str(folder), "--ranks", "3", "2", "--epochs", "20", "--out", str(out), "--no-progress"]) == 0
    assert "topic quality per level (NPMI, diversity)" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    tree = from_json(out / "topics.json")
    # the coherence is that of the saved model's topics on the documents' tokens, cut as TfidfVectorizer cuts them
    model, _ = load_model(out)
    analyze = CountVectorizer(stop_words="english").build_analyzer()
    texts = [analyze(DOCS[k]) for k in sorted(DOCS)]
    expected = topic_quality(model, (out / "vocabulary.txt").read_text().split(), texts=texts)
    for got, exp, q in zip(metrics["topic_quality"], expected, tree["quality"]):
        for m in ("c_npmi", "c_v", "u_mass"):
            assert got[m]["per_topic"] == pytest.approx(exp[m]["per_topic"], abs=1e-6, nan_ok=True)
            assert q[m] == got[m]
        assert got["diversity"] == exp["diversity"]
    assert metrics["tree"][1]["topics"] == 2 and "one_child_share" in metrics["tree"][1]
    md = (out / "topics.md").read_text()
    assert "## Topic quality" in md and "| level | topics | NPMI | C_V | UMass | diversity |" in md
    assert _embedded((out / "topics.html").read_text(encoding="utf-8")) == tree
    rows = (out / "paths.tsv").read_text().splitlines()
    assert rows[0] == "document\tlevel_0\tshare_0\tlevel_1\tshare_1"
    assert [r.split("\t")[0] for r in rows[1:]] == sorted(DOCS) == tree["documents"]["names"]
    assert [r.split("\t")[1] for r in rows[1:]] == [f"L0.T{p[0]}" for p in tree["documents"]["paths"]]
    # transform writes the same paths for the same documents under the saved model
    assert main(["transform", str(out), str(folder), "--out", str(tmp_path / "codes.npy")]) == 0
    assert "each document's topic and its share at every level" in capsys.readouterr().out
    assert (tmp_path / "codes_paths.tsv").read_text().splitlines() == rows


def test_cli_matrix_input_gives_u_mass_only(planted, tmp_path, capsys):
    import numpy as np
    import scipy.sparse

    from neuralnmf.cli import main

    c, _ = planted
    scipy.sparse.save_npz(tmp_path / "x.npz", scipy.sparse.csr_matrix(c.x.numpy()))
    out = tmp_path / "run"
    assert main(["fit", str(tmp_path / "x.npz"), "--ranks", "4", "2", "--epochs", "5", "--out", str(out),
                 "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["topic_quality"][0]) == {"level", "topics", "diversity", "u_mass"}
    assert np.isfinite(metrics["topic_quality"][0]["u_mass"]["mean"])
    assert "only UMass is given" in (out / "topics.md").read_text()
