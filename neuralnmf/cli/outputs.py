"""What `fit` writes and `transform` reads: model.pt (through :func:`neuralnmf.save` / :func:`neuralnmf.load`),
topics.md, metrics.json, the topic tree (topics.json, topics.html), each document's path (paths.tsv) and the
figures."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from .._optional import available, install_hint
from .._version import __version__
from ..datasets.text import TextModel
from ..metrics import topic_quality, tree_summary
from ..plot import plot_hierarchy, plot_layer_heatmaps, plot_loss_curves
from ..serialization import load, read_checkpoint, save
from ..topics import document_paths, format_hierarchy_tree, layer_topics, to_html, to_json, top_words, topic_tree
from .errors import CLIError, warn

__all__ = ["save_model", "load_model", "text_model", "topics_markdown", "write_figures", "json_safe", "make_out_dir",
           "HEATMAP_LIMIT", "TopicReport", "topic_report", "write_topics", "reference_texts"]

HEATMAP_LIMIT = 1_000_000
"""layers.png (data and reconstructions as heatmaps) is drawn only when documents x words <= this."""


def save_model(path, model, *, vocabulary=None, text: TextModel | None = None, training: dict | None = None) -> None:
    """model.pt through :func:`neuralnmf.save`: weights, config, vocabulary, tf-idf weights, training settings."""
    text_dict = None if text is None else {
        "vocabulary": [str(w) for w in text.vocabulary],
        "idf": torch.from_numpy(np.asarray(text.idf, dtype=np.float64)),
        "params": dict(text.params),
    }
    save(model, path, vocabulary=vocabulary, text=text_dict, metadata={"training": training or {}})


def load_model(model_dir, device=None):
    """Rebuild the NeuralNMF saved by `fit` from MODEL_DIR/model.pt (or the file itself) with :func:`neuralnmf.load`.

    Returns (model in eval mode, checkpoint dict). Raises CLIError when the file is missing or is not a model.
    """
    try:
        ckpt = read_checkpoint(model_dir)
        model = load(model_dir, device=device)
    except FileNotFoundError as e:
        raise CLIError(f"{e}: pass the output folder of `python -m neuralnmf fit`") from e
    except ValueError as e:
        raise CLIError(str(e)) from e
    return model, ckpt


def text_model(ckpt) -> TextModel | None:
    t = ckpt.get("text")
    if t is None:
        return None
    return TextModel(list(t["vocabulary"]), t["idf"].numpy(), dict(t["params"]))


def _md(text: str) -> str:
    return str(text).replace("|", "\\|")


_NAMES = {"c_npmi": "NPMI", "c_v": "C_V", "u_mass": "UMass"}


def _num(v) -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.3f}"


def reference_texts(source: str, text: TextModel | None, documents: list[str] | None) -> list[list[str]] | None:
    """The training documents of a text folder as tokens, cut as the vectorizer cut them (its lowercase, token
    pattern and stop words), in row order: the reference corpus of the sliding-window coherences. None for a
    matrix input (no text to slide windows over) or when a file cannot be read again."""
    if text is None or documents is None:
        return None
    from sklearn.feature_extraction.text import CountVectorizer

    p = text.params
    analyze = CountVectorizer(lowercase=p.get("lowercase", True), token_pattern=p.get("token_pattern"),
                              stop_words=p.get("stop_words")).build_analyzer()
    try:
        return [analyze((Path(source) / name).read_text(encoding="utf-8", errors="replace")) for name in documents]
    except OSError:
        return None


class TopicReport:
    """Coherence, diversity and tree measures of every level (:func:`topic_report`)."""

    def __init__(self, quality: list[dict], summary: list[dict], texts: bool):
        self.quality, self.summary, self.texts = quality, summary, texts

    def metrics(self) -> dict:
        """For metrics.json: per level, the means and per-topic scores, and the tree measures."""
        quality = [{k: v for k, v in q.items() if k != "words"} for q in self.quality]
        return {"topic_quality": quality, "tree": self.summary}

    def line(self) -> str:
        """One line for the terminal: each level's NPMI (or UMass) and diversity."""
        m = "c_npmi" if self.quality and "c_npmi" in self.quality[0] else "u_mass"
        return (f"topic quality per level ({_NAMES[m]}, diversity): "
                + ", ".join(f"level {q['level']}: {_num(q[m]['mean'])}, {_num(q['diversity'])}" for q in self.quality))

    def markdown(self) -> list[str]:
        measures = [m for m in _NAMES if self.quality and m in self.quality[0]]
        lines = ["## Topic quality", "",
                 "Coherence of each level's top-10 words on the training documents, as gensim's `CoherenceModel` "
                 "computes it: NPMI (sliding window of 10 words), C_V (window of 110), UMass (documents); diversity "
                 "is the share of distinct words among the level's top-10 words. *One-child parents* is the share "
                 "of a level's topics with exactly one child; *largest topic* the largest share of the documents "
                 "that one topic holds (documents whose finest topic is it or below it); *largest code* the largest "
                 "share of documents whose largest code at the level is one topic."]
        if not self.texts:
            lines += ["", "NPMI and C_V need the documents' text (a folder of .txt files as INPUT); this input is "
                      "a matrix, so only UMass is given."]
        lines += ["", "| level | topics |" + "".join(f" {_NAMES[m]} |" for m in measures)
                  + " diversity | one-child parents | largest topic | largest code |",
                  "|---|---:|" + "---:|" * (len(measures) + 4)]
        for q, t in zip(self.quality, self.summary):
            one = f"{t['one_child_share']:.0%}" if "one_child_share" in t else "–"
            lines.append(f"| {q['level']} | {q['topics']} |" + "".join(f" {_num(q[m]['mean'])} |" for m in measures)
                         + f" {_num(q['diversity'])} | {one} | {t.get('largest_documents_share', 0):.0%} |"
                         + f" {t.get('largest_code_share', 0):.0%} |")
        return lines


