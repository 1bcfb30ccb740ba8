"""Shared pieces of the metric families: the result type, default parameters and normalisations.

Why the normalisations are registry facts: the paper's CSVs divide some metrics by the node count
and others by the edge count (verified against the published tables); keeping that mapping on each
family's registry entry means every family writes ``<metric>`` (raw) and ``<metric>_norm`` (paper
scale) the same way, through :func:`normalised`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..encode.graph import Graph

DEFAULT_PARAMS: dict[str, Any] = {
    "seed": 0,
    "threads": 1,
    # size-4 motif estimate: sample = max(motif_min_sample, int(motif_sample_fraction * N)) roots
    # (the paper: int(0.001 * N), no minimum)
    "motif_size": 4,
    "motif_sample_fraction": 0.001,
    "motif_min_sample": 1,
    # "count": vectorised exact count of what igraph's RAND-ESU estimate counts on the sampled
    # roots (same value, ~40x faster on a ResNet-20 MGE); "igraph": motifs_randesu_estimate itself;
    # "paper_sample": igraph draws the roots from random.Random(seed), as the authors' code does
    "motif_method": "count",
    # eigensolver (ARPACK via scipy eigsh): fixed start vector from the seed
    "eigsh_tol": 1e-6,
    "eigsh_maxiter": 10000,
    "eigsh_ncv": 24,
    # bipartite graphs (every edge joins an even and an odd block): spectral gap as
    # sigma_1 - sigma_2 of the biadjacency (exact; avoids ARPACK resolving the +-sigma_1 pair)
    "bipartite_svd": True,
    # graphs up to this many nodes get exact dense eigenvalues instead of ARPACK
    "dense_eig_max_nodes": 2000,
    # rows per chunk of the boolean product that counts 2-hop neighbourhoods
    "two_hop_chunk_rows": 16384,
    # local/strength: "auto" (from the conv kernels when they hold most of an exact-mode MGE's
    # edges, snntopo.metrics.implicit), "implicit" or "materialised" (from the CSR)
    "path": "auto",
    # global: "auto" (a sparse certificate for simple graphs of 2**28 edges or more, else one
    # DFS over the graph), "dfs" or "certificate" (snntopo.metrics.connectivity)
    "cut_method": "auto",
}


@dataclass
class FamilyResult:
    """Raw metric values of one graph, and the reason for every value that is NaN."""

    values: dict[str, float]
    nan_reasons: dict[str, str] = field(default_factory=dict)
    #: how the values were computed (e.g. the implicit or materialised path), recorded in the
    #: metric artifact's provenance as ``computed``
    info: dict[str, Any] = field(default_factory=dict)

    def nan(self, key: str, reason: str) -> None:
        self.values[key] = math.nan
        self.nan_reasons[key] = reason


class Undefined(ValueError):
    """A metric that has no value on this graph (an edgeless layer, a solver that did not
    converge); the message is the reason, recorded next to the NaN in the metric artifact.

    Why an exception: helpers that compute one value either return a float or raise this, so a
    reason can never be mistaken for a value (or a value for a reason) on the way up.
    """

    @property
    def reason(self) -> str:
        return str(self.args[0]) if self.args else "undefined"


def record(res: FamilyResult, key: str, compute: Callable[[], float]) -> None:
    """``res.values[key] = compute()``, or NaN with the reason if it raises :class:`Undefined`."""
    try:
        res.values[key] = float(compute())
    except Undefined as exc:
        res.nan(key, exc.reason)


FamilyFn = Callable[[Graph, Mapping[str, Any]], FamilyResult]


def normalised(
    res: FamilyResult, graph: Graph, normalisers: Mapping[str, str]
) -> tuple[dict[str, float], dict[str, str]]:
    """Raw values plus ``<metric>_norm`` for every metric in ``normalisers`` (the family's
    registry fact: metric -> ``"nodes"`` or ``"edges"``, what the paper's tables divide it by)."""
    counts = {"nodes": graph.n_nodes, "edges": graph.n_edges}
    values: dict[str, float] = {}
    reasons = dict(res.nan_reasons)
    for key, val in res.values.items():
        values[key] = float(val)
        by = normalisers.get(key)
        if by is None:
            continue
        if counts[by] == 0:
            values[f"{key}_norm"] = math.nan
            reasons[f"{key}_norm"] = f"graph has no {by}"
        else:
            values[f"{key}_norm"] = float(val) / counts[by]
            if key in reasons:
                reasons[f"{key}_norm"] = reasons[key]
    return values, reasons


def sample_size(n: int, params: Mapping[str, Any]) -> int:
    """Number of motif-sample roots (the paper's ``int(0.001 * N)``, at least the minimum)."""
    k = max(int(params["motif_min_sample"]), int(float(params["motif_sample_fraction"]) * n))
    return min(k, n)
