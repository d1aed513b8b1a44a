"""Data: the Neural NMF paper's hierarchical toy corpus (generated or loaded from its .mat file) and loaders for
data matrices stored as .mat, .npz or .npy.

Everything returned is batch first, like the models: ``x`` has shape (samples, features) = (documents, words),
the transpose of the papers' words x documents matrices. Labels are (samples,) long class indices, label masks
(samples,) bool with True = labeled.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .news20 import News20, load_news20

__all__ = [
    "HierarchicalCorpus",
    "Corpus",
    "make_hierarchical_corpus",
    "load_toy_table",
    "load_matrix",
    "random_label_mask",
    "find_data_file",
    "DATA_DIR_ENV",
    "NpzShards",
    "scipy_to_torch",
    "make_synthetic_tensor",
    "make_hierarchical_tensor",
    "TensorHierarchy",
    "load_news20", "News20",
    "make_planted_corpus",
]

DATA_DIR_ENV = "NEURALNMF_DATA_DIR"
"""Environment variable naming a folder that holds the papers' data files (e.g. ``synthetic_noise.mat``)."""

# The paper's toy matrix (protocols §2.1): documents and words come in 9 contiguous groups; word group g belongs to
# subtopic g; subtopics -> topics -> supertopics.
TOY_DOC_SIZES = (10, 10, 5, 7, 5, 20, 10, 9, 14)
TOY_WORD_SIZES = (10, 5, 10, 12, 13, 4, 11, 8, 14)
TOY_TOPICS = ((0, 1), (2, 3), (4, 5), (6, 7, 8))
TOY_SUPERTOPICS = ((0, 1), (2, 3))
TOY_VALUES = (4.0, 2.0, 1.0, 0.0)
TOY_NOISE = 0.15
_FLOAT_DTYPES = (torch.float32, torch.float64)


@dataclass(frozen=True, repr=False)
class HierarchicalCorpus:
    """A documents x words matrix with a known topic hierarchy.

    Attributes:
        x: (samples, features) data = documents x words, batch first.
        labels: one (samples,) long tensor per level, finest first (e.g. [subtopic, topic, supertopic]).
        hierarchy: the true parent maps between consecutive levels: ``hierarchy[l][c]`` is the class at level l + 1
            that class c of level l belongs to (e.g. ``[[0, 0, 1, 1, 2, 2, 3, 3, 3], [0, 0, 1, 1]]``).
        vocabulary: one name per feature, ``"w{index}_g{group}"``, where group is the word's finest class.
        word_labels: one (features,) long tensor per level, finest first: the class each word belongs to (the
            words' counterpart of ``labels``; compare learned topics A_0 ... A_l with ``word_labels[l]``).
        clean: (samples, features) the noise-free block pattern, or None when unknown.
        num_classes: the number of classes per level, finest first.
        label_masks: {n: (samples,) bool mask with n labeled samples}; see :meth:`label_mask`.
    """

    x: torch.Tensor
    labels: list[torch.Tensor]
    hierarchy: list[list[int]]
    vocabulary: list[str]
    word_labels: list[torch.Tensor]
    clean: torch.Tensor | None
    num_classes: tuple[int, ...]
    label_masks: dict[int, torch.Tensor] = field(default_factory=dict)

    def label_mask(self, n_labeled: int) -> torch.Tensor:
        """The stored (samples,) bool mask with ``n_labeled`` labeled samples (e.g. ``L40`` of the toy file).

        For other counts draw one with :func:`random_label_mask`.
        """
        if n_labeled not in self.label_masks:
            raise ValueError(
                f"label_mask: no stored mask with n_labeled={n_labeled!r}; available: {sorted(self.label_masks)} "
                "(use neuralnmf.datasets.random_label_mask for other counts)"
            )
        return self.label_masks[n_labeled]

    @property
    def num_samples(self) -> int:
        return self.x.shape[0]

    @property
    def num_features(self) -> int:
        return self.x.shape[1]

    def __repr__(self) -> str:
        return (
            f"HierarchicalCorpus(x: {tuple(self.x.shape)} {self.x.dtype} on {self.x.device}, "
            f"num_classes={self.num_classes}, hierarchy={self.hierarchy}, "
            f"clean={'yes' if self.clean is not None else 'no'}, label_masks={sorted(self.label_masks)})"
        )


