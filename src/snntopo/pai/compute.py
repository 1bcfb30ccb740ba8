"""``compute_mask``: the single entry point that runs a registered PaI method on a model."""

from __future__ import annotations

import copy
import logging
import math
import time
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, DeviceError
from ..models import drop_outside_inference, prunable_parameters
from . import METHODS
from .base import LoaderFactory, PaiContext, deterministic, input_shape_of

log = logging.getLogger("snntopo.pai")


def _device_of(model: nn.Module, device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def compute_mask(
    method: str,
    model: nn.Module,
    sparsity: float,
    *,
    seed: int,
    loader_factory: LoaderFactory | None = None,
    params: dict[str, Any] | None = None,
    device: str | torch.device | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Compute ``method``'s mask of ``model`` at global ``sparsity`` (over all conv/linear weights).

    ``model`` is never modified: the method works on a deep copy (its weights are the init that
    will be trained). Returns CPU bool masks keyed by exactly the names of ``prunable_parameters``
    and an info dict: method, sparsity, seed, params, realised sparsity, kept/total counts,
    per-layer densities, emptied layers, data fingerprint (sha256 of the batches read; ``None`` for
    data-free methods), batches/samples read, seconds. Randomness is drawn from generators seeded
    with ``seed``; the caller's global RNG state is left as it was.
    """
    fn = METHODS.get(method)
    facts = METHODS.meta(method)
    if not isinstance(sparsity, int | float) or not 0.0 <= float(sparsity) < 1.0:
        raise ConfigError(f"sparsity must be a number in [0, 1), got {sparsity!r}")
    if facts.needs_data and loader_factory is None:
        raise ConfigError(
            f"PaI method {method!r} needs training data: pass loader_factory "
            "(a function batch_size -> iterable of shuffled (inputs, targets) batches)"
        )
    dev = _device_of(model, device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {dev} requested but CUDA is not available")
    ctx = PaiContext(
        seed=int(seed),
        device=dev,
        params=dict(params or {}),
        loader_factory=loader_factory,
        method=method,
    )
    work = copy.deepcopy(model).to(dev)
    # the inference network only: auxiliary heads (layers an eval-mode forward never runs) are
    # taken out of the working copy, kept dense and left out of the budget (listed in the info)
    outside = _drop_auxiliary(work, ctx)
    fork = (
        [dev.index if dev.index is not None else torch.cuda.current_device()]
        if dev.type == "cuda"
        else []
    )
    t0 = time.perf_counter()
    with deterministic(), torch.random.fork_rng(devices=fork):
        torch.manual_seed(int(seed))
        masks = fn(work, 1.0 - float(sparsity), ctx)
    seconds = time.perf_counter() - t0
    del work

    expected = {n: tuple(p.shape) for n, p in prunable_parameters(model) if n not in outside}
    if list(masks) != list(expected) or any(
        tuple(masks[n].shape) != s for n, s in expected.items()
    ):
        raise RuntimeError(f"PaI method {method!r} returned masks that do not match the model")
    masks = {
        n: masks[n].to("cpu", torch.bool) if n in masks else torch.ones(p.shape, dtype=torch.bool)
        for n, p in prunable_parameters(model)
    }
    info = mask_info(masks, outside)
    if info["emptied_layers"]:
        log.warning(
            "%s at sparsity %g emptied %d layer(s) entirely: %s",
            method,
            sparsity,
            len(info["emptied_layers"]),
            ", ".join(info["emptied_layers"]),
        )
    if outside:
        log.info(
            "%d weight tensor(s) outside the inference network kept dense, not in the budget: %s",
            len(outside),
            ", ".join(outside),
        )
    info = {
        "method": method,
        "sparsity": float(sparsity),
        "seed": int(seed),
        "params": ctx.params,
        **info,
        "fingerprint": ctx.fingerprint(),
        "data_batches": ctx.n_batches,
        "data_samples": ctx.n_samples,
        "device": str(dev),
        "seconds": seconds,
    }
    return masks, info


def _drop_auxiliary(work: nn.Module, ctx: PaiContext) -> list[str]:
    """Take the layers an eval-mode forward never runs out of the working copy (see
    :func:`snntopo.models.common.drop_outside_inference`); the input shape is the method's
    ``input_shape``, else the model's, else that of the loader's first batch, else (C, 32, 32).
    A model that does not run on that shape is left whole (every weight in the budget)."""
    if "input_shape" in ctx.params or getattr(work, "input_shape", None) is not None:
        shape = input_shape_of(work, ctx)
    else:
        first = next(iter(ctx.loader_factory(1)), None) if ctx.loader_factory else None
        shape = tuple(first[0].shape[1:]) if first is not None else input_shape_of(work, ctx)
    try:
        return drop_outside_inference(work, shape)
    except RuntimeError as exc:
        log.debug("no eval-mode forward on %s (%s): every weight is in the budget", shape, exc)
        return []


def mask_info(masks: dict[str, torch.Tensor], outside: Any = ()) -> dict[str, Any]:
    """Budget summary of a mask: realised global sparsity, counts, per-layer densities, empties.

    Weights ``outside`` the inference network (auxiliary heads, kept dense) are not in the budget:
    the counts and the realised sparsity leave them out, and they are listed."""
    outside = [n for n in masks if n in set(outside)]
    inside = [m for n, m in masks.items() if n not in outside]
    total = sum(m.numel() for m in inside)
    kept = sum(int(m.sum()) for m in inside)
    dens = {n: (int(m.sum()) / m.numel() if m.numel() else math.nan) for n, m in masks.items()}
    return {
        "realised_sparsity": 1.0 - kept / total if total else 0.0,
        "total_weights": total,
        "kept_weights": kept,
        "densities": dens,
        "emptied_layers": [n for n, m in masks.items() if m.numel() and not bool(m.any())],
        **({"outside_inference": outside} if outside else {}),
    }
