"""Workflow configuration: schema validation with messages a user can act on, defaults, and the
per-network settings (training recipe after overrides, input size) the stages need.

Why not only ``snakemake.utils.validate``: its messages are jsonschema dumps. Here every error names
the file and the key, lists the allowed values and suggests the closest one for a typo; the names of
architectures, data sets, methods, encodings and metric families come from the package registries,
so registering a new one is all it takes for the config to accept it.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .names import registry

#: the config schema ships inside the package, so a non-editable install finds it
SCHEMA_PATH = Path(__file__).resolve().with_name("schema.yaml")

#: schema location of a training override's ``match`` keys
_OVERRIDE_MATCH = (
    "training",
    "properties",
    "overrides",
    "items",
    "properties",
    "match",
    "properties",
)
#: schema locations whose allowed values come from a registry: path -> registry
_REGISTRY_ENUMS: dict[tuple[str, ...], str] = {
    ("datasets", "items"): "datasets",
    ("architectures", "items"): "architectures",
    ("methods", "items"): "methods",
    ("encodings", "items"): "encodings",
    ("metrics", "properties", "families", "items"): "families",
    ("model", "properties", "input_size", "propertyNames"): "datasets",
    (*_OVERRIDE_MATCH, "dataset"): "datasets",
    (*_OVERRIDE_MATCH, "arch"): "architectures",
    ("resources", "properties", "train_runtime_min_per_epoch", "propertyNames"): "architectures",
}
#: list-valued keys whose default is every registered name
_REGISTRY_DEFAULTS: dict[tuple[str, ...], str] = {
    ("encodings",): "encodings",
    ("metrics", "properties", "families"): "families",
}


def registry_names(kind: str) -> list[str]:
    """Names registered for a family."""
    return registry(kind).names()


def _node(schema: dict[str, Any], loc: tuple[str, ...]) -> dict[str, Any]:
    node = schema["properties"]
    for key in loc:
        node = node[key]
    return node


def load_schema(path: str | Path = SCHEMA_PATH, use_registries: bool = True) -> dict[str, Any]:
    """The config schema with the registries' facts filled in: the name enums, the defaults that
    are "every registered name", and each PaI method's settings schema."""
    schema = yaml.safe_load(Path(path).read_text())
    if use_registries:
        from .pai import params_schema

        for loc, kind in _REGISTRY_ENUMS.items():
            parent = _node(schema, loc[:-1])
            parent[loc[-1]] = {"enum": registry_names(kind)}
        for loc, kind in _REGISTRY_DEFAULTS.items():
            _node(schema, loc[:-1])[loc[-1]]["default"] = registry_names(kind)
        schema["properties"]["pai"]["properties"] = {
            m: params_schema(m) for m in registry_names("methods")
        }
    return schema


