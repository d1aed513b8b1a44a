"""Neural NMF training on sparse corpora at scale: time per epoch against the sparse-product floor, peak memory
against the size of the data, scaling with the number of documents, and the authors' NeuralNMF==1.0.0.

Run from the repository root:

    python benchmarks/bench_scale.py               # full run (about 10-15 minutes on 2 cores)
    python benchmarks/bench_scale.py --quick       # smoke run, under a minute
    python benchmarks/bench_scale.py --skip-peer   # without NeuralNMF==1.0.0
    python benchmarks/bench_scale.py --only 2 4    # some sections (1 corpus, 2 headline, 3 profile, 4 scaling, 5 peer)

Corpus (generated, never dense). A vocabulary of 50 000 words and 256 word-topics in a planted hierarchy
4 -> 16 -> 64 -> 256: each of the 4 top groups owns a quarter of the vocabulary, each of its 4 subgroups draws
4000 words from it, each of their 4 clusters 1200 words from those, and each of a cluster's 4 topics 300 words
from the cluster's, with Zipf(1) weights. A document picks one of the 64 clusters, mixes its 4 topics with
Dirichlet(0.5) weights and draws 66 tokens: 85% from its topics, 15% from a Zipf background over the whole
vocabulary. The counts become tf-idf values ((1 + ln tf) * (ln((1 + M) / (1 + df)) + 1), rows scaled to unit
norm), about 50 distinct words per document: density 0.1%, 5e6 nonzeros for 1e5 documents. Documents are
generated in blocks of 10 000 with their own seeds, so a smaller corpus holds the first documents of a larger
one (before tf-idf). Everything is scipy.sparse CSR, saved uncompressed to a temporary folder, and loaded by
each measurement with ``neuralnmf.datasets.scipy_to_torch`` into a coalesced torch sparse COO tensor.

Model and training: ``NeuralNMF(50000, (64, 16, 4))`` with U[0, 1) dictionaries (seed 0; NNDSVD would need
a dense SVD of the data), ``neuralnmf.fit`` with the reconstruction loss, Adam lr 1e-2, on the torch sparse
tensor: full batch (``batch_size=None``: the solver warm-starts from the previous epoch's supports) or
shuffled minibatches (``batch_size=10000``).

Measurements. Every configuration runs in a fresh subprocess (``python bench_scale.py --child SPEC``):

* seconds per epoch: the minimum over the epochs after the first (the first one also validates and coalesces
  the data and starts the solver cold; it is shown separately), from fit's per-epoch callback;
* the floor: the sparse x dense products an epoch cannot avoid, timed in the same process on the CSR copies
  of x and x^T the library multiplies with (``neuralnmf.sparse_products``). After the training epochs (and
  after the memory is read), a second ``fit`` call of the same model trains a few more epochs with one round
  of the products after each, so that epochs and floor see the same moments of this machine's drifting
  memory bandwidth, then a few more rounds follow; the floor is the minimum over the rounds and s/epoch the
  minimum over the epochs after the first of both calls. ``torch.sparse.mm`` on the COO tensor for
  reference: forward
  ``x @ A_0`` (k = 64) for the first layer's right-hand sides, its backward ``x^T @ V`` (k = 64), and the two
  products of the sparse reconstruction loss with the k = 4 dictionary ``D = A_0 A_1 A_2`` (``x @ D`` and
  ``x^T @ W``); the ratio epoch / floor is printed against all four and against the two k = 64 products;
* peak memory: the resident-set high-water mark (VmHWM of /proc/self/status) of the training. The mark is
  reset (``echo 5 > /proc/self/clear_refs``) once the data are loaded, so loading is not counted; the peak is
  reported as the mark minus the resident set after importing torch/neuralnmf/scipy, i.e. it includes the
  data themselves. The reference size is the sparse data (COO int64 indices + values) + the dictionaries +
  the codes of all documents (M x (64 + 16 + 4)).

Timings are noisy on a shared machine: every row reports the share of the cores that other processes used
while it ran (busy time in /proc/stat minus ours).

Peer: the authors' package NeuralNMF==1.0.0 needs dense data and solves with a per-column scipy nnls loop;
it runs on the first documents of the 1e5 corpus (densified), float64, with our dictionaries copied into
it, ``train_unsupervised`` with the reconstruction loss and plain gradient descent, against ``neuralnmf.fit``
with SGD at the same learning rate on the same slice (sparse and dense). Install it as the ``bench`` extra
(``pip install --no-build-isolation -e ".[bench]"``), or into a folder of its own (``pip install --no-deps
--target DIR NeuralNMF==1.0.0 fnnls==1.0.0``). The script imports it from the environment, else looks in
--peer-dir, benchmarks/.peer and
~/.cache/neuralnmf-bench/peers, appends the folder to sys.path in the peer's subprocess only (appended, so it
can shadow nothing: the folder also holds a top-level ``test`` package) and skips the section with a message
when the package cannot be imported.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse
import torch

from neuralnmf import NeuralNMF, fit, sparse_products
from neuralnmf.datasets import scipy_to_torch

from _harness import best_times, busy_machine_s, fmt_seconds, other_load, print_machine, say, say_table

SEED = 0
N_WORDS = 50_000
RANKS = (64, 16, 4)
TOKENS_PER_DOC = 66  # about 50 distinct words per document: density 0.1%
BACKGROUND = 0.15
BLOCK_DOCS = 10_000
LR = 1e-2
PEER_LR = 1.0
HERE = os.path.dirname(os.path.abspath(__file__))
PEER_DIRS = (os.path.join(HERE, ".peer"), os.path.expanduser("~/.cache/neuralnmf-bench/peers"))


@dataclass
class Config:
    headline_docs: int
    batch_size: int
    epochs: int  # per configuration at headline size: 1 cold + (epochs - 1) timed
    dtypes: tuple
    scaling_docs: tuple
    big_epochs: int  # epochs for scaling sizes above headline_docs
    floor_reps: int
    peer_docs: int
    peer_epochs: int
    peer_ours_epochs: int


FULL = Config(headline_docs=100_000, batch_size=10_000, epochs=4, dtypes=("float32", "float64"),
              scaling_docs=(10_000, 100_000, 1_000_000), big_epochs=3, floor_reps=3,
              peer_docs=200, peer_epochs=2, peer_ours_epochs=20)
QUICK = Config(headline_docs=10_000, batch_size=2_000, epochs=2, dtypes=("float32",),
               scaling_docs=(2_000, 10_000, 20_000), big_epochs=3, floor_reps=2,
               peer_docs=8, peer_epochs=1, peer_ours_epochs=3)


# --- helpers ------------------------------------------------------------------------------------------------


def fmt_s(s: float) -> str:
    return fmt_seconds(s, us_digits=0, ms_digits=1)


def fmt_mb(b: float) -> str:
    return f"{b / 2**20:,.0f} MB"


def status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        m = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
    return int(m.group(1)) if m else 0


def rss_bytes() -> int:
    return status_kb("VmRSS") * 1024


def hwm_bytes() -> int:
    return status_kb("VmHWM") * 1024


def reset_hwm() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def mem_available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            m = re.search(r"^MemAvailable:\s+(\d+) kB", f.read(), re.M)
        return int(m.group(1)) * 1024 if m else 0
    except OSError:
        return 0


# --- corpus -------------------------------------------------------------------------------------------------


def _zipf_cdf(n: int, s: float = 1.0) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** s
    c = np.cumsum(w)
    return c / c[-1]


def make_topics(seed: int = SEED, n_words: int = N_WORDS) -> np.ndarray:
    """(256, 300) word ids: 4 top groups x 4 subgroups x 4 clusters x 4 topics, nested word pools."""
    rng = np.random.default_rng([seed, 0])
    top_pools = np.array_split(rng.permutation(n_words), 4)
    topics = []
    for g in range(4):
        for _ in range(4):
            sub = rng.choice(top_pools[g], 4000, replace=False)
            for _ in range(4):
                cluster = rng.choice(sub, 1200, replace=False)
                for _ in range(4):
                    topics.append(rng.choice(cluster, 300, replace=False))
    return np.stack(topics)


def make_block(docs: int, block: int, topics: np.ndarray, background: np.ndarray, seed: int = SEED):
    """Word counts (docs, n_words) of one block of documents, CSR float32."""
    rng = np.random.default_rng([seed, 1, block])
    T, W = topics.shape
    L = TOKENS_PER_DOC
    cluster = rng.integers(0, T // 4, docs)
    mix = np.cumsum(rng.dirichlet([0.5] * 4, docs), axis=1)
    doc = np.repeat(np.arange(docs), L)
    sub = np.minimum((rng.random(docs * L)[:, None] > mix[doc]).sum(1), 3)
    words = topics[cluster[doc] * 4 + sub, np.searchsorted(_zipf_cdf(W), rng.random(docs * L))]
    bg = rng.random(docs * L) < BACKGROUND
    words[bg] = background[np.searchsorted(_zipf_cdf(len(background)), rng.random(int(bg.sum())))]
    return scipy.sparse.csr_matrix((np.ones(docs * L, np.float32), (doc, words)), shape=(docs, N_WORDS))


def make_counts(docs: int, seed: int = SEED) -> scipy.sparse.csr_matrix:
    topics = make_topics(seed)
    background = np.random.default_rng([seed, 2]).permutation(N_WORDS)
    blocks, done, b = [], 0, 0
    while done < docs:
        n = min(BLOCK_DOCS, docs - done)
        blocks.append(make_block(n, b, topics, background, seed))
        done, b = done + n, b + 1
    return scipy.sparse.vstack(blocks, format="csr")


def tfidf(counts: scipy.sparse.csr_matrix) -> scipy.sparse.csr_matrix:
    """(1 + ln tf) * (ln((1 + M) / (1 + df)) + 1), rows scaled to unit Euclidean norm; float32, sorted indices."""
    X = counts.astype(np.float64, copy=True)
    X.sort_indices()
    M = X.shape[0]
    df = np.bincount(X.indices, minlength=X.shape[1])
    idf = np.log((1.0 + M) / (1.0 + df)) + 1.0
    X.data = (1.0 + np.log(X.data)) * idf[X.indices]
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    X.data /= np.repeat(np.where(norms > 0, norms, 1.0), np.diff(X.indptr))
    return X.astype(np.float32)


def coo_bytes(nnz: int, elem: int) -> int:
    return nnz * (2 * 8 + elem)


# --- child processes ----------------------------------------------------------------------------------------


def run_child(spec: dict, timeout: float = 1800) -> dict:
    """Run one measurement in a fresh interpreter; returns its RESULT dict (with 'error' on failure) plus the
    share of the cores other processes used meanwhile."""
    t0, busy0 = time.perf_counter(), busy_machine_s()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
                              capture_output=True, text=True, timeout=timeout)
        out, err, rc = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        out, err, rc = exc.stdout or "", f"timed out after {timeout:.0f} s", -1
        out = out.decode() if isinstance(out, bytes) else out
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy1 = busy_machine_s()
    result = None
    for line in out.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
    if result is None:
        tail = (err or out).strip().splitlines()[-5:]
        result = {"error": f"child failed (rc {rc}): " + " / ".join(tail)}
    if busy0 is not None and busy1 is not None:
        own = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
        result["other_load"] = other_load(busy1 - busy0, own, wall)
    result["wall"] = wall
    return result


def _load(path: str, dtype: torch.dtype, rows: int | None = None):
    X = scipy.sparse.load_npz(path)
    if rows is not None:
        X = X[:rows]
    x = scipy_to_torch(X, dtype=dtype)
    del X
    gc.collect()
    return x


class FloorProducts:
    """The sparse products of one epoch as the library runs them (neuralnmf.sparse_products: CSR copies of x and
    x^T), timed a round at a time so that the rounds can be interleaved with the training epochs: this machine's
    memory bandwidth drifts by 2x within seconds, and a floor timed only after the epochs can catch a
    different moment than they did. ``result()`` gives the minimum of each product over the rounds; with
    ``coo_reference``, also torch.sparse.mm on the COO tensor (what a plain torch program would run) and the
    one-time cost of building the CSR pair; with a batch size, the time fit takes to cut one shuffled
    minibatch out of x (``sparse_products.rows``, not part of the floor) and, for reference, what
    ``x.index_select`` on the COO tensor takes for the same rows."""

    NAMES = ("x @ A0 (k=64)", "x^T @ V (k=64)", "x @ D (k=4)", "x^T @ W (k=4)")

    def __init__(self, x: torch.Tensor):
        M, N = x.shape
        g = torch.Generator().manual_seed(1)
        k0, kL = RANKS[0], RANKS[-1]
        A0, G = torch.rand(N, k0, generator=g, dtype=x.dtype), torch.rand(M, k0, generator=g, dtype=x.dtype)
        D, W = torch.rand(N, kL, generator=g, dtype=x.dtype), torch.rand(M, kL, generator=g, dtype=x.dtype)
        self.x, self.pair, self.g = x, sparse_products.csr_pair(x), g
        self.fns = [lambda: self.pair.x @ A0, lambda: self.pair.xt @ G, lambda: self.pair.x @ D,
                    lambda: self.pair.xt @ W]
        for fn in self.fns:  # warm-up
            fn()
        self.times = [[] for _ in self.fns]
        self.A0, self.G = A0, G

    def round(self) -> None:
        for fn, ts in zip(self.fns, self.times):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)

    def result(self, reps: int, coo_reference: bool, batch_size: int | None = None) -> dict:
        """Runs ``reps`` more rounds, then the minima (with ``rounds``: how many rounds they come from)."""
        for _ in range(reps):
            self.round()
        times = {name: min(ts) for name, ts in zip(self.NAMES, self.times)}
        times["rounds"] = len(self.times[0])
        x, A0, G = self.x, self.A0, self.G
        if coo_reference:
            t1, t2 = best_times([lambda: torch.sparse.mm(x, A0), lambda: torch.sparse.mm(x.t(), G)], reps)
            times["COO x @ A0 (k=64)"], times["COO x^T @ V (k=64)"] = t1, t2
            sparse_products.clear_cache()
            t0 = time.perf_counter()
            sparse_products.csr_pair(x)
            times["CSR pair (once)"] = time.perf_counter() - t0
        M = x.shape[0]
        if batch_size is not None and batch_size < M:
            idx = torch.randperm(M, generator=self.g)[:batch_size]
            times["minibatch cut (rows)"], times["minibatch cut (index_select)"] = best_times(
                [lambda: sparse_products.rows(x, idx), lambda: x.index_select(0, idx)], reps)
        return times


def _is_nnls_backward(name: str) -> bool:
    """The backward node of nnls / nnls_rhs (compiled: CppNode<...NNLS...Function>; Python fallback:
    GeneratedBackwardFor_neuralnmf_...) or the support solve it runs."""
    return (name == "neuralnmf::support_solve" or name.startswith("GeneratedBackwardFor_neuralnmf")
            or name.startswith("torch::autograd::CppNode<neuralnmf"))


def _classify(event, M: int, N: int) -> str:
    """Category of a profiler event's self time (see section 3)."""
    shapes = [s for s in (event.input_shapes or []) if isinstance(s, (list, tuple))]
    big = max(M, N)
    if "mm" in event.name and any(len(s) == 2 and N in s and s[0] * s[1] >= N * 1000 for s in shapes):
        return "sparse x dense products (CSR, neuralnmf.sparse_products)"
    if any((len(s) == 1 and s[0] > big) or (len(s) == 2 and s[0] == 2 and s[1] > big) for s in shapes):
        return "sparse index/value copies and checks (transposes, isfinite, coalesce)"
    a = event.cpu_parent
    while a is not None:
        if a.name in ("neuralnmf::nnls_rhs", "neuralnmf::nnls"):
            return "NNLS forward solves (neuralnmf::nnls_rhs / nnls, all layers)"
        if _is_nnls_backward(a.name):
            return "NNLS backward (support solves, Gram-gradient GEMMs)"
        a = a.cpu_parent
    if event.name in ("neuralnmf::nnls_rhs", "neuralnmf::nnls"):
        return "NNLS forward solves (neuralnmf::nnls_rhs / nnls, all layers)"
    if _is_nnls_backward(event.name):
        return "NNLS backward (support solves, Gram-gradient GEMMs)"
    return "other dense ops (loss, Adam, projection, autograd)"


