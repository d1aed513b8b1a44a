"""Topic quality on all of 20 Newsgroups: NPMI, C_V, UMass and diversity of every Neural NMF level beside
scikit-learn's NMF (and LDA) at the same ranks.

    python examples/topic_quality.py ../shared/data/20news-bydate.tar.gz [--ranks 50 20 10] [--epochs 300] [--lda]
        [--seeds 3]
    python examples/topic_quality.py ../shared/data/20news-bydate.tar.gz --published-protocol

1. All 18 846 documents (train and test; headers, footers and quotes stripped, as ``fetch_20newsgroups`` does, fed
   offline from the archive), lowercased, words of 3+ letters, scikit-learn's English stop words out; the
   vocabulary keeps the words in at least ``--min-df`` (0.5%) and at most 50% of the documents; each text keeps
   only its vocabulary words (as the published comparisons' preprocessed corpora do); documents left empty are
   dropped. tf-idf rows (unit length) are what every model fits.
2. Neural NMF with the library's defaults at ``--ranks`` (finest first), ``--epochs`` full-batch epochs;
   scikit-learn ``NMF(init="nndsvd")`` at every rank; with ``--lda``, ``LatentDirichletAllocation`` on the counts.
3. Every level's top-10 words scored by :func:`neuralnmf.metrics.topic_quality` on the same texts (the training
   documents are the reference corpus): NPMI (window 10), C_V (window 110), UMass (documents), diversity; printed
   as a markdown table, with the tree measures of :func:`neuralnmf.metrics.tree_summary`. With ``--seeds N`` every
   model is fitted from N seeds (the model's generator, scikit-learn's ``random_state``) and each row is the mean,
   with every seed's NPMI beside it: one seed's NPMI moves by about 0.01 between seeds.

``--published-protocol`` instead runs the published comparison's grid with scikit-learn's NMF only: K = 10, 20, 30,
40, 50, three seeds each (random starts), and prints the mean NPMI and diversity over the 15 fits.

Every number of docs/topic_quality.md comes from this script. One thread (a shared 2-core machine).
"""

from __future__ import annotations

import argparse
import json
import re
import time

import numpy as np
import torch


def load_texts(archive: str, min_df: float):
    from sklearn.datasets import fetch_20newsgroups
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    from neuralnmf.datasets.news20 import REMOVE, sklearn_data_home

    data = fetch_20newsgroups(data_home=str(sklearn_data_home(archive)), subset="all", remove=REMOVE,
                              download_if_missing=False)
    tokens = [[w for w in re.findall(r"\b[a-z]{3,}\b", d.lower()) if w not in ENGLISH_STOP_WORDS] for d in data.data]
    df: dict[str, int] = {}
    for t in tokens:
        for w in set(t):
            df[w] = df.get(w, 0) + 1
    n = len(tokens)
    vocab = sorted(w for w, c in df.items() if min_df * n <= c <= 0.5 * n)
    keep = set(vocab)
    texts = [[w for w in t if w in keep] for t in tokens]
    texts = [t for t in texts if t]
    return texts, vocab, n


def tfidf(texts, vocab):
    from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer

    counts = CountVectorizer(analyzer=lambda t: t, vocabulary=vocab).fit_transform(texts)
    return counts, TfidfTransformer().fit_transform(counts).tocsr()


def quality_row(name, level, q, summary=None):
    row = {"model": name, "level": level, "k": q["topics"], "npmi": q["c_npmi"]["mean"], "c_v": q["c_v"]["mean"],
           "u_mass": q["u_mass"]["mean"], "diversity": q["diversity"]}
    if summary is not None:
        row["one_child"] = summary.get("one_child_share")
        row["largest_docs"] = summary.get("largest_documents_share")
    return row


