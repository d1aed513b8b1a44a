"""Data: generated corpora and tensors with known hierarchies, the papers' data files, your own data matrices and
text, and the 20 Newsgroups benchmark. Everything is batch first like the models: ``x`` is (samples, features) =
(documents, words), the transpose of the papers' words x documents matrices.

* ``synthetic``: the Neural NMF paper's hierarchical toy corpus, generated; label masks.
* ``planted``: planted topic hierarchies of any size, dense or sparse Poisson counts.
* ``tensors``: the tensor papers' synthetic block tensor and nested-block tensors.
* ``toy``: the toy table of Table 1 from its .mat file.
* ``files``: the one reader of .mat / .npz / .npy files, word lists and label columns; ``load_matrix``; .npz shards.
* ``text``: folders of plain text to tf-idf rows (scikit-learn).
* ``news20``, ``news20_archive``, ``numpy1_sort``: the Multi-HNTF paper's 20 Newsgroups set from the raw archive.
"""

from .files import DATA_DIR_ENV, Corpus, NpzShards, find_data_file, load_matrix, scipy_to_torch
from .news20 import News20, load_news20
from .planted import make_planted_corpus
from .synthetic import HierarchicalCorpus, make_hierarchical_corpus, random_label_mask
from .tensors import TensorHierarchy, make_block_tensor, make_hierarchical_tensor, make_synthetic_tensor
from .text import TextModel, read_text_folder
from .toy import load_toy_table

__all__ = [
    "HierarchicalCorpus",
    "Corpus",
    "make_hierarchical_corpus",
    "make_planted_corpus",
    "load_toy_table",
    "load_matrix",
    "random_label_mask",
    "find_data_file",
    "DATA_DIR_ENV",
    "NpzShards",
    "scipy_to_torch",
    "make_synthetic_tensor",
    "make_hierarchical_tensor",
    "make_block_tensor",
    "TensorHierarchy",
    "load_news20",
    "News20",
    "TextModel",
    "read_text_folder",
]