def profile_epoch(model, x, batch_size) -> dict:
    from torch.profiler import ProfilerActivity, profile

    M, N = (batch_size or x.shape[0]), x.shape[1]
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        t0 = time.perf_counter()
        fit(model, x, epochs=1, lr=LR, batch_size=batch_size, seed=SEED + 1, progress=False)
        wall = time.perf_counter() - t0
    cats: dict[str, float] = {}
    ops: dict[tuple, list] = {}
    for e in prof.events():
        self_s = e.self_cpu_time_total / 1e6
        if self_s <= 0:
            continue
        c = _classify(e, M, N)
        cats[c] = cats.get(c, 0.0) + self_s
        key = (e.name, str(e.input_shapes)[:80])
        ops.setdefault(key, [0.0, 0])
        ops[key][0] += self_s
        ops[key][1] += 1
    top = sorted(([k[0], k[1], v[0], v[1]] for k, v in ops.items()), key=lambda r: -r[2])[:10]
    return {"wall": wall, "categories": cats, "top": top}


def child_memory(spec: dict) -> dict:
    """One full-batch training step (forward, loss, backward) in a fresh process, with the tensors autograd
    saves for the backward recorded (by storage, so views count once) and the high-water mark read after the
    forward and after the backward."""
    from neuralnmf.losses import reconstruction_loss

    dtype = getattr(torch, spec["dtype"])
    warm_up_runtime()
    x = _load(spec["path"], dtype)
    model = NeuralNMF(x.shape[1], RANKS, dtype=dtype, generator=torch.Generator().manual_seed(SEED))
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    x_ptr = x._values().data_ptr()
    saved: dict = {}

    def pack(t):
        if t.layout == torch.sparse_coo:
            ptr = t._values().data_ptr()
            kind = "x itself" if ptr == x_ptr else "copies of the sparse data"
            saved[("s", ptr)] = (kind, t._indices().numel() * 8 + t._values().numel() * t.element_size())
        elif t.layout == torch.strided:
            ptr = t.untyped_storage().data_ptr()
            kind = "parameters (no copy)" if ptr in params else "dense tensors (codes, products, Gram factors)"
            saved[("d", ptr)] = (kind, t.untyped_storage().nbytes())
        return t

    before = rss_bytes()
    reset_hwm()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
        loss = reconstruction_loss(model, x, out)
    after_forward, hwm_forward = rss_bytes(), hwm_bytes()
    loss.backward()
    hwm_backward = hwm_bytes()
    kinds: dict = {}
    for kind, nbytes in saved.values():
        n, b = kinds.get(kind, (0, 0))
        kinds[kind] = (n + 1, b + nbytes)
    data_bytes = x._indices().numel() * 8 + x._values().numel() * x.element_size()
    return {"docs": x.shape[0], "dtype": spec["dtype"], "data_bytes": data_bytes, "saved": kinds,
            "graph": after_forward - before, "forward_peak": hwm_forward - before,
            "backward_peak": hwm_backward - before}


