"""A small picture model (nodes, edges, nested clusters), its DOT text, and rendering by file extension.

The builders in this package fill a `Picture`; `limit` trims it for legibility; `to_dot` writes
Graphviz's language; `render` writes .dot itself or runs Graphviz's `dot` for .svg/.png/.pdf.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import Error

FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf"}
TEXT_FORMATS = {".dot", ".gv"}

# how each kind of node looks: Graphviz attributes
STYLES: dict[str, dict[str, str]] = {
    "op": {"fillcolor": "#e8eef7", "color": "#5b7db1"},
    "const": {"fillcolor": "#ffffff", "color": "#aaaaaa", "fontcolor": "#666666", "style": "rounded,filled,dashed"},
    "data": {"fillcolor": "#eeeeee", "color": "#888888"},
    "param": {"fillcolor": "#ffe9a8", "color": "#c9a227"},
    "input": {"fillcolor": "#eeeeee", "color": "#888888", "shape": "ellipse", "style": "filled"},
    "output": {"fillcolor": "#c9f2c9", "color": "#3a8a3a", "penwidth": "2"},
    "grad": {"fillcolor": "#f7dede", "color": "#b35b5b"},
    "grad_output": {"fillcolor": "#f2b8b8", "color": "#a33a3a", "penwidth": "2"},
    "module": {"fillcolor": "#dfe9f7", "color": "#3b6fb6", "penwidth": "1.5"},
    "elided": {"shape": "plaintext", "style": "", "fontcolor": "#888888"},
}
GRAPH_DEFAULTS = {"fontname": "Helvetica", "fontsize": "11"}
NODE_DEFAULTS = {"shape": "box", "style": "rounded,filled", "fontname": "Helvetica", "fontsize": "10"}
EDGE_DEFAULTS = {"color": "#666666", "arrowsize": "0.7", "fontname": "Helvetica", "fontsize": "9"}
CLUSTER_STYLES: dict[str, dict[str, str]] = {
    "kernel": {"style": "rounded,filled", "fillcolor": "#fbf3e4", "color": "#d08c2c"},
    "view": {"style": "rounded,dashed", "color": "#999999"},
    "module": {"style": "rounded", "color": "#7a94c0"},
}


@dataclass
class PNode:
    id: str
    lines: list[str]
    kind: str = "op"
    cluster: int | None = None


@dataclass
class PEdge:
    src: str
    dst: str
    label: str = ""


@dataclass
class PCluster:
    label: str
    kind: str
    parent: int | None = None


@dataclass
class Picture:
    """What to draw. Edges point from an input to the node that reads it; `roots` are the results."""

    nodes: dict[str, PNode] = field(default_factory=dict)
    edges: list[PEdge] = field(default_factory=list)
    clusters: list[PCluster] = field(default_factory=list)
    roots: list[str] = field(default_factory=list)
    title: str = ""

    def add(self, lines: list[str], kind: str = "op", cluster: int | None = None) -> str:
        """A new node with these label lines, a kind from STYLES and an optional cluster; returns its id."""
        node_id = f"n{len(self.nodes)}"
        self.nodes[node_id] = PNode(node_id, lines, kind, cluster)
        return node_id


def quote(text: str) -> str:
    """A DOT double-quoted string showing `text` literally; newlines become centred line breaks."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "")
    return '"' + escaped.replace("\n", "\\n") + '"'


def _attrs(attrs: dict[str, str]) -> str:
    return ", ".join(f"{k}={quote(v)}" for k, v in attrs.items())


