"""The 20 Newsgroups table of the Multi-HNTF paper (ICASSP 2022), reproduced from the raw corpus, and our rows.

Second layer of two-layer hierarchies (ranks 10 -> 6) on 1000 training documents of 10 newsgroups (the first 100
of each), grouped into 6 superclasses; 750 documents labeled (the first 75 of each newsgroup), 250 held out.
Columns: reconstruction loss ||X - A S||_F (absolute) and the accuracy, on the 250 held-out documents, of the
least-squares classifier B = (Y ⊙ L) pinv(S) on the second layer's codes; unsupervised and supervised. Means over
10 trials (protocols §5).

    python examples/reproduce_20news_table.py [--archive PATH] [--trials 10] [--jobs 2] [--rows ...] [--order numpy1]
    python examples/reproduce_20news_table.py --rows ours      # only our Neural NMF rows (no published fits)

Rows of the paper, with its protocol (every fit of trial i starts from numpy's ``np.random.seed(i)`` draws):
  HNMF           layer 1: NMF (ssnmf model 1) or SSNMF with the 10 newsgroup labels (model 3, lam 1), rank 10;
                 layer 2: the same on S_1 with the 6 superclass labels, rank 6; multiplicative updates, at most
                 800, with ssnmf's silent early stop (tol 1e-4); the supervised loss composes the *unsupervised*
                 first layer's A with the supervised second layer (the notebook's bug, §5.5)
  Multi-HNTF     X ~ (A_1 W)(W^T S_1) on the same first layers, W (10 x 6) by the paper's multiplicative
                 updates (800); supervised: labels Y ⊙ L with no mask, so held-out documents are fitted to zero
Corrected versions of those two (§5.5), for a fair comparison:
  HNMF, sup., own first layer         the supervised loss from A_1s A_2s S_2s
  Multi-HNTF, sup., masked labels     held-out documents masked out of the label term, as SSNMF does
Ours, on the same data, split and metrics:
  Neural NMF                 unsupervised: ``NeuralNMF(n_words, (10, 6), data=x)`` and ``fit(model, x,
                             epochs=300)``; supervised: ``NeuralNMF(n_words, (10, 6), 6)`` and
                             ``fit(model, x, y=superclass, label_mask=mask, seed=i)``, everything else the library's
                             defaults (loss, start, logistic classifier, lam, epochs, the 10% hold-out of the labeled
                             documents that picks the epoch); the seed of trial i drives the library's random draws
  Neural NMF, two-level      ``NeuralNMF(n_words, (10, 6), {0: 10, 1: 6})`` and ``fit(model, x,
  labels                     y={0: newsgroup, 1: superclass}, label_mask=mask, seed=i)``, all else default
  Neural Multi-HNTF          the Multi-HNTF model trained end to end by backpropagation, its first layer included:
                             started from the paper's solution above (the masked one when supervised, with its
                             classifier B), then 100 Adam steps on the level-1 error (lr 1e-2 for W, 1e-3 for the
                             first-layer factors, float32), supervised: + lam 0.1 times the masked label term in
                             the papers' units (||X - A S||^2 + lam ||L (Y - B S)||^2). With its codes free, lam 1
                             lets the labeled documents' codes chase their labels: recon 31.48, see the docs

Our supervised rows also get the column "classifier accuracy, sup.": the accuracy of the model's own classifier
(``model.predict(x, level=1)``) on the 250 held-out documents, which is what a user gets (the table's accuracy
column is the protocol's least-squares classifier on the level-1 codes, for every row alike).

Multiplicative updates need dense data: they run on the 19037 words that occur in the 1000 documents (a word that
occurs nowhere gets a zero row of A after the first update, exactly, so this changes nothing; the random draws
still cover the whole 45534-word vocabulary). Every job runs on one thread; ``--jobs`` runs trials in parallel.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

from neuralnmf import NeuralNMF, fit
from neuralnmf.train import DEFAULT_EPOCHS
from neuralnmf.baselines import nmf_mu, ssnmf_mu
from neuralnmf.datasets import find_data_file, load_news20
from neuralnmf.metrics import frobenius_error, protocol_accuracy
from neuralnmf.tensor.multi_hntf import multi_hntf_matrix
from neuralnmf.tensor import NeuralMultiHNTF, numpy_streams, fit_tensor
from _parallel import run_jobs  # examples/_parallel.py, beside this script

RANKS = (10, 6)
ITERS = 800  # the notebook's N
# The published table (recon unsup., recon sup., accuracy unsup., accuracy sup.) and the notebook's printed means.
PAPER = {
    "Multi-HNTF": (30.81, 30.91, 0.516, 0.737),
    "HNMF": (30.82, 31.45, 0.507, 0.636),
}
PRINTED = {
    "Multi-HNTF": (30.81340608097356, 30.9124314614065, 0.5159999999999999, 0.7368),
    "HNMF": (30.819847251127662, 31.446235226119178, 0.5071999999999999, 0.6364),
    "layer 1 (rank 10): NMF / SSNMF": (30.650902366052634, 30.77671656065876, 0.5932000000000001, 0.7768),
}
# Rows: (unsupervised key, supervised key) of the per-trial results; None = no such column.
ROWS = {
    "Multi-HNTF": ("mh", "mh_sup"),
    "HNMF": ("hnmf", "hnmf_sup"),
    "layer 1 (rank 10): NMF / SSNMF": ("l1", "l1_sup"),
    "HNMF, sup., own first layer (corrected)": (None, "hnmf_sup_fixed"),
    "Multi-HNTF, sup., masked labels (corrected)": (None, "mh_sup_masked"),
    "Neural NMF (ours, library defaults)": ("nnmf", "nnmf_sup"),
    "Neural NMF, two-level labels (ours, library defaults)": (None, "nnmf_two"),
    "Neural Multi-HNTF (ours, backprop from the MU solution)": ("nmh", "nmh_sup"),
}
GROUPS = ("published", "neural-multi-hntf", "neural-nmf", "neural-nmf-supervised")
ALIASES = {"ours": ("neural-nmf", "neural-nmf-supervised")}  # --rows ours: the Neural NMF rows only
NEURAL_NMF_EPOCHS = 300
NMH_STEPS = 100
NMH_LAM = 0.1  # papers' units

_CTX = {}


def context(archive=None, data_home=None, order="numpy1"):
    """The data, built once per process (the scikit-learn cache of the archive is built by the first call)."""
    if not _CTX:
        torch.set_num_threads(1)
        data = load_news20(archive, data_home=data_home, order=order)
        words = data.present_words()
        _CTX.update(data=data, words=words, dense=data.dense(words))
    return _CTX


def score(data, x, codes, topics, predicted=None):
    """(recon, accuracy[, classifier accuracy]) of one model: codes (M, k) batch first, topics (words, k) in the
    same columns as x; predicted (M,): the model's own superclass predictions, scored on the held-out documents."""
    out = (frobenius_error(x, codes, topics).item(),
           protocol_accuracy(codes, data.y, data.label_mask, data.num_classes).item())
    if predicted is not None:
        held = ~data.label_mask
        out += ((predicted[held] == data.y[held]).double().mean().item(),)
    return out


