"""Metrics: relative error, accuracy, the papers' least-squares "classifier" accuracy, and recovery scores against a
known topic hierarchy, topic coherence (NPMI, C_V, UMass, as gensim's) and diversity, and measures of the tree.

Tensor-valued metrics return 0-d tensors on the inputs' device (no host synchronisation). The matching-based scores
(:func:`match_topics`, :func:`topic_recovery_score`, :func:`hierarchy_recovery`) solve an assignment problem with
scipy on the host and return Python floats.

Conventions: codes are batch first, (samples, k); labels are (samples,) integer class indices; masks are (samples,)
bool with True = use this sample.
"""

from .coherence import (DEFAULT_WINDOWS, MEASURES, CooccurrenceCounts, document_counts, topic_coherence,
                        topic_diversity, topic_quality, window_counts)
from .classification import accuracy, least_squares_accuracy, least_squares_fit, protocol_accuracy
from .errors import factorization_error, frobenius_error, level_errors, relative_error
from .recovery import HierarchyRecovery, TopicMatching, hierarchy_recovery, match_topics, topic_recovery_score
from .tree import tree_summary

__all__ = [
    "relative_error",
    "factorization_error",
    "frobenius_error",
    "level_errors",
    "accuracy",
    "least_squares_fit",
    "least_squares_accuracy",
    "protocol_accuracy",
    "TopicMatching",
    "match_topics",
    "topic_recovery_score",
    "HierarchyRecovery",
    "hierarchy_recovery",
    "topic_coherence",
    "topic_diversity",
    "topic_quality",
    "window_counts",
    "document_counts",
    "CooccurrenceCounts",
    "MEASURES",
    "DEFAULT_WINDOWS",
    "tree_summary",
]
