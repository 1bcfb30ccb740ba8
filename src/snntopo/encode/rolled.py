"""Rolled bipartite graph encoding (BGE) of Hoang et al. (ICLR 2023), one bipartite graph per layer.

Conv ``W[c_out, c_in/groups, kh, kw]``: left nodes = the ``c_in/groups * kh * kw`` rows of the
unrolled weight matrix (input channel x kernel position), right nodes = ``c_out``; one edge per
nonzero weight, weight ``|w|``. Linear: left = in_features, right = out_features.

Why per-layer blocks in one CSR: the metrics engineer iterates ``Graph.layer_graphs()``; layers share
no nodes (unlike the MGE), so each (left, right) pair is an independent graph. Shortcut convs are
layers like any other (their role is kept in ``layers``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .common import base_meta, layer_weight
from .graph import Block, Graph


def build_layered(
    encoding: str,
    spec: dict[str, Any],
    weights: Mapping[str, np.ndarray],
    layer_matrix: Callable[[np.ndarray, dict[str, Any]], np.ndarray],
    **params: Any,
) -> Graph:
    """Shared builder of the BGEs: ``layer_matrix`` gives the [right, left] |weight| matrix of a
    layer (zeros = no edge); edges are emitted row-major over its transpose so CSR rows (left
    nodes) come out sorted without a sort."""
    blocks: list[Block] = []
    layers: list[dict[str, Any]] = []
    indptrs, indices, datas = [np.zeros(1, dtype=np.int64)], [], []
    start, n_edges = 0, 0
    for k, lay in enumerate(spec["layers"]):
        w = layer_weight(weights, lay)
        m = np.ascontiguousarray(layer_matrix(w, lay).T)  # [left, right]
        n_left, n_right = m.shape
        nz = m != 0
        deg = nz.sum(axis=1)
        cols = np.nonzero(nz)[1].astype(np.int32) + np.int32(start + n_left)
        vals = m[nz].astype(np.float32)
        indptrs.append(n_edges + np.cumsum(deg, dtype=np.int64))
        indptrs.append(np.full(n_right, n_edges + int(deg.sum()), dtype=np.int64))
        indices.append(cols)
        datas.append(vals)
        n_edges += int(deg.sum())
        blocks.append(Block(f"{lay['name']}:in", start, start + n_left, (n_left,)))
        blocks.append(
            Block(f"{lay['name']}:out", start + n_left, start + n_left + n_right, (n_right,))
        )
        start += n_left + n_right
        layers.append(
            {
                "layer_id": k,
                "name": lay["name"],
                "param": lay["param"],
                "kind": lay["kind"],
                "role": lay["role"],
                "left": 2 * k,
                "right": 2 * k + 1,
                "numel": int(w.size),
                "nnz": int(np.count_nonzero(w)),
                "edges": int(deg.sum()),
                "weight_shape": list(w.shape),
            }
        )
    graph = Graph(
        indptr=np.concatenate(indptrs),
        indices=np.concatenate(indices) if indices else np.zeros(0, np.int32),
        weights=np.concatenate(datas) if datas else np.zeros(0, np.float32),
        blocks=blocks,
        meta=base_meta(encoding, spec, weights, **params),
        layers=layers,
    )
    return graph


def build(spec: dict[str, Any], weights: Mapping[str, np.ndarray], **params: Any) -> Graph:
    """Rolled BGE of every conv/linear layer in the spec (``params``, e.g. the MGE ``mode``, are
    recorded in the metadata; they do not change a bipartite encoding)."""
    return build_layered(
        "rolled", spec, weights, lambda w, _: np.abs(w.reshape(w.shape[0], -1)), **params
    )
