"""Stage ``encode``: one graph encoding from the layer spec and the masked weights."""

from __future__ import annotations

import logging
import time
from typing import Any, TypedDict

from ..errors import ArtifactError
from ..io import file_digest, provenance, read_json
from .keys import NetworkKeys

log = logging.getLogger("snntopo.stages")


class EncodeParams(TypedDict, total=False):
    """Settings of one ``encode`` job (the config's ``encode:`` plus the network keys)."""

    mode: str
    """``exact`` or ``reference`` (the MGE only)."""
    identity_edges: bool
    weights: str
    """``init`` or ``trained``: which weights the rule read (recorded for provenance)."""
    network: NetworkKeys
    weights_source: dict[str, Any]


def load_weights(path: str) -> dict[str, Any]:
    """Float weights from a ``.safetensors`` artifact as numpy arrays (no torch needed)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: unreadable weights file ({exc})") from None


def encode_network(
    encoding: str, spec_path: str, weights_path: str, params: EncodeParams, out: str
) -> dict[str, Any]:
    """Build one graph encoding from the layer spec and the masked weights; returns its counts
    (``nodes``, ``edges``, ``seconds`` of graph construction)."""
    from ..encode import build_graph
    from ..encode.graph import save_graph

    spec = read_json(spec_path, required=("layers", "blocks", "input_shape"))
    weights = load_weights(weights_path)
    missing = [lay["param"] for lay in spec["layers"] if lay["param"] not in weights]
    if missing:
        raise ArtifactError(
            f"{weights_path}: no weights for {missing[:3]} required by {spec_path}"
            + (f" (+{len(missing) - 3} more)" if len(missing) > 3 else "")
        )
    t0 = time.perf_counter()
    graph = build_graph(
        encoding,
        spec,
        weights,
        mode=params.get("mode", "exact"),
        identity_edges=params.get("identity_edges", False),
    )
    graph.meta.update(
        network=params.get("network", {}),
        weights_sha256=file_digest(weights_path),
        build_seconds=time.perf_counter() - t0,
        provenance=provenance(**params),
    )
    log.info("%s: %d nodes, %d edges", encoding, graph.n_nodes, graph.n_edges)
    save_graph(out, graph)
    return {"nodes": graph.n_nodes, "edges": graph.n_edges, "seconds": graph.meta["build_seconds"]}