def warm_up_runtime() -> None:
    """A tiny sparse training run, so that the lazily created runtime state (thread pools, BLAS buffers) exists
    before the baseline resident set is read."""
    g = torch.Generator().manual_seed(SEED)
    x = torch.rand(100, 500, generator=g).mul_(torch.rand(100, 500, generator=g) < 0.05).to_sparse()
    fit(NeuralNMF(500, RANKS, generator=g), x, epochs=2, progress=False)
    fit(NeuralNMF(500, RANKS, generator=g, dtype=torch.float64), x.double(), epochs=2, batch_size=50,
        progress=False)
    gc.collect()


def child_train(spec: dict) -> dict:
    dtype = getattr(torch, spec["dtype"])
    rss_imports = rss_bytes()
    warm_up_runtime()
    rss_runtime = rss_bytes()
    x = _load(spec["path"], dtype)
    rss_data = rss_bytes()
    hwm_reset = reset_hwm()
    M, N = x.shape
    elem = x.element_size()
    model = NeuralNMF(N, RANKS, dtype=dtype, generator=torch.Generator().manual_seed(SEED))
    marks = []
    t0 = time.perf_counter()
    history = fit(model, x, epochs=spec["epochs"], lr=LR, batch_size=spec["batch_size"], seed=SEED,
                  progress=False, callbacks=[lambda epoch, logs, m: marks.append(time.perf_counter())])
    hwm = hwm_bytes()  # before the floor's own tensors exist
    supports = model._cache.supports  # of the last forward: all documents, or the last minibatch
    result = {
        "docs": M, "words": N, "nnz": x._nnz(), "dtype": spec["dtype"], "batch_size": spec["batch_size"],
        "epoch_times": [float(t) for t in np.diff([t0] + marks)], "loss": history["loss"],
        "support": [float(s.sum(1).double().mean()) for s in supports] if supports else None,
        "rss_imports": rss_imports, "rss_runtime": rss_runtime, "rss_data": rss_data, "hwm": hwm,
        "hwm_reset": hwm_reset, "data_bytes": x._indices().numel() * 8 + x._values().numel() * elem,
        "factor_bytes": sum(layer.A.numel() for layer in model.layers) * elem,
        "code_bytes": M * sum(RANKS) * elem,
    }
    if spec.get("floor_reps"):
        # More epochs of the same training (a second fit call, warm), each followed by one round of the floor
        # products, then the remaining rounds.
        floor = FloorProducts(x)
        starts, ends = [], []

        def between_epochs(epoch, logs, m):
            ends.append(time.perf_counter())
            floor.round()
            starts.append(time.perf_counter())

        starts.append(time.perf_counter())
        fit(model, x, epochs=spec["floor_reps"] + 1, lr=LR, batch_size=spec["batch_size"], seed=SEED + 2,
            progress=False, callbacks=[between_epochs])
        result["interleaved_epoch_times"] = [float(e - b) for b, e in zip(starts, ends)]
        result["floor"] = floor.result(spec["floor_reps"], spec.get("coo_reference", False), spec["batch_size"])
    if spec.get("profile"):
        result["profile"] = profile_epoch(model, x, spec["batch_size"])
    return result


