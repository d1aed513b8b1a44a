"""The `fit` and `transform` commands of `python -m neuralnmf`: from documents to a topic hierarchy and back.

``fit`` reads a corpus (see :mod:`neuralnmf.corpus_io`), trains a :class:`neuralnmf.NeuralNMF` and writes an output
folder; ``transform`` rebuilds the model from that folder and writes the codes of new documents. Bad input raises
:class:`neuralnmf.corpus_io.CLIError`, which ``neuralnmf.cli.main`` prints as one line.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .corpus_io import (
    CLIError,
    Matrix,
    TextModel,
    describe_indices,
    empty_rows,
    read_label_mask,
    read_labels,
    read_matrix,
    read_text_folder,
    read_vocabulary,
)

__all__ = ["run_fit", "run_transform", "load_model", "save_model", "relative_errors", "HEATMAP_LIMIT"]

HEATMAP_LIMIT = 1_000_000
"""layers.png (data and reconstructions as heatmaps) is drawn only when documents x words <= this."""

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as e:
        raise CLIError(f"--device {name!r} is not a torch device (cpu, cuda, cuda:1, ...)") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {name}: CUDA is not available here (this torch build or machine has no GPU); "
                       "use --device cpu")
    return device


def _read_input(path: str, args, text: TextModel | None = None) -> Matrix:
    p = Path(path)
    if p.is_dir():
        if getattr(args, "key", None) is not None or getattr(args, "transpose", False):
            raise CLIError("--key and --transpose apply to matrix files, not to a folder of text documents")
        if text is not None:
            return read_text_folder(p, text=text)
        params = {"stop_words": None if args.stop_words == "none" else args.stop_words, "min_df": args.min_df,
                  "max_df": args.max_df, "max_features": args.max_features}
        return read_text_folder(p, **params)
    return read_matrix(p, key=args.key, transpose=args.transpose)


def _to_torch(matrix: Matrix, dtype, device) -> torch.Tensor:
    from .datasets import scipy_to_torch

    if matrix.sparse:
        return scipy_to_torch(matrix.data, dtype=dtype, device=device)
    return torch.from_numpy(matrix.data).to(dtype=dtype, device=device)


def relative_errors(model, x: torch.Tensor, codes, depths=None) -> list[float]:
    """||x - A_0 ... A_l S_l||_F / ||x||_F for the levels ``depths`` (default 0, 1, ...: one per entry of
    ``codes``), in float64 and never densifying a sparse x: the squared error comes from the expansion
    ||x||^2 - 2 <S_l, x D_l> + <S_l^T S_l, D_l^T D_l> of :func:`neuralnmf.losses.factorization_mse`."""
    from .losses import factorization_mse

    depths = range(len(codes)) if depths is None else depths
    with torch.no_grad():
        x64 = x.double()
        values = x64.coalesce().values() if x64.layout == torch.sparse_coo else x64
        norm2 = float((values ** 2).sum())
        entries = x.shape[0] * x.shape[1]
        out = []
        for depth, c in zip(depths, codes):
            sq = float(factorization_mse(x64, c.double(), model.dictionary(depth).double())) * entries
            out.append(math.sqrt(max(sq, 0.0) / norm2) if norm2 > 0 else float("nan"))
    return out


# --- model files --------------------------------------------------------------------------------------------------


def save_model(path, model, *, vocabulary=None, text: TextModel | None = None, training: dict | None = None) -> None:
    """model.pt through :func:`neuralnmf.save`: weights, config, vocabulary, tf-idf weights, training settings."""
    from .serialization import save

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
    from .serialization import load, read_checkpoint

    try:
        ckpt = read_checkpoint(model_dir)
        model = load(model_dir, device=device)
    except FileNotFoundError as e:
        raise CLIError(f"{e}: pass the output folder of `python -m neuralnmf fit`") from e
    except ValueError as e:
        raise CLIError(str(e)) from e
    return model, ckpt


def _text_model(ckpt) -> TextModel | None:
    t = ckpt.get("text")
    if t is None:
        return None
    return TextModel(list(t["vocabulary"]), t["idf"].numpy(), dict(t["params"]))


# --- fit ----------------------------------------------------------------------------------------------------------


def _labels_and_mask(args, matrix: Matrix, n: int):
    """(y, train_mask, known) as numpy: labels (-1 = unknown), True = used for training, True = label known."""
    if args.labels is None:
        if args.labeled_fraction is not None or args.label_mask is not None:
            raise CLIError("--labeled-fraction and --label-mask need --labels")
        return None, None, None
    y = read_labels(args.labels, n, matrix.arrays)
    known = y >= 0
    classes = np.unique(y[known])
    if classes[0] == 1:  # MATLAB numbering: class 0 would be an empty class the classifier must still learn
        _warn(f"--labels {args.labels}: the classes run from 1 to {classes[-1]} and none is 0 (numbered from 1, "
              f"as in MATLAB?): they are read as 0 to {classes[-1] - 1}")
        y = np.where(known, y - 1, y)
        classes = classes - 1
    empty = np.setdiff1d(np.arange(classes[-1] + 1), classes)
    if empty.size:
        _warn(f"--labels {args.labels}: classes {describe_indices(empty)} have no document; the classifier still "
              f"has {classes[-1] + 1} classes")
    if args.label_mask is not None:
        train = read_label_mask(args.label_mask, n, matrix.arrays) & known
    elif args.labeled_fraction is not None:
        f = args.labeled_fraction
        if not 0 < f <= 1:
            raise CLIError(f"--labeled-fraction must be in (0, 1], got {f}")
        candidates = np.flatnonzero(known)
        n_train = max(1, int(round(f * candidates.size)))
        gen = torch.Generator().manual_seed(args.seed)
        chosen = candidates[torch.randperm(candidates.size, generator=gen)[:n_train].numpy()]
        train = np.zeros(n, dtype=bool)
        train[chosen] = True
    else:
        train = known.copy()
    if not train.any():
        raise CLIError("no document is labeled for training: check --labels / --label-mask")
    return y, train, known


def _drop_documents(matrix: Matrix, keep: np.ndarray) -> None:
    matrix.data = matrix.data[keep]
    if matrix.documents is not None:
        matrix.documents = [d for d, k in zip(matrix.documents, keep) if k]


def _classification_metrics(model, out, y, train, known, lstsq_levels) -> dict:
    """Accuracies of the learned classifier and of the papers' least-squares classifier (fit on the training labels),
    on the labeled documents and on the held-out ("unlabeled") documents whose label is known."""
    from .metrics import accuracy, least_squares_accuracy

    dev = out.codes[0].device
    known_t = torch.from_numpy(known).to(dev)
    yk = torch.from_numpy(y).to(dev)[known_t]
    train_k = torch.from_numpy(train).to(dev)[known_t]
    held_k = ~train_k
    has_held = bool(held_k.any())
    c = model.num_classes

    def acc(scores, mask):
        return float(accuracy(scores, yk, mask))

    res = {
        "num_classes": c,
        "labeled_documents": int(train.sum()),
        "unlabeled_documents": int((~train).sum()),
        "unlabeled_with_known_label": int(held_k.sum()),
        "classifier": {"labeled": acc(out.logits[known_t], train_k),
                       "unlabeled": acc(out.logits[known_t], held_k) if has_held else None},
        "least_squares": [],
    }
    for codes in out.codes[: lstsq_levels]:
        ck = codes[known_t]
        res["least_squares"].append({
            "labeled": float(least_squares_accuracy(ck, yk, num_classes=c, fit_mask=train_k, eval_mask=train_k)),
            "unlabeled": float(least_squares_accuracy(ck, yk, num_classes=c, fit_mask=train_k, eval_mask=held_k))
            if has_held else None,
        })
    return res


def _md(text: str) -> str:
    return str(text).replace("|", "\\|")


def _topics_markdown(model, codes, vocabulary, named_vocabulary: bool, source: str, n_words: int) -> str:
    from .topics import format_hierarchy_tree, layer_topics, top_words

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


def _write_figures(out_dir: Path, model, x, codes, history, vocabulary, named_vocabulary: bool) -> list[str]:
    from .plot import plot_hierarchy, plot_layer_heatmaps, plot_loss_curves

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


def _clean(value):
    """JSON-safe: NaN/Inf -> None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _out_dir(path) -> Path:
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CLIError(f"cannot create the output folder {str(out)!r}: {e.strerror or e}") from e
    return out


