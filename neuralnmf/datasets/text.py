"""Plain text to tf-idf rows: a folder of .txt documents vectorised by scikit-learn's ``TfidfVectorizer`` (the
optional extra ``torch-neuralnmf[text]``), and the saved vocabulary and idf weights that vectorise new documents the
same way.

Documents are rows, in sorted file-name order; the matrix is a float64 scipy CSR matrix (host data: the caller turns
it into a tensor). Bad input raises ``ValueError`` (no documents, no vocabulary) or ``ImportError`` (no
scikit-learn), with what to do in the message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["TextModel", "TextCorpus", "read_text_folder", "DEFAULT_TEXT_PARAMS", "TEXT_INSTALL_HINT"]

TEXT_INSTALL_HINT = ("reading a folder of text documents needs scikit-learn: pip install scikit-learn "
                     "(or pip install 'torch-neuralnmf[text]')")


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
class TextCorpus:
    """A folder of documents as tf-idf rows.

    Attributes:
        data: (documents, words) scipy CSR matrix, float64, rows in sorted file-name order.
        vocabulary: the words, one per column.
        documents: the file names, one per row.
        text: the :class:`TextModel` that produced the rows (fitted here, or the one given).
    """

    data: object
    vocabulary: list[str]
    documents: list[str]
    text: TextModel


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
        raise ImportError(TEXT_INSTALL_HINT) from e
    return text


def _text_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise ValueError(f"input {str(folder)!r} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".txt" and p.is_file())
    if not files:
        raise ValueError(f"folder {str(folder)!r} holds no .txt documents (one plain-text document per .txt file)")
    return files


def _read_documents(files: list[Path]) -> list[str]:
    docs = []
    for p in files:
        try:
            docs.append(p.read_text(encoding="utf-8", errors="replace"))
        except OSError as e:
            raise ValueError(f"cannot read {p}: {e.strerror or e}") from e
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


def read_text_folder(folder, *, text: TextModel | None = None, **params) -> TextCorpus:
    """A folder of .txt documents -> tf-idf documents x words (sparse CSR), rows in sorted file-name order.

    Without ``text``: fit a ``TfidfVectorizer`` with ``params`` (see ``DEFAULT_TEXT_PARAMS``); its vocabulary
    and idf come back in ``TextCorpus.text``. With ``text`` (a saved :class:`TextModel`): vectorise against that
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
            raise ValueError(f"cannot build a vocabulary from {len(files)} documents in {str(folder)!r}: {e}") from e
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
    return TextCorpus(data, list(text.vocabulary), names, text)


def _csr(m):
    """float64 CSR with sorted indices."""
    import scipy.sparse

    out = scipy.sparse.csr_matrix(m, dtype=np.float64)
    out.sort_indices()
    return out
