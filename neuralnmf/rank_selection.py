"""How many topics at each level: every level's rank chosen from the data by two criteria on the exact solver.

For a level with data Y (documents, features) — the documents themselves at level 0, the codes of the level beneath
at the levels above — each candidate rank k is fitted ``replicates`` times, each time on a random part of Y: a share
``holdout`` of the documents (rows I) and of the features (columns J) is left out, and NMF is fitted to the rest from
a random start by exact alternating NNLS. One set of fits gives both criteria:

* **held-out error** (bi-cross-validation, Owen and Perry 2009): the left-out documents' codes on the kept features
  and the left-out features' loadings on the kept documents, each solved exactly by ``nnls``, predict the block
  Y[I, J] that no fit saw; its relative error, averaged over the replicates, falls while k adds structure and rises
  once k fits noise;
* **stability** (NMFk, Alexandrov et al.): the topics of the replicates (completed on the left-out features by
  their loadings), matched one to one across replicates, form k clusters; the smallest cluster silhouette (cosine)
  is near 1 when every replicate finds the same k topics, and drops when k splits or merges topics arbitrarily.

The rule that turns the two curves into one rank per level is :func:`rank_rule` (described in :func:`select_ranks`
and docs/rank_selection.md).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ._checks import check_data, check_int, check_real
from ._optional import available, require
from .initialization import nndsvd_factors
from .ops import nnls_from_products
from .threads import loop_threads, step_work

__all__ = ["select_ranks", "rank_rule", "RankSelection", "LevelCriteria", "DEFAULT_LEVELS", "DEFAULT_REPLICATES",
           "DEFAULT_THRESHOLD", "DEFAULT_HOLDOUT"]

DEFAULT_LEVELS = 2
DEFAULT_REPLICATES = 6
DEFAULT_THRESHOLD = 0.8
DEFAULT_HOLDOUT = 0.2
FINEST_TOLERANCE = 0.01
LAST_DROP_TOLERANCE = 0.05
ELBOW_SHARE = 0.03


@dataclass
class LevelCriteria:
    """The criteria of one level: one entry per candidate rank, in ``candidates`` order."""

    level: int
    candidates: list[int]
    heldout_error: list[float]
    fit_error: list[float]
    stability: list[float]
    chosen: int
    by_heldout: int
    by_stability: int | None
    heldout_se: list[float] = field(default_factory=list)

    @property
    def agree(self) -> bool:
        """Whether both criteria alone would choose the same rank."""
        return self.by_heldout == self.by_stability

    def as_dict(self) -> dict:
        return {"level": self.level, "candidates": self.candidates, "heldout_error": self.heldout_error,
                "heldout_se": self.heldout_se,
                "fit_error": self.fit_error, "stability": self.stability, "chosen": self.chosen,
                "by_heldout": self.by_heldout, "by_stability": self.by_stability, "agree": self.agree}


@dataclass
class RankSelection:
    """Result of :func:`select_ranks`: ``ranks`` (finest first) and the criteria of every level behind them."""

    ranks: tuple[int, ...]
    levels: list[LevelCriteria] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    sweep: dict = field(default_factory=dict)  # every candidate's criteria, as rank_rule takes them

    def as_dict(self) -> dict:
        return {"ranks": list(self.ranks), "levels": [c.as_dict() for c in self.levels], "settings": self.settings,
                "sweep": self.sweep}

    def table(self) -> str:
        """The criteria as a markdown table, one row per (level, candidate), the chosen rank in bold."""
        rows = ["| level | rank | held-out error | fit error | stability | |", "|---:|---:|---:|---:|---:|---|"]
        for c in self.levels:
            for k, h, f, s in zip(c.candidates, c.heldout_error, c.fit_error, c.stability):
                marks = [m for m, hit in (("chosen", k == c.chosen), ("held-out", k == c.by_heldout),
                                          ("stability", k == c.by_stability)) if hit]
                rank = f"**{k}**" if k == c.chosen else str(k)
                rows.append(f"| {c.level} | {rank} | {h:.4f} | {f:.4f} | {s:.3f} | {', '.join(marks)} |")
        return "\n".join(rows)

    def __repr__(self) -> str:
        agree = ", ".join(f"level {c.level}: {'agree' if c.agree else 'differ'}" for c in self.levels)
        return f"RankSelection(ranks={self.ranks}; {agree})"


# --- one level ----------------------------------------------------------------------------------------------------


def _dense(x: torch.Tensor) -> torch.Tensor:
    return x.to_dense() if x.layout != torch.strided else x


def _codes(Y: torch.Tensor, W: torch.Tensor, init=None) -> torch.Tensor:
    """argmin_{H >= 0} ||Y - H W^T||: Y (R, m, n), W (R, n, k) -> H (R, m, k), exact."""
    return nnls_from_products((Y @ W).mT, W, init=init).mT


def _relative(Y: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """||Y_r - P_r||^2 / ||Y_r||^2 per replicate."""
    return ((Y - P) ** 2).sum((1, 2)) / (Y * Y).sum((1, 2)).clamp_min(torch.finfo(Y.dtype).tiny)


def _anls(Y: torch.Tensor, k: int, generator: torch.Generator, max_iter: int, tol: float):
    """NMF of every replicate Y_r ~ H_r W_r^T at rank k from its NNDSVD, by exact alternating NNLS (batched)."""
    W = torch.stack([nndsvd_factors(Y[r], k, "nndsvd", generator)[0] for r in range(Y.shape[0])])
    H = _codes(Y, W)
    previous = None
    for _ in range(max_iter):
        W = _codes(Y.mT, H, init=(W > 0).mT)
        H = _codes(Y, W, init=(H > 0).mT)
        error = _relative(Y, H @ W.mT)
        if previous is not None and bool(((previous - error) <= tol * previous).all()):
            break
        previous = error
    return H, W, error


def _align(topics: torch.Tensor) -> torch.Tensor:
    """topics (R, n, k), unit columns -> the same with each replicate's columns matched one to one (Hungarian, on
    cosine similarity) to the first replicate's, then once more to the centroids of that matching."""
    R = topics.shape[0]
    reference = topics[0]
    for _ in range(2):
        aligned = []
        for r in range(R):
            rows, cols = linear_sum_assignment(-(reference.mT @ topics[r]).cpu().numpy())
            aligned.append(topics[r][:, cols[np.argsort(rows)]])
        centroid = torch.stack(aligned).mean(0)
        reference = centroid / torch.linalg.vector_norm(centroid, dim=0).clamp_min(1e-300)
    return torch.stack(aligned)


