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
from .gridpoint import KEYS
from .io import _jsonable, atomic_path, loads_json, provenance

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
    meta = loads_json(header[META_KEY], f"{p}: metadata", CheckpointError)
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


# --------------------------------------------------------------------------- artifacts vouch
#: the parameters that identify a grid point, as every artifact records them
NETWORK_KEYS = KEYS
#: model-shape parameters recorded by masks and inits (and under ``params`` by trained models)
SHAPE_KEYS = ("width", "input_size")


def _same(key: str, got: Any, want: Any) -> bool:
    if key in ("sparsity", "width"):
        try:
            return float(got) == float(want)
        except (TypeError, ValueError):
            return False
    if key in ("seed", "input_size"):
        try:
            return int(got) == int(want) and float(got) == float(want)
        except (TypeError, ValueError):
            return False
    if key == "arch":  # paths carry an external architecture's slug, artifacts its full name
        from .gridpoint import unslug

        return unslug(str(got)) == unslug(str(want))
    return str(got) == str(want)


def check_recorded(
    meta: Mapping[str, Any],
    expected: Mapping[str, Any],
    source: str,
    keys: tuple[str, ...] = NETWORK_KEYS + SHAPE_KEYS,
    against: str = "this grid point",
    require: bool = True,
) -> None:
    """Raise ``ArtifactError`` unless every key of ``keys`` that ``expected`` gives is recorded in
    ``meta`` with the same value; the message names the file, the key and both values.
    ``require=False`` (files a user hands to a CLI command, which may be made by hand) checks only
    the keys the file records.

    Why: every artifact carries the parameters that made it, so an artifact of another grid point
    copied into a network's directory (a 0.98 mask at the 0.9 path) is caught where it is read,
    instead of running to a finished report with the wrong network in the 0.9 row.
    """
    from .errors import ArtifactError

    for key in keys:
        if key not in expected or expected[key] is None:
            continue
        want = expected[key]
        if key not in meta or meta[key] is None:
            if not require:
                continue
            raise ArtifactError(
                f"{source}: records no {key!r}; cannot vouch for {against} ({key} {want!r})"
            )
        if not _same(key, meta[key], want):
            raise ArtifactError(
                f"{source}: {key} is {meta[key]!r} but {against} has {key} {want!r} "
                "(an artifact of another network?)"
            )


def read_safetensors_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``snntopo`` JSON metadata of any snntopo safetensors artifact (mask, init, model)."""
    from safetensors import safe_open

    from .errors import ArtifactError

    p = Path(path)
    try:
        with safe_open(str(p), framework="numpy") as fh:
            header = fh.metadata() or {}
    except Exception as exc:
        raise ArtifactError(f"{p}: unreadable safetensors file ({exc})") from None
    if META_KEY not in header:
        raise ArtifactError(f"{p}: missing {META_KEY!r} metadata")
    meta = loads_json(header[META_KEY], f"{p}: {META_KEY!r} metadata")
    if not isinstance(meta, dict):
        raise ArtifactError(f"{p}: {META_KEY!r} metadata is not a JSON object")
    return meta


def weights_network(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The grid-point parameters recorded by an init (flat) or a trained model (network keys flat,
    ``width``/``input_size`` under ``params``)."""
    out = {k: meta[k] for k in (*NETWORK_KEYS, *SHAPE_KEYS) if k in meta}
    params = meta.get("params") if isinstance(meta.get("params"), Mapping) else {}
    for k in SHAPE_KEYS:
        if k not in out and k in params:
            out[k] = params[k]
    return out


def mask_digest(masks: Mapping[str, Any]) -> str:
    """Content digest of a set of masks (names, shapes and bits), independent of the file bytes."""
    import hashlib

    h = hashlib.sha256()
    for name in sorted(masks):
        m = np.asarray(masks[name].numpy() if hasattr(masks[name], "numpy") else masks[name])
        m = m.astype(bool)
        h.update(f"{name}:{m.shape};".encode())
        h.update(np.packbits(m, axis=None).tobytes())
    return h.hexdigest()[:16]