def _per_topic(report: TopicReport | None, level: int) -> dict:
    if report is None:
        return {}
    q = report.quality[level]
    return {m: q[m]["per_topic"] for m in ("c_npmi", "u_mass") if m in q}


def topic_report(model, x, codes, vocabulary, texts: list[list[str]] | None) -> TopicReport:
    """Coherence of every level (all measures on ``texts``; UMass on ``x`` without them) and the tree measures."""
    quality = topic_quality(model, vocabulary, texts=texts, x=None if texts is not None else x)
    return TopicReport(quality, tree_summary(model, codes=codes), texts is not None)


def write_topics(out_dir: Path, model, codes, vocabulary, named_vocabulary: bool, source: str, n_words: int,
                 report: TopicReport | None = None, documents: list[str] | None = None) -> list[str]:
    """topics.md, topics.json, topics.html and paths.tsv (each document's topic and its share at every level)."""
    (out_dir / "topics.md").write_text(
        topics_markdown(model, codes, vocabulary, named_vocabulary, source, n_words, report), encoding="utf-8")
    tree = topic_tree(model, vocabulary, codes=codes, n_words=n_words, document_names=documents,
                      summary=None if report is None else report.summary,
                      quality=None if report is None else report.metrics()["topic_quality"],
                      metadata={"source": source, "named_vocabulary": named_vocabulary})
    to_json(tree, path=out_dir / "topics.json")
    to_html(tree, path=out_dir / "topics.html", title=f"Topic tree of {Path(source).name}")
    write_paths(out_dir / "paths.tsv", codes, documents, model)
    return ["topics.md", "topics.json", "topics.html", "paths.tsv"]


def write_paths(path: Path, codes, documents: list[str] | None = None, model=None) -> None:
    """Each document's path through the levels as TSV: its topic at every level (:func:`document_paths`: its
    finest topic and that topic's ancestors in ``model``'s tree; without a model, each level's largest code) and
    that topic's share of the document's codes; documents without codes get '-'. codes: one (documents, k_l)
    per level."""
    paths = document_paths(model, codes=codes)
    levels = range(paths.topics.shape[1])
    rows = ["document\t" + "\t".join(f"level_{l}\tshare_{l}" for l in levels)]
    for i, (t, w) in enumerate(zip(paths.topics.tolist(), paths.weights.tolist())):
        name = documents[i] if documents is not None else str(i)
        rows.append(name + "\t" + "\t".join(f"{f'L{l}.T{t[l]}' if t[l] >= 0 else '-'}\t{w[l]:.4f}" for l in levels))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def topics_markdown(model, codes, vocabulary, named_vocabulary: bool, source: str, n_words: int,
                    report: TopicReport | None = None) -> str:
    As = [layer.A.detach().cpu() for layer in model.layers]
    ranks = list(model.ranks)
    lines = ["# Topics", "",
             f"Neural NMF with ranks {' → '.join(map(str, ranks))}, fitted on `{source}`. Level 0 holds the finest "
             "topics; each level groups the topics of the level below. A topic `L{l}.T{t}` is topic t of level l; "
             "its words are the heaviest entries of its column of A_0 ⋯ A_l, each with its weight relative to the "
             "topic's top word (1.00). *share* is the topic's part of all topic weight at its level, and "
             "*documents* counts the documents whose path passes through this topic: their finest topic (largest "
             "level-0 code) is this topic or one of its descendants."]
    if not named_vocabulary:
        lines += ["", "No vocabulary was given (--vocabulary), so words are named by column: `w{column}`."]
    for level, (T, c) in enumerate(zip(layer_topics(As), codes)):
        c = c.detach().cpu()
        dominant = torch.where((c > 0).any(1), c.argmax(1), torch.full((c.shape[0],), -1))
        counts = torch.bincount(dominant[dominant >= 0], minlength=T.shape[1]).tolist()
        words = top_words(T, vocabulary, n_words, normalize="max")
        mass = c.sum(0) * T.sum(0)  # each topic's part of the reconstruction's total weight
        share = (mass / mass.sum()).tolist() if float(mass.sum()) > 0 else [0.0] * T.shape[1]
        scores = _per_topic(report, level)
        lines += ["", f"## Level {level}: {T.shape[1]} topics", "",
                  "| topic | share | documents | top words |" + "".join(f" {_NAMES[m]} |" for m in scores),
                  "|---|---:|---:|---|" + "---:|" * len(scores)]
        for t, ws in enumerate(words):
            text = ", ".join(f"{_md(w)} ({v:.2f})" for w, v in ws) if ws else "(empty topic)"
            cells = "".join(f" {_num(v[t])} |" for v in scores.values())
            lines.append(f"| L{level}.T{t} | {share[t]:.1%} | {counts[t]} | {text} |{cells}")
    if report is not None:
        lines += ["", *report.markdown()]
    lines += ["", "## Hierarchy", "",
              "Every top-level topic with the topics below it that feed it most; [share] is the part of the "
              "child's weight that goes to this parent.", "", "```text",
              format_hierarchy_tree(As, vocabulary, n_words=min(n_words, 5)), "```", ""]
    return "\n".join(lines)


