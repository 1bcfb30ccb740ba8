"""ERK: Erdős–Rényi-Kernel layer-wise densities (Evci et al. 2020, RigL)."""

from __future__ import annotations

import math

from torch import nn

from .base import Masks, PaiContext, apportion, erk_densities, n_keep, random_layer_masks, shapes_of


def erk_raw(shape: tuple[int, ...]) -> float:
    """``sum(shape) / prod(shape)``: (c_out + c_in + kh + kw) / (c_out c_in kh kw) for a conv."""
    return sum(int(v) for v in shape) / math.prod(int(v) for v in shape)


def compute(model: nn.Module, density: float, ctx: PaiContext) -> Masks:
    """Densities ``eps * raw_l`` solved so the total is ``d N``, layers over 1 made dense iteratively.

    Differences from the reference (``core.py`` mode 'ERK'): exact per-layer counts (largest
    remainder of ``d_l n_l``, summing to exactly ``round(N d)``) from a seeded CPU generator instead
    of Bernoulli draws forced onto CUDA. The density solve is the same RigL rule.
    """
    shapes = shapes_of(model)
    counts = {k: math.prod(s) for k, s in shapes.items()}
    raw = {k: erk_raw(tuple(s)) for k, s in shapes.items()}
    dens = erk_densities(raw, counts, density)
    keep = apportion(counts, dens, n_keep(sum(counts.values()), density))
    return random_layer_masks(shapes, keep, ctx.generator())
