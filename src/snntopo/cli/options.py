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
import dataclasses
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..names import DENSE

if TYPE_CHECKING:
    from ..stages.network import NetworkJob

#: the smallest input side every registered architecture builds a meaningful network on: Conv-6's
#: three 2x2 poolings need 8 (and a multiple of 8), the ResNets' two stride-2 stages end at 2x2
MIN_INPUT_SIZE = 8
#: the largest input side (the config schema's ``model.input_size`` bound): a 100000-pixel side
#: asked torch for 72 TB of activations and died with an allocator traceback
MAX_INPUT_SIZE = 256


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
    if value > MAX_INPUT_SIZE:
        raise argparse.ArgumentTypeError(
            f"{value} is too large; at most {MAX_INPUT_SIZE} (as the config's model.input_size)"
        )
    return value


def seed(text: str) -> int:
    """A seed in ``[0, 2**32 - 1]`` (see :data:`snntopo.config.MAX_SEED` for why 32 bits)."""
    from ..config import check_seed

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
    if value == 0 and any(c in "123456789" for c in text.lower().split("e")[0]):
        # 1e-400 reads as 0.0, and sparsity 0 means the dense network
        raise argparse.ArgumentTypeError(f"{text} underflows to 0 (the dense network)")
    return value


def _same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    pa, pb = Path(a), Path(b)
    if pa.exists() and pb.exists():
        return os.path.samefile(pa, pb)
    return _resolve(pa) == _resolve(pb)


def _resolve(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop: RuntimeError before Python 3.13
        raise ConfigError(f"{path}: cannot resolve the path ({exc})") from None


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
    from ..io import check_writable

    check_writable(out, what=flag)


def check_params(
    params: Mapping[str, Any], schema: Mapping[str, Any], where: str = "--param"
) -> None:
    """Validate ``params`` against a JSON schema of an object (e.g. a PaI method's registered
    ``params_schema``, or the config schema's ``metrics`` section); one line per problem."""
    import jsonschema

    from ..config import _non_finite

    # NaN passes the schema's range checks (every comparison is false); a NaN eigensolver
    # tolerance then ran for hours
    bad = [(k, v) for k, v in params.items() if _non_finite(v)]
    if bad:
        raise ConfigError("\n".join(f"{where} {k}={v!r} is not a finite number" for k, v in bad))
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(dict(params)), key=lambda e: list(e.absolute_path))
    if errors:
        from ..config import _bounds_of

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
    from ..config import load_schema

    section = load_schema(use_registries=False)["properties"]["metrics"]
    props = {k: v for k, v in section["properties"].items() if k != "families"}
    return {"type": "object", "properties": props}


def job_from_args(args: argparse.Namespace) -> NetworkJob:
    """The job a CLI command describes. ``--config`` (a workflow config) supplies defaults for
    everything the workflow would use (model width and input size, data root, download,
    device, the method's settings, the training recipe); explicit flags override it."""
    from ..config import check_config, load_config
    from ..workflow import job_from_config

    def flag(name: str) -> Any:
        return getattr(args, name, None)

    base: dict[str, Any]
    if flag("config"):
        base = load_config(flag("config"))
    else:  # the schema's defaults and the paper's recipe for a one-network grid
        from ..train import paper_recipe

        base = check_config(
            {
                "datasets": [args.dataset],
                "architectures": [args.arch],
                "methods": ["erk"],
                "sparsities": [0.5],
                "seeds": [0],
            },
            source="command line",
            grid=False,
        )
        base["training"] = {**base["training"], **paper_recipe(args.dataset, args.arch)}
    if flag("width") is not None:
        base["model"] = {**base.get("model", {}), "width": float(flag("width"))}
    if flag("input_size") is not None:
        sizes = {
            **base.get("model", {}).get("input_size", {}),
            args.dataset: flag("input_size"),
        }
        base["model"] = {**base.get("model", {}), "input_size": sizes}
    for key in ("data_root", "device"):
        if flag(key) is not None:
            base[key] = flag(key)
    if flag("download"):
        base["download"] = True
    method = flag("method") or DENSE
    sparsity = float(flag("sparsity") or 0.0)
    if method == DENSE or sparsity == 0.0:
        method, sparsity = DENSE, 0.0
    job = job_from_config(base, args.dataset, args.arch, method, sparsity, int(flag("seed") or 0))
    settings = dict(job.pai)
    for item in flag("pai_param") or []:
        key, value = _parse_kv(item, "--pai-param")
        settings[key] = value
    if flag("batch_size") is not None and method != DENSE:
        settings["batch_size"] = int(flag("batch_size"))
    if method != DENSE and settings != dict(job.pai):
        _check_pai_settings(method, settings)
    kwargs = dict(job.model_kwargs)
    items = flag("model_kwargs") or []
    if items:
        from ..config import check_model_kwargs

        check_model_kwargs(job.arch, "--model-kwargs")
        for item in items:
            key, value = _parse_kv(item, "--model-kwargs")
            kwargs[key] = value
    return dataclasses.replace(job, pai=settings, model_kwargs=kwargs)


