"""ER: Erdős–Rényi layer-wise densities (Mocanu et al. 2018; Evci et al. 2020's capped solve)."""

from __future__ import annotations

from torch import nn

from .base import Masks, PaiContext, layerwise_random
from .erk import erk_raw


def er_raw(shape: tuple[int, ...], include_kernel: bool = False) -> float:
    """Unnormalised ER density of a weight of ``shape`` = (out, in, kh, kw) or (out, in).

    Standard ER: ``(n_in + n_out) / (n_in * n_out)`` over channels/features only — the density of an
    Erdős–Rényi bipartite graph between input and output units. With ``include_kernel`` the kernel
    dims join the sum and product (the reference's behaviour, i.e. ERK).
    """
    if include_kernel:
        return erk_raw(shape)
    n_out, n_in = int(shape[0]), int(shape[1])
    return (n_in + n_out) / (n_in * n_out)


def compute(model: nn.Module, density: float, ctx: PaiContext) -> Masks:
    """Layer densities ``eps * (c_in + c_out) / (c_in c_out)``, capped at 1, then per-layer random.

    Differences from the reference (sparselearning ``core.py`` mode 'ER'):

    * The reference's 'ER' sums *and* multiplies the kernel dims too, which makes it ERK without a
      cap. We implement the standard ER rule (Mocanu et al.; RigL's ``erdos_renyi``) over channels
      only, so ER and ERK are genuinely different methods. ``params={'include_kernel': True}``
      restores the reference's raw densities (still capped).
    * Densities are capped at 1 with the iterative redistribution of ERK (the reference lets
      ``p > 1`` through, leaving the network under budget); ``eps`` is solved in closed form instead
      of a tolerance-based bisection.
    * Each layer keeps an exact count (largest-remainder rounding of ``d_l n_l``, summing to
      ``round(N d)``) drawn from a seeded CPU generator, instead of Bernoulli draws on a forced
      CUDA device.
    """
    inc = bool(ctx.param("include_kernel", False))
    return layerwise_random(model, density, ctx, lambda shape: er_raw(shape, inc))