@dataclass(frozen=True, repr=False)
class Corpus:
    """A loaded data matrix, batch first, with optional labels and vocabulary.

    Attributes:
        x: (samples, features).
        labels: (samples,) long class indices, or None.
        vocabulary: one name per feature, or None.
    """

    x: torch.Tensor
    labels: torch.Tensor | None = None
    vocabulary: list[str] | None = None

    def __repr__(self) -> str:
        lab = "None" if self.labels is None else f"({self.labels.shape[0]},)"
        voc = "None" if self.vocabulary is None else f"{len(self.vocabulary)} words"
        return f"Corpus(x: {tuple(self.x.shape)} {self.x.dtype} on {self.x.device}, labels={lab}, vocabulary={voc})"


# --- validation helpers -------------------------------------------------------------------------------------------


def _check_dtype(dtype) -> None:
    if dtype not in _FLOAT_DTYPES:
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")


def _int_tuple(value, name: str, *, positive: bool = True) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a sequence of ints, got {type(value).__name__}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must contain ints, got {v!r}")
        if positive and v <= 0:
            raise ValueError(f"{name} must contain positive ints, got {v}")
        out.append(int(v))
    if not out:
        raise ValueError(f"{name} must not be empty")
    return tuple(out)


def _partition_parents(groups, n_children: int, name: str) -> list[int]:
    """Parent map from a partition ``groups`` (tuple of tuples of child indices) of range(n_children)."""
    if isinstance(groups, (str, bytes)) or not isinstance(groups, Sequence) or not groups:
        raise TypeError(f"{name} must be a non-empty sequence of sequences of ints")
    parent = [-1] * n_children
    for p, members in enumerate(groups):
        for c in _int_tuple(members, f"{name}[{p}]", positive=False):
            if not 0 <= c < n_children:
                raise ValueError(f"{name}[{p}] contains {c}, outside range(0, {n_children})")
            if parent[c] != -1:
                raise ValueError(f"{name}: {c} belongs to two groups ({parent[c]} and {p})")
            parent[c] = p
    missing = [c for c, p in enumerate(parent) if p == -1]
    if missing:
        raise ValueError(f"{name} must cover range(0, {n_children}); missing {missing}")
    return parent


def random_label_mask(
    num_samples: int, n_labeled: int, *, seed: int = 0, device: torch.device | str | None = None
) -> torch.Tensor:
    """A (num_samples,) bool mask with exactly ``n_labeled`` True entries drawn uniformly without replacement.

    Seeded by a private ``torch.Generator`` (the global RNG is untouched), so the same seed gives the same mask on
    every device.
    """
    if not 0 <= n_labeled <= num_samples:
        raise ValueError(f"n_labeled must be in [0, num_samples={num_samples}], got {n_labeled}")
    return _draw_mask(num_samples, n_labeled, torch.Generator().manual_seed(int(seed))).to(device)


# --- the hierarchical toy corpus ----------------------------------------------------------------------------------


def _block_table(sub_class: list[torch.Tensor], values: Sequence[float]) -> torch.Tensor:
    """(S, S) table Bk[doc subtopic s, word group g]: ``values[d]`` at the first level d where s and g fall into the
    same class (d = 0: the same subtopic), ``values[-1]`` when they never do."""
    n = sub_class[0].numel()
    table = torch.full((n, n), float(values[-1]), dtype=torch.float64)
    done = torch.zeros((n, n), dtype=torch.bool)
    for d, cls in enumerate(sub_class):
        same = (cls[:, None] == cls[None, :]) & ~done
        table[same] = float(values[d])
        done |= same
    return table


def _draw_mask(num_samples: int, n_labeled: int, gen: torch.Generator) -> torch.Tensor:
    mask = torch.zeros(num_samples, dtype=torch.bool)
    mask[torch.randperm(num_samples, generator=gen)[:n_labeled]] = True
    return mask