def draws(shapes, i):
    """np.random.seed(i) then np.random.rand(*shape) for each shape, as float64 tensors."""
    return numpy_streams.numpy_uniform(shapes, i)


# --- one trial of the published protocol (and the backprop models that start from it) -----------------------------


def published(i, scale, neural_multi_hntf):
    ctx = context()
    data, words, x = ctx["data"], ctx["words"], ctx["dense"]
    V, M = data.x.shape[1], data.x.shape[0]
    iters = max(1, round(ITERS * scale))
    mu = dict(max_iter=iters, tol=1e-4, check_every=1)  # ssnmf's default early stop, tested every iteration

    def first_layer_draws(with_b):  # A over the whole vocabulary, then S (then B), restricted to the present words
        A, S, *B = draws([(V, 10), (10, M)] + ([(10, 10)] if with_b else []), i)
        return (A[words], S, *B)

    out = {}
    l1 = nmf_mu(x, 10, init=first_layer_draws(False), **mu)
    l1s = ssnmf_mu(x, 10, data.y_fine, label_mask=data.label_mask, num_classes=10, lam=1.0,
                   init=first_layer_draws(True), **mu)
    out["l1"], out["l1_sup"] = score(data, x, l1.codes, l1.A), score(data, x, l1s.codes, l1s.A)

    l2 = nmf_mu(l1.codes.contiguous(), 6, init=draws([(10, 6), (6, M)], i), **mu)
    l2s = ssnmf_mu(l1s.codes.contiguous(), 6, data.y, label_mask=data.label_mask, num_classes=6, lam=1.0,
                   init=draws([(10, 6), (6, M), (6, 6)], i), **mu)
    out["hnmf"] = score(data, x, l2.codes, l1.A @ l2.A)
    out["hnmf_sup"] = score(data, x, l2s.codes, l1.A @ l2s.A)  # the notebook: model_1.A @ model_3.A
    out["hnmf_sup_fixed"] = score(data, x, l2s.codes, l1s.A @ l2s.A)

    (W0,) = draws([(10, 6)], i)
    W, _ = multi_hntf_matrix(x, l1.A, l1.S, W0, max_iter=iters)
    out["mh"] = score(data, x, (W.mT @ l1.S).mT, l1.A @ W)
    W0, B0 = draws([(10, 6), (6, 6)], i)
    sup = dict(y=data.y, label_mask=data.label_mask, B=B0, lam=1.0, max_iter=iters)
    Ws, _ = multi_hntf_matrix(x, l1s.A, l1s.S, W0, mask_unlabeled=False, **sup)
    out["mh_sup"] = score(data, x, (Ws.mT @ l1s.S).mT, l1s.A @ Ws)
    Wm, Bm = multi_hntf_matrix(x, l1s.A, l1s.S, W0, mask_unlabeled=True, **sup)
    out["mh_sup_masked"] = score(data, x, (Wm.mT @ l1s.S).mT, l1s.A @ Wm)

    if neural_multi_hntf:
        steps = max(1, round(NMH_STEPS * scale))
        out["nmh"] = neural_multi_hntf_fit(data, x, l1.A, l1.S, W, None, i, steps)
        out["nmh_sup"] = neural_multi_hntf_fit(data, x, l1s.A, l1s.S, Wm, Bm, i, steps)
    return out


