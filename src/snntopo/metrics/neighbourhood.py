"""Neighbourhood: mean 1-hop and 2-hop out-neighbourhood sizes (self included) and the
RAND-ESU estimate of the number of size-4 motifs per edge.

``motif`` is on the published tables' scale: igraph's ``motifs_randesu_estimate(size=4,
sample=int(0.001 N))`` (the sampled roots' connected 4-sets times N / sample) divided by the edge
count. Every published MGE ``motif`` value times its ``edges`` is exactly such an estimate (an
integer count over ``int(0.001 N)`` roots times N / roots); see ``docs/reproduction.md``. The
undivided estimate is :func:`motif_estimate`.

On the bipartite layers of a BGE (``motif_definition = "connected_triples"``, set for layers by the
family's registry fact ``layer_params``) ``motif`` is instead the published BGE ``motifs_count``:
the exact number of connected 3-vertex subgraphs (igraph's ``motifs_randesu_no(size=3)``), not
normalised -- the published per-layer values equal it on fresh masks (``docs/reproduction.md``).

Why the 2-hop sizes are counted with a symbolic sparse product: |N<=2(v)| is the number of nonzeros
in row v of the boolean (I + A)^2, and only the *total* is needed for the mean, so the product is
never stored: scipy's symbolic pass (a per-row column mask, O(flops) time, O(n) memory) counts the
nonzeros of row chunks, and chunks run on ``threads`` threads (the C routine releases the GIL).
Where I + A is dense enough for it to pay (mean degree > ``CLASS_MIN_MEAN_DEGREE``), only one
row per translation class is counted (:mod:`snntopo.metrics.translation`: rows that are the same
stencil at another position have equally large 2-hop rows; exact, every class verified).

The motif count reads each node's neighbours below and above it as two parts (:class:`SplitRows`):
for an MGE the CSC and the CSR themselves, with no merged undirected copy; the sampled roots are
shared out over the same ``threads``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..encode.graph import Graph, count_ids
from ..mapped import ReleaseEvery, release_pages
from .algorithms import (
    EDGE_CHUNK,
    gather_ranges,
    gather_rows,
    in_neighbour_lists,
    index_dtype,
    is_upward_dag,
    row_chunks,
    simple_undirected_adjacency,
)
from .base import FamilyResult, sample_size
from .term_classes import TermClasses, term_classes
from .translation import translation_classes

log = logging.getLogger("snntopo.metrics")

try:  # symbolic product: exact nnz of A @ B without computing it
    from scipy.sparse._sparsetools import csr_matmat_maxnnz as _maxnnz
except ImportError:  # pragma: no cover - depends on the scipy build
    _maxnnz = None


def _closed_structure(graph: Graph, upward_simple: bool | None = None) -> sp.csr_array:
    """Boolean I + A (duplicates merged, sorted rows), int32 indices where they fit.

    A graph whose rows are sorted, duplicate-free and point to higher ids (every MGE) gets the
    diagonal prepended to each row directly (no sparse sum, no data array: the structure is all
    the symbolic product reads); anything else goes through scipy's sum.
    """
    n = graph.n_nodes
    if upward_simple is None:
        upward_simple = is_upward_dag(graph)
    if upward_simple:
        idx = index_dtype(n + graph.n_edges)
        indptr = (graph.indptr + np.arange(n + 1, dtype=np.int64)).astype(idx)
        # v goes in front of row v (its targets are all > v); np.insert does that in one masked
        # copy (~20x faster than scattering the rows to their shifted places)
        indices = np.insert(
            graph.indices.astype(idx, copy=False), graph.indptr[:-1], np.arange(n, dtype=idx)
        )
        data = np.broadcast_to(np.int8(1), indices.shape)
        return sp.csr_array((data, indices, indptr), shape=(n, n), copy=False)
    a = sp.csr_array(
        (np.ones(graph.n_edges, dtype=np.int8), graph.indices, graph.indptr), shape=(n, n)
    )
    b = (a + sp.eye_array(n, dtype=np.int8, format="csr")).tocsr()
    b.sum_duplicates()
    b.data[:] = 1
    return b


@dataclass(frozen=True)
class ClosedRows:
    """I + A of a graph whose edges all point to higher ids, read from A's own arrays: row v of
    I + A is v followed by A's row v, so entry ``k`` of row v (offset ``indptr[v] + k``) is v
    for k = 0 and ``a_idx[a_ptr[v] + k - 1]`` after it.

    Why no materialised structure: prepending the diagonal to every row is a full copy of the
    targets (4 bytes per edge, plus the masked insert's temporaries: the largest part of this
    family's peak on the MGEs of ``docs/benchmarks.md``); the 2-hop count and the translation
    classes only ever need a row block or single entries of I + A, built from the (memory-mapped)
    CSR on demand. ``indptr`` (n + 1 int64) is the only array of the size of the node set.
    """

    a_ptr: np.ndarray
    a_idx: np.ndarray
    indptr: np.ndarray

    @classmethod
    def of(cls, graph: Graph) -> ClosedRows:
        ptr = np.asarray(graph.indptr)
        return cls(ptr, graph.indices, ptr + np.arange(ptr.shape[0], dtype=np.int64))

    @property
    def shape(self) -> tuple[int, int]:
        n = int(self.indptr.shape[0]) - 1
        return n, n

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    def targets(self, src: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """Column of the entries at offsets ``pos`` of rows ``src`` (int64)."""
        k = pos - self.indptr[src]
        at = self.a_ptr[src] + k - 1
        out = self.a_idx[np.where(k > 0, at, 0)].astype(np.int64)
        np.copyto(out, src, where=k == 0)
        return out

    def release(self, lo: int, hi: int) -> None:
        """Drop the mapped graph pages under rows [lo, hi) of A (a pass over them is done)."""
        release_pages(self.a_idx, int(self.a_ptr[lo]), int(self.a_ptr[hi]))

    def rows(self, rows: np.ndarray, idx: type) -> tuple[np.ndarray, np.ndarray]:
        """(indptr, indices) of the given rows of I + A as a CSR of ``len(rows)`` rows."""
        lens = (self.a_ptr[rows + 1] - self.a_ptr[rows]).astype(np.int64)
        ap = np.zeros(rows.shape[0] + 1, dtype=np.int64)
        np.cumsum(lens + 1, out=ap[1:])
        aj = np.empty(int(ap[-1]), dtype=idx)
        aj[ap[:-1]] = rows  # v first, then A's row v
        mask = np.ones(aj.shape[0], dtype=bool)
        mask[ap[:-1]] = False
        aj[mask] = self.a_idx[gather_ranges(self.a_ptr[:-1], self.a_ptr[1:], rows)[0]]
        return ap.astype(idx), aj

    def block(self, lo: int, hi: int, idx: type) -> tuple[np.ndarray, np.ndarray]:
        """(indptr, indices) of the contiguous rows [lo, hi) of I + A."""
        a0, a1 = int(self.a_ptr[lo]), int(self.a_ptr[hi])
        starts = (self.a_ptr[lo:hi] - a0).astype(np.int64)
        aj = np.insert(
            self.a_idx[a0:a1].astype(idx, copy=False), starts, np.arange(lo, hi, dtype=idx)
        )
        ap = (self.indptr[lo : hi + 1] - self.indptr[lo]).astype(idx)
        return ap, aj


#: translation classes cost 4 numpy passes over B's entries (~60 ns per entry in all, here); the
#: symbolic product ~0.5 ns per step, sum_u indeg(u) outdeg(u) steps. On layered graphs with even
#: degrees that is about the mean degree per entry (ResNet-20's MGE: 131 per node, 133 steps per
#: entry, break-even; Conv-6's: 741 and 825, 2-hop count 2.5x faster with the classes), so the
#: classes are used where B has more entries per row than this.
CLASS_MIN_MEAN_DEGREE = 300


def _classes_pay(b: sp.csr_array | ClosedRows) -> bool:
    """Whether counting per translation class is expected to beat counting every row."""
    return b.nnz > CLASS_MIN_MEAN_DEGREE * max(int(b.shape[0]), 1)


#: classes found from the conv terms are checked on this many of them (representative and
#: farthest member counted directly; a 2-hop row costs ~deg^2 steps: a few ms in all)
TERM_CLASS_CHECKS = 64


def _two_hop_classes(
    b: sp.csr_array | ClosedRows, graph: Graph, upward: bool, seed: int
) -> tuple[tuple[np.ndarray, np.ndarray] | None, dict[str, Any]]:
    """The classes the 2-hop count uses and what was used (recorded in the artifact).

    An MGE's conv terms give them from the geometry (:mod:`snntopo.metrics.term_classes`, no
    pass over the edges), checked on sampled classes; where they group too few rows (terms hold
    few blocks) and the edge-reading classes pay (:func:`_classes_pay`), those are used instead;
    otherwise every row is counted."""
    n = b.shape[0]
    found = term_classes(graph) if upward else None
    if found is not None and found.grouped:
        counted = int(found.reps.shape[0])
        if not _members_agree(b, found, seed):
            log.warning(
                "classes from the conv terms disagree with the edges on a sampled class; "
                "the 2-hop count reads the edges for its classes instead"
            )
        elif counted <= n // 2 or not _classes_pay(b):
            info = {"two_hop_classes": "conv terms", "two_hop_rows_counted": counted}
            return (found.reps, found.sizes), info
    if _classes_pay(b):
        classes = translation_classes(b, graph)
        if classes is not None:
            counted = int(classes[0].shape[0])
            return classes, {"two_hop_classes": "translation", "two_hop_rows_counted": counted}
    return None, {"two_hop_classes": "none", "two_hop_rows_counted": n}


def _members_agree(b: sp.csr_array | ClosedRows, found: TermClasses, seed: int) -> bool:
    """Whether sampled classes' representative and farthest member have 2-hop rows of one size
    (each row counted on its own)."""
    multi = np.flatnonzero(found.sizes > 1)
    if multi.shape[0] == 0:
        return True
    rng = np.random.default_rng(seed)
    picked = rng.choice(multi, size=min(TERM_CLASS_CHECKS, multi.shape[0]), replace=False)
    counts = two_hop_rows(b, np.concatenate([found.reps[picked], found.others[picked]]))
    return bool(np.array_equal(counts[: picked.shape[0]], counts[picked.shape[0] :]))


def two_hop_rows(b: sp.csr_array | ClosedRows, rows: np.ndarray) -> np.ndarray:
    """nnz of each given row of B @ B, one row at a time (for a few rows: a check)."""
    closed = isinstance(b, ClosedRows)
    right = _RightOperand(b)
    out = np.empty(rows.shape[0], dtype=np.int64)
    for i, v in enumerate(np.asarray(rows, dtype=np.int64).tolist()):
        one = np.array([v], dtype=np.int64)
        if closed:
            ap, aj = b.rows(one, right.idx)
        else:
            aj = b.indices[gather_rows(b.indptr, one)].astype(right.idx)
            ap = np.array([0, aj.shape[0]], dtype=right.idx)
        out[i] = right.count(ap, aj, 1) + (1 if closed else 0)
    return out


#: left-operand entries per task of :func:`two_hop_total` (bounds its row-block temporaries)
TWO_HOP_BLOCK_ENTRIES = 1 << 21


def two_hop_total(
    b: sp.csr_array | ClosedRows,
    chunk_rows: int = 16384,
    threads: int = 1,
    classes: tuple[np.ndarray, np.ndarray] | None = None,
) -> int:
    """sum over rows v of nnz(row v of B @ B) for a square 0/1 CSR matrix ``B``.

    ``classes`` = (representative rows, class sizes) from
    :func:`snntopo.metrics.translation.translation_classes`: only the representatives are
    counted, each times its class size (rows of one class have equally large 2-hop rows).

    ``B`` given as :class:`ClosedRows` (I + A of a graph whose edges all point to higher ids) is
    never built: row v of B @ B is {v} and the disjoint union of A's row v and 2-hop row v
    (every target is > v), i.e. 1 + nnz(row v of B @ A), so the left operand is a block of B's
    rows built from A's (chunk-sized) and the right operand is A's own CSR arrays: the product
    reads only the rows of A that the counted rows reach.
    """
    n = b.shape[0]
    if n == 0:
        return 0
    closed = isinstance(b, ClosedRows)
    right = _RightOperand(b)
    idx, rp, rj = right.idx, right.ptr, right.ind  # (for B's own rows when B is built)
    step = max(1, int(chunk_rows))

    def count(ap: np.ndarray, aj: np.ndarray, rows: int) -> int:
        got = right.count(ap, aj, rows)
        return got + rows if closed else got

    def block(lo: int, hi: int) -> int:  # contiguous rows: views, no gather
        if closed:
            return count(*b.block(lo, hi, idx), hi - lo)
        return count(rp[lo : hi + 1] - rp[lo], rj[rp[lo] : rp[hi]], hi - lo)

    def picked(rows: np.ndarray) -> int:
        if closed:
            return count(*b.rows(rows, idx), rows.shape[0])
        lens = (rp[rows + 1] - rp[rows]).astype(idx)
        ap = np.zeros(rows.shape[0] + 1, dtype=idx)
        np.cumsum(lens, out=ap[1:])
        return count(ap, rj[gather_rows(rp, rows)], rows.shape[0])

    def pieces(lens: np.ndarray) -> list[tuple[int, int]]:
        """[a, b) ranges of at most ``step`` rows and (one long row aside) at most
        TWO_HOP_BLOCK_ENTRIES entries of the left operand (its temporaries stay bounded)."""
        ends = np.r_[0, np.cumsum(lens + 1 if closed else lens)]
        cuts = [lo for lo, _ in row_chunks(ends, TWO_HOP_BLOCK_ENTRIES)]
        bounds = np.union1d(np.arange(0, lens.shape[0], step), cuts).tolist()
        return list(zip(bounds, bounds[1:] + [lens.shape[0]], strict=True))

    deg = np.diff(b.a_ptr if closed else rp)
    tasks: list[tuple[int, Callable[[], int]]] = []
    if classes is None:
        for lo, hi in pieces(deg):
            tasks.append((1, lambda lo=lo, hi=hi: block(lo, hi)))
    else:
        reps, sizes = (np.asarray(a, dtype=np.int64) for a in classes)
        order = np.lexsort((reps, sizes))
        reps, sizes = reps[order], sizes[order]
        cuts = np.flatnonzero(np.diff(sizes)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, reps.shape[0]], strict=True):
            part = reps[int(lo) : int(hi)]
            for a, z in pieces(deg[part]):
                tasks.append((int(sizes[lo]), lambda rows=part[a:z]: picked(rows)))
    if threads > 1 and len(tasks) > 1:
        with ThreadPoolExecutor(max_workers=int(threads)) as pool:
            counts = list(pool.map(lambda t: t[1](), tasks))
        return sum(w * c for (w, _), c in zip(tasks, counts, strict=True))
    return sum(w * fn() for w, fn in tasks)


#: I + A with this many entries or more needs int64 offsets, and scipy's product takes one index
#: type for both operands: a whole-graph right operand would be an int64 copy of every target
#: (8 bytes per edge, 24 GB for ResNet-50 224x224 ERK 0.6). Past it, each block of rows reads
#: the window of A's rows it reaches, its offsets narrowed and its targets as they are
WIDE_ENTRIES = 2**31


class _RightOperand:
    """The symbolic product's right operand: B's own arrays, or for :class:`ClosedRows` A itself
    (its int32 targets as they are, offsets narrowed); past :data:`WIDE_ENTRIES` (an MGE's A
    with int32 targets), per block the window of A's rows between the smallest and largest
    column of the block's left operand: on a layered graph a few blocks' rows."""

    def __init__(self, b: sp.csr_array | ClosedRows) -> None:
        self.n = int(b.shape[0])
        self.windowed = False
        if isinstance(b, ClosedRows):
            narrow = b.a_idx.dtype == np.int32 and self.n < 2**31 - 1
            self.windowed = narrow and b.nnz >= WIDE_ENTRIES
            self.idx: type = np.int32 if narrow else np.int64
            ptr, ind = b.a_ptr, b.a_idx
        else:
            wide = b.indptr.dtype == np.int64 or b.nnz >= 2**31
            self.idx = np.int64 if wide else np.int32
            ptr, ind = b.indptr, b.indices
        # windowed: the offsets are narrowed window by window in :meth:`count`
        self.ptr = ptr if self.windowed else ptr.astype(self.idx, copy=False)
        self.ind = ind.astype(self.idx, copy=False)
        self._full: sp.csr_array | None = None  # the fallback's whole operand, built once

    def count(self, ap: np.ndarray, aj: np.ndarray, rows: int) -> int:
        """nnz of the product of the left rows (``ap``, ``aj``: columns are global ids) with
        the right operand."""
        ptr, ind, idx = self.ptr, self.ind, self.idx
        if self.windowed:
            if aj.shape[0] == 0:
                return 0
            lo, hi = int(aj.min()), int(aj.max()) + 1
            a0, a1 = int(ptr[lo]), int(ptr[hi])
            idx = np.int32 if a1 - a0 < 2**31 else np.int64
            ptr = (ptr[lo : hi + 1] - a0).astype(idx)
            ind = ind[a0:a1].astype(idx, copy=False)
            ap, aj = ap.astype(idx, copy=False), (aj - lo).astype(idx)
        if _maxnnz is not None:
            return int(_maxnnz(idx(rows), idx(self.n), ap, aj, ptr, ind))
        m = ptr.shape[0] - 1
        right = self._full
        if right is None:
            right = sp.csr_array((np.ones(ind.shape[0], dtype=bool), ind, ptr), shape=(m, self.n))
            if not self.windowed:
                self._full = right
        sub = sp.csr_array((np.ones(aj.shape[0], dtype=bool), aj, ap), shape=(rows, m))
        return int((sub @ right).nnz)


@dataclass(frozen=True)
class SplitRows:
    """The neighbour rows of a simple undirected graph, each cut at the node itself.

    Row u is ``lo_idx[lo_begin[u]:lo_end[u]]`` (every neighbour < u, ascending) followed by
    ``hi_idx[hi_begin[u]:hi_end[u]]`` (every neighbour > u, ascending). Why two parts: a DAG
    whose edges all point to higher ids (every MGE) *is* this with its CSC as the lower part and
    its own CSR as the upper one, so the motif count needs no merged undirected copy (for a
    ResNet-20 MGE: 2 x 2.5e7 entries less to build and fault in); any other graph is its simple
    undirected CSR cut at the diagonal, with no copy either.
    """

    lo_begin: np.ndarray
    lo_end: np.ndarray
    lo_idx: np.ndarray
    hi_begin: np.ndarray
    hi_end: np.ndarray
    hi_idx: np.ndarray

    @classmethod
    def of_undirected(cls, indptr: np.ndarray, indices: np.ndarray) -> SplitRows:
        """From a simple undirected CSR with sorted rows and no self-loops."""
        n = indptr.shape[0] - 1
        nodes = np.arange(n, dtype=np.int64)
        cut = _first_greater(indptr[:-1], indptr[1:], indices, nodes, nodes)
        return cls(indptr[:-1], cut, indices, cut, indptr[1:], indices)

    @classmethod
    def of_upward_dag(cls, graph: Graph) -> SplitRows:
        """From a graph whose edges all point to higher ids, rows sorted and duplicate-free."""
        in_ptr, in_src = in_neighbour_lists(graph)
        ptr = graph.indptr
        return cls(in_ptr[:-1], in_ptr[1:], in_src, ptr[:-1], ptr[1:], graph.indices)

    @classmethod
    def of_upward_dag_for_roots(
        cls,
        graph: Graph,
        roots: np.ndarray,
        chunk: int = EDGE_CHUNK,
        budget: int | None = None,
        in_degree: np.ndarray | None = None,
    ) -> SplitRows | None:
        """:meth:`of_upward_dag` with lower rows only where :func:`rooted_connected_4sets` reads
        them for these roots; every other lower row is empty (and never read for them).

        The count of a root v reads the lower rows of D (v's out-neighbours) and of Q (the
        neighbours of D), so the lower rows of S = D + in(D) + out(D), over all roots, suffice.
        Why: the full CSC is 4 bytes per edge (plus scipy's 1-byte data array while it is
        built); the sampled roots' neighbourhoods are a small part of a large MGE's nodes. S is
        found with one pass over the targets (marking the sources of edges into D), and its
        in-neighbour lists are gathered in row blocks of ``chunk`` entries: each block's kept
        entries are turned around by scipy's counting sort and scattered to their places, so
        every list stays ascending and the temporaries stay chunk-sized.

        ``budget`` (with the graph's ``in_degree``): None instead when the lists of more than one
        root would hold more than that many entries (:func:`motif_estimate` then splits the
        roots); a lone root's lists are gathered whatever their size, but never every list.
        """
        n = graph.n_nodes
        ptr, ind = graph.indptr, graph.indices
        roots = np.asarray(roots, dtype=np.int64)
        in_d = np.zeros(n, dtype=bool)
        in_d[ind[gather_rows(ptr, roots)]] = True
        need = in_d.copy()
        for lo, hi in row_chunks(ptr, max(1, int(chunk))):  # one pass, chunk-sized temporaries
            a0, a1 = int(ptr[lo]), int(ptr[hi])
            seg = ind[a0:a1]
            lens = np.diff(ptr[lo : hi + 1])
            need[seg[np.repeat(in_d[lo:hi], lens)]] = True  # out(D): the rows of D
            rows = np.flatnonzero(lens > 0)
            if rows.shape[0]:  # in(D): the rows with an edge into D
                hit = np.logical_or.reduceat(in_d[seg], ptr[lo + rows] - a0)
                need[lo + rows[hit]] = True
            release_pages(ind, a0, a1)  # a mapped graph's pages are not kept after the pass
        del in_d
        if budget is not None and roots.shape[0] > 1 and int(in_degree[need].sum()) > budget:
            return None  # this many roots' lower rows would exceed the budget: fewer roots
        # most nodes needed (the roots' neighbourhoods cover the graph): gather every list,
        # which skips the per-entry filter (the extra lists are read by no root, and correct),
        # unless a budget holds fewer entries than the graph (every list would exceed it:
        # vgg16_bn 64x64's batches took 3.0 GB of lists for a 1.5 GB budget)
        everyone = np.count_nonzero(need) >= LOWER_ROWS_ALL * n and (
            budget is None or graph.n_edges <= budget
        )
        lo_b, lo_e, lo_i = _lower_rows(
            graph, None if everyone else need, row_chunks(ptr, LOWER_ROWS_CHUNK)
        )
        return cls(lo_b, lo_e, lo_i, ptr[:-1], ptr[1:], ind)


#: the motif gathers every in-neighbour list once at least this share of the nodes is needed
LOWER_ROWS_ALL = 0.5
#: the motif's in-neighbour lists (4 bytes per entry) of one batch of roots hold at most this
#: many entries per edge of the graph (at least :data:`MOTIF_ROWS_MIN_ENTRIES`): more roots'
#: lists are gathered batch by batch, each batch a pass over the targets. Why: the sampled
#: roots of vgg16_bn's 64x64 MGE need nearly every list (4 bytes per edge, 3.0 GB of its 6.8 GB
#: neighbourhood peak). Measured there (loaded machine): one batch 255 s / 6.76 GB, 0.5 341 s /
#: 5.26 GB, 0.25 932 s / 4.19 GB (the halving re-reads the graph for every failed split).
#: The floor (1 GiB of lists) keeps graphs under ~5e8 edges in one batch: Conv-6 SynFlow 0.6's
#: roots need every list (1.7e8 entries); split at half an entry per edge they took 12 batches
#: and 11 failed splits, 41 s of motif instead of 13 s, for a peak of 1.2 GB instead of 1.8 GB
MOTIF_ROWS_ENTRIES_PER_EDGE = 0.5
MOTIF_ROWS_MIN_ENTRIES = 1 << 28
#: target entries per block of :func:`_lower_rows`: its int64 temporaries (~30 bytes per entry
#: in all) stay near 30 MB while the lists themselves take 4 bytes per kept entry
LOWER_ROWS_CHUNK = 1 << 20


def _lower_rows(
    graph: Graph, need: np.ndarray | None, blocks: list[tuple[int, int]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(begin, end, sources): the in-neighbour lists, ascending, of the nodes with ``need``
    set (the other nodes' lists are empty; None: every node), gathered block by block of rows
    ``blocks``: 4 bytes per kept entry plus block-sized temporaries (scipy's ``csr_tocsc`` on
    the whole graph needs an E-sized data array besides)."""
    from scipy.sparse import _sparsetools as st

    n = graph.n_nodes
    ptr, ind = graph.indptr, graph.indices
    counts = np.zeros(n, dtype=np.int64)
    for lo, hi in blocks:
        seg = ind[int(ptr[lo]) : int(ptr[hi])]
        counts += np.bincount(seg if need is None else seg[need[seg]], minlength=n)
        release_pages(ind, int(ptr[lo]), int(ptr[hi]))
    begin = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=begin[1:])
    del counts
    out = np.empty(int(begin[-1]), dtype=index_dtype(n))
    fill = begin[:-1].copy()
    for lo, hi in blocks:
        a0, a1 = int(ptr[lo]), int(ptr[hi])
        if need is None:
            m = a1 - a0
            idx = index_dtype(max(n, m))
            bp = (ptr[lo : hi + 1] - a0).astype(idx)
            bj = ind[a0:a1].astype(idx, copy=False)
        else:
            keep = need[ind[a0:a1]]
            m = int(np.count_nonzero(keep))
            idx = index_dtype(max(n, m))
            kept_before = np.zeros(a1 - a0 + 1, dtype=np.int64)
            np.cumsum(keep, out=kept_before[1:])
            bp = kept_before[ptr[lo : hi + 1] - a0].astype(idx)  # the block's kept rows as a CSR
            bj = ind[a0:a1][keep].astype(idx, copy=False)
            del kept_before, keep
        if m:
            ones = np.ones(m, dtype=np.int8)
            cp, ci = np.empty(n + 1, dtype=idx), np.empty(m, dtype=idx)
            st.csr_tocsc(hi - lo, n, bp, bj, ones, cp, ci, ones)  # sources grouped by target
            del bj, ones
            per = np.diff(cp).astype(np.int64)
            # entry t of target j goes to fill[j] + (t - cp[j]): after the earlier blocks' sources
            dest = np.repeat(fill - cp[:-1], per) + np.arange(m, dtype=np.int64)
            out[dest] = ci + lo
            fill += per
        release_pages(ind, a0, a1)  # the block was read, whether or not any entry was kept
    return begin[:-1], begin[1:], out


