"""The trained-model artifact ``model.safetensors``.

Layout (one file, written atomically):

- every entry of the model's ``state_dict`` under its own name; floating tensors as float32
  (pruned weights exactly 0.0), integer buffers (BatchNorm ``num_batches_tracked``) keep int64 so a
  ``load_state_dict`` round trip is exact;
- the mask of each masked parameter as a bool tensor under ``mask/<parameter name>``;
- header metadata ``{"snntopo": json.dumps(meta)}`` with the config that made it, the accuracy,
  the history and a ``provenance`` block.

Why safetensors and not a pickle: the graph and metric stages read weights with
``safetensors.numpy`` and never import torch, and a safetensors file cannot execute code on load.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CheckpointError
from .io import _jsonable, atomic_path, provenance

MASK_PREFIX = "mask/"
META_KEY = "snntopo"


def save_trained(
    path: str | os.PathLike[str],
    model: Any,
    masks: Mapping[str, Any] | None,
    meta: Mapping[str, Any],
) -> Path:
    """Write ``model`` (an ``nn.Module`` or a state dict) with ``masks`` and ``meta`` to ``path``.

    Weights are multiplied by their masks once more on the way out, so the artifact's zeros hold
    even if a caller edited the model after training. ``meta`` gains a ``provenance`` block (from
    its ``config`` entry) unless it already has one.
    """
    import torch
    from safetensors.torch import save_file

    state = model.state_dict() if hasattr(model, "state_dict") else dict(model)
    masks = dict(masks or {})
    tensors: dict[str, torch.Tensor] = {}
    for name, t in state.items():
        if name.startswith(MASK_PREFIX):
            raise CheckpointError(f"{path}: state-dict key {name!r} collides with the mask prefix")
        t = t.detach().to("cpu")
        if t.is_floating_point():
            t = t.float()
        if name in masks:
            m = torch.as_tensor(masks[name]).to("cpu", torch.bool)
            if m.shape != t.shape:
                raise CheckpointError(
                    f"{path}: mask {name!r} shape {tuple(m.shape)} != weight {tuple(t.shape)}"
                )
            t = t * m
        tensors[name] = t.contiguous()
    for name, m in masks.items():
        if name not in state:
            raise CheckpointError(f"{path}: mask {name!r} names no entry of the state dict")
        tensors[MASK_PREFIX + name] = torch.as_tensor(m).to("cpu", torch.bool).contiguous()

    meta = dict(meta)
    if "provenance" not in meta:
        meta["provenance"] = provenance(**dict(meta.get("config") or {}))
    header = {META_KEY: json.dumps(_jsonable(meta), allow_nan=False)}
    final = Path(path)
    with atomic_path(final) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    return final


def _open(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: trained-model file not found")
    try:
        return load_file(str(p))
    except Exception as exc:  # safetensors raises its own error types for truncated headers
        raise CheckpointError(f"{p}: unreadable safetensors file ({exc})") from None


def load_trained_weights(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The state dict of a trained model as numpy arrays (no torch needed); masks excluded."""
    return {k: v for k, v in _open(path).items() if not k.startswith(MASK_PREFIX)}


def load_trained_masks(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The bool masks stored with a trained model, keyed by parameter name."""
    return {
        k.removeprefix(MASK_PREFIX): v.astype(bool)
        for k, v in _open(path).items()
        if k.startswith(MASK_PREFIX)
    }


def load_trained_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON metadata (config, accuracy, history, provenance) of a trained model."""
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: trained-model file not found")
    try:
        with safe_open(str(p), framework="numpy") as fh:
            header = fh.metadata() or {}
    except Exception as exc:
        raise CheckpointError(f"{p}: unreadable safetensors file ({exc})") from None
    if META_KEY not in header:
        raise CheckpointError(f"{p}: no {META_KEY!r} metadata in the header")
    try:
        meta = json.loads(header[META_KEY])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{p}: metadata is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{p}: metadata is not a JSON object")
    return meta


def load_trained_into(model: Any, path: str | os.PathLike[str]) -> Any:
    """Load a trained artifact into a freshly built ``model`` (strict key/shape check)."""
    import torch

    weights = load_trained_weights(path)
    try:
        model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in weights.items()})
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: does not fit {type(model).__name__} ({exc})") from None
    return model


__all__ = [
    "MASK_PREFIX",
    "load_trained_into",
    "load_trained_masks",
    "load_trained_meta",
    "load_trained_weights",
    "save_trained",
]
