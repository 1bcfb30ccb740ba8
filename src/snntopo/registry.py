"""A tiny name -> object registry, one per family (architectures, data sets, PaI methods,
encodings, metric families).

Why it looks like this:

- **One source of truth.** Every fact about a registered thing (a PaI method's ``needs_data`` and
  ``wants_gpu``, an encoding's kind and edge-count model, a metric family's encodings and
  normalisers, an architecture's training defaults) is metadata on its registry entry. The config
  schema, the CLI choices, the Snakemake rules, the tables, the analysis feature sets and the
  resource estimates all read it from here, so adding a member is one module plus one
  ``register`` line and nothing can drift.
- **Lazy implementations.** An entry may be registered with a ``"package.module:attribute"``
  string instead of the object. The implementation is imported on first :meth:`Registry.get`;
  :meth:`names` and :meth:`meta` never import it. That keeps planning (``snakemake -n``, the config
  check) free of torch, and lets the code digest of a job (:mod:`snntopo.codedigest`) include only
  the member it really runs.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def load_ref(ref: str) -> Any:
    """Import ``"package.module:attribute"`` and return the attribute."""
    module, _, attr = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


def lazy_attributes(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``package.<where[name]>`` on first
    access of ``name``: the torch-using parts of a package load only when used, so importing the
    package (its registry) stays cheap and torch-free."""

    def __getattr__(name: str) -> Any:
        if name in where:
            return getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


class Registry(Generic[T]):
    """Ordered mapping of names to objects (or lazy references) with their facts as metadata."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._items: dict[str, T | str] = {}
        self._meta: dict[str, dict[str, Any]] = {}

    def register(self, name: str, obj: T | str | None = None, **meta: Any) -> Any:
        """Register ``obj`` under ``name``; ``obj`` may be a ``"module:attr"`` reference (imported
        on first use). Usable as ``reg.register("x", f, **facts)`` or as a decorator."""

        def add(o: T | str) -> T | str:
            if name in self._items:
                raise ValueError(f"{self.family} {name!r} is registered twice")
            self._items[name] = o
            self._meta[name] = dict(meta)
            return o

        if obj is None:
            return add
        return add(obj)

    def get(self, name: str) -> T:
        """The implementation of ``name`` (imported now if it was registered by reference)."""
        try:
            obj = self._items[name]
        except KeyError:
            raise ConfigError(self.unknown_message(name)) from None
        if isinstance(obj, str):
            obj = load_ref(obj)
            self._items[name] = obj
        return obj  # type: ignore[return-value]

    def ref(self, name: str) -> str | None:
        """The ``"module:attr"`` reference of ``name``, or ``None`` if it was registered as an
        object (used for code digests without importing the implementation)."""
        self._check(name)
        obj = self._items[name]
        if isinstance(obj, str):
            return obj
        module = getattr(obj, "__module__", None)
        qual = getattr(obj, "__qualname__", None)
        return f"{module}:{qual}" if module and qual else None

    def module_of(self, name: str) -> str | None:
        """The module that implements ``name`` (no import)."""
        ref = self.ref(name)
        return ref.partition(":")[0] if ref else None

    def meta(self, name: str) -> dict[str, Any]:
        """The facts registered with ``name`` (never imports the implementation)."""
        self._check(name)
        return self._meta[name]

    def fact(self, name: str, key: str, default: Any = None) -> Any:
        return self.meta(name).get(key, default)

    def where(self, **facts: Any) -> list[str]:
        """Names whose metadata has every ``key == value`` in ``facts``."""
        return [n for n in self._items if all(self._meta[n].get(k) == v for k, v in facts.items())]

    def _check(self, name: str) -> None:
        if name not in self._items:
            raise ConfigError(self.unknown_message(name))

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(str(name), self.names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown {self.family} {name!r}{hint}; allowed: {', '.join(self.names())}"

    def names(self) -> list[str]:
        return list(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        for name in list(self._items):
            yield name, self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