def make_hierarchical_corpus(
    *,
    seed: int = 0,
    noise: float = TOY_NOISE,
    doc_sizes: Sequence[int] = TOY_DOC_SIZES,
    word_sizes: Sequence[int] = TOY_WORD_SIZES,
    topics: Sequence[Sequence[int]] | None = TOY_TOPICS,
    supertopics: Sequence[Sequence[int]] | None = TOY_SUPERTOPICS,
    values: Sequence[float] = TOY_VALUES,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> HierarchicalCorpus:
    """The Neural NMF paper's hierarchical toy corpus: a block-pattern documents x words matrix plus uniform noise.

    Documents come in contiguous groups of ``doc_sizes`` (one per subtopic s), words in contiguous groups of
    ``word_sizes`` (word group g belongs to subtopic g). Subtopics are grouped into ``topics``, topics into
    ``supertopics``. With Bk[doc of subtopic s, word of group g] = ``values[0]`` if g = s, ``values[1]`` if s and g
    share a topic, ``values[2]`` if they share a supertopic, ``values[3]`` otherwise, the data is

        x = Bk + noise * U,   U ~ Uniform[0, 1) i.i.d.

    The defaults reproduce the construction of ``synthetic_noise.mat`` (90 documents x 87 words, values 4/2/1/0,
    noise 0.15; the file's own noise draw is not reproducible, load it with :func:`load_toy_table`).

    Args:
        seed: seeds a private ``torch.Generator`` (CPU, float64 draw, then cast), so a seed gives the same data on
            every device and the global RNG is untouched.
        noise: amplitude of the uniform noise, >= 0.
        doc_sizes, word_sizes: group sizes, one per subtopic (same length).
        topics: partition of the subtopic indices into topics, or None for a single level.
        supertopics: partition of the topic indices into supertopics, or None (then ``values[2]`` is unused).
        values: the four block values (same subtopic, same topic, same supertopic, otherwise), nonnegative.
        dtype: torch.float32 or torch.float64.
        device: where the tensors live.

    Returns:
        A :class:`HierarchicalCorpus` with ``labels`` = [subtopic, topic, supertopic] (levels present only),
        ``hierarchy`` the parent maps, ``clean`` = Bk, and ``label_masks`` {0, 10, ..., M}: seeded random masks with
        that many labeled documents (drawn like the file's L0 ... L90, independently per count).
    """
    _check_dtype(dtype)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    doc_sizes = _int_tuple(doc_sizes, "doc_sizes")
    word_sizes = _int_tuple(word_sizes, "word_sizes")
    if len(doc_sizes) != len(word_sizes):
        raise ValueError(
            f"doc_sizes and word_sizes need one entry per subtopic; got {len(doc_sizes)} and {len(word_sizes)}"
        )
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) != 4:
        raise ValueError(f"values must be 4 numbers (same subtopic, topic, supertopic, otherwise), got {values!r}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) and v >= 0 for v in values):
        raise ValueError(f"values must be finite numbers >= 0, got {values!r}")
    if topics is None and supertopics is not None:
        raise ValueError("supertopics needs topics: pass topics too, or supertopics=None")

    n_sub = len(doc_sizes)
    parents: list[list[int]] = []
    if topics is not None:
        parents.append(_partition_parents(topics, n_sub, "topics"))
        if supertopics is not None:
            parents.append(_partition_parents(supertopics, len(topics), "supertopics"))
    num_classes = (n_sub, *(max(p) + 1 for p in parents))

    # class of every subtopic at every level, finest first
    sub_class = [torch.arange(n_sub)]
    for p in parents:
        sub_class.append(torch.tensor(p)[sub_class[-1]])
    doc_sub = torch.repeat_interleave(torch.arange(n_sub), torch.tensor(doc_sizes))
    word_sub = torch.repeat_interleave(torch.arange(n_sub), torch.tensor(word_sizes))

    table = _block_table(sub_class, [*values[: len(parents) + 1], values[3]])
    clean64 = table[doc_sub][:, word_sub]
    gen = torch.Generator().manual_seed(int(seed))
    x64 = clean64 + float(noise) * torch.rand(clean64.shape, generator=gen, dtype=torch.float64)
    M = clean64.shape[0]
    counts = sorted({*range(0, M + 1, 10), M})
    masks = {n: _draw_mask(M, n, gen).to(device) for n in counts}  # same generator, after the noise

    return HierarchicalCorpus(
        x=x64.to(dtype=dtype, device=device),
        labels=[c[doc_sub].to(device) for c in sub_class],
        hierarchy=parents,
        vocabulary=[f"w{i}_g{g}" for i, g in enumerate(word_sub.tolist())],
        word_labels=[c[word_sub].to(device) for c in sub_class],
        clean=clean64.to(dtype=dtype, device=device),
        num_classes=tuple(int(c) for c in num_classes),
        label_masks=masks,
    )


# --- files --------------------------------------------------------------------------------------------------------


def find_data_file(name: str) -> Path | None:
    """Where the data file ``name`` lies: in ``$NEURALNMF_DATA_DIR`` if set, else in ``shared/data`` next to the
    source checkout (``<repo>/../shared/data``). None when neither holds it (tests skip then)."""
    candidates = []
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        candidates.append(Path(env) / name)
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "data" / name)
    for c in candidates:
        if c.is_file():
            return c
    return None


