"""Metric families over stored graphs, and the driver that turns one family into a metric artifact.

A *family* is a function ``(graph, params) -> FamilyResult`` computing a handful of related raw
metrics on one graph. :func:`compute_family` applies it to the whole graph (the MGE: network-level
values) or to every bipartite layer of a layered encoding (the BGEs: one row per layer plus
``mean_<metric>`` aggregates), adds the paper's normalised value next to every raw value (the family's
registry fact ``normalisers``), and records why any value is NaN.

Why one registry: the CLI choices, the config schema and the workflow read the family names from
:data:`FAMILIES`, so adding a family is one new module plus one ``FAMILIES.register`` line below.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..encode.graph import Graph
from ..errors import ConfigError
from ..io import provenance
from ..registry import Registry
from .base import DEFAULT_PARAMS, FamilyFn, FamilyResult, normalised

#: the encoding kinds a family applies to unless it says otherwise
_ALL = ("multipartite", "bipartite")


@dataclass(frozen=True)
class FamilyFacts:
    """The registry facts of a metric family (one default each)."""

    kinds: tuple[Literal["multipartite", "bipartite"], ...] = _ALL
    """The encoding kinds it applies to (see ``snntopo.encode.ENCODINGS``); ignored when
    ``encodings`` names them explicitly."""
    encodings: tuple[str, ...] | None = None
    """The encodings it applies to, by name (over ``kinds``); ``None``: those of ``kinds``."""
    layered: bool = False
    """It needs the bipartite layers of a layered encoding."""
    metrics: tuple[str, ...] = ()
    """The raw metrics it writes, in the order the analysis plots them."""
    normalisers: dict[str, Literal["nodes", "edges"]] = field(default_factory=dict)
    """Metric -> ``"nodes"`` | ``"edges"``: the paper's scale (``<metric>_norm``)."""
    threads: int = 1
    """Cores its workflow job uses."""
    layer_params: dict[str, Any] = field(default_factory=dict)
    """Parameters that hold on the bipartite layers of a BGE, over the run's."""
    not_reproducible: dict[str, str] = field(default_factory=dict)
    """Metric -> why its published values cannot be reproduced from a mask at initialisation
    (:func:`reproducible_columns`, docs/reproduction.md)."""
    not_reproducible_layers: dict[str, str] = field(default_factory=dict)
    """The same for the published BGE tables only."""
    implicit: bool = False
    """It can run on an exact-mode MGE from the conv kernels plus the residual edges
    (:mod:`snntopo.metrics.implicit`, chosen by the metric parameter ``path``)."""


FAMILIES: Registry[FamilyFn] = Registry("metric family", FamilyFacts)

#: Why the |w|-weighted metrics are not reproducible (evidence: ``docs/reproduction.md``).
TRAINED_WEIGHTS = (
    "the published values are weighted by trained weights, not the masked initial weights: the "
    "mean |w| per edge they imply differs between data sets for the same masks (ResNet-20 "
    "uniform 0.9: 0.24 on CIFAR-10, 0.31 on CIFAR-100) and grows with sparsity (0.14 at 0.6, "
    "0.30 at 0.98), while masked Kaiming-normal initial weights give 0.08-0.18 per edge (by "
    "method), the same on every data set"
)
#: Why the published BGE tables' local columns are not reproducible.
BGE_LOCAL = (
    "the published per-layer sink/source/lost-edge columns come from code that is not in the "
    "published code (whose BGE path writes no local metrics) and subtract counts that are not "
    "the layer's (ResNet-20 ERK 0.98: source_nodes about -3317 per layer, sink_nodes 26 where a "
    "layer's right side has no out-edges by construction)"
)

