"""Training speed: 10000 epochs of a 3-layer supervised Neural NMF on the paper's toy matrix, ours vs the
authors' NeuralNMF==1.0.0 (whose demo notebook needed 7 h 08 min for this run).

    python benchmarks/bench_train.py [--epochs 10000] [--repeats 3] [--peer-epochs 3] [--peer-dir DIR] [--data PATH]
    python benchmarks/bench_train.py --supervision-cost [--epochs 50] [--documents 20000] [--words 20000]

The second form times what supervision costs per epoch against unsupervised training of the same model on a sparse
planted corpus (labels at the deepest level, at two levels, on half the documents).

Ours: NeuralNMF(87, (9, 4, 2), num_classes=2), float64, projection A >= 0 after every step, every epoch timed
end to end by neuralnmf.fit, with the library's defaults and with the earlier setup (NNDSVDa, energy loss + L2
label loss, absolute Adam lr 0.01); wall and CPU time of each. Theirs: Neural_NMF([87, 9, 4, 2], 2)
with train_supervised exactly as the demo runs it (energy loss + 1e-4 L2 label loss, projected gradient descent
lr [1, 0.01], 31 NNLS forward passes per epoch because of its hard-coded 30 classifier steps); a few epochs are
timed and scaled to the full run. The peer is the ``bench`` extra (``pip install --no-build-isolation -e
".[bench]"``), or a copy in a folder of its own found with ``--peer-dir`` (benchmarks/bench_nnls.py explains).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from neuralnmf import NeuralNMF, fit
from neuralnmf.datasets import find_data_file, load_toy_table

from _harness import cpu_model, md_table, say

DEFAULT_PEER_DIR = os.path.expanduser("~/.cache/neuralnmf-bench/peers")


SETUPS = ("defaults", "nndsvda")
"""defaults: NeuralNMF(87, (9, 4, 2), num_classes=2) and fit(y=..., epochs=...), nothing else given (the "nmf" start
from the data, hierarchical loss, relative Adam steps, lam = 1). nndsvda: the setup timed before the defaults
changed: NNDSVDa, the papers' energy loss, Adam with absolute lr 0.01, the L2 label loss weighted as its mean."""


def ours(data, epochs: int, repeats: int, setup: str) -> tuple[float, float]:
    """(wall, CPU) seconds of the fastest of `repeats` identical runs (min: the run least disturbed by other
    processes); CPU time (all threads of this process) does not count the time the process waited for a core."""
    y = data.labels[2]

    def make():
        if setup == "defaults":
            return NeuralNMF(87, (9, 4, 2), num_classes=2, dtype=torch.float64,
                             generator=torch.Generator().manual_seed(0))
        return NeuralNMF(87, (9, 4, 2), num_classes=2, init="nndsvda", data=data.x, dtype=torch.float64,
                         classifier="papers", generator=torch.Generator().manual_seed(0))

    def train(model, n):
        if setup == "defaults":
            return fit(model, data.x, y=y, epochs=n, progress=False)
        return fit(model, data.x, y=y, loss="energy", lam=87 / 2, epochs=n, lr=0.01, relative_lr=False,
                   progress=False)

    times = []
    for _ in range(repeats):
        train(make(), 2)  # warm-up, on a throwaway model
        model = make()
        cpu0 = time.process_time()
        history = train(model, epochs)
        cpu = time.process_time() - cpu0
        times.append((history.seconds, cpu))
        acc = (model(data.x).logits.argmax(1) == y).double().mean().item()
        print(f"ours ({setup}): {epochs} epochs in {history.seconds:.2f} s wall, {cpu:.2f} s CPU "
              f"({history.seconds / epochs * 1e3:.2f} ms/epoch); final loss {history['loss'][-1]:.5f}, "
              f"training accuracy {acc:.3f}", flush=True)
    return min(times)


def theirs(data, epochs: int, peer_dir: str) -> float | None:
    if os.path.isdir(peer_dir) and peer_dir not in sys.path:
        sys.path.append(peer_dir)
    try:
        import NeuralNMF as peer
    except ImportError as exc:
        print(f"NeuralNMF==1.0.0 not available ({exc}); install it with the command in this file's docstring")
        return None
    X = data.x.T.contiguous()  # their orientation: words x documents
    labels = data.labels[2]
    L = torch.ones(2, X.shape[1], dtype=torch.float64)
    net = peer.Neural_NMF([87, 9, 4, 2], 2).double()
    loss = peer.Energy_Loss_Func(lambd=1e-4, classification_type="L2")
    start = time.perf_counter()
    peer.train_supervised(net, X, labels, L=L, loss_func=loss, epoch=epochs, lr=[1, 0.01], weight_decay=1,
                          optimizer="gd", verbose=False)
    seconds = time.perf_counter() - start
    print(f"NeuralNMF==1.0.0: {epochs} epochs in {seconds:.2f} s ({seconds / epochs:.2f} s/epoch)")
    return seconds / epochs


