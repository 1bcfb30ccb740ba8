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

import numpy as np
import scipy.sparse as sp
from scipy.sparse import csgraph

from ..encode.graph import Graph, count_ids

#: entries per chunk of the edge-wise passes: their int64/bool temporaries stay near 100 MB
#: whatever the graph's size (1.7e8 edges would otherwise need 1.4 GB per int64 temporary)
EDGE_CHUNK = 1 << 23


def gather_rows(indptr: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Positions of all CSR entries of ``rows`` (concatenated), without a Python loop."""
    return gather_ranges(indptr[:-1], indptr[1:], rows)[0]


def gather_ranges(
    begin: np.ndarray, end: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(positions of the entries ``begin[r]:end[r]`` of every r in ``rows``, concatenated; the
    range lengths): :func:`gather_rows` for rows given as separate begin and end offsets."""
    starts = begin[rows]
    lens = end[rows] - starts
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64), lens
    offs = np.repeat(starts - np.cumsum(lens) + lens, lens)
    return offs + np.arange(total, dtype=np.int64), lens


def index_dtype(max_value: int) -> type:
    """int32 while every value fits (half the memory of int64), int64 beyond."""
    return np.int32 if max_value < 2**31 else np.int64


def row_chunks(indptr: np.ndarray, chunk: int = EDGE_CHUNK) -> list[tuple[int, int]]:
    """Consecutive row ranges ``[lo, hi)`` holding about ``chunk`` CSR entries each.

    A single row longer than ``chunk`` is a chunk of its own; empty graphs give one range.
    """
    n = indptr.shape[0] - 1
    total = int(indptr[-1])
    cuts = np.searchsorted(indptr, np.arange(chunk, total, chunk, dtype=np.int64), side="right")
    bounds = np.unique(np.concatenate([[0], cuts - 1, [n]]).astype(np.int64))
    pairs = [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    return pairs or [(0, n)]


def _scatter_rows(
    out: np.ndarray, dest_start: np.ndarray, src_ptr: np.ndarray, src_vals: np.ndarray
) -> None:
    """``out[dest_start[v] + k] = src_vals[src_ptr[v] + k]`` for every row v and k < len(row v),
    in row chunks (bounded temporaries)."""
    for lo, hi in row_chunks(src_ptr):
        a, b = int(src_ptr[lo]), int(src_ptr[hi])
        if a == b:
            continue
        shift = dest_start[lo:hi].astype(np.int64) - src_ptr[lo:hi]
        pos = np.repeat(shift, np.diff(src_ptr[lo : hi + 1]))
        pos += np.arange(a, b, dtype=np.int64)
        out[pos] = src_vals[a:b]


def undirected_adjacency(
    graph: Graph, virtual_root: bool = False, upward_simple: bool | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """CSR (indptr int64, indices) of the undirected multigraph: row v = in-neighbours (ascending)
    then out-neighbours (in CSR order). The one symmetrised structure of the global algorithms.

    Parallel edges keep their multiplicity and a self-loop appears twice in its row, so row lengths
    equal igraph's ``degree(mode='all')``. For a DAG whose edges all point to higher ids with sorted
    duplicate-free rows (every MGE), rows come out sorted and duplicate-free, i.e. this is also the
    simple undirected graph. ``virtual_root`` appends row n listing every node 0..n-1 (a root from
    which one directed DFS visits every component). Indices are int32 below 2**31 nodes; the
    building temporaries are chunked, so the peak is the result plus one CSC copy of the targets.
    ``upward_simple``: whether every edge points to a higher id with sorted duplicate-free rows,
    if the caller knows (None: checked here); such graphs take :func:`_upward_dag_adjacency`.
    """
    n = graph.n_nodes
    if upward_simple is None:
        upward_simple = is_upward_dag(graph)
    if n and graph.n_edges and upward_simple:
        return _upward_dag_adjacency(graph, virtual_root)
    outdeg = np.diff(graph.indptr)
    in_ptr, in_src = in_neighbour_lists(graph)
    indeg = np.diff(in_ptr)
    indptr = np.zeros(n + 2 if virtual_root else n + 1, dtype=np.int64)
    np.cumsum(outdeg + indeg, out=indptr[1 : n + 1])
    if virtual_root:
        indptr[n + 1] = indptr[n] + n
    out = np.empty(int(indptr[-1]), dtype=index_dtype(n + 1))
    _scatter_rows(out, indptr[:n], in_ptr, in_src)
    del in_src
    _scatter_rows(out, indptr[:n] + indeg, graph.indptr, graph.indices)
    if virtual_root:
        out[indptr[n] :] = np.arange(n, dtype=out.dtype)
    return indptr, out


def _upward_dag_adjacency(
    graph: Graph, virtual_root: bool, chunk: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`undirected_adjacency` of a DAG whose edges all point to higher ids, with sorted
    duplicate-free rows: then row v (in-neighbours, all < v, then out-neighbours, all > v) is the
    sorted row v of A + A^T, which scipy's C row merge of two canonical CSRs builds in one pass
    (the general scatter spends its time in ``np.repeat``; same arrays).

    Memory (issue 29): besides the result (2E int32) only A^T's indices (E int32) and one int8
    array of E ones live at once. The CSC conversion reads and writes that same all-ones array
    (every value read or written is 1), and the merge runs in row chunks of about ``chunk``
    (default :data:`EDGE_CHUNK`) output entries written straight into the result, so its int8
    data arrays are chunk-sized: 12 bytes per edge instead of 16 (the result's offsets are
    ``indptr(A) + indptr(A^T)``: no row has an entry in both)."""
    from scipy.sparse import _sparsetools as st

    n, e = graph.n_nodes, graph.n_edges
    extra = n if virtual_root else 0
    idx = index_dtype(max(n + 2, 2 * e + extra))
    ap, aj = graph.indptr.astype(idx, copy=False), graph.indices.astype(idx, copy=False)
    ones = np.ones(e, dtype=np.int8)
    tp, tj = np.empty(n + 1, idx), np.empty(e, idx)
    st.csr_tocsc(n, n, ap, aj, ones, tp, tj, ones)  # A^T as CSR: in-neighbours, ascending
    del ones
    indptr = np.empty(n + 2 if virtual_root else n + 1, dtype=np.int64)
    np.add(ap, tp, out=indptr[: n + 1], dtype=np.int64)
    indices = np.empty(2 * e + extra, dtype=idx)
    ranges = row_chunks(indptr[: n + 1], EDGE_CHUNK if chunk is None else chunk)
    longest = max(int(indptr[hi] - indptr[lo]) for lo, hi in ranges)
    ones, data = np.ones(longest, dtype=np.int8), np.empty(longest, dtype=np.int8)
    cp = np.empty(n + 1, dtype=idx)
    for lo, hi in ranges:
        a0, a1, b0, b1 = int(ap[lo]), int(ap[hi]), int(tp[lo]), int(tp[hi])
        c0, c1 = int(indptr[lo]), int(indptr[hi])
        st.csr_plus_csr(
            hi - lo,
            n,
            (ap[lo : hi + 1] - a0).astype(idx, copy=False),
            aj[a0:a1],
            ones[: a1 - a0],
            (tp[lo : hi + 1] - b0).astype(idx, copy=False),
            tj[b0:b1],
            ones[: b1 - b0],
            cp[: hi - lo + 1],
            indices[c0:c1],
            data[: c1 - c0],
        )
        # an entry in both (a reciprocal edge) would shorten the rows; the caller checked none
        if int(cp[hi - lo]) != c1 - c0:
            raise RuntimeError("graph is not an upward DAG; undirected adjacency would be wrong")
    del tp, tj, ones, data, cp
    if virtual_root:
        indptr[n + 1] = 2 * e + n
        indices[2 * e :] = np.arange(n, dtype=idx)
    return indptr, indices.astype(index_dtype(n + 1), copy=False)


def in_neighbour_lists(graph: Graph) -> tuple[np.ndarray, np.ndarray]:
    """CSC view of the graph: (in_ptr, sources grouped by target, ascending within each target).

    scipy's csr->csc conversion is a counting sort in C (O(N + E)), several times faster than a
    stable argsort of the targets, and its output rows come out sorted. It is called directly
    (the routine ``tocsc`` runs) with one int8 array of ones as both its input and its output
    data (every value read or written is 1): 5 bytes per edge at the peak instead of 6 (issue
    29), the same arrays; int32 offsets keep the index arrays narrow.
    """
    from scipy.sparse import _sparsetools as st

    n, e = graph.n_nodes, graph.n_edges
    idx = index_dtype(max(n, e))
    ones = np.ones(e, dtype=np.int8)
    in_ptr, in_src = np.empty(n + 1, dtype=idx), np.empty(e, dtype=idx)
    st.csr_tocsc(
        n,
        n,
        graph.indptr.astype(idx, copy=False),
        graph.indices.astype(idx, copy=False),
        ones,
        in_ptr,
        in_src,
        ones,
    )
    del ones
    return in_ptr.astype(np.int64, copy=False), in_src.astype(graph.indices.dtype, copy=False)


def sym_csgraph(indptr: np.ndarray, indices: np.ndarray) -> sp.csr_array:
    """A scipy csgraph view of an unweighted CSR structure without copying it.

    csgraph routines convert their input to float64 data (8 bytes per entry, plus a transposed
    copy for ``directed=False``); a zero-stride float64 ``data`` view and int32 index arrays pass
    through that conversion untouched. Use with ``directed=True`` on a symmetric structure.
    """
    n = indptr.shape[0] - 1
    idx = index_dtype(max(n, int(indptr[-1])))
    data = np.broadcast_to(np.float64(1.0), indices.shape)
    return sp.csr_array(
        (data, indices.astype(idx, copy=False), indptr.astype(idx, copy=False)),
        shape=(n, n),
        copy=False,
    )


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
    """Bridges, articulation points and the number of weak components (isolated nodes count).

    One directed DFS over the symmetric multigraph :func:`undirected_adjacency` plus a virtual root
    n whose row lists every node: the root's children are the components' DFS roots, so the
    component count comes out of the same traversal. Self-loops stay in the structure: they are
    never tree edges and never lower a low point below the node itself, so they change nothing.
    Memory: the graph, that one symmetric int32 structure and O(n) arrays; every pass over the
    entries runs in row chunks.
    """
    n = graph.n_nodes
    if n == 0 or graph.n_edges == 0:
        return 0, 0, n
    direction, parallel = edge_direction(graph), has_parallel_edges(graph)
    simple = direction != 0 and not parallel  # no parallel or reciprocal copy of any edge
    s_ptr, s_idx = undirected_adjacency(
        graph, virtual_root=True, upward_simple=direction == 1 and not parallel
    )
    order, pred = csgraph.depth_first_order(
        sym_csgraph(s_ptr, s_idx), n, directed=True, return_predecessors=True
    )
    pre = np.empty(n + 1, dtype=np.int64)
    pre[order] = np.arange(order.shape[0])
    parent = pred.astype(np.int64)
    parent[n] = n
    n_comp = int(np.count_nonzero(parent[:n] == n))
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
    del table, seq, depth, jump
    end_of = end[pre].astype(np.int32 if n < 2**31 - 1 else np.int64)
    pre_c = pre.astype(end_of.dtype)
    # every non-tree edge must join an ancestor and a descendant, or this was no DFS tree: with
    # end > pre, that is pre[v] < end[u] and pre[u] < end[v] (checked once per edge)
    gptr, gind = graph.indptr, graph.indices
    for lo, hi in row_chunks(gptr):
        a, b = int(gptr[lo]), int(gptr[hi])
        lens = np.diff(gptr[lo : hi + 1])
        nb = gind[a:b]
        ok = pre_c[nb] < np.repeat(end_of[lo:hi], lens)
        ok &= np.repeat(pre_c[lo:hi], lens) < end_of[nb]
        if not ok.all():
            raise RuntimeError("depth-first order is not a DFS tree; bridges would be wrong")
    del ok, nb
    # m(w) = min(pre(w), pre of every neighbour except one copy of the tree edge to the parent).
    # Only ancestors can lower it below pre(w), and every ancestor but the parent has a smaller
    # preorder than the parent, so from m' = min over *all* neighbours: m = m' if m' < pre(parent),
    # else pre(parent) if the parent edge has a parallel copy (a reciprocal edge counts), else pre(w)
    m_all = pre.copy()
    pcount = np.ones(n + 1, dtype=np.int64) if simple else np.zeros(n + 1, dtype=np.int64)
    for lo, hi in row_chunks(s_ptr[: n + 1]):
        a, b = int(s_ptr[lo]), int(s_ptr[hi])
        if a == b:
            continue
        lens = np.diff(s_ptr[lo : hi + 1])
        nb = s_idx[a:b]
        nonempty = np.flatnonzero(lens > 0)
        starts = (s_ptr[lo:hi] - a)[nonempty]
        rowmin = np.minimum.reduceat(pre_c[nb], starts)
        m_all[lo + nonempty] = np.minimum(m_all[lo + nonempty], rowmin)
        if not simple:
            is_par = nb == np.repeat(parent[lo:hi].astype(nb.dtype), lens)
            pcount[lo + nonempty] = np.add.reduceat(is_par, starts, dtype=np.int64)
    del s_idx, nb
    pre_par = pre[parent]
    m = np.where(m_all < pre_par, m_all, np.where((pcount >= 2) & (parent != n), pre_par, pre))
    m[n] = pre[n]
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
    return n_bridges, n_ap, n_comp


def coreness(
    indptr: np.ndarray,
    indices: np.ndarray,
    indptr2: np.ndarray | None = None,
    indices2: np.ndarray | None = None,
) -> np.ndarray:
    """k-core index of every node of an undirected multigraph in CSR form (igraph ``coreness``).

    The neighbours of v are row v of (``indptr``, ``indices``) plus, if given, row v of
    (``indptr2``, ``indices2``): a directed graph's CSR and CSC together are its undirected
    multigraph without building the merged structure.

    Peeling in vectorised waves: at level k, all remaining nodes of degree <= k are removed at once
    and their neighbours' degrees decremented; a Python loop runs over waves and levels only. The
    neighbour gathers of a wave run in chunks of about :data:`EDGE_CHUNK` entries (all removals
    of a wave are simultaneous, so the order of the decrements does not matter).
    """
    n = indptr.shape[0] - 1
    parts = [(indptr, indices)] + ([(indptr2, indices2)] if indptr2 is not None else [])
    deg = sum(np.diff(p).astype(np.int64) for p, _ in parts)
    core = np.zeros(n, dtype=np.int64)
    alive = np.ones(n, dtype=bool)
    remaining = n
    k = 0
    cand = np.arange(n)
    mark = np.zeros(n, dtype=bool)  # neighbours touched in this wave (a set without sorting)
    while remaining:
        sel = cand[alive[cand] & (deg[cand] <= k)]  # cand holds no duplicates
        if sel.shape[0] == 0:
            k = int(deg[alive].min())
            cand = np.flatnonzero(alive & (deg <= k))
            continue
        core[sel] = k
        alive[sel] = False
        remaining -= sel.shape[0]
        for ptr, ind in parts:
            sel_ptr = np.zeros(sel.shape[0] + 1, dtype=np.int64)
            np.cumsum(ptr[sel + 1] - ptr[sel], out=sel_ptr[1:])
            for lo, hi in row_chunks(sel_ptr):
                nb = ind[gather_rows(ptr, sel[lo:hi])]
                nb = nb[alive[nb]]
                if nb.shape[0] > n // 4:
                    deg -= count_ids(nb, n)
                else:
                    np.subtract.at(deg, nb, 1)
                mark[nb] = True
        cand = np.flatnonzero(mark)
        mark[cand] = False
    return core


def symmetric_adjacency(graph: Graph, weighted: bool = True) -> sp.csr_array:
    """A + A^T of the graph, float64, parallel / reciprocal edges collapsed to the first weight.

    That is the matrix of igraph's ``as_undirected(combine_edges='first')`` used by the paper for
    spectra. Used for graphs that are not simple DAGs (the expansion of every encoding here goes
    through :class:`snntopo.metrics.expansion._SymmetricOperator` instead).
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


def edge_direction(graph: Graph) -> int:
    """+1 if every edge points to a higher id, -1 if every edge to a lower id, 0 otherwise.

    Per row only the extreme targets matter (row-wise min / max), so no per-edge temporary.
    """
    if graph.n_edges == 0:
        return 1
    rows = np.flatnonzero(np.diff(graph.indptr) > 0)
    starts = graph.indptr[rows]
    lo = np.minimum.reduceat(graph.indices, starts)
    if bool(np.all(lo > rows)):
        return 1
    hi = np.maximum.reduceat(graph.indices, starts)
    return -1 if bool(np.all(hi < rows)) else 0


def has_parallel_edges(graph: Graph) -> bool:
    """True if some row repeats a target -- or is not sorted (then conservatively True)."""
    ind, ptr = graph.indices, graph.indptr
    for lo, hi in row_chunks(ptr):
        a, b = int(ptr[lo]), int(ptr[hi])
        if b - a < 2:
            continue
        bad = ind[a + 1 : b] <= ind[a : b - 1]  # one bool pass, no difference array
        inner = ptr[lo + 1 : hi] - a - 1  # positions where a new row starts (not a violation)
        bad[inner[(inner >= 0) & (inner < bad.shape[0])]] = False
        if bad.any():
            return True
    return False


def is_simple_dag(graph: Graph) -> bool:
    """All edges point the same way between distinct nodes and none is repeated (so A + A^T is
    already the collapsed symmetric adjacency)."""
    return edge_direction(graph) != 0 and not has_parallel_edges(graph)


def is_upward_dag(graph: Graph) -> bool:
    """Has edges, all pointing to higher ids, rows sorted and duplicate-free (every MGE): the
    graphs whose undirected structures have the fast paths."""
    return bool(graph.n_edges) and edge_direction(graph) == 1 and not has_parallel_edges(graph)


def _has_duplicates(src: np.ndarray, dst: np.ndarray) -> bool:
    """Parallel edges in a source-grouped edge list whose rows are sorted by target."""
    same = (src[1:] == src[:-1]) & (dst[1:] <= dst[:-1])
    return bool(same.any())


def simple_undirected_adjacency(
    graph: Graph, upward_simple: bool | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """CSR (indptr, indices) of the simple undirected graph: rows sorted, no duplicates, no loops.

    This is the graph RAND-ESU actually explores (direction, multiplicity and self-loops do not
    change which vertex sets are weakly connected). A DAG whose edges all point to higher ids
    (every MGE) is :func:`undirected_adjacency` itself -- row v is its in-neighbours (all < v)
    followed by its out-neighbours (all > v), both already sorted -- without a sparse sum or sort.
    """
    n = graph.n_nodes
    if upward_simple is None:
        upward_simple = is_upward_dag(graph)
    if n and graph.n_edges and upward_simple:
        return undirected_adjacency(graph, upward_simple=True)
    src = graph.sources()
    dst = graph.indices
    keep = src != dst  # self-loops never join a vertex set
    a = sp.coo_array(
        (np.ones(int(keep.sum()), dtype=bool), (src[keep], dst[keep])), shape=(n, n)
    ).tocsr()
    s = (a + a.T).tocsr()  # boolean: parallel and reciprocal edges collapse
    s.sum_duplicates()
    s.sort_indices()
    return s.indptr.astype(np.int64), s.indices.astype(dst.dtype if n < 2**31 else np.int64)
