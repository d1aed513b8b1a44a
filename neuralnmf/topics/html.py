"""The topic tree as one self-contained, interactive HTML file: no network, no external script or style.

The page embeds the tree of :func:`neuralnmf.topics.topic_tree` as JSON (``<script type="application/json"
id="topic-tree">``) and draws it with a few lines of plain JavaScript:

* a table per level: topics, coherence (NPMI, C_V, UMass) and diversity when the tree carries ``quality``, the tree
  measures when it carries ``summary``;
* the tree, top level first, each topic a collapsible node (``<details class="node" data-id="L{l}.T{t}">``) with
  its share, document count and top words (bars: weight relative to the top word), its children inside it; topics
  that feed no parent are listed after the tree;
* a word filter that marks the topics holding a word, and expand / collapse all;
* a document's path: type a document's number (or name) and the page lists its topic at every level with that
  code's share, marks those topics in the tree and opens them. ``page.html#doc=12`` opens with document 12 shown.
"""

from __future__ import annotations

import html as _html
import json
from collections.abc import Sequence
from pathlib import Path

import torch

from .export import _plain, topic_tree

__all__ = ["to_html", "html_page"]

_STYLE = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em;color:#222;max-width:1200px}
h1{font-size:1.4em;margin:0 0 .3em} h2{font-size:1.1em;margin:1.2em 0 .4em}
table{border-collapse:collapse;margin:.3em 0} td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}
th:first-child,td:first-child{text-align:left} .muted{color:#777}
details.node{margin:2px 0 2px 1.1em;border-left:2px solid #dde} details.node>summary{cursor:pointer;padding:1px 4px}
details.node.hit>summary{background:#fff3b0} details.node.on-path>summary{background:#c8e6ff;font-weight:600}
.id{font-family:ui-monospace,monospace;color:#336} .stat{color:#666;font-size:.9em;margin:0 .4em}
.w{display:inline-block;margin:0 .35em 0 0} .bar{display:inline-block;height:.5em;background:#7a9cc6;margin-left:2px}
.words{margin:.2em 0 .3em 1.6em;font-size:.92em} #controls input{margin-right:.6em}
#path li{margin:.15em 0} .panel{border:1px solid #ddd;padding:.4em .8em;border-radius:4px;margin:.5em 0}
"""

_SCRIPT = r"""
(function(){
const T = JSON.parse(document.getElementById('topic-tree').textContent);
const L = T.levels.length - 1, el = (tag, cls, text) => { const e = document.createElement(tag);
  if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; };
const pct = v => v === null || v === undefined ? '' : (100 * v).toFixed(1) + '%';
const num = v => v === null || v === undefined ? '–' : (typeof v === 'number' ? v.toFixed(3) : String(v));
const topic = (l, t) => T.levels[l].topics[t];
const wordsLine = (tp, n) => tp.words.slice(0, n).map(w => w[0]).join(', ') || '(empty topic)';
// per-level table
const st = document.getElementById('levels'), head = el('tr');
const cols = ['level', 'topics'];
if (T.quality) cols.push('NPMI', 'C_V', 'UMass', 'diversity');
if (T.summary) cols.push('one-child parents', 'largest topic (documents)');
cols.forEach(c => head.appendChild(el('th', null, c))); st.appendChild(head);
T.levels.forEach((lv, l) => { const tr = el('tr'); const q = T.quality ? T.quality[l] : null;
  const s = T.summary ? T.summary[l] : null; const cells = [String(l), String(lv.topics.length)];
  if (q) cells.push(num(q.c_npmi && q.c_npmi.mean), num(q.c_v && q.c_v.mean), num(q.u_mass && q.u_mass.mean),
                    num(q.diversity));
  if (s) cells.push(l ? pct(s.one_child_share) : '–', pct(s.largest_documents_share));
  cells.forEach(c => tr.appendChild(el('td', null, c))); st.appendChild(tr); });
// tree
const nodes = {};
function node(l, t, linkShare) {
  const tp = topic(l, t), d = el('details', 'node'), s = el('summary');
  d.dataset.id = tp.id; d.dataset.words = tp.words.map(w => w[0]).join(' ');
  s.appendChild(el('span', 'id', tp.id));
  if (linkShare !== null) s.appendChild(el('span', 'stat', '[' + linkShare.toFixed(2) + ']'));
  if (tp.share !== null) s.appendChild(el('span', 'stat', pct(tp.share) + ' of weight'));
  if (tp.documents !== null) s.appendChild(el('span', 'stat', tp.documents + ' docs'));
  s.appendChild(el('span', null, wordsLine(tp, 5))); d.appendChild(s);
  const ws = el('div', 'words');
  tp.words.forEach(w => { const x = el('span', 'w', w[0]); const b = el('span', 'bar');
    b.style.width = Math.round(30 * w[1]) + 'px'; x.appendChild(b); ws.appendChild(x); });
  d.appendChild(ws);
  if (l > 0) tp.children.forEach(c => d.appendChild(node(l - 1, c, topic(l - 1, c).parent_weight)));
  nodes[tp.id] = d; return d;
}
const tree = document.getElementById('tree');
T.levels[L].topics.forEach(tp => tree.appendChild(node(L, tp.index, null)));
for (let l = L - 1; l >= 0; l--) {
  const orphans = T.levels[l].topics.filter(tp => tp.parent === -1);
  if (orphans.length) { tree.appendChild(el('p', 'muted', 'Topics of level ' + l + ' that feed no level-' +
                                              (l + 1) + ' topic:'));
    orphans.forEach(tp => tree.appendChild(node(l, tp.index, null))); }
}
document.getElementById('expand').onclick = () => Object.values(nodes).forEach(d => d.open = true);
document.getElementById('collapse').onclick = () => Object.values(nodes).forEach(d => d.open = false);
function openUp(d) {
  for (let p = d; p && p.tagName === 'DETAILS'; p = p.parentElement.closest('details')) p.open = true; }
document.getElementById('find').oninput = e => { const w = e.target.value.trim().toLowerCase(); let n = 0;
  Object.values(nodes).forEach(d => { const hit = w !== '' && d.dataset.words.split(' ').includes(w);
    d.classList.toggle('hit', hit); if (hit) { n++; openUp(d.parentElement.closest('details') || d); } });
  document.getElementById('found').textContent = w ? n + ' topics' : ''; };
// a document's path
const D = T.documents, out = document.getElementById('path'), input = document.getElementById('doc');
function showPath(q) {
  Object.values(nodes).forEach(d => d.classList.remove('on-path')); out.textContent = '';
  if (!D) { out.textContent = 'The tree was exported without documents.'; return; }
  let i = /^\d+$/.test(q) ? parseInt(q, 10) : (D.names ? D.names.indexOf(q) : -1);
  if (!(i >= 0 && i < D.count)) { out.textContent = 'No document ' + q + ' (0 to ' + (D.count - 1) + ').'; return; }
  const head = el('div', null, 'Document ' + i + (D.names ? ' (' + D.names[i] + ')' : '') + ', top level first:');
  head.id = 'path-title'; out.appendChild(head); const ol = el('ol');
  for (let l = L; l >= 0; l--) { const t = D.paths[i][l], li = el('li');
    if (t < 0) { li.textContent = 'level ' + l + ': no topic (all codes zero)'; ol.appendChild(li); continue; }
    const tp = topic(l, t); li.dataset.id = tp.id;
    li.textContent = 'level ' + l + ': ' + tp.id + ' (' + pct(D.weights[i][l]) + ' of its codes) — ' + wordsLine(tp, 6);
    ol.appendChild(li); const d = nodes[tp.id]; d.classList.add('on-path'); openUp(d); }
  out.appendChild(ol);
}
document.getElementById('show').onclick = () => showPath(input.value.trim());
input.onkeydown = e => { if (e.key === 'Enter') showPath(input.value.trim()); };
if (!D) { input.disabled = true; document.getElementById('show').disabled = true; }
const m = /doc=([^&]+)/.exec(location.hash); if (m) { input.value = decodeURIComponent(m[1]); showPath(input.value); }
document.body.dataset.ready = 'yes';
})();
"""


def html_page(tree: dict, title: str = "Topic tree") -> str:
    """The HTML page of a tree dict (:func:`neuralnmf.topics.topic_tree`)."""
    data = json.dumps(_plain(tree), allow_nan=False, ensure_ascii=False)
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")  # inert inside <script>
    ranks = " → ".join(map(str, tree.get("ranks", [])))
    docs = tree.get("documents")
    about = (f"Ranks {ranks}, finest level (0) first; level l groups the topics of level l - 1. "
             + (f"{docs['count']} documents. " if docs else "")
             + "A topic's share is its part of all topic weight at its level; docs counts the documents whose "
               "path passes through it (their finest topic is it or below it); [x] is the share of a topic's "
               "weight that goes to its parent.")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{_html.escape(title)}</title><style>{_STYLE}</style></head>
<body>
<h1>{_html.escape(title)}</h1>
<p class="muted">{_html.escape(about)}</p>
<h2>Levels</h2><table id="levels"></table>
<h2>A document's path</h2>
<div class="panel"><input id="doc" placeholder="document number or name" size="28"><button id="show">show path</button>
<div id="path" class="muted">Type a document's number (0 = the first row) or its name.</div></div>
<h2>Tree</h2>
<div id="controls"><button id="expand">expand all</button><button id="collapse">collapse all</button>
<input id="find" placeholder="find a word" size="18"><span id="found" class="muted"></span></div>
<div id="tree"></div>
<script type="application/json" id="topic-tree">{data}</script>
<script>{_SCRIPT}</script>
</body></html>
"""


def to_html(model_or_tree, vocabulary: Sequence[str] | None = None, x: torch.Tensor | None = None, *, path=None,
            title: str = "Topic tree", **kwargs) -> str:
    """The topic tree as one self-contained interactive HTML page (see the module), written to ``path`` if given.

    ``model_or_tree``: a tree dict from :func:`neuralnmf.topics.topic_tree`, or a NeuralNMF / [A_0, ..., A_L] with
    its ``vocabulary`` (and documents ``x`` for shares, counts and paths; other keywords go to ``topic_tree``).
    """
    tree = model_or_tree if isinstance(model_or_tree, dict) else topic_tree(model_or_tree, vocabulary, x, **kwargs)
    page = html_page(tree, title)
    if path is not None:
        Path(path).write_text(page, encoding="utf-8")
    return page
