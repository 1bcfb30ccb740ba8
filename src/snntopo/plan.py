"""The price of a workflow config before launch (``snntopo plan``): jobs per rule, cluster
submissions, GPU-hours, CPU-hours, peak memory per job kind and disk, for any config and profile.

Why not run Snakemake's dry run: the paper grid's DAG (~14,000 jobs) takes minutes to build, while
the grid itself is a product of five lists. This module enumerates the jobs of the default target
(``rule all``) directly, from the same grid (:func:`snntopo.workflow.sparse_grid`,
:func:`~snntopo.workflow.dense_grid`) and the same requests the rules make
(:data:`~snntopo.workflow.RULE_RESOURCES`, :func:`~snntopo.workflow.mask_resources`,
:func:`~snntopo.workflow.train_runtime_min`, :func:`~snntopo.workflow.encode_mem_mb`,
:func:`~snntopo.workflow.metrics_mem_mb`), so plan and rules cannot disagree; a test checks it
against ``snakemake -n``. Torch-free, like the dry run.

The hours are *requested* hours: a job's ``runtime`` request (a time limit, with margin) times its
GPUs or threads, an upper bound of what a cluster charges. The plan prices the whole grid, whatever
already exists under ``results``; memory of graph jobs comes from files that exist (as at
scheduling time), else from the config.
"""

from __future__ import annotations

import math
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import gridpoint
from . import workflow as W
from .errors import ConfigError

#: jobs that run on the submitting machine with a cluster executor (the Snakefile's
#: ``localrules`` and the data rules' ``localrule: True``)
LOCAL_RULES = frozenset({"all", "spec", "tables", "analysis", "graph_figure", "report"})
#: the rules' ``group:`` (one cluster submission per group component, batched by the profile's
#: ``group-components``)
RULE_GROUPS = {"mask": "network", "train": "network", "encode": "graphs"}
#: bytes per edge of a stored graph: 8 uncompressed (int32 index + float32 weight, see
#: :mod:`snntopo.encode.graph`), ~1.1 deflated (``encode.compress``; 27 MB instead of 201 MB for a
#: ResNet-20 MGE at 60% sparsity)
GRAPH_BYTES_PER_EDGE = {False: 8.0, True: 8.0 * 27 / 201}
#: bytes per prunable weight: a mask (bool), the masked initial weights (float32), a trained model
#: (float32 weights plus its bool masks); biases and batch-norm parameters are left out
WEIGHT_BYTES = {"masks": 1, "initial weights": 4, "models": 5}


@dataclass(frozen=True)
class Job:
    """One planned job with what it requests."""

    rule: str
    network: str | None
    threads: int
    mem_mb: int
    runtime: int  # minutes
    gpu: int = 0
    #: memory requested by the last retry (graph jobs double it on each retry)
    mem_mb_last_try: int = 0

    @property
    def kind(self) -> str:
        return "metrics" if self.rule.startswith("metrics_") else self.rule


@dataclass
class Profile:
    """What of a Snakemake profile changes the price: its executor, ``cores``, global
    ``resources``, ``set-resources``, ``set-threads`` and ``group-components``."""

    name: str | None = None
    executor: str = "local"
    cores: int | None = None
    resources: dict[str, int] = field(default_factory=dict)
    set_resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    set_threads: dict[str, int] = field(default_factory=dict)
    group_components: dict[str, int] = field(default_factory=dict)
    #: ``retries`` of the rules that set none (the graph rules set their own)
    retries: int = 0

    @property
    def cluster(self) -> bool:
        return self.executor not in ("local", "dryrun", "touch")


@dataclass
class Plan:
    jobs: list[Job]
    profile: Profile
    cores: int
    submissions: dict[str, int]
    disk_bytes: dict[str, float]
    mem_limit_mb: int | None
    mem_limit_source: str

    def by_rule(self) -> dict[str, list[Job]]:
        out: dict[str, list[Job]] = defaultdict(list)
        for j in self.jobs:
            out[j.rule].append(j)
        return dict(out)

    @property
    def gpu_hours(self) -> float:
        return sum(j.gpu * j.runtime for j in self.jobs) / 60.0

    @property
    def cpu_hours(self) -> float:
        return sum(j.threads * j.runtime for j in self.jobs) / 60.0

    def too_big(self) -> list[Job]:
        """Jobs whose first request exceeds the memory limit: they cannot run at all."""
        if self.mem_limit_mb is None:
            return []
        return [j for j in self.jobs if j.mem_mb > self.mem_limit_mb]


