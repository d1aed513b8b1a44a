"""Data files: the one reader of .mat / .npz / .npy files and of word lists, label columns and masks, data matrices
as torch tensors, and scipy .npz shards for corpora larger than memory.

Readers raise ``FileNotFoundError`` for a missing file and ``ValueError``/``TypeError`` for content that cannot be
used, with the file and the problem in the message; the command line turns these into its one-line errors.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .._checks import check_dtype


__all__ = ["Corpus", "DATA_DIR_ENV", "MATRIX_SUFFIXES", "find_data_file", "read_arrays", "is_numeric_2d",
           "pick_matrix", "words_from", "integers_from", "load_matrix", "scipy_to_torch", "NpzShards"]

DATA_DIR_ENV = "NEURALNMF_DATA_DIR"
"""Environment variable naming a folder that holds the papers' data files (e.g. ``synthetic_noise.mat``)."""

MATRIX_SUFFIXES = (".npz", ".mat", ".npy")


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


def find_data_file(name: str) -> Path | None:
    """Where the data file ``name`` lies: in ``$NEURALNMF_DATA_DIR`` if set, else in ``shared/data`` next to the
    source checkout (``<repo>/../shared/data``). None when neither holds it (tests skip then)."""
    candidates = []
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        candidates.append(Path(env) / name)
    candidates.append(Path(__file__).resolve().parents[3] / "shared" / "data" / name)  # <repo>/../shared/data
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


