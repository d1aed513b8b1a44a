"""The 20 Newsgroups benchmark of the Multi-HNTF paper (Vendrow, Haddock, Needell, ICASSP 2022), from the raw corpus.

The paper's table compares two-layer hierarchies (ranks 10 -> 6) on 1000 training documents of 10 newsgroups
grouped into 6 superclasses: reconstruction loss ||X - A S||_F (absolute) and the accuracy of a least-squares
classifier on the second layer's codes. This module rebuilds its data exactly as the paper's notebook did
(protocols §5.1), with scikit-learn's own ``fetch_20newsgroups`` fed offline from the ``20news-bydate`` archive,
and holds the pieces of its protocol (§5.2-5.3)::

    from neuralnmf.datasets import load_news20
    data = load_news20("../shared/data/20news-bydate.tar.gz")
    data.x            # (1000, 45534) sparse tf-idf, documents x words, unit-norm rows (25 documents are empty)
    data.y            # (1000,) superclass 0..5; data.y_fine: newsgroup 0..9
    data.label_mask   # (1000,) bool, 750 labeled: the first 75 documents of each newsgroup's block

Steps (the notebook's, in order):

1. ``fetch_20newsgroups(subset="train", categories=CATEGORIES, remove=("headers", "footers", "quotes"))`` with its
   defaults ``shuffle=True, random_state=42``. The archive is turned into the cache file that scikit-learn's own
   download step writes (``load_files`` of both splits, pickled and zlib-compressed, named as the installed
   scikit-learn expects), in a ``data_home`` that this module owns; nothing is downloaded.
2. Digits removed (``re.sub(r"\\d+", "", doc)``); 3. stop words: NLTK's English list plus
   :data:`EXTRA_STOP_WORDS`; 4. ``TfidfVectorizer(stop_words=...)`` with its defaults, fit on all 5616 training
   documents of the 10 newsgroups.
5. Labels: the notebook's loop skips the last document, whose label stays 0 (kept; harmless, it is never among
   the first 100 of its class). Superclasses: :data:`SUPERCLASS_OF`.
6. The first ``per_class`` documents of each newsgroup in that order; 7. sorted by newsgroup with
   ``np.argsort``'s default (unstable) sort **as numpy 1.x ran it** (:func:`argsort_numpy1`: numpy >= 1.25 sorts
   with SIMD code on AVX-512/AVX2 machines and orders equal labels differently, which changes the split);
8. in each block of ``per_class`` documents the first ``int(labeled_fraction * per_class)`` are labeled.

Metrics (§5.3) are in :mod:`neuralnmf.metrics`: :func:`~neuralnmf.metrics.frobenius_error` (absolute
||X - A S||_F, sparse X never densified) and :func:`~neuralnmf.metrics.protocol_accuracy` (§1.8: B = (Y ⊙ L)
pinv(S) fitted with the unlabeled documents' targets set to zero, scored on the unlabeled documents). Model: :func:`multi_hntf_matrix`, the paper's matrix Multi-HNTF layer
``run_HNMF_(un)supervised_single`` (X ~ (A W)(W^T S), W shared), in closed Gram form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .._checks import check_dtype
from .files import scipy_to_torch
from .news20_archive import ARCHIVE_NAME, CACHE_DIR_ENV, check_archive, sklearn_data_home
from .numpy1_sort import argsort_numpy1

__all__ = [
    "News20",
    "load_news20",
    "sklearn_data_home",
    "load_stop_words",
    "argsort_numpy1",
    "first_per_class",
    "block_label_mask",
    "CATEGORIES",
    "SUPERCLASS_OF",
    "SUPERCLASS_NAMES",
    "EXTRA_STOP_WORDS",
    "REMOVE",
    "ARCHIVE_NAME",
    "STOP_WORDS_NAME",
    "CACHE_DIR_ENV",
]

STOP_WORDS_NAME = "nltk_english_stopwords.txt"

CATEGORIES = (
    "comp.graphics",
    "comp.sys.mac.hardware",
    "misc.forsale",
    "rec.motorcycles",
    "rec.sport.baseball",
    "sci.med",
    "sci.space",
    "talk.politics.guns",
    "talk.politics.mideast",
    "talk.religion.misc",
)
"""The paper's 10 newsgroups, in scikit-learn's label order (alphabetical)."""

SUPERCLASS_OF = (0, 0, 1, 2, 2, 3, 3, 4, 4, 5)
"""Superclass of each newsgroup in :data:`CATEGORIES` (the notebook's ``labels`` dict)."""

SUPERCLASS_NAMES = ("comp", "forsale", "rec", "sci", "politics", "religion")

EXTRA_STOP_WORDS = (
    "thanks", "edu", "also", "would", "one", "could", "please", "really", "many", "anyone", "good", "right", "get",
    "even", "want", "must", "something", "well", "much", "still", "said", "stay", "away", "first", "looking",
    "things", "try", "take", "look", "make", "may", "include", "thing", "like", "two", "or", "etc", "phone", "oh",
    "email",
)
"""Stop words the notebook appends to NLTK's English list."""

REMOVE = ("headers", "footers", "quotes")

# --- protocol pieces ------------------------------------------------------------------------------------------------


def load_stop_words(path=None, archive=None) -> list[str]:
    """NLTK's English stop words (one per line in ``path``) followed by :data:`EXTRA_STOP_WORDS`.

    ``path`` None: ``nltk_english_stopwords.txt`` beside the archive, else NLTK's own corpus when ``nltk`` and its
    ``stopwords`` data are installed. The notebook used ``nltk.corpus.stopwords.words('english')`` (179 words since
    2019).
    """
    words = None
    if path is None and archive is not None:
        beside = Path(archive).parent / STOP_WORDS_NAME
        if beside.is_file():
            path = beside
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"load_news20: stop-word list {str(path)!r} does not exist (NLTK's English list, "
                                    "one word per line: nltk.corpus.stopwords.words('english'))")
        words = [w.strip() for w in path.read_text(encoding="utf-8").splitlines() if w.strip()]
    else:
        try:
            from nltk.corpus import stopwords

            words = list(stopwords.words("english"))
        except (ImportError, LookupError):
            raise FileNotFoundError(
                f"load_news20: no stop-word list: put {STOP_WORDS_NAME} (NLTK's English stop words, one per line, as "
                "nltk.corpus.stopwords.words('english') returns them) beside the archive, pass stop_words=path, or "
                "install nltk with its 'stopwords' data") from None
    return words + list(EXTRA_STOP_WORDS)


