"""The typed job of one network: what the ``spec``, ``mask`` and ``train`` stages need, built
either from the workflow config (the Snakemake rules) or from command-line arguments (the CLI).

Why one object for both: the CLI and the DAG must not disagree. Both build a :class:`NetworkJob`
(``from_config`` / ``from_args``) and hand it to the same stage functions, so a data-driven PaI
method gets the same data root, download switch, device, input size and method settings from
``snntopo mask``/``snntopo encode`` as from the workflow. The rules pass ``job.params(stage)``,
a plain JSON-able dict holding only the fields that stage depends on (Snakemake's ``params``
rerun trigger then reruns a stage only when something it uses changed); the stage functions
accept that dict or the object itself (:meth:`NetworkJob.coerce`).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..names import DENSE

#: fields each stage depends on (besides the model fields)
_STAGE_FIELDS: dict[str, tuple[str, ...]] = {
    "spec": (),
    "mask": ("method", "sparsity", "seed", "device", "data_root", "download", "pai"),
    "train": ("method", "sparsity", "seed", "device", "data_root", "download", "training"),
}
_MODEL_FIELDS = (
    "arch",
    "dataset",
    "num_classes",
    "in_channels",
    "input_size",
    "width",
    "model_kwargs",
)


@dataclass(frozen=True)
class NetworkJob:
    """One network of the grid (``method == 'dense'``, sparsity 0: a dense baseline)."""

    arch: str
    dataset: str
    num_classes: int
    in_channels: int
    input_size: int
    width: float = 1.0
    method: str = DENSE
    sparsity: float = 0.0
    seed: int = 0
    device: str = "auto"
    data_root: str = "data"
    download: bool = False
    pai: Mapping[str, Any] = field(default_factory=dict)
    """Settings of ``method`` (the config's ``pai.<method>``)."""
    training: Mapping[str, Any] = field(default_factory=dict)
    """The training recipe of this (dataset, arch) after defaults and overrides."""
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Extra constructor arguments of an external architecture (config ``model.kwargs``)."""

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        dataset: str,
        arch: str,
        method: str = DENSE,
        sparsity: float = 0.0,
        seed: int = 0,
    ) -> NetworkJob:
        """The job of one grid point of a checked workflow config."""
        from ..config import input_size, training_settings
        from ..data import dataset_shape
        from ..models.external import unslug

        arch = unslug(arch)  # paths carry the slug of an external name, the job the full name
        num_classes, in_channels, size = dataset_shape(dataset, input_size(dict(config), dataset))
        kwargs = (config.get("model", {}).get("kwargs") or {}).get(arch) or {}
        return cls(
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

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> NetworkJob:
        """The job a CLI command describes. ``--config`` (a workflow config) supplies defaults for
        everything the workflow would use (model width and input size, data root, download,
        device, the method's settings, the training recipe); explicit flags override it."""
        from ..config import check_config, load_config

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
        job = cls.from_config(
            base, args.dataset, args.arch, method, sparsity, int(flag("seed") or 0)
        )
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
            from ..models.external import is_external

            if not is_external(job.arch):
                raise ConfigError(
                    f"--model-kwargs: architecture {job.arch!r} is bundled; constructor "
                    "arguments apply to torchvision:<name> and module:<path>:<fn> only"
                )
            for item in items:
                key, value = _parse_kv(item, "--model-kwargs")
                kwargs[key] = value
        return dataclasses.replace(job, pai=settings, model_kwargs=kwargs)

    @classmethod
    def coerce(cls, params: NetworkJob | Mapping[str, Any]) -> NetworkJob:
        """A job from a rule's ``params`` dict (or the job itself)."""
        if isinstance(params, NetworkJob):
            return params
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - names)
        if unknown:
            raise ConfigError(f"job parameters: unknown key(s) {unknown}")
        return cls(**{k: v for k, v in params.items() if k in names})

    # ------------------------------------------------------------------ use
    def params(self, stage: str) -> dict[str, Any]:
        """The JSON-able fields ``stage`` depends on (a rule's ``params``)."""
        keys = (*_MODEL_FIELDS, *_STAGE_FIELDS[stage])
        out = {k: getattr(self, k) for k in keys}
        for k in ("pai", "training", "model_kwargs"):
            if k in out:
                out[k] = dict(out[k])
        return out

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.input_size, self.input_size)

    @property
    def is_dense(self) -> bool:
        return self.method == DENSE

    def build_model(self, seed: int | None = None) -> Any:
        """The model with the paper's initialisation, seeded by ``seed`` (default: the job's)."""
        from ..models import build_model

        return build_model(
            self.arch,
            num_classes=self.num_classes,
            in_channels=self.in_channels,
            input_size=self.input_size,
            width=self.width,
            seed=self.seed if seed is None else seed,
            kwargs=dict(self.model_kwargs) or None,
        )


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
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def add_network_arguments(parser: argparse.ArgumentParser, *, method_default: str | None) -> None:
    """The options every per-network command shares: the same settings a workflow config has."""
    from .. import cliargs
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
        parser.add_argument("--sparsity", required=True, type=cliargs.sparsity)
    else:
        parser.add_argument("--method", default=method_default, choices=methods)
        parser.add_argument("--sparsity", type=cliargs.sparsity, default=0.0, help="0: dense")
    parser.add_argument(
        "--seed", type=cliargs.seed, default=0, help="initialisation and PaI randomness"
    )
    parser.add_argument(
        "--config", default=None, help="workflow config YAML whose settings to use as defaults"
    )
    parser.add_argument(
        "--width", type=cliargs.positive_float, default=None, help="channel width multiplier"
    )
    parser.add_argument(
        "--input-size", type=cliargs.input_size, default=None, help="default: the data set's"
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