def _loadmat(path: Path) -> dict:
    import scipy.io

    try:
        data = scipy.io.loadmat(str(path))
    except NotImplementedError as e:  # MATLAB v7.3 = HDF5
        raise ValueError(f"path: {path} is a MATLAB v7.3 (HDF5) file, which scipy cannot read; save it with "
                         "-v7 or load it with h5py") from e
    return {k: v for k, v in data.items() if not k.startswith("__")}


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
    _check_dtype(dtype)
    if path is None:
        path = find_data_file("synthetic_noise.mat")
        if path is None:
            raise FileNotFoundError(
                f"synthetic_noise.mat not found: pass its path or set ${DATA_DIR_ENV} to the folder that holds it"
            )
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no such file {path}")
    data = _loadmat(path)
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


_SUPPORTED = (".mat", ".npz", ".npy")


def _read_arrays(path: Path) -> dict:
    """All variables of a .mat / .npz file (sparse matrices kept sparse), or {'': array} for .npy."""
    suffix = path.suffix.lower()
    if suffix == ".mat":
        return _loadmat(path)
    if suffix == ".npy":
        return {"": np.load(path, allow_pickle=False)}
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            if {"format", "shape", "data"} <= keys:  # written by scipy.sparse.save_npz
                import scipy.sparse

                return {"": scipy.sparse.load_npz(path)}
            return {k: z[k] for k in z.files}
    raise ValueError(f"path: unsupported file type {path.suffix!r}; supported: {', '.join(_SUPPORTED)}")


def _is_numeric_2d(v) -> bool:
    import scipy.sparse

    if scipy.sparse.issparse(v):
        return v.ndim == 2 and np.issubdtype(v.dtype, np.number) and not np.issubdtype(v.dtype, np.complexfloating)
    return (
        isinstance(v, np.ndarray)
        and v.ndim == 2
        and np.issubdtype(v.dtype, np.number)
        and not np.issubdtype(v.dtype, np.complexfloating)
    )


def _to_dense(v) -> np.ndarray:
    import scipy.sparse

    return v.toarray() if scipy.sparse.issparse(v) else np.asarray(v)


def _vocabulary_from(value, arrays: Mapping, name: str = "vocabulary") -> list[str]:
    if isinstance(value, (str, os.PathLike)) and str(value) in arrays and str(value) != "":
        raw = arrays[str(value)]
    elif isinstance(value, (str, os.PathLike)):
        p = Path(value)
        if not p.is_file():
            raise ValueError(f"{name}: {str(value)!r} is neither a variable of the data file nor an existing file")
        if p.suffix.lower() in (".npy",):
            raw = np.load(p, allow_pickle=False)
        else:
            return [w.strip() for w in p.read_text(encoding="utf-8").splitlines()]
    else:
        raw = value
    if isinstance(raw, np.ndarray):
        flat = raw.reshape(-1) if raw.dtype == object or raw.ndim <= 1 or 1 in raw.shape else None
        if flat is None:
            raise ValueError(f"{name}: expected a 1-D list of words, got an array of shape {raw.shape}")
        words = []
        for w in flat:  # MATLAB cells load as object arrays of 1-element string arrays
            while isinstance(w, np.ndarray):
                if w.size != 1:
                    raise ValueError(f"{name}: a cell holds {w.size} strings, expected one word per cell")
                w = w.reshape(-1)[0]
            if not isinstance(w, (str, np.str_)):
                raise TypeError(f"{name}: entries must be strings, got {type(w).__name__}")
            words.append(str(w).strip())
        return words
    if isinstance(raw, Sequence) and not isinstance(raw, (str, bytes)):
        if not all(isinstance(w, str) for w in raw):
            raise TypeError(f"{name} must contain strings")
        return list(raw)
    raise TypeError(f"{name} must be a list of str, a path to a text file (one word per line), or the name of a "
                    f"variable of the data file; got {type(value).__name__}")


