"""The argument parser of `python -m neuralnmf`: the commands, their options, and the help that says what every
default is and why."""

from __future__ import annotations

import argparse

from .._version import __version__
from ..classifiers import HEAD_FORMS
from ..holdout import DEFAULT_VALIDATION
from ..initialization import INIT_METHODS
from ..losses import LOSS_TERMS
from ..tree_start import DEFAULT_MIN_CHILDREN
from ..train import DEFAULT_EPOCHS, DEFAULT_LAM, DEFAULT_LOSS, DEFAULT_LR
from .demos import nnls_demo, topic_model_demo
from .fit import run_fit
from .transform import run_transform

__all__ = ["build_parser", "DESCRIPTION"]

DESCRIPTION = """\
Command line: `python -m neuralnmf demo` trains a hierarchical topic model on a generated corpus in seconds;
`python -m neuralnmf nnls-demo` shows the exact, differentiable NNLS operator it is built on;
`python -m neuralnmf fit` turns your documents into a topic hierarchy, and `transform` gives new documents their
topic codes. `python -m neuralnmf COMMAND --help` explains each command."""

DTYPE_NAMES = ("float32", "float64")

FIT_DESCRIPTION = """\
Fit a hierarchical topic model (Neural NMF) to a corpus and write its topic hierarchy.

INPUT is a documents x words matrix: documents are ROWS, words (features) are COLUMNS.
  FILE.npz  a scipy.sparse matrix saved by scipy.sparse.save_npz: kept sparse from end to end
            (or numpy.savez arrays: the largest 2-D one, or --key NAME)
  FILE.mat  MATLAB v5/v7: the variable --key NAME, default the largest 2-D numeric one (sparse stays sparse)
  FILE.npy  a dense 2-D numpy array
  FOLDER    plain-text documents, one per .txt file, read in sorted file-name order and turned into tf-idf
            rows by scikit-learn's TfidfVectorizer (pip install scikit-learn, or pip install 'torch-neuralnmf[text]');
            the words it finds become the vocabulary
A file that stores words x documents (the papers' orientation) needs --transpose. Entries must be finite and
>= 0. Empty documents (all-zero rows) are an error, unless --drop-empty leaves them out.

The model has one layer per rank: --ranks 64 16 4 learns 64 fine topics, groups them into 16 topics, and those
into 4 broad ones. With --labels it also learns a classifier (of the deepest level, or of each LEVEL given as
--labels LEVEL=FILE): supervised, or semi-supervised when only some labels are used (--labeled-fraction,
--label-mask, or -1 in the labels file). `transform` then also writes each document's predicted class.

The defaults are those of the Python API (neuralnmf.NeuralNMF and neuralnmf.fit) and were chosen on real corpora:
  --init nmf            every level starts at the flat NMF of its rank (exact alternating NNLS from NNDSVD; a
                        sparse input is never densified), so each level fits as well as flat NMF before training
  --min-children 2      levels above the first (without labels) are trees: their topics group the level below by
                        similarity, each child feeding one parent, at least 2 children per parent; without it
                        parents copy one child and one topic holds half the corpus (--no-tree: the papers' dense
                        dictionaries; docs/topic_quality.md)
  --loss hierarchical   every level reconstructs the data: sum_l ||X - A_0..A_l S_l||^2 / ||X||^2. The papers'
                        energy loss (--loss energy) has a scale escape that collapses the topics on real
                        vocabularies; it is kept for reproducing the papers
  --lr 0.01             Adam, relative to each dictionary's scale: every step moves a dictionary by about 1%
  --classifier logistic softmax regression on the codes of the labeled level and the finer ones, started at the
                        logistic regression of the start's codes: on 20 Newsgroups it classifies documents it never
                        saw better than NMF + logistic regression and than the papers' least-squares classifier
                        (docs/supervision.md)
  --lam 1 (logistic)    the label weight of the papers' ||X - A S||^2 + lam (label loss summed over documents);
                        0.3 for --classifier papers
  --validation 0.1      a tenth of the labeled documents is held out of the label term: it chooses the
                        classifier's weight decay and the epoch whose parameters are kept (training stops 100
                        epochs after the best); the choice is printed and kept in metrics.json
  --dtype float32       torch's default; float64 halves the speed and is rarely needed for text

The output folder (--out) receives:
  model.pt        the model: neuralnmf.load(path) in Python (weights_only); what `transform` reads
  topics.md       the top words of every topic at every level, and the topic tree
  metrics.json    relative error ||X - A_0..A_l S_l|| / ||X|| per level; with labels, the accuracy of the learned
                  classifier and of the least-squares classifier on labeled and unlabeled documents
  loss.png        the training loss per epoch
  hierarchy.png   the topic hierarchy as a graph
  layers.png      data and reconstructions as heatmaps (only when documents x words <= 1 million)
  vocabulary.txt  the words, one per line (text folders, or --vocabulary)
  documents.txt   the file behind each row (text folders)
"""

