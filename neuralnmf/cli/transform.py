"""`python -m neuralnmf transform`: topic codes of documents under a fitted model (see the command's --help)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from ..metrics import level_errors
from ..topics import level_codes
from .errors import CLIError, warn
from .inputs import describe_indices, device_from, empty_rows, read_input, to_torch
from .outputs import load_model, text_model, write_paths

__all__ = ["run_transform"]


def run_transform(args: argparse.Namespace) -> int:
    """`python -m neuralnmf transform`: see the command's --help."""
    device = device_from(args.device)
    model, ckpt = load_model(args.model_dir, device=device)
    L = len(model.ranks)
    depth = L - 1 if args.depth is None else args.depth
    if not -L <= depth < L:
        raise CLIError(f"--depth must be a level in 0..{L - 1} (or -{L}..-1 from the deepest), got {args.depth}")
    depth %= L
    text = text_model(ckpt)
    if Path(args.input).is_dir() and text is None:
        raise CLIError(f"{args.input} is a folder of text documents, but the model was not fitted on text (it has "
                       "no vocabulary and idf weights to vectorise them): pass a matrix file")
    matrix = read_input(args.input, args, text=text)
    n_docs, n_words = matrix.shape
    if n_words != model.in_features:
        raise CLIError(f"{args.input} has {n_words} words (columns) but the model was fitted on {model.in_features}"
                       + (" (documents must be rows: --transpose?)" if n_docs == model.in_features else ""))
    empty = empty_rows(matrix.data)
    if empty.size:
        warn(f"{empty.size} of {n_docs} documents are empty (all-zero rows, the first at rows "
              f"{describe_indices(empty)}): their codes are zero")
    dtype = model.layers[0].A.dtype
    x = to_torch(matrix, dtype, device)
    with torch.no_grad():
        levels = level_codes(model, x)  # every level: the documents' paths
    codes = levels[depth]
    err = level_errors(model, x, [codes], depths=[depth])[0]
    out = Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, codes.cpu().numpy())
        paths = out.with_name(out.name.removesuffix(".npy") + "_paths.tsv")
        write_paths(paths, levels, matrix.documents, model)
    except OSError as e:
        raise CLIError(f"cannot write {str(out)!r}: {e.strerror or e}") from e
    predicted = []
    for level in model.labeled_levels:  # a model with classifiers: each labeled level's predicted classes
        suffix = "_labels" if len(model.labeled_levels) == 1 else f"_labels_level{level}"
        path = out.with_name(out.name.removesuffix(".npy") + suffix + ".txt")
        proba = model.predict_proba(x, level)
        try:
            np.savetxt(path, proba.argmax(-1).cpu().numpy(), fmt="%d")
            np.save(path.with_suffix(".proba.npy"), proba.cpu().numpy())
        except OSError as e:
            raise CLIError(f"cannot write {str(path)!r}: {e.strerror or e}") from e
        predicted.append((level, path, proba.argmax(-1).cpu()))
    c = codes.cpu()
    dominant = c.argmax(1)[(c > 0).any(1)]
    counts = torch.bincount(dominant, minlength=c.shape[1])
    busiest = counts.argsort(descending=True, stable=True)[:10].tolist()
    print(f"wrote {out}: codes of {n_docs} documents x {c.shape[1]} topics of level {depth} "
          f"(levels 0..{L - 1}, ranks {list(model.ranks)}), {str(dtype).removeprefix('torch.')}")
    print(f"wrote {paths}: each document's topic and its share at every level (levels 0..{L - 1})")
    if matrix.documents is not None:
        print("rows follow the sorted file names: " + ", ".join(matrix.documents[:3])
              + (", ..." if n_docs > 3 else ""))
    print(f"relative error of these documents at level {depth}: {err:.4f}")
    print("documents per dominant topic: " + ", ".join(f"L{depth}.T{t} {int(counts[t])}" for t in busiest
                                                       if counts[t] > 0)
          + (f" (the {len(busiest)} largest of {c.shape[1]})" if c.shape[1] > len(busiest) else ""))
    for level, path, classes in predicted:
        counts = torch.bincount(classes, minlength=model.head(level).num_classes)
        print(f"wrote {path} (and {path.with_suffix('.proba.npy').name}): the predicted class of each document at "
              f"level {level} (documents per class: {', '.join(str(int(n)) for n in counts)})")
    return 0
