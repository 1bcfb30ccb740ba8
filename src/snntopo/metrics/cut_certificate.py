"""Bridges, articulation points and components of a large simple graph through a sparse
certificate: two scan-first search forests, found level by level over the mapped graph.

Why: the exact DFS (:func:`snntopo.metrics.algorithms.bridges_articulation_components`) walks
the graph's CSR and its in-neighbour lists together inside scipy, so every page of both stays
resident: ~8 bytes per edge (vgg16_bn's 64x64 MGE, 7.4e8 edges: 6.1 GB; ResNet-50's 224x224 ERK
0.6 MGE, 3.0e9 edges: beyond this machine). Here only the in-neighbour lists are held (4 bytes
per edge); the CSR is read row block by row block, each row once per forest, its pages released.

The certificate (Cheriyan, Kao and Thurimella, "Scan-first search and sparse certificates",
SIAM J. Comput. 22(1), 1993): F1 a scan-first search forest of G and F2 one of G - F1. Their
union C (at most 2(n - 1) edges) keeps what the global family counts:

- components: F1 spans every component of G;
- bridges: an edge outside F1 closes a cycle with F1, so it is no bridge of G, and F2 joins the
  two sides of any F1 edge that G joins otherwise (the 2-edge-connectivity certificate);
- articulation points: for any vertex v, G - v and C - v have the same components (the
  2-vertex-connectivity certificate; this needs *scan-first* forests, which an arbitrary
  spanning forest is not).

Then the exact DFS runs on C. A scan-first search scans marked vertices one at a time, marking
every unmarked neighbour of the scanned vertex as its child. Scanning a breadth-first level in
increasing id order, level after level, is one: each newly reached vertex's parent is its
smallest-id neighbour in the level. That is what :func:`scan_first_forest` computes, vectorised
per block of the level's rows.

Only simple graphs take this path (no parallel, reciprocal or self edges: a forest's edge is then
one pair of vertices, which F2 can exclude as a pair); the caller checks.
"""

from __future__ import annotations

import numpy as np

from ..encode.graph import Block, Graph, from_edges
from ..mapped import ReleaseEvery, release_pages
from .algorithms import EDGE_CHUNK, gather_rows, in_neighbour_lists, row_chunks

#: a mapped graph's pages are released once the searches have read this many of its entries
#: (16 MB of int32). Why this few: a read maps the whole page-cache folio around it, so a level's
#: scattered rows leave far more resident than they hold (at 2**24 entries, ResNet-50 224x224
#: ERK 0.9's searches held up to 2.2 GB of the graph's pages between releases)
RELEASE_ENTRIES = 1 << 22


class _Rows:
    """The undirected neighbours of a simple directed graph: its CSR rows (out) and its
    in-neighbour lists (in, held in memory); the CSR's pages released as they are read."""

    def __init__(self, graph: Graph) -> None:
        self.n = graph.n_nodes
        self.parts = [(graph.indptr, graph.indices)]
        self.parts.append(in_neighbour_lists(graph))
        self.deg = sum(np.diff(p).astype(np.int64) for p, _ in self.parts)
        self.release = ReleaseEvery(graph.indices, entries=RELEASE_ENTRIES)

    def unmarked(
        self, rows: np.ndarray, marked: np.ndarray, excluded: np.ndarray | None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per part, (row, neighbour) of the edges at ``rows`` (ascending) whose neighbour is
        unmarked and, with ``excluded`` (a forest's parents), that are no edge of that forest.
        The row of an entry is looked up for the survivors only (most entries of a level lead
        back to marked vertices)."""
        out = []
        for k, (ptr, ind) in enumerate(self.parts):
            lens = ptr[rows + 1] - ptr[rows]
            nbr = ind[gather_rows(ptr, rows)]
            if k == 0 and rows.shape[0]:  # the CSR's pages under what was read (rows ascend)
                self.release.read(nbr.shape[0], (int(ptr[rows[0]]), int(ptr[rows[-1] + 1])))
            at = np.flatnonzero(~marked[nbr])
            if 8 * at.shape[0] > nbr.shape[0]:  # many survive (edges onward): repeat the rows
                src = np.repeat(rows, lens)[at]
            else:  # few (edges back to marked vertices): look their rows up
                ends = np.concatenate([[0], np.cumsum(lens)])
                src = rows[np.searchsorted(ends, at, side="right") - 1]
            nbr = nbr[at].astype(np.int64)
            if excluded is not None:  # not an edge of the other forest
                keep = (excluded[nbr] != src) & (excluded[src] != nbr)
                src, nbr = src[keep], nbr[keep]
            out.append((src, nbr))
        return out


def _next_unmarked(marked: np.ndarray, start: int, window: int = 1 << 16) -> int:
    """The first unmarked vertex at or after ``start`` (``len(marked)`` if none), looked for
    window by window: over all components the search reads each vertex about once."""
    n = marked.shape[0]
    while start < n:
        free = np.flatnonzero(~marked[start : start + window])
        if free.shape[0]:
            return start + int(free[0])
        start += window
    return n


def scan_first_forest(rows: _Rows, excluded: np.ndarray | None = None) -> np.ndarray:
    """Parent of every vertex in a scan-first search forest (-1 for its roots and isolated
    vertices), levels scanned in increasing id order; with ``excluded`` (another forest's
    parents) the search runs on the graph without that forest's edges."""
    n = rows.n
    parent = np.full(n, -1, dtype=np.int64)
    marked = rows.deg == 0  # isolated vertices: roots of their own, nothing to scan
    best = np.full(n, n, dtype=np.int64)  # smallest scanning neighbour found in this block
    root = -1
    while True:
        root = _next_unmarked(marked, root + 1)  # the next component's smallest vertex
        if root == n:
            return parent
        marked[root] = True
        level = np.array([root], dtype=np.int64)
        while level.shape[0]:
            found = []
            ends = np.concatenate([[0], np.cumsum(rows.deg[level])])
            for lo, hi in row_chunks(ends, EDGE_CHUNK):  # the level's rows, block by block
                pairs = rows.unmarked(level[lo:hi], marked, excluded)
                if not any(nbr.shape[0] for _, nbr in pairs):
                    continue
                a = min(int(nbr.min()) for _, nbr in pairs if nbr.shape[0])
                z = max(int(nbr.max()) for _, nbr in pairs if nbr.shape[0]) + 1
                hit = np.zeros(z - a, dtype=bool)  # a narrow id range on a layered graph
                for src, nbr in pairs:
                    np.minimum.at(best, nbr, src)  # in id order: the smallest scans first
                    hit[nbr - a] = True
                new = a + np.flatnonzero(hit)
                parent[new] = best[new]
                best[new] = n
                marked[new] = True  # later blocks of the level scan larger ids: not theirs
                found.append(new)
            # each block's new vertices are sorted and unmarked by the others: one sort merges
            level = np.sort(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)


def certificate(graph: Graph) -> Graph:
    """The union of the two scan-first forests as a graph on the same vertices (one edge per
    forest edge, from the smaller to the larger id; one block)."""
    rows = _Rows(graph)
    f1 = scan_first_forest(rows)
    f2 = scan_first_forest(rows, excluded=f1)
    release_pages(rows.parts[0][1])
    del rows
    child = np.concatenate([np.flatnonzero(f1 >= 0), np.flatnonzero(f2 >= 0)])
    par = np.concatenate([f1[f1 >= 0], f2[f2 >= 0]])
    lo, hi = np.minimum(child, par), np.maximum(child, par)
    n = graph.n_nodes
    return from_edges(lo, hi, np.ones(lo.shape[0]), [Block("all", 0, n, (n,))])
