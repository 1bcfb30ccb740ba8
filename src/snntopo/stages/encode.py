"""Stage ``encode``: one graph encoding from the layer spec and the masked weights."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, TypedDict

from ..errors import ArtifactError
from ..gridpoint import NetworkKeys
from ..io import file_digest, provenance, read_json

if TYPE_CHECKING:
    from ..memcheck import MemoryGuard

log = logging.getLogger("snntopo.stages")


class EncodeParams(TypedDict, total=False):
    """Settings of one ``encode`` job (the config's ``encode:`` plus the network keys)."""

    mode: str
    """``exact`` or ``reference`` (the MGE only)."""
    identity_edges: bool
    compress: bool
    """Deflate the ``.npz`` (about 7x smaller for an MGE, about 15x slower to write and read)."""
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


def check_inputs(
    spec: dict[str, Any],
    spec_path: str,
    weights: dict[str, Any],
    weights_path: str,
    network: dict[str, Any],
    mask_path: str | None = None,
    strict: bool = True,
) -> None:
    """The weights (an init or a trained model) must be those of the grid point they are encoded
    for, fit the layer spec, be finite, and — given the network's mask — sit inside that mask and
    record its digest. Each failure names the files, the key and both values. ``strict=False``
    (``snntopo encode``, whose files may be made by hand) compares only what the files record."""
    from ..artifacts import (
        check_finite,
        check_recorded,
        check_weights_within_mask,
        read_safetensors_meta,
        weights_network,
    )

    if strict and (network or mask_path is not None):
        meta = read_safetensors_meta(weights_path)
    else:  # a file made outside the workflow (e.g. by hand) may carry no record
        try:
            meta = read_safetensors_meta(weights_path)
        except ArtifactError:
            meta = {}
    recorded = weights_network(meta)
    if network:
        check_recorded(recorded, network, weights_path, require=strict)
    # the spec was built for one (arch, input size, width): the weights must share them
    spec_params = (spec.get("provenance") or {}).get("params") or {}
    spec_rec = {
        "arch": spec.get("arch"),
        "input_size": (spec.get("input_shape") or [None])[-1],
        "width": spec_params.get("width"),
    }
    # what the weights record must agree with the spec (a record they lack was checked above
    # against the grid point when there is one)
    spec_rec = {k: v for k, v in spec_rec.items() if v is not None and k in recorded}
    check_recorded(
        recorded,
        spec_rec,
        weights_path,
        keys=("arch", "input_size", "width"),
        against=f"the layer spec {spec_path}",
    )
    check_finite(weights, weights_path)
    from ..encode.common import check_nothing_dropped

    check_nothing_dropped(spec, weights, meta, weights_path)
    if mask_path is not None:
        from ..pai.io import load_mask

        masks, mask_meta = load_mask(mask_path, expected=network or None, require=strict)
        sha = meta.get("mask_sha256")
        if sha is not None and sha != (actual := file_digest(mask_path)):
            raise ArtifactError(
                f"{weights_path}: mask_sha256 is {sha} but {mask_path} has "
                f"{actual} (made with another mask)"
            )
        check_weights_within_mask(weights, masks, weights_path, mask_path)
        from ..encode.common import check_encoded_sparsity

        check_encoded_sparsity(spec, masks, mask_meta, mask_path)


def encode_network(
    encoding: str,
    spec_path: str,
    weights_path: str,
    params: EncodeParams,
    out: str,
    mask_path: str | None = None,
    strict: bool = True,
    memory: MemoryGuard | None = None,
) -> dict[str, Any]:
    """Build one graph encoding from the layer spec and the masked weights (checked against the
    grid point ``params["network"]`` and, given ``mask_path``, against the network's mask);
    returns its counts (``nodes``, ``edges``, ``seconds`` of graph construction; for the MGE,
    which is written row block by row block as it is built (:func:`snntopo.encode.mge.write`)
    unless the file is deflated, construction and writing together). Given
    ``memory``, a graph whose estimated peak does not fit is refused before it is built
    (:func:`snntopo.memcheck.check_memory`)."""
    from ..artifacts import read_safetensors_meta
    from ..encode import build_graph
    from ..encode.graph import save_graph
    from ..encode.spec import check_spec, check_spec_weights

    spec = read_json(spec_path, required=("layers", "blocks", "input_shape"))
    check_spec(spec, spec_path)
    weights = load_weights(weights_path)
    missing = [lay["param"] for lay in spec["layers"] if lay["param"] not in weights]
    if missing:
        raise ArtifactError(
            f"{weights_path}: no weights for {missing[:3]} required by {spec_path}"
            + (f" (+{len(missing) - 3} more)" if len(missing) > 3 else "")
        )
    try:  # the weights file lists the auxiliary weights its mask left outside the graph
        outside = read_safetensors_meta(weights_path).get("outside_inference") or ()
    except ArtifactError:  # a file made by hand may carry no record
        outside = ()
    check_spec_weights(spec, spec_path, weights, weights_path, outside=outside)
    network = params.get("network") or {}
    check_inputs(spec, spec_path, weights, weights_path, network, mask_path, strict)
    compress = bool(params.get("compress", False))
    if memory is not None:
        from ..encode import encode_edges, encode_nodes, weight_bytes
        from ..memcheck import check_memory

        streamed = None
        if encoding == "mge" and not compress:  # written as built: its size is not the graph's
            streamed = (encode_nodes(spec), weight_bytes(weights))
        edges = encode_edges(spec, weights, encoding)
        check_memory(f"encoding {encoding}", edges, memory, streamed=streamed)
    t0 = time.perf_counter()

    def recorded() -> dict[str, Any]:
        return {
            "network": params.get("network", {}),
            "weights_sha256": file_digest(weights_path),
            "build_seconds": time.perf_counter() - t0,
            "provenance": provenance(**params),
        }

    if encoding == "mge" and not compress:  # row block by row block, never the whole graph
        from ..encode import mge

        counts = mge.write(
            out,
            spec,
            weights,
            mode=params.get("mode", "exact"),
            identity_edges=params.get("identity_edges", False),
            extra_meta=recorded,
        )
        seconds = time.perf_counter() - t0
        log.info("%s: %d nodes, %d edges", encoding, counts["nodes"], counts["edges"])
        return {**counts, "seconds": seconds}
    graph = build_graph(
        encoding,
        spec,
        weights,
        mode=params.get("mode", "exact"),
        identity_edges=params.get("identity_edges", False),
    )
    graph.meta.update(recorded())
    log.info("%s: %d nodes, %d edges", encoding, graph.n_nodes, graph.n_edges)
    save_graph(out, graph, compress=compress)
    return {"nodes": graph.n_nodes, "edges": graph.n_edges, "seconds": graph.meta["build_seconds"]}