def run_fit(args: argparse.Namespace) -> int:
    """`python -m neuralnmf fit`: see the command's --help."""
    from . import __version__
    from .models import NeuralNMF
    from .train import fit

    dtype, device = DTYPES[args.dtype], _device(args.device)
    if args.lr <= 0 or not math.isfinite(args.lr):
        raise CLIError(f"--lr must be a positive number, got {args.lr}")
    if args.lam < 0 or not math.isfinite(args.lam):
        raise CLIError(f"--lam must be a number >= 0, got {args.lam}")
    source = str(args.input)
    matrix = _read_input(source, args)
    n_docs, n_words = matrix.shape

    vocabulary, named = matrix.vocabulary, matrix.vocabulary is not None
    if args.vocabulary is not None:
        if matrix.text is not None:
            raise CLIError("--vocabulary: a text folder brings its own vocabulary (the words tf-idf found); "
                           "drop --vocabulary")
        vocabulary, named = read_vocabulary(args.vocabulary, n_words, matrix.arrays), True
    y, train, known = _labels_and_mask(args, matrix, n_docs)

    empty = empty_rows(matrix.data)
    dropped = []
    if empty.size:
        what = (f"{empty.size} of {n_docs} documents are empty (all-zero rows"
                + (", no word of the vocabulary" if matrix.text is not None else "") + f"), the first at rows "
                f"{describe_indices(empty)}" + (f" ({', '.join(matrix.documents[i] for i in empty[:3])})"
                                                 if matrix.documents else ""))
        if not args.drop_empty:
            if matrix.text is None and not args.transpose and (n_docs > n_words or empty.size > n_docs // 2):
                raise CLIError(f"{what}: documents must be rows and words columns, and this file looks like "
                               f"words x documents ({n_docs} rows, {n_words} columns): pass --transpose (or, if "
                               "the rows are documents, remove the empty ones or pass --drop-empty)")
            raise CLIError(f"{what}: remove them, or pass --drop-empty to leave them out")
        if empty.size == n_docs:
            raise CLIError(f"{what}: nothing is left to fit")
        _warn(f"{what}; they are left out (--drop-empty), and the rows after them move up")
        keep = np.ones(n_docs, dtype=bool)
        keep[empty] = False
        _drop_documents(matrix, keep)
        if y is not None:
            y, train, known = y[keep], train[keep], known[keep]
            if not train.any():
                raise CLIError("no labeled document is left after dropping the empty ones")
        dropped = empty.tolist()
        n_docs = matrix.shape[0]
    if vocabulary is None:
        vocabulary = [f"w{j}" for j in range(n_words)]

    ranks = list(args.ranks)
    rising = [(a, b) for a, b in zip(ranks, ranks[1:]) if b > a]
    if rising:
        raise CLIError(f"--ranks {' '.join(map(str, ranks))}: each level groups the topics of the level below, so ranks "
                       f"must not increase ({rising[0][0]} then {rising[0][1]}); list them finest first, e.g. --ranks "
                       f"{' '.join(map(str, sorted(ranks, reverse=True)))}")
    if ranks[0] > min(n_docs, n_words):
        _warn(f"{ranks[0]} topics exceed min(documents, words) = {min(n_docs, n_words)}: some topics will be redundant")
    num_classes = None if y is None else int(y.max()) + 1

    x = _to_torch(matrix, dtype, device)
    sparse = matrix.sparse
    generator = torch.Generator().manual_seed(args.seed)
    init = args.init
    # built without data: fit starts it from x (and its classifier from the labels), never densifying x
    model = NeuralNMF(n_words, ranks, num_classes, init=init, generator=generator, dtype=dtype, device=device)

    kind = (f"sparse, {matrix.nnz} nonzeros ({matrix.nnz / (n_docs * n_words):.2%})" if sparse else "dense")
    print(f"neuralnmf fit: {n_docs} documents x {n_words} words ({kind}) from {source}")
    print(f"model: ranks {' -> '.join(map(str, ranks))}"
          + (f", classifier over {num_classes} classes ({int(train.sum())} of {n_docs} documents labeled)"
             if y is not None else "")
          + f"; init {init}; {args.loss} loss" + (f", lam {args.lam}" if y is not None else "")
          + f", {args.epochs} epochs, Adam lr {args.lr} (relative)"
          + (f", batches of {args.batch_size}" if args.batch_size else ", full batch") + f"; {args.dtype} on {device}")
    y_t = mask_t = None
    if y is not None:
        y_t = torch.from_numpy(np.where(train, y, 0)).to(device)
        mask_t = torch.from_numpy(train).to(device)
    t0 = time.perf_counter()
    if model.needs_initialization:  # start here rather than inside fit, to report the fit of the start
        model.initialize(x, y_t, mask_t)
    with torch.no_grad():
        start_errors = relative_errors(model, x, model(x).codes)
    history = fit(model, x, y=y_t, label_mask=mask_t, loss=args.loss, lam=args.lam, classification=args.classification,
                  epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                  progress=False if args.no_progress else None)
    seconds = time.perf_counter() - t0
    final = {k: v[-1] for k, v in history.items()}
    print(f"trained {history.epochs} epochs in {seconds:.1f} s; final " + ", ".join(f"{k} {v:.4g}"
                                                                                for k, v in final.items()))

    model.eval()
    with torch.no_grad():
        out = model(x)
    errors = relative_errors(model, x, out.codes)
    metrics = {
        "input": source, "documents": n_docs, "words": n_words, "nonzeros": matrix.nnz, "sparse": sparse,
        "dropped_empty_documents": dropped, "ranks": ranks, "init": init, "loss": args.loss,
        "epochs": history.epochs, "learning_rate": args.lr, "batch_size": args.batch_size, "seed": args.seed,
        "dtype": args.dtype, "device": str(device), "seconds": seconds, "final_loss": final,
        "relative_error": errors, "relative_error_at_start": start_errors, "lam": args.lam,
        "classification_loss": args.classification,
    }
    print("relative error ||X - A_0..A_l S_l|| / ||X|| per level: "
          + ", ".join(f"level {d}: {e:.4f} (start {s0:.4f})" for d, (e, s0) in enumerate(zip(errors, start_errors))))
    if y is not None:
        cls = _classification_metrics(model, out, y, train, known, len(ranks))
        metrics["classification"] = cls

        def fmt(d):
            return f"{d['labeled']:.3f} labeled" + (f", {d['unlabeled']:.3f} unlabeled" if d["unlabeled"] is not None
                                                    else "")
        print(f"accuracy: learned classifier {fmt(cls['classifier'])}; least squares on the deepest codes "
              f"{fmt(cls['least_squares'][-1])}")

    out_dir = _out_dir(args.out)
    try:
        training = {"input": source, "loss": args.loss, "epochs": history.epochs, "lr": args.lr, "lam": args.lam,
                    "batch_size": args.batch_size, "seed": args.seed, "init": init, "documents": n_docs,
                    "neuralnmf_version": __version__}
        save_model(out_dir / "model.pt", model, vocabulary=vocabulary if named else None, text=matrix.text,
                   training=training)
        (out_dir / "metrics.json").write_text(json.dumps(_clean(metrics), indent=2) + "\n", encoding="utf-8")
        (out_dir / "topics.md").write_text(
            _topics_markdown(model, out.codes, vocabulary, named, source, args.top_words), encoding="utf-8")
        written = ["model.pt", "topics.md", "metrics.json"]
        written += _write_figures(out_dir, model, x, out.codes, history, vocabulary, named)
        if named:
            (out_dir / "vocabulary.txt").write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
            written.append("vocabulary.txt")
        if matrix.documents is not None:
            (out_dir / "documents.txt").write_text("\n".join(matrix.documents) + "\n", encoding="utf-8")
            written.append("documents.txt")
    except OSError as e:
        raise CLIError(f"cannot write to {str(out_dir)!r}: {e.strerror or e}") from e
    print(f"wrote {out_dir}/: {', '.join(written)}")
    return 0


# --- transform ----------------------------------------------------------------------------------------------------


def run_transform(args: argparse.Namespace) -> int:
    """`python -m neuralnmf transform`: see the command's --help."""
    device = _device(args.device)
    model, ckpt = load_model(args.model_dir, device=device)
    L = len(model.ranks)
    depth = L - 1 if args.depth is None else args.depth
    if not -L <= depth < L:
        raise CLIError(f"--depth must be a level in 0..{L - 1} (or -{L}..-1 from the deepest), got {args.depth}")
    depth %= L
    text = _text_model(ckpt)
    if Path(args.input).is_dir() and text is None:
        raise CLIError(f"{args.input} is a folder of text documents, but the model was not fitted on text (it has "
                       "no vocabulary and idf weights to vectorise them): pass a matrix file")
    matrix = _read_input(args.input, args, text=text)
    n_docs, n_words = matrix.shape
    if n_words != model.in_features:
        raise CLIError(f"{args.input} has {n_words} words (columns) but the model was fitted on {model.in_features}"
                       + (" (documents must be rows: --transpose?)" if n_docs == model.in_features else ""))
    empty = empty_rows(matrix.data)
    if empty.size:
        _warn(f"{empty.size} of {n_docs} documents are empty (all-zero rows, the first at rows "
              f"{describe_indices(empty)}): their codes are zero")
    dtype = model.layers[0].A.dtype
    x = _to_torch(matrix, dtype, device)
    codes = model.transform(x, depth)
    err = relative_errors(model, x, [codes], depths=[depth])[0]
    out = Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, codes.cpu().numpy())
    except OSError as e:
        raise CLIError(f"cannot write {str(out)!r}: {e.strerror or e}") from e
    c = codes.cpu()
    dominant = c.argmax(1)[(c > 0).any(1)]
    counts = torch.bincount(dominant, minlength=c.shape[1])
    busiest = counts.argsort(descending=True, stable=True)[:10].tolist()
    print(f"wrote {out}: codes of {n_docs} documents x {c.shape[1]} topics of level {depth} "
          f"(levels 0..{L - 1}, ranks {list(model.ranks)}), {str(dtype).removeprefix('torch.')}")
    if matrix.documents is not None:
        print("rows follow the sorted file names: " + ", ".join(matrix.documents[:3])
              + (", ..." if n_docs > 3 else ""))
    print(f"relative error of these documents at level {depth}: {err:.4f}")
    print("documents per dominant topic: " + ", ".join(f"L{depth}.T{t} {int(counts[t])}" for t in busiest
                                                       if counts[t] > 0)
          + (f" (the {len(busiest)} largest of {c.shape[1]})" if c.shape[1] > len(busiest) else ""))
    return 0