def _check_pai_settings(method: str, settings: Mapping[str, Any]) -> None:
    """Command-line PaI settings against the method's registered schema (as the config's are)."""
    import jsonschema

    from ..pai import params_schema

    errors = list(jsonschema.Draft202012Validator(params_schema(method)).iter_errors(settings))
    if errors:
        e = errors[0]
        where = ".".join(str(p) for p in e.absolute_path) or method
        raise ConfigError(f"--pai-param {where}: {e.message}")


def _parse_kv(item: str, flag: str) -> tuple[str, Any]:
    import json

    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return key, raw
    from ..config import _non_finite

    if _non_finite(value):  # NaN / Infinity are JSON to Python; a NaN tolerance never converges
        raise ConfigError(f"{flag} {key}={raw}: not a finite number")
    return key, value


def add_network_arguments(parser: argparse.ArgumentParser, *, method_default: str | None) -> None:
    """The options every per-network command shares: the same settings a workflow config has."""
    from ..data import DATASETS
    from ..models import MODELS, arch_name
    from ..pai import METHODS

    parser.add_argument(
        "--arch",
        required=True,
        type=arch_name,
        help=f"architecture: {', '.join(MODELS.names())}, torchvision:<name> or "
        "module:<dotted.path>:<callable>",
    )
    parser.add_argument("--dataset", required=True, help=f"data set: {', '.join(DATASETS.names())}")
    methods = [*METHODS.names(), DENSE]
    if method_default is None:
        parser.add_argument("--method", required=True, choices=methods)
        parser.add_argument("--sparsity", required=True, type=sparsity)
    else:
        parser.add_argument("--method", default=method_default, choices=methods)
        parser.add_argument("--sparsity", type=sparsity, default=0.0, help="0: dense")
    parser.add_argument("--seed", type=seed, default=0, help="initialisation and PaI randomness")
    parser.add_argument(
        "--config", default=None, help="workflow config YAML whose settings to use as defaults"
    )
    parser.add_argument(
        "--width", type=positive_float, default=None, help="channel width multiplier"
    )
    parser.add_argument(
        "--input-size", type=input_size, default=None, help="default: the data set's"
    )
    parser.add_argument("--data-root", default=None, help="where the data sets live (data)")
    parser.add_argument("--download", action="store_true", help="download missing data sets")
    parser.add_argument("--device", default=None, help="auto (CUDA if present), cpu, cuda:1")
    parser.add_argument(
        "--pai-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting of the PaI method (the config's pai.<method>), e.g. rounds=20",
    )
    parser.add_argument(
        "--model-kwargs",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an extra constructor argument of a torchvision:/module: architecture (value "
        "parsed as JSON; the config's model.kwargs), e.g. dropout=0.2",
    )


__all__ = [
    "MIN_INPUT_SIZE",
    "add_network_arguments",
    "check_out_not_input",
    "check_out_writable",
    "check_params",
    "input_size",
    "job_from_args",
    "metric_params_schema",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "seed",
    "sparsity",
    "threads",
]


def add_memory_arguments(parser: argparse.ArgumentParser) -> None:
    """``--mem-limit-mb``/``--force-memory`` of the graph commands (:mod:`snntopo.memcheck`)."""
    parser.add_argument(
        "--mem-limit-mb",
        type=positive_float,
        default=None,
        help="memory this job may use, in MB (also bounded by ulimit, the cgroup and "
        "MemAvailable); a job whose estimated peak exceeds it stops before it starts",
    )
    parser.add_argument(
        "--force-memory",
        action="store_true",
        help="run even when the estimated peak memory exceeds the memory available",
    )


def memory_guard(args: argparse.Namespace) -> Any:
    """The :class:`snntopo.memcheck.MemoryGuard` of ``--mem-limit-mb``/``--force-memory``."""
    from ..memcheck import MemoryGuard

    return MemoryGuard(limit_mb=args.mem_limit_mb, force=bool(args.force_memory))
