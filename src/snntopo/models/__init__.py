"""Architecture registry (torch-free; the constructors load on first use).

Adding an architecture: one module with a constructor taking ``num_classes, in_channels,
input_size, width`` plus one ``MODELS.register`` line below. The facts on each entry are the
fields of :class:`ModelFacts`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..registry import Registry, lazy_attributes
from . import external


@dataclass(frozen=True)
class ModelFacts:
    """The registry facts of an architecture (one default each)."""

    paper: str | None = None
    """The spelling in the authors' tables (``Resnet-20``); ``None``: not in the paper."""
    training: dict[str, Any] = field(default_factory=dict)
    """Recipe defaults of this architecture, applied over the config's ``training:`` mapping and
    under its ``overrides`` (the paper trains WRN-28-2 with weight decay 5e-4)."""
    runtime_min_per_epoch: float = 1.0
    """Minutes per CIFAR epoch on one modern GPU (cluster runtime requests); also the estimate for
    an architecture outside the registry (an external one)."""
    dense_edges: dict[str, int] | None = None
    """Edges of the dense network's encodings at width 1 on a 32x32 input, ``weights`` (one per
    weight: the BGEs) and ``unrolled`` (one per conv tap and output position: the MGE). Planning
    estimates a job's memory from them before any layer spec exists, without torch; a test checks
    them against the layer spec of the real model. ``None``: unknown (the planner's fallback)."""


MODELS: Registry = Registry("architecture", ModelFacts)
MODELS.register(
    "conv6",
    "snntopo.models.conv6:Conv6",
    paper="CONV-6",
    runtime_min_per_epoch=0.3,
    dense_edges={"weights": 2_261_184, "unrolled": 270_273_024},
)
MODELS.register(
    "resnet20",
    "snntopo.models.resnet:resnet20",
    paper="Resnet-20",
    runtime_min_per_epoch=0.25,
    dense_edges={"weights": 270_896, "unrolled": 40_853_504},
)
MODELS.register(
    "resnet32",
    "snntopo.models.resnet:resnet32",
    paper="Resnet-32",
    runtime_min_per_epoch=0.4,
    dense_edges={"weights": 464_432, "unrolled": 69_165_056},
)
MODELS.register(
    "wrn28_2",
    "snntopo.models.wide_resnet:wrn28_2",
    paper="Wide-Resnet-28-2",
    training={"weight_decay": 5e-4},
    runtime_min_per_epoch=0.8,
    dense_edges={"weights": 1_463_984, "unrolled": 214_433_792},
)

_LAZY = {
    "build_model": "build",
    "drop_outside_inference": "common",
    "init_weights": "common",
    "main_output": "common",
    "prunable_parameters": "common",
    "scaled": "common",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


def arch_name(name: str) -> str:
    """argparse type / checker for an architecture: a registered name or an external form
    (torch-free)."""
    if external.is_external(name):
        return external.validate_name(name)
    MODELS.meta(name)  # a ConfigError naming the allowed ones; never imports the model
    return name


def arch_facts(arch: str) -> ModelFacts:
    """The registry facts of ``arch`` (no torch); the defaults for an architecture outside the
    registry (an external one)."""
    return MODELS.meta(arch) if arch in MODELS else MODELS.defaults()


__all__ = ["MODELS", "ModelFacts", "arch_facts", "arch_name", *_LAZY]