def cluster_silhouettes(points: torch.Tensor, labels: torch.Tensor, clusters: int) -> torch.Tensor:
    """Mean silhouette of each cluster, cosine distance: points (P, n), labels (P,) in [0, clusters) -> (clusters,).
    A point's silhouette is (b - a) / max(a, b), a its mean distance to the other points of its cluster, b the
    smallest mean distance to another cluster's points (scikit-learn's silhouette_samples, metric="cosine")."""
    V = points.double()
    V = V / torch.linalg.vector_norm(V, dim=1, keepdim=True).clamp_min(1e-300)
    D = (1 - V @ V.mT).clamp_min(0)
    P = V.shape[0]
    onehot = torch.zeros(P, clusters, dtype=D.dtype).index_put_((torch.arange(P), labels), torch.tensor(1.0,
                                                                                                        dtype=D.dtype))
    sizes = onehot.sum(0)
    sums = D @ onehot  # (P, clusters): distance sums to every cluster
    own = sums[torch.arange(P), labels] / (sizes[labels] - 1).clamp_min(1)
    other = (sums / sizes.clamp_min(1)).index_put_((torch.arange(P), labels), torch.tensor(math.inf, dtype=D.dtype))
    nearest = other.min(1).values
    s = (nearest - own) / torch.maximum(nearest, own).clamp_min(1e-300)
    s = torch.where(sizes[labels] > 1, s, torch.zeros_like(s))  # scikit-learn: 0 for a point alone in its cluster
    return (s @ onehot) / sizes.clamp_min(1)


def _stability(topics: torch.Tensor) -> float:
    """The smallest cluster silhouette of the replicates' matched topics (R, n, k); NaN for k = 1."""
    R, n, k = topics.shape
    if k < 2:
        return math.nan  # one topic: nothing to tell apart
    points = _align(topics).permute(0, 2, 1).reshape(R * k, n)  # point (r, c) at row r * k + c
    return float(cluster_silhouettes(points, torch.arange(k).repeat(R), k).min())