def neural_multi_hntf_fit(data, x, A, S, W, B, i, steps):
    """Multi-HNTF X ~ [[A W, S^T W]] trained end to end from the multiplicative-update solution (A, S, W, B)."""
    dtype = torch.float32
    X = x.mT.contiguous().to(dtype)  # words x documents, the paper's orientation
    # A and S^T balanced (one scale c: [[c A W, S^T W / c]] is the same matrix) so one Adam step size suits both
    c = (S.pow(2).mean().sqrt() / A.pow(2).mean().sqrt()).sqrt()
    model = NeuralMultiHNTF(X.shape, RANKS, factors=[(A * c).to(dtype), (S.mT / c).to(dtype)], train_factors=True,
                            init=[W.to(dtype)], num_classes=None if B is None else data.num_classes, label_mode=1,
                            generator=torch.Generator().manual_seed(i))
    kwargs = {}
    if B is not None:
        with torch.no_grad():
            model.B.copy_(B.to(dtype))
        # fit_tensor's lam is the papers' lam of ||X - A S||^2 + lam ||L (Y - B S)||^2
        kwargs = dict(y=data.y, label_mask=data.label_mask, lam=NMH_LAM)
    fit_tensor(model, X, levels=(1,), epochs=steps, lr=1e-2, factor_lr=1e-3, **kwargs)
    with torch.no_grad():
        F_words, F_docs = model().levels[1]
    return score(data, x, F_docs.double(), F_words.double())


# --- our Neural NMF rows ----------------------------------------------------------------------------------------------


