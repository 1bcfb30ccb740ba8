"""Pre-flight memory check of the graph jobs: a job whose estimated peak exceeds the memory this
process may use stops with one line before it starts, instead of being killed by the kernel's
out-of-memory killer without a word.

The estimate is the one the workflow's rules ask for (:func:`graph_mem_mb`, which
:mod:`snntopo.workflow` re-exports, at the first attempt: 500 MB plus
``mem_mb_per_million_edges`` per million edges, or for a metric job its family's measured rate
(:data:`FAMILY_MB_PER_MILLION_EDGES`, scaled by that setting); the edges from the layer spec and
the mask before an encode, from the stored graph's header before a metric job). It lives here, not in the
planning module, because the jobs themselves run it. The memory the process may use is the
smallest of: the address-space and data-segment limits (``ulimit -v``/``-d``), the memory limit of
this process's cgroup and its parents (v2 ``memory.max``, v1 ``memory.limit_in_bytes``),
``MemAvailable`` of ``/proc/meminfo``, and an explicit limit (``--mem-limit-mb``, a rule's
``resources.mem_mb``). What the process already holds (its resident set) counts as usable: the
estimate is of the whole process's peak.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path

from .errors import MemoryLimitError
from .io import graph_edges_from_file

MB = 1024 * 1024


@dataclass(frozen=True)
class MemoryGuard:
    """How a stage checks its memory before it starts: ``limit_mb`` an explicit limit (the rule's
    ``resources.mem_mb``, ``--mem-limit-mb``), ``per_million_edges`` the estimate's MB per million
    edges (``resources.mem_mb_per_million_edges``), ``force`` skip the check (``--force-memory``),
    ``hint`` how to skip it, named in the message."""

    limit_mb: float | None = None
    per_million_edges: float | None = None
    force: bool = False
    hint: str = "--force-memory"


#: default of ``resources.mem_mb_per_million_edges`` (the schema's default too)
MEM_MB_PER_MILLION_EDGES = 32.0


#: MB per million edges (bytes per edge) of a metric family's job, by family, when
#: ``mem_mb_per_million_edges`` is at its default (another value scales them all alike); a family
#: not listed asks :data:`MEM_MB_PER_MILLION_EDGES`. Measured on the resnet18/resnet50 64x64 and
#: Conv-6 MGEs (docs/benchmarks.md, "Memory per edge") and counted the way ``ulimit -v`` and the
#: jobs' address-space cap count, which is more than the resident set: the graph file's map (8.9
#: bytes per edge of address space, resident or not) plus the family's own arrays. Peak address
#: space above the interpreter's on resnet50: local 9.7 (degrees, streamed checks), strength 14.8
#: (the CSC, 4, and O(n)), global 14.5 (A^T's sources, 4, and O(n log n) range-minimum tables);
#: each rate rounds up with a margin.
FAMILY_MB_PER_MILLION_EDGES = {"local": 10.0, "strength": 16.0, "global": 16.0}
#: where a family's resident peak is well below its address space (the graph file's map is only
#: partly resident: read in released chunks), its resident rate, checked against the limits on
#: resident memory (cgroup, ``MemAvailable``, the job's own ``mem_mb``) and asked for by the
#: rules; the address-space limits keep :data:`FAMILY_MB_PER_MILLION_EDGES`. global on resnet50
#: 224x224 ERK 0.9 (1.41e9 edges): 12,852 MB peak resident (9.1 bytes per edge, 5.1 of them
#: anonymous) under 22 GB of address space; neighbourhood 9.3 bytes per edge there (uniform 0.9,
#: 4,194 MB for 4.49e8 edges) and 11.1 on resnet18 64x64 ERK 0.9; expansion, whose ARPACK
#: vectors are 24 per node, 5.8 on resnet50 64x64 ERK 0.9 and ~13 on resnet50 224x224 uniform 0.9
#: (9.76M nodes for 4.49e8 edges).
FAMILY_RESIDENT_MB_PER_MILLION_EDGES = {"global": 12.0, "neighbourhood": 14.0, "expansion": 14.0}
#: the global family takes its sparse-certificate path (:mod:`snntopo.metrics.cut_certificate`)
#: on a simple graph of at least this many edges: in-neighbour lists (4 bytes per edge) and O(n)
#: arrays resident, the graph's pages released as read. Measured against the DFS: ResNet-50
#: 224x224 uniform 0.9 (4.5e8 edges) 45.5 s / 3,516 MiB against 45.0 s / 5,374 MiB; vgg16_bn
#: 64x64 ERK 0.9 (7.4e8) 35.4 s against 26.7 s and 6.1 GB; the DFS's memory for at most 1.3x its
#: time (2**29 until the certificate's passes released their pages: about twice the time)
GLOBAL_CERTIFICATE_MIN_EDGES = 1 << 28
#: its resident rate there (what the rules ask for and the resident limits are checked against)
GLOBAL_CERTIFICATE_RESIDENT_MB_PER_MILLION_EDGES = 7.0
#: from this many edges the neighbourhood family's motif gathers its in-neighbour lists in
#: batches of roots (at most half an entry per edge: 2 bytes), and the graph's pages it reads are
#: released after the 2-hop count and every 2**25 entries of the motif count, so its resident
#: peak is about the 2-hop count's pages of A (4 bytes per edge at most, reclaimable page cache)
#: or the lists plus O(n) arrays, not the flat rate's lists and pages together. Only an MGE is
#: this large (a BGE has at most one edge per weight)
NEIGHBOURHOOD_BATCHED_MIN_EDGES = 1 << 28
#: its resident rate there, with a margin: measured 2.2-4.7 MiB per million edges (ResNet-50
#: 224x224 ERK 0.9 3.3, ERK 0.6 2.2, uniform 0.9 4.7 with its 9.8M nodes; vgg16_bn 64x64 3.9)
NEIGHBOURHOOD_BATCHED_RESIDENT_MB_PER_MILLION_EDGES = 7.0


def family_mb_per_million(
    families: list[str] | tuple[str, ...] | None,
    n_edges: float,
    per_million: float | None = None,
    resident: bool = False,
) -> float:
    """MB per million edges for a metric job running ``families`` (the largest of theirs; ``None``
    or empty: the flat default) on a graph of ``n_edges`` edges, scaled by ``per_million`` /
    :data:`MEM_MB_PER_MILLION_EDGES` (the config's value; ``None``: the default); ``resident``:
    of its resident memory (:data:`FAMILY_RESIDENT_MB_PER_MILLION_EDGES`), else of its address
    space."""
    scale = (per_million or MEM_MB_PER_MILLION_EDGES) / MEM_MB_PER_MILLION_EDGES
    rates = []
    for family in families or [None]:
        rate = FAMILY_MB_PER_MILLION_EDGES.get(str(family), MEM_MB_PER_MILLION_EDGES)
        if resident:
            rate = FAMILY_RESIDENT_MB_PER_MILLION_EDGES.get(str(family), rate)
        if family == "global" and n_edges >= GLOBAL_CERTIFICATE_MIN_EDGES and resident:
            # the certificate path (assumed simple: every MGE; a forced DFS past 2**31 entries
            # would need int64 copies, ~28); the map's address space stays
            rate = GLOBAL_CERTIFICATE_RESIDENT_MB_PER_MILLION_EDGES
        if family == "neighbourhood" and n_edges >= NEIGHBOURHOOD_BATCHED_MIN_EDGES and resident:
            rate = NEIGHBOURHOOD_BATCHED_RESIDENT_MB_PER_MILLION_EDGES
        rates.append(rate * scale)
    return max(rates)


def graph_mem_mb(
    n_edges: float, attempt: int, per_million: float = MEM_MB_PER_MILLION_EDGES
) -> int:
    """Memory for a job that holds a graph of ``n_edges`` edges: 500 MB plus ``per_million`` MB
    per million edges, doubled on every retry so an out-of-memory kill asks for more. The default
    32 B/edge covers the largest measured peaks (docs/benchmarks.md, "Memory per edge": encode
    11-15 B/edge above the torch import, the metric families 10-27 B/edge, the most resnet18's
    64x64 neighbourhood; Conv-6 SynFlow 0.6 global 4.1 GB for 172.5M edges before issue 29)."""
    base = 500 + per_million * n_edges / 1e6
    return int(base * (2 ** (attempt - 1)))


#: a streamed MGE encode (:func:`snntopo.encode.mge.write`, the graph never held whole): fixed MB
#: (interpreter, torch, one row block of 2**23 edges and its temporaries), MB per million nodes
#: (the row pointer, the node-indexed arrays of the term checks), and multiples of the masked
#: weights' bytes (the weights, the mask, their float32 copies). Measured (docs/benchmarks.md,
#: "Streaming encode"): resnet50 at 64/128/224 (0.80/3.19/9.76M nodes) 1,497/1,667/2,257 MB peak,
#: vgg16_bn at 64 (1.13M nodes, 540 MB of weights) 2,947 MB (MB of /usr/bin/time's kbytes / 1000);
#: the estimate is 1,555/1,794/2,452 and 3,285 MB.
STREAM_ENCODE_MB = 1112.0
STREAM_ENCODE_MB_PER_MILLION_NODES = 100.0
STREAM_ENCODE_WEIGHT_FACTOR = 4.0


def stream_encode_mb(nodes: float, weight_bytes: float, attempt: int = 1) -> int:
    """Memory of a streamed MGE encode of ``nodes`` nodes from ``weight_bytes`` of weights,
    doubled on every retry like :func:`graph_mem_mb`; independent of the edge count."""
    base = (
        STREAM_ENCODE_MB
        + STREAM_ENCODE_MB_PER_MILLION_NODES * nodes / 1e6
        + STREAM_ENCODE_WEIGHT_FACTOR * weight_bytes / MB
    )
    return int(base * (2 ** (attempt - 1)))


def metrics_edges(graph_paths: list[str]) -> float:
    """Edges of the largest stored graph a metric job reads (file headers only; 0 for a file
    without a readable header: its reader reports it). A family that takes the implicit path
    counts fewer: :func:`snntopo.metrics.implicit.job_edges`."""
    counts = [graph_edges_from_file(p) for p in graph_paths]
    return float(max((n for n in counts if n is not None), default=0))


def _status() -> dict[str, int]:
    """``Vm*`` fields of ``/proc/self/status`` in bytes (empty where there is none)."""
    out: dict[str, int] = {}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key.startswith("Vm") and rest.strip().endswith("kB"):
                    out[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError):
        return {}
    return out


def available_memory_bytes() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes (``None`` where there is none)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _read_int(path: Path) -> int | None:
    """An integer file of the cgroup tree; ``None`` where it is absent or says no limit."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    try:
        value = int(text)
    except ValueError:  # "max": no limit (cgroup v2)
        return None
    return None if value >= 2**60 else value  # v1 writes "no limit" as ~2^63


def _cgroup_room(
    root: Path = Path("/sys/fs/cgroup"), membership: Path = Path("/proc/self/cgroup")
) -> int | None:
    """Smallest ``limit - usage`` over this process's memory cgroup and its parents: cgroup v2
    (``memory.max``, ``memory.current``) or v1's memory controller (``memory.limit_in_bytes``,
    ``memory.usage_in_bytes``); ``None`` where there is no readable limit."""
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        return None
    trees = []
    for line in lines:
        _, controllers, rel = line.split(":", 2) if line.count(":") >= 2 else ("", "", "")
        if controllers == "" and rel:
            trees.append((root, rel, "memory.max", "memory.current"))
        elif "memory" in controllers.split(","):
            trees.append((root / "memory", rel, "memory.limit_in_bytes", "memory.usage_in_bytes"))
    room = None
    for base, rel, limit_file, usage_file in trees:
        d = base / rel.strip("/")
        while True:
            limit = _read_int(d / limit_file)
            if limit is not None:
                used = _read_int(d / usage_file) or 0
                here = max(0, limit - used)
                room = here if room is None else min(room, here)
            if d == base or base not in d.parents:
                break
            d = d.parent
    return room


#: the limits of :func:`memory_limits` on address space rather than resident memory (a mapped
#: file counts whole there, resident or not)
ADDRESS_SPACE_LIMITS = ("the address-space limit (ulimit -v)", "the data-segment limit (ulimit -d)")


def memory_limits(explicit_mb: float | None = None) -> list[tuple[int, str]]:
    """Each limit on this process's peak resident memory, in bytes, with where it comes from.
    A limit on what may still be allocated (address space, data segment, cgroup, free memory)
    adds the resident memory the process already holds."""
    status = _status()
    rss = status.get("VmRSS", 0)
    out: list[tuple[int, str]] = []
    for name, field, label in (
        ("RLIMIT_AS", "VmSize", ADDRESS_SPACE_LIMITS[0]),
        ("RLIMIT_DATA", "VmData", ADDRESS_SPACE_LIMITS[1]),
    ):
        soft, _ = resource.getrlimit(getattr(resource, name))
        if soft != resource.RLIM_INFINITY and soft >= 0:
            out.append((rss + max(0, soft - status.get(field, 0)), label))
    room = _cgroup_room()
    if room is not None:
        out.append((rss + room, "the cgroup's memory limit"))
    avail = available_memory_bytes()
    if avail is not None:
        out.append((rss + avail, "MemAvailable of /proc/meminfo"))
    if explicit_mb is not None:
        out.append((int(float(explicit_mb) * MB), "the job's memory limit"))
    return out


def check_memory(
    what: str,
    edges: float,
    guard: MemoryGuard | None,
    families: list[str] | None = None,
    streamed: tuple[float, float] | None = None,
) -> None:
    """Refuse a job on a graph of ``edges`` edges whose estimated peak exceeds the smallest limit
    of :func:`memory_limits`; ``None`` or ``guard.force``: no check. ``families``: the metric
    families the job runs (their rates, :func:`family_mb_per_million`); ``None``: the flat
    estimate (encode, or every family). ``streamed``: ``(nodes, weight_bytes)`` of an encode
    that writes its graph as it builds it: the smaller of :func:`stream_encode_mb` and the
    edge-based estimate."""
    if guard is None or guard.force:
        return
    base_rate = guard.per_million_edges or MEM_MB_PER_MILLION_EDGES
    needs = {}  # resident? -> (MB, how it was counted)
    for resident in (False, True):
        per_million = base_rate
        if families:
            per_million = family_mb_per_million(families, edges, base_rate, resident)
        needs[resident] = (
            graph_mem_mb(edges, 1, per_million),
            f"{edges:,.0f} edges at {per_million:g} MB per million plus 500 MB",
        )
        if streamed is not None and stream_encode_mb(*streamed) < needs[resident][0]:
            needs[resident] = (
                stream_encode_mb(*streamed),
                f"written as built: {streamed[0]:,.0f} nodes, "
                f"{streamed[1] / MB:,.0f} MB of weights",
            )
    for have, source in sorted(memory_limits(guard.limit_mb)):
        need_mb, how = needs[source not in ADDRESS_SPACE_LIMITS]
        if need_mb * MB > have:
            raise MemoryLimitError(
                f"{what} needs about {need_mb:,} MB ({how}) but only {have / MB:,.0f} MB may be "
                f"used here ({source}); use a smaller input, a machine with more memory, or "
                f"{guard.hint} to try anyway"
            )
