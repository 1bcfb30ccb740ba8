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
from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, eigsh

from ..encode.graph import Graph
from . import FAMILIES
from .algorithms import symmetric_adjacency
from .base import ALL_ENCODINGS, FamilyResult


def extreme_eigenvalues(
    mat: sp.csr_array, k: int, which: str, params: Mapping[str, Any]
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


def spectral_gap(a: sp.csr_array, params: Mapping[str, Any]) -> float | str:
    """|l1| - |l3| of a symmetric matrix (for a bipartite graph: l1 minus the second distinct)."""
    if a.shape[0] < 3:
        return "fewer than 3 nodes"
    vals = extreme_eigenvalues(a, 3, "LM", params)
    if isinstance(vals, str):
        return vals
    mags = np.sort(np.abs(vals))[::-1]
    return float(mags[0] - mags[2])


def laplacian_radius(a: sp.csr_array, params: Mapping[str, Any]) -> float | str:
    """Largest eigenvalue of D - A (D = column sums of the symmetric A)."""
    if a.shape[0] < 2:
        return "fewer than 2 nodes"
    deg = np.asarray(a.sum(axis=0)).ravel()
    lap = (sp.diags_array(deg, format="csr") - a).tocsr()
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
    a = symmetric_adjacency(graph, weighted=True)
    for key, fn in (("spectral_gap", spectral_gap), ("spectral_radius", laplacian_radius)):
        val = fn(a, params)
        if isinstance(val, str):
            res.nan(key, val)
        else:
            res.values[key] = val
    return res


FAMILIES.register("expansion", expansion_metrics, encodings=ALL_ENCODINGS)