FIT_EPILOG = """\
examples:
  python -m neuralnmf fit corpus.npz --ranks 64 16 4 --vocabulary words.txt --out topics_run
  python -m neuralnmf fit my_texts/ --ranks 20 5 --epochs 300 --out text_run
  python -m neuralnmf fit corpus.npz --ranks 9 4 2 --labels labels.txt --labeled-fraction 0.3
  python -m neuralnmf transform topics_run new_docs.npz --out new_codes.npy
"""

TRANSFORM_DESCRIPTION = """\
Topic codes of documents under a model written by `fit`: its dictionaries stay fixed, and each document gets the
exact nonnegative least-squares fit of its words by the topics.

INPUT takes the formats of `fit` (documents are rows); its words (columns) must be those the model was fitted on.
A folder of .txt files is vectorised with the vocabulary and idf weights that `fit` saved in model.pt, so words
the model never saw are ignored. Writes a documents x k float array as .npy (k = topics of level --depth; rows
in the input's order, sorted file names for a folder) and prints a summary. Empty documents get zero codes.
"""

TRANSFORM_EPILOG = """\
examples:
  python -m neuralnmf transform topics_run new_docs.npz --out new_codes.npy
  python -m neuralnmf transform text_run more_texts/ --out codes.npy --depth 0
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _rank_or_auto(text: str):
    return "auto" if text == "auto" else _positive_int(text)


def _df(text: str):
    """min_df/max_df: an integer count of documents, or a float proportion in [0, 1]."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a document count or a proportion, got {text!r}")


