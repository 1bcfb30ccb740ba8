"""Vectorised graph kernels behind the metric families (no Python loop over nodes or edges).

Why not igraph for bridges, articulation points and coreness: building an igraph object from 25M
edges costs 7-25 s and ~4 GB (the Python binding converts the edge buffer element by element), more
than the whole metric budget. Instead:

- bridges and articulation points come from one depth-first search (scipy's C traversal) plus the
  classic low-point test, where the subtree aggregations are range-minimum queries over the DFS
  preorder (a sparse table), so no per-node Python work is needed; exactness is guarded by checking
  that every non-tree edge joins an ancestor and a descendant (true for any DFS tree);
- coreness is the standard peeling, done in vectorised waves (all nodes of degree <= k at once).

The RAND-ESU motif estimate is counted here too (:mod:`snntopo.metrics.neighbourhood`); igraph
remains available for it (``motif_method='igraph'``) via :meth:`Graph.to_igraph`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse import csgraph

from ..encode.graph import Graph


def gather_rows(indptr: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Positions of all CSR entries of ``rows`` (concatenated), without a Python loop."""
    starts = indptr[rows]
    lens = indptr[rows + 1] - starts
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offs = np.repeat(starts - np.cumsum(lens) + lens, lens)
    return offs + np.arange(total, dtype=np.int64)


def undirected_adjacency(graph: Graph) -> tuple[np.ndarray, np.ndarray]:
    """CSR (indptr, indices) of the undirected multigraph: row v = out-neighbours then in-neighbours.

    Parallel edges keep their multiplicity and a self-loop appears twice in its row, so row lengths
    equal igraph's ``degree(mode='all')``.
    """
    n = graph.n_nodes
    src = graph.sources()
    dst = graph.indices
    outdeg = np.bincount(src, minlength=n)
    indeg = np.bincount(dst, minlength=n)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(outdeg + indeg, out=indptr[1:])
    out = np.empty(int(indptr[-1]), dtype=graph.indices.dtype)
    # out-neighbours: already grouped by source in CSR order
    out_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(outdeg, out=out_ptr[1:])
    pos = np.arange(src.shape[0], dtype=np.int64) + np.repeat(indptr[:-1] - out_ptr[:-1], outdeg)
    out[pos] = dst
    # in-neighbours: grouped by target (a counting sort in C), sources ascending
    in_ptr, in_src = in_neighbour_lists(graph)
    pos = np.arange(dst.shape[0], dtype=np.int64) + np.repeat(
        indptr[:-1] + outdeg - in_ptr[:-1], indeg
    )
    out[pos] = in_src
    return indptr, out


def in_neighbour_lists(graph: Graph) -> tuple[np.ndarray, np.ndarray]:
    """CSC view of the graph: (in_ptr, sources grouped by target, ascending within each target).

    scipy's csr->csc conversion is a counting sort in C (O(N + E)), several times faster than a
    stable argsort of the targets, and its output rows come out sorted.
    """
    n = graph.n_nodes
    a = sp.csr_array(
        (np.ones(graph.n_edges, dtype=bool), graph.indices, graph.indptr), shape=(n, n)
    )
    c = a.tocsc()
    return c.indptr.astype(np.int64, copy=False), c.indices.astype(graph.indices.dtype, copy=False)