def _draws(m: int, n: int, replicates: int, holdout: float, generator: torch.Generator):
    """Per replicate: left-out rows I and columns J (at least one each, the same counts in every replicate)."""
    mi, nj = max(1, round(holdout * m)), max(1, round(holdout * n))
    rows = [torch.randperm(m, generator=generator) for _ in range(replicates)]
    cols = [torch.randperm(n, generator=generator) for _ in range(replicates)]
    return [(r[:mi], r[mi:], c[:nj], c[nj:]) for r, c in zip(rows, cols)]


def _score(Y: torch.Tensor, k: int, draws, generator, max_iter: int, tol: float):
    """(fit error, stability, the replicates' held-out errors) of rank k on dense Y (m, n) over the replicates'
    draws."""
    n = Y.shape[1]
    fit_Y = torch.stack([Y[keep_r][:, keep_c] for _, keep_r, _, keep_c in draws])
    H, W, error = _anls(fit_Y, k, generator, max_iter, tol)
    out_rows = torch.stack([Y[out_r][:, keep_c] for out_r, _, _, keep_c in draws])  # (R, |I|, n - |J|)
    out_cols = torch.stack([Y[keep_r][:, out_c] for _, keep_r, out_c, _ in draws])  # (R, m - |I|, |J|)
    block = torch.stack([Y[out_r][:, out_c] for out_r, _, out_c, _ in draws])  # (R, |I|, |J|): seen by no fit
    H_out = _codes(out_rows, W)  # codes of the left-out documents, from the kept features
    W_out = _codes(out_cols.mT, H)  # loadings of the left-out features, from the kept documents
    heldout = _relative(block, H_out @ W_out.mT)
    topics = torch.zeros(len(draws), n, k, dtype=Y.dtype)
    for r, (_, _, out_c, keep_c) in enumerate(draws):
        topics[r, keep_c], topics[r, out_c] = W[r], W_out[r]
    topics = topics / torch.linalg.vector_norm(topics, dim=1, keepdim=True).clamp_min(torch.finfo(Y.dtype).tiny)
    return float(error.mean()), _stability(topics), heldout.tolist()


def _peaks(candidates, stability, threshold) -> list[int]:
    """Stable ranks: local maxima of the stability over the candidates (higher than both neighbours; the ends
    compare with their one neighbour) that reach ``threshold``."""
    out = []
    for i, (k, s) in enumerate(zip(candidates, stability)):
        left = stability[i - 1] if i > 0 and not math.isnan(stability[i - 1]) else -math.inf
        right = stability[i + 1] if i + 1 < len(stability) else -math.inf
        if s >= threshold and s > left and s > right:
            out.append(k)
    return out


def _elbows(candidates, heldout, window: int = 3, ratio: float = 3.0) -> list[int]:
    """Ranks where the held-out error stops falling: the step into k is at least ELBOW_SHARE of the whole fall and
    gains at least ``ratio`` times any of the next ``window`` steps."""
    out = []
    fall = max(heldout) - min(heldout)
    for i in range(1, len(candidates)):
        gain_in = heldout[i - 1] - heldout[i]
        if gain_in < ELBOW_SHARE * fall:  # too small a step to be a level
            continue
        after = heldout[i + 1 : i + 1 + window]
        if not after:  # the last candidate: nothing after it to compare with
            break
        gain_out = max([heldout[i + j] - heldout[i + j + 1] for j in range(len(after))], default=0.0)
        if gain_in > 0 and gain_in >= ratio * max(gain_out, 1e-3 * heldout[i]):
            out.append(candidates[i])
    return out


def _finest(candidates, reps: np.ndarray, fall: float) -> int:
    """The finest level: the smallest rank whose held-out error is as good as the best rank's, replicate by
    replicate. Its excess (the median over the replicates of its error minus the best rank's on the same left-out
    block) is within one standard error of those paired differences or FINEST_TOLERANCE of the curve's whole
    fall; or it ends the last large drop: within LAST_DROP_TOLERANCE of the fall and under a third of the excess of
    the candidate before it. Paired and median: a replicate caught in a local minimum at exactly the right rank
    does not push the choice past it (with the mean it did: 34 for a planted 32)."""
    best = int(np.argmin(reps.mean(1)))
    paired = reps - reps[best]  # (candidates, replicates): each rank against the best on the same blocks
    excess = np.median(paired, axis=1)
    se = paired.std(axis=1) / math.sqrt(reps.shape[1])  # standard error of the paired differences
    for i, (k, e) in enumerate(zip(candidates, excess)):
        if e <= max(se[i], FINEST_TOLERANCE * fall):
            return k
        if i > 0 and e <= LAST_DROP_TOLERANCE * fall and e <= excess[i - 1] / 3:
            return k
    return candidates[best]