# --------------------------------------------------------------------------- profile
def _pairs(value: Any, where: str) -> dict[str, Any]:
    """A profile entry given as a mapping or as a list of ``key=value`` strings."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, list | tuple):
        out: dict[str, Any] = {}
        for item in value:
            if not isinstance(item, str) or "=" not in item:
                raise ConfigError(f"{where}: expected key=value entries, got {item!r}")
            key, val = item.split("=", 1)
            out[key.strip()] = _number(val.strip())
        return out
    raise ConfigError(f"{where}: expected a mapping or a list of key=value, got {value!r}")


def _number(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return value
    return value


def load_profile(path: str | os.PathLike[str] | None) -> Profile:
    """Read a Snakemake profile directory (or its ``config.yaml``); ``None``: no profile, the
    local executor."""
    if path is None:
        return Profile()
    from .overrides import strict_yaml

    p = Path(path)
    file = p / "config.yaml" if p.is_dir() else p
    if not file.is_file():
        raise ConfigError(f"profile {path}: no config.yaml there")
    data = strict_yaml(file.read_bytes(), str(file)) or {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{file}: a profile is a mapping of Snakemake options")
    cores = data.get("cores")
    if cores == "all" or cores is None:
        cores_n = None
    else:
        try:
            cores_n = int(cores)
        except (TypeError, ValueError):
            raise ConfigError(f"{file}: cores: expected a number or 'all', got {cores!r}") from None
    set_resources = {
        rule: _requests(_pairs(res, f"{file}: set-resources: {rule}"), f"{file}: {rule}")
        for rule, res in _pairs(data.get("set-resources"), f"{file}: set-resources").items()
    }
    return Profile(
        name=str(path),
        executor=str(data.get("executor", "local")),
        cores=cores_n,
        resources=_requests(_pairs(data.get("resources"), f"{file}: resources"), f"{file}"),
        set_resources=set_resources,
        set_threads={
            k: _count(v, f"{file}: set-threads: {k}")
            for k, v in _pairs(data.get("set-threads"), f"{file}: set-threads").items()
        },
        group_components={
            k: _count(v, f"{file}: group-components: {k}")
            for k, v in _pairs(data.get("group-components"), f"{file}: group-components").items()
        },
        retries=_count(data.get("retries", 0), f"{file}: retries"),
    )


_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")
#: Snakemake's spellings of time and size units (minutes; megabytes, SI as Snakemake reads them)
_MINUTES = {"": 1, "s": 1 / 60, "m": 1, "min": 1, "h": 60, "d": 1440, "w": 10080}
_MB = {"": 1e-6, "b": 1e-6, "k": 1e-3, "kb": 1e-3, "m": 1, "mb": 1, "g": 1e3, "gb": 1e3}
_MB.update({"t": 1e6, "tb": 1e6})


def _requests(res: dict[str, Any], where: str) -> dict[str, int]:
    """The requests of a profile's ``set-resources`` entry (or its global ``resources``) that
    change the price, in the rules' units: ``mem_mb`` (or ``mem`` such as ``4G``), ``runtime`` in minutes (or ``2h``), ``gpu``."""
    out: dict[str, int] = {}
    for key, value in res.items():
        if key not in ("mem_mb", "mem", "runtime", "gpu"):
            continue  # partitions, accounts, constraints: where, not how much
        m = _UNIT.match(str(value))
        unit = m[2].lower() if m else ""
        table = _MINUTES if key == "runtime" else _MB if key == "mem" else {"": 1}
        if key == "mem_mb" and unit in ("", "mb"):
            table = {unit: 1}
        if not m or unit not in table:
            raise ConfigError(f"{where}: {key}: cannot read {value!r} as a {key} request")
        out["mem_mb" if key == "mem" else key] = math.ceil(float(m[1]) * table[unit])
    return out


def _count(value: Any, where: str) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a whole number, got {value!r}") from None
    if n < 0:
        raise ConfigError(f"{where}: expected a whole number >= 0, got {n}")
    return n


# --------------------------------------------------------------------------- config
def default_config_file() -> Path | None:
    """The workflow's defaults (the Snakefile's ``configfile:``), in the checkout the package
    lives in; ``None`` for an installed package (the schema's defaults apply)."""
    path = Path(__file__).resolve().parents[2] / "config" / "config.yaml"
    return path if path.is_file() else None


