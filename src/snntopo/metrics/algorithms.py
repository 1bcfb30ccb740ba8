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

from typing import TYPE_CHECKING

import numpy as np

from ..encode.graph import Graph, count_ids, release_pages
from ..mapped import ReleaseEvery

if TYPE_CHECKING:  # imported where used: scipy.sparse costs each job ~0.15 s to import, and the
    # implicit local and strength jobs never need it (issue 29)
    import scipy.sparse as sp

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
    in row chunks (bounded temporaries); the mapped pages of ``src_vals`` (a graph file's
    member) are released chunk by chunk (:func:`~snntopo.mapped.release_pages`)."""
    for lo, hi in row_chunks(src_ptr, max(1, EDGE_CHUNK >> 2)):  # int64 positions: 16 MB
        a, b = int(src_ptr[lo]), int(src_ptr[hi])
        if a == b:
            continue
        shift = dest_start[lo:hi].astype(np.int64) - src_ptr[lo:hi]
        pos = np.repeat(shift, np.diff(src_ptr[lo : hi + 1]))
        pos += np.arange(a, b, dtype=np.int64)
        out[pos] = src_vals[a:b]
        release_pages(src_vals, a, b)


def _scatter_in_lists(graph: Graph, out: np.ndarray, dest_start: np.ndarray) -> None:
    """``out[dest_start[v] + k]`` = the k-th smallest source of an edge into v, for every v (with
    multiplicity): the CSC of the graph written straight into ``out``, without A^T.

    A counting sort over A's entries in row chunks of about :data:`EDGE_CHUNK`: each chunk's
    sources per target come from scipy's csr->csc conversion of the chunk (a counting sort in C,
    over the chunk's target range only, ascending), and chunks run in row order, so every list
    comes out ascending; a fill pointer per target says where the next one goes. Memory: O(n)
    int64 fill pointers and chunk-sized buffers; the mapped pages of A are released chunk by
    chunk."""
    from scipy.sparse import _sparsetools as st

    n = graph.n_nodes
    ptr, ind = graph.indptr, graph.indices
    fill = dest_start[:n].astype(np.int64)
    for lo, hi in row_chunks(ptr, max(1, EDGE_CHUNK >> 2)):  # ~25 bytes per entry: ~50 MB
        a, b = int(ptr[lo]), int(ptr[hi])
        if a == b:
            continue
        part = ind[a:b]
        t0, t1 = int(part.min()), int(part.max()) + 1  # an MGE chunk's targets: a narrow range
        idx = index_dtype(max(t1 - t0, b - a, hi) + 1)
        cp, ci = np.empty(t1 - t0 + 1, dtype=idx), np.empty(b - a, dtype=idx)
        ones = np.ones(b - a, dtype=np.int8)  # scipy's data arrays: every value read is 1
        st.csr_tocsc(
            hi - lo,
            t1 - t0,
            (ptr[lo : hi + 1] - a).astype(idx),
            (part - t0).astype(idx, copy=False),
            ones,
            cp,
            ci,
            ones,
        )
        release_pages(ind, a, b)
        counts = np.diff(cp)
        pos = np.repeat(fill[t0:t1] - cp[:-1], counts)
        pos += np.arange(b - a, dtype=np.int64)
        ci += lo  # rows of the chunk -> node ids
        out[pos] = ci
        fill[t0:t1] += counts


def undirected_adjacency(
    graph: Graph,
    virtual_root: bool = False,
    upward_simple: bool | None = None,
    dtype: type | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """CSR (indptr int64, indices) of the undirected multigraph: row v = in-neighbours (ascending)
    then out-neighbours (in CSR order). The one symmetrised structure of the global algorithms.

    Parallel edges keep their multiplicity and a self-loop appears twice in its row, so row lengths
    equal igraph's ``degree(mode='all')``. For a DAG whose edges all point to higher ids with sorted
    duplicate-free rows (every MGE), rows come out sorted and duplicate-free, i.e. this is also the
    simple undirected graph. ``virtual_root`` appends row n listing every node 0..n-1 (a root from
    which one directed DFS visits every component). Indices are int32 below 2**31 nodes
    (``dtype``: another width, e.g. int64 where a consumer needs the offsets' width).

    Memory (issue 29): the result and O(n) arrays, nothing per edge besides: the offsets are
    ``indptr(A) + in-degrees``, the in-neighbour part of each row is written by
    :func:`_scatter_in_lists` (no A^T) and the out part copied from A's rows, in row chunks
    whose mapped pages of A are released as they are done (8 bytes per edge at the peak with
    int32 indices; 12.35 before, 16 before that). ``upward_simple`` is accepted for callers that
    passed it (the same arrays come out for every graph).
    """
    del upward_simple  # one path for every graph
    n = graph.n_nodes
    outdeg = np.diff(graph.indptr)
    indeg = count_ids(graph.indices, n)  # streamed, pages released
    indptr = np.zeros(n + 2 if virtual_root else n + 1, dtype=np.int64)
    np.cumsum(outdeg + indeg, out=indptr[1 : n + 1])
    del outdeg
    if virtual_root:
        indptr[n + 1] = indptr[n] + n
    out = np.empty(int(indptr[-1]), dtype=index_dtype(n + 1) if dtype is None else dtype)
    _scatter_in_lists(graph, out, indptr[:n])
    _scatter_rows(out, indptr[:n] + indeg, graph.indptr, graph.indices)
    if virtual_root:
        out[indptr[n] :] = np.arange(n, dtype=out.dtype)
    return indptr, out


#: up to this many edges :func:`in_neighbour_lists` sorts in numpy (~15 ms at the bound) rather
#: than importing scipy for its C conversion (~0.15 s per process): the implicit local and
#: strength jobs read only their residual's in-lists (ResNet-20: 40,960 edges) and need no scipy
NUMPY_IN_LISTS_MAX_EDGES = 1 << 18


def in_neighbour_lists(graph: Graph) -> tuple[np.ndarray, np.ndarray]:
    """CSC view of the graph: (in_ptr, sources grouped by target, ascending within each target).

    Written by :func:`_scatter_in_lists` (a chunked counting sort, scipy's csr->csc in C per
    chunk) into the result directly: 4 bytes per edge at the peak besides O(n) arrays and chunk
    buffers (issue 29; was 5 with scipy's whole-graph conversion and its int8 data array, 6
    before), the mapped pages of A released chunk by chunk; the same arrays.
    """
    n = graph.n_nodes
    in_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(count_ids(graph.indices, n), out=in_ptr[1:])
    if graph.n_edges <= NUMPY_IN_LISTS_MAX_EDGES:
        # A's entries are in row order, so a stable sort by target keeps each list ascending
        order = np.argsort(graph.indices, kind="stable")
        return in_ptr, graph.sources()[order].astype(graph.indices.dtype, copy=False)
    in_src = np.empty(graph.n_edges, dtype=graph.indices.dtype)
    _scatter_in_lists(graph, in_src, in_ptr[:n])
    return in_ptr, in_src


def sym_csgraph(indptr: np.ndarray, indices: np.ndarray) -> sp.csr_array:
    """A scipy csgraph view of an unweighted CSR structure without copying it.

    csgraph routines convert their input to float64 data (8 bytes per entry, plus a transposed
    copy for ``directed=False``); a zero-stride float64 ``data`` view and int32 index arrays pass
    through that conversion untouched. Use with ``directed=True`` on a symmetric structure.
    """
    n = indptr.shape[0] - 1
    idx = index_dtype(max(n, int(indptr[-1])))
    import scipy.sparse as sp

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

    One DFS over the undirected multigraph plus a virtual root n adjacent to every node: the
    root's children are the components' DFS roots, so the component count comes out of the same
    traversal. Self-loops stay in: they are never tree edges and never lower a low point below the
    node itself, so they change nothing.

    The undirected neighbours of v are row v of A (the mapped graph, not copied) and row v of
    A^T, which holds the virtual root's row too: scipy's undirected DFS walks the two CSRs
    together (:func:`_dfs_two_part`), so nothing holds both directions in one structure (issue
    29: 4 bytes per edge of heap, A^T's int32 sources, besides O(n) arrays; the merged
    :func:`undirected_adjacency` took 8, and 16 past 2**31 entries, where scipy needs int64
    indices). Every later pass over the entries runs in row chunks, A's pages released.
    """
    n, e = graph.n_nodes, graph.n_edges
    if n == 0 or e == 0:
        return 0, 0, n
    direction, parallel = edge_direction(graph), has_parallel_edges(graph)
    simple = direction != 0 and not parallel  # no parallel or reciprocal copy of any edge
    parts, order, pred = _dfs_two_part(graph)
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
    narrow = np.int32 if n < 2**31 - 1 else np.int64  # the tables' values: depths, preorders
    seq = depth[order].astype(narrow)  # depth along the preorder
    table = _RangeMin(seq)
    end = table.first_not_greater(np.arange(1, order.shape[0] + 1), seq)  # subtree = [pre, end)
    del table, seq, depth, jump
    end_of = end[pre].astype(np.int32 if n < 2**31 - 1 else np.int64)
    pre_c = pre.astype(end_of.dtype)
    # every non-tree edge must join an ancestor and a descendant, or this was no DFS tree: with
    # end > pre, that is pre[v] < end[u] and pre[u] < end[v] (checked once per edge)
    gptr, gind = graph.indptr, graph.indices
    for lo, hi in row_chunks(gptr, max(1, EDGE_CHUNK >> 2)):  # ~20 bytes per entry: 40 MB
        a, b = int(gptr[lo]), int(gptr[hi])
        lens = np.diff(gptr[lo : hi + 1])
        nb = gind[a:b]
        ok = pre_c[nb] < np.repeat(end_of[lo:hi], lens)
        ok &= np.repeat(pre_c[lo:hi], lens) < end_of[nb]
        if not ok.all():
            raise RuntimeError("depth-first order is not a DFS tree; bridges would be wrong")
        release_pages(gind, a, b)
    del ok, nb
    # m(w) = min(pre(w), pre of every neighbour except one copy of the tree edge to the parent).
    # Only ancestors can lower it below pre(w), and every ancestor but the parent has a smaller
    # preorder than the parent, so from m' = min over *all* neighbours: m = m' if m' < pre(parent),
    # else pre(parent) if the parent edge has a parallel copy (a reciprocal edge counts), else pre(w)
    m_all = pre.copy()
    pcount = np.ones(n + 1, dtype=np.int64) if simple else np.zeros(n + 1, dtype=np.int64)
    for s_ptr, s_idx in parts:  # rows 0..n-1 of each part (the virtual root's row is not needed)
        for lo, hi in row_chunks(s_ptr[: n + 1], max(1, EDGE_CHUNK >> 2)):
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
                pcount[lo + nonempty] += np.add.reduceat(is_par, starts, dtype=np.int64)
            release_pages(s_idx, a, b)
    parts = s_ptr = s_idx = nb = None  # A^T's sources go before the range-minimum tables
    pre_par = pre[parent]
    m = np.where(m_all < pre_par, m_all, np.where((pcount >= 2) & (parent != n), pre_par, pre))
    m[n] = pre[n]
    low_seq = _RangeMin(m[order].astype(narrow))
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


def _dfs_two_part(
    graph: Graph,
) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
    """DFS from a virtual root n (adjacent to every node) over the undirected multigraph of
    ``graph``: (the parts whose rows v together are v's neighbours, each (indptr, indices) with
    rows 0..n; the preorder; the predecessors, virtual root and components' roots' as scipy
    gives them).

    Parts: A itself (the mapped graph, rows 0..n-1, row n empty) and A^T written by
    :func:`_scatter_in_lists` with the root's row n = 0..n-1 appended. scipy's undirected
    depth-first search (``_depth_first_undirected``, what ``depth_first_order(directed=False)``
    runs on a graph and its transpose) walks them together. Where that routine is missing or
    refuses the arrays (another scipy), the merged :func:`undirected_adjacency` and the public
    ``depth_first_order`` do the same work at twice the memory."""
    n, e = graph.n_nodes, graph.n_edges
    idx = index_dtype(max(n + 2, e + n))
    p1 = np.empty(n + 2, dtype=idx)
    p1[: n + 1] = graph.indptr
    p1[n + 1] = e
    i1 = graph.indices.astype(idx, copy=False)  # the mapped graph itself where it is int32
    p2 = np.zeros(n + 2, dtype=np.int64)
    np.cumsum(count_ids(graph.indices, n), out=p2[1 : n + 1])
    p2[n + 1] = e + n
    i2 = np.empty(e + n, dtype=idx)
    _scatter_in_lists(graph, i2, p2[:n])
    i2[e:] = np.arange(n, dtype=idx)
    p2 = p2.astype(idx, copy=False)
    try:
        from scipy.sparse.csgraph import _traversal

        node_list = np.full(n + 1, -9999, dtype=idx)  # scipy's NULL_IDX
        pred = np.full(n + 1, -9999, dtype=idx)
        length = _traversal._depth_first_undirected(
            n, i1, p1, i2, p2, node_list, pred, np.empty(n + 1, idx), np.zeros(n + 1, idx)
        )
        order = node_list[:length]
    except (ImportError, AttributeError, TypeError, ValueError):
        del i2
        s_ptr, s_idx = undirected_adjacency(
            graph, virtual_root=True, dtype=index_dtype(max(n + 1, 2 * e + n))
        )
        from scipy.sparse import csgraph  # here: its import pulls scipy.sparse.linalg (~0.08 s)

        order, pred = csgraph.depth_first_order(
            sym_csgraph(s_ptr, s_idx), n, directed=True, return_predecessors=True
        )
        return [(s_ptr, s_idx)], order, pred
    return [(p1, i1), (p2, i2)], order, pred


#: the peeling releases the pages of a memory-mapped graph once its waves have gathered this
#: many entries (64 MB of int32): a node's row is read once, in the wave that removes it, so its
#: pages need not stay resident; without this the peel held the whole mapped CSR besides the
#: in-neighbour lists (vgg16_bn 64x64 ERK 0.9: 6.15 GB, 8.3 bytes per edge)
PEEL_RELEASE_ENTRIES = 1 << 24


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
    release = ReleaseEvery(*(ind for _, ind in parts), entries=PEEL_RELEASE_ENTRIES)
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
                release.read(nb.shape[0])  # rows read once, in the wave that removes them
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
    import scipy.sparse as sp

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
    up = down = True
    ptr, ind = graph.indptr, graph.indices
    for lo, hi in row_chunks(ptr, EDGE_CHUNK):
        rows = lo + np.flatnonzero(np.diff(ptr[lo : hi + 1]) > 0)
        if rows.size == 0:
            continue
        a, b = int(ptr[lo]), int(ptr[hi])
        starts = ptr[rows] - a
        if up:
            up = bool(np.all(np.minimum.reduceat(ind[a:b], starts) > rows))
        if down:
            down = bool(np.all(np.maximum.reduceat(ind[a:b], starts) < rows))
        release_pages(ind, a, b)
        if not (up or down):
            return 0
    return 1 if up else -1


def has_parallel_edges(graph: Graph) -> bool:
    """True if some row repeats a target -- or is not sorted (then conservatively True)."""
    ind, ptr = graph.indices, graph.indptr
    for lo, hi in row_chunks(ptr, EDGE_CHUNK):
        a, b = int(ptr[lo]), int(ptr[hi])
        if b - a < 2:
            continue
        bad = ind[a + 1 : b] <= ind[a : b - 1]  # one bool pass, no difference array
        inner = ptr[lo + 1 : hi] - a - 1  # positions where a new row starts (not a violation)
        bad[inner[(inner >= 0) & (inner < bad.shape[0])]] = False
        if bad.any():
            return True
        release_pages(ind, a, b)
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
    import scipy.sparse as sp

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
