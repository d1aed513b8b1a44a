"""Saving and loading a Neural NMF model with what it needs to be used again: its configuration, its weights,
the vocabulary that names its features and, for text, the tf-idf weights that vectorise new documents.

    neuralnmf.save(model, "run/model.pt", vocabulary=words)
    model = neuralnmf.load("run/model.pt")          # model.vocabulary == words

The file holds tensors and plain types only, so it loads with ``torch.load(path, weights_only=True)`` (no code
runs on load); the command line's ``fit`` writes this file and ``transform`` reads it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .models import NeuralNMF
from .tree_start import DEFAULT_MIN_CHILDREN

__all__ = ["save", "load", "FORMAT"]

FORMAT = "neuralnmf.model/1"
_FORMATS = (FORMAT, "neuralnmf.cli.model/1")  # the command line's earlier name for the same layout
_FORMAT_NAMES = ("neuralnmf.model/", "neuralnmf.cli.model/")
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def save(model: NeuralNMF, path: str | os.PathLike, *, vocabulary=None, text: dict | None = None,
         metadata: dict | None = None) -> None:
    """Write ``model`` to ``path`` (weights_only-loadable).

    Args:
        model: a :class:`neuralnmf.NeuralNMF`.
        vocabulary: one name per input feature (default: ``model.vocabulary`` when set).
        text: how raw text becomes the model's input, e.g. ``{"vocabulary": [...], "idf": tensor, "params": {}}``
            (the command line stores its tf-idf settings here); tensors and plain types only.
        metadata: anything else worth keeping (training settings, ...), tensors and plain types only.
    """
    if not isinstance(model, NeuralNMF):
        raise TypeError(f"save: model must be a neuralnmf.NeuralNMF, got {type(model).__name__}")
    if model.ranks is None:
        raise ValueError("save: the model was built with ranks='auto' and has not chosen its ranks yet; fit it (or "
                         "call model.choose_ranks(x)) first")
    vocabulary = getattr(model, "vocabulary", None) if vocabulary is None else vocabulary
    if vocabulary is not None:
        vocabulary = [str(w) for w in vocabulary]
        if len(vocabulary) != model.in_features:
            raise ValueError(f"save: vocabulary has {len(vocabulary)} words but the model has {model.in_features} "
                             "features")
    checkpoint = {
        "format": FORMAT,
        "config": {
            "in_features": int(model.in_features),
            "ranks": [int(r) for r in model.ranks],
            "num_classes": (None if model.num_classes is None else
                            {int(l): int(c) for l, c in model.num_classes.items()} if isinstance(model.num_classes, dict)
                            else int(model.num_classes)),
            "classifier": model.classifier,
            "nonnegative_classifier": bool(model.nonnegative_classifier),
            "tree": bool(model.tree),
            "min_children": int(model.min_children),
            "dtype": str(model.layers[0].A.dtype).removeprefix("torch."),
        },
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "vocabulary": vocabulary,
        "text": text,
        "metadata": dict(metadata or {}),
    }
    torch.save(checkpoint, path)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The raw checkpoint dict of a file written by :func:`save` (a folder: its ``model.pt``).

    Raises:
        FileNotFoundError: no such file; ValueError: the file is not such a model.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no model at {str(path)!r}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle/zip errors of many kinds: a damaged file, or one that is not a model
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"cannot load {path}: the file is damaged (truncated?) or not a model written by "
                         f"neuralnmf.save or `python -m neuralnmf fit` ({detail}); write it again") from e
    written = ckpt.get("format") if isinstance(ckpt, dict) else None
    if isinstance(written, str) and written not in _FORMATS and written.startswith(_FORMAT_NAMES):
        version = written.rpartition("/")[2]
        raise ValueError(f"{path}: unsupported version {version} of the neuralnmf model format (this neuralnmf "
                         f"reads version {FORMAT.rpartition('/')[2]}); it was written by a newer neuralnmf: upgrade "
                         "neuralnmf to read it")
    if written not in _FORMATS:
        raise ValueError(f"{path} is not a model written by neuralnmf.save or `python -m neuralnmf fit`")
    if "metadata" not in ckpt:  # the command line's earlier layout kept its training settings under "training"
        ckpt["metadata"] = {"training": ckpt.get("training", {})}
    return ckpt


def load(path: str | os.PathLike, *, device=None) -> NeuralNMF:
    """The model saved at ``path`` (or in the folder ``path``), in eval mode, on ``device`` (default: CPU).

    The returned model carries ``model.vocabulary`` (list of words or None), ``model.text`` (the tf-idf settings
    or None) and ``model.metadata`` (dict) as saved. Nothing but tensors and plain types is unpickled.
    """
    ckpt = read_checkpoint(path)
    cfg = ckpt["config"]
    dtype = _DTYPES.get(cfg.get("dtype"))
    if dtype is None:
        raise ValueError(f"{path}: unknown dtype {cfg.get('dtype')!r}")
    # files written before classifiers per level had the papers' classifier as "B"
    classifier = cfg.get("classifier", "papers")
    model = NeuralNMF(cfg["in_features"], cfg["ranks"], cfg["num_classes"], classifier=classifier, init="uniform",
                      dtype=dtype, device=device, nonnegative_classifier=cfg.get("nonnegative_classifier", True),
                      tree=cfg.get("tree", False), min_children=cfg.get("min_children", DEFAULT_MIN_CHILDREN))
    state = dict(ckpt["state_dict"])
    if "B" in state and model.heads:
        state[f"heads.{model.labeled_levels[-1]}.weight"] = state.pop("B")
        for name, buffer in model.head().named_buffers():  # scale 1 and no weight decay: the papers' form
            state.setdefault(f"heads.{model.labeled_levels[-1]}.{name}", buffer.detach().cpu())
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"{path}: the weights do not match the config: {str(e).splitlines()[0]}") from e
    model.vocabulary = ckpt.get("vocabulary")
    model.text = ckpt.get("text")
    model.metadata = ckpt.get("metadata", {})
    model.eval()
    return model