SUPERVISION_SETUPS = ("unsupervised", "labels at the deepest level", "labels at two levels", "half the labels")


def supervision_cost(epochs: int, documents: int, words: int, ranks=(50, 20, 6)) -> list[list]:
    """Seconds per epoch of the same model trained without labels, with labels at the deepest level, at two levels
    and on half the documents (the default 10% hold-out included), on a sparse planted corpus; the start is made
    before the clock starts (history.seconds times the epochs only)."""
    from neuralnmf.datasets import make_planted_corpus

    corpus = make_planted_corpus(documents=documents, words=words, ranks=ranks, sparse=True, zipf=1.0, seed=0,
                                 dtype=torch.float32)
    x, fine, coarse = corpus.x, corpus.labels[0], corpus.labels[-1]
    half = torch.rand(documents, generator=torch.Generator().manual_seed(0)) < 0.5
    runs = {
        "unsupervised": (None, {}),
        "labels at the deepest level": (ranks[-1], {"y": coarse}),
        "labels at two levels": ({0: ranks[0], len(ranks) - 1: ranks[-1]}, {"y": {0: fine, len(ranks) - 1: coarse}}),
        "half the labels": (ranks[-1], {"y": coarse, "label_mask": half}),
    }
    start = NeuralNMF(words, ranks)
    start.initialize(x)  # one flat start, copied into every row: only the epochs are compared
    rows, base = [], None
    for name in SUPERVISION_SETUPS:
        num_classes, labels = runs[name]
        model = NeuralNMF(words, ranks, num_classes, supervised_start=False, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            for layer, source in zip(model.layers, start.layers):
                layer.A.copy_(source.A)
        fit(model, x, epochs=2, progress=False, **labels)  # warm-up (the classifiers start here when labeled)
        history = fit(model, x, epochs=epochs, validation_patience=epochs + 1, progress=False, **labels)
        per_epoch = history.seconds / history.epochs
        base = per_epoch if base is None else base
        rows.append([name, history.epochs, f"{per_epoch * 1e3:.1f}", f"{per_epoch / base:.2f}x",
                     history.selected.get("holdout", 0)])
        print(f"{name}: {per_epoch * 1e3:.1f} ms/epoch", flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3, help="runs of ours; the fastest is reported")
    parser.add_argument("--peer-epochs", type=int, default=3)
    parser.add_argument("--peer-dir", default=DEFAULT_PEER_DIR)
    parser.add_argument("--data", default=None, help="synthetic_noise.mat (default: ../shared/data)")
    parser.add_argument("--supervision-cost", action="store_true",
                        help="only the cost of supervision per epoch against unsupervised training, on a sparse "
                        "planted corpus (--documents x --words, ranks 50-20-6, --epochs)")
    parser.add_argument("--documents", type=int, default=20000)
    parser.add_argument("--words", type=int, default=20000)
    args = parser.parse_args(argv)
    if args.supervision_cost:
        say(f"machine: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} "
            f"threads; 1-minute load average {os.getloadavg()[0]:.2f}\n")
        rows = supervision_cost(args.epochs, args.documents, args.words)
        say(md_table(["training", "epochs", "ms per epoch", "vs unsupervised", "labels held out"], rows))
        say(f"\n1-minute load average at the end: {os.getloadavg()[0]:.2f}")
        return 0
    path = args.data or find_data_file("synthetic_noise.mat")
    if path is None:
        print("synthetic_noise.mat not found; pass --data")
        return 0
    data = load_toy_table(path)
    say(f"machine: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} "
        f"threads; 1-minute load average {os.getloadavg()[0]:.2f}\n")
    mine = {setup: ours(data, args.epochs, args.repeats, setup) for setup in SETUPS}
    per_epoch_theirs = theirs(data, args.peer_epochs, args.peer_dir)
    t_ours = mine["defaults"][0]
    rows = [[f"ours, {setup} (fastest of {args.repeats})", args.epochs, f"{wall:.2f}", f"{cpu:.2f}",
             f"{wall / t_ours:.2f}"] for setup, (wall, cpu) in mine.items()]
    if per_epoch_theirs is not None:
        t_theirs = per_epoch_theirs * args.epochs
        rows.append([f"NeuralNMF==1.0.0 (from {args.peer_epochs} epochs)", args.epochs,
                     f"{t_theirs:.0f} ({t_theirs / 3600:.1f} h)", "", f"{t_theirs / t_ours:.0f} x slower"])
    rows.append(["authors' notebook (printed wall time)", 10000, "25680 (7 h 08 min)", "", "—"])
    say()
    say(md_table(["run", "epochs", "seconds (wall)", "seconds (CPU)", "ratio"], rows))
    say(f"\n1-minute load average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
