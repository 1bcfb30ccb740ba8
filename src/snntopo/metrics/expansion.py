"""Expansion (spec D): spectral gap of the weighted symmetric adjacency (|l1| - |l3|, eigenvalues
ordered by magnitude) and spectral radius (largest eigenvalue) of the weighted Laplacian D - A.

Why a fixed start vector: ARPACK starts from a random vector by default, which makes the last digits
(and, near a tie, the convergence) vary between runs; ``v0`` drawn from the seed makes the result a
function of the graph and the parameters. Small graphs get exact dense eigenvalues instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, LinearOperator, eigsh

from ..encode.graph import Graph
from .algorithms import is_simple_dag, symmetric_adjacency
from .base import FamilyResult


class _SymmetricOperator(LinearOperator):
    """x -> (A + A^T) x, or (D - A - A^T) x, straight from the directed CSR (no symmetric copy).

    Why: building A + A^T for 25M edges costs more CPU than the whole eigensolve; a CSR matvec plus a
    CSC (transposed) matvec touch the same 2E entries as the symmetric matrix would.
    """

    def __init__(self, graph: Graph, laplacian: bool = False) -> None:
        n = graph.n_nodes
        super().__init__(np.float64, (n, n))
        w = graph.weights.astype(np.float64)
        self.a = sp.csr_array((w, graph.indices, graph.indptr), shape=(n, n))
        self.at = self.a.T  # CSC view, no copy
        self.deg = (
            np.bincount(graph.sources(), weights=w, minlength=n)
            + np.bincount(graph.indices, weights=w, minlength=n)
            if laplacian
            else None
        )

    def _matvec(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).ravel()
        y = self.a @ x + self.at @ x
        return self.deg * x - y if self.deg is not None else y

    def toarray(self) -> np.ndarray:
        a = self.a.toarray()
        a = a + a.T
        return np.diag(self.deg) - a if self.deg is not None else a


def extreme_eigenvalues(
    mat: sp.csr_array | _SymmetricOperator, k: int, which: str, params: Mapping[str, Any]
) -> np.ndarray | str:
    """``k`` eigenvalues of a symmetric matrix ('LM' by magnitude, 'LA' largest), or why not.

    Dense ``eigvalsh`` below ``dense_eig_max_nodes`` nodes; ARPACK with a seeded ``v0`` above.
    """
    n = mat.shape[0]
    if n <= int(params["dense_eig_max_nodes"]) or k >= n - 1:
        vals = np.linalg.eigvalsh(mat.toarray())
        order = np.argsort(-np.abs(vals)) if which == "LM" else np.argsort(-vals)
        return vals[order[:k]]
    v0 = np.random.default_rng(int(params["seed"])).uniform(0.5, 1.5, size=n)
    ncv = min(n - 1, max(int(params["eigsh_ncv"]), 2 * k + 1))
    try:
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
        return f"eigsh did not converge ({exc})"
    except ArpackError as exc:  # pragma: no cover - ARPACK internal failure
        return f"eigsh failed ({exc})"
    order = np.argsort(-np.abs(vals)) if which == "LM" else np.argsort(-vals)
    return vals[order]


def spectral_gap(a: sp.csr_array | _SymmetricOperator, params: Mapping[str, Any]) -> float | str:
    """|l1| - |l3| of a symmetric matrix (for a bipartite graph: l1 minus the second distinct)."""
    if a.shape[0] < 3:
        return "fewer than 3 nodes"
    vals = extreme_eigenvalues(a, 3, "LM", params)
    if isinstance(vals, str):
        return vals
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
    if bool(np.any(side[graph.sources()] == side[graph.indices])):
        return None
    return side


class _SquaredOnSide(LinearOperator):
    """x -> (S^2 x) restricted to one side of a bipartite graph, S its symmetric adjacency.

    With S = [[0, M], [M^T, 0]] this is M^T M (or M M^T): its eigenvalues are the squared singular
    values sigma_i^2 of M, while S's are +-sigma_i (and zeros). So the top-3 magnitudes of S are
    sigma_1, sigma_1, sigma_2 -- exactly -- and ARPACK no longer has to resolve the exactly
    degenerate pair +-sigma_1, which is what makes 'LM' on S slow on bipartite graphs.
    """

    def __init__(self, op: Any, side: np.ndarray) -> None:
        self.op = op
        self.idx = np.flatnonzero(side)
        self.n = op.shape[0]
        super().__init__(np.float64, (self.idx.shape[0],) * 2)

    def _matvec(self, x: np.ndarray) -> np.ndarray:
        full = np.zeros(self.n)
        full[self.idx] = np.asarray(x, dtype=np.float64).ravel()
        return (self.op @ (self.op @ full))[self.idx]

    def toarray(self) -> np.ndarray:
        """Dense M^T M from the sparse columns of S (never the dense n x n S)."""
        op = self.op
        s = (op.a + op.at).tocsc() if isinstance(op, _SymmetricOperator) else sp.csc_array(op)
        cols = s[:, self.idx]
        return np.asarray((cols.T @ cols).toarray(), dtype=np.float64)


def bipartite_spectral_gap(op: Any, side: np.ndarray, params: Mapping[str, Any]) -> float | str:
    """|l1| - |l3| of a bipartite symmetric adjacency as sigma_1 - sigma_2 (see _SquaredOnSide)."""
    small = side if side.sum() <= (~side).sum() else ~side
    m = int(small.sum())
    if m == 0:
        return "graph has no edges"
    if m == 1:  # rank 1: eigenvalues +-sigma_1 and zeros, so |l3| = 0
        vals = extreme_eigenvalues(_SquaredOnSide(op, small), 1, "LA", params)
        return vals if isinstance(vals, str) else float(np.sqrt(max(float(vals[0]), 0.0)))
    vals = extreme_eigenvalues(_SquaredOnSide(op, small), 2, "LA", params)
    if isinstance(vals, str):
        return vals
    sig = np.sqrt(np.clip(np.sort(vals)[::-1], 0.0, None))
    return float(sig[0] - sig[1])


def _laplacian(a: sp.csr_array) -> sp.csr_array:
    """D - A with D the column sums of the symmetric A."""
    deg = np.asarray(a.sum(axis=0)).ravel()
    return (sp.diags_array(deg, format="csr") - a).tocsr()


def laplacian_radius(
    lap: sp.csr_array | _SymmetricOperator, params: Mapping[str, Any]
) -> float | str:
    """Largest eigenvalue of the Laplacian D - A (positive semi-definite)."""
    if lap.shape[0] < 2:
        return "fewer than 2 nodes"
    vals = extreme_eigenvalues(lap, 1, "LA", params)
    if isinstance(vals, str):
        return vals
    return float(np.max(vals))


def expansion_metrics(graph: Graph, params: Mapping[str, Any]) -> FamilyResult:
    res = FamilyResult({})
    if graph.n_edges == 0:
        res.nan("spectral_gap", "graph has no edges")
        res.nan("spectral_radius", "graph has no edges")
        return res
    if is_simple_dag(graph):
        ops = (_SymmetricOperator(graph), _SymmetricOperator(graph, laplacian=True))
    else:  # parallel or reciprocal edges: collapse them first, as the paper does
        a = symmetric_adjacency(graph, weighted=True)
        ops = (a, _laplacian(a))
    side = None
    if graph.n_nodes > int(params["dense_eig_max_nodes"]) and params.get("bipartite_svd", True):
        side = block_bipartition(graph)

    def gap() -> float | str:
        if side is not None:
            return bipartite_spectral_gap(ops[0], side, params)
        return spectral_gap(ops[0], params)

    def radius() -> float | str:
        return laplacian_radius(ops[1], params)

    if int(params.get("threads", 1)) > 1:
        # the two eigenproblems are independent and their time is in sparse matvecs, which
        # release the GIL: with threads > 1 they run side by side
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = {"spectral_gap": pool.submit(gap), "spectral_radius": pool.submit(radius)}
            vals = {k: f.result() for k, f in futures.items()}
    else:
        vals = {"spectral_gap": gap(), "spectral_radius": radius()}
    for key, val in vals.items():
        if isinstance(val, str):
            res.nan(key, val)
        else:
            res.values[key] = val
    return res