def select_ranks(x: torch.Tensor, levels: int = DEFAULT_LEVELS, *, candidates=None, replicates: int = DEFAULT_REPLICATES,
                 holdout: float = DEFAULT_HOLDOUT, threshold: float = DEFAULT_THRESHOLD, max_iter: int = 100,
                 tol: float = 1e-4, seed: int = 0, progress: bool | None = None) -> RankSelection:
    """Choose the rank of every level of a topic hierarchy from the data (module docstring: the criteria).

    One sweep over the candidate ranks fits ``replicates`` perturbed copies of x per candidate (batched: one exact
    NNLS call per alternating step for all of them) and scores each candidate by its held-out error and its
    stability. The rule:

    * level 0: the smallest rank whose held-out error is as good as the best rank's, replicate by replicate (the
      median of the paired differences within their standard error or 1% of the curve's fall), or that ends the
      last large drop (more topics stop predicting entries no fit saw);
    * each level above: the largest held-out *elbow* below the rank chosen beneath it (the step into it is large,
      the next steps small) whose stability reaches ``threshold``; failing that, the largest *stable peak* (a
      rank more stable than both neighbouring candidates), else the largest elbow, else an error. A planted
      hierarchy shows an elbow and a peak at every level.

    Both criteria's own choices are reported per level (``by_heldout``: the level-0 choice, the largest held-out
    elbow above; ``by_stability``: the largest stable peak), with whether they agree. :func:`rank_rule` applies
    the rule to a kept sweep (``selection.sweep``) without refitting.

    Args:
        x: (samples, features) >= 0, dense or sparse (densified: the criteria fit submatrices of it).
        levels: how many levels (ranks) to choose, finest first.
        candidates: the ranks to try (default: 1 to 24, then every second rank to 64, capped by the data's size).
        replicates: perturbed fits per candidate (at least 2; stability compares them).
        holdout: share of the documents and of the features each fit leaves out, in (0, 0.5].
        threshold: the smallest cluster silhouette a stable peak needs, in (-1, 1].
        max_iter, tol: bound and relative-decrease stop of each fit's alternating steps.
        seed: seeds the draws (the left-out parts): the same data and seed give the same ranks.
        progress: a tqdm bar over the candidates (default: only when stderr is a terminal).

    Returns:
        :class:`RankSelection` with ``ranks`` and, per level, the candidates searched (those below the rank beneath)
        with their held-out error, fit error and stability, and each criterion's own choice.

    Raises:
        TypeError / ValueError: x not a nonnegative finite float matrix; levels, replicates, holdout, threshold or
            candidates out of range; data too small for the candidates, or a level with no candidate left.
    """
    x = check_data(x, "select_ranks", "x")
    levels = check_int(levels, "select_ranks", "levels", minimum=1)
    replicates = check_int(replicates, "select_ranks", "replicates", minimum=2)
    max_iter = check_int(max_iter, "select_ranks", "max_iter", minimum=1)
    holdout = check_real(holdout, "select_ranks", "holdout", positive=True)
    threshold = check_real(threshold, "select_ranks", "threshold")
    if holdout > 0.5:
        raise ValueError(f"select_ranks: holdout must be in (0, 0.5], got {holdout}")
    if not -1 < threshold <= 1:
        raise ValueError(f"select_ranks: threshold must be in (-1, 1] (a silhouette), got {threshold}")
    m, n = x.shape
    limit = min(m - max(1, round(holdout * m)), n - max(1, round(holdout * n))) - 1
    ks = _candidates(candidates, limit, levels)
    Y = _dense(x.detach()).cpu()  # the fits are many small problems: the CPU kernels
    generator = torch.Generator().manual_seed(int(seed))
    draws = _draws(m, n, replicates, holdout, generator)
    with loop_threads(step_work(Y, max(ks) * replicates)):  # many small fits: one thread unless they are large
        scores = [_score(Y, k, draws, generator, max_iter, tol) for k in _progress(ks, progress)]
    fit_error, stability, per_replicate = (list(v) for v in zip(*scores))
    settings = {"replicates": replicates, "holdout": holdout, "threshold": threshold, "max_iter": max_iter,
                "tol": tol, "seed": seed}
    return rank_rule(ks, per_replicate, fit_error, stability, levels, threshold, settings)


