"""Ramanujan-graph metrics of Hoang et al. (ICLR 2023) on each bipartite layer of a BGE (spec E).

- ``degree_bound`` (delta_r): after dropping zero-degree nodes, with mean left/right degrees d_l, d_r
  and ub = sqrt(d_l - 1) + sqrt(d_r - 1): (ub - l3) / ub, l3 the third-largest |eigenvalue| of the
  unweighted symmetric adjacency.
- ``iterative_spectral_gap`` / ``iterative_degree_bound``: for every distinct left degree k >= 3,
  the d-left-regular subgraph {left nodes of degree k} + right nodes (zero-degree right nodes
  dropped), kept if its mean left and right degrees are >= 3; the means over those subgraphs of the
  weighted gap |l1| - |l3| and of the normalised delta_r.
- ``weighted_spectral_gap``: |l1| - |l3| of the |w|-weighted symmetric adjacency of the layer.

Why singular values: the symmetric adjacency of a bipartite graph with biadjacency B has eigenvalues
+-s_i (the singular values of B) plus zeros, so |l1| = s1 and the third-largest |eigenvalue| is s2
(0 if B has a single row or column). They are the square roots of the top two eigenvalues of the
Gram matrix of B's smaller side (B^T B or B B^T, at most ``GRAM_MAX_DIM`` square): a sparse product
plus a partial symmetric eigensolve (LAPACK, two eigenvalues only), deterministic and ~20x faster
than a dense SVD of B on the rolled layers of torchvision models (a 4608 x 512 layer: 0.03 s against
0.7 s, and the family makes two such calls per distinct left degree). Squaring costs digits only in
s2 when s2 << s1 (absolute error ~ eps * s1^2 / s2); below ``GRAM_MIN_RATIO`` (lambda2 / lambda1) the
family falls back to the exact path: a dense SVD of B when it is small, else ARPACK ``svds`` (which
avoids the +-s pairs that trouble ARPACK on the 2x larger adjacency).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.sparse.linalg import ArpackNoConvergence, svds

from ..encode.graph import Graph
from .base import FamilyResult, Undefined, record

DENSE_SVD_MAX_CELLS = 4_000_000
# Gram path: smaller side up to this many nodes (a dense GRAM_MAX_DIM^2 float64 matrix, 32 MB)
GRAM_MAX_DIM = 2048
# lambda2 / lambda1 of the Gram below this: s2 would lose more than ~1e-12 of its relative accuracy
GRAM_MIN_RATIO = 1e-4
#: BLAS threads of the family's Gram products and eigensolves. Why one: the matrices are small
#: (at most GRAM_MAX_DIM square, most far smaller) and many (two per distinct left degree per
#: layer), and a pool of OpenBLAS threads spin-waits between such calls: on the shared 2-core
#: machine efficientnet_v2_s's rolled BGE (171 layers) took 118 s with --threads 2 and 18 s with 1.
BLAS_THREADS = 1


def biadjacency(graph: Graph) -> tuple[sp.csr_array, sp.csr_array]:
    """Weighted biadjacency (left x right) of a bipartite layer graph and the edge-multiplicity
    matrix (its row/column sums are the degrees as igraph counts them).

    Parallel edges are merged keeping the first weight (the paper's ``combine_edges='first'``).
    """
    left, right = graph.blocks[0], graph.blocks[-1]
    src, dst = graph.sources().astype(np.int64), graph.indices.astype(np.int64)
    in_left = (src >= left.start) & (src < left.stop)
    u = np.where(in_left, src, dst) - left.start
    v = np.where(in_left, dst, src) - right.start
    nl, nr = left.size, right.size
    _, first = np.unique(u * nr + v, return_index=True)
    w = graph.weights.astype(np.float64)[first]
    bw = sp.csr_array((w, (u[first], v[first])), shape=(nl, nr))
    bm = sp.csr_array((np.ones(u.shape[0]), (u, v)), shape=(nl, nr))  # duplicates summed
    bm.sum_duplicates()
    return bw, bm


def top2_gram(b: sp.csr_array) -> tuple[float, float] | None:
    """(s1, s2) of ``b`` from the top two eigenvalues of its smaller-side Gram matrix, or None if
    ``b`` is too ill-conditioned there (lambda2 < GRAM_MIN_RATIO * lambda1) for s2 to be accurate."""
    rows, cols = b.shape
    gram = (b.T @ b) if cols <= rows else (b @ b.T)
    g = gram.toarray() if sp.issparse(gram) else np.asarray(gram)
    n = g.shape[0]
    if n == 1:
        return math.sqrt(max(float(g[0, 0]), 0.0)), 0.0
    lam = scipy.linalg.eigh(
        g, eigvals_only=True, subset_by_index=[n - 2, n - 1], check_finite=False
    )
    l2, l1 = float(lam[0]), float(lam[1])
    if l1 <= 0.0:
        return 0.0, 0.0  # b == 0
    if l2 < GRAM_MIN_RATIO * l1:
        return None
    return math.sqrt(l1), math.sqrt(l2)


def top2_singular(b: sp.csr_array, seed: int = 0, gram: bool = True) -> tuple[float, float]:
    """(s1, s2) of ``b`` (s2 = 0 if it has one row or column); raises :class:`Undefined` with the
    reason when they cannot be computed.

    ``gram=False`` skips the Gram path (the exact dense SVD / svds; tests compare the two)."""
    rows, cols = b.shape
    if min(rows, cols) == 0:
        return 0.0, 0.0
    if gram and min(rows, cols) <= GRAM_MAX_DIM:
        s_gram = top2_gram(b)
        if s_gram is not None:
            return s_gram
    if rows * cols <= DENSE_SVD_MAX_CELLS or min(rows, cols) <= 3:
        s = np.linalg.svd(b.toarray(), compute_uv=False)
    else:
        v0 = np.random.default_rng(seed).uniform(0.5, 1.5, size=min(rows, cols))
        try:
            s = svds(b, k=2, v0=v0, return_singular_vectors=False)
        except ArpackNoConvergence as exc:
            raise Undefined(f"svds did not converge ({exc})") from None
    s = np.sort(np.asarray(s, dtype=np.float64))[::-1]
    return float(s[0]), float(s[1]) if s.shape[0] > 1 else 0.0


def _delta_r(d_l: float, d_r: float, l3: float) -> float:
    ub = math.sqrt(d_l - 1.0) + math.sqrt(d_r - 1.0)
    if ub == 0.0:
        raise Undefined("degree bound is 0 (every node has degree 1)")
    return (ub - l3) / ub


def ramanujan_metrics(graph: Graph, params: Mapping[str, Any]) -> FamilyResult:
    """The family on one bipartite layer; its BLAS/LAPACK work runs on one thread (see
    :data:`BLAS_THREADS`)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
        return _ramanujan_metrics(graph, params)


def _ramanujan_metrics(graph: Graph, params: Mapping[str, Any]) -> FamilyResult:
    res = FamilyResult({})
    seed = int(params["seed"])
    bw, bm = biadjacency(graph)
    bu = bm.copy()
    bu.data[:] = 1.0
    deg_l = np.asarray(bm.sum(axis=1)).ravel()
    deg_r = np.asarray(bm.sum(axis=0)).ravel()
    keep_l, keep_r = deg_l > 0, deg_r > 0
    nl, nr = int(keep_l.sum()), int(keep_r.sum())

    # degree bound of the whole layer (zero-degree nodes dropped)
    if nl == 0 or nr == 0 or nl + nr <= 3:
        res.nan("degree_bound", "fewer than 4 non-isolated nodes or an empty side")
    else:
        sub = bu[keep_l][:, keep_r]
        record(
            res,
            "degree_bound",
            lambda: _delta_r(
                deg_l[keep_l].mean(), deg_r[keep_r].mean(), top2_singular(sub, seed)[1]
            ),
        )

    # iterative means over d-left-regular subgraphs (loop over distinct left degrees). The left
    # rows are put in degree order once (stable: ascending ids within a degree), so that every
    # class is a contiguous row slice -- the same rows in the same order as indexing by the class'
    # ids, without one fancy row index and one column sum per matrix and class
    order = np.argsort(deg_l, kind="stable")
    deg_s = deg_l[order]
    bw_s, bu_s, bm_s = bw[order], bu[order], bm[order]
    gaps, bounds = [], []
    for k in np.unique(deg_l[deg_l >= 3]):
        lo, hi = np.searchsorted(deg_s, k, "left"), np.searchsorted(deg_s, k, "right")
        p0, p1 = bm_s.indptr[lo], bm_s.indptr[hi]
        dr = np.bincount(bm_s.indices[p0:p1], weights=bm_s.data[p0:p1], minlength=bm.shape[1])
        cols = np.flatnonzero(dr > 0)
        if cols.size == 0 or dr[cols].mean() < 3:
            continue
        try:
            sw = top2_singular(bw_s[lo:hi][:, cols], seed)
            su = top2_singular(bu_s[lo:hi][:, cols], seed)
            d = _delta_r(float(k), float(dr[cols].mean()), su[1])
        except Undefined:  # this degree class has no value: the means skip it
            continue
        gaps.append(sw[0] - sw[1])
        bounds.append(d)
    if gaps:
        res.values["iterative_spectral_gap"] = float(np.mean(gaps))
        res.values["iterative_degree_bound"] = float(np.mean(bounds))
    else:
        reason = "no valid d-left-regular subgraph (left degree >= 3 and mean right degree >= 3)"
        res.nan("iterative_spectral_gap", reason)
        res.nan("iterative_degree_bound", reason)

    if graph.n_edges == 0:
        res.nan("weighted_spectral_gap", "layer has no edges")
    else:
        record(res, "weighted_spectral_gap", lambda: float(np.subtract(*top2_singular(bw, seed))))
    return res
