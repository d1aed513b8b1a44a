"""The Neural NMF paper's toy table, ``synthetic_noise.mat`` (Table 1), loaded from its file.

The file comes from the authors' public repository (https://github.com/jvendrow/NeuralNMF,
``experiments/synthetic_noise.mat``); :func:`neuralnmf.datasets.make_hierarchical_corpus` generates a matrix of the
same construction with another noise draw.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from .._checks import check_dtype
from .files import DATA_DIR_ENV, find_data_file, read_arrays
from .synthetic import TOY_DOC_SIZES, TOY_NOISE, TOY_WORD_SIZES, HierarchicalCorpus, make_hierarchical_corpus

__all__ = ["load_toy_table"]


def load_toy_table(
    path: str | os.PathLike | None = None, *, dtype: torch.dtype = torch.float64, device=None
) -> HierarchicalCorpus:
    """Load ``synthetic_noise.mat``, the toy matrix behind Table 1 of the Neural NMF paper.

    The file holds X (87 words x 90 documents), labels9/4/2 and the label masks L0, L10, ..., L90 (2 x 90, two
    identical rows; Lxx marks xx documents as labeled). Returned batch first: ``x = X.T`` (90, 87), ``labels`` =
    [labels9, labels4, labels2] as long, ``label_mask(40)`` = the first row of L40 as (90,) bool. The hierarchy
    is read off the labels; the word groups, vocabulary and ``clean`` block pattern follow the file's documented
    construction (protocols §2.1); ``clean`` is None (with the reason in a warning) if the file's X does not lie
    within [0, 0.15] of it.

    Args:
        path: the .mat file; default: :func:`find_data_file` ``("synthetic_noise.mat")``.
        dtype: torch.float32 or torch.float64 (the paper uses float64).
        device: where the tensors live.
    """
    check_dtype(dtype, "load_toy_table")
    if path is None:
        path = find_data_file("synthetic_noise.mat")
        if path is None:
            raise FileNotFoundError(
                f"synthetic_noise.mat not found: pass its path or set ${DATA_DIR_ENV} to the folder that holds it"
            )
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no such file {path}")
    data = read_arrays(path)
    missing = [k for k in ("X", "labels9", "labels4", "labels2") if k not in data]
    if missing:
        raise ValueError(f"path: {path} lacks the variables {missing} of synthetic_noise.mat")
    X = np.asarray(data["X"], dtype=np.float64)
    n_words, n_docs = sum(TOY_WORD_SIZES), sum(TOY_DOC_SIZES)
    if X.shape != (n_words, n_docs):
        raise ValueError(f"path: X has shape {X.shape}, expected ({n_words}, {n_docs}) words x documents")
    if not np.isfinite(X).all():
        raise ValueError(f"path: X in {path} contains NaN or Inf")

    labels = []
    for key in ("labels9", "labels4", "labels2"):
        lab = np.asarray(data[key]).reshape(-1).astype(np.int64)
        if lab.shape != (n_docs,):
            raise ValueError(f"path: {key} has {lab.size} entries, expected {n_docs}")
        labels.append(torch.from_numpy(lab))
    hierarchy = []
    pairs = ((labels[0], labels[1], "labels9 -> labels4"), (labels[1], labels[2], "labels4 -> labels2"))
    for fine, coarse, name in pairs:
        n_fine = int(fine.max()) + 1
        parent = []
        for c in range(n_fine):
            ps = torch.unique(coarse[fine == c]).tolist()
            if len(ps) != 1:
                raise ValueError(f"path: {name} is not a hierarchy: class {c} has parents {ps}")
            parent.append(int(ps[0]))
        hierarchy.append(parent)

    masks = {}
    for key, val in data.items():
        if key.startswith("L") and key[1:].isdigit():
            m = np.asarray(val)
            masks[int(key[1:])] = torch.from_numpy(m.reshape(-1, n_docs)[0] != 0).to(device)
    masks = dict(sorted(masks.items()))

    ref = make_hierarchical_corpus(noise=0.0, dtype=torch.float64)
    clean = ref.clean
    resid = torch.from_numpy(X.T) - clean
    if not (resid.min() >= 0 and resid.max() <= TOY_NOISE):
        warnings.warn(f"load_toy_table: X in {path} is not the documented block pattern + [0, 0.15) noise; "
                      "clean is set to None", RuntimeWarning, stacklevel=2)
        clean = None
    return HierarchicalCorpus(
        x=torch.from_numpy(np.ascontiguousarray(X.T)).to(dtype=dtype, device=device),
        labels=[lab.to(device) for lab in labels],
        hierarchy=hierarchy,
        vocabulary=list(ref.vocabulary),
        word_labels=[w.to(device) for w in ref.word_labels],
        clean=None if clean is None else clean.to(dtype=dtype, device=device),
        num_classes=tuple(int(lab.max()) + 1 for lab in labels),
        label_masks=masks,
    )
