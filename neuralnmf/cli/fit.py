"""`python -m neuralnmf fit`: from documents to a topic hierarchy (see the command's --help)."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..metrics import accuracy, least_squares_accuracy, level_errors
from ..models import NeuralNMF
from ..rank_selection import DEFAULT_LEVELS, select_ranks
from ..train import DEFAULT_LAM, fit
from .errors import CLIError, warn
from .inputs import (DTYPES, Matrix, describe_indices, device_from, empty_rows, read_input, read_label_mask,
                     read_labels, read_vocabulary, to_torch)
from .outputs import (figures_available, json_safe, make_out_dir, reference_texts, topic_report,
                      write_fit_outputs)

__all__ = ["run_fit"]


def level_count(args) -> int:
    """Levels of the model: the number of --ranks, or --levels with --ranks auto (checked here)."""
    if "auto" in args.ranks:
        if len(args.ranks) > 1:
            raise CLIError(f"--ranks {' '.join(map(str, args.ranks))}: 'auto' chooses every level's rank; pass "
                           "--ranks auto alone, with --levels L for the number of levels")
        return DEFAULT_LEVELS if args.levels is None else args.levels
    if args.levels is not None and args.levels != len(args.ranks):
        raise CLIError(f"--levels {args.levels} goes with --ranks auto; --ranks {' '.join(map(str, args.ranks))} "
                       f"gives {len(args.ranks)} levels")
    return len(args.ranks)


def _choose_ranks(args, x, out_dir) -> tuple[list[int], dict]:
    """--ranks auto: select_ranks on the documents, its table printed and its criteria written to out_dir (made
    by run_fit before)."""
    levels = level_count(args)
    print(f"choosing {levels} ranks from the data (held-out error and stability, neuralnmf.select_ranks) ...")
    try:
        selection = select_ranks(x, levels, seed=args.seed, progress=sys.stderr.isatty())
    except ValueError as e:
        raise CLIError(f"--ranks auto: {e}") from None
    for c in selection.levels:
        print(f"  level {c.level}: rank {c.chosen} (held-out error: {c.by_heldout}, stability: {c.by_stability}; "
              f"{'agree' if c.agree else 'differ'}; searched {c.candidates[0]}..{c.candidates[-1]})")
    print(f"chosen ranks: {' -> '.join(map(str, selection.ranks))} (criteria: rank_selection.json, .png)")
    (out_dir / "rank_selection.json").write_text(json.dumps(selection.as_dict(), indent=1), encoding="utf-8")
    if figures_available():
        from ..plot import plot_rank_selection

        plot_rank_selection(selection, out_dir / "rank_selection.png")
    return list(selection.ranks), selection.as_dict()


def _label_files(args, levels: int) -> dict[int, str]:
    """--labels as {level: file}: FILE labels the deepest level, LEVEL=FILE that level (negative: from the deepest)."""
    files = {}
    for item in args.labels or ():
        level, sep, name = item.partition("=")
        if sep and level.strip().lstrip("-").isdigit():
            l = int(level)
            if not -levels <= l < levels:
                raise CLIError(f"--labels {item}: level {l} does not exist; the model has levels 0..{levels - 1} "
                               f"(--ranks gives {levels})")
            l %= levels
        else:
            l, name = levels - 1, item
        if l in files:
            raise CLIError(f"--labels: level {l} is labeled twice ({files[l]} and {name})")
        files[l] = name
    return dict(sorted(files.items()))


def _labels_and_mask(args, matrix: Matrix, n: int):
    """({level: y}, train_mask, {level: known}) as numpy: labels (-1 = unknown), True = used for training (every
    level), True = label known; (None, None, None) without --labels."""
    files = _label_files(args, level_count(args))
    if not files:
        if args.labeled_fraction is not None or args.label_mask is not None:
            raise CLIError("--labeled-fraction and --label-mask need --labels")
        return None, None, None
    ys, knowns = {}, {}
    for level, name in files.items():
        y = read_labels(name, n, matrix.arrays)
        known = y >= 0
        if not known.any():
            raise CLIError(f"--labels {name}: no document has a label (all are -1)")
        classes = np.unique(y[known])
        if classes[0] == 1:  # MATLAB numbering: class 0 would be an empty class the classifier must still learn
            warn(f"--labels {name}: the classes run from 1 to {classes[-1]} and none is 0 (numbered from 1, "
                 f"as in MATLAB?): they are read as 0 to {classes[-1] - 1}")
            y = np.where(known, y - 1, y)
            classes = classes - 1
        if classes[-1] < 1:
            raise CLIError(f"--labels {name}: every labeled document is in class {classes[-1]}; a classifier needs at "
                           "least two classes")
        empty = np.setdiff1d(np.arange(classes[-1] + 1), classes)
        if empty.size:
            warn(f"--labels {name}: classes {describe_indices(empty)} have no document; the classifier still "
                 f"has {classes[-1] + 1} classes")
        ys[level], knowns[level] = y, known
    known_any = np.logical_or.reduce(list(knowns.values()))
    if args.label_mask is not None:
        train = read_label_mask(args.label_mask, n, matrix.arrays) & known_any
    elif args.labeled_fraction is not None:
        f = args.labeled_fraction
        if not 0 < f <= 1:
            raise CLIError(f"--labeled-fraction must be in (0, 1], got {f}")
        candidates = np.flatnonzero(known_any)
        n_train = max(1, int(round(f * candidates.size)))
        gen = torch.Generator().manual_seed(args.seed)
        chosen = candidates[torch.randperm(candidates.size, generator=gen)[:n_train].numpy()]
        train = np.zeros(n, dtype=bool)
        train[chosen] = True
    else:
        train = known_any.copy()
    if not train.any():
        raise CLIError("no document is labeled for training: check --labels / --label-mask")
    return ys, train, knowns


def _classification_metrics(model, out, y: dict, train, known: dict) -> dict:
    """Per labeled level: accuracies of the learned classifier and of the papers' least-squares classifier on that
    level's codes (fit on the training labels), on the labeled documents and on the held-out ("unlabeled") documents
    whose label is known."""
    dev = out.codes[0].device
    levels = {}
    for level, y_l in y.items():
        known_t = torch.from_numpy(known[level]).to(dev)
        yk = torch.from_numpy(y_l).to(dev)[known_t]
        train_k = torch.from_numpy(train).to(dev)[known_t]
        held_k = ~train_k
        has_held = bool(held_k.any())
        c = model.head(level).num_classes

        def acc(scores, mask):
            return float(accuracy(scores, yk, mask))

        ck = out.codes[level][known_t]
        levels[level] = {
            "num_classes": c,
            "labeled_documents": int(train_k.sum()),
            "unlabeled_with_known_label": int(held_k.sum()),
            "classifier": {"labeled": acc(out.level_logits[level][known_t], train_k),
                           "unlabeled": acc(out.level_logits[level][known_t], held_k) if has_held else None},
            "least_squares": {
                "labeled": float(least_squares_accuracy(ck, yk, num_classes=c, fit_mask=train_k, eval_mask=train_k)),
                "unlabeled": float(least_squares_accuracy(ck, yk, num_classes=c, fit_mask=train_k, eval_mask=held_k))
                if has_held else None,
            },
        }
    return {"labeled_documents": int(train.sum()), "unlabeled_documents": int((~train).sum()), "levels": levels}


@dataclass
class _Documents:
    """What fit reads from INPUT: the matrix, its vocabulary (``named``: the words are real), and the labels as
    numpy ({level: y}, train mask, {level: known}; None without --labels)."""

    source: str
    matrix: Matrix
    vocabulary: list[str]
    named: bool
    y: dict | None
    train: np.ndarray | None
    known: dict | None
    dropped: list[int]

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape


def _check_options(args) -> None:
    """The numeric options argparse cannot check by type alone."""
    if args.lr <= 0 or not math.isfinite(args.lr):
        raise CLIError(f"--lr must be a positive number, got {args.lr}")
    if args.lam is not None and (args.lam < 0 or not math.isfinite(args.lam)):
        raise CLIError(f"--lam must be a number >= 0, got {args.lam}")
    if not 0 <= args.validation < 1:
        raise CLIError(f"--validation must be a fraction in [0, 1) of the labeled documents, got {args.validation}")


def _read_documents(args) -> _Documents:
    """INPUT, --vocabulary and --labels read and checked; empty documents refused or (--drop-empty) left out."""
    source = str(args.input)
    matrix = read_input(source, args)
    n_docs, n_words = matrix.shape
    vocabulary, named = matrix.vocabulary, matrix.vocabulary is not None
    if args.vocabulary is not None:
        if matrix.text is not None:
            raise CLIError("--vocabulary: a text folder brings its own vocabulary (the words tf-idf found); "
                           "drop --vocabulary")
        vocabulary, named = read_vocabulary(args.vocabulary, n_words, matrix.arrays), True
    y, train, known = _labels_and_mask(args, matrix, n_docs)
    docs = _Documents(source, matrix, vocabulary or [f"w{j}" for j in range(n_words)], named, y, train, known, [])
    _drop_empty_documents(args, docs)
    return docs


def _drop_empty_documents(args, docs: _Documents) -> None:
    """Empty documents (all-zero rows) stop fit, with advice; with --drop-empty they are left out (and their
    labels with them)."""
    matrix = docs.matrix
    n_docs, n_words = matrix.shape
    empty = empty_rows(matrix.data)
    if not empty.size:
        return
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
    warn(f"{what}; they are left out (--drop-empty), and the rows after them move up")
    keep = np.ones(n_docs, dtype=bool)
    keep[empty] = False
    matrix.keep_documents(keep)
    if docs.y is not None:
        docs.y = {l: v[keep] for l, v in docs.y.items()}
        docs.known = {l: v[keep] for l, v in docs.known.items()}
        docs.train = docs.train[keep]
        if not docs.train.any():
            raise CLIError("no labeled document is left after dropping the empty ones")
    docs.dropped = empty.tolist()


def _ranks(args, x, docs: _Documents, out_dir) -> tuple[list[int], dict | None]:
    """--ranks (or, with --ranks auto, the ranks chosen from the data), checked: (ranks, the selection or None)."""
    selection = None
    if "auto" in args.ranks:
        ranks, selection = _choose_ranks(args, x, out_dir)
    else:
        ranks = list(args.ranks)
    rising = [(a, b) for a, b in zip(ranks, ranks[1:]) if b > a]
    if rising:
        raise CLIError(f"--ranks {' '.join(map(str, ranks))}: each level groups the topics of the level below, so "
                       f"ranks must not increase ({rising[0][0]} then {rising[0][1]}); list them finest first, e.g. "
                       f"--ranks {' '.join(map(str, sorted(ranks, reverse=True)))}")
    n_docs = docs.shape[0]
    if ranks[0] > n_docs:  # more topics than words: fit itself warns (_checks.warn_about_ranks)
        warn(f"{ranks[0]} topics exceed the {n_docs} documents: some topics will be redundant")
    return ranks, selection


def _class_counts(docs: _Documents) -> dict[int, int]:
    """{level: number of classes} of the labeled levels (empty without labels)."""
    return {} if docs.y is None else {l: int(v.max()) + 1 for l, v in docs.y.items()}


def _build_model(args, docs: _Documents, ranks: list[int], dtype, device) -> NeuralNMF:
    """The model, built without data: fit starts it from x (and its classifier from the labels), never densifying
    x. Prints what is fitted."""
    counts = _class_counts(docs)
    # an int for labels of the deepest level only (the usual case), else one count per level
    num_classes = (None if not counts else counts[len(ranks) - 1] if list(counts) == [len(ranks) - 1] else counts)
    model = NeuralNMF(docs.shape[1], ranks, num_classes, classifier=args.classifier, init=args.init,
                      tree=args.tree, min_children=args.min_children,
                      generator=torch.Generator().manual_seed(args.seed), dtype=dtype, device=device)
    (n_docs, n_words), matrix = docs.shape, docs.matrix
    kind = (f"sparse, {matrix.nnz} nonzeros ({matrix.nnz / (n_docs * n_words):.2%})" if matrix.sparse else "dense")
    labeled = docs.y is not None
    print(f"neuralnmf fit: {n_docs} documents x {n_words} words ({kind}) from {docs.source}")
    print(f"model: ranks {' -> '.join(map(str, ranks))}"
          + (f", {args.classifier} classifier over " + ", ".join(f"{c} classes at level {l}" for l, c in counts.items())
             + f" ({int(docs.train.sum())} of {n_docs} documents labeled)" if labeled else "")
          + f"; init {args.init}; {args.loss} loss"
          + (f", lam {args.lam if args.lam is not None else DEFAULT_LAM[args.classifier]}" if labeled else "")
          + f", {args.epochs} epochs, Adam lr {args.lr} (relative)"
          + (f", batches of {args.batch_size}" if args.batch_size else ", full batch") + f"; {args.dtype} on {device}")
    return model


def _train(args, model: NeuralNMF, x, docs: _Documents):
    """fit with the command's options: (history, seconds, each level's relative error at the start)."""
    y_t = mask_t = None
    device = x.device
    if docs.y is not None:
        y_t = {l: torch.from_numpy(np.where(docs.train & docs.known[l], v, 0)).to(device) for l, v in docs.y.items()}
        mask_t = {l: torch.from_numpy(docs.train & docs.known[l]).to(device) for l in docs.y}
    t0 = time.perf_counter()
    start_errors = None
    if docs.y is None and model.needs_initialization:  # start here rather than inside fit, to report the start
        model.initialize(x)
        with torch.no_grad():
            start_errors = level_errors(model, x, model(x).codes)
    # with labels, fit starts the model: the supervised NMF of each labeled rank and the classifiers, with the
    # labels it holds out left aside; the first epoch's terms are then the start's errors
    history = fit(model, x, y=y_t, label_mask=mask_t, loss=args.loss, lam=args.lam, classification=args.classification,
                  validation=args.validation or None, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                  seed=args.seed, progress=False if args.no_progress else None)
    seconds = time.perf_counter() - t0
    levels = len(model.ranks)
    if start_errors is None:
        if args.loss == "hierarchical" and history.epochs:  # each level's squared relative error at epoch 0
            start_errors = [max(history[f"level_{d}"][0], 0.0) ** 0.5 for d in range(levels)]
        else:
            start_errors = [float("nan")] * levels
    _print_training(args, history, seconds, docs.y is not None)
    return history, seconds, start_errors


def _print_training(args, history, seconds: float, labeled: bool) -> None:
    chosen = history.selected
    if chosen.get("holdout"):
        print(f"chosen from the data: {chosen['holdout']} labeled documents held out of the label term (--validation "
              f"{args.validation:g}); the parameters of epoch {chosen.get('epoch', 0) + 1} (lowest held-out label loss, "
              f"{chosen.get('holdout_loss', float('nan')):.4g}; held-out accuracy "
              f"{chosen.get('holdout_accuracy', float('nan')):.3f}) are kept; classifier weight decay "
              + ", ".join(f"{wd:g} at level {l}" for l, wd in chosen.get("weight_decay", {}).items()))
    elif labeled and args.validation:
        print("too few labeled documents to hold some out (< 10): every epoch trains on all the labels")
    final = {k: v[-1] for k, v in history.items()}
    print(f"trained {history.epochs} epochs in {seconds:.1f} s; final " + ", ".join(f"{k} {v:.4g}"
                                                                                for k, v in final.items()))


def _evaluate(args, model, x, docs: _Documents, history, seconds: float, start_errors, selection):
    """The trained model's codes, errors, classification accuracies and topic quality: (output, metrics, report),
    each printed."""
    model.eval()
    with torch.no_grad():
        out = model(x)
    errors = level_errors(model, x, out.codes)
    (n_docs, n_words), matrix = docs.shape, docs.matrix
    metrics = {
        "input": docs.source, "documents": n_docs, "words": n_words, "nonzeros": matrix.nnz, "sparse": matrix.sparse,
        "dropped_empty_documents": docs.dropped, "ranks": list(model.ranks), "init": args.init, "loss": args.loss,
        "epochs": history.epochs, "learning_rate": args.lr, "batch_size": args.batch_size, "seed": args.seed,
        "dtype": args.dtype, "device": str(x.device), "seconds": seconds,
        "final_loss": {k: v[-1] for k, v in history.items()},
        "relative_error": errors, "relative_error_at_start": start_errors, "lam": args.lam,
        "classifier": args.classifier, "classification_loss": args.classification, "validation": args.validation,
    }
    if selection is not None:
        metrics["rank_selection"] = selection
    print("relative error ||X - A_0..A_l S_l|| / ||X|| per level: "
          + ", ".join(f"level {d}: {e:.4f} (start {s0:.4f})" for d, (e, s0) in enumerate(zip(errors, start_errors))))
    if docs.y is not None:
        cls = _classification_metrics(model, out, docs.y, docs.train, docs.known)
        metrics["classification"] = cls
        metrics["chosen_from_data"] = json_safe(history.selected)

        def fmt(d):
            return f"{d['labeled']:.3f} labeled" + (f", {d['unlabeled']:.3f} unlabeled" if d["unlabeled"] is not None
                                                    else "")
        for level, c in cls["levels"].items():
            print(f"accuracy at level {level}: learned classifier {fmt(c['classifier'])}; least squares on the "
                  f"level's codes {fmt(c['least_squares'])}")
    report = topic_report(model, x, out.codes, docs.vocabulary,
                          reference_texts(docs.source, matrix.text, matrix.documents))
    metrics.update(report.metrics())
    print(report.line())
    return out, metrics, report


def run_fit(args: argparse.Namespace) -> int:
    """`python -m neuralnmf fit`: see the command's --help. Checks the options, reads the documents, makes the output
    folder (before any training: a folder that cannot be made fails at once), builds and trains the model,
    measures it and writes the results."""
    dtype, device = DTYPES[args.dtype], device_from(args.device)
    _check_options(args)
    docs = _read_documents(args)
    out_dir = make_out_dir(args.out)
    x = to_torch(docs.matrix, dtype, device)
    ranks, selection = _ranks(args, x, docs, out_dir)
    model = _build_model(args, docs, ranks, dtype, device)
    history, seconds, start_errors = _train(args, model, x, docs)
    out, metrics, report = _evaluate(args, model, x, docs, history, seconds, start_errors, selection)
    written = write_fit_outputs(out_dir, args, model, x, out, docs, history, metrics, report)
    print(f"wrote {out_dir}/: {', '.join(written)}")
    return 0
