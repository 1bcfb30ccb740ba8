"""Our canonical names and the paper's spellings, derived from the registries in one place.

The reference tables spell architectures and datasets as ``Resnet-20`` / ``CIFAR-10``; the config,
the paths and the CLI use ``resnet20`` / ``cifar10``. The paper's spelling of each registered thing
is its registry fact ``paper``; the maps below are built from those facts (plus the few alternative
spellings the published files use), so nothing else in the package hard-codes either spelling.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# the grid point's names live in snntopo.gridpoint; re-exported for the tables and the analysis
from .gridpoint import DENSE as DENSE
from .gridpoint import KEYS as KEYS
from .gridpoint import sparsity_tag as sparsity_tag

if TYPE_CHECKING:
    from .registry import Registry


RAMANUJAN_METRICS = (
    "degree_bound",
    "iterative_spectral_gap",
    "iterative_degree_bound",
    "weighted_spectral_gap",
)
RAMANUJAN_LAYER_COLUMNS = (
    "encoding",
    "layer_id",
    "layer_name",
    "layer_density",
    *RAMANUJAN_METRICS,
)

#: spellings the published files use beside the registered ``paper`` one
_ALIASES = {"datasets": {"tiny-imagenet": "tinyimagenet", "tinyimagenet": "tinyimagenet"}}


def registry(kind: str) -> Registry:
    """The registry of a family by config key (all torch-free: importing one never imports
    torch)."""
    if kind == "datasets":
        from .data import DATASETS as reg
    elif kind == "architectures":
        from .models import MODELS as reg
    elif kind == "methods":
        from .pai import METHODS as reg
    elif kind == "encodings":
        from .encode import ENCODINGS as reg
    elif kind == "families":
        from .metrics import FAMILIES as reg
    else:  # pragma: no cover - programming error
        raise KeyError(kind)
    return reg


def from_paper(kind: str) -> dict[str, str]:
    """``{paper spelling: our name}`` for a registry (``datasets``, ``architectures``, ``methods``,
    ``encodings``), from each entry's ``paper`` fact."""
    reg = registry(kind)
    out = {reg.fact(n, "paper"): n for n in reg.names() if reg.fact(n, "paper")}
    out.update(_ALIASES.get(kind, {}))
    return out


def encoding_names(kind: str | None = None) -> list[str]:
    """Registered encodings, optionally only those of one ``kind`` (``multipartite`` or
    ``bipartite``)."""
    from .encode import ENCODINGS

    return [e for e in ENCODINGS.names() if kind is None or ENCODINGS.fact(e, "kind") == kind]


def __getattr__(name: str) -> Any:
    """The paper-spelling maps, computed from the registries on first use."""
    kinds = {
        "ARCH_FROM_PAPER": "architectures",
        "DATASET_FROM_PAPER": "datasets",
        "METHOD_FROM_PAPER": "methods",
    }
    if name in kinds:
        return from_paper(kinds[name])
    if name == "ENCODINGS":
        return tuple(encoding_names())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
