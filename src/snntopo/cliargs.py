"""Argument validators for the ``snntopo`` commands: a bad value stops at parse time with argparse's
one-line ``error: argument --width: ...`` instead of being accepted silently (``--width 0`` builds
an empty network, ``--threads 0`` deadlocks nothing but means nothing) or failing later with a
traceback.

``type=`` validators (:func:`positive_int`, :func:`positive_float`, :func:`threads`,
:func:`input_size`, :func:`seed`, :func:`sparsity`) run inside argparse; the checks that need
several arguments at once (:func:`check_out_not_input`, :func:`check_params`) run at the start of a
command and raise :class:`~snntopo.errors.ConfigError`, which the CLI prints as one line.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError

#: the smallest input side every registered architecture builds a meaningful network on: Conv-6's
#: three 2x2 poolings need 8 (and a multiple of 8), the ResNets' two stride-2 stages end at 2x2
MIN_INPUT_SIZE = 8


def _number(text: str, kind: type) -> Any:
    try:
        return kind(text)
    except (TypeError, ValueError):
        name = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{text!r} is not {name}") from None


def positive_int(text: str) -> int:
    """An integer >= 1."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be a positive integer (>= 1)")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be >= 0")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = _number(text, float)
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"{text} must be a finite number > 0")
    return value


def threads(text: str) -> int:
    """A thread count: an integer >= 1."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} threads: need at least 1")
    return value


def input_size(text: str) -> int:
    """An input side length >= :data:`MIN_INPUT_SIZE`."""
    value = _number(text, int)
    if value < MIN_INPUT_SIZE:
        raise argparse.ArgumentTypeError(
            f"{value} is too small; the smallest input side every architecture builds on is "
            f"{MIN_INPUT_SIZE}"
        )
    return value


def seed(text: str) -> int:
    """A seed in ``[0, 2**32 - 1]`` (see :data:`snntopo.config.MAX_SEED` for why 32 bits)."""
    from .config import check_seed

    value = _number(text, int)
    why = check_seed(value, "seed")
    if why:
        raise argparse.ArgumentTypeError(why.removeprefix("seed: "))
    return value


def sparsity(text: str) -> float:
    """A sparsity in ``[0, 1)``."""
    value = _number(text, float)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be in [0, 1)")
    return value


def _same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    pa, pb = Path(a), Path(b)
    if pa.exists() and pb.exists():
        return os.path.samefile(pa, pb)
    return pa.resolve() == pb.resolve()


def check_out_not_input(
    out: str | os.PathLike[str],
    inputs: Iterable[str | os.PathLike[str] | None],
    flag: str = "--out",
) -> None:
    """Refuse an output path that is one of the inputs (``snntopo metrics g.npz --out g.npz``
    would replace the graph with JSON)."""
    for src in inputs:
        if src is not None and _same_file(out, src):
            raise ConfigError(f"{flag} {out}: is the input file {src}; choose another output path")


def check_out_writable(out: str | os.PathLike[str], flag: str = "--out") -> None:
    """Fail before the work if the output's directory cannot be created or written to."""
    from .jobs import check_writable

    check_writable(out, what=flag)


def check_params(
    params: Mapping[str, Any], schema: Mapping[str, Any], where: str = "--param"
) -> None:
    """Validate ``params`` against a JSON schema of an object (e.g. a PaI method's registered
    ``params_schema``, or the config schema's ``metrics`` section); one line per problem."""
    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(dict(params)), key=lambda e: list(e.absolute_path))
    if errors:
        from .config import _bounds_of

        lines = []
        for e in errors:
            key = ".".join(str(p) for p in e.absolute_path) or "<params>"
            if e.validator in ("exclusiveMinimum", "exclusiveMaximum", "minimum", "maximum"):
                lines.append(f"{where} {key}={e.instance!r} is out of range{_bounds_of(e.schema)}")
            else:
                lines.append(f"{where} {key}: {e.message}")
        raise ConfigError("\n".join(lines))


def metric_params_schema() -> dict[str, Any]:
    """The config schema's ``metrics`` section without ``families`` (what ``--param`` sets)."""
    from .config import load_schema

    section = load_schema(use_registries=False)["properties"]["metrics"]
    props = {k: v for k, v in section["properties"].items() if k != "families"}
    return {"type": "object", "properties": props}


__all__ = [
    "MIN_INPUT_SIZE",
    "check_out_not_input",
    "check_out_writable",
    "check_params",
    "input_size",
    "metric_params_schema",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "seed",
    "sparsity",
    "threads",
]
