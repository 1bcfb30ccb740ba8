"""Pruning-at-initialization methods: the registry (torch-free) and ``compute_mask``.

Adding a method: one module exposing ``compute(model, density, ctx) -> masks`` (see ``base``) plus
one ``METHODS.register`` line below. The facts on each entry (:class:`MethodFacts`) drive
everything else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..registry import Registry, lazy_attributes


@dataclass(frozen=True)
class MethodFacts:
    """The registry facts of a PaI method (one default each)."""

    needs_data: bool = False
    """The method reads training batches (the workflow gives its mask job the data set, the CLI
    builds a loader)."""
    wants_gpu: bool = False
    """It runs forward/backward passes worth a GPU on a cluster (mask jobs request one)."""
    paper: str | None = None
    """Its spelling in the authors' tables; ``None``: not in the paper."""
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    """JSON schema of each of its settings under the config's ``pai.<method>`` (merged into the
    config schema; ``snntopo mask --param`` is checked against it)."""


METHODS: Registry = Registry("PaI method", MethodFacts)
METHODS.register(
    "uniform", "snntopo.pai.uniform:compute", needs_data=False, wants_gpu=False, paper="uniform"
)
METHODS.register(
    "er",
    "snntopo.pai.er:compute",
    needs_data=False,
    wants_gpu=False,
    paper="er",
    # true: the authors' ER (kernel dims in the raw densities, i.e. ERK's), as in their tables
    params={"include_kernel": {"type": "boolean", "default": False}},
)
METHODS.register("erk", "snntopo.pai.erk:compute", needs_data=False, wants_gpu=False, paper="erk")
METHODS.register(
    "snip",
    "snntopo.pai.snip:compute",
    needs_data=True,
    wants_gpu=True,
    paper="snip",
    params={"batch_size": {"type": "integer", "minimum": 1, "default": 128}},
)
METHODS.register(
    "grasp",
    "snntopo.pai.grasp:compute",
    needs_data=True,
    wants_gpu=True,
    paper="grasp",
    params={
        # the shuffled batches scanned for samples_per_class images of every class
        "batch_size": {"type": "integer", "minimum": 1, "default": 128},
        "samples_per_class": {"type": "integer", "minimum": 1, "default": 25},
        "temperature": {"type": "number", "exclusiveMinimum": 0, "default": 200},
    },
)
METHODS.register(
    "synflow",
    "snntopo.pai.synflow:compute",
    needs_data=False,
    wants_gpu=True,
    paper="synflow",
    params={"rounds": {"type": "integer", "minimum": 1, "default": 100}},
)
METHODS.register(
    "prospr",
    "snntopo.pai.prospr:compute",
    needs_data=True,
    wants_gpu=True,
    paper="prospr",
    params={
        "inner_steps": {"type": "integer", "minimum": 1, "default": 3},
        "inner_lr": {"type": "number", "exclusiveMinimum": 0, "default": 0.5},
        "momentum": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.9},
        "batch_size": {"type": "integer", "minimum": 1, "default": 512},
    },
)


__getattr__ = lazy_attributes(__name__, {"compute_mask": "compute", "mask_info": "compute"})


def params_schema(method: str) -> dict[str, Any]:
    """JSON schema of ``pai.<method>`` (an object with the method's registered settings)."""
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": dict(METHODS.fact(method, "params")),
    }


__all__ = ["METHODS", "MethodFacts", "compute_mask", "mask_info", "params_schema"]
