"""Building a registered architecture with the paper's initialisation."""

from __future__ import annotations

import torch
from torch import nn

from . import MODELS, external
from .common import init_weights


def build_model(
    arch: str,
    num_classes: int = 10,
    in_channels: int = 3,
    input_size: int = 32,
    width: float = 1.0,
    seed: int | None = None,
    kwargs: dict | None = None,
) -> nn.Module:
    """Construct ``arch`` and initialise it as the paper does; ``seed`` makes the init reproducible
    without touching the global RNG state of the caller.

    ``arch`` may also be ``torchvision:<name>`` or ``module:<path>:<callable>`` (or their path
    slugs), see :mod:`snntopo.models.external`: those keep their own initialisation, ignore
    ``width`` and take ``kwargs`` as extra constructor arguments.
    """
    if external.is_external(arch):

        def make() -> nn.Module:
            return external.build(
                external.unslug(arch), num_classes, in_channels, input_size, kwargs
            )
    else:
        factory = MODELS.get(arch)

        def make() -> nn.Module:
            kw = dict(num_classes=num_classes, in_channels=in_channels, input_size=input_size)
            return init_weights(factory(width=width, **kw))

    if seed is None:
        return make()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()