def _add_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--key", metavar="NAME", help="the variable holding the matrix in a .mat / .npz file "
                   "(default: the largest 2-D numeric one)")
    p.add_argument("--transpose", action="store_true", help="the file stores words x documents: transpose it")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m neuralnmf", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"neuralnmf {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("demo", help="train a 3-layer Neural NMF on a generated hierarchical corpus (seconds)")
    p.add_argument("--epochs", type=int, default=2000, help="training epochs (default: 2000)")
    p.add_argument("--lr", type=float, default=0.01, help="Adam learning rate (default: 0.01)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default: cpu)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated corpus (default: 0)")
    p.add_argument("--out", default="neuralnmf_demo", help="folder for the figures (default: ./neuralnmf_demo)")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.set_defaults(run=topic_model_demo)
    p = sub.add_parser("nnls-demo", help="the NNLS operator: solve, compare with scipy, learn a dictionary")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default: cpu)")
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    p.add_argument("--steps", type=int, default=100, help="gradient steps in part 2 (default: 100)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=nnls_demo)
    _add_fit(sub)
    _add_transform(sub)
    return parser


def _add_fit(sub) -> None:
    p = sub.add_parser("fit", help="fit a topic hierarchy to your documents (.npz, .mat, .npy or a folder of .txt)",
                       description=FIT_DESCRIPTION, epilog=FIT_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="INPUT", help="documents x words: FILE.npz, FILE.mat, FILE.npy, or a FOLDER of "
                   ".txt files (see above)")
    p.add_argument("--ranks", type=_rank_or_auto, nargs="+", required=True, metavar="K",
                   help="topics per level, finest first, e.g. --ranks 64 16 4; or 'auto': every level's rank chosen "
                   "from the data (neuralnmf.select_ranks; --levels of them), its criteria written to "
                   "rank_selection.json/.png")
    p.add_argument("--levels", type=_positive_int, default=None, metavar="L",
                   help="with --ranks auto: how many levels to choose (default: 2)")
    p.add_argument("--out", default="neuralnmf_fit", metavar="DIR",
                   help="output folder, created if needed; files in it are overwritten (default: ./neuralnmf_fit)")
    _add_input_options(p)
    g = p.add_argument_group("words and labels")
    g.add_argument("--vocabulary", metavar="FILE", help="one word per line, one line per column (or a .npy of "
                   "strings, or the name of a variable of the .mat input); names the topics' words in topics.md")
    g.add_argument("--labels", metavar="[LEVEL=]FILE", action="append",
                   help="one integer class per line (0, 1, ...), one line per document "
                   "(or a .npy, or the name of a variable of the .mat input); -1 = label unknown. "
                   "Classes: max label + 1. FILE labels the deepest level; LEVEL=FILE labels that level (0 = finest; "
                   "repeat for labels at several levels, e.g. --labels 0=newsgroup.txt --labels 1=superclass.txt; a negative LEVEL "
                   "counts from the deepest: --labels=-1=FILE)")
    lab = g.add_mutually_exclusive_group()
    lab.add_argument("--labeled-fraction", type=float, metavar="F", help="semi-supervised: train on the labels "
                     "of a random fraction F in (0, 1] of the documents (drawn with --seed); the accuracy on the "
                     "others is reported")
    lab.add_argument("--label-mask", metavar="FILE", help="semi-supervised: one 0/1 per line (or a .npy, or a "
                     "variable of the .mat input); "
                     "1 = train on this document's label, 0 = hold it out")
    g.add_argument("--drop-empty", action="store_true", help="leave out empty documents (all-zero rows) with a "
                   "warning instead of stopping; their indices go to metrics.json")
    g = p.add_argument_group("training")
    g.add_argument("--init", choices=list(INIT_METHODS), default="nmf",
                   help="how the dictionaries start: nmf (every level at the flat NMF of its rank), nndsvd/nndsvda/"
                   "nndsvdar (NNDSVD of each level's input), uniform (random, the papers') (default: nmf)")
    g.add_argument("--no-tree", dest="tree", action="store_false",
                   help="dense dictionaries above the first level (the papers') instead of a topic tree")
    g.add_argument("--min-children", type=_positive_int, default=DEFAULT_MIN_CHILDREN, metavar="N",
                   help=f"fewest children of a parent topic in a tree level (default: {DEFAULT_MIN_CHILDREN})")
    g.add_argument("--loss", choices=sorted(LOSS_TERMS), default=DEFAULT_LOSS,
                   help="hierarchical: every level reconstructs the data; reconstruction: only the deepest level "
                   "counts; energy: the papers' energy, each level fits the codes of the level below (collapses on "
                   f"real vocabularies) (default: {DEFAULT_LOSS})")
    g.add_argument("--epochs", type=_positive_int, default=DEFAULT_EPOCHS,
                   help=f"passes over the data (default: {DEFAULT_EPOCHS})")
    g.add_argument("--lr", type=float, default=DEFAULT_LR, help="Adam step relative to each dictionary's scale "
                   f"(default: {DEFAULT_LR})")
    g.add_argument("--classifier", choices=list(HEAD_FORMS), default="logistic",
                   help="logistic: softmax regression on the codes of the labeled level and the finer ones, started "
                   "at the logistic regression of the start's codes (classifies new documents best); papers: the "
                   "papers' nonnegative B on the level's codes, least squares on one-hot labels (default: logistic)")
    g.add_argument("--lam", type=float, default=None, help="weight of the label term against the data term, "
                   "as in the papers' ||X - A S||^2 + lam (label loss summed over labeled documents) (default: "
                   + ", ".join(f"{v:g} for {k}" for k, v in DEFAULT_LAM.items()) + ")")
    g.add_argument("--classification", choices=["l2", "ce"], default=None,
                   help="label loss: l2 (squared error to one-hot labels, the papers') or ce (cross-entropy) "
                   "(default: the classifier's own: ce for logistic, l2 for papers)")
    g.add_argument("--validation", type=float, default=DEFAULT_VALIDATION, metavar="F",
                   help="share of the labeled documents held out of the label term to choose the epoch and the "
                   "classifier's weight decay; 0 trains on every label for all epochs "
                   f"(default: {DEFAULT_VALIDATION:g})")
    g.add_argument("--batch-size", type=_positive_int, metavar="B",
                   help="documents per step (default: all documents at once)")
    g.add_argument("--device", default="cpu", help="torch device: cpu or cuda (default: cpu)")
    g.add_argument("--dtype", choices=list(DTYPE_NAMES), default="float32",
                   help="float32 (torch's default) or float64 (default: float32)")
    g.add_argument("--seed", type=int, default=0, help="seeds the initialization, the labeled fraction and the "
                   "batch order (default: 0)")
    g.add_argument("--top-words", type=_positive_int, default=10, metavar="N",
                   help="words per topic in topics.md (default: 10)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar (it is shown on a terminal)")
    g = p.add_argument_group("text folders (tf-idf by scikit-learn)")
    g.add_argument("--stop-words", choices=["english", "none"], default="english",
                   help="drop common English words (default: english)")
    g.add_argument("--min-df", type=_df, default=1, metavar="N|F", help="ignore words in fewer documents than this "
                   "count (int) or proportion (float) (default: 1)")
    g.add_argument("--max-df", type=_df, default=1.0, metavar="N|F", help="ignore words in more documents than "
                   "this count or proportion (default: 1.0, none)")
    g.add_argument("--max-features", type=_positive_int, metavar="N",
                   help="keep the N most frequent words (default: all)")
    p.set_defaults(run=run_fit)


def _add_transform(sub) -> None:
    p = sub.add_parser("transform", help="topic codes of documents under a fitted model (writes a .npy)",
                       description=TRANSFORM_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=TRANSFORM_EPILOG)
    p.add_argument("model_dir", metavar="MODEL_DIR", help="the output folder of `fit` (or its model.pt)")
    p.add_argument("input", metavar="INPUT", help="documents x words, as for fit")
    p.add_argument("--out", default="codes.npy", metavar="FILE",
                   help="where to write the codes (default: ./codes.npy); a model with a classifier also writes "
                   "FILE_labels.txt (one predicted class per document; _labels_level<L>.txt per labeled level) and "
                   "FILE_labels.proba.npy (class probabilities)")
    p.add_argument("--depth", type=int, metavar="D", help="level whose codes to write: 0 = finest, -1 = deepest "
                   "(default: the deepest)")
    _add_input_options(p)
    p.add_argument("--device", default="cpu", help="torch device: cpu or cuda (default: cpu)")
    p.set_defaults(run=run_transform)