def _find_peer(peer_dir: str | None):
    """The NeuralNMF==1.0.0 package (module), imported from the first folder that holds it, or an error str."""
    import importlib

    for d in ([peer_dir] if peer_dir else []) + list(PEER_DIRS):
        if d and os.path.isdir(os.path.join(d, "NeuralNMF")):
            if d not in sys.path:
                sys.path.append(d)
            break
    try:
        peer = importlib.import_module("NeuralNMF")
        if not hasattr(peer, "train_unsupervised") or not hasattr(peer, "Neural_NMF"):
            return f"the NeuralNMF found at {getattr(peer, '__file__', '?')} lacks Neural_NMF/train_unsupervised"
        return peer
    except Exception as exc:  # ImportError, or a broken dependency of the package (fnnls, matplotlib)
        return f"{type(exc).__name__}: {exc}"


def child_peer(spec: dict) -> dict:
    import copy

    peer = _find_peer(spec.get("peer_dir"))
    if isinstance(peer, str):
        return {"skipped": peer}
    x = _load(spec["path"], torch.float64, rows=spec["docs"])
    M, N = x.shape
    model = NeuralNMF(N, RANKS, dtype=torch.float64, generator=torch.Generator().manual_seed(SEED))
    init = [l.A.detach().clone() for l in model.layers]
    kw = dict(loss="reconstruction", optimizer="sgd", lr=PEER_LR, progress=False)

    def ours(data, epochs):
        m = copy.deepcopy(model)
        marks = []
        t0 = time.perf_counter()
        h = fit(m, data, epochs=epochs, callbacks=[lambda e, l, mm: marks.append(time.perf_counter())], **kw)
        times = np.diff([t0] + marks)
        return m, float(times[0]), float(times[1:].min() if len(times) > 1 else times[0]), h["loss"][0]

    xd = x.to_dense()
    ours(x, 2)  # warm-up of the process (thread pool, first calls)
    _, first_sparse, t_sparse, loss_ours = ours(x, spec["ours_epochs"])
    _, first_dense, t_dense, _ = ours(xd, spec["ours_epochs"])
    m1, _, _, _ = ours(x, 1)  # one SGD step from the shared start, for the agreement check

    X = xd.T.contiguous()  # their orientation: words x documents
    net = peer.Neural_NMF([N, *RANKS])
    for layer, A in zip(net.lsqnonneglst, init):
        layer.A.data = A.clone()
    lossf = peer.Recon_Loss_Func()
    with torch.no_grad():
        loss_theirs = float(lossf(net, X, net(X)))
    times, grads_theirs = [], None
    for _ in range(spec["epochs"]):
        t0 = time.perf_counter()
        peer.train_unsupervised(net, X, loss_func="Recon Loss", epoch=1, lr=PEER_LR, optimizer="gd", verbose=False)
        times.append(time.perf_counter() - t0)
        if grads_theirs is None:  # the gradient of the first epoch, at the shared starting point
            grads_theirs = torch.cat([l.A.grad.detach().flatten() for l in net.lsqnonneglst])
    grads_ours = torch.cat([l.A.grad.detach().flatten() for l in m1.layers])
    rel = float((grads_ours - grads_theirs).norm() / grads_theirs.norm().clamp_min(1e-300))
    return {
        "docs": M, "words": N, "nnz": x._nnz(), "ours_sparse": t_sparse, "ours_sparse_first": first_sparse,
        "ours_dense": t_dense, "ours_dense_first": first_dense, "theirs": times, "loss_ours": loss_ours,
        "loss_theirs": loss_theirs, "update_rel_diff": rel, "peer_file": peer.__file__,
    }


