"""Architecture registry. Adding an architecture: one module with a constructor taking
``num_classes, in_channels, input_size, width`` plus one ``MODELS.register`` line below."""

from __future__ import annotations

import torch
from torch import nn

from ..registry import Registry
from .common import init_weights, prunable_parameters, scaled
from .conv6 import Conv6
from .resnet import resnet20, resnet32
from .wide_resnet import wrn28_2

MODELS: Registry = Registry("architecture")
MODELS.register("conv6", Conv6, paper="CONV-6")
MODELS.register("resnet20", resnet20, paper="Resnet-20")
MODELS.register("resnet32", resnet32, paper="Resnet-32")
MODELS.register("wrn28_2", wrn28_2, paper="Wide-Resnet-28-2")


def build_model(
    arch: str,
    num_classes: int = 10,
    in_channels: int = 3,
    input_size: int = 32,
    width: float = 1.0,
    seed: int | None = None,
) -> nn.Module:
    """Construct ``arch`` and initialise it as the paper does; ``seed`` makes the init reproducible
    without touching the global RNG state of the caller."""
    factory = MODELS.get(arch)

    def make() -> nn.Module:
        kwargs = dict(num_classes=num_classes, in_channels=in_channels, input_size=input_size)
        return init_weights(factory(width=width, **kwargs))

    if seed is None:
        return make()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


__all__ = ["MODELS", "build_model", "init_weights", "prunable_parameters", "scaled"]
