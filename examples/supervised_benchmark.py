"""Supervised and semi-supervised Neural NMF on 20 Newsgroups (bydate) against the pipelines a user would run instead.

Issue 21's benchmark: all 20 newsgroups, headers, footers and quotes removed, trained on the ``train`` split and
scored on the ``test`` split (documents the models never saw, through frozen dictionaries). tf-idf
(``TfidfVectorizer(stop_words="english", min_df=2, max_df=0.95)`` fit on train) as torch sparse float32, never
densified. For each hierarchy of ranks and each setting it prints one markdown table of held-out accuracy:

* supervised Neural NMF with the library's defaults (``NeuralNMF(V, ranks, num_classes=20)``, ``fit(..., seed=0)``,
  ``model.predict``), and each level's relative training error beside scikit-learn NMF at that rank;
* logistic regression on scikit-learn NMF codes at each rank (``NMF(k, init="nndsvda", max_iter=400,
  random_state=0)`` fit on all training documents, ``transform`` on test), with the default C and with C chosen
  by 5-fold cross-validation on the labeled training documents;
* SSNMF (``neuralnmf.baselines.ssnmf_mu``, lam 1) at each rank, test codes by exact NNLS against its frozen A,
  prediction argmax B s;
* logistic regression on the tf-idf itself (the ceiling).

Settings: ``supervised`` (every training document labeled) and ``semi-F`` (a stratified draw, seed 0, of a share F
of the training documents labeled, the rest in the matrix unlabeled: ``label_mask`` for Neural NMF and SSNMF;
NMF on all training documents, the logistic regressions on the labeled ones).

    python examples/supervised_benchmark.py                       # the full benchmark (tens of minutes)
    python examples/supervised_benchmark.py --max-docs 600 --settings supervised --ranks 6,3   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np
import torch

import neuralnmf
from neuralnmf.metrics import factorization_error, level_errors

REMOVE = ("headers", "footers", "quotes")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--archive", default=None, help="20news-bydate.tar.gz (default: found under ../shared/data)")
    p.add_argument("--ranks", nargs="+", default=["20,6", "50,20,6"],
                   help="hierarchies, each comma-separated ranks (default: 20,6 50,20,6)")
    p.add_argument("--settings", nargs="+", default=["supervised", "semi-0.1", "semi-0.5"],
                   help="supervised and/or semi-F (share F of the training documents labeled)")
    p.add_argument("--threads", type=int, default=1, help="torch and BLAS threads (default 1)")
    p.add_argument("--max-docs", type=int, default=None,
                   help="a stratified slice of at most this many train and this many test documents (smoke runs)")
    p.add_argument("--epochs", type=int, default=None, help="Neural NMF epochs (default: the library's)")
    p.add_argument("--nmf-iter", type=int, default=400, help="scikit-learn NMF max_iter (default 400)")
    p.add_argument("--ssnmf-iters", type=int, default=1000, help="SSNMF iteration budget (default 1000)")
    p.add_argument("--ssnmf-tol", type=float, default=1e-5,
                   help="SSNMF relative-decrease early stop, checked every 10 iterations (default 1e-5)")
    p.add_argument("--cv-folds", type=int, default=5, help="folds of the LogisticRegressionCV on codes (default 5)")
    p.add_argument("--out", default=None, help="write every number as JSON here")
    p.add_argument("--tables-from", default=None, help="only print the tables of a JSON written by --out")
    return p.parse_args(argv)


def set_threads(n: int) -> None:
    torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:  # scikit-learn depends on threadpoolctl; without it BLAS keeps its own count
        pass


def to_torch(m) -> torch.Tensor:
    """scipy CSR -> torch sparse COO float32 (coalesced)."""
    m = m.tocoo()
    idx = torch.from_numpy(np.vstack([m.row, m.col]).astype(np.int64))
    return torch.sparse_coo_tensor(idx, torch.from_numpy(m.data.astype(np.float32)), m.shape).coalesce()


def stratified_subset(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    from sklearn.model_selection import train_test_split

    if n >= len(y):
        return np.arange(len(y))
    keep, _ = train_test_split(np.arange(len(y)), train_size=n, stratify=y, random_state=seed)
    return np.sort(keep)


def load(archive, max_docs):
    from sklearn.datasets import fetch_20newsgroups
    from sklearn.feature_extraction.text import TfidfVectorizer

    home = neuralnmf.datasets.news20.sklearn_data_home(archive)
    kw = dict(data_home=str(home), remove=REMOVE, download_if_missing=False)
    train, test = fetch_20newsgroups(subset="train", **kw), fetch_20newsgroups(subset="test", **kw)
    docs_tr, y_tr = train.data, np.asarray(train.target)
    docs_te, y_te = test.data, np.asarray(test.target)
    if max_docs is not None:
        i, j = stratified_subset(y_tr, max_docs, 0), stratified_subset(y_te, max_docs, 0)
        docs_tr, y_tr = [docs_tr[k] for k in i], y_tr[i]
        docs_te, y_te = [docs_te[k] for k in j], y_te[j]
    vec = TfidfVectorizer(stop_words="english", min_df=2, max_df=0.95)
    X_tr = vec.fit_transform(docs_tr).astype(np.float32)
    X_te = vec.transform(docs_te).astype(np.float32)
    return X_tr, y_tr, X_te, y_te, list(train.target_names)


def label_mask_for(setting: str, y: np.ndarray) -> np.ndarray:
    if setting == "supervised":
        return np.ones(len(y), dtype=bool)
    if not setting.startswith("semi-"):
        raise SystemExit(f"--settings: unknown setting {setting!r} (supervised or semi-F, e.g. semi-0.1)")
    frac = float(setting[5:])
    if not 0 < frac < 1:
        raise SystemExit(f"--settings: the labeled share of {setting!r} must lie in (0, 1)")
    from sklearn.model_selection import train_test_split

    lab, _ = train_test_split(np.arange(len(y)), train_size=frac, stratify=y, random_state=0)
    mask = np.zeros(len(y), dtype=bool)
    mask[lab] = True
    return mask


class Timer:
    def __enter__(self):
        self.t = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.s = time.perf_counter() - self.t


def logistic(codes_tr, y_tr, codes_te, y_te, folds):
    """Test accuracy of LogisticRegression (default C) and of LogisticRegressionCV (C by k-fold CV), with times."""
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV

    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs convergence notes on hard folds
        with Timer() as t:
            lr = LogisticRegression(max_iter=2000).fit(codes_tr, y_tr)
        out["default_C"] = {"accuracy": float(lr.score(codes_te, y_te)), "seconds": t.s}
        with Timer() as t:
            cv = LogisticRegressionCV(Cs=10, cv=folds, max_iter=2000).fit(codes_tr, y_tr)
        out["cv_C"] = {"accuracy": float(cv.score(codes_te, y_te)), "seconds": t.s, "C": float(cv.C_[0])}
    return out


def run(args):
    set_threads(args.threads)
    ranks_list = [tuple(int(r) for r in s.split(",")) for s in args.ranks]
    from sklearn.decomposition import NMF
    from sklearn.linear_model import LogisticRegression

    with Timer() as t:
        X_tr, y_tr, X_te, y_te, names = load(args.archive, args.max_docs)
    c = len(names)
    print(f"20 Newsgroups bydate: {X_tr.shape[0]} train / {X_te.shape[0]} test documents, {X_tr.shape[1]} words, "
          f"{c} classes (loaded and vectorized in {t.s:.1f} s, {args.threads} thread(s))")
    x_tr, x_te = to_torch(X_tr), to_torch(X_te)
    xT_te = x_te.t().coalesce()
    yt_tr = torch.from_numpy(y_tr).long()
    V = X_tr.shape[1]

    all_ranks = sorted({k for ranks in ranks_list for k in ranks}, reverse=True)
    nmf = {}  # rank -> (train codes, test codes)
    nmf_info = {}  # rank -> relative training error, seconds, iterations
    for k in all_ranks:
        with Timer() as t:
            model = NMF(k, init="nndsvda", max_iter=args.nmf_iter, random_state=0)
            W_tr = model.fit_transform(X_tr)
            W_te = model.transform(X_te)
        err = factorization_error(x_tr, torch.from_numpy(W_tr).double(), torch.from_numpy(model.components_.T).double())
        nmf[k] = (W_tr, W_te)
        nmf_info[k] = {"train_error": err, "seconds": t.s, "iterations": int(model.n_iter_)}
        print(f"  scikit-learn NMF k={k}: relative training error {err:.4f} ({model.n_iter_} iterations, {t.s:.1f} s)")

    results = {"train_docs": int(X_tr.shape[0]), "test_docs": int(X_te.shape[0]), "words": int(V),
               "threads": args.threads, "nmf": {str(k): v for k, v in nmf_info.items()}, "settings": {}}
    for setting in args.settings:
        mask = label_mask_for(setting, y_tr)
        lab = np.flatnonzero(mask)
        res = results["settings"][setting] = {"labeled": int(mask.sum()), "cv_folds": args.cv_folds, "hierarchies": {}, "per_rank": {}}
        with warnings.catch_warnings(), Timer() as t:
            warnings.simplefilter("ignore")
            lr = LogisticRegression(max_iter=2000).fit(X_tr[lab], y_tr[lab])
        res["tfidf_lr"] = {"accuracy": float(lr.score(X_te, y_te)), "seconds": t.s}
        print(f"\n[{setting}: {mask.sum()} labeled] tf-idf LR {res['tfidf_lr']['accuracy']:.4f} ({t.s:.1f} s)")
        for k in all_ranks:
            W_tr, W_te = nmf[k]
            entry = {"nmf_lr": logistic(W_tr[lab], y_tr[lab], W_te, y_te, args.cv_folds)}
            with Timer() as t:
                ss = neuralnmf.baselines.ssnmf_mu(
                    x_tr, k, yt_tr, label_mask=torch.from_numpy(mask), num_classes=c, lam=1.0,
                    max_iter=args.ssnmf_iters, tol=args.ssnmf_tol, seed=0)
                S_te = neuralnmf.nnls(xT_te, ss.A)
                pred = (ss.B @ S_te).argmax(0).numpy()
            entry["ssnmf"] = {"accuracy": float((pred == y_te).mean()), "seconds": t.s, "iterations": ss.n_iter,
                              "train_error": factorization_error(x_tr, ss.codes.double(), ss.A.double())}
            res["per_rank"][str(k)] = entry
            print(f"  k={k}: NMF+LR {entry['nmf_lr']['default_C']['accuracy']:.4f} / CV "
                  f"{entry['nmf_lr']['cv_C']['accuracy']:.4f}, SSNMF {entry['ssnmf']['accuracy']:.4f} "
                  f"({ss.n_iter} it, {t.s:.1f} s)")
        for ranks in ranks_list:
            torch.manual_seed(0)
            model = neuralnmf.NeuralNMF(V, ranks, num_classes=c)
            kw = {} if args.epochs is None else {"epochs": args.epochs}
            with Timer() as t:
                hist = neuralnmf.fit(model, x_tr, y=yt_tr, label_mask=None if mask.all() else torch.from_numpy(mask),
                                     seed=0, progress=False, **kw)
            with torch.no_grad():
                acc = float((model.predict(x_te).numpy() == y_te).mean())
                errs = level_errors(model, x_tr)
            res["hierarchies"][",".join(map(str, ranks))] = {
                "accuracy": acc, "seconds": t.s, "level_errors": errs, "epochs": hist.epochs,
                "selected": {key: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v))
                             for key, v in dict(hist.selected).items()}}
            print(f"  Neural NMF {ranks}: accuracy {acc:.4f} ({t.s:.1f} s; selected {dict(hist.selected)})")
        for ranks in ranks_list:
            print()
            print(table(setting, ranks, results))
    return results


def table(setting, ranks, results) -> str:
    """The markdown table of one setting and one hierarchy, from the results (also those of ``--out``)."""
    res, nmf = results["settings"][setting], results["nmf"]
    key = ",".join(map(str, ranks))
    ours = res["hierarchies"][key]
    lines = [f"**{setting}** ({res['labeled']} labeled training documents), ranks {tuple(ranks)}", "",
             "| method | rank | test accuracy | rel. training error | time (s) |", "|---|---|---|---|---|",
             f"| Neural NMF, defaults | {key} | **{ours['accuracy']:.4f}** | "
             f"{' / '.join(f'{e:.4f}' for e in ours['level_errors'])} | {ours['seconds']:.0f} |"]
    best = 0.0
    for k in map(str, ranks):
        e, f = res["per_rank"][k], nmf[k]
        d, cv, ss = e["nmf_lr"]["default_C"], e["nmf_lr"]["cv_C"], e["ssnmf"]
        lines.append(f"| scikit-learn NMF + LR (C=1) | {k} | {d['accuracy']:.4f} | {f['train_error']:.4f} | "
                     f"{f['seconds'] + d['seconds']:.0f} |")
        lines.append(f"| scikit-learn NMF + LR (C={cv['C']:.3g} by {res['cv_folds']}-fold CV) | {k} | "
                     f"{cv['accuracy']:.4f} | {f['train_error']:.4f} | {f['seconds'] + cv['seconds']:.0f} |")
        lines.append(f"| SSNMF (MU, lam 1, {ss['iterations']} it) | {k} | {ss['accuracy']:.4f} | "
                     f"{ss['train_error']:.4f} | {ss['seconds']:.0f} |")
        best = max(best, d["accuracy"], cv["accuracy"], ss["accuracy"])
    lines.append(f"| LR on tf-idf (ceiling) | — | {res['tfidf_lr']['accuracy']:.4f} | — | "
                 f"{res['tfidf_lr']['seconds']:.0f} |")
    lines += ["", f"Neural NMF minus the best baseline at these ranks: {ours['accuracy'] - best:+.4f}", "",
              "| level | rank | Neural NMF rel. training error | scikit-learn NMF | ratio |", "|---|---|---|---|---|"]
    for level, (k, err) in enumerate(zip(map(str, ranks), ours["level_errors"])):
        ref = nmf[k]["train_error"]
        lines.append(f"| {level} | {k} | {err:.4f} | {ref:.4f} | {err / ref:.4f} |")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.tables_from:
        with open(args.tables_from) as f:
            results = json.load(f)
        for setting, res in results["settings"].items():
            for key in res["hierarchies"]:
                print(table(setting, [int(k) for k in key.split(",")], results), end="\n\n")
        return
    if args.archive is None:
        from neuralnmf.datasets import find_data_file

        args.archive = find_data_file("20news-bydate.tar.gz")
        if args.archive is None:
            raise SystemExit("20news-bydate.tar.gz not found (pass --archive; see shared/data/README.md)")
    try:  # read before the run: the code that produced the numbers is the code at the start
        rev = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                             cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    except OSError:
        rev = "unknown"
    with Timer() as t:
        results = run(args)
    results.update(command=" ".join([os.path.basename(sys.executable), *sys.argv]), git=rev, seconds=t.s,
                   date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    print(f"\ntotal {t.s:.0f} s, git {rev}, {args.threads} thread(s)")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