def write_effective_schema(
    dest: str | Path, path: str | Path = SCHEMA_PATH, config: dict[str, Any] | None = None
) -> str:
    """Write the registry-aware schema to ``dest`` (for ``snakemake.utils.validate``); with
    ``config``, its (already checked) external architecture names are allowed too."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    schema = load_schema(path)
    if config is not None:
        schema = _accept_external_archs(config, schema, "")
    text = yaml.safe_dump(schema, sort_keys=False)
    if not dest.exists() or dest.read_text() != text:
        dest.write_text(text)
    return str(dest)


def _key(path: Iterator[Any] | list[Any]) -> str:
    parts = [str(p) if not isinstance(p, int) else f"[{p}]" for p in path]
    out = ""
    for p in parts:
        out += p if p.startswith("[") else (f".{p}" if out else p)
    return out or "<top level>"


Source = str | Callable[[list[Any]], str]


def _where(source: Source, path: list[Any]) -> str:
    """``"<file>: "`` for a message about the key at ``path``; ``source`` may name the file
    itself or be a function of the key path (layered configs: the layer that set that key)."""
    name = source(path) if callable(source) else source
    return f"{name}: " if name else ""


def _describe(error: Any, source: Source) -> str:
    """Turn one jsonschema error into a one-line message naming the file and the key."""
    path = list(error.absolute_path)
    key = _key(path)
    where = _where(source, path)
    validator = error.validator
    if validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        msgs = []
        for name in extra:
            where = _where(source, [*path, name])
            full = f"{key}.{name}" if key != "<top level>" else name
            close = difflib.get_close_matches(name, allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            msgs.append(f"{where}unknown key {full!r}{hint} (allowed keys: {', '.join(allowed)})")
        return "\n".join(msgs)
    if validator == "required":
        missing = [
            k
            for k in error.validator_value
            if isinstance(error.instance, dict) and k not in error.instance
        ]
        parent = "" if key == "<top level>" else f"{key}."
        return "\n".join(f"{where}missing required key {parent}{k}" for k in missing or ["?"])
    if validator == "enum":
        allowed = [str(v) for v in error.validator_value]
        close = difflib.get_close_matches(str(error.instance), allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return (
            f"{where}{key}: {error.instance!r} is not allowed{hint}; "
            f"allowed values: {', '.join(allowed)}"
        )
    if validator == "propertyNames":
        return f"{where}{key}: {error.message}"
    if validator in ("exclusiveMinimum", "exclusiveMaximum", "minimum", "maximum"):
        bounds = _bounds_of(
            error.parent_schema if hasattr(error, "parent_schema") else error.schema
        )
        return f"{where}{key}: {error.instance!r} is out of range{bounds}"
    return f"{where}{key}: {error.message}"


def _bounds_of(schema: dict[str, Any]) -> str:
    lo = (
        f"({schema['exclusiveMinimum']}"
        if "exclusiveMinimum" in schema
        else f"[{schema['minimum']}"
        if "minimum" in schema
        else "(-inf"
    )
    hi = (
        f"{schema['exclusiveMaximum']})"
        if "exclusiveMaximum" in schema
        else f"{schema['maximum']}]"
        if "maximum" in schema
        else "inf)"
    )
    return f"; must be in {lo}, {hi}"


def check_config(
    config: dict[str, Any],
    source: Source = "",
    schema: dict[str, Any] | None = None,
    *,
    grid: bool = True,
) -> dict[str, Any]:
    """Validate ``config`` and return a copy with schema defaults filled in.

    ``grid=False`` skips the checks that only concern a whole workflow grid (whether the analysis
    can cross-validate it): a one-network command line has no analysis.

    Raises :class:`ConfigError` listing every problem, one line each (each once), naming the source
    and the key. ``source`` is a file name, or a function of the key path naming the layer that set
    the key (see :mod:`snntopo.overrides`).
    """
    import jsonschema

    schema = schema if schema is not None else load_schema()
    if not isinstance(config, dict) or not config:
        raise ConfigError(
            f"{_where(source, []) or 'config: '}the configuration is empty or not a mapping"
        )
    bad = _non_finite(config)
    if bad:
        raise ConfigError(
            "\n".join(
                f"{_where(source, path)}{_key(path)}: {value!r} is not a finite number"
                for path, value in bad
            )
        )
    schema = _accept_external_archs(config, schema, source)
    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [line for e in errors for line in _describe(e, source).splitlines()]
        raise ConfigError("\n".join(dict.fromkeys(lines)))
    out = copy.deepcopy(config)
    _fill_defaults(out, schema)
    _check_semantics(out, source, grid=grid)
    return out


def _non_finite(obj: Any, path: tuple[Any, ...] = ()) -> list[tuple[list[Any], float]]:
    """Every NaN or infinity in a config (YAML's ``.nan``/``.inf``; the schema's range checks
    compare false with NaN and let it through), with its key path."""
    import math

    if isinstance(obj, float) and not math.isfinite(obj):
        return [(list(path), obj)]
    if isinstance(obj, dict):
        return [x for k, v in obj.items() for x in _non_finite(v, (*path, k))]
    if isinstance(obj, list):
        return [x for i, v in enumerate(obj) for x in _non_finite(v, (*path, i))]
    return []


def _accept_external_archs(
    config: dict[str, Any], schema: dict[str, Any], source: Source
) -> dict[str, Any]:
    """``torchvision:<name>`` / ``module:<path>:<fn>`` architectures: checked here without torch
    (unknown torchvision names get a "did you mean"), then allowed by the schema's enum."""
    from .models.external import is_external, validate_name

    archs = config.get("architectures")
    if not isinstance(archs, list):
        return schema
    where = f"{_where(source, ['architectures'])}architectures"
    ext = [a for a in archs if isinstance(a, str) and is_external(a)]
    if not ext:
        return schema
    from .gridpoint import slug, slug_collisions

    for a, b in slug_collisions(ext):
        raise ConfigError(
            f"{where}: {a!r} and {b!r} share the path form {slug(a)!r}; one network would "
            "take the other's place (rename one)"
        )
    for a in ext:
        validate_name(a, where=where)
    schema = copy.deepcopy(schema)
    items = schema["properties"]["architectures"]["items"]
    if "enum" in items:
        items["enum"] = [*items["enum"], *ext]
    return schema


