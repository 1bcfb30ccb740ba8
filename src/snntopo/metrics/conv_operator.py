"""The MGE's symmetric adjacency as an operator that applies its convolutions densely.

An MGE block pair made by one conv holds, for every output position, the same ``|W|`` stencil:
the product ``A^T x`` over that pair is the conv itself applied to ``x``'s input block (after the
window sums of any pooling folded into it) and ``A x`` its transpose. The encoder stores those
kernels beside the edges (``conv_terms`` of :mod:`snntopo.encode.graph`, checked against the
edges when built); here each such pair is applied as an im2col matrix product, batched over
groups (:class:`snntopo.encode.stencil.StencilTerm`), and only the remaining edges (linear
layers, adaptive and broadcast windows, channel slices of concatenations, pairs written by two
layers) are read from the CSR.

Why: an ARPACK matvec over the CSR is memory-bound -- every product reads each edge's index and
weight twice (``A x`` and ``A^T x``), ~12 bytes per edge per pass -- while the dense products read
the input vector and a few KB of kernel and run at BLAS speed. On a ResNet-20 ERK 0.6 MGE (25M
edges) one symmetric product costs ~38 ms from the CSR and a few ms this way (see
``docs/benchmarks.md``). Layers sparser than :data:`MIN_DENSITY` stay in the CSR: there the dense
product multiplies mostly zeros and loses.

The operator is exact -- the same matrix, summed in another order (values move in the last digits
only) -- and checks that it is: before it is used, its product with a seeded random vector is
compared with the CSR's (:func:`conv_adjacency` falls back to the CSR operator and logs why if the
two differ beyond rounding, e.g. a hand-made graph file whose kernels do not match its edges).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from scipy.sparse.linalg import LinearOperator

from ..encode.graph import Graph
from ..encode.stencil import StencilTerm
from ..mapped import release_pages
from .algorithms import EDGE_CHUNK, row_chunks
from .implicit import SPECTRAL_MIN_COVERAGE, SPECTRAL_MIN_DENSITY

log = logging.getLogger("snntopo.metrics")

#: a conv whose edges are fewer than this fraction of (kernel entries x output positions) stays
#: in the CSR, and the operator is used only where such convs hold this share of the edges
#: (defined, with their measurements, beside the memory plan that reads them without scipy)
MIN_DENSITY = SPECTRAL_MIN_DENSITY
MIN_COVERAGE = SPECTRAL_MIN_COVERAGE

#: largest relative difference, entry by entry, tolerated between the dense and the CSR product
#: in the self-check (rounding of float64 sums is ~1e-15; one missing edge is orders above). With
#: pooled terms it is 2^-23 x the most windows holding one position (the CSR stores an edge
#: reached through m windows as a float32 sum of m |w|, the term sums in float64): ~5e-7 for
#: 3x3/s2 pooling, still far below one missing edge
CHECK_RTOL = 1e-9


#: one conv block pair as a dense operator (kept under its old name here)
_ConvTerm = StencilTerm


def residual_graph(graph: Graph, terms: list[_ConvTerm]) -> Graph:
    """The graph without the edges of the terms' (source block, target block) pairs.

    A source block whose rows hold exactly as many edges as its terms make (the usual case: a
    block read only by plain convs) is dropped whole, one whose rows feed no term is kept whole;
    only a block read by both a term and another layer is filtered entry by entry (rows are sorted
    by target and a block is a contiguous id range: two comparisons per entry, in chunks). If the
    counts agree but the edges do not, the product self-check of :func:`conv_adjacency` fails.
    """
    ptr, ind = graph.indptr, graph.indices
    by_src: dict[int, list[_ConvTerm]] = {}
    for t in terms:
        by_src.setdefault(t.src.start, []).append(t)
    pieces: list[tuple[int, np.ndarray | None]] = []  # (block start, keep mask or None = all)
    counts = np.zeros(graph.n_nodes, dtype=np.int64)  # kept entries per row
    for b in graph.blocks:
        lo, hi = b.start, b.stop
        a, z = int(ptr[lo]), int(ptr[hi])
        ts = by_src.get(lo, [])
        if not ts:
            counts[lo:hi] = np.diff(ptr[lo : hi + 1])
            pieces.append((lo, None))
        elif sum(t.n_edges for t in ts) == z - a:
            pieces.append((lo, np.zeros(0, dtype=bool)))
        else:
            keep = np.ones(z - a, dtype=bool)
            for c0 in range(0, z - a, EDGE_CHUNK):
                seg = ind[a + c0 : min(z, a + c0 + EDGE_CHUNK)]
                k = keep[c0 : c0 + EDGE_CHUNK]
                for t in ts:
                    k &= (seg < t.dst.start) | (seg >= t.dst.stop)
            pieces.append((lo, keep))
            cs = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
            counts[lo:hi] = np.diff(cs[ptr[lo : hi + 1] - a])
    indptr = np.zeros_like(ptr)
    np.cumsum(counts, out=indptr[1:])
    indices = np.empty(int(indptr[-1]), dtype=ind.dtype)
    weights = np.empty(int(indptr[-1]), dtype=graph.weights.dtype)
    for b, (lo, keep) in zip(graph.blocks, pieces, strict=True):
        a, z = int(ptr[lo]), int(ptr[b.stop])
        o, e = int(indptr[lo]), int(indptr[b.stop])
        if keep is None:
            indices[o:e], weights[o:e] = ind[a:z], graph.weights[a:z]
        elif keep.shape[0]:
            indices[o:e], weights[o:e] = ind[a:z][keep], graph.weights[a:z][keep]
    return Graph(indptr=indptr, indices=indices, weights=weights, blocks=graph.blocks, meta={})


class ConvAdjacency(LinearOperator):
    """x -> (A + A^T) x, or (D - A - A^T) x after :meth:`laplacian`: the conv block pairs as
    dense convolutions (:class:`_ConvTerm`), the rest through the CSR operator ``rest`` (any
    object with ``apply(x, side)``, e.g. ``expansion._SymmetricOperator`` over the residual
    edges). ``side`` (block parity of the nodes where x may be nonzero, or None) lets both halves
    skip the products that would read zeros, as the CSR operator does."""

    def __init__(self, terms: list[_ConvTerm], rest: Any, graph: Graph, threads: int = 1) -> None:
        n, blocks = graph.n_nodes, graph.blocks
        super().__init__(np.float64, (n, n))
        self.rest, self.graph = rest, graph
        self.deg: np.ndarray | None = None
        parity = {b.start: i % 2 == 1 for i, b in enumerate(blocks)}
        # terms dealt to threads by size (largest first onto the least loaded), each thread
        # summing into its own vector, added in thread order: the same bits on every run
        groups: list[list[tuple[_ConvTerm, bool, bool]]] = [[] for _ in range(max(1, threads))]
        load = [0] * len(groups)
        for t in sorted(terms, key=lambda t: -t.cost):
            g = load.index(min(load))
            groups[g].append((t, parity[t.src.start], parity[t.dst.start]))
            load[g] += t.cost
        self.groups = [g for g in groups if g]
        self.supports_side = getattr(rest, "part_side", None) is not None
        self._pool: Any = None

    @staticmethod
    def _run(group: list[tuple[_ConvTerm, bool, bool]], x: np.ndarray, y: np.ndarray, side: Any):
        for term, src_odd, dst_odd in group:
            if side is None or src_odd == side:
                term.forward(x, y)
            if side is None or dst_odd == side:
                term.backward(x, y)
        return y

    def apply(self, x: np.ndarray, side: bool | None = None) -> np.ndarray:
        y = self.rest.apply(x, side=side) if side is not None else self.rest.apply(x)
        if len(self.groups) == 1:
            return self._run(self.groups[0], x, y, side)
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=len(self.groups))
        n = self.shape[0]
        for z in self._pool.map(lambda g: self._run(g, x, np.zeros(n), side), self.groups):
            y += z
        return y

    @property
    def a(self) -> Any:
        """The directed adjacency as a float64 CSR (for the dense fallbacks of small problems)."""
        return self.graph.csr().astype(np.float64)

    def laplacian(self) -> ConvAdjacency:
        import copy

        lap = copy.copy(self)
        lap.deg = self.apply(np.ones(self.shape[0]))  # in- plus out-strength of every node
        return lap

    def _matvec(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float64).ravel()
        y = self.apply(x)
        return self.deg * x - y if self.deg is not None else y


def conv_terms(graph: Graph) -> list[_ConvTerm]:
    """The graph's stored conv terms that are dense enough to pay (:data:`MIN_DENSITY`)."""
    out = []
    for t in graph.meta.get("conv_terms", []):
        k = graph.kernels.get(t["kernel"])
        if k is None or k.size == 0:
            continue
        term = _ConvTerm(t, k, graph.blocks[t["in_block"]], graph.blocks[t["out_block"]])
        if term.n_edges >= MIN_DENSITY * term.cost:
            out.append(term)
    return out


