"""Where the coherence of docs/topic_quality.md's table comes from, on all of 20 Newsgroups (the same texts).

    python examples/coherence_diagnostics.py ../shared/data/20news-bydate.tar.gz starts --rank 50 --seeds 3
    python examples/coherence_diagnostics.py ../shared/data/20news-bydate.tar.gz pairings --ranks 20 10 5
    python examples/coherence_diagnostics.py ../shared/data/20news-bydate.tar.gz convergence --rank 50 \
        --power-iterations 4 --steps 10 30 100 400 --sklearn

``starts``: the finest level of Neural NMF starts at the library's flat NMF (exact alternating NNLS, ANLS, from
NNDSVD), and training moves its NPMI by a few thousandths. Flat NMF at one rank along six paths, per seed: ANLS
or scikit-learn's coordinate descent (CD, ``max_iter=400``, two ways), each from our NNDSVD or from
scikit-learn's (``sklearn.decomposition._nmf._initialize_nmf``, a private function: its randomized SVD takes 7
power iterations, ours ``--power-iterations``, default 4). Printed: relative error, steps and NPMI of each path,
and their means over the seeds. CD starts its codes either at their
exact NNLS values given the start's topics or at NNDSVD's own codes (the SVD's document side): the latter, from
scikit-learn's NNDSVD, is scikit-learn's ``NMF(init="nndsvd", max_iter=400)``.

``convergence``: the library's flat NMF (ANLS from our NNDSVD) for each number of ``--power-iterations`` of
the randomized SVD behind NNDSVD: first how close that SVD's right singular vectors come to the exact ones
(scipy's ``svds``; the mean over the rank of |cos|), then per seed the relative error and NPMI where the
library's rule stops (a relative decrease below 1e-5), or with ``--steps`` after each of those numbers of steps.
``--sklearn`` adds scikit-learn's ``NMF(init="nndsvd", max_iter=400)`` with the same seed, and the difference
paired by seed.

``tree-cd``: Neural NMF with defaults at ``--ranks``, except that the finest level starts at scikit-learn's CD
(``max_iter=400``) from our NNDSVD (``--power-iterations``, default 7 like scikit-learn's; NNDSVD's codes)
instead of the library's flat NMF: whether a start of scikit-learn's coherence carries through the tree.
Printed: each level's NPMI at the start and after training, per seed and the means. (It replaces
``neuralnmf.initialization.flat_nmf`` for the finest rank while it runs.)

``pairings``: fits Neural NMF with defaults at ``--ranks`` whose top rank is half the one below (every parent
then has exactly two children), and scores every way of pairing the level-below topics into parents (each
parent's words: the sum of its two unit-norm children), against the tree's own pairing. Shows what grouping
would maximize the top level's NPMI, and what its parents read like.

One torch thread; float64 for ``starts``, the model's float32 for ``convergence`` and ``pairings``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from topic_quality import load_texts, tfidf


def npmi(topics, vocab, texts) -> float:
    from neuralnmf.metrics import topic_quality

    return topic_quality([topics], vocab, texts=texts, measures=("c_npmi",))[0]["c_npmi"]["mean"]


def cd_fit(x, rank: int, codes: np.ndarray, dictionary: torch.Tensor):
    """scikit-learn's CD (``max_iter=400``) from codes (docs, rank) and a dictionary (words, rank): the fitted
    dictionary (words, rank, float64), its relative error and its steps."""
    import warnings

    from sklearn.decomposition import NMF

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter=400 is often reached, as in scikit-learn's own fits here
        nmf = NMF(rank, init="custom", max_iter=400).fit(x, W=np.ascontiguousarray(codes),
                                                           H=np.ascontiguousarray(dictionary.T.numpy()))
    error = nmf.reconstruction_err_ / float(np.sqrt(x.multiply(x).sum()))
    return torch.from_numpy(np.ascontiguousarray(nmf.components_.T)), error, nmf.n_iter_


def starts(x, texts, vocab, rank: int, seeds, power: int) -> None:
    from sklearn.decomposition._nmf import _initialize_nmf

    from neuralnmf.datasets import scipy_to_torch
    from neuralnmf.initialization import flat_nmf, nndsvd_factors
    from neuralnmf.tree_start import topic_codes

    xt = scipy_to_torch(x, dtype=torch.float64)
    results: dict = {}
    for seed in seeds:
        ours, our_codes = nndsvd_factors(xt, rank, "nndsvd", torch.Generator().manual_seed(seed), randomized=True,
                                         power_iterations=power)
        their_codes, theirs = _initialize_nmf(x, rank, init="nndsvd", random_state=seed)  # (docs, rank), (rank, words)
        theirs = torch.from_numpy(np.ascontiguousarray(theirs.T))
        for start, W0, H_svd in (("our NNDSVD", ours, our_codes.numpy()), ("scikit-learn's NNDSVD", theirs, their_codes)):
            t = time.perf_counter()
            f = flat_nmf(xt, rank, init=W0)
            results.setdefault(("ANLS", start), []).append((f.relative_error, f.iterations,
                                                              npmi(f.dictionary, vocab, texts), time.perf_counter() - t))
            # CD updates the codes first: from their exact NNLS values given W0, or from NNDSVD's own codes (the
            # SVD's document side; scikit-learn's NMF(init="nndsvd") is the second with its NNDSVD)
            exact = topic_codes(xt, W0).numpy()
            for codes, H0 in (("exact codes", exact), ("NNDSVD codes", H_svd)):
                t = time.perf_counter()
                W, error, iterations = cd_fit(x, rank, H0, W0)
                results.setdefault((f"CD ({codes})", start), []).append(
                    (error, iterations, npmi(W, vocab, texts), time.perf_counter() - t))
        for (method, start), r in results.items():
            e, it, c, s = r[-1]
            print(f"seed {seed}: {method} from {start}: error {e:.5f}, {it} steps, NPMI {c:.4f} ({s:.0f} s)",
                  flush=True)
    print(f"\n| path (rank {rank}) | relative error | steps | NPMI, mean | NPMI per seed |\n|---|---|---|---|---|")
    for (method, start), r in results.items():
        e, it, c, _ = (np.array(v) for v in zip(*r))
        print(f"| {method} from {start} | {e.mean():.5f} | {it.mean():.0f} | {c.mean():.4f} | "
              + ", ".join(f"{v:.4f}" for v in c) + " |")


def _mean_and_error(values) -> str:
    v = np.asarray(values, dtype=float)
    error = v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
    return f"{v.mean():+.4f} ± {error:.4f}" if v.mean() < 0 else f"{v.mean():.4f} ± {error:.4f}"


def convergence(x, texts, vocab, rank: int, seeds, powers, steps, sklearn: bool) -> None:
    import warnings

    from scipy.sparse.linalg import svds

    from neuralnmf.datasets import scipy_to_torch
    from neuralnmf.initialization import _truncated_svd, flat_nmf, nndsvd_factors

    xt, x64 = scipy_to_torch(x, dtype=torch.float32), scipy_to_torch(x, dtype=torch.float64)
    _, values, exact = svds(x.astype(np.float64), k=rank, tol=1e-10)
    exact = exact[np.argsort(-values)]  # rows: the right singular vectors, the largest singular value's first
    for power in powers:
        cosines = []
        for seed in seeds:
            _, _, V = _truncated_svd(x64, rank, torch.Generator().manual_seed(seed), True, power)
            cosines.append(np.abs((V.numpy() * exact.T).sum(0)).mean())  # the i-th against the exact i-th
        print(f"{power} power iterations: right singular vectors' mean |cos| with the exact ones {np.mean(cosines):.3f}")
    marks = sorted(set(steps)) or [None]
    rows: dict = {}
    theirs = []
    for seed in seeds:
        if sklearn:
            from sklearn.decomposition import NMF

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # max_iter=400 is often reached: the setting of the table
                nmf = NMF(rank, init="nndsvd", max_iter=400, random_state=seed).fit(x)
            theirs.append(npmi(torch.from_numpy(np.ascontiguousarray(nmf.components_.T)), vocab, texts))
        for power in powers:
            W, _ = nndsvd_factors(xt, rank, "nndsvd", torch.Generator().manual_seed(seed), randomized=True,
                                  power_iterations=power)
            done = 0
            for mark in marks:
                # a run resumed from its dictionary continues the same run (tests/test_quality.py)
                f = (flat_nmf(xt, rank, init=W) if mark is None  # the library's stopping rule, else exactly the steps
                     else flat_nmf(xt, rank, init=W, max_iter=mark - done, tol=float("-inf")))
                W, done = f.dictionary, done + f.iterations
                rows.setdefault((power, mark), []).append((done, f.relative_error, npmi(W, vocab, texts)))
            print(f"seed {seed}, {power} power iterations: " + ", ".join(
                f"{r[-1][0]} steps: error {r[-1][1]:.5f}, NPMI {r[-1][2]:.4f}"
                for (p_, _), r in rows.items() if p_ == power)
                  + (f"; scikit-learn NMF NPMI {theirs[-1]:.4f}" if sklearn else ""), flush=True)
    print("\n| power iterations | steps | relative error | NPMI (± standard error) |"
          + (" minus scikit-learn's, paired |" if sklearn else "") + "\n|---|---|---|---|" + ("---|" if sklearn else ""))
    for (power, mark), r in rows.items():
        done, error, c = (np.array(v) for v in zip(*r))
        label = f"{done.mean():.0f} (the library's stop)" if mark is None else str(mark)
        print(f"| {power} | {label} | {error.mean():.5f} | {_mean_and_error(c)} |"
              + (f" {_mean_and_error(c - np.array(theirs))} |" if sklearn else ""))
    if sklearn:
        print(f"scikit-learn NMF(init='nndsvd', max_iter=400): NPMI {_mean_and_error(theirs)} over {len(theirs)} seeds")


def tree_cd(x, texts, vocab, ranks, seeds, power: int, epochs: int) -> None:
    import neuralnmf
    import neuralnmf.initialization as initialization
    from neuralnmf.datasets import scipy_to_torch
    from neuralnmf.initialization import nndsvd_factors
    from neuralnmf.metrics import topic_quality
    from neuralnmf.tree_start import topic_codes

    library_flat_nmf = initialization.flat_nmf
    x64 = scipy_to_torch(x, dtype=torch.float64)

    def cd_flat_nmf(xx, rank, *, generator=None, init=None, **kwargs):
        if rank != ranks[0] or init is not None:
            return library_flat_nmf(xx, rank, generator=generator, init=init, **kwargs)
        W0, H0 = nndsvd_factors(x64, rank, "nndsvd", generator, randomized=True, power_iterations=power)
        W, error, iterations = cd_fit(x, rank, H0.numpy(), W0)
        W = W.to(xx.dtype)
        return initialization.FlatNMF(W, topic_codes(xx, W), error, iterations)

    def level_npmi(model):
        return [q["c_npmi"]["mean"] for q in topic_quality(model, vocab, texts=texts, measures=("c_npmi",))]

    xt = scipy_to_torch(x, dtype=torch.float32)
    scores, starts_ = [], []
    initialization.flat_nmf = cd_flat_nmf
    try:
        for seed in seeds:
            t = time.perf_counter()
            model = neuralnmf.NeuralNMF(len(vocab), ranks, generator=torch.Generator().manual_seed(seed),
                                        dtype=torch.float32)
            model.initialize(xt)  # fit then trains from this start
            start = level_npmi(model)
            neuralnmf.fit(model, xt, epochs=epochs, progress=False)
            model.eval()
            scores.append(level_npmi(model))
            starts_.append(start)
            print(f"seed {seed}: NPMI per level at the start " + ", ".join(f"{v:.4f}" for v in start)
                  + ", trained " + ", ".join(f"{v:.4f}" for v in scores[-1]) + f" ({time.perf_counter() - t:.0f} s)",
                  flush=True)
    finally:
        initialization.flat_nmf = library_flat_nmf
    for level, (k, values, first) in enumerate(zip(ranks, zip(*scores), zip(*starts_))):
        print(f"level {level} (K = {k}): NPMI at the start {_mean_and_error(first)}, trained {_mean_and_error(values)} "
              f"over {len(values)} seeds")


def _pairings(items):
    if not items:
        yield []
        return
    for b in items[1:]:
        for rest in _pairings([i for i in items[1:] if i != b]):
            yield [(items[0], b)] + rest


def pairings(x, texts, vocab, ranks, seed: int, epochs: int) -> None:
    import itertools

    import neuralnmf
    from neuralnmf.datasets import scipy_to_torch
    from neuralnmf.metrics import topic_coherence

    if len(ranks) < 2 or ranks[-2] != 2 * ranks[-1] or ranks[-2] > 12:
        raise SystemExit("pairings: the top rank must be half the one below it, which must be at most 12")
    xt = scipy_to_torch(x, dtype=torch.float32)
    model = neuralnmf.NeuralNMF(len(vocab), ranks, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
    neuralnmf.fit(model, xt, epochs=epochs, progress=False)
    with torch.no_grad():
        below = model.dictionary(len(ranks) - 2).double()
    below = below / below.norm(dim=0)
    n = below.shape[1]

    def words(v):
        return [vocab[i] for i in torch.argsort(v, descending=True)[:10].tolist()]

    pairs = list(itertools.combinations(range(n), 2))
    scores = dict(zip(pairs, topic_coherence([words(below[:, i] + below[:, j]) for i, j in pairs], texts,
                                             measure="c_npmi")))
    parents = model.layers[-1].parents.tolist()
    tree = [tuple(i for i in range(n) if parents[i] == p) for p in range(ranks[-1])]
    every = list(_pairings(list(range(n))))
    ranked = sorted((float(np.mean([scores[p] for p in m])), m) for m in every)
    tree_score = float(np.mean([scores[p] for p in tree]))
    print(f"{len(every)} pairings of the {n} level-{len(ranks) - 2} topics; the tree's pairing scores {tree_score:.4f} "
          f"(rank {1 + sum(s > tree_score for s, _ in ranked)} of {len(every)}); the best {ranked[-1][0]:.4f}")
    print("level-below topics:")
    for i in range(n):
        print(f"  {i}: {' '.join(words(below[:, i])[:6])}")
    for name, m in (("the tree's pairing", tree), ("the pairing of highest NPMI", ranked[-1][1])):
        print(f"{name}:")
        for p in m:
            print(f"  {p}: NPMI {scores[p]:.3f}  {' '.join(words(below[:, p[0]] + below[:, p[1]])[:8])}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("archive")
    p.add_argument("what", choices=["starts", "convergence", "tree-cd", "pairings"])
    p.add_argument("--rank", type=int, default=50, help="starts, convergence: the flat rank")
    p.add_argument("--ranks", type=int, nargs="+", default=None,
                   help="tree-cd, pairings: the hierarchy (default 50 20 10, and 20 10 5)")
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--seeds", type=int, default=3, help="starts, convergence: seeds")
    p.add_argument("--power-iterations", type=int, nargs="+", default=None,
                   help="starts, tree-cd (one), convergence (one or more): of the randomized SVD behind our NNDSVD "
                        "(default: the library's 4, and 7 for tree-cd)")
    p.add_argument("--steps", type=int, nargs="*", default=[],
                   help="convergence: score after these numbers of ANLS steps (default: where the library stops)")
    p.add_argument("--sklearn", action="store_true", help="convergence: scikit-learn's NMF with the same seeds")
    p.add_argument("--epochs", type=int, default=300, help="tree-cd, pairings: training epochs")
    p.add_argument("--min-df", type=float, default=0.005)
    args = p.parse_args()
    torch.set_num_threads(1)
    texts, vocab, _ = load_texts(args.archive, args.min_df)
    _, x = tfidf(texts, vocab)
    seeds = range(args.seed, args.seed + args.seeds)
    powers = args.power_iterations or [7 if args.what == "tree-cd" else 4]
    if any(p < 0 for p in powers) or any(s < 1 for s in args.steps):
        raise SystemExit(f"{args.what}: --power-iterations must be >= 0 and --steps >= 1")
    if args.what in ("starts", "tree-cd") and len(powers) != 1:
        raise SystemExit(f"{args.what}: give one --power-iterations")
    if args.what == "starts":
        starts(x, texts, vocab, args.rank, seeds, powers[0])
    elif args.what == "convergence":
        convergence(x, texts, vocab, args.rank, seeds, powers, args.steps, args.sklearn)
    elif args.what == "tree-cd":
        tree_cd(x, texts, vocab, args.ranks or [50, 20, 10], seeds, powers[0], args.epochs)
    else:
        pairings(x, texts, vocab, args.ranks or [20, 10, 5], args.seed, args.epochs)


if __name__ == "__main__":
    main()
