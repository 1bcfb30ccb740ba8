"""Graph encodings of a masked network (registry ``ENCODINGS``).

Every encoding is ``build(spec, weights, **options) -> Graph`` where ``spec`` is the layer spec
(``layers.json``, see :mod:`snntopo.encode.layers`) and ``weights`` maps parameter names to masked
float32 numpy arrays (zeros are pruned weights). Adding an encoding = one module with ``build`` plus
one ``ENCODINGS.register`` line below. Nothing here imports torch: encodings run from files only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..registry import Registry
from .graph import Block, Graph, from_edges, load_graph, save_graph


@dataclass(frozen=True)
class EncodingFacts:
    """The registry facts of an encoding (one default each; ``kind`` has none)."""

    kind: Literal["multipartite", "bipartite"]
    """``multipartite``: one end-to-end graph, metrics on the whole; ``bipartite``: one bipartite
    graph per layer, metrics per layer then averaged."""
    paper: str | None = None
    """The authors' folder name; ``None``: not in the paper."""
    modes: tuple[str, ...] = ("exact",)
    """The build modes it distinguishes (``exact``, ``reference``)."""
    edge_model: Literal["weights", "unrolled"] = "weights"
    """How its edge count follows from a layer's nonzero weights: ``weights``, one edge each;
    ``unrolled``, one per tap and output position (see :func:`estimate_edges`)."""


ENCODINGS: Registry = Registry("encoding", EncodingFacts)
ENCODINGS.register(
    "mge",
    "snntopo.encode.mge:build",
    kind="multipartite",
    paper="unrolled",
    modes=("exact", "reference"),
    edge_model="unrolled",
)
ENCODINGS.register(
    "rolled", "snntopo.encode.rolled:build", kind="bipartite", paper="rolled", edge_model="weights"
)
ENCODINGS.register(
    "rolled-channel",
    "snntopo.encode.rolled_channel:build",
    kind="bipartite",
    paper="rolled_channel",
    edge_model="weights",
)


def estimate_edges(spec: Mapping[str, Any], nnz: Mapping[str, float], encoding: str) -> float:
    """Upper estimate of a graph's edges from the layer spec and each layer's nonzero weights
    (memory requests of encode/metric jobs): ``weights`` models have one edge per nonzero weight
    at most; ``unrolled`` ones repeat every nonzero conv tap at each output position and every
    edge out of a pooled node once per pre-pool node of its window."""
    model = ENCODINGS.fact(encoding, "edge_model")
    total = 0.0
    for layer in spec["layers"]:
        k = float(nnz.get(layer["param"], 0.0))
        if model != "unrolled":
            total += k
            continue
        positions = 1.0
        if layer["kind"] == "conv":
            out_shape = layer["out_shape"]
            positions = float(out_shape[-1] * out_shape[-2])
        for pool in layer.get("pools", []) or []:
            positions *= float(_largest_window(pool))
        total += k * positions
    return total


def _largest_window(pool: Mapping[str, Any]) -> int:
    """Pre-pool positions in a pooling set's largest window: kernel height x width, or for
    torch's adaptive windows ``[floor(i*H/OH), ceil((i+1)*H/OH))`` (recorded without a kernel,
    e.g. VGG's 7x7 pool of a 1x1 map at 32x32) the widest such window per axis."""
    if not pool.get("adaptive"):
        kh, kw = pool["kernel"]
        return int(kh) * int(kw)
    size = 1
    for n, n_out in zip(pool["in_shape"][1:], pool["out_shape"][1:], strict=True):
        q = np.arange(int(n_out))
        lo, hi = (q * n) // n_out, -((-(q + 1) * n) // n_out)
        size *= int((hi - lo).max())
    return size


def encode_edges(spec: Mapping[str, Any], weights: Mapping[str, Any], encoding: str) -> float:
    """:func:`estimate_edges` from the masked weights themselves (their nonzeros per layer): the
    edge estimate of an encode job's memory request (:func:`snntopo.workflow.encode_mem_mb`) and
    of its own pre-flight check (:mod:`snntopo.memcheck`)."""
    nnz = {k: float(np.count_nonzero(v)) for k, v in weights.items()}
    return estimate_edges(spec, nnz, encoding)


def encode_nodes(spec: Mapping[str, Any]) -> float:
    """Nodes of the spec's MGE: every block's activations, the input included."""
    total = 0.0
    for block in spec["blocks"]:
        total += float(np.prod([int(v) for v in block["shape"]]))
    return total


def weight_bytes(weights: Mapping[str, Any]) -> float:
    """Bytes of the masked weights an encode holds (the streamed encode's estimate)."""
    return float(sum(np.asarray(v).nbytes for v in weights.values()))


def build_graph(
    encoding: str,
    spec: dict[str, Any],
    weights: Mapping[str, np.ndarray],
    mode: str = "exact",
    **options: Any,
) -> Graph:
    """Build ``encoding`` of the network ``spec`` with masked ``weights``.

    ``mode`` (``exact`` | ``reference``) only changes the MGE; the bipartite encodings are the same
    in both (the reference builds them from the weight tensors alone) and record the mode for
    provenance.
    """
    return ENCODINGS.get(encoding)(spec, weights, mode=mode, **options)


__all__ = [
    "ENCODINGS",
    "Block",
    "EncodingFacts",
    "Graph",
    "build_graph",
    "estimate_edges",
    "from_edges",
    "load_graph",
    "save_graph",
]
