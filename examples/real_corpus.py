"""A real corpus with the command line's defaults: 20 Newsgroups text -> topic hierarchy, checked against flat NMF.

    python examples/real_corpus.py ../shared/data/20news-bydate.tar.gz [--per-class 200] [--out real_corpus_run]

1. Writes ``--per-class`` training documents of each of 10 newsgroups (headers, footers and quotes stripped, as
   scikit-learn's ``fetch_20newsgroups`` does, fed offline from the archive) as a folder of .txt files, with their
   newsgroup in labels.txt and a seeded half of them marked for training in mask.txt.
2. Runs ``python -m neuralnmf fit`` on the folder with default settings, unsupervised (``--ranks 20 10 5``) and
   semi-supervised (``--ranks 20 10 --labels labels.txt --label-mask mask.txt``); only ranks and epochs are given.
3. Fits scikit-learn's NMF to the same tf-idf matrix at every rank (the best one can expect of each level) and a
   logistic regression on its rank-10 codes of the training half, and prints both runs' relative error per level,
   the error at the start of training, and the held-out accuracy beside those references, as a markdown table.

Every number of docs/real_corpus.md comes from this script.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def write_corpus(archive: str, folder: Path, per_class: int, seed: int) -> int:
    """The first ``per_class`` documents of each newsgroup, as .txt files in fetch order; labels and a mask."""
    from sklearn.datasets import fetch_20newsgroups

    from neuralnmf.datasets.news20 import CATEGORIES, REMOVE, sklearn_data_home

    data = fetch_20newsgroups(data_home=str(sklearn_data_home(archive)), subset="train", categories=list(CATEGORIES),
                              remove=REMOVE, download_if_missing=False)
    texts = folder / "texts"
    texts.mkdir(parents=True, exist_ok=True)
    for old in texts.glob("*.txt"):
        old.unlink()
    taken = {c: 0 for c in range(len(CATEGORIES))}
    labels = []
    for text, label in zip(data.data, data.target):
        # at least 20 letters: documents that are empty once the headers and quotes are gone say nothing
        if taken[int(label)] >= per_class or sum(ch.isalpha() for ch in text) < 20:
            continue
        (texts / f"{len(labels):05d}.txt").write_text(text, encoding="utf-8")
        labels.append(int(label))
        taken[int(label)] += 1
    labels = np.asarray(labels)
    np.savetxt(folder / "labels.txt", labels, fmt="%d")
    mask = np.zeros(labels.size, dtype=int)
    mask[np.random.default_rng(seed).permutation(labels.size)[: labels.size // 2]] = 1
    np.savetxt(folder / "mask.txt", mask, fmt="%d")
    return labels.size


def run_cli(*args) -> tuple[str, float]:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "neuralnmf", "fit", *map(str, args), "--no-progress"],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"neuralnmf fit failed:\n{done.stderr}")
    return done.stdout, time.perf_counter() - t0


def flat_references(folder: Path, ranks, mask, labels):
    """scikit-learn NMF per rank on the very tf-idf matrix the CLI built; logistic regression on rank-10 codes."""
    from sklearn.decomposition import NMF
    from sklearn.linear_model import LogisticRegression

    from neuralnmf.datasets.text import read_text_folder

    X = read_text_folder(folder / "texts").data  # the CLI's defaults: English stop words, l2-normalised rows
    norm = np.sqrt(X.multiply(X).sum())
    errors, codes = {}, {}
    for k in sorted(set(ranks)):
        nmf = NMF(k, init="nndsvda", max_iter=1000, tol=1e-4, random_state=0)
        H = nmf.fit_transform(X)
        W = nmf.components_
        # ||X - H W||^2 = ||X||^2 - 2 <X, H W> + <H^T H, W W^T>, without densifying X
        sq = norm**2 - 2 * np.sum(np.asarray(X @ W.T) * H) + np.sum((H.T @ H) * (W @ W.T))
        errors[k], codes[k] = float(np.sqrt(max(sq, 0.0)) / norm), H
    train, held = mask == 1, mask == 0
    clf = LogisticRegression(max_iter=5000).fit(codes[10][train], labels[train])
    return X.shape, X.nnz, errors, float(clf.score(codes[10][held], labels[held]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("archive", help="20news-bydate.tar.gz (e.g. ../shared/data/20news-bydate.tar.gz)")
    parser.add_argument("--per-class", type=int, default=200, help="documents per newsgroup (default: 200)")
    parser.add_argument("--epochs", type=int, default=300, help="training epochs of both runs (default: 300)")
    parser.add_argument("--out", default="real_corpus_run", help="working folder (default: ./real_corpus_run)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the half of the labels used for training")
    parser.add_argument("--lam", type=float, default=None, help="override the label weight (default: the CLI's)")
    args = parser.parse_args(argv)

    out = Path(args.out)
    t0 = time.perf_counter()
    n = write_corpus(args.archive, out, args.per_class, args.seed)
    labels, mask = np.loadtxt(out / "labels.txt", dtype=int), np.loadtxt(out / "mask.txt", dtype=int)
    print(f"{n} documents of 10 newsgroups in {out / 'texts'} ({time.perf_counter() - t0:.1f} s)")

    unsup_ranks, semi_ranks = (20, 10, 5), (20, 10)
    stdout, t_unsup = run_cli(out / "texts", "--ranks", *unsup_ranks, "--epochs", args.epochs, "--out", out / "unsup")
    print(f"$ python -m neuralnmf fit {out / 'texts'} --ranks 20 10 5 --epochs {args.epochs} --out {out / 'unsup'}")
    print(stdout)
    extra = [] if args.lam is None else ["--lam", args.lam]
    stdout, t_semi = run_cli(out / "texts", "--ranks", *semi_ranks, "--labels", out / "labels.txt", "--label-mask",
                             out / "mask.txt", "--epochs", args.epochs, "--out", out / "semi", *extra)
    print(f"$ python -m neuralnmf fit {out / 'texts'} --ranks 20 10 --labels {out / 'labels.txt'} --label-mask "
          f"{out / 'mask.txt'} --epochs {args.epochs} --out {out / 'semi'}" + (f" --lam {args.lam}" if extra else ""))
    print(stdout)
    tree = (out / "unsup" / "topics.md").read_text(encoding="utf-8").split("```text")[1].split("```")[0]
    print("topic tree of the unsupervised run (topics.md):" + tree)

    t1 = time.perf_counter()
    shape, nnz, flat, logreg = flat_references(out, unsup_ranks, mask, labels)
    t_flat = time.perf_counter() - t1
    unsup = json.loads((out / "unsup" / "metrics.json").read_text())
    semi = json.loads((out / "semi" / "metrics.json").read_text())
    rows = ["| run | level (rank) | relative error at the start | after training | scikit-learn NMF at that rank "
            "| after / NMF |", "|---|---|---|---|---|---|"]
    for name, m, ranks in (("unsupervised", unsup, unsup_ranks), ("semi-supervised", semi, semi_ranks)):
        for level, k in enumerate(ranks):
            e, s = m["relative_error"][level], m["relative_error_at_start"][level]
            rows.append(f"| {name} | {level} ({k}) | {s:.4f} | {e:.4f} | {flat[k]:.4f} | {e / flat[k]:.4f} |")
    levels = semi["classification"]["levels"]  # one entry per labeled level; the labels here are the deepest's
    acc = levels[max(levels, key=int)]["classifier"]["unlabeled"]
    print(f"\n{shape[0]} documents x {shape[1]} words, {nnz} nonzeros ({nnz / (shape[0] * shape[1]):.2%}); "
          f"fit {t_unsup:.0f} s (unsupervised) and {t_semi:.0f} s (semi-supervised) end to end, scikit-learn "
          f"references {t_flat:.0f} s\n")
    print("\n".join(rows))
    print(f"\nheld-out accuracy (the {int((mask == 0).sum())} documents whose labels were not used), 10 newsgroups: "
          f"Neural NMF's classifier {acc:.3f}; logistic regression on scikit-learn NMF rank-10 codes {logreg:.3f}")
    (out / "summary.json").write_text(json.dumps({"flat": flat, "logreg_heldout": logreg, "unsup": unsup,
                                                  "semi": semi}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
