"""The Neural NMF paper's hierarchical toy corpus, generated (or the constants of its construction), and label masks.

Everything returned is batch first, like the models: ``x`` has shape (samples, features) = (documents, words),
the transpose of the papers' words x documents matrices. Labels are (samples,) long class indices, label masks
(samples,) bool with True = labeled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .._checks import check_dtype, int_sequence

__all__ = ["HierarchicalCorpus", "make_hierarchical_corpus", "random_label_mask", "TOY_DOC_SIZES", "TOY_WORD_SIZES",
           "TOY_TOPICS", "TOY_SUPERTOPICS", "TOY_VALUES", "TOY_NOISE"]

# The paper's toy matrix (protocols §2.1): documents and words come in 9 contiguous groups; word group g belongs to
# subtopic g; subtopics -> topics -> supertopics.
TOY_DOC_SIZES = (10, 10, 5, 7, 5, 20, 10, 9, 14)
TOY_WORD_SIZES = (10, 5, 10, 12, 13, 4, 11, 8, 14)
TOY_TOPICS = ((0, 1), (2, 3), (4, 5), (6, 7, 8))
TOY_SUPERTOPICS = ((0, 1), (2, 3))
TOY_VALUES = (4.0, 2.0, 1.0, 0.0)
TOY_NOISE = 0.15


@dataclass(frozen=True, repr=False)
class HierarchicalCorpus:
    """A documents x words matrix with a known topic hierarchy.

    Attributes:
        x: (samples, features) data = documents x words, batch first.
        labels: one (samples,) long tensor per level, finest first (e.g. [subtopic, topic, supertopic]).
        hierarchy: the true parent maps between consecutive levels: ``hierarchy[l][c]`` is the class at level l + 1
            that class c of level l belongs to (e.g. ``[[0, 0, 1, 1, 2, 2, 3, 3, 3], [0, 0, 1, 1]]``).
        vocabulary: one name per feature, ``"w{index}_g{group}"``, where group is the word's finest class.
        word_labels: one (features,) long tensor per level, finest first: the class each word belongs to (the
            words' counterpart of ``labels``; compare learned topics A_0 ... A_l with ``word_labels[l]``).
        clean: (samples, features) the noise-free block pattern, or None when unknown.
        num_classes: the number of classes per level, finest first.
        label_masks: {n: (samples,) bool mask with n labeled samples}; see :meth:`label_mask`.
    """

    x: torch.Tensor
    labels: list[torch.Tensor]
    hierarchy: list[list[int]]
    vocabulary: list[str]
    word_labels: list[torch.Tensor]
    clean: torch.Tensor | None
    num_classes: tuple[int, ...]
    label_masks: dict[int, torch.Tensor] = field(default_factory=dict)

    def label_mask(self, n_labeled: int) -> torch.Tensor:
        """The stored (samples,) bool mask with ``n_labeled`` labeled samples (e.g. ``L40`` of the toy file).

        For other counts draw one with :func:`random_label_mask`.
        """
        if n_labeled not in self.label_masks:
            raise ValueError(
                f"label_mask: no stored mask with n_labeled={n_labeled!r}; available: {sorted(self.label_masks)} "
                "(use neuralnmf.datasets.random_label_mask for other counts)"
            )
        return self.label_masks[n_labeled]

    @property
    def num_samples(self) -> int:
        return self.x.shape[0]

    @property
    def num_features(self) -> int:
        return self.x.shape[1]

    def __repr__(self) -> str:
        return (
            f"HierarchicalCorpus(x: {tuple(self.x.shape)} {self.x.dtype} on {self.x.device}, "
            f"num_classes={self.num_classes}, hierarchy={self.hierarchy}, "
            f"clean={'yes' if self.clean is not None else 'no'}, label_masks={sorted(self.label_masks)})"
        )


# --- validation helpers -------------------------------------------------------------------------------------------


def _int_tuple(value, name: str, *, positive: bool = True) -> tuple[int, ...]:
    out = tuple(int_sequence(value, name, positive=positive))
    if not out:
        raise ValueError(f"{name} must not be empty")
    return out


def _partition_parents(groups, n_children: int, name: str) -> list[int]:
    """Parent map from a partition ``groups`` (tuple of tuples of child indices) of range(n_children)."""
    if isinstance(groups, (str, bytes)) or not isinstance(groups, Sequence) or not groups:
        raise TypeError(f"{name} must be a non-empty sequence of sequences of ints")
    parent = [-1] * n_children
    for p, members in enumerate(groups):
        for c in _int_tuple(members, f"{name}[{p}]", positive=False):
            if not 0 <= c < n_children:
                raise ValueError(f"{name}[{p}] contains {c}, outside range(0, {n_children})")
            if parent[c] != -1:
                raise ValueError(f"{name}: {c} belongs to two groups ({parent[c]} and {p})")
            parent[c] = p
    missing = [c for c, p in enumerate(parent) if p == -1]
    if missing:
        raise ValueError(f"{name} must cover range(0, {n_children}); missing {missing}")
    return parent


def random_label_mask(
    num_samples: int, n_labeled: int, *, seed: int = 0, device: torch.device | str | None = None
) -> torch.Tensor:
    """A (num_samples,) bool mask with exactly ``n_labeled`` True entries drawn uniformly without replacement.

    Seeded by a private ``torch.Generator`` (the global RNG is untouched), so the same seed gives the same mask on
    every device.
    """
    if not 0 <= n_labeled <= num_samples:
        raise ValueError(f"n_labeled must be in [0, num_samples={num_samples}], got {n_labeled}")
    return _draw_mask(num_samples, n_labeled, torch.Generator().manual_seed(int(seed))).to(device)


# --- the hierarchical toy corpus ----------------------------------------------------------------------------------


def _block_table(sub_class: list[torch.Tensor], values: Sequence[float]) -> torch.Tensor:
    """(S, S) table Bk[doc subtopic s, word group g]: ``values[d]`` at the first level d where s and g fall into the
    same class (d = 0: the same subtopic), ``values[-1]`` when they never do."""
    n = sub_class[0].numel()
    table = torch.full((n, n), float(values[-1]), dtype=torch.float64)
    done = torch.zeros((n, n), dtype=torch.bool)
    for d, cls in enumerate(sub_class):
        same = (cls[:, None] == cls[None, :]) & ~done
        table[same] = float(values[d])
        done |= same
    return table


def _draw_mask(num_samples: int, n_labeled: int, gen: torch.Generator) -> torch.Tensor:
    mask = torch.zeros(num_samples, dtype=torch.bool)
    mask[torch.randperm(num_samples, generator=gen)[:n_labeled]] = True
    return mask


def make_hierarchical_corpus(
    *,
    seed: int = 0,
    noise: float = TOY_NOISE,
    doc_sizes: Sequence[int] = TOY_DOC_SIZES,
    word_sizes: Sequence[int] = TOY_WORD_SIZES,
    topics: Sequence[Sequence[int]] | None = TOY_TOPICS,
    supertopics: Sequence[Sequence[int]] | None = TOY_SUPERTOPICS,
    values: Sequence[float] = TOY_VALUES,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> HierarchicalCorpus:
    """The Neural NMF paper's hierarchical toy corpus: a block-pattern documents x words matrix plus uniform noise.

    Documents come in contiguous groups of ``doc_sizes`` (one per subtopic s), words in contiguous groups of
    ``word_sizes`` (word group g belongs to subtopic g). Subtopics are grouped into ``topics``, topics into
    ``supertopics``. With Bk[doc of subtopic s, word of group g] = ``values[0]`` if g = s, ``values[1]`` if s and g
    share a topic, ``values[2]`` if they share a supertopic, ``values[3]`` otherwise, the data is

        x = Bk + noise * U,   U ~ Uniform[0, 1) i.i.d.

    The defaults reproduce the construction of ``synthetic_noise.mat`` (90 documents x 87 words, values 4/2/1/0,
    noise 0.15; the file's own noise draw is not reproducible, load it with :func:`load_toy_table`).

    Args:
        seed: seeds a private ``torch.Generator`` (CPU, float64 draw, then cast), so a seed gives the same data on
            every device and the global RNG is untouched.
        noise: amplitude of the uniform noise, >= 0.
        doc_sizes, word_sizes: group sizes, one per subtopic (same length).
        topics: partition of the subtopic indices into topics, or None for a single level.
        supertopics: partition of the topic indices into supertopics, or None (then ``values[2]`` is unused).
        values: the four block values (same subtopic, same topic, same supertopic, otherwise), nonnegative.
        dtype: torch.float32 or torch.float64.
        device: where the tensors live.

    Returns:
        A :class:`HierarchicalCorpus` with ``labels`` = [subtopic, topic, supertopic] (levels present only),
        ``hierarchy`` the parent maps, ``clean`` = Bk, and ``label_masks`` {0, 10, ..., M}: seeded random masks with
        that many labeled documents (drawn like the file's L0 ... L90, independently per count).
    """
    check_dtype(dtype, "make_hierarchical_corpus")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    doc_sizes = _int_tuple(doc_sizes, "doc_sizes")
    word_sizes = _int_tuple(word_sizes, "word_sizes")
    if len(doc_sizes) != len(word_sizes):
        raise ValueError(
            f"doc_sizes and word_sizes need one entry per subtopic; got {len(doc_sizes)} and {len(word_sizes)}"
        )
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) != 4:
        raise ValueError(f"values must be 4 numbers (same subtopic, topic, supertopic, otherwise), got {values!r}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) and v >= 0 for v in values):
        raise ValueError(f"values must be finite numbers >= 0, got {values!r}")
    if topics is None and supertopics is not None:
        raise ValueError("supertopics needs topics: pass topics too, or supertopics=None")

    n_sub = len(doc_sizes)
    parents: list[list[int]] = []
    if topics is not None:
        parents.append(_partition_parents(topics, n_sub, "topics"))
        if supertopics is not None:
            parents.append(_partition_parents(supertopics, len(topics), "supertopics"))
    num_classes = (n_sub, *(max(p) + 1 for p in parents))

    # class of every subtopic at every level, finest first
    sub_class = [torch.arange(n_sub)]
    for p in parents:
        sub_class.append(torch.tensor(p)[sub_class[-1]])
    doc_sub = torch.repeat_interleave(torch.arange(n_sub), torch.tensor(doc_sizes))
    word_sub = torch.repeat_interleave(torch.arange(n_sub), torch.tensor(word_sizes))

    table = _block_table(sub_class, [*values[: len(parents) + 1], values[3]])
    clean64 = table[doc_sub][:, word_sub]
    gen = torch.Generator().manual_seed(int(seed))
    x64 = clean64 + float(noise) * torch.rand(clean64.shape, generator=gen, dtype=torch.float64)
    M = clean64.shape[0]
    counts = sorted({*range(0, M + 1, 10), M})
    masks = {n: _draw_mask(M, n, gen).to(device) for n in counts}  # same generator, after the noise

    return HierarchicalCorpus(
        x=x64.to(dtype=dtype, device=device),
        labels=[c[doc_sub].to(device) for c in sub_class],
        hierarchy=parents,
        vocabulary=[f"w{i}_g{g}" for i, g in enumerate(word_sub.tolist())],
        word_labels=[c[word_sub].to(device) for c in sub_class],
        clean=clean64.to(dtype=dtype, device=device),
        num_classes=tuple(int(c) for c in num_classes),
        label_masks=masks,
    )
