"""SNIP: connection sensitivity |w * dL/dw| on one batch (Lee et al. 2019)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DataError
from ..models import main_output, prunable_parameters
from .base import Masks, PaiContext, global_topk


def scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """|dL/dm| at m = 1 for a multiplicative mask m on each weight, which equals |w * dL/dw|.

    The model is in training mode (BatchNorm uses batch statistics), as in the reference.
    """
    model.train()
    params = prunable_parameters(model)
    model.zero_grad(set_to_none=True)
    loss = F.cross_entropy(main_output(model(x)), y)
    grads = torch.autograd.grad(loss, [p for _, p in params])
    return {name: (p.detach() * g).abs() for (name, p), g in zip(params, grads, strict=True)}


def compute(model: nn.Module, density: float, ctx: PaiContext) -> Masks:
    """Score one shuffled training batch (``params['batch_size']``, default 128); keep the top
    ``round(N d)`` scores globally.

    Differences from the reference: the kept count is ``round(N d)`` rather than ``int(N d)`` and
    ties at the threshold are broken by index (the reference keeps every score >= threshold, so it
    can keep more than asked); the score normalisation by the sum is skipped (it cannot change the
    ranking).
    """
    bs = int(ctx.param("batch_size", 128))
    batch = next(iter(ctx.batches(bs)), None)
    if batch is None:
        raise DataError("SNIP: the loader yielded no batch")
    return global_topk(scores(model, *batch), density)
