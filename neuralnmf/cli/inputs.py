"""The command line's inputs: a documents x words matrix (a .npz / .mat / .npy file or a folder of text), its
vocabulary, labels and label mask, and the torch device, checked with messages that name the option and the fix.

Files are read by :mod:`neuralnmf.datasets` (the library's one reader); this module adds what only a command line
needs: orientation (documents are rows), the location of the first bad entry, and one-line errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse
import torch

from ..datasets.files import MATRIX_SUFFIXES, integers_from, pick_matrix, read_arrays, scipy_to_torch, words_from
from ..datasets.text import TextModel, read_text_folder
from .errors import CLIError, user_errors

__all__ = ["Matrix", "read_input", "read_matrix", "read_vocabulary", "read_labels", "read_label_mask",
           "empty_rows", "describe_indices", "device_from", "to_torch", "DTYPES"]

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class Matrix:
    """A documents x words matrix read from INPUT.

    Attributes:
        data: (documents, words) numpy array or scipy.sparse CSR matrix, float64, finite, nonnegative.
        vocabulary: one word per column when the input provides one (text folder), else None.
        documents: document names (the text files, in row order), or None.
        text: the fitted :class:`neuralnmf.datasets.TextModel` for a text folder, else None.
        arrays: the other variables of a .mat / .npz file (for --vocabulary/--labels given by variable name).
    """

    data: object
    vocabulary: list[str] | None = None
    documents: list[str] | None = None
    text: TextModel | None = None
    arrays: dict = field(default_factory=dict)

    @property
    def sparse(self) -> bool:
        return scipy.sparse.issparse(self.data)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(int(s) for s in self.data.shape)

    @property
    def nnz(self) -> int:
        return int(self.data.nnz) if self.sparse else int(np.count_nonzero(self.data))

    def keep_documents(self, keep: np.ndarray) -> None:
        """Keep only the documents (rows, and their names) where the bool array ``keep`` is True."""
        self.data = self.data[keep]
        if self.documents is not None:
            self.documents = [d for d, k in zip(self.documents, keep) if k]


def describe_indices(idx, limit: int = 5) -> str:
    """'3, 17, 20' or '3, 17, 20, 31, 40, ...' for messages."""
    idx = [int(i) for i in idx]
    return ", ".join(map(str, idx[:limit])) + (", ..." if len(idx) > limit else "")


def device_from(name: str) -> torch.device:
    """--device: a torch device that exists here."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as e:
        raise CLIError(f"--device {name!r} is not a torch device (cpu, cuda, cuda:1, ...)") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {name}: CUDA is not available here (this torch build or machine has no GPU); "
                       "use --device cpu")
    return device


def _check_file_values(data, where: str) -> None:
    """Finite and nonnegative; the message names how many bad entries and where the first one is."""
    if scipy.sparse.issparse(data):
        coo = data.tocoo()
        rows, cols, vals = coo.row, coo.col, coo.data
    else:
        rows = cols = None
        vals = data
    for bad, what, hint in ((~np.isfinite(vals), "NaN or Inf entries", ""),
                            (np.isfinite(vals) & (vals < 0), "negative entries",
                             ": NMF needs nonnegative data (counts, tf-idf, ...)")):
        n_bad = int(np.count_nonzero(bad))
        if n_bad:
            if rows is None:
                r, c = (int(i[0]) for i in np.nonzero(bad))
            else:
                first = int(np.flatnonzero(bad)[0])
                r, c = int(rows[first]), int(cols[first])
            raise CLIError(f"{where} has {n_bad} {what} (the first at document {r}, word {c}){hint}")


def _as_matrix(raw, where: str, transpose: bool):
    """A 2-D numeric array or sparse matrix -> float64 numpy array or CSR matrix, documents as rows."""
    if scipy.sparse.issparse(raw):
        data = scipy.sparse.csr_matrix(raw.T if transpose else raw, dtype=np.float64)
        data.sum_duplicates()
        data.eliminate_zeros()
    else:
        data = np.ascontiguousarray(raw.T if transpose else raw, dtype=np.float64)
    if 0 in data.shape:
        raise CLIError(f"{where} is empty: shape {data.shape} (documents x words)")
    _check_file_values(data, where)
    return data