def rank_rule(ks, heldout_replicates, fit_error, stability, levels: int, threshold: float = DEFAULT_THRESHOLD,
              settings: dict | None = None) -> RankSelection:
    """The rule of :func:`select_ranks` applied to measured criteria (per candidate in ``ks``: the replicates'
    held-out errors, the mean fit error, the stability): a pure function, so that a kept sweep can be judged
    again (``rank_rule(**selection.sweep, levels=...)``)."""
    reps = np.asarray(heldout_replicates, dtype=np.float64)  # (candidates, replicates)
    heldout = reps.mean(1).tolist()
    heldout_se = (reps.std(1) / math.sqrt(reps.shape[1])).tolist()
    result = RankSelection((), settings=dict(settings or {}, threshold=threshold),
                           sweep={"ks": list(ks), "heldout_replicates": reps.tolist(), "fit_error": list(fit_error),
                                  "stability": list(stability)})
    elbows = _elbows(ks, heldout)
    stable = [k for k, v in zip(ks, stability) if v >= threshold]
    peaks = _peaks(ks, stability, threshold)
    below = None
    for level in range(levels):
        lowest = levels - level + 1  # room for a smaller rank at every level above, the top one at least 2
        idx = [i for i, k in enumerate(ks) if k >= lowest and (below is None or k < below)]
        if not idx:
            raise ValueError(f"select_ranks: no candidate rank below {below} is left for level {level}; pass "
                             f"fewer levels (got {levels}) or smaller candidates")
        cand = [ks[i] for i in idx]
        h, f, s = [heldout[i] for i in idx], [fit_error[i] for i in idx], [stability[i] for i in idx]
        se = [heldout_se[i] for i in idx]
        by_stability = max((k for k in peaks if k in cand), default=None)
        if level == 0:
            by_heldout = chosen = _finest(cand, reps[idx], max(heldout) - min(heldout))
        else:
            by_heldout = max((k for k in elbows if k in cand), default=None)
            both = [k for k in elbows if k in cand and k in stable]
            chosen = max(both) if both else by_stability if by_stability is not None else by_heldout
            if chosen is None:
                raise ValueError(f"select_ranks: the data show no rank below {below} for level {level}: no stable "
                                 "peak and no held-out elbow among the candidates "
                                 f"{cand} (stability {[round(v, 3) for v in s]}); pass fewer levels")
        result.levels.append(LevelCriteria(level, cand, h, f, s, chosen, by_heldout, by_stability, se))
        result.ranks = (*result.ranks, chosen)
        below = chosen
    return result


def _candidates(candidates, limit: int, levels: int) -> list[int]:
    if candidates is None:
        grid = [k for k in [*range(1, 25), *range(26, 65, 2)] if k <= limit]
    else:
        if isinstance(candidates, (str, bytes)) or not hasattr(candidates, "__iter__"):
            raise TypeError(f"select_ranks: candidates must be a sequence of ranks, got {candidates!r}")
        grid = sorted({check_int(k, "select_ranks", "candidates[i]", minimum=1) for k in candidates})
        if grid and grid[-1] > limit:
            raise ValueError(f"select_ranks: candidate rank {grid[-1]} cannot be fitted: the fits leave out part of "
                             f"the data and keep ranks up to {limit}; pass smaller candidates or more data")
    if len(grid) < levels:
        raise ValueError(f"select_ranks: {levels} levels need at least {levels} candidate ranks, and the data "
                         f"({limit + 1} documents or features after the holdout) allow {grid}; pass fewer levels or "
                         "more data")
    return grid


def _progress(ks, progress):
    """The candidates, under a tqdm bar when ``progress`` (default: stderr is a terminal and tqdm installed)."""
    if progress is None:
        progress = sys.stderr.isatty() and available("tqdm")
    if not progress:
        return ks
    return require("tqdm.auto", "progress", "the progress bar (progress=True)").tqdm(ks, desc="select_ranks",
                                                                                    unit="rank", leave=False)
