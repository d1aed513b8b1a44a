"""Planted topic hierarchies, fitted with default settings, against scikit-learn's flat NMF at every rank.

    python examples/planted_hierarchy.py [--seeds 3] [--epochs 500]

Two corpora with a planted 10 -> 5 -> 2 hierarchy (neuralnmf.datasets.make_planted_corpus, Poisson counts): a small
dense one (400 documents x 150 words, as in issue 12) over several seeds, and a sparse one with a realistic
vocabulary (2 000 documents x 20 000 words, Zipf word weights, under 1% nonzero). For each level: the relative
error and the matched accuracy of the codes (match_topics: each document to its largest topic, topics matched one
to one with the planted classes) of NeuralNMF(words, (10, 5, 2)) + fit(x, epochs=...), beside scikit-learn's NMF
fitted separately at that rank. docs/real_corpus.md records the output.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import scipy.sparse
import torch

from neuralnmf import NeuralNMF, fit
from neuralnmf.datasets import make_planted_corpus
from neuralnmf.losses import squared_error
from neuralnmf.metrics import match_topics

RANKS = (10, 5, 2)


def relative_error(x, codes, dictionary) -> float:
    values = x.values() if x.layout != torch.strided else x
    with torch.no_grad():
        return float((squared_error(x, codes, dictionary).clamp_min(0) / (values * values).sum()).sqrt())


def flat_nmf(x, k):
    from sklearn.decomposition import NMF

    X = x.numpy() if x.layout == torch.strided else \
        scipy.sparse.csr_matrix((x.values().numpy(), x.indices().numpy()), shape=tuple(x.shape))
    nmf = NMF(k, init="nndsvda", max_iter=1000, tol=1e-4, random_state=0)
    return torch.from_numpy(nmf.fit_transform(X)), torch.from_numpy(np.ascontiguousarray(nmf.components_.T))


def measure(corpus, epochs):
    x = corpus.x
    t0 = time.perf_counter()
    model = NeuralNMF(x.shape[1], RANKS, dtype=x.dtype)
    history = fit(model, x, epochs=epochs, progress=False)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        out = model(x)
    rows = []
    for level, k in enumerate(RANKS):
        H, W = flat_nmf(x, k)
        rows.append((relative_error(x, out.codes[level], model.dictionary(level)),
                     match_topics(out.codes[level], corpus.labels[level]).accuracy,
                     relative_error(x, H, W), match_topics(H, corpus.labels[level]).accuracy))
    return rows, history["loss"][0], history["loss"][-1], seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the small corpus (default: 3)")
    parser.add_argument("--epochs", type=int, default=500, help="training epochs (default: 500)")
    args = parser.parse_args(argv)
    print("| corpus | level (rank) | rel. error, ours | rel. error, flat NMF | matched accuracy, ours | "
          "matched accuracy, flat NMF |\n|---|---|---|---|---|---|")
    cases = [(f"400 x 150 dense, {args.seeds} seeds", [make_planted_corpus(400, 150, RANKS, seed=s)
                                                     for s in range(args.seeds)]),
             ("2 000 x 20 000 sparse, 1 seed", [make_planted_corpus(2000, 20000, RANKS, doc_length=200, zipf=1.0,
                                                                    sparse=True, seed=0)])]
    for name, corpora in cases:
        results = [measure(c, args.epochs) for c in corpora]
        for level, k in enumerate(RANKS):
            cols = [statistics.mean(r[0][level][i] for r in results) for i in range(4)]
            print(f"| {name} | {level} ({k}) | {cols[0]:.4f} | {cols[2]:.4f} | {cols[1]:.3f} | {cols[3]:.3f} |")
        worse = sum(r[2] > r[1] for r in results)
        print(f"<!-- {name}: training ended above its start in {worse} of {len(results)} runs; fit took "
              f"{statistics.mean(r[3] for r in results):.1f} s per run -->")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
