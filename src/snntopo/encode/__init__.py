"""Graph encodings of a masked network (registry ``ENCODINGS``).

Every encoding is ``build(spec, weights, **options) -> Graph`` where ``spec`` is the layer spec
(``layers.json``, see :mod:`snntopo.encode.layers`) and ``weights`` maps parameter names to masked
float32 numpy arrays (zeros are pruned weights). Adding an encoding = one module with ``build`` plus
one ``ENCODINGS.register`` line below. Nothing here imports torch: encodings run from files only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..registry import Registry
from . import mge, rolled, rolled_channel
from .graph import Block, Graph, from_edges, load_graph, save_graph

ENCODINGS: Registry = Registry("encoding")
ENCODINGS.register("mge", mge.build, paper="unrolled", modes=mge.MODES)
ENCODINGS.register("rolled", rolled.build, paper="rolled")
ENCODINGS.register("rolled-channel", rolled_channel.build, paper="rolled_channel")


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
    "Graph",
    "build_graph",
    "from_edges",
    "load_graph",
    "save_graph",
]
