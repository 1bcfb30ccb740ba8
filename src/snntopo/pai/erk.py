"""ERK: Erdős–Rényi-Kernel layer-wise densities (Evci et al. 2020, RigL)."""

from __future__ import annotations

import math

from torch import nn

from .base import Masks, PaiContext, layerwise_random


def erk_raw(shape: tuple[int, ...]) -> float:
    """``sum(shape) / prod(shape)``: (c_out + c_in + kh + kw) / (c_out c_in kh kw) for a conv."""
    return sum(int(v) for v in shape) / math.prod(int(v) for v in shape)


def compute(model: nn.Module, density: float, ctx: PaiContext) -> Masks:
    """Densities ``eps * raw_l`` solved so the total is ``d N``, layers over 1 made dense iteratively.

    Differences from the reference (``core.py`` mode 'ERK'): exact per-layer counts (largest
    remainder of ``d_l n_l``, summing to exactly ``round(N d)``) from a seeded CPU generator instead
    of Bernoulli draws forced onto CUDA. The density solve is the same RigL rule.
    """
    return layerwise_random(model, density, ctx, erk_raw)
