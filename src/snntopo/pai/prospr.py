"""ProsPr: prospect pruning, meta-gradients through the first steps of training
(Alizadeh et al. 2022)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..errors import DataError
from ..models import main_output, prunable_parameters
from .base import Masks, PaiContext, global_topk, twice_differentiable


def _stream(ctx: PaiContext, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless batches: when one pass of the loader ends, ask the factory for a new one."""
    while True:
        got = False
        for batch in ctx.batches(batch_size):
            got = True
            yield batch
        if not got:
            raise DataError("ProsPr: the loader yielded no batch")


def scores(
    model: nn.Module,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    steps: int = 3,
    lr: float = 0.5,
    momentum: float = 0.9,
) -> dict[str, torch.Tensor]:
    """``|dL(theta_K)/dm|`` at ``m = 1``: ``theta_0 = w * m`` for prunable weights, ``K`` SGD steps
    (momentum, no weight decay) on *all* parameters, each on a fresh batch, then the loss on one
    more batch, differentiated through the whole trajectory (full second order)."""
    model.train()
    prunable = dict(prunable_parameters(model))
    masks = {n: torch.ones_like(p, requires_grad=True) for n, p in prunable.items()}
    fast: dict[str, torch.Tensor] = {}
    for n, p in model.named_parameters():
        if n in masks:
            fast[n] = p.detach() * masks[n]
        else:
            fast[n] = p.detach().clone().requires_grad_(True)
    bufs: dict[str, torch.Tensor] = {}
    for _ in range(steps):
        x, y = next(batches)
        loss = F.cross_entropy(main_output(functional_call(model, fast, (x,))), y)
        grads = torch.autograd.grad(loss, list(fast.values()), create_graph=True)
        new: dict[str, torch.Tensor] = {}
        for (n, p), g in zip(fast.items(), grads, strict=True):
            bufs[n] = g if n not in bufs else bufs[n] * momentum + g
            new[n] = p - lr * bufs[n]
        fast = new
    x, y = next(batches)
    loss = F.cross_entropy(main_output(functional_call(model, fast, (x,))), y)
    meta = torch.autograd.grad(loss, list(masks.values()))
    return {n: g.abs() for n, g in zip(masks, meta, strict=True)}


def compute(model: nn.Module, density: float, ctx: PaiContext) -> Masks:
    """Keep the ``round(N d)`` largest meta-gradient magnitudes globally.

    Parameters (the registered ``pai.prospr`` settings): ``inner_steps`` (3), ``inner_lr`` (0.5),
    ``momentum`` (0.9), ``batch_size`` (512).

    Differences from the reference:

    * Batches come from the caller's seeded loader (fingerprinted) instead of a second, unseeded
      CIFAR loader the method builds itself; when a pass ends the factory is called again (the
      reference calls ``iter`` on the data set name and crashes).
    * The first momentum buffer is not detached: the reference (copying ``torch.optim.SGD``)
      stores ``clone(grad).detach()``, which silently drops the second-order path through the
      first gradient for every later step; the method differentiates the whole trajectory.
    * Runs on the model's device (the reference moves the model to the CPU).
    * Hardsigmoid modules are differentiated as ``relu6(x + 3) / 6`` (the same function; torch
      has no double backward for hardsigmoid).
    * Keeps ``round(N d)`` rather than ``ceil(N d)``, ties broken by index.
    """
    bs = int(ctx.param("batch_size", 512))
    stream = _stream(ctx, bs)
    twice_differentiable(model)  # the model is compute_mask's copy; hardsigmoid -> relu6 form
    sc = scores(
        model,
        stream,
        steps=int(ctx.param("inner_steps", 3)),
        lr=float(ctx.param("inner_lr", 0.5)),
        momentum=float(ctx.param("momentum", 0.9)),
    )
    return global_topk(sc, density)