def first_per_class(labels, per_class: int, num_classes: int) -> np.ndarray:
    """Positions of the first ``per_class`` documents of every class 0..num_classes-1, in document order."""
    labels = np.asarray(labels)
    count = np.zeros(num_classes, dtype=np.int64)
    keep = []
    for i, c in enumerate(labels.tolist()):
        if count[c] < per_class:
            count[c] += 1
            keep.append(i)
    short = [c for c in range(num_classes) if count[c] < per_class]
    if short:
        raise ValueError(f"load_news20: classes {short} have fewer than per_class={per_class} documents "
                         f"(counts {count.tolist()})")
    return np.asarray(keep, dtype=np.int64)


def block_label_mask(num_classes: int, per_class: int, labeled_fraction: float) -> np.ndarray:
    """(num_classes * per_class,) bool: in each block of ``per_class`` the first ``int(fraction * per_class)``."""
    mask = np.zeros(num_classes * per_class, dtype=bool)
    n_lab = int(labeled_fraction * per_class)
    for c in range(num_classes):
        mask[c * per_class : c * per_class + n_lab] = True
    return mask


@dataclass(frozen=True, repr=False)
class News20:
    """The 20 Newsgroups subsample of the Multi-HNTF paper, batch first (documents x words).

    Attributes:
        x: (documents, words) tf-idf, torch sparse COO (coalesced); the transpose of the paper's X. Rows are
            unit-norm except for documents left empty by the preprocessing (25 of the published 1000).
        y: (documents,) long superclass 0 .. len(superclasses) - 1, the labels the table is scored on.
        y_fine: (documents,) long newsgroup 0 .. len(categories) - 1 (the first layer's supervision).
        label_mask: (documents,) bool, True = labeled (the 75/25 split).
        vocabulary: one word per column of x (the vectorizer's vocabulary over all training documents of the
            categories, so some words occur in no selected document).
        categories, superclasses: names; superclass_of: the superclass of each category.
        doc_ids: (documents,) position of each document in ``fetch_20newsgroups``' training order (the record of
            the permutation protocols §5.5 asks for); doc_names: ``20news-bydate-train/<category>/<file>``.
        stop_words: the list given to the vectorizer.
    """

    x: torch.Tensor
    y: torch.Tensor
    y_fine: torch.Tensor
    label_mask: torch.Tensor
    vocabulary: list[str]
    categories: tuple[str, ...]
    superclasses: tuple[str, ...]
    superclass_of: tuple[int, ...]
    doc_ids: np.ndarray
    doc_names: list[str]
    stop_words: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        """Superclasses (6 in the paper)."""
        return len(self.superclasses)

    @property
    def num_fine_classes(self) -> int:
        return len(self.categories)

    def present_words(self) -> torch.Tensor:
        """(n,) long indices of the words (columns of x) that occur in at least one document."""
        return torch.unique(self.x.indices()[1])

    def dense(self, words: torch.Tensor | None = None) -> torch.Tensor:
        """x as a dense (documents, len(words)) tensor of the chosen columns (default: all; 1000 x 45534 float64
        is 364 MB, ``present_words()`` keeps 19037 columns)."""
        if words is None:
            return self.x.to_dense()
        words = torch.as_tensor(words, dtype=torch.long)
        remap = torch.full((self.x.shape[1],), -1, dtype=torch.long)
        remap[words] = torch.arange(words.numel())
        rows, cols = self.x.indices()
        new = remap[cols]
        keep = new >= 0
        out = torch.zeros(self.x.shape[0], words.numel(), dtype=self.x.dtype)
        out[rows[keep], new[keep]] = self.x.values()[keep]
        return out

    def __repr__(self) -> str:
        return (f"News20(x: {tuple(self.x.shape)} sparse {self.x.dtype} with {self.x.values().numel()} nonzeros, "
                f"{self.num_fine_classes} newsgroups -> {self.num_classes} superclasses, "
                f"{int(self.label_mask.sum())} labeled)")


