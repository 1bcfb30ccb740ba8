"""Local connectivity: dead-end and dangling nodes and the edges that lead to them.

Two definitions, chosen by the graph's encoding mode (``graph.meta["mode"]``):

- ``exact`` (default): the real inputs/outputs are excluded by block instead of subtracting their
  count. An input or output node can itself be isolated, and subtracting the block size would then
  count it wrongly; excluding the first/last block is exact in every case.
- ``reference`` (MGE graphs built with ``--mode reference``): the paper code's definitions, so that a
  new mask's values land on the scale of the published ``unrolled`` columns. With ``n_in`` the
  input block's size (the padded input, e.g. 3x34x34) and ``n_out`` the output block's:
  ``sink_nodes`` = #(out-degree 0, in-degree > 0) - n_out; ``source_nodes`` = #(in-degree 0,
  out-degree > 0) - n_in; ``r_out`` sums the in-degree of such sinks with node index
  < N - 1 - n_out (one node more than the output block is left out); ``r_in`` sums the out-degree
  of such sources with index > n_in (one node more than the input block is left out).
  ``disc_nodes`` is the same in both. Layer graphs of the BGEs always use the exact definitions
  (the paper's per-layer tables do not state theirs).

The degrees come from the CSR (materialised path) or, for an exact-mode MGE whose conv terms hold
most edges, from the terms' binary kernels plus the other edges (:mod:`snntopo.metrics.implicit`;
``params["path"]`` forces either); the formulas below are the same on both paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..encode.graph import Graph
from .base import FamilyResult

DEFINITIONS = ("exact", "reference")


def definitions_of(graph: Graph) -> str:
    """Which local-metric definitions apply: ``reference`` only for a reference-mode MGE."""
    if graph.meta.get("mode") == "reference" and not graph.layers and len(graph.blocks) > 2:
        return "reference"
    return "exact"


def local_metrics(graph: Graph, params: Mapping[str, Any]) -> FamilyResult:
    """nodes, edges, sink/source/disconnected nodes, r_out (edges into sinks), r_in (out of sources)."""
    n = graph.n_nodes
    outdeg, indeg, info = _degrees(graph, params)
    inp, outp = graph.input_block, graph.output_block
    sink = (outdeg == 0) & (indeg > 0)
    source = (outdeg > 0) & (indeg == 0)
    disc = float(np.count_nonzero((outdeg == 0) & (indeg == 0)))
    if definitions_of(graph) == "reference":
        n_in, n_out = inp.stop - inp.start, outp.stop - outp.start
        idx = np.arange(n)
        return FamilyResult(
            {
                "nodes": float(n),
                "edges": float(outdeg.sum()),
                "sink_nodes": float(np.count_nonzero(sink) - n_out),
                "source_nodes": float(np.count_nonzero(source) - n_in),
                "disc_nodes": disc,
                "r_out": float(indeg[sink & (idx < n - 1 - n_out)].sum()),
                "r_in": float(outdeg[source & (idx > n_in)].sum()),
            },
            info=info,
        )
    sink_x = sink.copy()
    sink_x[outp.start : outp.stop] = False  # real outputs are meant to be sinks
    source_x = source.copy()
    source_x[inp.start : inp.stop] = False  # real inputs are meant to be sources
    return FamilyResult(
        {
            "nodes": float(n),
            "edges": float(outdeg.sum()),
            "sink_nodes": float(np.count_nonzero(sink_x)),
            "source_nodes": float(np.count_nonzero(source_x)),
            "disc_nodes": disc,
            "r_out": float(indeg[sink_x].sum()),
            "r_in": float(outdeg[source_x].sum()),
        },
        info=info,
    )


def _degrees(graph: Graph, params: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, dict]:
    """(out-degree, in-degree, how they were computed) on the path :func:`implicit.plan` picks."""
    from . import implicit

    plan = implicit.choose("local", graph, params)
    if plan.path == "implicit":
        try:
            out, inn, info = implicit.degrees(graph)
            return out, inn, {**info, "why": plan.why}
        except implicit._Mismatch as exc:
            return graph.out_degree(), graph.in_degree(), implicit.fall_back(str(exc))
    return graph.out_degree(), graph.in_degree(), {"path": "materialised", "why": plan.why}