def read_matrix(path, *, key: str | None = None, transpose: bool = False) -> Matrix:
    """A .npz / .mat / .npy documents x words matrix (``transpose``: the file stores words x documents)."""
    path = Path(path)
    if not path.exists():
        raise CLIError(f"input {str(path)!r} does not exist")
    if path.is_dir():
        raise CLIError(f"input {str(path)!r} is a folder; read_text_folder reads folders")
    if path.suffix.lower() not in MATRIX_SUFFIXES:
        raise CLIError(f"unsupported input {str(path)!r}: expected a {', '.join(MATRIX_SUFFIXES)} file or a folder "
                       "of .txt documents")
    with user_errors():
        arrays = read_arrays(path)
        key, raw = pick_matrix(arrays, path, key, key_name="--key")
    others = {k: v for k, v in arrays.items() if k != key and k != ""}
    return Matrix(_as_matrix(raw, str(path), transpose), arrays=others)


def read_input(path: str, args, text: TextModel | None = None) -> Matrix:
    """INPUT of `fit` / `transform`: a matrix file, or a folder of .txt documents (vectorised with ``text``, the
    fitted model's vocabulary and idf, when given; else fitted with the text options of ``args``)."""
    p = Path(path)
    if not p.is_dir():
        return read_matrix(p, key=args.key, transpose=args.transpose)
    if getattr(args, "key", None) is not None or getattr(args, "transpose", False):
        raise CLIError("--key and --transpose apply to matrix files, not to a folder of text documents")
    with user_errors():
        if text is not None:
            corpus = read_text_folder(p, text=text)
        else:
            corpus = read_text_folder(p, stop_words=None if args.stop_words == "none" else args.stop_words,
                                      min_df=args.min_df, max_df=args.max_df, max_features=args.max_features)
    return Matrix(corpus.data, vocabulary=corpus.vocabulary, documents=corpus.documents, text=corpus.text)


def read_vocabulary(value: str, n_words: int, arrays: dict | None = None) -> list[str]:
    """--vocabulary: a text file with one word per line (or a .npy of strings), or a variable of the .mat / .npz
    input. Its length must equal the number of words (columns)."""
    with user_errors():
        words = words_from(value, arrays, where="--vocabulary")
    if len(words) != n_words:
        raise CLIError(f"--vocabulary {value} has {len(words)} words but the data has {n_words} words (columns)"
                       + (" (documents must be rows: --transpose?)" if words else ""))
    return words


def read_labels(value: str, n_documents: int, arrays: dict | None = None) -> np.ndarray:
    """--labels: one integer class per document (0, 1, ...; -1 = label unknown). Returns (documents,) int64."""
    with user_errors():
        y = integers_from(value, n_documents, arrays, where=f"--labels {value}", count_name="documents")
    if y.size and y.min() < -1:
        bad = np.flatnonzero(y < -1)
        raise CLIError(f"--labels {value}: classes must be >= 0 (or -1 for unknown); {bad.size} are not, the first "
                       f"at documents {describe_indices(bad)}")
    if not (y >= 0).any():
        raise CLIError(f"--labels {value}: no document has a known label (all are -1)")
    return y


def read_label_mask(value: str, n_documents: int, arrays: dict | None = None) -> np.ndarray:
    """--label-mask: 1 = the document's label is used for training, 0 = it is held out. Returns (documents,) bool."""
    with user_errors():
        m = integers_from(value, n_documents, arrays, where=f"--label-mask {value}", count_name="documents")
    if not np.isin(m, (0, 1)).all():
        raise CLIError(f"--label-mask {value}: expected 0 or 1 per document, got values {sorted(set(m.tolist()))[:5]}")
    return m.astype(bool)


def empty_rows(data) -> np.ndarray:
    """Indices of all-zero rows (documents without a single nonzero word weight)."""
    if scipy.sparse.issparse(data):
        return np.flatnonzero(np.diff(scipy.sparse.csr_matrix(data).indptr) == 0)
    return np.flatnonzero(~np.asarray(data != 0).any(axis=1))


def to_torch(matrix: Matrix, dtype, device) -> torch.Tensor:
    """The matrix as a tensor: a sparse one stays sparse (COO), a dense one dense."""
    if matrix.sparse:
        return scipy_to_torch(matrix.data, dtype=dtype, device=device)
    return torch.from_numpy(matrix.data).to(dtype=dtype, device=device)