def _first_greater(
    begin: np.ndarray, end: np.ndarray, indices: np.ndarray, rows: np.ndarray, v
) -> np.ndarray:
    """Position of the first entry > ``v`` in each (sorted) row ``indices[begin[r]:end[r]]``
    (the row end if none). A vectorised binary search: log2(max degree) numpy passes over
    ``rows``, no gather of rows."""
    lo = begin[rows].astype(np.int64)
    hi = end[rows].astype(np.int64)
    while True:
        active = lo < hi
        if not active.any():
            return lo
        mid = (lo + hi) // 2
        probe = indices[np.where(active, mid, 0)] > v
        go_left = active & probe
        go_right = active & ~probe
        hi = np.where(go_left, mid, hi)
        lo = np.where(go_right, mid + 1, lo)


def _comb2(x: np.ndarray) -> np.ndarray:
    return x * (x - 1) // 2


def rooted_connected_4sets(rows: SplitRows, roots) -> np.ndarray:
    """For every root v, the number of 4-vertex sets S with min(S) = v that induce a connected
    subgraph of the simple undirected graph whose neighbour rows are ``rows``.

    That is exactly what igraph's RAND-ESU (``motifs_randesu_estimate``, size 4, no cut
    probabilities) counts for a sampled root: ESU only extends by vertices with a larger id than
    the root, and counts every connected set once. Instead of enumerating the ~d^3 sets per root,
    they are counted by how many neighbours of v they contain (H = graph on {v} and ids > v,
    D = N_H(v), d = |D|, O = the other vertices of H, c_r = |N(r) & D|, X_p = N(p) & O):

    - three neighbours: C(d, 3) (always connected through v);
    - two neighbours p, q and r in O: connected iff r ~ p or r ~ q: sum_r C(d,2) - C(d-c_r,2);
    - one neighbour p and r, s in O: connected iff {p, r, s} is, i.e. both in X_p
      (sum_p C(|X_p|, 2)) or exactly one, say r, with r ~ s: sum_r c_r |N_H(r) & O| minus
      2 T, T = sum over edges {r, s} inside O of |N(r) & N(s) & D| (pairs counted above twice).

    D is v's upper row and every neighbour of r above r is r's upper row, so only the lower rows
    of D and Q are searched. T is counted by :func:`shared_in_d` (bit rows of N(r) & D where that
    is cheaper). Cost per root is O(d^2 + |Q| log deg + edges among Q x min(d / 64, c)), in numpy.

    The upper rows of an MGE are the mapped graph itself; its pages are released once the roots
    have read :data:`COUNT_RELEASE_ENTRIES` of its entries (a root's rows are read by that root
    alone, so they need not stay resident: ResNet-50 224x224 ERK 0.9 held 5.4 GB of them).
    """
    lo_b, lo_e, lo_i = rows.lo_begin, rows.lo_end, rows.lo_idx
    hi_b, hi_e, hi_i = rows.hi_begin, rows.hi_end, rows.hi_idx
    n = lo_b.shape[0]
    in_d = np.zeros(n, dtype=bool)
    in_q = np.zeros(n, dtype=bool)
    out = np.zeros(len(roots), dtype=np.int64)
    release = ReleaseEvery(hi_i, entries=COUNT_RELEASE_ENTRIES)
    for i, v in enumerate(np.asarray(roots, dtype=np.int64)):
        dset = hi_i[hi_b[v] : hi_e[v]].astype(np.int64)  # N_H(v): the neighbours above v
        d = int(dset.shape[0])
        if d == 0:
            continue
        total = d * (d - 1) * (d - 2) // 6
        # N(p) for p in D, the part that can lie in H: lower neighbours > v, all upper ones
        lpos, llen = gather_ranges(lo_b, lo_e, dset)
        upos, ulen = gather_ranges(hi_b, hi_e, dset)
        nb = np.concatenate([lo_i[lpos], hi_i[upos]])
        release.read(upos.shape[0])
        owner = np.concatenate([np.repeat(np.arange(d), llen), np.repeat(np.arange(d), ulen)])
        del lpos, upos
        in_d[dset] = True
        in_o = (nb > v) & ~in_d[nb]
        x = np.bincount(owner[in_o], minlength=d).astype(np.int64)
        total += int(_comb2(x).sum())
        r_all = nb[in_o]
        p_all = owner[in_o]
        del nb, owner, in_o
        q, c = np.unique(r_all, return_counts=True)
        c = c.astype(np.int64)
        if q.shape[0]:
            q = q.astype(np.int64)
            # |N_H(r)| = upper row (all > r > v) + the lower neighbours above v
            deg_h = (hi_e[q] - hi_b[q]) + (lo_e[q] - _first_greater(lo_b, lo_e, lo_i, q, v))
            total += int((_comb2(np.int64(d)) - _comb2(d - c)).sum())
            total += int((c * (deg_h - c)).sum())
            # T: edges {r < s} inside Q (s in r's upper row) weighted by common neighbours in D;
            # Q's upper rows are scanned in parts of about Q_ROWS_CHUNK entries (a wide Q's rows
            # hold ~1e7 entries, of which only the few inside Q are kept)
            in_q[q] = True
            er_parts, es_parts = [], []
            for qa, qb in row_chunks(np.r_[0, np.cumsum(hi_e[q] - hi_b[q])], Q_ROWS_CHUNK):
                pos, cnt = gather_ranges(hi_b, hi_e, q[qa:qb])
                s_nb = hi_i[pos]
                release.read(pos.shape[0])
                del pos
                hit = in_q[s_nb]
                if hit.any():
                    er_parts.append(np.repeat(np.arange(qa, qb), cnt)[hit])  # index of r in q
                    es_parts.append(np.searchsorted(q, s_nb[hit]))  # index of s in q
                del s_nb, hit
            in_q[q] = False
            if er_parts:
                er, es = np.concatenate(er_parts), np.concatenate(es_parts)
                del er_parts, es_parts
                ri = np.searchsorted(q, r_all)  # the (r, p) incidences: index of r in q, p
                total -= 2 * shared_in_d(er, es, ri, p_all, c, d)
        in_d[dset] = False
        out[i] = total
    return out