def check_mask_content(masks: Mapping[str, Any], meta: Mapping[str, Any], source: str) -> None:
    """Raise ``ArtifactError`` for a mask that keeps nothing, or whose bits disagree with its own
    record (realised sparsity, content digest): tensors replaced behind intact metadata."""
    from .errors import ArtifactError

    arrays = {
        n: np.asarray(m.numpy() if hasattr(m, "numpy") else m).astype(bool)
        for n, m in masks.items()
    }
    if not arrays:
        raise ArtifactError(f"{source}: the mask holds no tensors")
    for key, kind in (
        ("realised_sparsity", "number"),
        ("sparsity", "number"),
        ("mask_digest", "str"),
    ):
        v = meta.get(key)
        if v is None:
            continue
        if kind == "str" and not isinstance(v, str):
            raise ArtifactError(f"{source}: {key} is {v!r}, not a string")
        if kind == "number" and (
            isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1
        ):
            raise ArtifactError(f"{source}: {key} is {v!r}, not a number in [0, 1]")
    # weights outside the inference network (auxiliary heads, kept dense) are not in the budget
    outside = meta.get("outside_inference") or []
    if not isinstance(outside, list) or not all(isinstance(n, str) for n in outside):
        raise ArtifactError(f"{source}: outside_inference is {outside!r}, not a list of names")
    outside = set(outside)
    total = sum(a.size for n, a in arrays.items() if n not in outside)
    kept = sum(int(np.count_nonzero(a)) for n, a in arrays.items() if n not in outside)
    if total and kept == 0:
        raise ArtifactError(
            f"{source}: all-zero mask (keeps 0 of {total} weights; records sparsity "
            f"{meta.get('sparsity')!r}): it would give a network without edges"
        )
    realised = 1.0 - kept / total if total else 0.0
    recorded = meta.get("realised_sparsity")
    if recorded is not None and abs(float(recorded) - realised) > 1e-9:
        raise ArtifactError(
            f"{source}: realised_sparsity is recorded as {float(recorded):.6g} but the mask's bits "
            f"give {realised:.6g} (tensors replaced?)"
        )
    digest = meta.get("mask_digest")
    if digest is not None and digest != mask_digest(arrays):
        raise ArtifactError(
            f"{source}: mask_digest is recorded as {digest} but the bits give "
            f"{mask_digest(arrays)} (tensors replaced?)"
        )


def check_weights_within_mask(
    weights: Mapping[str, np.ndarray],
    masks: Mapping[str, Any],
    weights_source: str,
    mask_source: str,
) -> None:
    """Raise ``ArtifactError`` if any nonzero weight sits where the mask prunes (weights of
    another mask), naming both files, the parameter and the count."""
    from .errors import ArtifactError

    for name, m in masks.items():
        if name not in weights:
            continue
        keep = np.asarray(m.numpy() if hasattr(m, "numpy") else m).astype(bool)
        w = np.asarray(weights[name])
        if w.shape != keep.shape:
            raise ArtifactError(
                f"{weights_source}: {name!r} has shape {list(w.shape)} but {mask_source} has "
                f"{list(keep.shape)}"
            )
        stray = int(np.count_nonzero(w[~keep]))
        if stray:
            raise ArtifactError(
                f"{weights_source}: {stray} nonzero weights of {name!r} are pruned by "
                f"{mask_source} (weights of another mask?)"
            )


def check_finite(weights: Mapping[str, np.ndarray], source: str) -> None:
    """Raise ``NonFiniteError`` naming the file, the tensor and the count of NaN/Inf values.

    Counted in chunks (:func:`snntopo.mapped.iter_chunks`): a graph's mapped weights are
    not left resident, and no bool temporary of the tensor's size is made (it was 6 bytes per
    edge of a metric job's peak, the whole of the ``local`` family's, issue 29)."""
    from .errors import NonFiniteError
    from .mapped import iter_chunks

    for name, w in weights.items():
        a = np.asarray(w)
        if a.dtype.kind == "f":
            flat = a.reshape(-1)
            bad = sum(int(np.count_nonzero(~np.isfinite(part))) for _, part in iter_chunks(flat))
            if bad:
                raise NonFiniteError(
                    f"{source}: tensor {name!r} holds {bad} NaN/Inf value(s) of {a.size}"
                )


__all__ = [
    "MASK_PREFIX",
    "NETWORK_KEYS",
    "check_finite",
    "check_mask_content",
    "check_recorded",
    "check_weights_within_mask",
    "mask_digest",
    "read_safetensors_meta",
    "weights_network",
    "load_trained_into",
    "load_trained_masks",
    "load_trained_meta",
    "load_trained_weights",
    "save_trained",
]