def child_main(spec_json: str) -> int:
    spec = json.loads(spec_json)
    kinds = {"peer": child_peer, "memory": child_memory, "train": child_train}
    result = kinds[spec["kind"]](spec)
    print("RESULT " + json.dumps(result), flush=True)
    return 0


# --- sections -----------------------------------------------------------------------------------------------


def load_note(r: dict) -> str:
    share = r.get("other_load")
    return "?" if share is None else f"{100 * share:.0f}%"


def epoch_stats(r: dict):
    """(first epoch, best epoch): the best over the epochs after the first of each of the two fit calls."""
    t = r["epoch_times"]
    later = t[1:] + r.get("interleaved_epoch_times", [])[1:]
    return t[0], (min(later) if later else t[0])


def floor_of(r: dict):
    f = r["floor"]
    all4 = sum(f[k] for k in ("x @ A0 (k=64)", "x^T @ V (k=64)", "x @ D (k=4)", "x^T @ W (k=4)"))
    two = f["x @ A0 (k=64)"] + f["x^T @ V (k=64)"]
    return all4, two


def mem_of(r: dict):
    base = r["data_bytes"] + r["factor_bytes"] + r["code_bytes"]
    peak = r["hwm"] - r["rss_runtime"]
    return peak, base


def support_note(r: dict) -> str:
    return " / ".join(f"{v:.1f}" for v in r["support"]) if r.get("support") else "-"


def mode_name(bs) -> str:
    return "full batch" if bs is None else f"minibatch {bs:,}"


