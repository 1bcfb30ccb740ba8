"""SynFlow: iterative synaptic-flow pruning without data (Tanaka et al. 2020)."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..models import main_output, prunable_parameters
from .base import Masks, PaiContext, global_topk, input_shape_of


def compute(model: nn.Module, density: float, ctx: PaiContext) -> Masks:
    """100 rounds (``params['rounds']``) of score-and-prune with an exponential schedule.

    On the (already copied) model: BatchNorm in eval mode, every floating parameter and buffer
    replaced by its absolute value (the |theta| linearisation), input = all-ones of the model's input
    shape (``params['input_shape']``, default (C, 32, 32)), ``R = sum(f(1))``, score
    ``|theta * dR/dtheta|`` with the current mask applied. Round ``r`` keeps
    ``round(N d^(r/rounds))`` weights; pruned weights stay pruned. No data is read, so the mask is
    the same whatever loader is offered.

    Differences from the reference:

    * Biases are not in the pruning pool (the reference prunes them jointly with the weights, so
      its weight sparsity is off the request); they are still |.|'d and take part in the flow.
    * Scoring runs in float64: the product of |theta| along 20-30 layers overflows float32 on
      Wide-ResNet-28-2 (scores become inf/NaN); float64 keeps the ranking exact where float32 is
      finite and meaningful where it is not.
    * Exactly ``round(N d)`` weights are kept after the last round, ties broken by index.
    """
    rounds = int(ctx.param("rounds", 100))
    model.eval()
    model.double()
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            if t.is_floating_point():
                t.abs_()
    params = prunable_parameters(model)
    names = [n for n, _ in params]
    weights = [p for _, p in params]
    original = [w.detach().clone() for w in weights]
    for p in model.parameters():
        p.requires_grad_(False)
    for w in weights:
        w.requires_grad_(True)
    masks = {n: torch.ones_like(w, dtype=torch.bool) for n, w in zip(names, weights, strict=True)}
    shape = input_shape_of(model, ctx)
    x = torch.ones((1, *shape), dtype=torch.float64, device=ctx.device)
    try:
        with torch.no_grad():
            model(x)
    except RuntimeError as exc:
        raise ConfigError(
            f"SynFlow: the model does not accept an input of shape {list(shape)} ({exc}); "
            "pass params={'input_shape': [C, H, W]}"
        ) from None
    for r in range(1, rounds + 1):
        dev_masks = [masks[n].to(ctx.device) for n in names]
        with torch.no_grad():
            for w, w0, m in zip(weights, original, dev_masks, strict=True):
                w.copy_(w0 * m)
        out = main_output(model(x)).sum()
        grads = torch.autograd.grad(out, weights)
        scores = {}
        for n, w, g, m in zip(names, weights, grads, dev_masks, strict=True):
            s = (w.detach() * g).abs()
            scores[n] = s.masked_fill(~m, -torch.inf)
        masks = global_topk(scores, density ** (r / rounds))
    return masks
