"""The grid point: the five keys that name one network, their path form, parsing and slugs.

One network of the study is ``(dataset, arch, method, sparsity, seed)``; ``method == 'dense'``
with sparsity 0 is the dense baseline of ``(dataset, arch, seed)``. Everything that names a
network — the planner's grid and paths, the rules' wildcard patterns, the artifacts' ``network``
keys, the tables' key columns and the check that an artifact sits in its own network's directory
— asks this module, so the layout is spelled once:

    {results}/{dataset}/{arch slug}/{method}/s{sparsity tag}/seed{seed}

Paths carry an external architecture's slug (``torchvision:resnet18`` -> ``torchvision__resnet18``,
``module:pkg.mod:make`` -> ``module__pkg.mod__make``), artifacts and tables its full name.
Core module: standard library only (numpy for the sparsity tag, imported when used).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

#: the keys of a grid point, in table-column order
KEYS = ("dataset", "arch", "method", "sparsity", "seed")
#: the method of the dense baselines (sparsity 0)
DENSE = "dense"

TORCHVISION = "torchvision:"
MODULE = "module:"
_SEP = "__"


class NetworkKeys(TypedDict):
    """The grid point a per-network artifact belongs to (as its ``network`` block records it)."""

    dataset: str
    arch: str
    method: str
    sparsity: float
    seed: int


def slug(name: str) -> str:
    """File-system-safe form of an architecture name (bundled names are their own slug)."""
    name = str(name)
    full = unslug(name)
    if not (full.startswith(TORCHVISION) or full.startswith(MODULE)):
        return name
    return full.replace(":", _SEP)


def unslug(name: str) -> str:
    """Inverse of :func:`slug` (names that are not external slugs come back unchanged)."""
    name = str(name)
    for prefix in (TORCHVISION, MODULE):
        head = prefix[:-1] + _SEP
        if name.startswith(head):
            rest = name[len(head) :]
            if prefix == MODULE and _SEP in rest:
                path, _, fn = rest.rpartition(_SEP)
                return f"{prefix}{path}:{fn}"
            return prefix + rest
    return name


#: the longest architecture slug accepted: one path component (NAME_MAX is 255 bytes on the
#: usual file systems) with room for the suffixes of the files named after it
MAX_SLUG_BYTES = 200


def slug_problem(name: str) -> str | None:
    """Why ``name`` has no usable path form, or ``None``: its slug must read back as the same
    name (``module:a:b__c`` and ``module:a__b:c`` would share ``module__a__b__c``; the first
    reads back as the second) and fit :data:`MAX_SLUG_BYTES`."""
    s = slug(name)
    if unslug(s) != str(name):
        return (
            f"its path form {s!r} reads back as {unslug(s)!r} ('__' inside a module:<path>:<fn> "
            "name cannot be told from the ':' separators); rename the callable or module"
        )
    if len(s.encode()) > MAX_SLUG_BYTES:
        return f"its path form is {len(s.encode())} bytes long (at most {MAX_SLUG_BYTES})"
    return None


def slug_collisions(names: list[str]) -> list[tuple[str, str]]:
    """Pairs of distinct names in ``names`` that share a path form (same slug)."""
    first: dict[str, str] = {}
    out = []
    for n in names:
        s = slug(n)
        if s in first and first[s] != n:
            out.append((first[s], n))
        first.setdefault(s, n)
    return out


def sparsity_tag(sparsity: float | str) -> str:
    """The path form of a sparsity: exact and round-trippable, digits and one dot only.

    ``0.9 -> '0.9'``, ``0.9000001 -> '0.9000001'``, ``1e-05 -> '0.00001'``, ``0 -> '0'``: the
    shortest positional decimal that reads back as the same float (``float(tag) == sparsity``), so
    two distinct sparsities never share a directory and the tag matches the workflow's
    ``sparsity`` wildcard (``[0-9.]+``; an exponent would not). A string (a rule's wildcard, or a
    ``{sparsity}`` placeholder) is already a tag and is returned as it is.
    """
    if isinstance(sparsity, str):
        return sparsity
    import numpy as np

    value = float(sparsity)
    tag = np.format_float_positional(value, unique=True, trim="-")
    if float(tag) != value:  # pragma: no cover - numpy guarantees the round trip
        raise ValueError(f"sparsity {value!r} has no exact path tag")
    return tag


def network_dir(
    results: str, dataset: str, arch: str, method: str, sparsity: float | str, seed: int | str
) -> str:
    """The directory of one network's artifacts (the one place the layout is written)."""
    return f"{results}/{dataset}/{slug(arch)}/{method}/s{sparsity_tag(sparsity)}/seed{seed}"


def network_pattern(results: str | None = None) -> str:
    """:func:`network_dir` with Snakemake wildcards for the keys (``{dataset}/{arch}/...``);
    without ``results``, the part under it (a log or benchmark file's name)."""
    path = network_dir("", "{dataset}", "{arch}", "{method}", "{sparsity}", "{seed}")
    return path.lstrip("/") if results is None else f"{results}{path}"


def wildcards_dir(results: str, wc: Any) -> str:
    """:func:`network_dir` of the grid point a rule's wildcards name (attributes or keys)."""

    def get(key: str) -> Any:
        return wc[key] if isinstance(wc, Mapping) else getattr(wc, key)

    return network_dir(results, *(get(k) for k in KEYS))


def parse_path(path: str | Path) -> dict[str, Any] | None:
    """The keys a path inside a network's directory names (the deepest match; ``arch`` as the path
    spells it, i.e. the slug; ``sparsity`` a float, ``seed`` an int), or ``None`` for a path
    outside that layout."""
    parts = Path(path).parts
    for i in range(len(parts) - 5, -1, -1):
        d, a, m, s, seed = parts[i : i + 5]
        if not (s.startswith("s") and seed.startswith("seed")):
            continue
        try:
            return {
                "dataset": d,
                "arch": a,
                "method": m,
                "sparsity": float(s[1:]),
                "seed": int(seed[4:]),
            }
        except ValueError:
            continue
    return None


def network_keys(dataset: str, arch: str, method: str, sparsity: Any, seed: Any) -> NetworkKeys:
    """The keys an artifact records: the full architecture name, typed sparsity and seed."""
    return NetworkKeys(
        dataset=str(dataset),
        arch=unslug(str(arch)),
        method=str(method),
        sparsity=float(sparsity),
        seed=int(seed),
    )


@dataclass(frozen=True)
class GridPoint:
    """One grid point as the planner enumerates it (``arch`` is the path's slug)."""

    dataset: str
    arch: str
    method: str
    sparsity: float
    seed: int

    @property
    def tag(self) -> str:
        return sparsity_tag(self.sparsity)

    def path(self, results: str) -> str:
        return network_dir(results, self.dataset, self.arch, self.method, self.sparsity, self.seed)

    def keys(self) -> NetworkKeys:
        return network_keys(self.dataset, self.arch, self.method, self.sparsity, self.seed)


__all__ = [
    "DENSE",
    "MAX_SLUG_BYTES",
    "KEYS",
    "GridPoint",
    "NetworkKeys",
    "network_dir",
    "network_keys",
    "network_pattern",
    "parse_path",
    "slug",
    "slug_collisions",
    "slug_problem",
    "sparsity_tag",
    "unslug",
    "wildcards_dir",
]