def section_corpus(corpora: dict) -> None:
    say("## 1. Corpus")
    say()
    rows = []
    for docs, c in sorted(corpora.items()):
        rows.append([f"{docs:,}", f"{N_WORDS:,}", f"{c['nnz']:,}", f"{100 * c['nnz'] / (docs * N_WORDS):.3f}%",
                     f"{c['nnz'] / docs:.1f}", fmt_mb(coo_bytes(c["nnz"], 4)), fmt_mb(coo_bytes(c["nnz"], 8)),
                     f"{c['seconds']:.1f} s"])
    say_table(["documents", "words", "nonzeros", "density", "nnz/doc", "COO float32", "COO float64",
               "generated in"], rows)
    say("256 word-topics in a 4 -> 16 -> 64 -> 256 hierarchy, tf-idf values with unit-norm rows (see the "
        "docstring). Never densified; COO = int64 indices (16 B) + values per nonzero.")
    say()


def section_headline(cfg: Config, results: list) -> None:
    say(f"## 2. {cfg.headline_docs:,} documents: time per epoch vs the sparse products, peak memory vs the data")
    say()
    rows, mem_rows, floor_rows = [], [], []
    for r in results:
        mode = mode_name(r.get("batch_size"))
        if "error" in r:
            rows.append([r.get("dtype_req", "?"), mode, r["error"]] + [""] * 8)
            continue
        first, best = epoch_stats(r)
        all4, two = floor_of(r)
        peak, base = mem_of(r)
        rows.append([r["dtype"], mode, fmt_s(best), fmt_s(first), fmt_s(all4), f"{best / all4:.1f}",
                     f"{best / two:.1f}", f"{len(r['epoch_times'])} + {len(r.get('interleaved_epoch_times', []))}",
                     f"{r['floor']['rounds']}", support_note(r), load_note(r)])
        mem_rows.append([r["dtype"], mode, fmt_mb(r["data_bytes"]), fmt_mb(r["factor_bytes"]),
                         fmt_mb(r["code_bytes"]), fmt_mb(base), fmt_mb(peak), f"{peak / base:.2f}",
                         fmt_mb(r["hwm"]), f"{fmt_mb(r['rss_imports'])} / {fmt_mb(r['rss_runtime'])}",
                         "yes" if r["hwm_reset"] else "no (includes loading)"])
        f = r["floor"]
        floor_rows.append([r["dtype"], mode] + [fmt_s(f[k]) for k in
                                                  ("x @ A0 (k=64)", "x^T @ V (k=64)", "x @ D (k=4)", "x^T @ W (k=4)")]
                          + [fmt_s(f[k]) if k in f else "-" for k in ("COO x @ A0 (k=64)", "COO x^T @ V (k=64)",
                                                                      "CSR pair (once)")])
    say_table(["dtype", "training", "s/epoch", "first epoch", "floor (4 SpMMs)", "epoch/floor",
               "epoch/(2 k=64 SpMMs)", "epochs", "floor rounds", "code nnz/doc (layers)", "other load"], rows)
    say("s/epoch: minimum over the epochs after the first of each fit call (epochs: those of the first call, "
        "timed for memory too, + those of the second, each followed by one round of the floor products). floor: "
        "the four sparse products of one epoch over all documents, timed in the same process, minimum over the "
        "rounds (breakdown below). other load: share of the cores used by other processes during the "
        "configuration.")
    say()
    say("code nnz/doc: mean support of each layer's codes in the last forward pass (all documents, or the last "
        "minibatch); the NNLS work grows with it.")
    say()
    say("Peak memory of training: VmHWM (reset after loading the data) minus the resident set after the imports "
        "and a tiny warm-up training run (runtime state: thread pools, BLAS buffers):")
    say()
    say_table(["dtype", "training", "sparse data", "factors", "codes (all docs)", "data+factors+codes",
               "peak", "peak/(data+factors+codes)", "VmHWM (absolute)", "RSS after imports / warm-up",
               "HWM reset"],
              mem_rows)
    say("Sparse products of one epoch (minimum over the rounds), on the CSR copies of x and x^T that the "
        "library runs (neuralnmf.sparse_products); for reference, torch.sparse.mm on the COO tensor, and the "
        "one-time cost of building the CSR pair:")
    say()
    say_table(["dtype", "training", "x @ A0 (k=64)", "x^T @ V (k=64)", "x @ D (k=4)", "x^T @ W (k=4)",
               "COO x @ A0", "COO x^T @ V", "CSR pair (once)"], floor_rows)
    good = [r for r in results if "error" not in r]
    if good:
        full = [r for r in good if r.get("batch_size") is None]
        say("Targets of issue 6:")
        say()
        trows = []
        for r in full:
            _, best = epoch_stats(r)
            all4, _ = floor_of(r)
            trows.append([f"one full-batch epoch <= 3 x its sparse products ({r['dtype']})",
                          f"{best / all4:.1f} x", "met" if best / all4 <= 3 else "NOT met"])
        for r in good:
            peak, base = mem_of(r)
            trows.append([f"peak memory <= 3 x (data + factors + codes) ({r['dtype']}, {mode_name(r['batch_size'])})",
                          f"{peak / base:.2f} x", "met" if peak / base <= 3 else "NOT met"])
        say_table(["target", "measured", "verdict"], trows)