def _labels_from(value, arrays: Mapping, n_samples: int) -> np.ndarray:
    if isinstance(value, (str, os.PathLike)) and str(value) in arrays and str(value) != "":
        raw = _to_dense(arrays[str(value)])
    elif isinstance(value, (str, os.PathLike)):
        p = Path(value)
        if not p.is_file():
            raise ValueError(f"labels: {str(value)!r} is neither a variable of the data file nor an existing file")
        if p.suffix.lower() == ".npy":
            raw = np.load(p, allow_pickle=False)
        elif p.suffix.lower() in (".mat", ".npz"):
            arrs = {k: v for k, v in _read_arrays(p).items() if isinstance(v, np.ndarray) and v.size == n_samples}
            if len(arrs) != 1:
                raise ValueError(f"labels: {p} must hold exactly one array with {n_samples} entries, found "
                                 f"{sorted(arrs)}; load it yourself and pass the array")
            raw = next(iter(arrs.values()))
        else:
            raw = np.loadtxt(p, ndmin=1)
    elif isinstance(value, torch.Tensor):
        raw = value.detach().cpu().numpy()
    else:
        raw = np.asarray(value)
    raw = np.asarray(raw)
    if raw.ndim > 1 and sum(s != 1 for s in raw.shape) <= 1:
        raw = raw.reshape(-1)
    if raw.ndim != 1:
        raise ValueError(f"labels must be 1-D class indices (one per sample), got shape {raw.shape}; "
                         "for one-hot labels pass their argmax")
    if not (np.issubdtype(raw.dtype, np.integer) or np.issubdtype(raw.dtype, np.floating) or raw.dtype == bool):
        raise TypeError(f"labels must be integer class indices, got dtype {raw.dtype}")
    if raw.size != n_samples:
        raise ValueError(f"labels has {raw.size} entries but the data has {n_samples} samples")
    if np.issubdtype(raw.dtype, np.floating) and not (np.isfinite(raw).all() and (raw == np.round(raw)).all()):
        raise ValueError("labels must be integer class indices; got non-integer values")
    if raw.size and raw.min() < 0:
        raise ValueError(f"labels must be >= 0, got {raw.min()}")
    return raw.astype(np.int64)