def load_workflow_config(
    configfiles: Sequence[str | os.PathLike[str]], overrides: Sequence[str] = ()
) -> dict[str, Any]:
    """The config the workflow would run, layered as the Snakefile layers it: its defaults, each
    ``--configfile`` in order, then ``--config key=value`` (values typed as YAML reads them)."""
    import yaml

    from .config import check_config
    from .overrides import layered_config

    pairs: dict[str, Any] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--config {item!r}: expected key=value")
        try:  # as snakemake's --config reads a value: YAML (seeds=[0]), else the string
            pairs[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            pairs[key.strip()] = value
    for f in configfiles:
        if not Path(f).is_file():
            raise ConfigError(f"--configfile {f}: no such file")
    raw, source = layered_config(default_config_file(), list(configfiles), pairs)
    return check_config(raw, source=source)


# --------------------------------------------------------------------------- jobs
def _retries(rule: str, profile: Profile) -> int:
    """Retries of a rule: its own ``retries: 2`` (the graph jobs, whose memory doubles on each),
    else the profile's ``retries``."""
    return 2 if rule == "encode" or rule.startswith("metrics_") else profile.retries


def plan_jobs(config: Mapping[str, Any], profile: Profile, cores: int) -> list[Job]:
    """Every job of the default target, with the requests its rule makes (after the profile's
    ``set-resources``/``set-threads`` and the ``cores`` cap on threads)."""
    cfg = dict(config)
    results = cfg["results"]
    sparse = W.sparse_grid(cfg)
    dense = W.dense_grid(cfg)
    families = W.active_families(cfg)
    encodings = list(cfg["encodings"])
    weights_name = "init.safetensors" if cfg["encode"]["weights"] == "init" else "model.safetensors"
    fixed = W.RULE_RESOURCES
    jobs: list[Job] = []

    def add(rule: str, net: str | None, threads: int, mem, runtime: int, gpu: int = 0) -> None:
        # mem: the rule's request as a function of the attempt
        over = profile.set_resources.get(rule, {})
        threads = int(profile.set_threads.get(rule, threads))
        first = int(over.get("mem_mb", mem(1)))
        last = int(over.get("mem_mb", mem(1 + _retries(rule, profile))))
        jobs.append(
            Job(
                rule=rule,
                network=net,
                threads=max(1, min(threads, cores)),
                mem_mb=first,
                runtime=int(over.get("runtime", runtime)),
                gpu=int(over.get("gpu", gpu)),
                mem_mb_last_try=last,
            )
        )

    for dataset in cfg["datasets"]:
        if W.dataset_file(cfg, dataset):
            r = fixed["data"]
            add(f"data_{dataset}", None, r["threads"], lambda a, r=r: r["mem_mb"], r["runtime"])
    for _ in range(len(cfg["datasets"]) * len(cfg["architectures"])):  # one per (dataset, arch)
        r = fixed["spec"]
        add("spec", None, r["threads"], lambda a, r=r: r["mem_mb"], r["runtime"])
    res = cfg["resources"]
    for net in sparse + dense:
        nid = net.path("").lstrip("/")
        m = W.mask_resources(cfg, net.method)
        add("mask", nid, 1, lambda a, m=m: m["mem_mb"], m["runtime"], m["gpu"])
        add(
            "train",
            nid,
            int(res["train_cpus"]),
            lambda a: int(res["train_mem_mb"]) * a,
            W.train_runtime_min(cfg, net.dataset, net.arch),
            int(res["train_gpus"]),
        )
    for net in sparse:
        nid = net.path("").lstrip("/")
        folder = net.path(results)
        spec = f"{results}/{net.dataset}/{net.arch}/layers.json"
        weights = f"{folder}/{weights_name}"
        for enc in encodings:
            add(
                "encode",
                nid,
                fixed["encode"]["threads"],
                lambda a, enc=enc, spec=spec, weights=weights: W.encode_mem_mb(
                    spec, weights, enc, a, cfg
                ),
                fixed["encode"]["runtime"],
            )
        for family in families:
            graphs = [f"{folder}/graphs/{e}.npz" for e in W.family_encodings(cfg, family)]
            add(
                f"metrics_{family}",
                nid,
                W.family_threads(family),
                lambda a, graphs=graphs, family=family: W.metrics_mem_mb(graphs, a, cfg, family),
                fixed["metrics"]["runtime"],
            )
    for rule in ("tables", "analysis"):
        r = fixed[rule]
        add(rule, None, r["threads"], lambda a, r=r: r["mem_mb"], r["runtime"])
    if "mge" in encodings:
        r = fixed["graph_figure"]
        add("graph_figure", None, r["threads"], lambda a, r=r: r["mem_mb"], r["runtime"])
    r = fixed["report"]
    add("report", None, r["threads"], lambda a, r=r: r["mem_mb"], r["runtime"])
    # the target rule runs nothing: no request is priced
    jobs.append(Job("all", None, 1, 0, 0))
    return jobs


def _group(rule: str) -> str | None:
    return "graphs" if rule.startswith("metrics_") else RULE_GROUPS.get(rule)


def is_local_rule(rule: str) -> bool:
    """Does a job of ``rule`` run on the submitting machine under a cluster executor?"""
    return rule in LOCAL_RULES or rule.startswith("data_")


def submissions(jobs: Sequence[Job], profile: Profile) -> dict[str, int]:
    """Cluster submissions per group (``None``: ungrouped remote jobs): a group's jobs of one
    network form one component, and the profile's ``group-components`` batches that many
    components into one submission. Empty without a cluster executor (everything runs here)."""
    if not profile.cluster:
        return {}
    components: dict[str, set[str | None]] = defaultdict(set)
    single = 0
    for j in jobs:
        if is_local_rule(j.rule):
            continue
        group = _group(j.rule)
        if group is None:
            single += 1
        else:
            components[group].add(j.network)
    out = {
        g: math.ceil(len(nets) / max(1, profile.group_components.get(g, 1)))
        for g, nets in components.items()
    }
    if single:
        out["(ungrouped)"] = single
    return out


def disk_bytes(config: Mapping[str, Any]) -> dict[str, float]:
    """Disk for the graphs (edges estimated as for the memory requests) and for each network's
    masks, initial weights and model (its prunable weights)."""
    from .config import input_size
    from .models import arch_facts

    cfg = dict(config)
    width = float(cfg["model"]["width"])
    per_edge = GRAPH_BYTES_PER_EDGE[bool(cfg["encode"].get("compress", False))]
    graphs = 0.0
    for net in W.sparse_grid(cfg):
        side = input_size(cfg, net.dataset)
        for enc in cfg["encodings"]:
            graphs += W.planned_edges(net.arch, enc, 1.0 - net.sparsity, width, side) * per_edge
    weights = 0.0
    for net in W.sparse_grid(cfg) + W.dense_grid(cfg):
        dense = arch_facts(gridpoint.unslug(net.arch)).dense_edges or W.UNKNOWN_DENSE_EDGES
        weights += float(dense["weights"]) * width**2
    out = {"graphs": graphs}
    out.update({what: weights * b for what, b in WEIGHT_BYTES.items()})
    return out


def physical_memory_mb() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20)
    except (AttributeError, OSError, ValueError):
        return None


