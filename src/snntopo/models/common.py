"""Helpers shared by the architectures: width scaling, initialisation, prunable parameters."""

from __future__ import annotations

import torch
from torch import nn


def scaled(channels: int, width: float) -> int:
    """Channel count under a width multiplier (the demo shrinks models; 1.0 is the paper)."""
    return max(1, int(round(channels * width)))


def init_weights(model: nn.Module) -> nn.Module:
    """The paper's initialisation: Kaiming normal (fan_in, ReLU gain) on every conv/linear weight,
    zero biases. BatchNorm keeps PyTorch's defaults (weight 1, bias 0)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


def prunable_parameters(model: nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """Every conv and linear *weight*, in module order: the tensors a PaI method may prune.

    Biases and BatchNorm parameters are never pruned (the paper's setting).
    """
    out = []
    for mod_name, m in model.named_modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            out.append((f"{mod_name}.weight" if mod_name else "weight", m.weight))
    return out