def _fill_defaults(obj: dict[str, Any], schema: dict[str, Any]) -> None:
    for name, sub in schema.get("properties", {}).items():
        if name not in obj and "default" in sub:
            obj[name] = copy.deepcopy(sub["default"])
        if isinstance(obj.get(name), dict) and sub.get("type") == "object":
            _fill_defaults(obj[name], sub)


#: torch's CPU generator (a Mersenne Twister) keeps only the low 32 bits of a seed, so seeds that
#: differ by 2**32 would draw identical masks, inits and batches; numpy's legacy RandomState (used
#: by scikit-learn in the analysis) rejects seeds >= 2**32 outright
MAX_SEED = 2**32 - 1
#: the metric family whose per-layer output holds the layer densities the analysis needs
#: (``tables/ramanujan_layers.csv``, ``analysis/ramanujan_density.csv``)
LAYER_DENSITY_FAMILY = "ramanujan"


def _check_semantics(config: dict[str, Any], source: Source, grid: bool = True) -> None:
    """What the schema cannot say but would otherwise fail late (after every training job) or
    silently: the training recipe every (dataset, arch) of the grid actually gets (with the
    trainer's own rules), seeds, the results directory, the sparsity path tags, metric families
    that apply to no configured encoding, and a grid the analysis cannot cross-validate."""
    from .train import TrainConfig

    where = _where(source, ["training"])
    errors: list[str] = []
    idle: dict[tuple[int, tuple[int, ...]], list[str]] = {}
    for dataset in config["datasets"]:
        for arch in config["architectures"]:
            at = f"training (dataset {dataset}, arch {arch})"
            cfg = TrainConfig.from_dict(training_settings(config, dataset, arch), where=where + at)
            error, late = recipe_against_data(cfg, dataset, at)
            errors += [error] if error else []
            if late:
                idle.setdefault((cfg.epochs, late), []).append(f"{dataset}/{arch}")
    for i, ov in enumerate(config.get("training", {}).get("overrides", [])):
        match = ov.get("match", {})
        if grid and not any(
            match.get("dataset", d) == d and match.get("arch", a) == a
            for d in config["datasets"]
            for a in config["architectures"]
        ):
            warn_once(
                f"{where}training.overrides[{i}]: match {match} fits no (dataset, arch) of the "
                "grid; it is never applied"
            )
    pairs = len(config["datasets"]) * len(config["architectures"])
    for (epochs, late), points in idle.items():
        warn_once(
            f"{where}training.milestones: {list(late)} never take effect in {epochs} epoch(s) "
            f"({len(points)} of the grid's {pairs} (dataset, arch) pairs); the learning rate is "
            "not decayed there"
        )
    errors += [
        *_check_model_kwargs(config),
        *_check_seeds(config),
        *_check_results(config),
        *_check_sparsities(config),
        *_check_families(config),
        *(_check_analysis_grid(config) if grid else []),
    ]
    if errors:
        raise ConfigError("\n".join(f"{_where(source, _key_path(e))}{e}" for e in errors))


