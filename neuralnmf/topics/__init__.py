"""Topics: top words per topic, the topic hierarchy encoded by a chain of dictionaries, a printable tree, and the
tree's export (JSON, a self-contained HTML view) with every document's path through the levels.

* ``hierarchy``: the words of every level's topics, the parents read off A_1 .. A_L, the printable tree.
* ``export``: the tree as plain data and JSON, the codes of every level, each document's path.
* ``html``: the tree as one self-contained, interactive HTML file.

A hierarchy is the list of dictionaries ``As = [A_0 (features, k_0), A_1 (k_0, k_1), ..., A_L (k_{L-1}, k_L)]``.
The level-l topics in input space are the columns of A_0 A_1 ⋯ A_l (features, k_l); topic i of level l - 1 feeds
topic j of level l with weight A_l[i, j].
"""

from .export import DocumentPaths, document_paths, from_json, level_codes, to_json, topic_tree
from .html import to_html
from .hierarchy import TopicHierarchy, format_hierarchy_tree, hierarchy_from_dictionaries, layer_topics, top_words

__all__ = ["layer_topics", "top_words", "TopicHierarchy", "hierarchy_from_dictionaries", "format_hierarchy_tree",
           "topic_tree", "to_json", "from_json", "document_paths", "DocumentPaths", "level_codes", "to_html"]
