"""How well select_ranks recovers planted hierarchies, beside flat single-level rank selection, in one table.

    python examples/rank_selection.py [--seeds 20] [--configs 20,6,2 32,8,3 50,10,4] [--out runs.jsonl]
    python examples/rank_selection.py --news20 ../shared/data/20news-bydate.tar.gz [--documents 4000]

For each planted hierarchy (neuralnmf.datasets.make_planted_corpus: 8 k_0 documents x 6 k_0 words, words in one
group per finest topic) and each noise (Gaussian at 20 dB and 10 dB, clipped at 0; Poisson counts of 1000-word
documents), every seed gives one corpus. select_ranks(x, levels=3) searches the default candidate grid up to 1.3 k_0
(the range a user would pass: a little beyond the expected finest rank). Printed per cell: the share of runs whose
every level is recovered exactly, per level, and the flat baselines on the same matrices: bi-cross-validation alone
(the held-out minimum) and NMFk-style stability alone (the largest stable rank), each judged on the finest rank,
the only one a flat method gives. docs/rank_selection.md records the output.

With --news20: select_ranks(levels=2) on the tf-idf rows of a random sample of the 20 Newsgroups documents (all
18 846 before the sample; the preprocessing of examples/topic_quality.py: 2 186 words), candidates 1 to 40.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch

from neuralnmf.datasets import make_planted_corpus
from neuralnmf.rank_selection import rank_rule, select_ranks

NOISES = ("20 dB", "10 dB", "Poisson")


def corpus(ranks, noise, seed):
    k0 = ranks[0]
    if noise == "Poisson":
        return make_planted_corpus(8 * k0, 6 * k0, ranks, doc_length=1000, seed=seed)
    return make_planted_corpus(8 * k0, 6 * k0, ranks, noise="gaussian", snr_db=float(noise.split()[0]), seed=seed)


def run(ranks, noise, seed) -> dict:
    x = corpus(ranks, noise, seed).x
    grid = [k for k in [*range(1, 25), *range(26, 65, 2), *range(68, 129, 4)] if k <= math.ceil(1.3 * ranks[0])]
    t0 = time.perf_counter()
    try:
        sel = select_ranks(x, levels=len(ranks), candidates=grid, seed=seed)
    except ValueError as e:
        return {"ranks": ranks, "noise": noise, "seed": seed, "error": str(e)}
    level0 = sel.levels[0]
    peaks = [k for k, s in zip(level0.candidates, level0.stability) if s >= sel.settings["threshold"]]
    return {"ranks": ranks, "noise": noise, "seed": seed, "chosen": list(sel.ranks), "seconds": time.perf_counter() - t0,
            "flat_heldout": level0.by_heldout, "flat_stability": max(peaks) if peaks else None,
            "selection": sel.as_dict()}


def rejudge(r: dict) -> dict:
    """The run judged by the current rule (rank_rule on its kept sweep: the fits do not depend on the rule)."""
    if "selection" not in r or "ks" not in r["selection"].get("sweep", {}):
        return r
    sel = rank_rule(**r["selection"]["sweep"], levels=len(r["ranks"]))
    return {**r, "chosen": list(sel.ranks), "flat_heldout": sel.levels[0].by_heldout}


def table(results) -> str:
    rows = ["| planted ranks | noise | runs | all levels exact | per level exact | flat: held-out min = k_0 | "
            "flat: largest stable = k_0 | seconds per run |", "|---|---|---:|---:|---|---:|---:|---:|"]
    cells = {}
    for r in map(rejudge, results):
        cells.setdefault((tuple(r["ranks"]), r["noise"]), []).append(r)
    for (ranks, noise), rs in cells.items():
        ok = [r for r in rs if "chosen" in r]
        n = len(rs)
        exact = sum(tuple(r["chosen"]) == ranks for r in ok)
        per = [sum(r["chosen"][l] == ranks[l] for r in ok) / n for l in range(len(ranks))]
        flat_h = sum(r["flat_heldout"] == ranks[0] for r in ok) / n
        flat_s = sum(r["flat_stability"] == ranks[0] for r in ok) / n
        sec = sum(r["seconds"] for r in ok) / max(len(ok), 1)
        rows.append(f"| {ranks} | {noise} | {n} | {exact / n:.0%} | {' / '.join(f'{p:.0%}' for p in per)} | "
                    f"{flat_h:.0%} | {flat_s:.0%} | {sec:.0f} |")
    return "\n".join(rows)


def news20(archive: str, documents: int, seed: int) -> int:
    import importlib.util
    import pathlib

    spec = importlib.util.spec_from_file_location("topic_quality", pathlib.Path(__file__).with_name("topic_quality.py"))
    topic_quality = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(topic_quality)
    texts, vocab, n = topic_quality.load_texts(archive, 0.005)
    _, x = topic_quality.tfidf(texts, vocab)
    rows = np.random.default_rng(seed).choice(x.shape[0], size=min(documents, x.shape[0]), replace=False)
    x = torch.from_numpy(x[np.sort(rows)].toarray()).float()
    print(f"20 Newsgroups: {n} documents, {x.shape[0]} sampled (of those with a vocabulary word) x {x.shape[1]} words")
    t0 = time.perf_counter()
    sel = select_ranks(x, levels=2, candidates=range(1, 41), seed=seed, progress=True)
    print(sel.table())
    print(f"chosen ranks {sel.ranks} in {time.perf_counter() - t0:.0f} s")
    print(json.dumps(sel.as_dict()))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--news20", metavar="ARCHIVE", help="20 Newsgroups instead of the planted hierarchies")
    parser.add_argument("--documents", type=int, default=4000, help="with --news20: documents sampled")
    parser.add_argument("--seeds", type=int, default=20, help="corpora per cell (default: 20)")
    parser.add_argument("--configs", nargs="+", default=["20,6,2", "32,8,3", "50,10,4"], help="planted ranks")
    parser.add_argument("--noises", nargs="+", default=list(NOISES), choices=NOISES)
    parser.add_argument("--out", help="append every run as a JSON line to this file (and read runs already there)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.news20:
        return news20(args.news20, args.documents, 0)
    done = []
    if args.out:
        try:
            with open(args.out) as f:
                done = [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            pass
    have = {(tuple(r["ranks"]), r["noise"], r["seed"]) for r in done}
    results = list(done)
    for config in args.configs:
        ranks = tuple(int(v) for v in config.split(","))
        for seed in range(args.seeds):
            for noise in args.noises:
                if (ranks, noise, seed) in have:
                    continue
                r = run(ranks, noise, seed)
                results.append(r)
                print(f"{ranks} {noise} seed {seed}: {r.get('chosen', r.get('error'))}"
                      f" ({r.get('seconds', 0):.0f} s)", flush=True)
                if args.out:
                    with open(args.out, "a") as f:
                        f.write(json.dumps(r) + "\n")
    wanted = {(tuple(int(v) for v in c.split(",")), n) for c in args.configs for n in args.noises}
    print(table([r for r in results if (tuple(r["ranks"]), r["noise"]) in wanted and r["seed"] < args.seeds]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
