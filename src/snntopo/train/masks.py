"""Masks during training: pruned weights held at exactly zero (gradients masked before the step,
weights re-masked after it; see the package docstring)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..errors import MaskError
from ..models import prunable_parameters


def prepare_masks(model: nn.Module, masks: Mapping[str, Any] | None) -> dict[str, torch.Tensor]:
    """Validate masks against the model's prunable parameters; return them as bool CPU tensors.

    Keys are parameter names (``prunable_parameters``). A prunable parameter without a mask stays
    dense; an unknown key or a shape mismatch is a ``MaskError`` naming the key.
    """
    if not masks:
        return {}
    params = dict(prunable_parameters(model))
    out: dict[str, torch.Tensor] = {}
    for name, m in masks.items():
        if name not in params:
            raise MaskError(
                f"mask key {name!r} is not a prunable parameter of {type(model).__name__} "
                f"(expected keys like {list(params)[:3]})"
            )
        t = torch.as_tensor(m)
        if tuple(t.shape) != tuple(params[name].shape):
            raise MaskError(
                f"mask {name!r} has shape {tuple(t.shape)}, parameter has "
                f"{tuple(params[name].shape)}"
            )
        out[name] = t.detach().to("cpu", torch.bool)
    return out


def _device_masks(
    model: nn.Module, masks: Mapping[str, torch.Tensor]
) -> list[tuple[nn.Parameter, torch.Tensor]]:
    """(parameter, multiplicative mask) pairs, masks in the parameter's dtype/device/layout."""
    params = dict(model.named_parameters())
    pairs = []
    for name, m in masks.items():
        p = params[name]
        mf = m.to(device=p.device, dtype=p.dtype)
        if p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last):
            mf = mf.contiguous(memory_format=torch.channels_last)
        pairs.append((p, mf))
    return pairs


@torch.no_grad()
def apply_masks(pairs: list[tuple[nn.Parameter, torch.Tensor]]) -> None:
    """Zero the pruned weights in place."""
    for p, m in pairs:
        p.mul_(m)


@torch.no_grad()
def mask_gradients(pairs: list[tuple[nn.Parameter, torch.Tensor]]) -> None:
    """Zero the gradients of pruned weights in place (before the optimizer sees them)."""
    for p, m in pairs:
        if p.grad is not None:
            p.grad.mul_(m)