def section_profile(results: list, mb: dict) -> None:
    say("## 3. Where the time and the memory go")
    say()
    for r in results:
        if "error" in r or "profile" not in r:
            continue
        p = r["profile"]
        wall = p["wall"]
        say(f"### One epoch under torch.profiler: {r['dtype']}, {mode_name(r['batch_size'])}, {r['docs']:,} documents")
        say()
        rows = [[name, fmt_s(t), f"{100 * t / wall:.0f}%"]
                for name, t in sorted(p["categories"].items(), key=lambda kv: -kv[1])]
        rest = max(wall - sum(p["categories"].values()), 0.0)
        rows.append(["outside any op (Python, fit's bookkeeping)", fmt_s(rest), f"{100 * rest / wall:.0f}%"])
        say_table(["self time of", "seconds", "share of the epoch"], rows)
        say(f"Profiled epoch: {fmt_s(wall)} wall (profiler overhead included). Top operators by self time:")
        say()
        say_table(["op", "input shapes", "self time", "calls"],
                  [[n, f"`{sh}`", fmt_s(t), c] for n, sh, t, c in p["top"]])
        say("`neuralnmf::nnls_rhs` is the compiled forward solve; the backward is the node "
            "`torch::autograd::CppNode<neuralnmf::...NNLSRhsFunction>` (csrc/autograd.cpp) with its "
            "`neuralnmf::support_solve` and Gram-gradient GEMMs. `aten::addmm` with a (documents, 50000)-like "
            "operand is a sparse product on the CSR copies of x or x^T.")
        say()
    if "error" in mb:
        say(f"memory breakdown failed: {mb['error']}")
        say()
        return
    say(f"### Memory of one full-batch training step: {mb['dtype']}, {mb['docs']:,} documents (fresh process)")
    say()
    say(f"Sparse data x: {fmt_mb(mb['data_bytes'])}. Tensors autograd keeps for the backward (by storage):")
    say()
    data = mb["data_bytes"]
    rows = [[kind, n, fmt_mb(b), f"{b / data:.2f}"]
            for kind, (n, b) in sorted(mb["saved"].items(), key=lambda kv: -kv[1][1])]
    say_table(["saved for backward", "tensors", "bytes", "x sizes"], rows)
    say_table(["above the resident set before the step (x loaded)", "bytes", "x sizes"], [
        ["live after the forward (graph, codes, loss)", fmt_mb(mb["graph"]), f"{mb['graph'] / data:.2f}"],
        ["peak during the forward", fmt_mb(mb["forward_peak"]), f"{mb['forward_peak'] / data:.2f}"],
        ["peak during forward + backward", fmt_mb(mb["backward_peak"]), f"{mb['backward_peak'] / data:.2f}"],
    ])
    say("The first step starts the solver cold (no previous supports) and creates the optimizer state later; "
        "the training peaks of section 2 also hold the Adam moments (2 x factors).")
    say()


def section_scaling(cfg: Config, results: list) -> None:
    say("## 4. Scaling with the number of documents (float32, same vocabulary and density)")
    say()
    ref = {}
    for r in results:
        if "error" not in r and r["docs"] == cfg.headline_docs:
            ref[r.get("batch_size")] = epoch_stats(r)[1] / r["docs"]
    rows = []
    for r in results:
        bs = r.get("batch_size")
        if "error" in r:
            rows.append([f"{r.get('docs_req', 0):,}", mode_name(bs), r["error"]] + [""] * 9)
            continue
        first, best = epoch_stats(r)
        all4, _ = floor_of(r)
        per_doc = best / r["docs"]
        peak, base = mem_of(r)
        rows.append([f"{r['docs']:,}", mode_name(bs), f"{r['nnz']:,}", fmt_s(best), fmt_s(first),
                     f"{per_doc * 1e6:.2f} us", f"{per_doc / ref[bs]:.2f}" if bs in ref else "-",
                     f"{best / all4:.1f}",
                     (f"{fmt_s(r['floor']['minibatch cut (rows)'])} ({fmt_s(r['floor']['minibatch cut (index_select)'])})"
                      if "minibatch cut (rows)" in r["floor"] else "-"),
                     fmt_mb(peak), f"{peak / base:.2f}", load_note(r)])
    say_table(["documents", "training", "nonzeros", "s/epoch", "first epoch", "time per document",
               f"per doc / per doc at {cfg.headline_docs:,}", "epoch/floor",
               "batch cut (index_select)",
               "peak memory", "peak/(data+factors+codes)", "other load"], rows)
    say("Time per document = s/epoch / documents (flat = linear). Minibatch rows only where the corpus is larger "
        "than one batch. batch cut: the time fit spends cutting one shuffled minibatch out of the whole sparse "
        "tensor (sparse_products.rows on its cached CSR copy: it grows with the batch), and in brackets what "
        "x.index_select on the COO tensor takes for the same rows (it grows with the whole tensor).")
    say()


def section_peer(r: dict) -> None:
    say("## 5. Against the authors' NeuralNMF==1.0.0")
    say()
    if "skipped" in r or "error" in r:
        say(f"Skipped: NeuralNMF==1.0.0 could not be run ({r.get('skipped') or r.get('error')}). Install it into "
            "its own folder as the docstring explains.")
        say()
        return
    theirs = min(r["theirs"])
    say(f"First {r['docs']} documents of the corpus ({r['nnz']:,} nonzeros; theirs densified to "
        f"{r['words']:,} x {r['docs']} float64), ranks {RANKS}, the same initial dictionaries, reconstruction "
        f"loss, gradient descent lr {PEER_LR:g}. Theirs: train_unsupervised, one call per epoch, "
        f"{len(r['theirs'])} epoch(s), min; ours: neuralnmf.fit with SGD, min over epochs 2.. "
        f"(warm-started supports), float64.")
    say()
    rows = [
        ["NeuralNMF==1.0.0 (dense, scipy nnls per column)", fmt_s(theirs), "1"],
        ["ours, sparse COO", fmt_s(r["ours_sparse"]), f"{theirs / r['ours_sparse']:,.0f} x faster"],
        ["ours, dense", fmt_s(r["ours_dense"]), f"{theirs / r['ours_dense']:,.0f} x faster"],
        ["ours, sparse, first epoch (cold)", fmt_s(r["ours_sparse_first"]),
         f"{theirs / r['ours_sparse_first']:,.0f} x faster"],
    ]
    say_table(["implementation", "s/epoch", "ratio"], rows)
    say(f"Same computation: initial loss {r['loss_ours']:.6g} (ours) vs {r['loss_theirs']:.6g} (theirs); the "
        f"gradients of the first epoch (all dictionaries, at the shared start) differ by "
        f"{r['update_rel_diff']:.1e} relative. Peer loaded from "
        f"`{r['peer_file']}`.")
    say(f"_Other processes used {load_note(r)} of the cores during this section._")
    say()


