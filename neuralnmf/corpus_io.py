"""Reading the command line's inputs: a documents x words matrix, its vocabulary, labels and label masks.

Inputs, documents are rows:

* ``.npz`` written by ``scipy.sparse.save_npz``: kept sparse (never densified); or ``numpy.savez`` arrays;
* ``.mat`` (MATLAB v5/v7): the variable named by ``key``, default the largest 2-D numeric one (sparse stays
  sparse);
* ``.npy``: one dense 2-D array;
* a folder of ``.txt`` files, one document each, in sorted file-name order, turned into tf-idf vectors by
  scikit-learn's ``TfidfVectorizer`` (the optional extra ``neuralnmf[text]``). The fitted vocabulary and idf
  weights come back in :class:`TextModel`, which re-vectorises new documents exactly the same way.

Everything here works on host data (numpy / scipy.sparse) and reports bad input as :class:`CLIError`, a one-line
message for the user; turning the matrix into a torch tensor is the caller's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "CLIError",
    "Matrix",
    "TextModel",
    "read_matrix",
    "read_text_folder",
    "read_vocabulary",
    "read_labels",
    "read_label_mask",
    "empty_rows",
    "describe_indices",
    "MATRIX_SUFFIXES",
    "DEFAULT_TEXT_PARAMS",
]

MATRIX_SUFFIXES = (".npz", ".mat", ".npy")
TEXT_INSTALL_HINT = ("reading a folder of text documents needs scikit-learn: pip install scikit-learn "
                     "(or pip install 'neuralnmf[text]')")


class CLIError(Exception):
    """Bad input on the command line: printed as one line on stderr, exit status 1, no traceback."""


@dataclass
class TextModel:
    """What turns plain text into the tf-idf rows a model was fitted on.

    Attributes:
        vocabulary: the fitted words, one per feature (column), in column order.
        idf: (words,) float64 inverse document frequencies of the fitted vectorizer.
        params: the tokenisation and weighting settings (plain types: str, int, float, bool, None).
    """

    vocabulary: list[str]
    idf: np.ndarray
    params: dict = field(default_factory=dict)


@dataclass
class Matrix:
    """A documents x words matrix read from INPUT.

    Attributes:
        data: (documents, words) numpy array or scipy.sparse CSR matrix, float64, finite, nonnegative.
        vocabulary: one word per column when the input provides one (text folder), else None.
        documents: document names (the text files, in row order), or None.
        text: the fitted :class:`TextModel` for a text folder, else None.
        arrays: the other variables of a .mat / .npz file (for --vocabulary/--labels given by variable name).
    """

    data: object
    vocabulary: list[str] | None = None
    documents: list[str] | None = None
    text: TextModel | None = None
    arrays: dict = field(default_factory=dict)

    @property
    def sparse(self) -> bool:
        import scipy.sparse

        return scipy.sparse.issparse(self.data)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(int(s) for s in self.data.shape)

    @property
    def nnz(self) -> int:
        return int(self.data.nnz) if self.sparse else int(np.count_nonzero(self.data))


# --- matrices -----------------------------------------------------------------------------------------------------


def describe_indices(idx, limit: int = 5) -> str:
    """'3, 17, 20' or '3, 17, 20, 31, 40, ...' for messages."""
    idx = [int(i) for i in idx]
    return ", ".join(map(str, idx[:limit])) + (", ..." if len(idx) > limit else "")


def _check_values(data, where: str) -> None:
    """Finite and nonnegative; the message names how many bad entries and where the first one is."""
    import scipy.sparse

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
    import scipy.sparse

    if scipy.sparse.issparse(raw):
        data = raw.T if transpose else raw
        data = scipy.sparse.csr_matrix(data, dtype=np.float64)
        data.sum_duplicates()
        data.eliminate_zeros()
    else:
        data = np.asarray(raw)
        if data.ndim != 2:
            raise CLIError(f"{where} must be a 2-D documents x words matrix, got an array of shape {data.shape}")
        if not (np.issubdtype(data.dtype, np.integer) or np.issubdtype(data.dtype, np.floating)
                or data.dtype == bool):
            raise CLIError(f"{where} must hold numbers, got dtype {data.dtype}")
        data = np.ascontiguousarray(data.T if transpose else data, dtype=np.float64)
    if 0 in data.shape:
        raise CLIError(f"{where} is empty: shape {data.shape} (documents x words)")
    _check_values(data, where)
    return data


def _load_arrays(path: Path) -> dict:
    """Variables of a .npz / .mat file ({'': matrix} for a scipy sparse .npz or a .npy)."""
    import scipy.sparse

    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return {"": np.load(path, allow_pickle=False)}
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if {"format", "shape", "data"} <= set(z.files):  # scipy.sparse.save_npz
                    return {"": scipy.sparse.load_npz(path)}
                return {k: z[k] for k in z.files}
        if suffix == ".mat":
            import scipy.io

            try:
                data = scipy.io.loadmat(str(path))
            except NotImplementedError as e:  # v7.3 = HDF5
                raise CLIError(f"{path} is a MATLAB v7.3 (HDF5) file, which scipy cannot read: save it with -v7") from e
            return {k: v for k, v in data.items() if not k.startswith("__")}
    except CLIError:
        raise
    except (OSError, ValueError, EOFError, TypeError, KeyError) as e:
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CLIError(f"cannot read {path}: {detail}") from e
    raise CLIError(f"unsupported input {str(path)!r}: expected a {', '.join(MATRIX_SUFFIXES)} file or a folder "
                   "of .txt documents")


def _is_numeric_2d(v) -> bool:
    import scipy.sparse

    dtype = getattr(v, "dtype", None)
    ok_dtype = dtype is not None and (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating))
    return ok_dtype and (scipy.sparse.issparse(v) or isinstance(v, np.ndarray)) and v.ndim == 2


def read_matrix(path, *, key: str | None = None, transpose: bool = False) -> Matrix:
    """Read a .npz / .mat / .npy documents x words matrix (``transpose``: the file stores words x documents)."""
    path = Path(path)
    if not path.exists():
        raise CLIError(f"input {str(path)!r} does not exist")
    if path.is_dir():
        raise CLIError(f"input {str(path)!r} is a folder; read_text_folder reads folders")
    if path.suffix.lower() not in MATRIX_SUFFIXES:
        raise CLIError(f"unsupported input {str(path)!r}: expected a {', '.join(MATRIX_SUFFIXES)} file or a folder "
                       "of .txt documents")
    arrays = _load_arrays(path)
    if key is not None:
        if key not in arrays or key == "":
            avail = sorted(k for k in arrays if k)
            raise CLIError(f"--key: {path.name} has no variable {key!r}" + (f"; it has {avail}" if avail else ""))
        raw = arrays[key]
        if not _is_numeric_2d(raw):
            raise CLIError(f"--key: variable {key!r} of {path.name} is not a 2-D numeric matrix "
                           f"(shape {getattr(raw, 'shape', None)})")
    else:
        cands = {k: v for k, v in arrays.items() if _is_numeric_2d(v)}
        if not cands:
            found = {k or "<array>": getattr(v, "shape", None) for k, v in arrays.items()}
            raise CLIError(f"{path} holds no 2-D numeric matrix (found {found})")
        key = max(cands, key=lambda k: cands[k].shape[0] * cands[k].shape[1])
        raw = cands[key]
    data = _as_matrix(raw, str(path), transpose)
    others = {k: v for k, v in arrays.items() if k != key and k != ""}
    return Matrix(data, arrays=others)


# --- text folders -------------------------------------------------------------------------------------------------

DEFAULT_TEXT_PARAMS = {
    "lowercase": True,
    "token_pattern": r"(?u)\b\w\w+\b",
    "stop_words": "english",
    "min_df": 1,
    "max_df": 1.0,
    "max_features": None,
    "sublinear_tf": False,
    "norm": "l2",
}


def _sklearn_text():
    try:
        from sklearn.feature_extraction import text
    except ImportError as e:
        raise CLIError(TEXT_INSTALL_HINT) from e
    return text


def _text_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise CLIError(f"input {str(folder)!r} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".txt" and p.is_file())
    if not files:
        raise CLIError(f"folder {str(folder)!r} holds no .txt documents (one plain-text document per .txt file)")
    return files


def _read_documents(files: list[Path]) -> list[str]:
    docs = []
    for p in files:
        try:
            docs.append(p.read_text(encoding="utf-8", errors="replace"))
        except OSError as e:
            raise CLIError(f"cannot read {p}: {e.strerror or e}") from e
    return docs


def _tfidf(counts, idf: np.ndarray, params: dict):
    """tf-idf rows from term counts, exactly as sklearn's TfidfTransformer: tf (* idf), then row normalisation."""
    import scipy.sparse
    from sklearn.preprocessing import normalize

    X = scipy.sparse.csr_matrix(counts, dtype=np.float64)
    if params.get("sublinear_tf"):
        np.log(X.data, X.data)
        X.data += 1
    X = X @ scipy.sparse.diags(idf)
    if params.get("norm"):
        X = normalize(X, norm=params["norm"], copy=False)
    return scipy.sparse.csr_matrix(X)