def load_matrix(
    path: str | os.PathLike,
    *,
    key: str | None = None,
    labels=None,
    vocabulary=None,
    transpose: bool = False,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Corpus:
    """Load a data matrix from a .mat, .npz or .npy file, batch first, with optional labels and vocabulary.

    * ``.mat`` (MATLAB v5/v7, via scipy.io.loadmat): the variable ``key``, default the largest 2-D numeric array
      (sparse ones included).
    * ``.npz``: a ``scipy.sparse.save_npz`` matrix, or ``numpy.savez`` arrays (``key`` or the largest 2-D array).
    * ``.npy``: the one array in it.

    Sparse matrices are densified (the models work on dense tensors).

    Args:
        path: the data file.
        key: the variable to read from a .mat / .npz file.
        labels: (samples,) class indices: a tensor, array or sequence; the name of a variable of the same .mat /
            .npz file (e.g. ``"labels9"``, a 1 x M row is fine); or a path (.npy, or a text file of integers).
        vocabulary: one word per feature: a list of str; the name of a variable of the same file (a MATLAB cell
            array such as ``word_list``); or a path to a text file with one word per line.
        transpose: the file stores features x samples (the papers' words x documents): transpose it. Labels and
            vocabulary always refer to the returned orientation.
        dtype: torch.float32 or torch.float64.
        device: where the tensors live.

    Returns:
        :class:`Corpus` with ``x`` (samples, features), ``labels`` (samples,) long or None, ``vocabulary`` or None.

    Raises:
        ValueError: unsupported file type, unknown ``key``, no 2-D numeric array, data not 2-D / empty / non-finite,
            labels or vocabulary whose length does not match the data.
        TypeError: bad dtype, labels or vocabulary of the wrong kind.
    """
    _check_dtype(dtype)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no such file {path}")
    arrays = _read_arrays(path)
    if key is not None:
        if path.suffix.lower() == ".npy" or key not in arrays:
            avail = sorted(k for k in arrays if k)
            raise ValueError(f"key: no variable {key!r} in {path.name}; available: {avail}")
        raw = arrays[key]
        if not _is_numeric_2d(raw):
            shape = getattr(raw, "shape", None)
            raise ValueError(f"key: variable {key!r} must be a 2-D numeric array, got shape {shape} "
                             f"dtype {getattr(raw, 'dtype', type(raw).__name__)}")
    else:
        cands = {k: v for k, v in arrays.items() if _is_numeric_2d(v)}
        if not cands:
            shapes = {k or "<array>": getattr(v, "shape", None) for k, v in arrays.items()}
            raise ValueError(f"path: {path.name} holds no 2-D numeric array (found {shapes})")
        raw = max(cands.values(), key=lambda v: v.shape[0] * v.shape[1])
    x = _to_dense(raw)
    if transpose:
        x = x.T
    if x.ndim != 2 or 0 in x.shape:
        raise ValueError(f"path: the data must be a non-empty 2-D matrix, got shape {x.shape}")
    x = np.asarray(x, dtype=np.float64)
    if not np.isfinite(x).all():
        raise ValueError(f"path: the data in {path.name} contains NaN or Inf")
    n_samples, n_features = x.shape

    lab = None
    if labels is not None:
        lab = torch.from_numpy(_labels_from(labels, arrays, n_samples)).to(device)
    vocab = None
    if vocabulary is not None:
        vocab = _vocabulary_from(vocabulary, arrays)
        if len(vocab) != n_features:
            hint = " (transpose?)" if len(vocab) == n_samples else ""
            raise ValueError(f"vocabulary has {len(vocab)} words but the data has {n_features} features{hint}")
    return Corpus(
        x=torch.from_numpy(np.ascontiguousarray(x)).to(dtype=dtype, device=device), labels=lab, vocabulary=vocab
    )


def scipy_to_torch(matrix, *, dtype=torch.float64, device=None) -> torch.Tensor:
    """A scipy.sparse matrix (samples, features) as a coalesced torch sparse COO tensor (no densifying)."""
    coo = matrix.tocoo()
    indices = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    values = torch.from_numpy(coo.data).to(dtype)
    return torch.sparse_coo_tensor(indices, values, coo.shape, device=device, check_invariants=True).coalesce()


class NpzShards:
    """Re-iterable source of sample blocks stored as scipy.sparse ``.npz`` files, read one at a time.

    For corpora larger than memory: ``fit(model, NpzShards(paths))`` trains on one shard per step, each a
    sparse COO tensor (samples_in_shard, features). Every shard must have the same number of features.
    """

    def __init__(self, paths, *, dtype=torch.float64, device=None):
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("NpzShards: no shard paths given")
        missing = [str(p) for p in self.paths if not p.is_file()]
        if missing:
            raise ValueError(f"NpzShards: shard files not found: {missing[:3]}")
        self.dtype, self.device = dtype, device

    def __iter__(self):
        import scipy.sparse

        for path in self.paths:
            yield scipy_to_torch(scipy.sparse.load_npz(path), dtype=self.dtype, device=self.device)

    def __len__(self) -> int:
        return len(self.paths)


def __getattr__(name):
    """The tensor data sets live in neuralnmf.tensor.data; they are reachable here too, imported on first use."""
    if name in ("make_synthetic_tensor", "make_hierarchical_tensor", "TensorHierarchy"):
        from .tensor import data

        return getattr(data, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The planted-hierarchy generator builds on HierarchicalCorpus above; imported last so that its module can import it.
from .planted import make_planted_corpus  # noqa: E402