# --- main ---------------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small smoke run (< 1 minute)")
    parser.add_argument("--only", type=int, nargs="*", default=None, help="sections to run (1-5)")
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--peer-dir", default=None)
    parser.add_argument("--data-dir", default=None, help="where to keep the generated corpora (default: a "
                        "temporary folder, removed at the end)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        return child_main(args.child)

    cfg = QUICK if args.quick else FULL
    sections = set(args.only) if args.only else {1, 2, 3, 4, 5}
    if args.skip_peer:
        sections.discard(5)
    print_machine(
        command=f"`python benchmarks/bench_scale.py{' ' + ' '.join(argv) if argv else ''}` "
                f"({'quick' if args.quick else 'full'} run)",
        cpu_extra=f"; {mem_available_bytes() / 2**30:.1f} GiB memory available at start",
        torch_extra=f"; numpy {np.__version__}, scipy {scipy.__version__}",
    )
    t_start = time.perf_counter()

    # corpora: one draw of counts for the largest size, prefixes for the smaller ones
    sizes = {cfg.headline_docs} if sections & {1, 2, 3, 5} else set()
    if 4 in sections:
        sizes |= set(cfg.scaling_docs)
    big_skipped = []
    for docs in sorted(sizes):
        need = 5 * coo_bytes(docs * 51, 4) + (2 << 30)  # generation (parent) + training (child), generously
        if docs > cfg.headline_docs and mem_available_bytes() and need > mem_available_bytes():
            big_skipped.append(docs)
    sizes -= set(big_skipped)
    tmp = args.data_dir or tempfile.mkdtemp(prefix="neuralnmf_bench_scale_")
    os.makedirs(tmp, exist_ok=True)
    corpora = {}
    try:
        if sizes:
            t0 = time.perf_counter()
            counts = make_counts(max(sizes))
            t_counts = time.perf_counter() - t0
            for docs in sorted(sizes):
                t1 = time.perf_counter()
                X = tfidf(counts[:docs])
                path = os.path.join(tmp, f"corpus_{docs}.npz")
                scipy.sparse.save_npz(path, X, compressed=False)
                corpora[docs] = {"path": path, "nnz": X.nnz,
                                 "seconds": time.perf_counter() - t1 + t_counts * docs / max(sizes)}
                del X
            del counts
            gc.collect()
        if 1 in sections:
            section_corpus(corpora)
        for docs in big_skipped:
            say(f"_{docs:,} documents skipped: not enough memory available "
                f"({mem_available_bytes() / 2**30:.1f} GiB)._")
            say()

        headline = []
        if sections & {2, 3}:
            path = corpora[cfg.headline_docs]["path"]
            for dt in cfg.dtypes:
                for bs in (None, cfg.batch_size):
                    spec = {"kind": "train", "path": path, "dtype": dt, "batch_size": bs, "epochs": cfg.epochs,
                            "floor_reps": cfg.floor_reps, "coo_reference": dt == "float32" and bs is None,
                            "profile": dt == "float32"}
                    r = run_child(spec)
                    r.setdefault("dtype_req", dt)
                    r.setdefault("batch_size", bs)
                    headline.append(r)
        if 2 in sections:
            section_headline(cfg, headline)
        if 3 in sections:
            spec = {"kind": "memory", "path": corpora[cfg.headline_docs]["path"], "dtype": "float32"}
            section_profile(headline, run_child(spec))

        if 4 in sections:
            scaling = []
            for bs in (None, cfg.batch_size):
                for docs in cfg.scaling_docs:
                    if docs not in corpora or (bs is not None and docs <= bs):
                        continue
                    reuse = [r for r in headline if r.get("docs") == docs and r.get("dtype") == "float32"
                             and r.get("batch_size") == bs]
                    if reuse:
                        scaling.append(reuse[0])
                        continue
                    big = docs > cfg.headline_docs
                    spec = {"kind": "train", "path": corpora[docs]["path"], "dtype": "float32", "batch_size": bs,
                            "epochs": cfg.big_epochs if big else cfg.epochs,
                            "floor_reps": 2 if big else cfg.floor_reps}
                    r = run_child(spec, timeout=2400)
                    r.setdefault("docs_req", docs)
                    r.setdefault("batch_size", bs)
                    scaling.append(r)
            section_scaling(cfg, scaling)

        if 5 in sections:
            spec = {"kind": "peer", "path": corpora[cfg.headline_docs]["path"], "docs": cfg.peer_docs,
                    "epochs": cfg.peer_epochs, "ours_epochs": cfg.peer_ours_epochs, "peer_dir": args.peer_dir}
            section_peer(run_child(spec))
    finally:
        if args.data_dir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    say(f"_Total wall time {time.perf_counter() - t_start:.0f} s; 1-minute load average at the end "
        f"{os.getloadavg()[0]:.2f}._")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