def csr_symmetric_product(graph: Graph, x: np.ndarray) -> np.ndarray:
    """(A + A^T) x from the CSR in float64, in row chunks (bounded temporaries; a mapped
    graph's pages released after each chunk)."""
    from scipy.sparse._sparsetools import csc_matvec, csr_matvec

    n = graph.n_nodes
    y = np.zeros(n)
    ptr, ind = graph.indptr, graph.indices
    chunks = row_chunks(ptr, 1 << 20)
    buf = np.empty(max(int(ptr[hi] - ptr[lo]) for lo, hi in chunks))  # faulted in once, reused
    for lo, hi in chunks:
        a, b = int(ptr[lo]), int(ptr[hi])
        local = (ptr[lo : hi + 1] - a).astype(ind.dtype)
        data = buf[: b - a]
        data[...] = graph.weights[a:b]
        csr_matvec(hi - lo, n, local, ind[a:b], data, x, y[lo:hi])
        csc_matvec(n, hi - lo, local, ind[a:b], data, x[lo:hi], y)
        release_pages(ind, a, b)  # one pass over a mapped graph: its pages are not kept
        release_pages(graph.weights, a, b)
    return y


def conv_adjacency(
    graph: Graph, make_rest: Any, seed: int, threads: int = 1
) -> ConvAdjacency | None:
    """The operator for ``graph``, or None when its conv terms worth applying densely hold less
    than :data:`MIN_COVERAGE` of the edges or fail the self-check. ``make_rest(residual_graph)``
    builds the CSR operator of the other edges."""
    terms = conv_terms(graph)
    if sum(t.n_edges for t in terms) < max(1, MIN_COVERAGE * graph.n_edges):
        return None
    rest = make_rest(residual_graph(graph, terms))
    op = ConvAdjacency(terms, rest, graph, threads=threads)
    x = np.random.default_rng(seed).uniform(0.5, 1.5, size=graph.n_nodes)
    want = csr_symmetric_product(graph, x)
    got = op.apply(x)
    # an edge reached through m pooling windows is a float32 sum of m |w| in the CSR
    rtol = max([CHECK_RTOL] + [2.0**-23 * t.multiplicity for t in terms if t.pools])
    bad = np.abs(got - want) > rtol * np.abs(want) + 1e-300
    if bad.any():
        log.warning(
            "conv terms of this graph do not reproduce its edges at %d nodes; "
            "the spectral metrics read the CSR instead",
            int(bad.sum()),
        )
        return None
    return op
