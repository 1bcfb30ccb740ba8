"""Grid enumeration, artifact paths, per-job parameters and resource estimates for the Snakemake
rules. Kept in the package (not in ``rules/common.smk``) so it is unit-testable without Snakemake.

Everything here is torch-free and reads the registries' facts (a PaI method's ``wants_gpu``, an
encoding's ``edge_model``, an architecture's ``dense_edges``, a data set's ``train_images``), so
planning the paper grid never imports torch and a newly registered member gets the right resources.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .codedigest import stage_code as stage_code  # the rules' ``code`` params
from .config import input_size, training_settings
from .gridpoint import DENSE, GridPoint, parse_path, slug
from .io import graph_edges_from_file
from .memcheck import MEM_MB_PER_MILLION_EDGES as MEM_MB_PER_MILLION_EDGES
from .memcheck import family_mb_per_million, stream_encode_mb
from .memcheck import graph_mem_mb as graph_mem_mb  # the rules' estimate, shared with the jobs

if TYPE_CHECKING:
    from .stages.network import NetworkJob


def wants_gpu(method: str) -> bool:
    """Does a mask job of ``method`` run forward/backward passes worth a GPU (registry fact)?"""
    from .pai import METHODS

    return method != DENSE and METHODS.fact(method, "wants_gpu")


def needs_data(method: str) -> bool:
    """Does a mask job of ``method`` read training data (registry fact)?"""
    from .pai import METHODS

    return method != DENSE and METHODS.fact(method, "needs_data")


def dataset_file(config: dict[str, Any], dataset: str) -> str | None:
    """Output of a data set's DAG node (its extracted index file under ``data_root``), or ``None``
    when the data set has no files (the bundled digits)."""
    from .data import extracted_index

    index = extracted_index(dataset)
    return None if index is None else f"{config['data_root']}/{index}"


#: one grid point of the plan (its ``arch`` is the path's slug)
Network = GridPoint


def sparse_grid(config: dict[str, Any]) -> list[Network]:
    return [
        Network(d, slug(a), m, float(s), int(seed))
        for d in config["datasets"]
        for a in config["architectures"]
        for m in config["methods"]
        for s in config["sparsities"]
        for seed in config["seeds"]
    ]


def dense_grid(config: dict[str, Any]) -> list[Network]:
    if not config.get("dense_baseline", True):
        return []
    return [
        Network(d, slug(a), DENSE, 0.0, int(seed))
        for d in config["datasets"]
        for a in config["architectures"]
        for seed in config["seeds"]
    ]


def family_encodings(config: dict[str, Any], family: str) -> list[str]:
    """Encodings of the config that a metric family applies to (from the family's metadata)."""
    from .metrics import family_encoding_names

    return family_encoding_names(family, config["encodings"])


def family_threads(family: str) -> int:
    """Cores a family's job uses: its registry fact ``threads``; Snakemake lowers it to
    ``--cores`` where that is smaller."""
    from .metrics import FAMILIES

    return FAMILIES.fact(family, "threads")


def active_families(config: dict[str, Any]) -> list[str]:
    """Families asked for in the config that apply to at least one configured encoding."""
    return [f for f in config["metrics"]["families"] if family_encodings(config, f)]


def job_from_config(
    config: Mapping[str, Any],
    dataset: str,
    arch: str,
    method: str = DENSE,
    sparsity: float = 0.0,
    seed: int = 0,
) -> NetworkJob:
    """The job of one grid point of a checked workflow config."""
    from .data import dataset_shape
    from .gridpoint import unslug
    from .stages.network import NetworkJob

    arch = unslug(arch)  # paths carry the slug of an external name, the job the full name
    num_classes, in_channels, size = dataset_shape(dataset, input_size(dict(config), dataset))
    kwargs = (config.get("model", {}).get("kwargs") or {}).get(arch) or {}
    return NetworkJob(
        arch=arch,
        dataset=dataset,
        num_classes=num_classes,
        in_channels=in_channels,
        input_size=size,
        width=float(config.get("model", {}).get("width", 1.0)),
        method=method,
        sparsity=float(sparsity),
        seed=int(seed),
        device=str(config.get("device", "auto")),
        data_root=str(config.get("data_root", "data")),
        download=bool(config.get("download", False)),
        pai=dict((config.get("pai") or {}).get(method, {}) or {}),
        training=training_settings(dict(config), dataset, arch),
        model_kwargs=dict(kwargs),
    )


def network_job(config: dict[str, Any], wc: Any) -> Any:
    """The typed job of the grid point named by a rule's wildcards (dense: method ``dense``)."""
    return job_from_config(
        config,
        wc.dataset,
        wc.arch,
        getattr(wc, "method", DENSE),
        float(getattr(wc, "sparsity", 0.0)),
        int(getattr(wc, "seed", 0)),
    )


def model_params(config: dict[str, Any], dataset: str, arch: str) -> dict[str, Any]:
    """Params of the ``spec`` rule: the model fields of (dataset, arch)."""
    return job_from_config(config, dataset, arch).params("spec")


def mask_params(config: dict[str, Any], wc: Any) -> dict[str, Any]:
    """Params of the ``mask`` rule."""
    return network_job(config, wc).params("mask")


def train_params(config: dict[str, Any], wc: Any) -> dict[str, Any]:
    """Params of the ``train`` rule."""
    return network_job(config, wc).params("train")


#: requests of the rules whose needs do not depend on the network (threads, MB, minutes); the
#: rules read them from here, and ``snntopo plan`` prices the grid with the same numbers
RULE_RESOURCES: dict[str, dict[str, int]] = {
    "data": {"threads": 1, "mem_mb": 4000, "runtime": 60},
    "spec": {"threads": 1, "mem_mb": 2000, "runtime": 10},
    "encode": {"threads": 1, "runtime": 30},
    "metrics": {"runtime": 60},
    "tables": {"threads": 1, "mem_mb": 2000, "runtime": 10},
    "analysis": {"threads": 1, "mem_mb": 4000, "runtime": 30},
    "graph_figure": {"threads": 1, "mem_mb": 2000, "runtime": 10},
    "report": {"threads": 1, "mem_mb": 1000, "runtime": 5},
    "predict": {"threads": 1, "mem_mb": 2000, "runtime": 10},
}


def mask_resources(config: Mapping[str, Any], method: str) -> dict[str, int]:
    """Requests of a mask job: a data-driven PaI method (registry fact ``wants_gpu``) runs
    forward/backward passes and gets the training's GPUs, more memory and time."""
    if wants_gpu(method):
        return {"mem_mb": 4000, "runtime": 60, "gpu": int(config["resources"]["train_gpus"])}
    return {"mem_mb": 2000, "runtime": 15, "gpu": 0}


def train_runtime_min(config: dict[str, Any], dataset: str, arch: str) -> int:
    """Wall-clock estimate for one training job on one GPU, with a 1.5x margin."""
    from .data import dataset_info
    from .models import arch_facts

    default = arch_facts(arch).runtime_min_per_epoch
    per_epoch = config["resources"].get("train_runtime_min_per_epoch", {}).get(arch, default)
    scale = dataset_info(dataset).train_images / 50_000
    epochs = training_settings(config, dataset, arch)["epochs"]
    return max(10, int(1.5 * per_epoch * scale * max(epochs, 1)) + 5)


#: edges assumed for a graph planned before its layer spec exists, when the architecture has no
#: ``dense_edges`` fact (an external model): a generous figure, corrected once the spec exists
UNKNOWN_DENSE_EDGES = {"weights": 5e6, "unrolled": 5e8}


def planned_edges(arch: str, encoding: str, density: float, width: float, input_side: int) -> float:
    """Edge estimate for a graph planned before its layer spec exists (dry runs), from the
    architecture's ``dense_edges`` facts (width 1, 32x32): weights scale with width squared, the
    unrolled MGE also with the number of output positions. Torch-free; corrected at scheduling time
    from the stored layer spec and the real mask (:func:`encode_mem_mb`)."""
    from .encode import ENCODINGS
    from .models import arch_facts

    model = ENCODINGS.fact(encoding, "edge_model")
    dense = arch_facts(arch).dense_edges or UNKNOWN_DENSE_EDGES
    edges = float(dense[model]) * density * width**2
    if model == "unrolled":
        edges *= (input_side / 32.0) ** 2
    return edges


def encode_mem_mb(
    spec_path: str, weights_path: str, encoding: str, attempt: int, config: dict[str, Any]
) -> int:
    """Memory request of an encode job: from the real masked weights when they exist (at
    scheduling time), else from the config's sparsity and the architecture (dry runs). An
    uncompressed MGE, written as it is built, asks for the smaller of that and its streamed
    estimate (:func:`snntopo.memcheck.stream_encode_mb`), as the job's own check does."""
    per_million = float(
        config["resources"].get("mem_mb_per_million_edges", MEM_MB_PER_MILLION_EDGES)
    )
    edges = None
    streamed = None  # an uncompressed MGE is written as it is built (the job's own check alike)
    writes_as_built = encoding == "mge" and not (config.get("encode") or {}).get("compress")
    if os.path.exists(spec_path) and os.path.exists(weights_path):
        try:
            from safetensors.numpy import load_file

            from .encode import encode_edges, encode_nodes, weight_bytes
            from .io import read_json  # bounded, strict JSON like every reader

            spec, weights = read_json(spec_path), load_file(weights_path)
            edges = encode_edges(spec, weights, encoding)
            if writes_as_built:
                streamed = stream_encode_mb(encode_nodes(spec), weight_bytes(weights), attempt)
        except Exception:  # a corrupt input fails in the job itself, with a clear message
            edges = None
    if edges is None:
        edges = _edges_from_config(weights_path, encoding, config)
    mem = graph_mem_mb(edges, attempt, per_million)
    return mem if streamed is None else min(mem, streamed)


def _edges_from_config(path: str, encoding: str, config: dict[str, Any]) -> float:
    net = parse_path(path)
    if net is None:
        return 5e7
    return planned_edges(
        net["arch"],
        encoding,
        1.0 - net["sparsity"],
        float(config["model"]["width"]),
        input_size(config, net["dataset"]),
    )


def metrics_mem_mb(
    graph_paths: list[str], attempt: int, config: dict[str, Any], family: str | None = None
) -> int:
    """Memory request of a metric job: from the stored graphs' edge counts (read from the file
    headers; for a family on the implicit path, its residual edges plus a share of the covered
    ones, :func:`snntopo.metrics.implicit.job_edges`, as the job's own check counts them), else
    estimated like :func:`encode_mem_mb`, at the ``family``'s measured rate
    (:func:`snntopo.memcheck.family_mb_per_million`; ``None``: the flat one); doubled on every
    retry."""
    per_million = float(
        config["resources"].get("mem_mb_per_million_edges", MEM_MB_PER_MILLION_EDGES)
    )
    from .metrics.implicit import job_edges

    params = {k: v for k, v in (config.get("metrics") or {}).items() if k != "families"}
    edges = 0.0
    for path in graph_paths:
        n = graph_edges_from_file(path) if os.path.exists(path) else None
        if n is None:
            encoding = Path(path).stem
            n = _edges_from_config(path, encoding, config)
        elif family is not None:  # the path the family takes on this file (implicit or not)
            n = job_edges([path], family, params)
        edges = max(edges, float(n))
    if family is not None:
        per_million = family_mb_per_million([family], edges, per_million, resident=True)
    return graph_mem_mb(edges, attempt, per_million)


def metrics_mem_function(family: str, config: dict[str, Any]) -> Callable[..., int]:
    """The ``mem_mb`` resource of the ``metrics_<family>`` rule: :func:`metrics_mem_mb` at that
    family's rate (bound here: a lambda in the rules' loop would see the loop's last family)."""

    def mem_mb(wildcards: Any, input: Any, attempt: int) -> int:  # noqa: A002 (Snakemake's name)
        return metrics_mem_mb(list(input), attempt, config, family)

    return mem_mb


def table_names() -> list[str]:
    """The canonical tables (``tables/<name>.csv``): networks, one per registered encoding, and
    the per-layer Ramanujan table."""
    from .names import encoding_names

    return ["networks", *encoding_names(), "ramanujan_layers"]
