"""Global connectivity (the paper's "global" family): bridges, articulation points,
number of weakly connected components (isolated nodes included) and mean component size.

Why weak components: the paper symmetrises the graph before counting strongly connected components,
which is the same as weak components of the directed graph; scipy gets them from the CSR directly.

Two paths, the same counts: one DFS over the whole graph (scipy's, its CSR and in-neighbour lists
resident together: ~8 bytes per edge), or, for a simple graph of at least
:data:`snntopo.memcheck.GLOBAL_CERTIFICATE_MIN_EDGES` edges, that DFS on a sparse certificate of
at most 2(n - 1) edges found level by level with the graph's pages released
(:mod:`snntopo.metrics.cut_certificate`: ~4.5 bytes per edge, about twice the time).
``params["cut_method"]`` (``auto``, ``dfs``, ``certificate``) forces either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..encode.graph import Graph
from ..errors import ConfigError
from ..memcheck import GLOBAL_CERTIFICATE_MIN_EDGES
from .algorithms import bridges_articulation_components, is_simple_dag
from .base import FamilyResult

#: values of ``params["cut_method"]``
CUT_METHODS = ("auto", "dfs", "certificate")


def cut_method(graph: Graph, params: Mapping[str, Any]) -> str:
    """``dfs`` or ``certificate`` for this graph under ``params["cut_method"]`` (module
    docstring); a forced certificate on a graph that is not simple is a ConfigError."""
    want = str(params.get("cut_method", "auto"))
    if want not in CUT_METHODS:
        raise ConfigError(f"metric parameter cut_method is {want!r}; use one of {CUT_METHODS}")
    if want == "dfs" or (want == "auto" and graph.n_edges < GLOBAL_CERTIFICATE_MIN_EDGES):
        return "dfs"
    if is_simple_dag(graph):
        return "certificate"
    if want == "certificate":
        raise ConfigError(
            "metric parameter cut_method=certificate needs a simple graph (no parallel, "
            "reciprocal or self edges); use auto or dfs"
        )
    return "dfs"


def global_metrics(graph: Graph, params: Mapping[str, Any]) -> FamilyResult:
    n = graph.n_nodes
    res = FamilyResult({})
    method = cut_method(graph, params)
    res.info = {"cut_method": method}
    searched = graph  # what the DFS runs on: the graph, or its certificate (same counts)
    if method == "certificate":
        from .cut_certificate import certificate

        searched = certificate(graph)
        res.info["certificate_edges"] = int(searched.n_edges)
    n_bridges, n_ap, n_comp = bridges_articulation_components(searched)
    res.values["cut_edges"] = float(n_bridges)
    res.values["cut_nodes"] = float(n_ap)
    if n == 0:
        res.values["no_connected_components"] = 0.0
        res.nan("mean_connected_components", "graph has no nodes")
        return res
    res.values["no_connected_components"] = float(n_comp)
    res.values["mean_connected_components"] = n / n_comp
    return res