def read_text_folder(folder, *, text: TextModel | None = None, **params) -> Matrix:
    """A folder of .txt documents -> tf-idf documents x words (sparse CSR), rows in sorted file-name order.

    Without ``text``: fit a ``TfidfVectorizer`` with ``params`` (see ``DEFAULT_TEXT_PARAMS``); its vocabulary
    and idf come back in ``Matrix.text``. With ``text`` (a saved :class:`TextModel`): vectorise against that
    vocabulary and those idf weights, so new documents land in the fitted model's columns.
    """
    folder = Path(folder)
    files = _text_files(folder)
    sk = _sklearn_text()
    docs = _read_documents(files)
    names = [p.name for p in files]
    if text is None:
        unknown = set(params) - set(DEFAULT_TEXT_PARAMS)
        if unknown:
            raise TypeError(f"read_text_folder: unknown vectorizer settings {sorted(unknown)}")
        p = {**DEFAULT_TEXT_PARAMS, **params}
        vec = sk.TfidfVectorizer(lowercase=p["lowercase"], token_pattern=p["token_pattern"],
                                 stop_words=p["stop_words"], min_df=p["min_df"], max_df=p["max_df"],
                                 max_features=p["max_features"], sublinear_tf=p["sublinear_tf"], norm=p["norm"],
                                 dtype=np.float64)
        try:
            data = vec.fit_transform(docs)
        except ValueError as e:  # e.g. "empty vocabulary; perhaps the documents only contain stop words"
            raise CLIError(f"cannot build a vocabulary from {len(files)} documents in {str(folder)!r}: {e}") from e
        vocabulary = [str(w) for w in vec.get_feature_names_out()]
        text = TextModel(vocabulary, np.asarray(vec.idf_, dtype=np.float64), p)
        data = _csr(data)
    else:
        p = text.params
        vec = sk.CountVectorizer(lowercase=p.get("lowercase", True),
                                 token_pattern=p.get("token_pattern", DEFAULT_TEXT_PARAMS["token_pattern"]),
                                 stop_words=p.get("stop_words"), vocabulary=list(text.vocabulary))
        data = _tfidf(vec.transform(docs), np.asarray(text.idf, dtype=np.float64), p)
    data.eliminate_zeros()
    return Matrix(data, vocabulary=list(text.vocabulary), documents=names, text=text)