_WARNED: set[str] = set()


def warn_once(message: str) -> None:
    """One line on stderr (logger ``snntopo.config``), once per process and message: a config
    that is valid but probably not what was meant (e.g. learning-rate milestones past the last
    epoch, as in a short smoke run with the paper's schedule)."""
    import logging

    if message not in _WARNED:
        _WARNED.add(message)
        logging.getLogger("snntopo.config").warning("warning: %s", message)


def recipe_against_data(cfg: Any, dataset: str, where: str) -> tuple[str | None, tuple[int, ...]]:
    """What a valid training recipe (a ``TrainConfig``) gets wrong for ``dataset``: the error of
    a batch larger than its training images (every epoch one batch of the whole set), and the
    milestones at or past the last epoch (never applied; a warning). The config check and
    ``snntopo train`` both call this."""
    from .data import dataset_info

    images = dataset_info(dataset).train_images
    error = None
    if cfg.batch_size > images:
        error = (
            f"{where}.batch_size: {cfg.batch_size} is larger than the {images:,} training "
            f"images of {dataset}; every epoch would be one batch of {images:,} "
            "(lower training.batch_size)"
        )
    late = tuple(m for m in cfg.milestones if m >= cfg.epochs) if cfg.epochs > 0 else ()
    return error, late


def check_model_kwargs(arch: str, where: str = "model.kwargs") -> None:
    """Constructor arguments apply to external architectures only (a bundled model is built
    by snntopo with its ``width``): the config check and ``--model-kwargs`` both call this."""
    from .models.external import is_external

    if not is_external(arch):
        raise ConfigError(
            f"{where}: architecture {arch!r} is not external; constructor arguments apply to "
            "torchvision:<name> and module:<path>:<fn> only (bundled models take model.width)"
        )


def _key_path(message: str) -> list[Any]:
    """The key path a ``"key.sub[0]: ..."`` message is about (for naming the layer that set it)."""
    import re

    key = message.split(":", 1)[0].strip()
    if not re.fullmatch(r"[A-Za-z_][\w-]*(\.[\w-]+|\[\d+\])*", key):
        return []
    return [int(p[1:-1]) if p.startswith("[") else p for p in re.findall(r"[\w-]+|\[\d+\]", key)]