def limit(picture: Picture, max_nodes: int | None, depth: int | None) -> Picture:
    """Keep the nodes nearest the roots (at most `max_nodes`, at most `depth` edges away); each kept
    node whose inputs were cut gets a "..." marker saying how many."""
    if max_nodes is not None and max_nodes < 1:
        raise ValueError(f"max_nodes must be at least 1, got {max_nodes}")
    if depth is not None and depth < 0:
        raise ValueError(f"depth must be >= 0, got {depth}")
    if (max_nodes is None or len(picture.nodes) <= max_nodes) and depth is None:
        return picture
    inputs: dict[str, list[str]] = {}
    for e in picture.edges:
        inputs.setdefault(e.dst, []).append(e.src)
    dist: dict[str, int] = {}
    queue = deque(r for r in picture.roots if r in picture.nodes)
    for r in queue:
        dist[r] = 0
    while queue:
        node_id = queue.popleft()
        if depth is not None and dist[node_id] >= depth:
            continue
        for src in inputs.get(node_id, ()):
            if src not in dist and (max_nodes is None or len(dist) < max_nodes):
                dist[src] = dist[node_id] + 1
                queue.append(src)
    if len(dist) == len(picture.nodes):
        return picture
    kept = Picture(clusters=picture.clusters, roots=[r for r in picture.roots if r in dist])
    kept.nodes = {k: v for k, v in picture.nodes.items() if k in dist}
    kept.edges = [e for e in picture.edges if e.src in dist and e.dst in dist]
    for node_id in list(kept.nodes):
        hidden = sum(1 for src in inputs.get(node_id, ()) if src not in dist)
        if hidden:
            marker = f"{node_id}_cut"
            kept.nodes[marker] = PNode(marker, [f"... {hidden} more input{'s' if hidden > 1 else ''}"], "elided")
            kept.edges.append(PEdge(marker, node_id))
    shown = len(dist)
    note = f"showing {shown} of {len(picture.nodes)} nodes"
    kept.title = f"{picture.title}\n{note}" if picture.title else note
    return kept


def to_dot(picture: Picture, rankdir: str = "TB") -> str:
    """Graphviz DOT text for a picture (clusters nested as subgraphs, styles by node kind)."""
    graph_attrs = {"rankdir": rankdir, "labelloc": "t", "label": picture.title, **GRAPH_DEFAULTS}
    lines = ["digraph fusegrad {", f"  graph [{_attrs(graph_attrs)}];", f"  node [{_attrs(NODE_DEFAULTS)}];",
             f"  edge [{_attrs(EDGE_DEFAULTS)}];"]
    members: dict[int | None, list[PNode]] = {}
    for node in picture.nodes.values():
        members.setdefault(node.cluster, []).append(node)
    children: dict[int | None, list[int]] = {}
    for i, c in enumerate(picture.clusters):
        children.setdefault(c.parent, []).append(i)
    used = _clusters_in_use(picture, members)
    # explicit stack (clusters nest): ("open", i) writes a cluster's header and pushes its contents
    stack: list[tuple[str, int | None, int]] = [("body", None, 1)]
    while stack:
        what, cluster, indent = stack.pop()
        pad = "  " * indent
        if what == "close":
            lines.append(pad + "}")
            continue
        if what == "open":
            assert cluster is not None
            c = picture.clusters[cluster]
            lines.append(f"{pad}subgraph cluster_{cluster} {{")
            attrs = {"label": c.label, **CLUSTER_STYLES.get(c.kind, {})}
            lines.append(f"{pad}  graph [{_attrs(attrs)}];")
            stack.append(("close", cluster, indent))
            stack.append(("body", cluster, indent + 1))
            continue
        for node in members.get(cluster, []):
            lines.append(f"{pad}{node.id} [{_attrs({'label': chr(10).join(node.lines), **STYLES[node.kind]})}];")
        for child in reversed(children.get(cluster, [])):
            if child in used:
                stack.append(("open", child, indent))
    for e in picture.edges:
        label = f" [{_attrs({'label': e.label})}]" if e.label else ""
        lines.append(f"  {e.src} -> {e.dst}{label};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _clusters_in_use(picture: Picture, members: dict[int | None, list[PNode]]) -> set[int]:
    """Clusters holding a node, directly or through nested clusters (empty ones are not drawn)."""
    used: set[int] = set()
    for cluster in members:
        while cluster is not None and cluster not in used:
            used.add(cluster)
            cluster = picture.clusters[cluster].parent
    return used


def render(source: str, path: str | os.PathLike) -> Path:
    """Write DOT text to `path`: .dot/.gv as is, .svg/.png/.pdf through Graphviz's `dot` program."""
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix in TEXT_FORMATS:
        out.write_text(source, encoding="utf-8")
        return out
    if suffix not in FORMATS:
        raise Error(f"cannot draw to '{out.name}': use one of .dot, .gv, .svg, .png, .pdf")
    dot = shutil.which("dot")
    if dot is None:
        raise Error(f"drawing '{out.name}' needs Graphviz's `dot` program: install the Debian package `graphviz` "
                    "(apt-get install graphviz), or draw to a .dot file")
    done = subprocess.run([dot, f"-T{FORMATS[suffix]}", "-o", str(out)], input=source.encode("utf-8"),
                          capture_output=True, timeout=300, check=False)
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip()
        raise Error(f"Graphviz `dot` failed to write '{out.name}': {message}")
    return out
