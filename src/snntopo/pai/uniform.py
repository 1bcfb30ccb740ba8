"""Uniform: global random pruning over all conv and linear weights."""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import Masks, PaiContext, n_keep, shapes_of, split_flat


def compute(model: nn.Module, density: float, ctx: PaiContext) -> Masks:
    """Keep ``round(N d)`` weights chosen uniformly at random from the pooled conv/linear weights.

    Every layer therefore gets density ~d in expectation (the paper's "uniform").

    Differences from the reference (``torch.nn.utils.prune`` RandomUnstructured, global):
    biases are *not* pooled into the budget (the reference pools them, so its weight sparsity is
    slightly off the request); the draw comes from a CPU generator seeded with ``seed`` so the
    mask is identical on CPU and CUDA.
    """
    shapes = shapes_of(model)
    total = sum(math.prod(s) for s in shapes.values())
    k = n_keep(total, density)
    flat = torch.zeros(total, dtype=torch.bool)
    flat[torch.randperm(total, generator=ctx.generator())[:k]] = True
    return split_flat(flat, shapes)
