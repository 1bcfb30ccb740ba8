"""Neighbourhood (spec D): mean 1-hop and 2-hop out-neighbourhood sizes (self included) and the
RAND-ESU estimate of the number of size-4 motifs.

Why the 2-hop sizes are counted with a symbolic sparse product: |N<=2(v)| is the number of nonzeros
in row v of the boolean (I + A)^2, and only the *total* is needed for the mean, so the product is
never stored: scipy's symbolic pass (a per-row column mask, O(flops) time, O(n) memory) counts the
nonzeros of row chunks, and chunks run on ``threads`` threads (the C routine releases the GIL).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..encode.graph import Graph
from . import FAMILIES
from .algorithms import to_igraph
from .base import ALL_ENCODINGS, FamilyResult, sample_size

try:  # symbolic product: exact nnz of A @ B without computing it
    from scipy.sparse._sparsetools import csr_matmat_maxnnz as _maxnnz
except ImportError:  # pragma: no cover - depends on the scipy build
    _maxnnz = None


def _closed_structure(graph: Graph) -> sp.csr_array:
    """Boolean I + A (duplicates merged, sorted rows)."""
    n = graph.n_nodes
    a = sp.csr_array(
        (np.ones(graph.n_edges, dtype=np.int8), graph.indices, graph.indptr), shape=(n, n)
    )
    b = (a + sp.eye_array(n, dtype=np.int8, format="csr")).tocsr()
    b.sum_duplicates()
    b.data[:] = 1
    return b


def two_hop_total(b: sp.csr_array, chunk_rows: int = 16384, threads: int = 1) -> int:
    """sum over rows v of nnz(row v of B @ B) for a square 0/1 CSR matrix ``B``."""
    n = b.shape[0]
    if n == 0:
        return 0
    idx = np.int64 if b.indptr.dtype == np.int64 or b.nnz >= 2**31 else np.int32
    bp = b.indptr.astype(idx, copy=False)
    bj = b.indices.astype(idx, copy=False)
    bounds = list(range(0, n, max(1, int(chunk_rows)))) + [n]

    def chunk(lo: int, hi: int) -> int:
        ap = bp[lo : hi + 1] - bp[lo]
        aj = bj[bp[lo] : bp[hi]]
        if _maxnnz is not None:
            return int(_maxnnz(idx(hi - lo), idx(n), ap, aj, bp, bj))
        sub = sp.csr_array((np.ones(aj.shape[0], dtype=bool), aj, ap), shape=(hi - lo, n))
        return int((sub @ b).nnz)

    pairs = list(zip(bounds[:-1], bounds[1:], strict=True))
    if threads > 1 and len(pairs) > 1:
        with ThreadPoolExecutor(max_workers=int(threads)) as pool:
            return sum(pool.map(lambda p: chunk(*p), pairs))
    return sum(chunk(lo, hi) for lo, hi in pairs)


def motif_estimate(graph: Graph, params: Mapping[str, Any]) -> float:
    """igraph's RAND-ESU total estimate of size-k motifs from a seeded sample of root vertices.

    The sample is drawn with numpy from ``params['seed']``; igraph's own RNG is also seeded (and
    restored afterwards) so the estimate is reproducible whatever igraph does internally.
    """
    import igraph as ig

    n = graph.n_nodes
    k = sample_size(n, params)
    rng = np.random.default_rng(int(params["seed"]))
    roots = np.sort(rng.choice(n, size=k, replace=False)).tolist()
    g = to_igraph(graph)
    ig.set_random_number_generator(random.Random(int(params["seed"])))
    try:
        est = g.motifs_randesu_estimate(size=int(params["motif_size"]), sample=roots)
    finally:
        ig.set_random_number_generator(random)
    return float(est)


def neighbourhood_metrics(graph: Graph, params: Mapping[str, Any]) -> FamilyResult:
    n = graph.n_nodes
    res = FamilyResult({})
    if n == 0:
        for key in ("one_hop_nei", "two_hop_nei", "motif"):
            res.nan(key, "graph has no nodes")
        return res
    b = _closed_structure(graph)
    res.values["one_hop_nei"] = b.nnz / n
    total = two_hop_total(b, int(params["two_hop_chunk_rows"]), int(params["threads"]))
    del b
    res.values["two_hop_nei"] = total / n
    if sample_size(n, params) == 0:
        res.nan("motif", "motif sample is empty")
    else:
        res.values["motif"] = motif_estimate(graph, params)
    return res


FAMILIES.register("neighbourhood", neighbourhood_metrics, encodings=ALL_ENCODINGS)