def _csr(m):
    """float64 CSR with sorted indices."""
    import scipy.sparse

    out = scipy.sparse.csr_matrix(m, dtype=np.float64)
    out.sort_indices()
    return out


# --- vocabulary, labels, masks ------------------------------------------------------------------------------------


def _words_from_array(raw, where: str) -> list[str]:
    flat = np.asarray(raw, dtype=object).reshape(-1) if np.asarray(raw).ndim <= 1 or 1 in np.shape(raw) else None
    if flat is None:
        raise CLIError(f"{where}: expected a 1-D list of words, got an array of shape {np.shape(raw)}")
    words = []
    for w in flat:  # MATLAB cell arrays load as object arrays of 1-element string arrays
        while isinstance(w, np.ndarray):
            if w.size != 1:
                raise CLIError(f"{where}: a cell holds {w.size} strings, expected one word per cell")
            w = w.reshape(-1)[0]
        if not isinstance(w, (str, np.str_)):
            raise CLIError(f"{where}: entries must be strings, got {type(w).__name__}")
        words.append(str(w).strip())
    return words


def read_vocabulary(value: str, n_words: int, arrays: dict | None = None) -> list[str]:
    """--vocabulary: a text file with one word per line (or a .npy of strings), or a variable of the .mat / .npz
    input. Its length must equal the number of words (columns)."""
    arrays = arrays or {}
    path = Path(value)
    if path.is_file():
        if path.suffix.lower() == ".npy":
            try:
                words = _words_from_array(np.load(path, allow_pickle=False), f"--vocabulary {value}")
            except (OSError, ValueError) as e:
                raise CLIError(f"cannot read --vocabulary {value}: {str(e).splitlines()[0]}") from e
        else:
            try:
                lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError as e:
                raise CLIError(f"cannot read --vocabulary {value}: {e.strerror or e}") from e
            while lines and not lines[-1].strip():
                lines.pop()
            words = [w.strip() for w in lines]
    elif value in arrays:
        words = _words_from_array(arrays[value], f"--vocabulary {value}")
    else:
        hint = f" nor a variable of the input ({', '.join(sorted(arrays))})" if arrays else ""
        raise CLIError(f"--vocabulary {value!r} is not a file{hint}")
    if len(words) != n_words:
        raise CLIError(f"--vocabulary {value} has {len(words)} words but the data has {n_words} words (columns)"
                       + (" (documents must be rows: --transpose?)" if words else ""))
    return words


