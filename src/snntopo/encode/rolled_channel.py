"""Rolled-channel bipartite encoding (Prabhu et al., ECCV 2018 "Deep Expander Networks").

Conv: left = ``c_in`` input channels, right = ``c_out``; an edge (i, o) exists iff the kernel slice
``W[o, i_local, :, :]`` has a nonzero, weighted by the slice's L2 norm. Grouped convs connect output
channel o only to its group's input channels (depthwise: one edge per channel). Linear layers are as
in the rolled BGE (edge per nonzero, weight |w|).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .graph import Graph
from .rolled import build_layered


def channel_matrix(w: np.ndarray, layer: dict[str, Any]) -> np.ndarray:
    """[c_out, c_in] matrix of kernel-slice L2 norms (zero where the slice is fully pruned)."""
    if layer["kind"] != "conv":
        return np.abs(w)
    c_out, c_in_g = w.shape[:2]
    norms = np.sqrt(np.einsum("oikl,oikl->oi", w, w, dtype=np.float64)).astype(np.float32)
    groups = int(layer.get("groups", 1))
    if groups == 1:
        return norms
    c_in = c_in_g * groups
    full = np.zeros((c_out, c_in), dtype=np.float32)
    o = np.arange(c_out)
    g = o // (c_out // groups)
    cols = g[:, None] * c_in_g + np.arange(c_in_g)[None, :]
    full[o[:, None], cols] = norms
    return full


def build(spec: dict[str, Any], weights: Mapping[str, np.ndarray], **params: Any) -> Graph:
    """Rolled-channel BGE of every conv/linear layer in the spec (``params`` recorded only)."""
    return build_layered("rolled-channel", spec, weights, channel_matrix, **params)
