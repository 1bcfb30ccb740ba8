"""Expansion: spectral gap of the weighted symmetric adjacency (|l1| - |l3|, eigenvalues
ordered by magnitude) and spectral radius (largest eigenvalue) of the weighted Laplacian D - A.

Large MGEs apply the symmetric adjacency with their plain convolutions as dense convolutions
and only the other edges from the CSR (:mod:`snntopo.metrics.conv_operator`, self-checked against
the CSR): the same matrix, several times faster per product than reading every edge.

Why a fixed start vector: ARPACK starts from a random vector by default, which makes the last digits
(and, near a tie, the convergence) vary between runs; ``v0`` drawn from the seed makes the result a
function of the graph and the parameters. Small graphs get exact dense eigenvalues instead.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, LinearOperator, eigsh

from ..encode.graph import Graph
from .algorithms import EDGE_CHUNK, index_dtype, is_simple_dag, row_chunks, symmetric_adjacency
from .base import FamilyResult, Undefined, record
from .conv_operator import conv_adjacency

try:  # accumulating kernels (y += A x): no output allocation per part
    from scipy.sparse._sparsetools import csc_matvec as _csc_matvec
    from scipy.sparse._sparsetools import csr_matvec as _csr_matvec
except ImportError:  # pragma: no cover - depends on the scipy build
    _csr_matvec = _csc_matvec = None


#: entries per chunk of a :class:`_SymmetricOperator` product: the float32 weights of a chunk are
#: converted into one float64 buffer per thread (8 MB), read by both directions' products
PRODUCT_CHUNK = 1 << 20


class _SymmetricOperator(LinearOperator):
    """x -> (A + A^T) x, or (D - A - A^T) x, straight from the directed CSR (no symmetric copy).

    Why: building A + A^T for 1e8 edges costs more CPU and memory than the whole eigensolve; CSR
    matvecs (A x) plus transposed ones (A^T x) over the same arrays touch the same 2E entries as the
    symmetric matrix would. The graph's own arrays serve the adjacency and the Laplacian operator
    alike (:meth:`laplacian`): the float32 weights are converted to float64 chunk by chunk
    (:data:`PRODUCT_CHUNK` entries into one buffer per thread) as each product reads them, so the
    sums are the float64 ones of a converted copy, bit for bit, without the copy's 8 bytes per
    edge (issue 29: 3.6 GB of resnet50 224x224 uniform 0.9's 9.8 GB expansion peak).

    The rows are cut into *parts*: one per thread (balanced by entries), further cut at node-block
    starts when ``block_parts`` (the bipartite half products of :meth:`apply` need parts inside one
    block). Thread t owns a fixed set of parts and computes ``y[rows] = A_k x`` for them plus its
    own ``z_t = sum_k A_k^T x[rows_k]``; y is then summed in thread order, so a given number of
    threads always gives the same bits (scipy's sparse kernels release the GIL).
    """

    def __init__(self, graph: Graph, threads: int = 1, block_parts: bool = False) -> None:
        n = graph.n_nodes
        super().__init__(np.float64, (n, n))
        self.deg: np.ndarray | None = None
        idx = index_dtype(max(n, graph.n_edges))
        self.a = sp.csr_array(
            (
                graph.weights,
                graph.indices.astype(idx, copy=False),
                graph.indptr.astype(idx, copy=False),
            ),
            shape=(n, n),
            copy=False,
        )
        self.threads = max(1, int(threads))
        ptr = self.a.indptr
        tiles = sum(b.size for b in graph.blocks) == n and bool(graph.blocks)
        per_thread = -(-max(graph.n_edges, 1) // self.threads)
        groups = row_chunks(graph.indptr, per_thread)[: self.threads]
        if groups:
            groups[-1] = (groups[-1][0], n)
        block_starts = sorted({b.start for b in graph.blocks}) if (block_parts and tiles) else []
        #: per thread, its parts: (first row, row stop, [(row lo, row hi, local ptr, p0, p1)])
        self.groups: list[list[tuple[int, int, list[tuple[int, int, np.ndarray, int, int]]]]] = []
        longest = 1
        for glo, ghi in groups:
            cuts = sorted({glo, ghi, *(c for c in block_starts if glo < c < ghi)})
            parts = []
            for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
                chunks = []
                for clo, chi in _row_ranges(ptr, lo, hi, PRODUCT_CHUNK):
                    p0, p1 = int(ptr[clo]), int(ptr[chi])
                    chunks.append((clo, chi, (ptr[clo : chi + 1] - p0).astype(ptr.dtype), p0, p1))
                    longest = max(longest, p1 - p0)
                parts.append((lo, hi, chunks))
            self.groups.append(parts)
        self._longest = longest
        self.parts = [p for g in self.groups for p in g]
        #: block parity (odd = True) of every part, for the bipartite half products
        self.part_side: dict[int, bool] | None = None
        if block_starts:
            starts = np.array([b.start for b in graph.blocks])
            self.part_side = {
                lo: bool((np.searchsorted(starts, lo, side="right") - 1) % 2 == 1)
                for lo, _, _ in self.parts
            }
        self._pool: Any = None

    @property
    def supports_side(self) -> bool:
        """Whether :meth:`apply` takes ``side`` (its parts lie inside blocks)."""
        return self.part_side is not None

    def laplacian(self) -> _SymmetricOperator:
        """The Laplacian D - A - A^T on the same arrays (D = in- plus out-strength, float64)."""
        lap = copy.copy(self)  # shares the arrays, the parts and the thread pool
        n = self.shape[0]
        ones, out_s, in_s = np.ones(n), np.zeros(n), np.zeros(n)
        buf = np.empty(self._longest)
        for parts in self.groups:  # row order: the sums of A @ 1 and A^T @ 1, bit for bit
            for _, _, chunks in parts:
                for clo, chi, local, p0, p1 in chunks:
                    data = buf[: p1 - p0]
                    data[...] = self.a.data[p0:p1]
                    ind = self.a.indices[p0:p1]
                    _product(chi - clo, n, local, ind, data, ones, out_s[clo:chi], "csr")
                    _product(chi - clo, n, local, ind, data, ones[clo:chi], in_s, "csc")
        lap.deg = out_s + in_s
        return lap

    def apply(self, x: np.ndarray, side: bool | None = None) -> np.ndarray:
        """(A + A^T) x; with ``side``, x must vanish off the parts of that block parity (the result
        then vanishes on them), which skips the half of each product that would read zeros."""
        n = self.shape[0]
        y = np.zeros(n)
        weights, indices = self.a.data, self.a.indices

        def run(parts: list[tuple[int, int, list[tuple[int, int, np.ndarray, int, int]]]]):
            z = np.zeros(n)
            buf = np.empty(self._longest)
            for lo, _, chunks in parts:
                on = None if side is None else self.part_side[lo] == side
                for clo, chi, local, p0, p1 in chunks:
                    data = buf[: p1 - p0]
                    data[...] = weights[p0:p1]
                    ind = indices[p0:p1]
                    if on is not True:  # forward: y[rows] = A_k x (disjoint rows per thread)
                        _product(chi - clo, n, local, ind, data, x, y[clo:chi], "csr")
                    if on is not False:  # transposed: z += A_k^T x[rows]
                        _product(chi - clo, n, local, ind, data, x[clo:chi], z, "csc")
            return z

        if self.threads > 1 and len(self.groups) > 1:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(max_workers=self.threads)
            zs = list(self._pool.map(run, self.groups))
        else:
            zs = [run(g) for g in self.groups]
        for z in zs:  # thread order: the same bits on every run with this many threads
            y += z
        return y

    def _matvec(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float64).ravel()
        y = self.apply(x)
        return self.deg * x - y if self.deg is not None else y

    def toarray(self) -> np.ndarray:
        a = self.a.astype(np.float64).toarray()
        a = a + a.T
        return np.diag(self.deg) - a if self.deg is not None else a


def _row_ranges(ptr: np.ndarray, lo: int, hi: int, entries: int) -> list[tuple[int, int]]:
    """Rows ``[lo, hi)`` cut into ranges of at most ``entries`` entries (a longer row alone)."""
    if hi <= lo:
        return []
    targets = np.arange(int(ptr[lo]) + entries, int(ptr[hi]), entries)
    cuts = np.unique(np.searchsorted(ptr[lo : hi + 1], targets, side="right") - 1 + lo)
    bounds = [lo, *(int(c) for c in cuts if lo < c < hi), hi]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def _product(rows, n, local, ind, data, x, y, kind: str) -> None:
    """``y += A x`` (``csr``) or ``y += A^T x`` (``csc``) of one chunk in float64."""
    if _csr_matvec is not None:
        if kind == "csr":
            _csr_matvec(rows, n, local, ind, data, x, y)
        else:
            _csc_matvec(n, rows, local, ind, data, x, y)
        return
    sub = _csr_view(data, ind, local, (rows, n))  # pragma: no cover - scipy without _sparsetools
    if kind == "csr":
        y += sub @ x
    else:
        z = sub.T @ x
        y += z


def _csr_view(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, shape) -> sp.csr_array:
    """A CSR matrix over *views* of bigger arrays. scipy's constructor copies a slice that is
    much smaller than its base (``_prune_array``), which for row parts would duplicate the whole
    matrix; the arrays are therefore set after constructing an empty matrix of the right shape."""
    m = sp.csr_array(shape, dtype=data.dtype)
    m.indptr, m.indices, m.data = indptr, indices, data
    return m


def extreme_eigenvalues(
    mat: sp.csr_array | _SymmetricOperator, k: int, which: str, params: Mapping[str, Any]
) -> np.ndarray:
    """``k`` eigenvalues of a symmetric matrix ('LM' by magnitude, 'LA' largest); raises
    :class:`Undefined` with the reason when the solver fails.

    Dense ``eigvalsh`` below ``dense_eig_max_nodes`` nodes; ARPACK with a seeded ``v0`` above.
    """
    from threadpoolctl import threadpool_limits

    n = mat.shape[0]
    if n <= int(params["dense_eig_max_nodes"]) or k >= n - 1:
        # one BLAS thread: these matrices are small (at most dense_eig_max_nodes square) and a
        # BGE has one or two per layer; a pool of spinning OpenBLAS threads made the expansion of
        # efficientnet_v2_s's rolled BGE (171 layers) take 16 minutes on the shared 2-core box
        with threadpool_limits(limits=1, user_api="blas"):
            vals = np.linalg.eigvalsh(mat.toarray())
        order = np.argsort(-np.abs(vals)) if which == "LM" else np.argsort(-vals)
        return vals[order[:k]]

    v0 = np.random.default_rng(int(params["seed"])).uniform(0.5, 1.5, size=n)
    ncv = min(n - 1, max(int(params["eigsh_ncv"]), 2 * k + 1))
    try:
        # ARPACK's own BLAS work (on n x ncv vectors) runs on one thread: OpenBLAS threads
        # spin-wait between calls and took the second core from the operator's matvec threads
        # (ResNet-20 ERK 0.6 MGE, 2 threads: spectral gap 3.7 -> 2.3 s, Laplacian radius 1.4 ->
        # 0.9 s; the values move in the 15th digit, BLAS summing in another order)
        with threadpool_limits(limits=1, user_api="blas"):
            vals = eigsh(
                mat,
                k=k,
                which=which,
                v0=v0,
                ncv=ncv,
                tol=float(params["eigsh_tol"]),
                maxiter=int(params["eigsh_maxiter"]),
                return_eigenvectors=False,
            )
    except ArpackNoConvergence as exc:
        raise Undefined(f"eigsh did not converge ({exc})") from None
    except ArpackError as exc:  # pragma: no cover - ARPACK internal failure
        raise Undefined(f"eigsh failed ({exc})") from None
    order = np.argsort(-np.abs(vals)) if which == "LM" else np.argsort(-vals)
    return vals[order]


def spectral_gap(a: sp.csr_array | _SymmetricOperator, params: Mapping[str, Any]) -> float:
    """|l1| - |l3| of a symmetric matrix (for a bipartite graph: l1 minus the second distinct)."""
    if a.shape[0] < 3:
        raise Undefined("fewer than 3 nodes")
    vals = extreme_eigenvalues(a, 3, "LM", params)
    mags = np.sort(np.abs(vals))[::-1]
    return float(mags[0] - mags[2])


def block_bipartition(graph: Graph) -> np.ndarray | None:
    """Boolean side of every node if every edge joins an even and an odd block, else None.

    Layered encodings without skip connections (Conv-6's MGE, every BGE) are bipartite this way;
    a ResNet MGE is not (a 1x1 shortcut joins blocks two apart, closing odd cycles).
    """
    if graph.n_edges == 0 or len(graph.blocks) < 2:
        return None
    sizes = np.array([b.size for b in graph.blocks], dtype=np.int64)
    if int(sizes.sum()) != graph.n_nodes:
        return None
    side = np.repeat(np.arange(sizes.shape[0]) % 2 == 1, sizes)
    ptr, ind = graph.indptr, graph.indices
    start = 0
    for k, size in enumerate(sizes.tolist()):  # a block's sources all lie on one side
        a, b = int(ptr[start]), int(ptr[start + size])
        for c in range(a, b, EDGE_CHUNK):
            if bool(np.any(side[ind[c : min(b, c + EDGE_CHUNK)]] == (k % 2 == 1))):
                return None
        start += size
    return side


class _SquaredOnSide(LinearOperator):
    """x -> (S^2 x) restricted to one side of a bipartite graph, S its symmetric adjacency.

    With S = [[0, M], [M^T, 0]] this is M^T M (or M M^T): its eigenvalues are the squared singular
    values sigma_i^2 of M, while S's are +-sigma_i (and zeros). So the top-3 magnitudes of S are
    sigma_1, sigma_1, sigma_2 -- exactly -- and ARPACK no longer has to resolve the exactly
    degenerate pair +-sigma_1, which is what makes 'LM' on S slow on bipartite graphs.
    """

    def __init__(self, op: Any, side: np.ndarray, parity: bool | None = None) -> None:
        self.op = op
        self.idx = np.flatnonzero(side)
        self.side_parity = parity  # block parity (odd = True) of the nodes in ``side``
        self.n = op.shape[0]
        super().__init__(np.float64, (self.idx.shape[0],) * 2)

    def _matvec(self, x: np.ndarray) -> np.ndarray:
        full = np.zeros(self.n)
        full[self.idx] = np.asarray(x, dtype=np.float64).ravel()
        op = self.op
        if getattr(op, "supports_side", False) and self.side_parity is not None:
            # x lives on one parity: each product reads every entry once, not twice
            half = op.apply(full, side=self.side_parity)
            return op.apply(half, side=not self.side_parity)[self.idx]
        return (op @ (op @ full))[self.idx]

    def toarray(self) -> np.ndarray:
        """Dense M^T M from the sparse columns of S (never the dense n x n S)."""
        op = self.op
        a64 = op.a.astype(np.float64) if hasattr(op, "a") else None
        s = (a64 + a64.T).tocsc() if a64 is not None else sp.csc_array(op)
        cols = s[:, self.idx]
        return np.asarray((cols.T @ cols).toarray(), dtype=np.float64)


def bipartite_spectral_gap(op: Any, side: np.ndarray, params: Mapping[str, Any]) -> float:
    """|l1| - |l3| of a bipartite symmetric adjacency as sigma_1 - sigma_2 (see _SquaredOnSide)."""
    parity = bool(side.sum() <= (~side).sum())  # side marks the odd blocks
    small = side if parity else ~side
    m = int(small.sum())
    if m == 0:
        raise Undefined("graph has no edges")
    if m == 1:  # rank 1: eigenvalues +-sigma_1 and zeros, so |l3| = 0
        vals = extreme_eigenvalues(_SquaredOnSide(op, small, parity), 1, "LA", params)
        return float(np.sqrt(max(float(vals[0]), 0.0)))
    vals = extreme_eigenvalues(_SquaredOnSide(op, small, parity), 2, "LA", params)
    sig = np.sqrt(np.clip(np.sort(vals)[::-1], 0.0, None))
    return float(sig[0] - sig[1])


def _laplacian(a: sp.csr_array) -> sp.csr_array:
    """D - A with D the column sums of the symmetric A."""
    deg = np.asarray(a.sum(axis=0)).ravel()
    return (sp.diags_array(deg, format="csr") - a).tocsr()


def laplacian_radius(lap: sp.csr_array | _SymmetricOperator, params: Mapping[str, Any]) -> float:
    """Largest eigenvalue of the Laplacian D - A (positive semi-definite)."""
    if lap.shape[0] < 2:
        raise Undefined("fewer than 2 nodes")
    vals = extreme_eigenvalues(lap, 1, "LA", params)
    return float(np.max(vals))


def expansion_metrics(graph: Graph, params: Mapping[str, Any]) -> FamilyResult:
    res = FamilyResult({})
    if graph.n_edges == 0:
        res.nan("spectral_gap", "graph has no edges")
        res.nan("spectral_radius", "graph has no edges")
        return res
    threads = int(params.get("threads", 1))
    side = None
    if graph.n_nodes > int(params["dense_eig_max_nodes"]) and params.get("bipartite_svd", True):
        side = block_bipartition(graph)
    if is_simple_dag(graph):

        def csr_operator(g: Graph) -> _SymmetricOperator:
            return _SymmetricOperator(g, threads=threads, block_parts=side is not None)

        adj: Any = None
        if graph.n_nodes > int(params["dense_eig_max_nodes"]):  # MGE convs as dense products
            adj = conv_adjacency(graph, csr_operator, int(params["seed"]), threads=threads)
        if adj is None:
            adj = csr_operator(graph)
        ops = (adj, adj.laplacian())
    else:  # parallel or reciprocal edges: collapse them first, as the paper does
        a = symmetric_adjacency(graph, weighted=True)
        ops = (a, _laplacian(a))

    def gap() -> float:
        if side is not None:
            return bipartite_spectral_gap(ops[0], side, params)
        return spectral_gap(ops[0], params)

    # sequential: with threads > 1 each matvec runs its row parts on that many threads instead
    record(res, "spectral_gap", gap)
    record(res, "spectral_radius", lambda: laplacian_radius(ops[1], params))
    return res
