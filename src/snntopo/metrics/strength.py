"""Strength: mean total node strength (in + out, weights |w|) and mean coreness.

Strength is one sum over the CSR weights; coreness is a vectorised peeling over the undirected
multigraph, read as the graph's CSR plus its CSC (never a merged copy; see
:func:`snntopo.metrics.algorithms.coreness`), equal to igraph's ``coreness(mode='all')``. For an exact-mode MGE whose conv terms hold most
edges both come from the terms' kernels and the other edges instead, never reading the covered
CSR (:mod:`snntopo.metrics.implicit`; ``params["path"]`` forces either path).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..encode.graph import Graph, release_pages
from .algorithms import coreness, in_neighbour_lists
from .base import FamilyResult


def strength_metrics(graph: Graph, params: Mapping[str, Any]) -> FamilyResult:
    n = graph.n_nodes
    res = FamilyResult({})
    if n == 0:
        res.nan("avg_node_strength", "graph has no nodes")
        res.nan("k_core", "graph has no nodes")
        return res
    from . import implicit

    plan = implicit.choose("strength", graph, params)
    if plan.path == "implicit":
        try:
            total, core, info = implicit.strength(graph)
        except implicit._Mismatch as exc:
            res.info = implicit.fall_back(str(exc))
        else:
            res.values["avg_node_strength"] = 2.0 * total / n
            res.values["k_core"] = float(core.mean())
            res.info = {**info, "why": plan.why}
            return res
    else:
        res.info = {"path": "materialised", "why": plan.why}
    # every edge adds |w| to its source's out-strength and its target's in-strength
    res.values["avg_node_strength"] = 2.0 * float(graph.weights.sum(dtype=np.float64)) / n
    release_pages(graph.weights)  # a mapped file's weights: not resident during the k-core
    # the undirected multigraph as CSR (out-neighbours) plus CSC (in-neighbours): no merged copy
    in_ptr, in_src = in_neighbour_lists(graph)
    core = coreness(graph.indptr, graph.indices, in_ptr, in_src)
    res.values["k_core"] = float(core.mean())
    return res