def mean_rows(rows):
    """One row per (model, level, k): the mean of every measure over the seeds, and the NPMI of each seed."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["model"], r["level"], r["k"]), []).append(r)
    out = []
    for (model, level, k), rs in groups.items():
        row = {"model": model, "level": level, "k": k, "npmi_per_seed": [r["npmi"] for r in rs]}
        for c in ("npmi", "c_v", "u_mass", "diversity", "one_child", "largest_docs"):
            values = [r[c] for r in rs if r.get(c) is not None]
            row[c] = float(np.mean(values)) if values else None
        out.append(row)
    return out


def published_protocol(x, texts, vocab, NMF, topic_quality) -> None:
    """sklearn NMF at K = 10..50 (step 10), seeds 0, 1, 2, random starts: mean NPMI and diversity."""
    npmi, div = [], []
    for k in (10, 20, 30, 40, 50):
        for seed in range(3):
            t = time.perf_counter()
            nmf = NMF(k, init="random", max_iter=400, random_state=seed).fit(x)
            q = topic_quality([torch.from_numpy(nmf.components_.T.copy())], vocab, texts=texts,
                              measures=("c_npmi",))[0]
            npmi.append(q["c_npmi"]["mean"])
            div.append(q["diversity"])
            print(f"NMF K={k} seed {seed}: NPMI {npmi[-1]:.3f}, diversity {div[-1]:.3f} "
                  f"({time.perf_counter() - t:.0f} s)", flush=True)
    print(f"mean over {len(npmi)} fits: NPMI {np.mean(npmi):.3f}, diversity {np.mean(div):.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("archive")
    p.add_argument("--ranks", type=int, nargs="+", default=[50, 20, 10])
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--min-df", type=float, default=0.005)
    p.add_argument("--lda", action="store_true")
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--seeds", type=int, default=1, help="seeds (model starts and scikit-learn's random_state): "
                   "every row is the mean over them, with each seed's NPMI")
    p.add_argument("--json", default=None, help="also write the rows to this file")
    p.add_argument("--published-protocol", action="store_true", help="NMF at K = 10..50, 3 seeds: the means")
    args = p.parse_args()
    torch.set_num_threads(1)
    from sklearn.decomposition import NMF, LatentDirichletAllocation

    import neuralnmf
    from neuralnmf.datasets import scipy_to_torch
    from neuralnmf.metrics import topic_quality, tree_summary

    t0 = time.perf_counter()
    texts, vocab, n_all = load_texts(args.archive, args.min_df)
    counts, x = tfidf(texts, vocab)
    print(f"{n_all} documents, {len(texts)} with a vocabulary word; {len(vocab)} words; {x.nnz} nonzeros "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)
    if args.published_protocol:
        published_protocol(x, texts, vocab, NMF, topic_quality)
        return
    xt = scipy_to_torch(x, dtype=torch.float32)
    rows = []
    for seed in range(args.seed, args.seed + args.seeds):
        t = time.perf_counter()
        model = neuralnmf.NeuralNMF(len(vocab), args.ranks, generator=torch.Generator().manual_seed(seed),
                                    dtype=torch.float32)
        neuralnmf.fit(model, xt, epochs=args.epochs, progress=False)
        model.eval()
        q = topic_quality(model, vocab, texts=texts)
        for l, (ql, sl) in enumerate(zip(q, tree_summary(model, xt))):
            rows.append(quality_row("Neural NMF " + "-".join(map(str, args.ranks)), l, ql, sl))
        print(f"seed {seed}: Neural NMF fitted and scored in {time.perf_counter() - t:.0f} s", flush=True)
        for k in args.ranks:
            t = time.perf_counter()
            nmf = NMF(k, init="nndsvd", max_iter=400, random_state=seed).fit(x)
            rows.append(quality_row("sklearn NMF", 0, topic_quality([torch.from_numpy(nmf.components_.T.copy())],
                                                                    vocab, texts=texts)[0]))
            print(f"seed {seed}: NMF {k}: {time.perf_counter() - t:.0f} s", flush=True)
            if args.lda:
                t = time.perf_counter()
                lda = LatentDirichletAllocation(k, learning_method="online", random_state=seed, n_jobs=1).fit(counts)
                rows.append(quality_row("sklearn LDA", 0, topic_quality([torch.from_numpy(lda.components_.T.copy())],
                                                                        vocab, texts=texts)[0]))
                print(f"seed {seed}: LDA {k}: {time.perf_counter() - t:.0f} s", flush=True)
        for r in rows:
            r.setdefault("seed", seed)
    rows = mean_rows(rows)
    cols = ["model", "level", "k", "npmi", "npmi_per_seed", "c_v", "u_mass", "diversity", "one_child", "largest_docs"]
    print("\n| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in sorted(rows, key=lambda r: (-r["k"], r["model"])):
        print("| " + " | ".join("" if r.get(c) is None else f"{r[c]:.3f}" if isinstance(r[c], float)
                                else ", ".join(f"{v:.3f}" for v in r[c]) if isinstance(r[c], list) else str(r[c])
                                for c in cols) + " |")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