class _RangeMin:
    """Sparse table for vectorised range-minimum queries over a fixed int array."""

    def __init__(self, values: np.ndarray) -> None:
        m = values.shape[0]
        self.levels = [values]
        j = 1
        while (1 << j) <= m:
            prev = self.levels[-1]
            half = 1 << (j - 1)
            self.levels.append(np.minimum(prev[:-half], prev[half:]))
            j += 1

    def query(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """min(values[lo:hi]) for every pair (hi > lo)."""
        length = hi - lo
        k = np.floor(np.log2(np.maximum(length, 1))).astype(np.int64)
        out = np.empty(lo.shape[0], dtype=self.levels[0].dtype)
        for j in np.unique(k):  # loop over O(log n) levels, not nodes
            sel = k == j
            tab = self.levels[int(j)]
            out[sel] = np.minimum(tab[lo[sel]], tab[hi[sel] - (1 << int(j))])
        return out

    def first_not_greater(self, start: np.ndarray, bound: np.ndarray) -> np.ndarray:
        """Smallest q >= start with values[q] <= bound (len(values) if none): binary lifting."""
        m = self.levels[0].shape[0]
        pos = start.astype(np.int64).copy()  # invariant: all of values[start:pos] > bound
        for j in range(len(self.levels) - 1, -1, -1):
            tab = self.levels[j]
            ok = pos + (1 << j) <= m
            idx = np.where(ok, pos, 0)
            ok &= tab[np.minimum(idx, tab.shape[0] - 1)] > bound
            pos = np.where(ok, pos + (1 << j), pos)
        return pos


def bridges_and_articulation_points(graph: Graph) -> tuple[int, int]:
    """Exact numbers of bridges and articulation points of the undirected version of ``graph``.

    Matches igraph's ``bridges()`` / ``articulation_points()`` on a directed graph (direction
    ignored, parallel edges -- including u->v plus v->u -- are never bridges, self-loops ignored).
    """
    n_bridges, n_ap, _ = bridges_articulation_components(graph)
    return n_bridges, n_ap


def bridges_articulation_components(graph: Graph) -> tuple[int, int, int]:
    """Bridges, articulation points and the number of weak components (isolated nodes count),
    sharing the one component labelling the DFS needs anyway."""
    n = graph.n_nodes
    if n == 0 or graph.n_edges == 0:
        return 0, 0, n
    src_all = graph.sources()
    keep = src_all != graph.indices
    src, dst = src_all[keep], graph.indices[keep]
    del src_all
    a = (
        sp.csr_array((np.ones(src.shape[0], dtype=np.int8), (src, dst)), shape=(n, n))
        if not keep.all()
        else graph.csr(weighted=False)
    )
    # one DFS over all components: a virtual root joined to one node of every component
    n_comp, labels = csgraph.connected_components(a, directed=True, connection="weak")
    reps = np.unique(labels, return_index=True)[1]
    indptr = np.concatenate([a.indptr.astype(np.int64), [a.indptr[-1] + reps.shape[0]]])
    indices = np.concatenate([a.indices, reps.astype(a.indices.dtype)])
    aug = sp.csr_array(
        (np.ones(indices.shape[0], dtype=np.int8), indices, indptr), shape=(n + 1,) * 2
    )
    order, pred = csgraph.depth_first_order(aug, n, directed=False, return_predecessors=True)
    del aug
    pre = np.empty(n + 1, dtype=np.int64)
    pre[order] = np.arange(order.shape[0])
    parent = pred.astype(np.int64)
    parent[n] = n
    # depth by pointer jumping (log(depth) vectorised rounds)
    depth = (np.arange(n + 1) != n).astype(np.int64)
    jump = parent.copy()
    while True:
        active = jump != n
        if not active.any():
            break
        depth[active] += depth[jump[active]]
        jump[active] = jump[jump[active]]
    seq = depth[order]  # depth along the preorder
    table = _RangeMin(seq)
    end = table.first_not_greater(np.arange(1, order.shape[0] + 1), seq)  # subtree = [pre, end)
    # every non-tree edge must join an ancestor and a descendant, or this was not a DFS tree
    pu, pv = pre[src], pre[dst]
    lo, hi = np.minimum(pu, pv), np.maximum(pu, pv)
    upper = np.where(pu <= pv, src, dst)
    if not np.all(hi < end[pre[upper]]):
        raise RuntimeError("depth-first order is not a DFS tree; bridges would be wrong")
    del lo, hi, upper
    # m(w) = min(pre(w), pre of every neighbour except one copy of the tree edge to the parent)
    is_parent_u = parent[src] == dst  # edge (src->dst) is src's tree edge
    is_parent_v = parent[dst] == src
    m = pre.copy()
    pcount = np.bincount(src[is_parent_u], minlength=n + 1) + np.bincount(
        dst[is_parent_v], minlength=n + 1
    )
    np.minimum.at(m, src[~is_parent_u], pv[~is_parent_u])
    np.minimum.at(m, dst[~is_parent_v], pu[~is_parent_v])
    multi = pcount >= 2  # parallel copies of the parent edge are back edges
    m[multi] = np.minimum(m[multi], pre[parent[multi]])
    del pu, pv, is_parent_u, is_parent_v, src, dst
    low_seq = _RangeMin(m[order])
    nodes = order[1:]  # every real node (order[0] is the virtual root)
    low = low_seq.query(pre[nodes], end[pre[nodes]])
    par = parent[nodes]
    real_parent = par != n
    n_bridges = int(np.count_nonzero(real_parent & (low >= pre[nodes])))
    # articulation points: a component root with >= 2 children, or a non-root parent p of a child
    # c whose subtree reaches nothing above p
    root_parent = real_parent & (parent[par] == n)
    children = np.bincount(par[real_parent], minlength=n + 1)
    roots_ap = np.count_nonzero((parent[:n] == n) & (children[:n] >= 2))
    cut = real_parent & ~root_parent & (low >= pre[par])
    n_ap = int(roots_ap) + int(np.unique(par[cut]).shape[0])
    return n_bridges, n_ap, int(n_comp)


def coreness(indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """k-core index of every node of an undirected multigraph in CSR form (igraph ``coreness``).

    Peeling in vectorised waves: at level k, all remaining nodes of degree <= k are removed at once
    and their neighbours' degrees decremented; a Python loop runs over waves and levels only.
    """
    n = indptr.shape[0] - 1
    deg = np.diff(indptr).astype(np.int64)
    core = np.zeros(n, dtype=np.int64)
    alive = np.ones(n, dtype=bool)
    remaining = n
    k = 0
    cand = np.arange(n)
    while remaining:
        sel = cand[alive[cand] & (deg[cand] <= k)]
        if sel.shape[0] == 0:
            k = int(deg[alive].min())
            cand = np.flatnonzero(alive & (deg <= k))
            continue
        sel = np.unique(sel)
        core[sel] = k
        alive[sel] = False
        remaining -= sel.shape[0]
        nb = indices[gather_rows(indptr, sel)]
        nb = nb[alive[nb]]
        np.subtract.at(deg, nb, 1)
        cand = nb
    return core


def symmetric_adjacency(graph: Graph, weighted: bool = True) -> sp.csr_array:
    """A + A^T of the graph, float64, parallel / reciprocal edges collapsed to the first weight.

    That is the matrix of igraph's ``as_undirected(combine_edges='first')`` used by the paper for
    spectra. A DAG with sorted, duplicate-free rows (every encoding here) takes the fast path.
    """
    n = graph.n_nodes
    src = graph.sources()
    w = graph.weights.astype(np.float64) if weighted else np.ones(graph.n_edges)
    dst = graph.indices
    keep = src != dst
    if not keep.all():
        src, dst, w = src[keep], dst[keep], w[keep]
    if not (np.all(src < dst) or np.all(src > dst)) or _has_duplicates(src, dst):
        lo, hi = np.minimum(src, dst), np.maximum(src, dst)
        key = lo.astype(np.int64) * n + hi
        _, first = np.unique(key, return_index=True)  # first occurrence in edge order
        src, dst, w = lo[first], hi[first], w[first]
    a = sp.csr_array((w, (src, dst)), shape=(n, n))
    return (a + a.T).tocsr()


def is_simple_dag(graph: Graph) -> bool:
    """All edges point the same way between distinct nodes and none is repeated (so A + A^T is
    already the collapsed symmetric adjacency)."""
    src = graph.sources()
    dst = graph.indices
    one_way = bool(np.all(src < dst) or np.all(src > dst))
    return one_way and not _has_duplicates(src, dst)


def _has_duplicates(src: np.ndarray, dst: np.ndarray) -> bool:
    """Parallel edges in a source-grouped edge list whose rows are sorted by target."""
    same = (src[1:] == src[:-1]) & (dst[1:] <= dst[:-1])
    return bool(same.any())


def to_igraph(graph: Graph) -> Any:
    """Directed igraph graph of ``graph`` (kept for callers; see :meth:`Graph.to_igraph`)."""
    return graph.to_igraph()


def simple_undirected_adjacency(graph: Graph) -> tuple[np.ndarray, np.ndarray]:
    """CSR (indptr, indices) of the simple undirected graph: rows sorted, no duplicates, no loops.

    This is the graph RAND-ESU actually explores (direction, multiplicity and self-loops do not
    change which vertex sets are weakly connected). A DAG whose edges all point to higher ids
    (every MGE) is assembled directly -- row v is its in-neighbours (all < v) followed by its
    out-neighbours (all > v), both already sorted -- without a sparse sum or sort.
    """
    n = graph.n_nodes
    src = graph.sources()
    dst = graph.indices
    if n and graph.n_edges and bool(np.all(src < dst)) and not _has_duplicates(src, dst):
        outdeg = np.diff(graph.indptr)
        indeg = np.bincount(dst, minlength=n)
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(outdeg + indeg, out=indptr[1:])
        out = np.empty(int(indptr[-1]), dtype=dst.dtype)
        in_ptr, in_src = in_neighbour_lists(graph)
        pos = np.arange(dst.shape[0], dtype=np.int64) + np.repeat(indptr[:-1] - in_ptr[:-1], indeg)
        out[pos] = in_src
        del in_src, pos
        pos = np.arange(dst.shape[0], dtype=np.int64) + np.repeat(
            indptr[:-1] + indeg - graph.indptr[:-1], outdeg
        )
        out[pos] = dst
        return indptr, out
    keep = src != dst  # self-loops never join a vertex set
    a = sp.coo_array(
        (np.ones(int(keep.sum()), dtype=bool), (src[keep], dst[keep])), shape=(n, n)
    ).tocsr()
    s = (a + a.T).tocsr()  # boolean: parallel and reciprocal edges collapse
    s.sum_duplicates()
    s.sort_indices()
    return s.indptr.astype(np.int64), s.indices.astype(dst.dtype if n < 2**31 else np.int64)