def make_plan(
    config: Mapping[str, Any],
    profile: Profile | None = None,
    cores: int | None = None,
    mem_limit_mb: int | None = None,
) -> Plan:
    """The plan of a checked config. ``cores``: the cap on a job's threads (default: the
    profile's ``cores``, else this machine's for the local executor, none for a cluster's). The memory limit a job must fit: ``mem_limit_mb``,
    else the profile's global ``resources: mem_mb``, else this machine's memory when the jobs run
    here; unknown for a cluster (pass the largest node's memory)."""
    from .threads import available_cores

    profile = profile or Profile()
    # a cluster executor without ``cores`` leaves a job's threads as the rule asks
    cores = int(cores or profile.cores or (10**6 if profile.cluster else available_cores()))
    jobs = plan_jobs(config, profile, cores)
    if mem_limit_mb is not None:
        limit, source = int(mem_limit_mb), "--mem-limit-mb"
    elif "mem_mb" in profile.resources:
        limit, source = int(profile.resources["mem_mb"]), "the profile's resources: mem_mb"
    elif not profile.cluster:
        limit, source = physical_memory_mb(), "this machine's memory"
    else:
        limit, source = None, "unknown for a cluster (pass --mem-limit-mb, the largest node's)"
    return Plan(
        jobs=jobs,
        profile=profile,
        cores=cores,
        submissions=submissions(jobs, profile),
        disk_bytes=disk_bytes(config),
        mem_limit_mb=limit,
        mem_limit_source=source,
    )


# --------------------------------------------------------------------------- report
def _gb(n: float) -> str:
    return f"{n / 1e9:,.1f} GB" if n >= 1e8 else f"{n / 1e6:,.1f} MB"