def _read_column(value: str, n: int, what: str, arrays: dict | None) -> np.ndarray:
    """One number per document from a text file (one per line), a .npy, or a variable of the input."""
    arrays = arrays or {}
    path = Path(value)
    if path.is_file():
        if path.suffix.lower() == ".npy":
            try:
                raw = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as e:
                raise CLIError(f"cannot read {what} {value}: {str(e).splitlines()[0]}") from e
        else:
            try:
                lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError as e:
                raise CLIError(f"cannot read {what} {value}: {e.strerror or e}") from e
            while lines and not lines[-1].strip():
                lines.pop()
            vals = []
            for i, line in enumerate(lines, 1):
                try:
                    vals.append(int(line.strip()))
                except ValueError:
                    raise CLIError(f"{what} {value}, line {i}: expected one integer per line, got {line.strip()!r}")
            raw = np.asarray(vals, dtype=np.int64)
    elif value in arrays:
        raw = arrays[value]
        if hasattr(raw, "toarray"):
            raw = raw.toarray()
    else:
        raise CLIError(f"{what} {value!r} is not a file" + (" nor a variable of the input" if arrays else ""))
    raw = np.asarray(raw)
    if raw.ndim > 1 and sum(s != 1 for s in raw.shape) <= 1:
        raw = raw.reshape(-1)
    if raw.ndim != 1:
        raise CLIError(f"{what} {value}: expected one value per document, got an array of shape {raw.shape}")
    if raw.dtype == bool:
        raw = raw.astype(np.int64)
    if not (np.issubdtype(raw.dtype, np.integer) or np.issubdtype(raw.dtype, np.floating)):
        raise CLIError(f"{what} {value}: expected integers, got dtype {raw.dtype}")
    if np.issubdtype(raw.dtype, np.floating) and not (np.isfinite(raw).all() and (raw == np.round(raw)).all()):
        raise CLIError(f"{what} {value}: expected integers, got non-integer values")
    if raw.size != n:
        raise CLIError(f"{what} {value} has {raw.size} entries but the data has {n} documents (one per document)")
    return raw.astype(np.int64)


def read_labels(value: str, n_documents: int, arrays: dict | None = None) -> np.ndarray:
    """--labels: one integer class per document (0, 1, ...; -1 = label unknown). Returns (documents,) int64."""
    y = _read_column(value, n_documents, "--labels", arrays)
    if y.size and y.min() < -1:
        bad = np.flatnonzero(y < -1)
        raise CLIError(f"--labels {value}: classes must be >= 0 (or -1 for unknown); {bad.size} are not, the first "
                       f"at documents {describe_indices(bad)}")
    if not (y >= 0).any():
        raise CLIError(f"--labels {value}: no document has a known label (all are -1)")
    return y


def read_label_mask(value: str, n_documents: int, arrays: dict | None = None) -> np.ndarray:
    """--label-mask: 1 = the document's label is used for training, 0 = it is held out. Returns (documents,) bool."""
    m = _read_column(value, n_documents, "--label-mask", arrays)
    if not np.isin(m, (0, 1)).all():
        raise CLIError(f"--label-mask {value}: expected 0 or 1 per document, got values {sorted(set(m.tolist()))[:5]}")
    return m.astype(bool)


def empty_rows(data) -> np.ndarray:
    """Indices of all-zero rows (documents without a single nonzero word weight)."""
    import scipy.sparse

    if scipy.sparse.issparse(data):
        return np.flatnonzero(np.diff(scipy.sparse.csr_matrix(data).indptr) == 0)
    return np.flatnonzero(~np.asarray(data != 0).any(axis=1))