def neural_nmf(i, scale, labels):
    """One trial of a Neural NMF row; labels: None (unsupervised), "superclass" or "two-level"."""
    data = context()["data"]
    x = data.x
    g = torch.Generator().manual_seed(i)
    if labels is None:
        model = NeuralNMF(x.shape[1], RANKS, data=x, generator=g, dtype=x.dtype)
        fit(model, x, epochs=max(1, round(NEURAL_NMF_EPOCHS * scale)))
    else:
        if labels == "superclass":
            num_classes, y = data.num_classes, data.y
        else:  # the 10 newsgroups at level 0, the 6 superclasses at level 1
            num_classes = {0: data.num_fine_classes, 1: data.num_classes}
            y = {0: data.y_fine, 1: data.y}
        # built without data: the first fit starts it from the data and the labels (the supervised NMF of each rank)
        model = NeuralNMF(x.shape[1], RANKS, num_classes, generator=g)
        kwargs = {} if scale == 1 else dict(epochs=max(1, round(DEFAULT_EPOCHS * scale)))
        fit(model, x, y=y, label_mask=data.label_mask, seed=i, **kwargs)  # all else the library's defaults
    with torch.no_grad():
        codes = model(x).codes[-1]
    predicted = None if labels is None else model.predict(x, level=len(RANKS) - 1)
    key = {None: "nnmf", "superclass": "nnmf_sup", "two-level": "nnmf_two"}[labels]
    return {key: score(data, x, codes, model.dictionary(), predicted)}


def job(args):
    kind, i, scale, archive, data_home, order = args
    context(archive, data_home, order)
    start, cpu = time.perf_counter(), time.process_time()
    if kind == "published":
        out = published(i, scale, neural_multi_hntf=False)
    elif kind == "neural-multi-hntf":  # the published fits, then the backprop models from them
        out = published(i, scale, neural_multi_hntf=True)
    elif kind == "neural-nmf":
        out = neural_nmf(i, scale, None)
    else:
        out = {**neural_nmf(i, scale, "superclass"), **neural_nmf(i, scale, "two-level")}
    return kind, i, out, time.perf_counter() - start, time.process_time() - cpu