def load_news20(
    archive=None,
    *,
    stop_words=None,
    data_home=None,
    categories=CATEGORIES,
    superclass_of=None,
    superclass_names=None,
    per_class: int = 100,
    labeled_fraction: float = 0.75,
    order: str = "numpy1",
    dtype=torch.float64,
) -> News20:
    """The data of the Multi-HNTF paper's 20 Newsgroups table, rebuilt from the raw archive (no download).

    Args:
        archive: path of ``20news-bydate.tar.gz``; None: ``$NEURALNMF_DATA_DIR`` or ``../shared/data``.
        stop_words: path of NLTK's English stop-word list (one per line), or a list of words used as they are
            (nothing appended); None: ``nltk_english_stopwords.txt`` beside the archive, else NLTK's corpus.
            :data:`EXTRA_STOP_WORDS` are appended to a list read from a file or NLTK.
        data_home: where the scikit-learn cache of the archive goes (see :func:`sklearn_data_home`).
        categories: newsgroups to load (default the paper's 10; their label order is alphabetical, as
            scikit-learn's).
        superclass_of, superclass_names: the grouping; default the paper's for the paper's categories, else
            every category its own superclass.
        per_class: documents kept per newsgroup (the first ones in dataset order); labeled_fraction: the labeled
            share of each newsgroup's block.
        order: how the kept documents are sorted by newsgroup: "numpy1" (default) numpy 1.x's unstable argsort,
            the published order (:func:`argsort_numpy1`); "stable": each block keeps dataset order.
        dtype: of x.

    Returns:
        :class:`News20`.

    Raises:
        FileNotFoundError: the archive or the stop-word list is missing (the message says what to get).
        ValueError: a newsgroup with fewer than ``per_class`` documents; bad arguments.
    """
    check_dtype(dtype, "load_news20")
    if order not in ("numpy1", "stable"):
        raise ValueError(f"load_news20: order must be 'numpy1' or 'stable', got {order!r}")
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise ValueError(f"load_news20: per_class must be a positive int, got {per_class!r}")
    if not 0 <= labeled_fraction <= 1:
        raise ValueError(f"load_news20: labeled_fraction must be in [0, 1], got {labeled_fraction!r}")
    categories = tuple(sorted(categories))
    if not categories:
        raise ValueError("load_news20: categories must name at least one newsgroup")
    if superclass_of is None:
        if categories == CATEGORIES:
            superclass_of, default_names = SUPERCLASS_OF, SUPERCLASS_NAMES
        else:
            superclass_of, default_names = tuple(range(len(categories))), categories
        superclass_names = default_names if superclass_names is None else superclass_names
    superclass_of = tuple(int(s) for s in superclass_of)
    if len(superclass_of) != len(categories):
        raise ValueError(f"load_news20: superclass_of needs one entry per category ({len(categories)}), "
                         f"got {len(superclass_of)}")
    n_super = max(superclass_of) + 1
    if superclass_names is None:
        superclass_names = tuple(str(i) for i in range(n_super))
    superclass_names = tuple(superclass_names)
    if sorted(set(superclass_of)) != list(range(n_super)) or len(superclass_names) != n_super:
        raise ValueError(f"load_news20: superclass_of must use every superclass 0..{n_super - 1} and "
                         f"superclass_names must name each, got {superclass_of} and {superclass_names}")

    archive = check_archive(archive)
    if isinstance(stop_words, (list, tuple)):
        words = list(stop_words)
    else:
        words = load_stop_words(stop_words, archive)
    home = sklearn_data_home(archive, data_home)
    from sklearn.datasets import fetch_20newsgroups
    from sklearn.feature_extraction.text import TfidfVectorizer

    bunch = fetch_20newsgroups(data_home=str(home), subset="train", categories=list(categories), remove=REMOVE,
                               download_if_missing=False)
    missing = sorted(set(categories) - set(bunch.target_names))
    if missing:
        raise ValueError(f"load_news20: the archive has no training documents of {missing}")
    docs = [re.sub(r"\d+", "", doc) for doc in bunch.data]
    vectorizer = TfidfVectorizer(stop_words=words)
    tfidf = vectorizer.fit_transform(docs).tocsr()
    target = np.asarray(bunch.target, dtype=np.int64).copy()
    target[-1] = 0  # the notebook's loop `for i in range(n - 1)` never sets the last label

    keep = first_per_class(target, per_class, len(categories))
    fine = target[keep]
    perm = argsort_numpy1(fine) if order == "numpy1" else np.argsort(fine, kind="stable")
    keep, fine = keep[perm], fine[perm]
    mask = block_label_mask(len(categories), per_class, labeled_fraction)


    names = [Path(f).parts[-3:] for f in bunch.filenames[keep]]
    return News20(
        x=scipy_to_torch(tfidf[keep], dtype=dtype),
        y=torch.as_tensor(np.asarray(superclass_of, dtype=np.int64)[fine]),
        y_fine=torch.as_tensor(fine),
        label_mask=torch.as_tensor(mask),
        vocabulary=[str(w) for w in vectorizer.get_feature_names_out()],
        categories=categories,
        superclasses=superclass_names,
        superclass_of=superclass_of,
        doc_ids=keep,
        doc_names=["/".join(p) for p in names],
        stop_words=words,
    )
