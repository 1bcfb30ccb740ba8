"""Mask artifacts: ``mask.safetensors`` with bool tensors keyed by parameter name and a JSON
``snntopo`` metadata entry.

Why safetensors: the file is self-describing (names, shapes, dtypes in the header), loads without
pickle, and a truncated file is detected from the header offsets. Every reader validates against
the architecture before use so a mask for the wrong network fails loudly, naming file and tensor.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from ..errors import MaskError
from ..io import _jsonable, atomic_path, loads_json, provenance
from ..models import prunable_parameters

META_KEY = "snntopo"


def save_mask(
    path: str | os.PathLike[str], masks: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    """Write ``masks`` (bool tensors) and ``meta`` atomically.

    ``meta`` should carry method, sparsity, seed, arch, dataset and the fingerprint (e.g. the info
    dict of ``compute_mask`` plus arch/dataset); per-layer densities, realised sparsity and a
    provenance block are added here from the masks themselves so they can never disagree.
    """
    from ..artifacts import mask_digest
    from . import mask_info

    tensors = {n: m.detach().to("cpu", torch.bool).contiguous() for n, m in masks.items()}
    summary = mask_info(tensors, meta.get("outside_inference", ()))
    full = dict(meta)
    if summary.get("outside_inference"):
        full["outside_inference"] = summary["outside_inference"]
    full["densities"] = summary["densities"]
    full["realised_sparsity"] = summary["realised_sparsity"]
    full["emptied_layers"] = summary["emptied_layers"]
    full["mask_digest"] = mask_digest(tensors)
    full.setdefault(
        "provenance",
        provenance(**{k: meta.get(k) for k in ("method", "sparsity", "seed", "arch", "dataset")}),
    )
    text = json.dumps(_jsonable(full), allow_nan=False)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={META_KEY: text})


def load_mask(
    path: str | os.PathLike[str],
    model: nn.Module | None = None,
    expected: dict[str, Any] | None = None,
    require: bool = True,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a mask artifact; with ``model``, check it has exactly the model's prunable weights;
    with ``expected`` (grid-point parameters), check the mask records the same ones.

    Raises ``MaskError`` naming the file for a missing, unreadable or truncated file, a non-bool
    tensor or bad metadata, and naming file, parameter and both shapes for a mismatch. The bits
    must agree with the mask's own record (an all-zero mask, or tensors replaced behind intact
    metadata, are refused); with ``expected``, a mask of another grid point is refused naming
    the key and both values (``require=False``: only the keys the mask records are compared).
    """
    p = Path(path)
    if not p.exists():
        raise MaskError(f"{p}: mask file not found")
    try:
        with safe_open(str(p), framework="pt", device="cpu") as fh:
            raw_meta = fh.metadata() or {}
            masks = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (not a dict)
    except Exception as exc:  # safetensors raises several unrelated types for corrupt files
        raise MaskError(f"{p}: unreadable mask file ({type(exc).__name__}: {exc})") from None
    if META_KEY not in raw_meta:
        raise MaskError(f"{p}: missing '{META_KEY}' metadata")
    meta = loads_json(raw_meta[META_KEY], f"{p}: '{META_KEY}' metadata", MaskError)
    for name, m in masks.items():
        if m.dtype != torch.bool:
            raise MaskError(f"{p}: tensor {name!r} has dtype {m.dtype}, expected torch.bool")
        if m.numel() and int(m.view(torch.uint8).max()) > 1:
            raise MaskError(f"{p}: tensor {name!r} holds bytes other than 0 and 1 (damaged)")
    if not isinstance(meta, dict):
        raise MaskError(f"{p}: '{META_KEY}' metadata is not a JSON object")
    from ..artifacts import check_mask_content, check_recorded
    from ..errors import ArtifactError

    try:
        if expected is not None:
            check_recorded(meta, expected, str(p), require=require)
        check_mask_content(masks, meta, str(p))
    except ArtifactError as exc:
        raise MaskError(str(exc)) from None
    if model is not None:
        check_mask(masks, model, source=str(p))
    order = [n for n, _ in prunable_parameters(model)] if model is not None else sorted(masks)
    return {n: masks[n] for n in order}, meta


def check_mask(masks: dict[str, torch.Tensor], model: nn.Module, source: str = "mask") -> None:
    """Raise ``MaskError`` unless ``masks`` covers exactly the model's prunable weights with their
    shapes."""
    expected = {n: tuple(w.shape) for n, w in prunable_parameters(model)}
    missing = [n for n in expected if n not in masks]
    extra = [n for n in masks if n not in expected]
    if missing:
        raise MaskError(f"{source}: no mask for parameter(s) {missing} of the model")
    if extra:
        raise MaskError(f"{source}: mask has parameter(s) {extra} that the model lacks")
    for n, shape in expected.items():
        got = tuple(masks[n].shape)
        if got != shape:
            raise MaskError(
                f"{source}: parameter {n!r} has mask shape {list(got)} but weight shape "
                f"{list(shape)}"
            )


def apply_mask(model: nn.Module, masks: dict[str, torch.Tensor]) -> nn.Module:
    """Zero the pruned weights of ``model`` in place (masks may live on any device)."""
    check_mask(masks, model)
    with torch.no_grad():
        for name, w in prunable_parameters(model):
            w.mul_(masks[name].to(device=w.device, dtype=w.dtype))
    return model