def figures_available() -> bool:
    """Whether matplotlib is there to draw the figures; without it, a warning that names the extra."""
    if available("matplotlib"):
        return True
    warn(f"no figures: matplotlib is not installed ({install_hint('plot')})")
    return False


def write_figures(out_dir: Path, model, x, codes, history, vocabulary, named_vocabulary: bool) -> list[str]:
    if not figures_available():
        return []
    written = []
    plot_loss_curves(history, path=out_dir / "loss.png", title="training loss")
    written.append("loss.png")
    As = [layer.A.detach().cpu() for layer in model.layers]
    show_words = named_vocabulary and max(model.ranks) <= 32
    plot_hierarchy(As, path=out_dir / "hierarchy.png", vocabulary=vocabulary if show_words else None)
    written.append("hierarchy.png")
    if x.shape[0] * x.shape[1] <= HEATMAP_LIMIT:
        with torch.no_grad():
            xd = x.to_dense() if x.layout != torch.strided else x
            recons = [codes[d] @ model.dictionary(d).mT for d in range(len(codes))]
        plot_layer_heatmaps(xd.cpu(), [r.cpu() for r in recons], path=out_dir / "layers.png")
        written.append("layers.png")
    return written


def json_safe(value):
    """JSON-safe: NaN/Inf -> None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_fit_outputs(out_dir: Path, args, model, x, out, docs, history, metrics: dict, report) -> list[str]:
    """What ``fit`` writes: model.pt, metrics.json, the topics, the figures, vocabulary.txt and documents.txt in
    ``out_dir`` (``docs``: the command's documents, ``out``: the model's output on them); returns the names
    written."""
    matrix, vocabulary, named = docs.matrix, docs.vocabulary, docs.named
    try:
        training = {"input": docs.source, "loss": args.loss, "epochs": history.epochs, "lr": args.lr,
                    "lam": args.lam, "batch_size": args.batch_size, "seed": args.seed, "init": args.init,
                    "documents": docs.shape[0], "neuralnmf_version": __version__}
        save_model(out_dir / "model.pt", model, vocabulary=vocabulary if named else None, text=matrix.text,
                   training=training)
        (out_dir / "metrics.json").write_text(json.dumps(json_safe(metrics), indent=2) + "\n", encoding="utf-8")
        written = ["model.pt", "metrics.json"] + write_topics(out_dir, model, out.codes, vocabulary, named,
                                                              docs.source, args.top_words, report, matrix.documents)
        written += write_figures(out_dir, model, x, out.codes, history, vocabulary, named)
        if named:
            (out_dir / "vocabulary.txt").write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
            written.append("vocabulary.txt")
        if matrix.documents is not None:
            (out_dir / "documents.txt").write_text("\n".join(matrix.documents) + "\n", encoding="utf-8")
            written.append("documents.txt")
    except OSError as e:
        raise CLIError(f"cannot write to {str(out_dir)!r}: {e.strerror or e}") from e
    return written


def make_out_dir(path) -> Path:
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CLIError(f"cannot create the output folder {str(out)!r}: {e.strerror or e}") from e
    return out
