"""Local connectivity (spec D): dead-end and dangling nodes and the edges that lead to them.

Why the real inputs/outputs are excluded by block instead of subtracting their count (as the
reference does): an input or output node can itself be isolated, and subtracting ``dimL`` would then
count it wrongly; excluding the first/last block is exact in every case.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..encode.graph import Graph
from .base import FamilyResult


def local_metrics(graph: Graph, params: Mapping[str, Any]) -> FamilyResult:
    """nodes, edges, sink/source/disconnected nodes, r_out (edges into sinks), r_in (out of sources)."""
    n = graph.n_nodes
    outdeg = graph.out_degree()
    indeg = graph.in_degree()
    inp, outp = graph.input_block, graph.output_block
    sink = (outdeg == 0) & (indeg > 0)
    source = (outdeg > 0) & (indeg == 0)
    sink_x = sink.copy()
    sink_x[outp.start : outp.stop] = False  # real outputs are meant to be sinks
    source_x = source.copy()
    source_x[inp.start : inp.stop] = False  # real inputs are meant to be sources
    return FamilyResult(
        {
            "nodes": float(n),
            "edges": float(graph.n_edges),
            "sink_nodes": float(np.count_nonzero(sink_x)),
            "source_nodes": float(np.count_nonzero(source_x)),
            "disc_nodes": float(np.count_nonzero((outdeg == 0) & (indeg == 0))),
            "r_out": float(indeg[sink_x].sum()),
            "r_in": float(outdeg[source_x].sum()),
        }
    )
