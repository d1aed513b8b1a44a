"""The raw 20 Newsgroups archive (``20news-bydate.tar.gz``) as scikit-learn's own cache, so that scikit-learn's
``fetch_20newsgroups`` reads it offline: the very documents, order and header/footer/quote stripping it gives after
its own download.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
from pathlib import Path

from .files import find_data_file

__all__ = ["sklearn_data_home", "ARCHIVE_NAME", "CACHE_DIR_ENV", "check_archive"]

ARCHIVE_NAME = "20news-bydate.tar.gz"
CACHE_DIR_ENV = "NEURALNMF_CACHE_DIR"
"""Environment variable naming the folder under which the scikit-learn cache of the archive is written
(default ``~/.cache/neuralnmf``)."""

HOW_TO_GET = (
    "it is the '20news-bydate' archive of the 20 Newsgroups corpus (Jason Rennie's 20 Newsgroups page), the file "
    "scikit-learn's fetch_20newsgroups downloads; pass its path, or put it in the folder named by $NEURALNMF_DATA_DIR"
)


def _sklearn_names():
    """(cache path function, cache name, train folder, test folder) of the installed scikit-learn."""
    try:
        from sklearn.datasets import _twenty_newsgroups as tn
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("load_news20 needs scikit-learn (pip install scikit-learn, or pip install "
                          "'torch-neuralnmf[text]')") from exc
    cache_name = getattr(tn, "CACHE_NAME", "20news-bydate.pkz")
    path_of = getattr(tn, "_pkl_filepath", None)
    if path_of is None:  # pragma: no cover - older/newer scikit-learn layouts
        def path_of(home, name):
            base, ext = os.path.splitext(name)
            return os.path.join(home, base + "_py3" + ext)
    return path_of, cache_name, getattr(tn, "TRAIN_FOLDER", "20news-bydate-train"), \
        getattr(tn, "TEST_FOLDER", "20news-bydate-test")


def check_archive(archive) -> Path:
    if archive is None:
        found = find_data_file(ARCHIVE_NAME)
        if found is None:
            raise FileNotFoundError(f"load_news20: no archive given and {ARCHIVE_NAME} is not in $NEURALNMF_DATA_DIR "
                                    f"or ../shared/data; {HOW_TO_GET}")
        return found
    path = Path(archive)
    if not path.is_file():
        raise FileNotFoundError(f"load_news20: archive {str(path)!r} does not exist; {HOW_TO_GET}")
    return path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _extract(archive: Path, target: Path) -> None:
    with tarfile.open(archive, "r:gz") as tar:
        try:
            tar.extractall(target, filter="data")
        except TypeError:  # pragma: no cover - Python without extraction filters
            tar.extractall(target)


def sklearn_data_home(archive=None, data_home=None) -> Path:
    """A scikit-learn ``data_home`` whose 20 Newsgroups cache holds ``archive``: pass it to ``fetch_20newsgroups``.

    The cache is what scikit-learn's own download step writes: the archive extracted, then
    ``dict(train=load_files(train_dir, encoding="latin1"), test=load_files(test_dir, encoding="latin1"))``,
    pickled and zlib-compressed, under the file name the installed scikit-learn reads (``20news-bydate_py3.pkz``
    today). ``fetch_20newsgroups(data_home=...)`` then never downloads. The archive may hold the two split
    folders at its top level (the original) or under one folder (``20news-bydate/``).

    Args:
        archive: path of ``20news-bydate.tar.gz``; None: :func:`neuralnmf.datasets.find_data_file`.
        data_home: folder for the cache; default ``$NEURALNMF_CACHE_DIR`` (or ``~/.cache/neuralnmf``)
            ``/20news/<first 16 hex digits of the archive's SHA-256>``, so another archive gets another cache.
            An existing cache there is reused as it is.

    Returns:
        The data_home (created when needed). The cache file is written atomically (safe with parallel callers).

    Raises:
        FileNotFoundError: the archive is missing (the message says what it is and where it comes from), or it
            holds no ``20news-bydate-train`` / ``20news-bydate-test`` folders.
    """
    archive = check_archive(archive)
    path_of, cache_name, train_folder, test_folder = _sklearn_names()
    if data_home is None:
        root = Path(os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "neuralnmf")
        data_home = root / "20news" / _sha256(archive)[:16]
    home = Path(data_home)
    home.mkdir(parents=True, exist_ok=True)
    cache_path = Path(path_of(str(home), cache_name))
    if cache_path.is_file():
        return home
    from sklearn.datasets import load_files

    work = Path(tempfile.mkdtemp(prefix="extract-", dir=home))
    try:
        _extract(archive, work)
        roots = [work, *sorted(p for p in work.iterdir() if p.is_dir())]
        base = next((r for r in roots if (r / train_folder).is_dir() and (r / test_folder).is_dir()), None)
        if base is None:
            raise FileNotFoundError(f"sklearn_data_home: {archive} holds no {train_folder}/ and {test_folder}/ folders "
                                    f"(at its top level or one folder down); {HOW_TO_GET}")
        cache = dict(train=load_files(str(base / train_folder), encoding="latin1"),
                     test=load_files(str(base / test_folder), encoding="latin1"))
        blob = codecs.encode(pickle.dumps(cache), "zlib_codec")
        fd, tmp = tempfile.mkstemp(prefix="cache-", dir=home)
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.replace(tmp, cache_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return home