# One line per family; its facts are the fields of FamilyFacts.
FAMILIES.register(
    "local",
    "snntopo.metrics.local:local_metrics",
    kinds=_ALL,
    implicit=True,
    metrics=("nodes", "edges", "sink_nodes", "source_nodes", "disc_nodes", "r_out", "r_in"),
    normalisers={
        "sink_nodes": "nodes",
        "source_nodes": "nodes",
        "disc_nodes": "nodes",
        "r_out": "edges",
        "r_in": "edges",
    },
    not_reproducible_layers={m: BGE_LOCAL for m in ("sink_nodes", "source_nodes", "r_out", "r_in")},
)
FAMILIES.register(
    "neighbourhood",
    "snntopo.metrics.neighbourhood:neighbourhood_metrics",
    kinds=_ALL,
    threads=2,  # its job uses two cores (threaded row chunks / matvec parts)
    metrics=("one_hop_nei", "two_hop_nei", "motif"),
    normalisers={"one_hop_nei": "edges", "two_hop_nei": "edges"},
    # on a BGE's layers ``motif`` is the published per-layer ``motifs_count`` (connected 3-sets)
    layer_params={"motif_definition": "connected_triples"},
)
FAMILIES.register(
    "strength",
    "snntopo.metrics.strength:strength_metrics",
    kinds=_ALL,
    implicit=True,
    metrics=("avg_node_strength", "k_core"),
    normalisers={"avg_node_strength": "edges", "k_core": "edges"},
    not_reproducible={"avg_node_strength": TRAINED_WEIGHTS},
)
FAMILIES.register(
    "global",
    "snntopo.metrics.connectivity:global_metrics",
    kinds=_ALL,
    metrics=("cut_edges", "cut_nodes", "no_connected_components", "mean_connected_components"),
    normalisers={
        "cut_edges": "edges",
        "cut_nodes": "edges",
        "mean_connected_components": "nodes",
    },
)
FAMILIES.register(
    "expansion",
    "snntopo.metrics.expansion:expansion_metrics",
    kinds=_ALL,
    threads=2,  # its job uses two cores (threaded row chunks / matvec parts)
    metrics=("spectral_gap", "spectral_radius"),
    not_reproducible={"spectral_gap": TRAINED_WEIGHTS, "spectral_radius": TRAINED_WEIGHTS},
)
FAMILIES.register(
    "ramanujan",
    "snntopo.metrics.ramanujan:ramanujan_metrics",
    kinds=("bipartite",),
    layered=True,
    metrics=(
        "degree_bound",
        "iterative_spectral_gap",
        "iterative_degree_bound",
        "weighted_spectral_gap",
    ),
    # the iterative gap is the mean weighted gap of the d-left-regular subgraphs
    not_reproducible={
        "iterative_spectral_gap": TRAINED_WEIGHTS,
        "weighted_spectral_gap": TRAINED_WEIGHTS,
    },
)


def family_encoding_names(family: str, encodings: list[str] | None = None) -> list[str]:
    """Registered encodings (or those of ``encodings``) that ``family`` applies to."""
    from ..encode import ENCODINGS

    facts = FAMILIES.meta(family)
    names = ENCODINGS.names() if encodings is None else list(encodings)
    if facts.encodings is not None:
        return [e for e in names if e in facts.encodings]
    return [e for e in names if e in ENCODINGS and ENCODINGS.fact(e, "kind") in facts.kinds]


__all__ = [
    "DEFAULT_PARAMS",
    "FAMILIES",
    "FamilyFacts",
    "FamilyResult",
    "applicable_families",
    "compute_family",
    "layer_density",
    "reproducible_columns",
    "unreproducible_columns",
]


def _published_keys(encoding: str) -> list[tuple[str, str, str]]:
    """(family, metric, network key on the published scale) of every metric the families write
    for ``encoding``. The published MGE table holds normalised values (``<m>_norm`` where the
    family normalises ``m``, else ``m``); the published BGE tables hold raw per-layer values, whose
    network value is their mean over layers (``mean_<m>``)."""
    from ..encode import ENCODINGS

    layered = encoding in ENCODINGS and ENCODINGS.fact(encoding, "kind") == "bipartite"
    out = []
    for fam in _families_for(encoding):
        facts = FAMILIES.meta(fam)
        for m in facts.metrics:
            norm = m in facts.normalisers
            out.append((fam, m, f"mean_{m}" if layered else f"{m}_norm" if norm else m))
    return out


def _families_for(encoding: str) -> list[str]:
    """The registered families that apply to ``encoding`` (a registered encoding name)."""
    from ..encode import ENCODINGS

    if encoding not in ENCODINGS:
        raise ConfigError(
            f"unknown encoding {encoding!r}; registered: {', '.join(ENCODINGS.names())}"
        )
    return [f for f in FAMILIES.names() if encoding in family_encoding_names(f, [encoding])]


def unreproducible_columns(encoding: str = "mge") -> dict[str, str]:
    """Network keys (metric-artifact names, the published scale) of ``encoding`` whose published
    values snntopo cannot reproduce from a mask at initialisation, with the reason (the families'
    registry fact ``not_reproducible``). A predictor fit on published tables must not use them."""
    out = {}
    for fam, m, key in _published_keys(encoding):
        facts = FAMILIES.meta(fam)
        marks = dict(facts.not_reproducible)
        if key.startswith("mean_"):  # a layered encoding: the BGE tables' marks too
            marks.update(facts.not_reproducible_layers)
        if m in marks:
            out[key] = marks[m]
    return out


def reproducible_columns(encoding: str = "mge") -> list[str]:
    """Network keys (metric-artifact names on the published scale: ``sink_nodes_norm``,
    ``motif``, ...; ``mean_<key>`` for a bipartite encoding) of the metrics of ``encoding`` whose
    published values fresh masks reproduce (``docs/reproduction.md``), in registry order. For the
    MGE these are the names the canonical tables and a predictor's features use; a predictor fit
    on the published tables keeps only features in this list. Unknown encoding: ConfigError."""
    bad = unreproducible_columns(encoding)
    return [key for _, _, key in _published_keys(encoding) if key not in bad]