def format_plan(plan: Plan) -> str:
    """The plan as the text ``snntopo plan`` prints."""
    rows = []
    by_rule = plan.by_rule()
    header = ("rule", "jobs", "threads", "mem_mb max", "runtime max", "GPU-h", "CPU-h", "where")
    for rule, jobs in by_rule.items():
        where = (
            "here"
            if not plan.profile.cluster or is_local_rule(rule)
            else (f"group {_group(rule)}" if _group(rule) else "own submission")
        )
        if rule == "all":
            where = "target (runs nothing)"
        rows.append(
            (
                rule,
                f"{len(jobs):,}",
                _span(j.threads for j in jobs),
                f"{max(j.mem_mb for j in jobs):,}",
                f"{max(j.runtime for j in jobs):,} min",
                f"{sum(j.gpu * j.runtime for j in jobs) / 60:,.1f}",
                f"{sum(j.threads * j.runtime for j in jobs) / 60:,.1f}",
                where,
            )
        )
    rows.append(
        (
            "total",
            f"{len(plan.jobs):,}",
            "",
            f"{max(j.mem_mb for j in plan.jobs):,}",
            "",
            f"{plan.gpu_hours:,.1f}",
            f"{plan.cpu_hours:,.1f}",
            "",
        )
    )
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            str(c).ljust(w) if i in (0, 7) else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in [header, *rows]
    ]
    out = ["Jobs of the default target (requests as the rules make them):", *lines, ""]
    out.append(
        f"GPU-hours: {plan.gpu_hours:,.1f}   CPU-hours: {plan.cpu_hours:,.1f}   "
        "(requested runtime x GPUs / x threads: an upper bound, the rules' runtimes carry margin)"
    )
    if plan.profile.cluster:
        total = sum(plan.submissions.values())
        parts = ", ".join(
            f"{n:,} {g}"
            + (
                f" ({plan.profile.group_components.get(g, 1)} per submission)"
                if g != "(ungrouped)"
                else ""
            )
            for g, n in plan.submissions.items()
        )
        local = sum(1 for j in plan.jobs if is_local_rule(j.rule) and j.rule != "all")
        out.append(
            f"Cluster submissions ({plan.profile.executor}): {total:,} = {parts}; "
            f"{local} jobs run on the submitting machine"
        )
    else:
        out.append(
            f"Executor: local, every job runs on this machine (threads capped at {plan.cores})"
        )
    out.append("Peak memory per job kind (first try; the last retry's request in brackets):")
    kinds: dict[str, list[Job]] = defaultdict(list)
    for j in plan.jobs:
        if j.rule != "all":
            kinds[j.kind].append(j)
    width = max(len(k) for k in kinds)
    for kind, jobs in kinds.items():
        big = max(jobs, key=lambda j: j.mem_mb)
        retry = max(j.mem_mb_last_try for j in jobs)
        more = f" (last retry {retry:,} MB)" if retry > big.mem_mb else ""
        at = f" at {big.network}" if big.network and len(jobs) > 1 else ""
        out.append(f"  {kind:<{width}} {big.mem_mb:>9,} MB{at}{more}")
    d = plan.disk_bytes
    out.append(
        "Disk: "
        + ", ".join(f"{what} {_gb(n)}" for what, n in d.items())
        + f"; {_gb(sum(d.values()))} in all (training checkpoints, logs and tables not counted)"
    )
    if plan.mem_limit_mb is None:
        out.append(f"Memory limit: {plan.mem_limit_source}")
    else:
        too_big = plan.too_big()
        out.append(f"Memory limit: {plan.mem_limit_mb:,} MB ({plan.mem_limit_source})")
        if too_big:
            per_rule: dict[str, list[Job]] = defaultdict(list)
            for j in too_big:
                per_rule[j.rule].append(j)
            out.append(f"  {len(too_big):,} jobs cannot fit:")
            for rule, jobs in per_rule.items():
                worst = max(jobs, key=lambda j: j.mem_mb)
                out.append(
                    f"  {rule}: {len(jobs):,} jobs ask for more, up to {worst.mem_mb:,} MB"
                    + (f" ({worst.network})" if worst.network else "")
                )
        else:
            out.append("  every job fits")
        retry = [j for j in plan.jobs if j.mem_mb <= plan.mem_limit_mb < j.mem_mb_last_try]
        if retry:
            out.append(
                f"  {len(retry):,} more fit on their first try but not on their last retry "
                "(a job that runs out of memory there cannot be retried within the limit)"
            )
    return "\n".join(out)


def _span(values: Iterable[int]) -> str:
    v = sorted(set(values))
    return str(v[0]) if len(v) == 1 else f"{v[0]}-{v[-1]}"