def check_seed(value: Any, key: str = "seed") -> str | None:
    """Why ``value`` is not a usable seed (``None`` when it is)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{key}: {value!r} is not an integer"
    if not 0 <= value <= MAX_SEED:
        return (
            f"{key}: {value} is out of range; must be in [0, {MAX_SEED}] (torch's CPU generator "
            "keeps only 32 bits of a seed, so larger seeds would repeat smaller ones)"
        )
    return None


def _check_model_kwargs(config: dict[str, Any]) -> list[str]:
    out = []
    for arch in config.get("model", {}).get("kwargs") or {}:
        try:
            check_model_kwargs(arch, f"model.kwargs.{arch}")
        except ConfigError as exc:
            out.append(str(exc))
    return out


def _check_seeds(config: dict[str, Any]) -> list[str]:
    found = [check_seed(s, f"seeds[{i}]") for i, s in enumerate(config["seeds"])]
    found.append(check_seed(config.get("analysis", {}).get("seed", 0), "analysis.seed"))
    return [e for e in found if e]


def _check_results(config: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for key in ("results", "data_root"):
        value = config.get(key)
        if value is None:
            continue
        if not str(value).strip():
            out.append(f"{key}: {value!r} is empty; give a directory such as {key!r}")
        elif key == "results" and Path(str(value)).expanduser().resolve() == Path("/").resolve():
            out.append(f"{key}: {value!r} is the filesystem root; give a directory of its own")
    return out


def _check_sparsities(config: dict[str, Any]) -> list[str]:
    from .names import sparsity_tag

    seen: dict[str, float] = {}
    out = []
    for i, s in enumerate(config["sparsities"]):
        tag = sparsity_tag(s)
        if float(tag) != float(s):  # pragma: no cover - sparsity_tag is exact
            out.append(f"sparsities[{i}]: {s!r} has no exact path tag")
        if tag in seen:
            out.append(f"sparsities[{i}]: {s!r} has the same path tag s{tag} as {seen[tag]!r}")
        seen[tag] = s
    return out


def _check_families(config: dict[str, Any]) -> list[str]:
    from .metrics import family_encoding_names

    encodings = list(config["encodings"])
    families = list(config["metrics"]["families"])
    out = []
    for i, fam in enumerate(families):
        if not family_encoding_names(fam, encodings):
            fits = family_encoding_names(fam)
            out.append(
                f"metrics.families[{i}]: {fam!r} applies to none of encodings {encodings} "
                f"(it applies to {fits}); add one of those to encodings or drop {fam!r}"
            )
    if LAYER_DENSITY_FAMILY not in families or not family_encoding_names(
        LAYER_DENSITY_FAMILY, encodings
    ):
        out.append(
            f"metrics.families: {families} lacks {LAYER_DENSITY_FAMILY!r} on a layer-wise "
            f"encoding ({family_encoding_names(LAYER_DENSITY_FAMILY)}); the analysis needs its "
            "per-layer densities (tables/ramanujan_layers.csv, analysis/ramanujan_density.csv)"
        )
    return out


def _check_analysis_grid(config: dict[str, Any]) -> list[str]:
    """The analysis cross-validates over configurations (dataset, arch, method, sparsity), never
    splitting one configuration's seeds: it needs at least ``n_splits`` (>= 2) of them."""
    n_splits = int(config.get("analysis", {}).get("n_splits", 5))
    sizes = {k: len(config[k]) for k in ("datasets", "architectures", "methods", "sparsities")}
    n = sizes["datasets"] * sizes["architectures"] * sizes["methods"] * sizes["sparsities"]
    if n >= max(2, n_splits):
        return []
    grid = " x ".join(f"{v} {k}" for k, v in sizes.items())
    return [
        f"analysis.n_splits: {n_splits} folds need at least {max(2, n_splits)} configurations "
        f"(dataset, arch, method, sparsity), but the grid has {n} ({grid}); add methods or "
        "sparsities, or lower analysis.n_splits"
    ]


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file and validate it (errors name the file)."""
    from .overrides import load_layer_file  # the one reader of config files

    layer = load_layer_file(path)
    return check_config(layer.values, source=layer.name)


def training_settings(config: dict[str, Any], dataset: str, arch: str) -> dict[str, Any]:
    """The training recipe of one (dataset, arch): the config's defaults, then the architecture's
    registered recipe (fact ``training``, e.g. WRN-28-2's weight decay), then the config's
    matching ``overrides`` in order (so the config always has the last word)."""
    from .models import arch_facts

    train = {k: v for k, v in config.get("training", {}).items() if k != "overrides"}
    train.update(arch_facts(arch).training)
    for ov in config.get("training", {}).get("overrides", []):
        match = ov["match"]
        if match.get("dataset", dataset) == dataset and match.get("arch", arch) == arch:
            train.update(ov["set"])
    return train


def input_size(config: dict[str, Any], dataset: str) -> int:
    """Input side length for ``dataset``: config override, else the data set's own default."""
    override = config.get("model", {}).get("input_size", {}).get(dataset)
    if override is not None:
        return int(override)
    from .data import dataset_info

    return int(dataset_info(dataset).input_size)
