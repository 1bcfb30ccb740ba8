"""Global connectivity (the paper's "global" family): bridges, articulation points,
number of weakly connected components (isolated nodes included) and mean component size.

Why weak components: the paper symmetrises the graph before counting strongly connected components,
which is the same as weak components of the directed graph; scipy gets them from the CSR directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..encode.graph import Graph
from .algorithms import bridges_articulation_components
from .base import FamilyResult


def global_metrics(graph: Graph, params: Mapping[str, Any]) -> FamilyResult:
    n = graph.n_nodes
    res = FamilyResult({})
    n_bridges, n_ap, n_comp = bridges_articulation_components(graph)
    res.values["cut_edges"] = float(n_bridges)
    res.values["cut_nodes"] = float(n_ap)
    if n == 0:
        res.values["no_connected_components"] = 0.0
        res.nan("mean_connected_components", "graph has no nodes")
        return res
    res.values["no_connected_components"] = float(n_comp)
    res.values["mean_connected_components"] = n / n_comp
    return res
