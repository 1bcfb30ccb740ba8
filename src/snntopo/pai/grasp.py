"""GraSP: gradient signal preservation, score ``-w * Hg`` (Wang et al. 2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models import main_output, prunable_parameters
from .base import (
    Masks,
    PaiContext,
    global_topk,
    need_samples_per_class,
    num_classes_of,
    twice_differentiable,
)


def scores(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, temperature: float = 200.0
) -> dict[str, torch.Tensor]:
    """``-w * (H g)`` per weight, with the data split into two halves as in the reference.

    ``g`` is the (detached) gradient of the tempered loss summed over both halves; ``H g`` is the
    Hessian-gradient product obtained by double backprop of ``g . grad`` on each half, summed.
    """
    model.train()
    params = prunable_parameters(model)
    weights = [p for _, p in params]
    half = x.shape[0] // 2
    parts = [(x[:half], y[:half]), (x[half:], y[half:])]
    g = [torch.zeros_like(w) for w in weights]
    for xb, yb in parts:
        loss = F.cross_entropy(main_output(model(xb)) / temperature, yb)
        for acc, gi in zip(g, torch.autograd.grad(loss, weights), strict=True):
            acc.add_(gi)
    hg = [torch.zeros_like(w) for w in weights]
    for xb, yb in parts:
        loss = F.cross_entropy(main_output(model(xb)) / temperature, yb)
        gf = torch.autograd.grad(loss, weights, create_graph=True)
        z = sum((gw * gfi).sum() for gw, gfi in zip(g, gf, strict=True))
        for acc, h in zip(hg, torch.autograd.grad(z, weights), strict=True):
            acc.add_(h)
    return {name: -(w.detach() * h) for (name, w), h in zip(params, hg, strict=True)}


def compute(model: nn.Module, density: float, ctx: PaiContext) -> Masks:
    """Collect ``samples_per_class`` (default 25) images per class from shuffled batches
    (``batch_size``, default 128), score with temperature ``T`` (default 200), and *remove* the
    highest scores: keep the ``round(N d)`` lowest.

    Differences from the reference:

    * No re-initialisation: the reference re-draws all conv/linear weights before scoring, so its
      scores belong to a different network than the one kept and trained. We score the weights we
      keep (the model passed in, on a copy).
    * Hardsigmoid modules (SE gates of MobileNetV3) are scored as ``relu6(x + 3) / 6``, the same
      function, because torch cannot differentiate ``hardsigmoid``'s backward (Hessian product).
    * The kept count is exactly ``round(N d)`` (the reference keeps every score <= threshold, so
      ties can keep extra weights); the normalisation by ``|sum|`` is skipped (positive scale, no
      effect on the ranking). Runs on the model's device instead of a hard-coded CUDA device.
    """
    per_class = int(ctx.param("samples_per_class", 25))
    temperature = float(ctx.param("temperature", 200.0))
    bs = int(ctx.param("batch_size", 128))
    x, y = need_samples_per_class(ctx, bs, num_classes_of(model), per_class)
    twice_differentiable(model)  # the model is compute_mask's copy
    return global_topk(scores(model, x, y, temperature), density, largest=False)
