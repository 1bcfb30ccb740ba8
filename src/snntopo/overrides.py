"""The workflow's configuration as Snakemake layers it: the defaults (``config/config.yaml``), then
every ``--configfile`` in order, then ``--config key=value`` — each layer merged into the one before
(mappings key by key, everything else replaced).

Why this module: Snakemake reads ``--config`` values with YAML's *base* loader, so
``download=true`` arrives as the string ``'true'`` and ``seeds=[0]`` as ``['0']``; and once the
layers are merged nobody knows which one a bad value came from. Here the command-line values are
re-typed the way YAML reads them, and :func:`source_of` names the layer that set a key, so a
config error says ``--config download=maybe`` or ``my-overlay.yaml`` instead of blaming a file that
never held the value. Torch-free: it runs when Snakemake plans the DAG.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


@dataclass(frozen=True)
class Layer:
    """One source of configuration values: a file, or the ``--config`` entries."""

    name: str
    values: dict[str, Any]

    def sets(self, path: Sequence[Any]) -> bool:
        """Whether this layer sets the key at ``path`` (a value or a mapping holding it)."""
        node: Any = self.values
        for key in path:
            if isinstance(node, Mapping) and key in node:
                node = node[key]
                continue
            # a list is replaced whole: whoever set the list set its items
            return isinstance(node, list) and isinstance(key, int)
        return True


def yaml_typed(value: Any) -> Any:
    """A ``--config`` value as YAML reads it: ``'true'`` -> True, ``'0.9'`` -> 0.9, ``['0']`` ->
    [0]; strings that are not YAML scalars stay strings."""
    if isinstance(value, Mapping):
        return {k: yaml_typed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [yaml_typed(v) for v in value]
    if isinstance(value, str):
        try:
            typed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        return typed if isinstance(typed, bool | int | float) or typed is None else value
    return value


#: the most nodes a config file's YAML may expand to once its aliases are followed (the
#: shipped configs have a few hundred): a "billion laughs" file of nested aliases is refused
#: before anything walks it
MAX_YAML_NODES = 100_000


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (YAML keeps the last one
    silently)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                continue  # SafeLoader reports unhashable keys itself
            if key in seen:
                raise ConfigError(
                    f"key {key!r} is given twice in one mapping (lines "
                    f"{seen[key].start_mark.line + 1} and {key_node.start_mark.line + 1})"
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: Any, memo: dict[int, int], limit: int) -> int:
    """Nodes of ``node`` with every alias expanded (memoised per node, so a bomb is counted
    without being expanded), saturating just above ``limit``."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = limit + 1  # a cycle counts as too large
    if isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    else:
        children = []
    total = 1
    for child in children:
        total = min(limit + 1, total + _expanded_size(child, memo, limit))
        if total > limit:
            break
    memo[id(node)] = total
    return total


def strict_yaml(text: str | bytes, where: str) -> Any:
    """YAML as the config files are read: UTF-8 only, no key twice in a mapping, aliases that
    expand to at most :data:`MAX_YAML_NODES` nodes; each problem one :class:`ConfigError` line
    naming ``where``."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{where}: not UTF-8 text (byte 0x{text[exc.start]:02x} at offset {exc.start})"
            ) from None
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}, MAX_YAML_NODES) > MAX_YAML_NODES:
            raise ConfigError(
                f"{where}: its YAML aliases expand to more than {MAX_YAML_NODES:,} values "
                "(an alias bomb?)"
            )
        return loader.construct_document(node)
    except ConfigError as exc:
        raise ConfigError(str(exc) if str(exc).startswith(where) else f"{where}: {exc}") from None
    except (yaml.YAMLError, RecursionError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else "parse error"
        raise ConfigError(f"{where}: not valid YAML ({first})") from None
    finally:
        loader.dispose()


def load_layer_file(path: str | Path) -> Layer:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read ({exc.strerror or exc})") from None
    values = strict_yaml(raw, str(p))
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{p}: the configuration is not a mapping of keys to values")
    return Layer(str(p), values)


def command_line_layer(overrides: Mapping[str, Any]) -> Layer:
    return Layer("--config", {k: yaml_typed(v) for k, v in overrides.items()})


def merge(layers: Sequence[Layer]) -> dict[str, Any]:
    """Merge the layers in order, like ``snakemake.utils.update_config``."""
    out: dict[str, Any] = {}
    for layer in layers:
        _update(out, copy.deepcopy(layer.values))
    return out


def _update(base: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _update(base[key], value)
        else:
            base[key] = value


def source_of(layers: Sequence[Layer], path: Sequence[Any]) -> str:
    """The last layer that set the key at ``path`` (or a mapping above it), named for a message:
    a file path, or ``--config key=value``."""
    path = list(path)
    for depth in range(len(path), -1, -1):
        for layer in reversed(layers):
            if layer.sets(path[:depth]) and (depth > 0 or layer is layers[-1]):
                if layer.name == "--config" and path:
                    return f"--config {path[0]}={_show(layer.values.get(path[0]))}"
                return layer.name
    return layers[-1].name if layers else "config"


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def layered_config(
    default: str | Path | None,
    configfiles: Sequence[str | Path],
    overrides: Mapping[str, Any],
) -> tuple[dict[str, Any], Callable[[Sequence[Any]], str]]:
    """The merged raw configuration and a function naming the source of any key path."""
    layers = [load_layer_file(default)] if default is not None else []
    layers += [load_layer_file(p) for p in configfiles]
    if overrides:
        layers.append(command_line_layer(overrides))
    return merge(layers), lambda path: source_of(layers, path)
