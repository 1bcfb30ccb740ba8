"""Helpers shared by the encodings: weight lookup/validation, digests, metadata.

Encodings run from ``layers.json`` plus a ``{param name: masked float32 array}`` mapping, so they
never import torch; everything here is numpy only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import MaskError
from ..io import provenance


def layer_weight(weights: Mapping[str, np.ndarray], layer: dict[str, Any]) -> np.ndarray:
    """The masked weight of ``layer`` as float32, checked against the spec's weight shape."""
    name = layer["param"]
    if name not in weights:
        raise MaskError(f"no weights for parameter {name!r} (layer {layer['name']!r})")
    w = np.asarray(weights[name], dtype=np.float32)
    if "param_shape" in layer and list(w.shape) == list(layer["param_shape"]):
        w = w.reshape(layer["weight_shape"])  # a Linear on the channel axis is a 1x1 conv
    if list(w.shape) != list(layer["weight_shape"]):
        raise MaskError(
            f"parameter {name!r} has shape {list(w.shape)}, the layer spec says "
            f"{list(layer['weight_shape'])}"
        )
    return w


def weights_digest(weights: Mapping[str, np.ndarray], spec: dict[str, Any]) -> str:
    """sha256 (16 hex) of the masked weights of the spec's layers, in layer order.

    Ties a graph file to the exact weights (hence mask) it was built from; parameters that the
    spec does not use (biases, BN) do not enter.
    """
    h = hashlib.sha256()
    for layer in spec["layers"]:
        w = np.ascontiguousarray(layer_weight(weights, layer))
        h.update(layer["param"].encode())
        h.update(str(w.shape).encode())
        h.update(w.tobytes())
    return h.hexdigest()[:16]


def base_meta(
    encoding: str, spec: dict[str, Any], weights: Mapping[str, np.ndarray], **params: Any
) -> dict[str, Any]:
    """Metadata every encoding writes: what network, which weights, which options."""
    return {
        "encoding": encoding,
        "arch": spec.get("arch"),
        "input_shape": list(spec["input_shape"]),
        "num_classes": spec.get("num_classes"),
        "weights_digest": weights_digest(weights, spec),
        **params,
        "provenance": provenance(encoding=encoding, arch=spec.get("arch"), **params),
    }


def check_encoded_sparsity(
    spec: dict[str, Any], masks: Mapping[str, Any], mask_meta: Mapping[str, Any], source: str
) -> None:
    """The weights an encoding reads (the spec's layers: the inference network) must be the
    weights the mask's budget counts: the realised sparsity of the encoded ones must equal the
    mask's recorded one. A mismatch (a mask that spent its budget on layers the graph does not
    have, e.g. auxiliary heads not listed as ``outside_inference``) is an error."""
    recorded = mask_meta.get("realised_sparsity")
    if recorded is None:
        return
    params = [lay["param"] for lay in spec["layers"] if lay["param"] in masks]
    arrays = [
        np.asarray(masks[p].numpy() if hasattr(masks[p], "numpy") else masks[p]) for p in params
    ]
    total = sum(a.size for a in arrays)
    if not total:
        return
    encoded = 1.0 - sum(int(np.count_nonzero(a)) for a in arrays) / total
    if abs(encoded - float(recorded)) > 1e-9:
        left = sorted(set(masks) - set(params) - set(mask_meta.get("outside_inference") or ()))
        raise MaskError(
            f"{source}: the encoded weights have sparsity {encoded:.6g} but the mask records "
            f"{float(recorded):.6g}; its budget counts weights the graph does not have"
            + (f" ({', '.join(left[:3])}{' ...' if len(left) > 3 else ''})" if left else "")
        )


def check_nothing_dropped(
    spec: dict[str, Any], weights: Mapping[str, Any], meta: Mapping[str, Any], source: str
) -> None:
    """Every prunable weight of a weights file is either read by the encoding (a layer of the
    spec) or listed by its mask as outside the inference network (``outside_inference``); a
    nonzero weight that is neither would be silently left out of the graph while the mask's
    budget counts it. The prunable weights are the ``mask/<param>`` entries of a trained model,
    or every tensor of a masked init; other files are not checked."""
    masked = [k[len("mask/") :] for k in weights if k.startswith("mask/")]
    if masked:
        prunable = masked
    elif meta.get("kind") == "masked-init":
        prunable = list(weights)
    else:
        return
    read = {lay["param"] for lay in spec["layers"]}
    outside = set(meta.get("outside_inference") or ())
    dropped = [
        p
        for p in prunable
        if p not in read and p not in outside and p in weights and np.any(np.asarray(weights[p]))
    ]
    if dropped:
        raise MaskError(
            f"{source}: {len(dropped)} weight tensor(s) with kept weights are not in the graph "
            f"and not listed as outside the inference network by the mask "
            f"({', '.join(dropped[:3])}{' ...' if len(dropped) > 3 else ''}): the mask's budget "
            "counts weights the encoding would drop (recompute the mask)"
        )
