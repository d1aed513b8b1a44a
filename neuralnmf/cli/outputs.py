"""What `fit` writes and `transform` reads: model.pt (through :func:`neuralnmf.save` / :func:`neuralnmf.load`),
topics.md, metrics.json and the figures."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..datasets.text import TextModel
from ..plot import plot_hierarchy, plot_layer_heatmaps, plot_loss_curves
from ..serialization import load, read_checkpoint, save
from ..topics import format_hierarchy_tree, layer_topics, top_words
from .errors import CLIError

__all__ = ["save_model", "load_model", "text_model", "topics_markdown", "write_figures", "json_safe", "make_out_dir",
           "HEATMAP_LIMIT"]

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


def topics_markdown(model, codes, vocabulary, named_vocabulary: bool, source: str, n_words: int) -> str:
    As = [layer.A.detach().cpu() for layer in model.layers]
    ranks = list(model.ranks)
    lines = ["# Topics", "",
             f"Neural NMF with ranks {' → '.join(map(str, ranks))}, fitted on `{source}`. Level 0 holds the finest "
             "topics; each level groups the topics of the level below. A topic `L{l}.T{t}` is topic t of level l; "
             "its words are the heaviest entries of its column of A_0 ⋯ A_l, each with its weight relative to the "
             "topic's top word (1.00). *share* is the topic's part of all topic weight at its level, and "
             "*documents* counts the documents whose largest code at that level is this topic."]
    if not named_vocabulary:
        lines += ["", "No vocabulary was given (--vocabulary), so words are named by column: `w{column}`."]
    for level, (T, c) in enumerate(zip(layer_topics(As), codes)):
        c = c.detach().cpu()
        dominant = torch.where((c > 0).any(1), c.argmax(1), torch.full((c.shape[0],), -1))
        counts = torch.bincount(dominant[dominant >= 0], minlength=T.shape[1]).tolist()
        words = top_words(T, vocabulary, n_words, normalize="max")
        mass = c.sum(0) * T.sum(0)  # each topic's part of the reconstruction's total weight
        share = (mass / mass.sum()).tolist() if float(mass.sum()) > 0 else [0.0] * T.shape[1]
        lines += ["", f"## Level {level}: {T.shape[1]} topics", "", "| topic | share | documents | top words |",
                  "|---|---:|---:|---|"]
        for t, ws in enumerate(words):
            text = ", ".join(f"{_md(w)} ({v:.2f})" for w, v in ws) if ws else "(empty topic)"
            lines.append(f"| L{level}.T{t} | {share[t]:.1%} | {counts[t]} | {text} |")
    lines += ["", "## Hierarchy", "",
              "Every top-level topic with the topics below it that feed it most; [share] is the part of the "
              "child's weight that goes to this parent.", "", "```text",
              format_hierarchy_tree(As, vocabulary, n_words=min(n_words, 5)), "```", ""]
    return "\n".join(lines)


def write_figures(out_dir: Path, model, x, codes, history, vocabulary, named_vocabulary: bool) -> list[str]:
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


def make_out_dir(path) -> Path:
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CLIError(f"cannot create the output folder {str(out)!r}: {e.strerror or e}") from e
    return out