def applicable_families(encoding: str | None, layered: bool = True) -> list[str]:
    """Registered families that can run on a graph of ``encoding`` (any, if unknown); ``layered``
    says whether the graph has bipartite layers (families marked ``layered`` need them)."""
    return [
        f
        for f in FAMILIES.names()
        if (
            encoding is None
            or encoding not in _encoding_names()
            or encoding in family_encoding_names(f)
        )
        and (layered or not FAMILIES.meta(f).layered)
    ]


def _encoding_names() -> list[str]:
    from ..encode import ENCODINGS

    return ENCODINGS.names()


def compute_family(
    name: str, graph: Graph, params: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Compute family ``name`` on ``graph``; return the metric-artifact dict (docs/architecture.md).

    ``params`` override :data:`DEFAULT_PARAMS` (seed, threads, eigensolver settings, ...). For a
    graph with ``layers`` (a BGE) the family runs once per layer graph; the network values are the
    NaN-skipping means over layers (``mean_<metric>``), because the paper aggregates layer-wise BGE
    metrics into one network vector by averaging.
    """
    fn = FAMILIES.get(name)
    facts = FAMILIES.meta(name)
    encoding = graph.meta.get("encoding")
    allowed = family_encoding_names(name)
    if encoding is not None and encoding in _encoding_names() and encoding not in allowed:
        raise ConfigError(
            f"metric family {name!r} applies to encodings {', '.join(allowed)}, not {encoding!r}"
        )
    if facts.layered and not graph.layers:
        raise ConfigError(f"metric family {name!r} needs a layered (bipartite) encoding")
    p = {**DEFAULT_PARAMS, **(params or {})}
    norms = facts.normalisers
    t0 = time.perf_counter()
    nan_reasons: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    computed: dict[str, Any] = {}
    if graph.layers:
        lp = {**p, **facts.layer_params}
        for layer_id, (layer, lg) in enumerate(graph.layer_graphs()):
            lname = str(layer.get("name", layer_id))
            values, reasons = normalised(_as_result(fn(lg, lp)), lg, norms)
            row: dict[str, Any] = {
                "layer_id": layer_id,
                "layer_name": lname,
                "density": layer_density(layer, lg),
            }
            row.update(values)
            rows.append(row)
            nan_reasons.update({f"{lname}/{k}": v for k, v in reasons.items()})
        network = _aggregate(rows, nan_reasons)
    else:
        res = _as_result(fn(graph, p))
        computed = res.info
        network, reasons = normalised(res, graph, norms)
        nan_reasons.update(reasons)
    return {
        "family": name,
        "encoding": encoding,
        "mode": graph.meta.get("mode", "exact"),  # the encoding mode (predictors check it)
        "network": network,
        "layers": rows,
        "nan_reasons": nan_reasons,
        "seconds": time.perf_counter() - t0,
        "provenance": {
            **provenance(family=name, encoding=encoding, **p),
            **({"computed": computed} if computed else {}),
        },
    }


def _as_result(res: FamilyResult | Mapping[str, float]) -> FamilyResult:
    """Families may return a plain ``{metric: value}`` dict; NaNs then get a generic reason."""
    if isinstance(res, FamilyResult):
        return res
    values = {k: float(v) for k, v in res.items()}
    reasons = {k: "family returned NaN" for k, v in values.items() if math.isnan(v)}
    return FamilyResult(values, reasons)


def layer_density(layer: Mapping[str, Any], lg: Graph) -> float:
    """nnz/numel of the layer's weight if the encoder recorded it, else edges/(n_left*n_right).

    The first is the paper's ``layer_sparsity`` column (really a density); the fallback equals it
    for the rolled BGE, where each nonzero weight is one edge.
    """
    if "density" in layer:
        return float(layer["density"])
    if "nnz" in layer and "numel" in layer and layer["numel"]:
        return float(layer["nnz"]) / float(layer["numel"])
    cells = lg.blocks[0].size * lg.blocks[-1].size
    return lg.n_edges / cells if cells else math.nan


def _aggregate(rows: list[dict[str, Any]], nan_reasons: dict[str, str]) -> dict[str, float]:
    """``mean_<metric>`` over layers, skipping NaN layers (e.g. the first conv for iterative gaps)."""
    keys = [k for k in (rows[0] if rows else {}) if k not in ("layer_id", "layer_name")]
    out: dict[str, float] = {}
    for k in keys:
        vals = np.array([r[k] for r in rows], dtype=np.float64)
        finite = vals[~np.isnan(vals)]
        out[f"mean_{k}"] = float(finite.mean()) if finite.size else math.nan
        if not finite.size:
            nan_reasons[f"mean_{k}"] = "NaN in every layer"
    if not rows:
        nan_reasons["network"] = "graph has no layers"
    return out
