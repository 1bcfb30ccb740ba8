"""The keys of a grid point, as every per-network artifact records them (a module of its own so
that stages share the type without sharing code digests)."""

from __future__ import annotations

from typing import TypedDict


class NetworkKeys(TypedDict):
    """The grid point a graph or metric artifact belongs to."""

    dataset: str
    arch: str
    method: str
    sparsity: float
    seed: int