def cell(values, digits):
    if not values:
        return "-"
    m = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{m:.{digits}f} ± {sd:.{digits}f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", default=None, help="20news-bydate.tar.gz (default: ../shared/data)")
    parser.add_argument("--data-home", default=None, help="folder for the scikit-learn cache of the archive")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=1, help="parallel processes (one thread each)")
    parser.add_argument("--rows", nargs="*", default=list(GROUPS), choices=GROUPS + tuple(ALIASES),
                        help="groups of rows: published (the paper's and the corrected baselines), "
                             "neural-multi-hntf (also runs the published fits it starts from), neural-nmf "
                             "(unsupervised Neural NMF), neural-nmf-supervised (supervised and two-level Neural "
                             "NMF); ours = neural-nmf neural-nmf-supervised")
    parser.add_argument("--order", choices=("numpy1", "stable"), default="numpy1",
                        help="within-newsgroup order that decides the 75/25 split: numpy 1.x's unstable argsort "
                             "(the published one) or dataset order")
    parser.add_argument("--epochs-scale", type=float, default=1.0,
                        help="scale every iteration/epoch count (smoke tests; 1 = the settings above)")
    args = parser.parse_args(argv)
    args.rows = [g for r in args.rows for g in ALIASES.get(r, (r,))]
    archive = args.archive or find_data_file("20news-bydate.tar.gz")
    if archive is None:
        parser.error("20news-bydate.tar.gz not found in $NEURALNMF_DATA_DIR or ../shared/data: pass --archive")
    torch.set_num_threads(1)
    start = time.perf_counter()
    data = context(archive, args.data_home, args.order)["data"]  # builds the scikit-learn cache before the workers
    load_time = time.perf_counter() - start
    kinds = [k for k in ("neural-multi-hntf", "published") if k in args.rows][:1]  # the first includes the second
    kinds += [k for k in ("neural-nmf", "neural-nmf-supervised") if k in args.rows]
    jobs = [(k, i, args.epochs_scale, archive, args.data_home, args.order)
            for i in range(args.trials) for k in kinds]
    results = run_jobs(job, jobs, args.jobs)
    wall = time.perf_counter() - start

    runs, seconds, cpu = {}, {}, {}
    for kind, _, out, sec, cpu_sec in results:
        for key, value in out.items():
            runs.setdefault(key, []).append(value)
        seconds[kind] = seconds.get(kind, 0.0) + sec
        cpu[kind] = cpu.get(kind, 0.0) + cpu_sec

    print(f"20 Newsgroups, second layer of 10 -> 6 hierarchies: {data.x.shape[0]} documents "
          f"({int(data.label_mask.sum())} labeled, --order {args.order}), {data.x.shape[1]} words; mean ± sd over "
          f"{args.trials} trials\n")
    print("| method | recon, unsup. | recon, sup. | accuracy, unsup. | accuracy, sup. | classifier accuracy, sup. |")
    print("|---|---|---|---|---|---|")
    for name, keys in ROWS.items():
        if not any(k in runs for k in keys if k):
            continue
        vals = [[r[0] for r in runs.get(k, [])] if k else [] for k in keys]
        accs = [[r[1] for r in runs.get(k, [])] if k else [] for k in keys]
        own = [r[2] for r in runs.get(keys[1], []) if len(r) > 2] if keys[1] else []
        print(f"| {name} | {cell(vals[0], 4)} | {cell(vals[1], 4)} | {cell(accs[0], 4)} | {cell(accs[1], 4)} "
              f"| {cell(own, 4)} |")
        if name in PAPER:
            p = PAPER[name]
            print(f"| {name}, paper | {p[0]:.2f} | {p[1]:.2f} | {p[2]:.3f} | {p[3]:.3f} | - |")
        if name in PRINTED:
            p = PRINTED[name]
            print(f"| {name}, notebook's printed means | {p[0]:.4f} | {p[1]:.4f} | {p[2]:.4f} | {p[3]:.4f} | - |")
    print("\nDifference to the paper (ours - paper): ", end="")
    diffs = []
    for name, keys in ROWS.items():
        if name in PAPER and all(k in runs for k in keys):
            m = [statistics.fmean(r[j] for r in runs[k]) for j in (0, 1) for k in keys]  # recon u, s, acc u, s
            diffs.append(f"{name} " + " / ".join(f"{a - b:+.4f}" for a, b in zip(m, PAPER[name])))
    print("; ".join(diffs) or "-")
    print()
    for col, setting in ((0, "unsupervised"), (1, "supervised")):
        published = [ROWS[name][col] for name in PAPER if ROWS[name][col] in runs]
        ours = [keys[col] for name, keys in ROWS.items() if "ours" in name and keys[col] in runs]
        if len(published) < len(PAPER) or not ours:
            continue
        mean = {k: [statistics.fmean(r[j] for r in runs[k]) for j in (0, 1)] for k in runs}
        best_recon, best_acc = min(mean[k][0] for k in published), max(mean[k][1] for k in published)
        winners = [f"{name} ({mean[keys[col]][0]:.4f} < {best_recon:.4f}, {mean[keys[col]][1]:.4f} > {best_acc:.4f})"
                   for name, keys in ROWS.items() if "ours" in name and keys[col] in runs
                   and mean[keys[col]][0] < best_recon and mean[keys[col]][1] > best_acc]
        print(f"{setting}: lower recon and higher accuracy than both published rows: "
              + ("; ".join(winners) if winners else "none of our rows"))
    # The targets of issue 21 for our supervised rows, against the published numbers (the notebook's printed means)
    targets = {"nnmf_sup": ("Multi-HNTF, sup.", PRINTED["Multi-HNTF"][3], PRINTED["Multi-HNTF"][1]),
               "nnmf_two": ("SSNMF layer 1", PRINTED["layer 1 (rank 10): NMF / SSNMF"][3], PRINTED["Multi-HNTF"][1])}
    for key, (what, acc, recon) in targets.items():
        if key not in runs:
            continue
        m = [statistics.fmean(r[j] for r in runs[key]) for j in range(3)]
        holds = m[1] > acc and m[0] <= recon + 0.1
        print(f"target {key}: accuracy {m[1]:.4f} vs {what} {acc:.4f} ({m[1] - acc:+.4f}; classifier's own "
              f"{m[2]:.4f}, {m[2] - acc:+.4f}), recon {m[0]:.4f} vs {recon:.4f} + 0.1 ({m[0] - recon:+.4f}): "
              + ("holds" if holds else "does not hold"))
    print(f"\nwall time {wall:.1f} s (data {load_time:.1f} s; {args.jobs} process{'es' if args.jobs > 1 else ''}, "
          f"1 thread each, {os.cpu_count()} CPUs, torch {torch.__version__}, numpy {np.__version__}); "
          "seconds per group (sum over trials): " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items())
          + "; CPU seconds (what an idle machine needs, divided by --jobs): "
          + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