def read_arrays(path) -> dict:
    """Every variable of a data file: {name: array or scipy.sparse matrix} for .mat / .npz (sparse kept sparse),
    {"": matrix} for a ``scipy.sparse.save_npz`` file or a .npy file.

    Raises:
        FileNotFoundError: no such file. ValueError: unsupported suffix, a MATLAB v7.3 file, or a file that
        cannot be read (the message names the file and the reason).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file {str(path)!r}")
    suffix = path.suffix.lower()
    if suffix not in MATRIX_SUFFIXES:
        raise ValueError(f"{path}: unsupported file type {path.suffix!r}; supported: {', '.join(MATRIX_SUFFIXES)}")
    try:
        if suffix == ".mat":
            return _loadmat(path)
        if suffix == ".npy":
            return {"": np.load(path, allow_pickle=False)}
        with np.load(path, allow_pickle=False) as z:
            if {"format", "shape", "data"} <= set(z.files):  # written by scipy.sparse.save_npz
                import scipy.sparse

                return {"": scipy.sparse.load_npz(path)}
            return {k: z[k] for k in z.files}
    except (OSError, EOFError, KeyError, TypeError, zipfile.BadZipFile) as e:  # BadZipFile: a corrupt .npz
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"cannot read {path}: {detail} (is it a complete {suffix} file?)") from e
    except ValueError as e:
        if "v7.3" in str(e):
            raise
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"cannot read {path}: {detail}") from e


def is_numeric_2d(v) -> bool:
    """A 2-D real numeric numpy array or scipy.sparse matrix."""
    import scipy.sparse

    dtype = getattr(v, "dtype", None)
    if dtype is None or not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
        return False
    return (scipy.sparse.issparse(v) or isinstance(v, np.ndarray)) and v.ndim == 2


def pick_matrix(arrays: Mapping, path, key: str | None = None, *, key_name: str = "key"):
    """(name, matrix): the variable ``key``, or the largest 2-D numeric one of ``arrays`` (read from ``path``)."""
    name = Path(path).name
    if key is not None:
        if key == "" or key not in arrays:
            avail = sorted(k for k in arrays if k)
            raise ValueError(f"{key_name}: no variable {key!r} in {name}" + (f"; it has {avail}" if avail else ""))
        raw = arrays[key]
        if not is_numeric_2d(raw):
            raise ValueError(f"{key_name}: variable {key!r} of {name} is not a 2-D numeric matrix (shape "
                             f"{getattr(raw, 'shape', None)}, dtype {getattr(raw, 'dtype', type(raw).__name__)})")
        return key, raw
    cands = {k: v for k, v in arrays.items() if is_numeric_2d(v)}
    if not cands:
        found = {k or "<array>": getattr(v, "shape", None) for k, v in arrays.items()}
        raise ValueError(f"{path} holds no 2-D numeric array (found {found})")
    key = max(cands, key=lambda k: cands[k].shape[0] * cands[k].shape[1])
    return key, cands[key]


def _to_dense(v) -> np.ndarray:
    import scipy.sparse

    return v.toarray() if scipy.sparse.issparse(v) else np.asarray(v)


def _words_from_array(raw, where: str) -> list[str]:
    raw = np.asarray(raw, dtype=object) if not isinstance(raw, np.ndarray) else raw
    if not (raw.dtype == object or raw.ndim <= 1 or 1 in raw.shape):
        raise ValueError(f"{where}: expected a 1-D list of words, got an array of shape {raw.shape}")
    words = []
    for w in raw.reshape(-1):  # MATLAB cell arrays load as object arrays of 1-element string arrays
        while isinstance(w, np.ndarray):
            if w.size != 1:
                raise ValueError(f"{where}: a cell holds {w.size} strings, expected one word per cell")
            w = w.reshape(-1)[0]
        if not isinstance(w, (str, np.str_)):
            raise TypeError(f"{where}: entries must be strings, got {type(w).__name__}")
        words.append(str(w).strip())
    return words


def _text_lines(path: Path, where: str) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise ValueError(f"cannot read {where}: {e.strerror or e}") from e
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def words_from(value, arrays: Mapping | None = None, *, where: str = "vocabulary") -> list[str]:
    """One word per feature from: the name of a variable of ``arrays`` (a MATLAB cell array such as ``word_list``),
    a text file with one word per line, a .npy of strings, an array, or a sequence of str. ``where`` names the
    argument in messages."""
    arrays = arrays or {}
    if isinstance(value, (str, os.PathLike)):
        if str(value) in arrays and str(value) != "":
            return _words_from_array(arrays[str(value)], where)
        path = Path(value)
        if not path.is_file():
            names = sorted(k for k in arrays if k)
            raise ValueError(f"{where} {str(value)!r} is neither a variable of the data file nor an existing file"
                             + (f" (its variables: {', '.join(names)})" if names else ""))
        if path.suffix.lower() == ".npy":
            try:
                return _words_from_array(np.load(path, allow_pickle=False), where)
            except (OSError, ValueError) as e:
                if "expected" in str(e) or "cell holds" in str(e):
                    raise
                raise ValueError(f"cannot read {where}: {str(e).splitlines()[0]}") from e
        return [w.strip() for w in _text_lines(path, where)]
    if isinstance(value, np.ndarray):
        return _words_from_array(value, where)
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        if not all(isinstance(w, str) for w in value):
            raise TypeError(f"{where} must contain strings")
        return list(value)
    raise TypeError(f"{where} must be a list of str, a path to a text file (one word per line), or the name of a "
                    f"variable of the data file; got {type(value).__name__}")


def _integer_lines(path: Path, where: str) -> np.ndarray:
    vals = []
    for i, line in enumerate(_text_lines(path, where), 1):
        try:
            vals.append(int(line.strip()))
        except ValueError:
            raise ValueError(f"{where}, line {i}: expected one integer per line, got {line.strip()!r}") from None
    return np.asarray(vals, dtype=np.int64)


def integers_from(value, n: int, arrays: Mapping | None = None, *, where: str = "labels",
                  count_name: str = "samples") -> np.ndarray:
    """One integer per sample (labels, masks) from: the name of a variable of ``arrays``, a text file of one
    integer per line, a .npy, a .mat / .npz holding one array of ``n`` entries, a tensor, an array or a sequence.
    A 1 x n or n x 1 array is fine; floats must be whole numbers. Returns (n,) int64."""
    arrays = arrays or {}
    if isinstance(value, (str, os.PathLike)) and str(value) in arrays and str(value) != "":
        raw = _to_dense(arrays[str(value)])
    elif isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if not path.is_file():
            raise ValueError(f"{where} {str(value)!r} is neither a variable of the data file nor an existing file")
        suffix = path.suffix.lower()
        if suffix == ".npy":
            try:
                raw = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as e:
                raise ValueError(f"cannot read {where} {value}: {str(e).splitlines()[0]}") from e
        elif suffix in (".mat", ".npz"):
            found = {k: v for k, v in read_arrays(path).items() if isinstance(v, np.ndarray) and v.size == n}
            if len(found) != 1:
                raise ValueError(f"{where}: {path} must hold exactly one array with {n} entries, found "
                                 f"{sorted(found)}; load it yourself and pass the array")
            raw = next(iter(found.values()))
        else:
            raw = _integer_lines(path, f"{where} {value}")
    elif isinstance(value, torch.Tensor):
        raw = value.detach().cpu().numpy()
    else:
        raw = np.asarray(value)
    raw = np.asarray(raw)
    if raw.ndim > 1 and sum(s != 1 for s in raw.shape) <= 1:
        raw = raw.reshape(-1)
    if raw.ndim != 1:
        raise ValueError(f"{where} must be 1-D, one value per sample, got an array of shape {raw.shape}; for "
                         "one-hot labels pass their argmax")
    if raw.dtype == bool:
        raw = raw.astype(np.int64)
    if not (np.issubdtype(raw.dtype, np.integer) or np.issubdtype(raw.dtype, np.floating)):
        raise TypeError(f"{where} must be integers, got dtype {raw.dtype}")
    if np.issubdtype(raw.dtype, np.floating) and not (np.isfinite(raw).all() and (raw == np.round(raw)).all()):
        raise ValueError(f"{where} must be integers; got non-integer values")
    if raw.size != n:
        raise ValueError(f"{where} has {raw.size} entries but the data has {n} {count_name} (one per sample)")
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
    check_dtype(dtype, "load_matrix")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no such file {path}")
    arrays = read_arrays(path)
    _, raw = pick_matrix(arrays, path, key)
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
        y = integers_from(labels, n_samples, arrays, where="labels")
        if y.size and y.min() < 0:
            raise ValueError(f"labels must be >= 0, got {y.min()}")
        lab = torch.from_numpy(y).to(device)
    vocab = None
    if vocabulary is not None:
        vocab = words_from(vocabulary, arrays, where="vocabulary")
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