#: :func:`rooted_connected_4sets` releases a mapped graph's pages after its roots have read this
#: many upper-row entries (128 MB of int32): what stays resident between releases
COUNT_RELEASE_ENTRIES = 1 << 25
#: upper-row entries of Q scanned per part in :func:`rooted_connected_4sets` (its int64
#: temporaries stay near 30 MB however wide a root's 2-hop neighbourhood is)
Q_ROWS_CHUNK = 1 << 20
#: the bit rows of :func:`shared_in_d` are used up to this many bytes (q rows x d bits)
SHARED_BITS_MAX_BYTES = 1 << 28
#: edges per pass of :func:`shared_in_d` (bounds its temporaries to ~8 MB per word column)
SHARED_EDGE_CHUNK = 1 << 20


def shared_in_d(
    er: np.ndarray,
    es: np.ndarray,
    ri: np.ndarray,
    p_all: np.ndarray,
    c: np.ndarray,
    d: int,
    method: str = "auto",
) -> int:
    """sum over the edges (er[k], es[k]) of |N(r) & N(s) & D|: the common neighbours in D of the
    two ends, where r's neighbours in D are the ``p_all`` of the incidences with ``ri == r``
    (``c[r]`` of them, each pair (r, p) once) and D is numbered 0..d-1.

    Two exact ways, chosen by their cost (``method`` = "bits" | "probe" forces one):

    - ``bits``: every r's neighbours in D as a row of ceil(d / 64) machine words, and per edge the
      popcount of the AND of the two rows -- (edges x words) word operations. Why: on dense
      late layers (GoogLeNet's 4x4 and 2x2 maps, d ~ 300, sum of c[s] ~ 3e7 per root) this is
      ~1/30 of the probes and a few MB instead of ~2 GB of probe arrays;
    - ``probe``: for every edge (r, s) and every p adjacent to s, a binary search for (r, p)
      among the sorted incidences -- sum of c[s] probes, cheaper where D is wide and sparse.
    """
    n_q = int(c.shape[0])
    words = (d + 63) // 64
    probes = int(c[es].sum())
    if method == "auto":
        fits = n_q * words * 8 <= SHARED_BITS_MAX_BYTES
        method = "bits" if fits and er.shape[0] * words <= 4 * probes else "probe"
    out = 0
    step = max(1, SHARED_EDGE_CHUNK // max(words, 1))
    if method == "bits":
        bits = np.zeros(n_q * words, dtype=np.uint64)
        p = p_all.astype(np.int64, copy=False)
        # each (r, p) is one distinct bit, so OR-ing them in needs no ordering
        np.bitwise_or.at(
            bits,
            ri.astype(np.int64) * words + (p >> 6),
            np.left_shift(np.uint64(1), (p & 63).astype(np.uint64)),
        )
        bits = bits.reshape(n_q, words)
        for a in range(0, er.shape[0], step):
            both = bits[er[a : a + step]] & bits[es[a : a + step]]
            out += int(np.bitwise_count(both).sum(dtype=np.int64))
        return out
    if method != "probe":
        raise ValueError(f"unknown method {method!r} (use 'auto', 'bits' or 'probe')")
    # (r, p) incidences sorted by r then p: key = r_index * d + p
    key = np.sort(ri.astype(np.int64) * np.int64(d) + p_all)
    kptr = np.zeros(n_q + 1, dtype=np.int64)
    np.cumsum(c, out=kptr[1:])
    # for every edge (r, s) and every p adjacent to s: is p adjacent to r too? (edges in chunks
    # of about SHARED_EDGE_CHUNK probes, so that the probe arrays stay bounded)
    cs = np.cumsum(c[es])
    a = 0
    while a < er.shape[0]:
        base = int(cs[a - 1]) if a else 0
        b = max(a + 1, int(np.searchsorted(cs, base + SHARED_EDGE_CHUNK, side="right")))
        ppos = gather_rows(kptr, es[a:b])
        ps = key[ppos] % d
        probe = np.repeat(er[a:b], c[es[a:b]]) * np.int64(d) + ps
        j = np.searchsorted(key, probe)
        out += int(np.count_nonzero(key[np.minimum(j, key.shape[0] - 1)] == probe))
        a = b
    return out


def motif_roots(n: int, params: Mapping[str, Any]) -> np.ndarray:
    """The seeded sample of root vertices: ``sample_size`` distinct ids, sorted."""
    rng = np.random.default_rng(int(params["seed"]))
    return np.sort(rng.choice(n, size=sample_size(n, params), replace=False))


def motif_estimate(
    graph: Graph, params: Mapping[str, Any], upward_simple: bool | None = None
) -> float:
    """igraph's RAND-ESU total estimate of size-4 motifs from a seeded sample of root vertices.

    ``motif_method='count'`` (default) computes the very number igraph's
    ``motifs_randesu_estimate(size=4, sample=roots)`` returns -- sum over the roots of the
    connected 4-sets whose smallest vertex is the root, times N / |roots| -- with the vectorised
    count :func:`rooted_connected_4sets` (about 10x faster on a ResNet-20 MGE and no igraph
    graph to build). ``motif_method='igraph'`` runs igraph itself (the only option for
    ``motif_size`` other than 4); both give identical values, which the tests check.

    ``motif_method='paper_sample'`` lets igraph draw the roots itself (``sample`` = their number)
    from Python's ``random.Random(seed)``, which is the authors' call after their ``random.seed``:
    on a graph numbered as theirs (reference mode) it returns their very value (ResNet-20 ERK 0.98
    seed 0: 2,592,757,194.408 from their code and from this, on the same mask and weights).
    """
    n = graph.n_nodes
    method = str(params.get("motif_method", "count"))
    if method == "paper_sample":
        import igraph as ig

        g = graph.to_igraph()
        ig.set_random_number_generator(random.Random(int(params["seed"])))
        try:
            est = g.motifs_randesu_estimate(
                size=int(params["motif_size"]), sample=sample_size(n, params)
            )
        finally:
            ig.set_random_number_generator(random)
        return float(est)
    roots = motif_roots(n, params)
    k = roots.shape[0]
    size = int(params["motif_size"])
    if method == "count" and size == 4:
        if upward_simple is None:
            upward_simple = is_upward_dag(graph)
        threads = max(1, min(int(params.get("threads", 1)), k))
        if not upward_simple:
            rows = SplitRows.of_undirected(*simple_undirected_adjacency(graph, False))
            return float(_count_4sets(rows, roots, threads)) * (float(n) / k)
        # the lower rows of a batch of roots stay within the budget: the sorted roots are split
        # in halves (nearby ids share neighbourhoods) until each half's lists fit; the integer
        # counts of disjoint root sets add up to the same total
        budget = max(MOTIF_ROWS_MIN_ENTRIES, int(MOTIF_ROWS_ENTRIES_PER_EDGE * graph.n_edges))
        # every list together holds the graph's edges: within the budget, no batch can exceed
        # it, and the in-degrees that would tell (a pass over every target) are not counted
        bounded = budget < graph.n_edges
        in_degree = count_ids(graph.indices, n) if bounded else None
        total, todo = 0, [roots]
        while todo:
            batch = todo.pop()
            rows = SplitRows.of_upward_dag_for_roots(
                graph,
                batch,
                budget=budget if bounded else None,
                in_degree=in_degree,
            )
            if rows is None:
                half = batch.shape[0] // 2
                todo += [batch[half:], batch[:half]]
                continue
            total += _count_4sets(rows, batch, min(threads, batch.shape[0]))
            del rows
            release_pages(graph.indices)  # the rows the count read around this batch's roots
        return float(total) * (float(n) / k)
    if method not in ("count", "igraph"):
        raise ValueError(
            f"unknown motif_method {method!r} (use 'count', 'igraph' or 'paper_sample')"
        )
    import igraph as ig

    g = graph.to_igraph()
    ig.set_random_number_generator(random.Random(int(params["seed"])))
    try:
        est = g.motifs_randesu_estimate(size=size, sample=roots.tolist())
    finally:
        ig.set_random_number_generator(random)
    return float(est)


def _count_4sets(rows: SplitRows, roots: np.ndarray, threads: int) -> int:
    """Sum of :func:`rooted_connected_4sets` over ``roots``, on ``threads`` threads."""
    if threads <= 1:
        return int(rooted_connected_4sets(rows, roots).sum())
    # interleaved shares of the sorted roots (nearby ids cost alike); numpy's large passes
    # release the GIL, and the integer counts sum the same in any order
    shares = [roots[i::threads] for i in range(threads)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        counts = pool.map(lambda r: rooted_connected_4sets(rows, r), shares)
        return sum(int(c.sum()) for c in counts)


def connected_triples(graph: Graph) -> int:
    """Number of 3-vertex sets that induce a connected subgraph of the simple undirected graph
    (direction, multiplicity and self-loops ignored): the paths of length 2, sum_v C(deg v, 2),
    counted once per centre, less 2 per triangle (a triangle is 3 such paths but 1 set)."""
    n = graph.n_nodes
    if n == 0:
        return 0
    indptr, indices = simple_undirected_adjacency(graph)
    deg = np.diff(indptr).astype(np.int64)
    paths = int(_comb2(deg).sum())
    return paths - 2 * triangle_count(indptr, indices, n)


#: entries of one row block's 2-path product in :func:`triangle_count` (~0.2 GB of temporaries)
TRIANGLE_BLOCK_ENTRIES = 1 << 24


def triangle_count(indptr: np.ndarray, indices: np.ndarray, n: int) -> int:
    """Triangles of a simple undirected graph given as symmetric CSR. Each triangle i < j < k is
    counted once, at row i of U = the edges (i, j) with i < j: the 2-path i -> j -> k of U @ U
    closed by the edge (i, k) of U. Rows are taken in blocks whose 2-path count (row i's is
    sum of outdeg_U(j) over its j) stays near TRIANGLE_BLOCK_ENTRIES. Why: the whole A @ A of a
    wide BGE (vgg11_bn's rolled graph: 646M entries, 7 GB) does not fit where the graph does."""
    a = sp.csr_array((np.ones(indices.shape[0], dtype=np.int64), indices, indptr), shape=(n, n))
    u = sp.csr_array(sp.triu(a, k=1, format="csr"))
    del a
    u.sort_indices()
    work = np.cumsum(u @ np.diff(u.indptr).astype(np.int64))
    total = 0
    start = 0
    while start < n:
        base = int(work[start - 1]) if start else 0
        stop = int(np.searchsorted(work, base + TRIANGLE_BLOCK_ENTRIES, side="right"))
        stop = min(n, max(start + 1, stop))
        block = u[start:stop]
        total += int((block @ u).multiply(block).sum())
        start = stop
    return total


#: what ``motif`` means (parameter ``motif_definition``): the MGE's published column, or the
#: published BGE layers' ``motifs_count``
MOTIF_DEFINITIONS = ("rand_esu_per_edge", "connected_triples")


def neighbourhood_metrics(graph: Graph, params: Mapping[str, Any]) -> FamilyResult:
    n = graph.n_nodes
    res = FamilyResult({})
    if n == 0:
        for key in ("one_hop_nei", "two_hop_nei", "motif"):
            res.nan(key, "graph has no nodes")
        return res
    upward = is_upward_dag(graph)  # checked once for both structures
    # an MGE's I + A is read from the graph's own arrays (ClosedRows); anything else is built
    b = ClosedRows.of(graph) if upward else _closed_structure(graph, False)
    res.values["one_hop_nei"] = b.nnz / n
    classes, res.info = _two_hop_classes(b, graph, upward, int(params["seed"]))
    total = two_hop_total(b, int(params["two_hop_chunk_rows"]), int(params["threads"]), classes)
    del b
    # the 2-hop count faulted in A's rows wherever the counted rows reach; the motif reads them
    # again in released chunks, so a mapped graph's pages are dropped here, not kept resident
    # beside the motif's lists (issue 29)
    release_pages(graph.indices)
    res.values["two_hop_nei"] = total / n
    definition = str(params.get("motif_definition", MOTIF_DEFINITIONS[0]))
    if definition not in MOTIF_DEFINITIONS:
        raise ValueError(f"unknown motif_definition {definition!r} (use {MOTIF_DEFINITIONS})")
    if definition == "connected_triples":
        res.values["motif"] = float(connected_triples(graph))
    elif sample_size(n, params) == 0:
        res.nan("motif", "motif sample is empty")
    elif graph.n_edges == 0:
        res.nan("motif", "graph has no edges")
    else:  # the published scale: the estimate per edge (see the module docstring)
        res.values["motif"] = motif_estimate(graph, params, upward) / graph.n_edges
    return res
